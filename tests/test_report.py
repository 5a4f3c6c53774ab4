"""`selectkit report`: one self-contained HTML page per selection, comparison, AL curves or DISCO
evaluation, made from real artefacts of the real commands on data_samples/ (and digits).

Browser checks (console errors, drawn charts, hover) are in tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from markupsafe import escape  # the escaping jinja2 applies

import selectkit as sk
from selectkit.al.curves import summarise
from selectkit.report.projection import sample_rows

from .conftest import FORTUNES, RT, Cli

#: anything that would make a browser fetch: a URL in src/href/url()/@import, or a protocol-
#: relative one (the page must render from disk with no network)
NETWORK = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
    re.IGNORECASE,
)


def _ok(result) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr)


def map_block(html: str) -> dict:
    """The map's JSON data as the page's script reads it."""
    match = re.search(
        r'<script id="sk-map-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "no map data in the page"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def art(tmp_path_factory, rt_small) -> dict[str, Path]:
    """Real artefacts of 400 Rotten Tomatoes rows: embeddings with labels, clusters, two
    manifests (kcenter, random) and al simulate curves, all made through the CLI."""
    cli = Cli()
    d = tmp_path_factory.mktemp("report")
    paths = {
        "corpus": rt_small,
        "emb": d / "emb.parquet",
        "clusters": d / "clusters.parquet",
        "kcenter": d / "kcenter.parquet",
        "random": d / "random.parquet",
        "curves": d / "curves.parquet",
    }
    _ok(cli("embed", rt_small, "--keep", "label", "-o", paths["emb"]))
    _ok(cli("cluster", paths["emb"], "-k", "8", "-o", paths["clusters"]))
    for strategy in ("kcenter", "random"):
        _ok(
            cli(
                "select", paths["emb"], paths["clusters"], "--strategy", strategy,
                "--budget", "40", "--label-col", "none", "-o", paths[strategy],
            )
        )  # fmt: skip
    _ok(
        cli(
            "al", "simulate", paths["emb"], "-s", "random,margin", "--init", "20",
            "--batch", "10", "--rounds", "3", "--repeats", "2", "-o", paths["curves"],
        )
    )  # fmt: skip
    return paths


@pytest.fixture(scope="module")
def disco_eval(tmp_path_factory, digits) -> Path:
    """`disco evaluate` results on a small zoo of real classifiers trained on digits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    x, y = digits
    test = np.arange(600, len(y))
    rows = []
    models = {f"knn{k}_n{n}": (KNeighborsClassifier(k), n) for k in (1, 5) for n in (100, 300)}
    for c in (0.1, 1):
        models |= {f"lr{c}_n{n}": (LogisticRegression(C=c, max_iter=300), n) for n in (100, 300)}
    for name, (model, n) in models.items():
        proba = model.fit(x[:n], y[:n]).predict_proba(x[test])
        rows.append(
            pl.DataFrame({"model": name, "id": test, "proba": proba.tolist(), "label": y[test]})
        )
    d = tmp_path_factory.mktemp("disco")
    preds = d / "preds.parquet"
    pl.concat(rows).write_parquet(preds)
    out = d / "eval.parquet"
    sk.disco_evaluate_files(preds, None, out, budgets=[5, 20], seeds=2, pca_dim=4)
    return out


def test_selection_page_shows_provenance_shares_scores_and_map(art, tmp_path, cli):
    out = tmp_path / "report.html"
    result = cli(
        "report", art["kcenter"], art["emb"], art["clusters"], art["corpus"], "-o", out, "--json"
    )
    _ok(result)
    summary = json.loads(result.stdout)
    assert summary["kind"] == "selection" and summary["points"] == 400
    assert summary["bytes"] == out.stat().st_size
    html = out.read_text()
    prov = sk.read_provenance(art["kcenter"])
    # provenance: strategy, seed, each input with its fingerprint, timings and metrics
    assert "kcenter" in html and prov["inputs"][0]["fingerprint"] in html
    assert "timings.select_s" in html and "metrics.coverage_mean_distance" in html
    # shares per cluster and label, pool vs selection, as tables (readable without JS)
    assert 'id="share-cluster"' in html and 'id="share-label"' in html
    pool_labels = pl.read_ndjson(art["corpus"]).get_column("label")
    n_fresh = int((pool_labels == "fresh").sum())
    assert f'<td>fresh</td><td class="num">{n_fresh}</td>' in html
    assert html.count('data-chart="bars"') == 2
    assert 'data-chart="histogram"' in html  # kcenter records a score per pick
    data = map_block(html)
    picked = pl.read_parquet(art["kcenter"]).get_column("id").to_list()
    assert len(data["ids"]) == 400 and len(data["xy"]) == 800
    assert sorted(data["ids"][i] for i in data["picks"][0]) == sorted(picked)
    assert all(0 <= v <= 1023 for v in data["xy"])
    first = pl.read_ndjson(art["corpus"]).row(0, named=True)
    j = data["ids"].index(first["id"])
    assert data["texts"][j] == first["text"][:120]


def test_same_inputs_same_bytes_and_row_order_does_not_move_the_map(art, tmp_path, cli):
    inputs = [art["kcenter"], art["emb"], art["clusters"], art["corpus"]]
    _ok(cli("report", *inputs, "-o", tmp_path / "a.html"))
    sk.write_report(inputs, tmp_path / "b.html")
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    # the same pool rows in another order: the same points, places and picks
    shuffled = tmp_path / "emb_shuffled.parquet"
    pl.read_parquet(art["emb"]).sample(fraction=1.0, shuffle=True, seed=3).write_parquet(shuffled)
    sk.write_report([art["kcenter"], shuffled, art["clusters"], art["corpus"]], tmp_path / "c.html")
    a, c = (
        map_block((tmp_path / "a.html").read_text()),
        map_block((tmp_path / "c.html").read_text()),
    )
    assert a == c
    # another seed draws another sample when the map is capped
    d1, _ = sk.render_report(inputs, max_points=100, seed=0)
    d2, _ = sk.render_report(inputs, max_points=100, seed=1)
    assert map_block(d1)["ids"] != map_block(d2)["ids"]
    assert len(map_block(d1)["ids"]) == 100


def test_page_needs_no_network(art, tmp_path, disco_eval):
    pages = [
        sk.render_report([art["kcenter"], art["random"], art["emb"], art["corpus"]])[0],
        sk.render_report(art["curves"])[0],
        sk.render_report(disco_eval)[0],
    ]
    for html in pages:
        assert not NETWORK.search(html), NETWORK.search(html).group(0)
        assert "http://" not in html and "https://" not in html
        assert "default-src 'none'" in html  # the browser itself refuses any fetch
        assert "<link" not in html and "<img" not in html and "<iframe" not in html


def test_compare_page_two_strategies_side_by_side(art, tmp_path, cli):
    out = tmp_path / "compare.html"
    _ok(cli("report", art["kcenter"], art["random"], art["emb"], art["clusters"], "-o", out))
    html = out.read_text()
    assert 'data-page="compare"' in html
    assert html.count('class="skmap"') == 2
    a = set(pl.read_parquet(art["kcenter"])["id"].to_list())
    b = set(pl.read_parquet(art["random"])["id"].to_list())
    both = len(a & b)
    assert f"{both} (J={both / len(a | b):.2f})" in html  # overlap table
    assert "kcenter share" in html and "random share" in html
    data = map_block(html)
    assert data["names"] == ["kcenter", "random"] and len(data["picks"]) == 2
    assert "texts" not in data  # no corpus given: the page says how to get texts
    assert "Give the corpus" in html


def test_manifest_alone_shows_its_own_shares(art, tmp_path, cli):
    out = tmp_path / "m.html"
    _ok(cli("report", art["kcenter"], "-o", out))
    html = out.read_text()
    assert "No pool table given" in html and 'id="share-cluster"' in html
    assert "sk-map-data" not in html and "no map: give the embeddings" in html


def test_curves_page_has_aulc_table_and_bands(art, tmp_path, cli):
    out = tmp_path / "al.html"
    _ok(cli("report", art["curves"], "-o", out))
    html = out.read_text()
    assert 'data-page="curves"' in html
    assert html.count('data-chart="curves"') == 2  # accuracy and macro-F1
    expected = summarise(pl.read_parquet(art["curves"]))
    for row in expected.iter_rows(named=True):
        assert f"<td>{row['strategy']}</td>" in html
        assert f"{row['aulc_mean']:.4f}" in html
    # one band and one line per strategy per chart
    chart = html.split('data-chart="curves"')[1]
    assert chart.count('fill-opacity="0.18"') == 2 and chart.count('stroke-width="2"') == 2


def test_disco_page_has_mae_and_spearman_per_budget(disco_eval, tmp_path, cli):
    out = tmp_path / "disco.html"
    _ok(cli("report", disco_eval, "-o", out))
    html = out.read_text()
    assert 'data-page="disco"' in html
    assert "MAE (accuracy points)" in html and "Spearman" in html
    results = pl.read_parquet(disco_eval)
    for method in results["method"].unique().to_list():
        assert f"<td>{method}</td>" in html or f'<td class="num">{method}</td>' in html
    mae = results.filter((pl.col("budget") == 5) & (pl.col("method") == "disco+ridge"))["mae"]
    assert f"{mae.mean():.4f}" in html
    # a seed's NaN Spearman (constant predictions) is left out of the mean, as in the summary:
    # only a method without one finite value is drawn as missing
    blank = results.group_by("method").agg(pl.col("spearman").is_nan().all().alias("none"))
    for method, none in blank.iter_rows():
        assert (f"{method} (no finite values)" in html) == none


def test_select_writes_report_after_the_manifest(art, tmp_path, cli):
    manifest, page = tmp_path / "m.parquet", tmp_path / "m.html"
    result = cli(
        "select", art["emb"], art["corpus"], "--strategy", "kcenter", "--budget", "30",
        "--label-col", "none", "-o", manifest, "--report", page, "--json",
    )  # fmt: skip
    _ok(result)
    assert json.loads(result.stdout)["report"] == str(page)
    plain = tmp_path / "plain.parquet"
    _ok(
        cli(
            "select", art["emb"], art["corpus"], "--strategy", "kcenter", "--budget", "30",
            "--label-col", "none", "-o", plain,
        )
    )  # fmt: skip
    assert pl.read_parquet(manifest).equals(pl.read_parquet(plain))  # select itself unchanged
    data = map_block(page.read_text())
    assert len(data["picks"][0]) == 30 and "texts" in data
    # --report needs files to read back
    result = cli("select", art["emb"], "-s", "random", "-b", "5", "-o", "-", "--report", page)
    assert result.exit_code == 2 and "--report" in result.stderr


def test_demo_writes_report(tmp_path, rt_small):
    summary = sk.run_demo(tmp_path / "demo", corpus=rt_small, budget=20)
    page = Path(summary["outputs"]["report"])
    assert page == tmp_path / "demo" / "report.html"
    data = map_block(page.read_text())
    assert data["names"] == ["kcenter", "random"] and all(len(p) == 20 for p in data["picks"])


def test_bad_inputs_one_line_and_exit_code_and_nothing_written(art, tmp_path, cli, rt_small):
    out = tmp_path / "r.html"
    out.write_text("old report")
    cases = [
        ((art["kcenter"], tmp_path / "missing.parquet"), 1, "missing.parquet"),
        ((art["curves"], art["kcenter"]), 2, "report it alone"),
        ((art["emb"],), 2, "no manifest"),
    ]
    for inputs, code, words in cases:
        result = cli("report", *inputs, "-o", out)
        assert result.exit_code == code, result.stderr
        assert words in result.stderr and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr
    # a manifest whose ids the pool lacks: names the manifest and the pool
    fortunes = tmp_path / "fortunes.parquet"
    head = tmp_path / "f.jsonl"
    head.write_text("".join(FORTUNES.read_text().splitlines(keepends=True)[:50]))
    _ok(cli("embed", head, "-o", fortunes))
    result = cli("report", art["kcenter"], fortunes, "-o", out)
    assert result.exit_code == 1 and "ids not in the pool" in result.stderr
    assert str(art["kcenter"]) in result.stderr
    # a usage error: the output must be .html
    result = cli("report", art["kcenter"], "-o", tmp_path / "r.txt")
    assert result.exit_code == 2 and ".html" in result.stderr
    assert out.read_text() == "old report"  # an existing report is never touched on failure
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries
    with pytest.raises(sk.SelectkitUsageError, match="max_points="):
        sk.write_report([art["kcenter"]], out, max_points=0)


def test_cli_subprocess_error_has_no_traceback(art, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "selectkit", "report", str(art["curves"]), str(art["emb"]), "-o",
         str(tmp_path / "x.html")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.html").exists()


def test_sampling_is_by_id_hash_not_position():
    ids = pl.Series("id", np.arange(10_000, dtype=np.int64))
    picked = np.zeros(10_000, dtype=bool)
    picked[::100] = True
    rows = sample_rows(ids, picked, 1000, seed=0)
    assert rows.size == 1000 and picked[rows].sum() == 100  # every pick is drawn
    perm = np.random.default_rng(1).permutation(10_000)
    again = sample_rows(ids.gather(perm), picked[perm], 1000, seed=0)
    assert sorted(ids.gather(rows).to_list()) == sorted(ids.gather(perm).gather(again).to_list())


@pytest.mark.slow
def test_size_bound_at_50k_points(tmp_path):
    """Synthetic vectors (the only synthetic input here): a 50k-row pool stays a few MB."""
    rng = np.random.default_rng(0)
    n = 50_000
    emb = tmp_path / "emb.npy"
    np.save(emb, rng.standard_normal((n, 32)).astype(np.float32))
    manifest = tmp_path / "m.parquet"
    sk.select_files([emb], manifest, strategy="random", budget=500, metrics=False)
    summary = sk.write_report([manifest, emb], tmp_path / "r.html")
    assert summary["points"] == n
    assert summary["bytes"] < 2_000_000, summary
    capped = sk.write_report([manifest, emb], tmp_path / "c.html", max_points=5000)
    data = map_block((tmp_path / "c.html").read_text())
    assert capped["points"] == 5000 and len(data["picks"][0]) == 500


def test_semdedup_dropped_rows_beside_the_rows_they_duplicate(tmp_path, cli, rt_small):
    # real reviews plus 20 of them reposted with a suffix: near-duplicates semdedup must drop
    base = pl.read_ndjson(rt_small)
    reposts = base.head(20).with_columns(pl.col("id") + "-repost", pl.col("text") + " (reposted)")
    corpus = tmp_path / "corpus.jsonl"
    pl.concat([base, reposts]).write_ndjson(corpus)
    emb, clusters = tmp_path / "emb.parquet", tmp_path / "clusters.parquet"
    _ok(cli("embed", corpus, "-o", emb))
    _ok(cli("cluster", emb, "-k", "4", "-o", clusters))
    kept, dropped = tmp_path / "kept.parquet", tmp_path / "dropped.parquet"
    _ok(
        cli(
            "select", emb, clusters, "--strategy", "semdedup", "--threshold", "0.9",
            "-o", kept, "--emit-dropped", dropped,
        )
    )  # fmt: skip
    pairs = pl.read_parquet(dropped).sort(["similarity", "id"], descending=[True, False])
    assert pairs.height >= 15
    out = tmp_path / "sd.html"
    _ok(cli("report", kept, dropped, emb, corpus, "-o", out))
    html = out.read_text()
    assert f"{pairs.height} rows of {dropped} were dropped" in html
    texts = dict(pl.read_ndjson(corpus).select("id", "text").iter_rows())
    top = pairs.row(0, named=True)
    row = (
        f"<td>{top['id']}</td><td>{escape(texts[top['id']][:160])}</td>"
        f"<td>{top['duplicate_of']}</td><td>{escape(texts[top['duplicate_of']][:160])}</td>"
    )
    assert row in html
    # with two manifests the dropped rows' manifest is ambiguous: refused, naming the fix
    result = cli("report", kept, kept, dropped, emb, "-o", out)
    assert result.exit_code == 2 and "the one manifest semdedup kept" in result.stderr


@pytest.fixture(scope="module")
def disco_predicted(disco_eval) -> tuple[Path, Path]:
    """`disco predict` output for the zoo's models and their true accuracies (model, accuracy)."""
    d = disco_eval.parent
    preds = d / "preds.parquet"
    sk.select_files([preds], d / "anchors.parquet", strategy="disco", budget=20, use_labels=False)
    sk.disco_fit_files(preds, None, d / "anchors.parquet", d / "predictor", pca_dim=4)
    sk.disco_predict_files(d / "predictor", preds, d / "predicted.parquet")
    frame = pl.read_parquet(preds).with_columns(
        correct=pl.col("proba").list.arg_max() == pl.col("label")
    )
    frame.group_by("model").agg(accuracy=pl.col("correct").mean()).write_parquet(d / "acc.parquet")
    return d / "predicted.parquet", d / "acc.parquet"


def test_disco_predicted_vs_true_accuracy_page(disco_predicted, tmp_path, cli):
    from selectkit.disco.evaluate import spearman

    predicted, acc = disco_predicted
    out = tmp_path / "pred.html"
    _ok(cli("report", predicted, acc, "-o", out))
    html = out.read_text()
    both = pl.read_parquet(predicted).join(pl.read_parquet(acc), on="model")
    mae = 100 * (both["predicted_accuracy"] - both["accuracy"]).abs().mean()
    rho = spearman(both["predicted_accuracy"].to_numpy(), both["accuracy"].to_numpy())
    assert f"{both.height} models: MAE {mae:.2f} accuracy points, Spearman {rho:.3f}" in html
    assert html.count("<circle") == both.height and 'data-chart="scatter"' in html
    # predictions alone: a bar per model and how to see the error
    _ok(cli("report", predicted, "-o", tmp_path / "alone.html"))
    alone = (tmp_path / "alone.html").read_text()
    assert 'data-chart="bars"' in alone and "true accuracies (model, accuracy)" in alone
    result = cli("report", predicted, acc, acc, "-o", out)
    assert result.exit_code == 2 and "drop" in result.stderr


def test_dsir_target_vs_selection_shift(tmp_path, cli):
    target = tmp_path / "plots.jsonl"
    lines = RT.read_text().splitlines(keepends=True)
    target.write_text("".join(line for line in lines if '"label": "plot"' in line))
    manifest = tmp_path / "dsir.parquet"
    _ok(
        cli(
            "select", RT, FORTUNES, "--strategy", "dsir", "--target", target, "--budget",
            "50", "-o", manifest,
        )
    )  # fmt: skip
    metrics = sk.read_provenance(manifest)["metrics"]
    out = tmp_path / "dsir.html"
    _ok(cli("report", manifest, RT, "-o", out))
    html = out.read_text()
    assert 'id="dsir0"' in html
    row = "".join(
        f'<td class="num">{metrics[k][0]:.4f}</td>'
        for k in ("kl_target_pool", "kl_target_random", "kl_target_selected")
    )
    assert f"<td>target 0</td>{row}" in html
    assert f"KL reduction vs a random sample: {metrics['kl_reduction']:.4f}" in html
    # the corpus as pool: label shares of the selection vs the corpus (the target is plots)
    assert 'id="share-label"' in html
