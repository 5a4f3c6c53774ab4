"""Issue 12 item 7 and 13: every CLI command is a Python call, errors from Python speak Python,
wrong argument types are selectkit errors, and each bound is declared once and matches the CLI."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import typer.main

import selectkit as sk
from selectkit.al.simulate import SIMULATE_BOUNDS
from selectkit.cli import app
from selectkit.cluster import assign
from selectkit.cluster.hierarchical import resampled_kmeans
from selectkit.cluster.kmeans import KMEANS_BOUNDS
from selectkit.cluster.pipeline import CLUSTER_BOUNDS
from selectkit.cluster.seeding import SEED_BOUNDS, check_seed_args
from selectkit.disco.evaluate import EVALUATE_BOUNDS, evaluate
from selectkit.disco.predictor import FIT_BOUNDS, fit_predictor
from selectkit.dynamics import BOUNDS as SCORES_BOUNDS
from selectkit.embed.hashing import BOUNDS as HASHING_BOUNDS
from selectkit.embed.pipeline import EMBED_BOUNDS
from selectkit.kmq import KMQ_WEIGHTS_PARAMS
from selectkit.params import REQUIRED
from selectkit.planfilter.run import PLAN_FILTER_PARAMS
from selectkit.rng import derive_rng
from selectkit.stream.policies import STREAM_PARAMS
from selectkit.stream.run import STREAM_OPTIONS
from selectkit.textcap import BOUNDS as TEXTCAP_BOUNDS
from selectkit.textcap import TextCap
from selectkit.weights import BROADCAST_PARAMS
from tests.conftest import leftovers

DOCS = Path(__file__).resolve().parents[1] / "docs"

# the CLI command -> the Python call it is a shell over (docs/python-api.md shows the same table)
COMMANDS = {
    "embed": "embed_file",
    "cluster": "cluster_file",
    "select": "select_files",
    "scores": "scores_file",
    "apply": "apply_manifest",
    "inspect": "inspect_file",
    "strategies": "list_strategies",
    "demo": "run_demo",
    "report": "write_report",
    "al simulate": "al_simulate_file",
    "disco fit": "disco_fit_files",
    "disco predict": "disco_predict_files",
    "disco evaluate": "disco_evaluate_files",
    "weights broadcast": "broadcast_weights",
    "kmq-weights": "kmq_weights",
    "stream": "stream_select",
    "plan-filter": "plan_filter",
}


def _cli_commands() -> list[str]:
    root = typer.main.get_command(app)
    names = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return sorted(names)


def test_every_cli_command_is_an_exported_documented_python_call():
    assert _cli_commands() == sorted(COMMANDS)
    page = (DOCS / "python-api.md").read_text()
    for command, call in COMMANDS.items():
        assert callable(getattr(sk, call)) and call in sk.__all__, call
        row = re.search(rf"^\| `selectkit {command}` \| `sk\.{call}\(", page, re.M)
        assert row, f"docs/python-api.md lacks the row for {command}"


def test_from_arrays_takes_columns(digits):
    x, y = digits
    labels = np.where(np.arange(len(y)) % 3 == 0, y, -10).astype(object)
    labels[labels == -10] = None
    pool = sk.Pool.from_arrays(x, labels=labels, columns=sk.Columns(label="digit"))
    assert "digit" in pool.frame.columns and pool.labelled_mask.sum() == (len(y) + 2) // 3
    _manifest, sel = sk.select(pool, "kcenter", budget=20, seed=0)
    assert not pool.labelled_mask[sel.indices].any()
    # a renamed role's column keeps the name given to it
    scored = sk.Pool.from_arrays(x[:50], columns=sk.Columns(score="aum"), aum=np.arange(50.0))
    assert scored.values("score")[-1] == 49.0
    ignoring = sk.Pool.from_arrays(x[:10], labels=list(range(10)), use_labels=False)
    assert not ignoring.labelled_mask.any()


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda x: sk.Pool.from_arrays(x, columns={"label": "y"}), "columns= must be a Columns"),
        (lambda x: sk.Pool.from_arrays(x, labels="abc"), "labels= must be an array"),
        (lambda x: sk.Pool.from_arrays(x, use_labels="no"), "use_labels= must be True or False"),
        (lambda x: sk.Pool.from_arrays(x[0]), "embeddings= must be a 2-d"),
        (lambda x: sk.Pool.from_arrays(x, ids=np.arange(3)), "rows"),
        (lambda x: sk.load_pool(3), "paths= must be a path or a list of paths, not int 3"),
        (lambda x: sk.load_pool([Path("a.parquet"), 3]), "paths= must be a path"),
        (lambda x: sk.load_pool("x.parquet", columns={"id": "i"}), "columns= must be a Columns"),
        (lambda x: sk.kmeans(x, "5"), "k= must be an integer, not '5'"),
        (lambda x: sk.kmeans(x, 5, rng=0), "rng= must be a numpy Generator"),
        (lambda x: sk.kmeans(x, 5, iters=-1), "iters=-1 must be at least 0"),
        (lambda x: sk.kmeans(x, 5, seeding="magic"), "unknown seeding= 'magic'"),
        (lambda x: sk.kmeans(x.tolist(), 5), "x= must be a 2-d numpy array"),
        (lambda x: sk.embed_texts("one text"), "texts= must be a list of strings"),
        (lambda x: sk.embed_file(3, "e.parquet"), "input_path= must be a path"),
        (lambda x: sk.make_embedder("hashing", dim=1), "dim=1 must be at least 2"),
        (lambda x: sk.make_embedder("bert"), "unknown embedder 'bert' (embedder=)"),
        (lambda x: sk.parse_budget("lots", 10), "budget="),
        (lambda x: sk.scores_for_pool(x), "pool= must be a Pool"),
        (lambda x: sk.run_demo(5), "out_dir= must be a path"),
    ],
)
def test_wrong_argument_types_are_usage_errors_naming_the_argument(digits, call, fragment):
    with pytest.raises(sk.SelectkitUsageError) as info:
        call(digits[0][:40])
    assert fragment in str(info.value)


def test_cluster_file_argument_types(tmp_path, digits_parquet):
    out = tmp_path / "c.parquet"
    for kwargs, fragment in [
        ({"k": "5"}, "k= must be an integer"),
        ({"k": 5.0}, "k= must be an integer, not float 5.0"),
        ({"levels": "10,5"}, "levels= must be a list of cluster counts"),
        ({"levels": [5, 10]}, "levels= must decrease"),
        ({"k": 5, "tol": "small"}, "tol= must be a number"),
        ({"k": 5, "fit_sample": 0}, "fit_sample=0 must be at least 1"),
        ({"k": 5, "sample_size": [2, 0]}, "sample_size=0 must be at least 1"),
        ({"k": 5, "centroids_out": 7}, "centroids_out= must be a path"),
    ]:
        with pytest.raises(sk.SelectkitUsageError, match=re.escape(fragment)):
            sk.cluster_file(digits_parquet, out, **kwargs)
    assert not out.exists() and leftovers(tmp_path) == []


def test_load_pool_takes_one_path(digits_parquet):
    one = sk.load_pool(str(digits_parquet))
    assert len(one) == 1797 and one.frame.equals(sk.load_pool([digits_parquet]).frame)
    assert sk.load_pool(Path(digits_parquet)).frame.equals(one.frame)


def test_kmeans_returns_per_row_labels(digits):
    x = digits[0]
    result = sk.kmeans(x, 12, rng=derive_rng(0, "k"))
    labels, dist = assign(x, result.centroids)
    assert result.labels.dtype == np.int64 and np.array_equal(result.labels, labels)
    np.testing.assert_allclose(result.distances, dist, rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.bincount(result.labels, minlength=12), result.sizes)
    assert result.inertia == pytest.approx(float(dist.astype(np.float64).sum()), rel=1e-5)
    # seed= is the Python default for rng=, and the same seed gives the same clusters
    assert np.array_equal(sk.kmeans(x, 12, seed=3).labels, sk.kmeans(x, 12, seed=3).labels)
    # resampled k-means: labels of every row of x, not of the last resampling's sample
    res, lab = resampled_kmeans(x, 10, rng=derive_rng(0, "r"), resample_steps=3, sample_size=20)
    assert res.labels.shape == (len(x),) and np.array_equal(res.labels, lab)


def test_kmeans_labels_match_cluster_command(cli, tmp_path, digits_npy, digits):
    out = tmp_path / "c.parquet"
    assert cli("cluster", digits_npy, "-k", "8", "--seed", "4", "-o", out).exit_code == 0
    direct = sk.kmeans(digits[0], 8, rng=derive_rng(4, "cluster", "level", 0))
    assert np.array_equal(pl.read_parquet(out)["cluster"].to_numpy(), direct.labels)


def test_scores_python_calls_match_the_cli(cli, tmp_path, digits_parquet):
    by_cli = tmp_path / "cli.parquet"
    args = ["--label-col", "digit", "--epochs", "3"]
    assert cli("scores", digits_parquet, *args, "-o", by_cli).exit_code == 0
    by_py = tmp_path / "py.parquet"
    columns = sk.Columns(label="digit")
    sk.scores_file(str(digits_parquet), by_py, epochs=3, columns=columns)  # one path, no list
    expected = pl.read_parquet(by_cli)
    assert pl.read_parquet(by_py).equals(expected)
    in_memory = sk.scores_for_pool(sk.load_pool(digits_parquet, columns=columns), epochs=3)
    assert in_memory.equals(expected)


# The same bad call through the CLI names the flag; through Python, the argument.
def test_missing_embedding_column_names_flag_or_argument(cli, tmp_path, rt_small):
    r = cli("select", rt_small, "-s", "kcenter", "-b", "5", "-o", tmp_path / "m.parquet")
    assert r.exit_code == 1 and "name another column with --embedding-col" in r.stderr
    with pytest.raises(sk.SelectkitDataError) as info:
        sk.select_files([rt_small], tmp_path / "m.parquet", strategy="kcenter", budget=5)
    assert "columns=Columns(embedding=...)" in str(info.value)
    assert "--" not in str(info.value)


def test_missing_text_column_names_flag_or_argument(cli, tmp_path, digits_parquet):
    r = cli("embed", digits_parquet, "-o", tmp_path / "e.parquet", "--text-col", "body")
    assert r.exit_code == 1 and "with --text-col" in r.stderr
    with pytest.raises(sk.SelectkitDataError, match="with text_col="):
        sk.embed_file(digits_parquet, tmp_path / "e.parquet", text_col="body")


def test_cluster_errors_name_flag_or_argument(cli, tmp_path, digits_parquet):
    out = tmp_path / "c.parquet"
    r = cli("cluster", digits_parquet, "-k", "5000", "-o", out)
    assert r.exit_code == 1 and "-k 5000 is larger than the 1797 rows" in r.stderr
    with pytest.raises(sk.SelectkitDataError, match="k=5000 is larger than the 1797 rows"):
        sk.cluster_file(digits_parquet, out, k=5000)
    r = cli("cluster", digits_parquet, "-k", "5", "--seeding", "magic", "-o", out)
    assert r.exit_code == 2 and "unknown --seeding 'magic'" in r.stderr
    with pytest.raises(sk.SelectkitUsageError, match="unknown seeding= 'magic'"):
        sk.cluster_file(digits_parquet, out, k=5, seeding="magic")
    r = cli("cluster", digits_parquet, "-o", out)
    assert r.exit_code == 2 and "give either -k (flat k-means) or --levels" in r.stderr
    with pytest.raises(sk.SelectkitUsageError, match=r"give either k= \(flat k-means\) or levels="):
        sk.cluster_file(digits_parquet, out)
    assert not out.exists()


def test_long_text_error_names_flag_or_argument(cli, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": 1, "text": "' + "x" * 50 + '"}\n')
    out = tmp_path / "e.parquet"
    r = cli("embed", corpus, "-o", out, "--max-chars", "10", "--on-long", "error")
    assert r.exit_code == 1 and "raise --max-chars or drop --on-long error" in r.stderr
    with pytest.raises(sk.SelectkitDataError, match="raise max_chars= or drop on_long='error'"):
        sk.embed_file(corpus, out, max_chars=10, on_long="error")
    assert not out.exists()


def test_all_labelled_pool_error_speaks_python(tmp_path, rt_emb, rt_small):
    # --label-col none / use_labels=False: the fix for a pool with nothing left to select
    labels = pl.read_ndjson(rt_small).select("id", "label")
    path = tmp_path / "labels.parquet"
    labels.write_parquet(path)
    pool = sk.load_pool([rt_emb, path])
    with pytest.raises(
        sk.SelectkitDataError,
        match=r"labelled_col=\), or ignore labels \(use_labels=False when loading",
    ) as info:
        pool.candidates  # noqa: B018 - the property raises
    assert "--" not in str(info.value)


def test_python_messages_after_a_cli_run_speak_python(cli, tmp_path, digits_parquet):
    # the CLI's rendering is scoped to its run: a later Python call is not affected
    assert cli("cluster", digits_parquet, "-k", "5000", "-o", tmp_path / "c.parquet").exit_code
    with pytest.raises(sk.SelectkitDataError, match=r"^k=5000"):
        sk.cluster_file(digits_parquet, tmp_path / "c.parquet", k=5000)


def _cli_bounds(command: str, renamed: dict[str, str] | None = None) -> dict[str, tuple]:
    cmd = typer.main.get_command(app)
    for word in command.split():  # "disco fit": a command of a group
        cmd = cmd.commands[word]  # type: ignore[attr-defined]
    out = {}
    for param in cmd.params:
        # this Typer keeps min/max on the parameter; Click keeps them on its type
        kind = getattr(param, "type", None)
        low = getattr(param, "min", getattr(kind, "min", None))
        high = getattr(param, "max", getattr(kind, "max", None))
        if low is not None or high is not None:
            out[(renamed or {}).get(param.name, param.name)] = (low, high)
    return out


@pytest.mark.parametrize(
    ("command", "bounds", "python_only"),
    [
        ("cluster", CLUSTER_BOUNDS, {"coreset_size", "sample_size"}),
        ("embed", {**EMBED_BOUNDS, **TEXTCAP_BOUNDS}, set()),
        ("scores", SCORES_BOUNDS, set()),
        ("disco fit", {**FIT_BOUNDS, "seed": EVALUATE_BOUNDS["seed"]}, set()),
        ("disco evaluate", EVALUATE_BOUNDS, set()),
        ("weights broadcast", BROADCAST_PARAMS, set()),
        ("kmq-weights", KMQ_WEIGHTS_PARAMS, set()),
        ("stream", {**STREAM_PARAMS, **STREAM_OPTIONS}, set()),
        ("plan-filter", PLAN_FILTER_PARAMS, set()),
        # these al simulate options carry no min: the declaration's check words the refusal
        ("al simulate", SIMULATE_BOUNDS, {"init", "batch", "rounds", "repeats", "mc_members"}),
    ],
)
def test_cli_option_bounds_match_the_declared_bounds(command, bounds, python_only):
    cli_bounds = _cli_bounds(command, renamed={"pca": "pca_dim"})
    for name, bound in bounds.items():
        if name in python_only:  # no CLI option, or one parsed from text (--sample-size 10,3)
            continue
        # an open bound (test_fraction in (0, 1)) or a choice has no CLI min/max
        assert cli_bounds.get(name, (None, None)) == (bound.cli_min, bound.cli_max), name
    assert set(cli_bounds) <= set(bounds), set(cli_bounds) - set(bounds)


@pytest.mark.parametrize(
    ("declared", "function", "skip"),
    [
        (SEED_BOUNDS, check_seed_args, set()),
        (KMEANS_BOUNDS, sk.kmeans, {"coreset_size"}),
        (CLUSTER_BOUNDS, sk.cluster_file, {"coreset_size"}),
        (EMBED_BOUNDS, sk.embed_file, set()),
        (HASHING_BOUNDS, sk.HashingEmbedder, set()),
        (TEXTCAP_BOUNDS, TextCap, set()),
        (SCORES_BOUNDS, sk.scores_file, set()),
        (SIMULATE_BOUNDS, sk.al_simulate, set()),
        (SIMULATE_BOUNDS, sk.al_simulate_file, set()),
        (FIT_BOUNDS, fit_predictor, set()),
        (EVALUATE_BOUNDS, evaluate, set()),
        (BROADCAST_PARAMS, sk.broadcast_weights, set()),
        (KMQ_WEIGHTS_PARAMS, sk.kmq_weights, set()),
        (STREAM_OPTIONS, sk.stream_select, set()),
        (PLAN_FILTER_PARAMS, sk.plan_filter, set()),
    ],
)
def test_declared_defaults_are_the_functions_defaults(declared, function, skip):
    # a declaration is also the documentation of its arguments: its defaults must not drift
    signature = inspect.signature(function).parameters
    for name, param in declared.items():
        if name in skip:
            continue
        default = signature[name].default
        expected = REQUIRED if default is inspect.Parameter.empty else default
        assert param.default == expected, (function, name)
        if param.default not in (None, REQUIRED):
            assert param.check(name, param.default) == param.default, name


def test_declared_bounds_speak_the_callers_language(tmp_path, digits_parquet):
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    y = np.arange(60) % 3
    kw = {"strategies": ["random"], "init": 9, "rounds": 0, "repeats": 1}
    for bad, message in [
        ({"test_size": 1.5}, r"^test_size=1\.5 must lie in \(0, 1\)$"),
        ({"test_size": 0}, r"^test_size=0 must lie in \(0, 1\)$"),
        ({"init": 2.5}, r"^init= must be an integer, not float 2\.5$"),
        ({"repeats": True}, r"^repeats= must be an integer, not bool True$"),
        ({"seed": -1}, r"^seed=-1 must be at least 0$"),
    ]:
        with pytest.raises(sk.SelectkitUsageError, match=message):
            sk.al_simulate(x, y, **{**kw, **bad})
    with pytest.raises(sk.SelectkitUsageError, match=r"^alpha= must be a number, not NaN$"):
        sk.disco_fit_files(
            tmp_path / "p.parquet", None, tmp_path / "a", tmp_path / "o", alpha=np.nan
        )
    with pytest.raises(sk.SelectkitUsageError, match=r"^regressor=1 must be one of ridge, knn"):
        sk.disco_fit_files(
            tmp_path / "p.parquet", None, tmp_path / "a", tmp_path / "o", regressor=1
        )
    assert sk.al_simulate(x, y, **kw).curves.height  # the declared defaults themselves pass


def test_declared_bounds_refuse_the_same_values_through_python(digits_parquet, tmp_path):
    out = tmp_path / "c.parquet"
    for name, bound in CLUSTER_BOUNDS.items():
        if name in ("k", "coreset_size", "sample_size") or bound.low is None:
            continue
        too_low = bound.low - 1 if bound.type is int else -0.5
        with pytest.raises(sk.SelectkitUsageError, match=rf"^{name}={too_low} must be at least"):
            sk.cluster_file(digits_parquet, out, k=3, **{name: too_low})
    with pytest.raises(sk.SelectkitUsageError, match=r"^k=0 must be at least 1$"):
        sk.cluster_file(digits_parquet, out, k=0)


def test_python_api_page_runs_as_written(tmp_path):
    """Every Python block of docs/python-api.md runs, from a folder holding data_samples/, and
    prints what its comments say."""
    import subprocess
    import sys

    page = (DOCS / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2
    (tmp_path / "data_samples").symlink_to(DOCS.parent / "data_samples")
    env = {**os.environ, "PYTHONPATH": str(DOCS.parent)}
    for i, block in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        for match in re.finditer(r"^print\(.*?\)\s+# (.*?)$", block, re.M):
            want = match.group(1).split(": ")[-1].strip()  # "selectkit inspect: 100" -> "100"
            assert any(want in line for line in lines), (want, lines)
        if i == 1:  # the comments of the error block are the messages it prints
            for want in re.findall(r"# ([a-z_]+= must be [^,(]+)", block):
                assert any(want in line for line in lines), (want, lines)
    assert (tmp_path / "api-demo" / "predicted.parquet").is_file()


def test_select_and_apply_refuse_wrong_argument_types(tmp_path, digits_parquet):
    """Each wrong type names its argument (a usage error), never a bare TypeError."""
    pool = sk.load_pool(str(digits_parquet))
    out = tmp_path / "m.parquet"
    bad_calls = [
        (lambda: sk.select(pool, "random", 5, seed="0"), "seed= must be an integer"),
        (lambda: sk.select(pool, "random", 5, seed=-1), "seed=-1 must be at least 0"),
        (lambda: sk.select(pool, 3, 5), "strategy= must be a string"),
        (lambda: sk.select(pool, "kcenter", 5, labelled_col=5), "labelled_col= must be a string"),
        (lambda: sk.select(pool, "kcenter", 5, params=["metric=cosine"]), "params= must be a dict"),
        (lambda: sk.select(str(digits_parquet), "random", 2), "pool= must be a Pool"),
        (lambda: sk.select_files(3, out, strategy="random", budget=5), "inputs= must be a path"),
        (lambda: sk.select_files([digits_parquet], 3, strategy="random", budget=5), "output="),
    ]
    for call, message in bad_calls:
        with pytest.raises(sk.SelectkitUsageError, match=message):
            call()
    assert not out.exists()
    sk.select_files(str(digits_parquet), out, strategy="random", budget=5)  # one path, not chars
    with pytest.raises(sk.SelectkitUsageError, match="force= must be a bool"):
        sk.apply_manifest(out, digits_parquet, tmp_path / "a.jsonl", force="yes")
    assert not (tmp_path / "a.jsonl").exists()


def test_all_labelled_error_from_python_names_where_use_labels_goes(digits):
    pool = sk.Pool.from_arrays(digits[0], labels=digits[1])
    with pytest.raises(sk.SelectkitDataError, match=r"load_pool\(\.\.\., use_labels=False\)"):
        sk.select(pool, "kcenter", 5)
