"""DSIR through the real CLI: shards, gzip, globs, stdin, select then apply, exit codes."""

from __future__ import annotations

import gzip
import io
import json

import polars as pl
import pytest

from selectkit.io import read_provenance
from tests.conftest import FORTUNES, RT


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Three gzip JSONL shards without ids (RT reviews + fortunes) and a plot-synopsis target."""
    folder = tmp_path_factory.mktemp("shards")
    rt = pl.read_ndjson(RT)
    plots = rt.filter(pl.col("label") == "plot")
    plots.head(100).select("text").write_ndjson(folder / "target.jsonl")
    raw = pl.concat(
        [
            rt.filter(pl.col("label") != "plot").select("text", "label"),
            plots.slice(100).select("text", "label"),
            pl.read_ndjson(FORTUNES).select("text", pl.lit("fortune").alias("label")),
        ]
    )
    paths = []
    for i, start in enumerate(range(0, raw.height, 1700)):
        path = folder / f"part-{i}.jsonl.gz"
        with gzip.open(path, "wb") as f:
            raw.slice(start, 1700).write_ndjson(f)
        paths.append(path)
    return folder, paths, raw


def test_select_then_apply_on_gzip_shards(cli, shards, tmp_path):
    folder, paths, raw = shards
    manifest = tmp_path / "manifest.parquet"
    summary = cli.json(
        "select",
        *paths,
        "--strategy",
        "dsir",
        "--target",
        folder / "target.jsonl",
        "--budget",
        "120",
        "-o",
        manifest,
    )
    assert summary["selected_rows"] == 120 and summary["pool_rows"] == raw.height
    assert summary["kl_reduction"] > 0
    picks = pl.read_parquet(manifest)
    # no id column: ids are row numbers counted on across the shards in input order
    assert picks.schema["id"] == pl.Int64
    picked = raw.with_row_index("id").with_columns(pl.col("id").cast(pl.Int64))
    labels = picks.join(picked, on="id").get_column("label")
    assert (labels == "plot").mean() > 5 * (raw.get_column("label") == "plot").mean()
    out = tmp_path / "selected.jsonl.gz"
    result = cli("apply", manifest, str(folder / "part-*.jsonl.gz"), "-o", out)  # quoted glob
    assert result.exit_code == 0, result.stderr
    with gzip.open(out, "rb") as f:
        rows = pl.read_ndjson(io.BytesIO(f.read()))
    assert rows.height == 120
    assert rows.get_column("id").to_list() == picks.get_column("id").to_list()
    expected = picked.join(picks.select("id"), on="id", maintain_order="right")
    assert rows.get_column("text").to_list() == expected.get_column("text").to_list()
    again = tmp_path / "again.jsonl.gz"
    assert cli("apply", manifest, *paths, "-o", again).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # gzip output is byte-identical
    prov = read_provenance(manifest)
    assert [s["path"] for s in prov["inputs"]] == [str(p) for p in paths]
    assert prov["params"]["strategy_params"]["target"] == [str(folder / "target.jsonl")]


def test_stdin_to_stdout_same_as_the_file(cli, shards, tmp_path):
    folder, paths, _ = shards
    data = b""
    for p in paths:
        with gzip.open(p) as f:
            data += f.read()
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(data)
    args = ["--strategy", "dsir", "--target", folder / "target.jsonl", "--budget", "7", "-o", "-"]
    result = cli("select", "-", *args, input=data)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in lines] == list(range(7))
    from_file = cli("select", whole, *args)
    assert from_file.stdout == result.stdout  # stdin is spooled, then read like a file


def test_repeated_targets_and_token_budget_on_the_cli(cli, shards, tmp_path):
    folder, paths, _ = shards
    out = tmp_path / "m.parquet"
    summary = cli.json(
        "select",
        *paths,
        "--strategy",
        "dsir",
        "--target",
        folder / "target.jsonl",
        "--target",
        FORTUNES,
        "--budget-tokens",
        "5000",
        "--quotas",
        "0.5,0.5",
        "--hash",
        "sha256",
        "--top-k",
        "--min-tokens",
        "5",
        "-o",
        out,
    )
    assert summary["budget_tokens"] == 5000 and summary["selected_tokens"] >= 5000
    assert set(pl.read_parquet(out).get_column("target")) == {
        str(folder / "target.jsonl"),
        str(FORTUNES),
    }


def test_cli_errors_and_exit_codes(cli, shards, tmp_path):
    folder, paths, _ = shards
    base = ["select", *paths, "--strategy", "dsir", "-o", tmp_path / "m.parquet"]
    r = cli(*base, "--budget", "5")
    assert r.exit_code == 2 and "needs a target corpus" in r.stderr
    r = cli(*base, "--target", folder / "target.jsonl")
    assert r.exit_code == 2 and "needs one budget" in r.stderr
    r = cli(*base, "--target", folder / "missing.jsonl", "--budget", "5")
    assert r.exit_code == 1 and "does not exist" in r.stderr
    r = cli(*base, "--target", folder / "target.jsonl", "--budget", "5", "--hash", "md5")
    assert r.exit_code == 2 and "must be one of" in r.stderr
    r = cli(*base, "--target", folder / "target.jsonl", "--budget", "5", "--text-col", "body")
    assert r.exit_code == 1 and "no text column 'body'" in r.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_strategies_lists_dsir(cli):
    result = cli("strategies", "--json")
    spec = next(s for s in json.loads(result.stdout) if s["name"] == "dsir")
    assert spec["needs"] == ["text"] and "target" in spec["params"]


def test_csv_gz_input_and_output(cli, shards, tmp_path):
    folder, _, raw = shards
    corpus = tmp_path / "corpus.csv.gz"
    with gzip.open(corpus, "wb") as f:
        raw.with_row_index("id").write_csv(f)
    manifest = tmp_path / "m.parquet"
    args = ["--strategy", "dsir", "--target", folder / "target.jsonl", "--budget", "9"]
    assert cli("select", corpus, *args, "-o", manifest).exit_code == 0
    out = tmp_path / "sel.csv.gz"
    result = cli("apply", manifest, corpus, "-o", out)
    assert result.exit_code == 0, result.stderr
    with gzip.open(out, "rb") as f:
        rows = pl.read_csv(io.BytesIO(f.read()))
    assert rows.get_column("id").to_list() == pl.read_parquet(manifest)["id"].to_list()
    (tmp_path / "x.parquet.gz").write_bytes(gzip.compress(b"PAR1"))
    r = cli("select", tmp_path / "x.parquet.gz", *args, "-o", tmp_path / "y.parquet")
    assert r.exit_code == 2 and "only JSON Lines and CSV can be gzip-compressed" in r.stderr


def test_duplicate_ids_across_shards_are_refused(cli, shards, tmp_path):
    folder, _, raw = shards
    part = raw.head(50).with_row_index("id")
    for name in ("a.jsonl", "b.jsonl"):  # the same ids in both shards
        part.write_ndjson(tmp_path / name)
    r = cli(
        "select",
        tmp_path / "a.jsonl",
        tmp_path / "b.jsonl",
        "--strategy",
        "dsir",
        "--target",
        folder / "target.jsonl",
        "--budget",
        "100",
        "-o",
        tmp_path / "m.parquet",
    )
    assert r.exit_code == 1 and "duplicate ids" in r.stderr
