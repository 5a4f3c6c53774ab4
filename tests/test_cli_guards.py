"""Guards a newcomer hits first: refused before any work, with the fix in the message."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest


def test_al_simulate_refuses_csv_curves_before_running(cli, tmp_path, digits):
    x, y = digits
    data = tmp_path / "d.parquet"
    pl.DataFrame({"id": range(300), "embedding": x[:300], "label": y[:300]}).write_parquet(data)
    out, summary = tmp_path / "c.csv", tmp_path / "s.csv"
    r = cli("al", "simulate", data, "-s", "random", "--rounds", "2", "-o", out)
    assert r.exit_code == 2 and "list column" in r.output
    good = tmp_path / "c.parquet"
    r = cli("al", "simulate", data, "-s", "random", "--rounds", "2", "-o", good, "--summary",
            tmp_path / "s.txt")  # fmt: skip
    assert r.exit_code == 2
    r = cli("al", "simulate", data, "-s", "random", "--rounds", "2", "-o", good, "--plot",
            tmp_path / "p.txt")  # fmt: skip
    assert r.exit_code == 2 and ".png" in r.output
    assert not out.exists() and not good.exists() and not summary.exists()


def test_disco_label_col_none_ignores_string_labels(cli, tmp_path, long_frame):
    frame = long_frame.with_columns(pl.lit("A").alias("label"))
    path = tmp_path / "preds.parquet"
    frame.write_parquet(path)
    out = tmp_path / "anchors.parquet"
    r = cli("select", path, "-s", "disco", "-b", "10", "--label-col", "none", "-o", out)
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(out).height == 10


def test_proba_mc_errors_name_the_table_row(cli, tmp_path):
    good = [[0.5, 0.5], [0.4, 0.6]]
    bad = [[0.5, 0.5], [0.9, 0.9]]  # row 1, pass 1 sums to 1.8
    path = tmp_path / "mc.parquet"
    pl.DataFrame({"id": [0, 1, 2], "proba_mc": [good, bad, good]}).write_parquet(path)
    r = cli("select", path, "-s", "bald", "-b", "1", "-o", tmp_path / "m.parquet")
    assert r.exit_code == 1 and "row 1 pass 1" in r.output


def test_coldness_needs_stochastic_and_beta_is_only_a_strategy_parameter(cli, tmp_path):
    path = tmp_path / "p.parquet"
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    pl.DataFrame({"id": [0, 1, 2], "proba": proba}).write_parquet(path)
    out = tmp_path / "m.parquet"
    r = cli("select", path, "-s", "margin", "-b", "1", "--coldness", "2", "-o", out)
    assert r.exit_code == 2 and "--stochastic" in r.output and "coldness" in r.output
    # --beta no longer doubles as the coldness: margin has no beta
    r = cli("select", path, "-s", "margin", "-b", "1", "--beta", "2", "--stochastic", "power",
            "-o", out)  # fmt: skip
    assert r.exit_code == 2 and "no such option '--beta'" in r.output
    r = cli("select", path, "-s", "margin", "-b", "1", "--coldness", "2", "--stochastic", "power",
            "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output


def test_dsir_model_refuses_feature_options(cli, tmp_path, rt_small):
    model = tmp_path / "m.npz"
    out = tmp_path / "m.parquet"
    r = cli("select", rt_small, "-s", "dsir", "--target", rt_small, "-b", "5", "--save-model",
            model, "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli("select", rt_small, "-s", "dsir", "--model", model, "--buckets", "5000", "-b", "5",
            "-o", tmp_path / "again.parquet")  # fmt: skip
    assert r.exit_code == 2 and "drop --buckets" in r.output


def test_apply_refuses_id_less_shards_in_another_order(cli, tmp_path, rt_small):
    lines = rt_small.read_text().splitlines()
    shards = []
    for k in range(2):
        path = tmp_path / f"noid-{k}.jsonl"
        rows = [pl.Series([line]).str.json_decode().struct.field("text")[0] for line in lines]
        part = rows[k * 200 : (k + 1) * 200]
        pl.DataFrame({"text": part}).write_ndjson(path)
        shards.append(path)
    manifest = tmp_path / "m.parquet"
    r = cli("select", *shards, "-s", "dsir", "--target", rt_small, "-b", "20", "-o", manifest)
    assert r.exit_code == 0, r.output
    out = tmp_path / "x.jsonl"
    r = cli("apply", manifest, shards[1], shards[0], "-o", out)
    assert r.exit_code == 1 and "not in the order" in r.output and not out.exists()
    r = cli("apply", manifest, *shards, "-o", out)
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 20


def test_dsir_min_tokens_above_every_document_is_named(cli, tmp_path, rt_small):
    r = cli("select", rt_small, "-s", "dsir", "--target", rt_small, "--min-tokens", "100000",
            "-b", "5", "-o", tmp_path / "m.parquet")  # fmt: skip
    assert r.exit_code == 1 and "lower --min-tokens" in r.output


@pytest.mark.parametrize(
    ("flag", "name", "hint"),
    [
        ("--label-col", "lable", "label"),
        ("--score-col", "nope", None),
        ("--group-col", "grop", None),
    ],
)
def test_a_named_column_that_no_input_has_is_an_error(cli, tmp_path, rt_path, flag, name, hint):
    """`--label-col lable` used to be ignored (every row unlabelled): now it names the columns."""
    table = tmp_path / "lab.parquet"
    r = cli("embed", rt_path, "--keep", "label", "-o", table)
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "m.parquet"
    r = cli("select", table, "-s", "kcenter", "-b", "5", flag, name, "-o", out)
    assert r.exit_code == 1, r.stderr
    line = r.stderr.strip()
    assert f"column '{name}'" in line and "columns there: id, embedding, label" in line, line
    assert (f"did you mean '{hint}'" in line) if hint else "did you mean" not in line
    assert not out.exists()


def test_a_named_column_that_no_long_table_has_is_an_error(cli, tmp_path):
    """DISCO's long tables keep the contract too: `select -s disco` and `disco fit`."""
    from selectkit.testing import long_frame

    preds = tmp_path / "preds.parquet"
    long_frame().write_parquet(preds)
    anchors = tmp_path / "anchors.parquet"
    assert cli("select", preds, "-s", "disco", "-b", "10", "-o", anchors).exit_code == 0
    for args in (
        ["select", preds, "-s", "disco", "-b", "10", "-o", tmp_path / "a.parquet"],
        ["disco", "fit", preds, "--anchors", anchors, "-o", tmp_path / "predictor"],
    ):
        r = cli(*args, "--group-col", "grp")
        assert r.exit_code == 1, r.output
        assert "column 'grp' (the group column) is in none of" in r.stderr
        assert "did you mean 'group'?" in r.stderr
    assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "predictor").exists()
