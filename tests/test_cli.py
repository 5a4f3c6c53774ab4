"""The real CLI end to end on the bundled corpus, and every bad input it must refuse cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from .conftest import REPO, leftovers


def test_pipeline_embed_select_apply_inspect(cli, tmp_path, rt_small):
    emb, man, sub = tmp_path / "emb.parquet", tmp_path / "m.parquet", tmp_path / "subset.jsonl"
    summary = cli.json("embed", rt_small, "-o", emb)
    assert summary["rows"] == 400
    summary = cli.json("select", emb, "--strategy", "kcenter", "--budget", "40", "-o", man)
    assert summary["selected_rows"] == 40 and summary["covering_radius"] > 0
    r = cli(
        "select",
        emb,
        "--strategy",
        "random",
        "--budget",
        "5%",
        "--seed",
        "7",
        "-o",
        tmp_path / "r.parquet",
    )
    assert r.exit_code == 0, r.stderr
    assert pl.read_parquet(tmp_path / "r.parquet").height == 20
    r = cli("apply", man, rt_small, "-o", sub)
    assert r.exit_code == 0, r.stderr
    subset = pl.read_ndjson(sub)
    manifest = pl.read_parquet(man)
    assert subset.get_column("id").to_list() == manifest.get_column("id").to_list()
    corpus = pl.read_ndjson(rt_small)
    assert subset.select("id", "text", "label").equals(
        corpus.join(manifest.select("id", "rank"), on="id")
        .sort("rank")
        .select("id", "text", "label")
    )
    r = cli(
        "apply",
        man,
        rt_small,
        "-o",
        tmp_path / "orig.jsonl",
        "--order",
        "original",
        "--no-manifest-columns",
    )
    assert r.exit_code == 0
    orig = pl.read_ndjson(tmp_path / "orig.jsonl")
    assert orig.columns == corpus.columns
    assert orig.equals(corpus.filter(pl.col("id").is_in(manifest.get_column("id").implode())))
    info = cli.json("inspect", man)
    prov = info["provenance"]
    assert info["rows"] == 40 and prov["command"] == "select" and prov["seed"] == 0
    assert prov["params"]["strategy"] == "kcenter" and prov["params"]["budget_rows"] == 40
    assert prov["inputs"][0]["path"] == str(emb) and prov["inputs"][0]["rows"] == 400
    assert prov["inputs"][0]["fingerprint"].startswith("parquet-data-blake2b-128:")
    assert "select_s" in prov["timings"] and "covering_radius" in prov["metrics"]
    r = cli("inspect", man)
    assert r.exit_code == 0 and "kcenter" in r.stdout


def test_same_seed_gives_byte_identical_manifest_data(cli, tmp_path, rt_emb):
    for name in ("a", "b"):
        r = cli(
            "select",
            rt_emb,
            "-s",
            "kcenter",
            "-b",
            "25",
            "--seed",
            "3",
            "-o",
            tmp_path / f"{name}.parquet",
        )
        assert r.exit_code == 0
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.equals(b)
    pa_meta = (
        {k: v for k, v in json.loads(a.schema.metadata[b"selectkit"]).items() if k != "timings"}
        if a.schema.metadata and b"selectkit" in a.schema.metadata
        else None
    )
    from selectkit.io import read_provenance

    ma, mb = read_provenance(tmp_path / "a.parquet"), read_provenance(tmp_path / "b.parquet")
    ma.pop("timings"), mb.pop("timings")
    assert (ma == mb and pa_meta is None) or pa_meta == ma
    r = cli(
        "select", rt_emb, "-s", "kcenter", "-b", "25", "--seed", "4", "-o", tmp_path / "c.parquet"
    )
    assert not pq.read_table(tmp_path / "c.parquet").equals(a)


def test_strategies_lists_needs(cli):
    rows = json.loads(cli("strategies", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["kcenter"]["needs"] == ["embedding"] and "metric" in by_name["kcenter"]["params"]
    r = cli("strategies")
    assert r.exit_code == 0 and "kcenter" in r.stdout and "random" in r.stdout


def test_param_flag_and_npy_input(cli, tmp_path, digits_npy):
    out = tmp_path / "m.jsonl"
    r = cli("select", digits_npy, "-s", "kcenter", "-b", "10", "-p", "metric=cosine", "-o", out)
    assert r.exit_code == 0, r.stderr
    rows = pl.read_ndjson(out)
    assert rows.schema["id"] == pl.Int64 and rows.height == 10


def test_labels_column_and_label_col_none(cli, tmp_path, digits_parquet):
    frame = pl.read_parquet(digits_parquet)
    labelled = frame.with_columns(pl.when(pl.col("digit") < 9).then(pl.col("digit")).alias("label"))
    labelled.write_parquet(tmp_path / "lab.parquet")
    r = cli(
        "select", tmp_path / "lab.parquet", "-s", "kcenter", "-b", "5", "-o", tmp_path / "m.parquet"
    )
    assert r.exit_code == 0
    picked = pl.read_parquet(tmp_path / "m.parquet").join(labelled, on="id")
    assert picked.get_column("label").null_count() == 5
    r = cli(
        "select",
        tmp_path / "lab.parquet",
        "-s",
        "random",
        "-b",
        "1000",
        "-o",
        tmp_path / "x.parquet",
    )
    assert r.exit_code == 1 and "larger than the pool" in r.stderr
    r = cli(
        "select",
        tmp_path / "lab.parquet",
        "-s",
        "random",
        "-b",
        "1000",
        "--label-col",
        "none",
        "-o",
        tmp_path / "x.parquet",
    )
    assert r.exit_code == 0


def test_multiple_inputs_joined(cli, tmp_path, digits_parquet):
    frame = pl.read_parquet(digits_parquet)
    frame.select("id", "embedding").write_parquet(tmp_path / "emb.parquet")
    frame.select("id", pl.col("digit").cast(pl.Int32).alias("cluster")).reverse().write_ndjson(
        tmp_path / "cl.jsonl"
    )
    out = tmp_path / "m.parquet"
    r = cli(
        "select",
        tmp_path / "emb.parquet",
        tmp_path / "cl.jsonl",
        "-s",
        "kcenter",
        "-b",
        "12",
        "-o",
        out,
    )
    assert r.exit_code == 0, r.stderr
    m = pl.read_parquet(out).join(frame, on="id")
    assert m.get_column("cluster").to_list() == m.get_column("digit").to_list()


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


BAD_SELECT = [
    # (name, file content, extra args, exit code, message fragment)
    ("missing", None, [], 1, "does not exist"),
    ("empty.jsonl", "", [], 1, "is empty"),
    ("noemb.jsonl", '{"id": 1, "text": "a"}\n', [], 1, "needs column 'embedding'"),
    (
        "dups.jsonl",
        '{"id": 1, "embedding": [1.0]}\n{"id": 1, "embedding": [2.0]}\n',
        [],
        1,
        "duplicate ids",
    ),
    ("nan.jsonl", '{"id": 1, "embedding": [1.0, NaN]}\n', [], 1, "not valid JSON Lines"),
    (
        "ragged.jsonl",
        '{"id": 1, "embedding": [1.0, 2.0]}\n{"id": 2, "embedding": [1.0]}\n',
        [],
        1,
        "ragged",
    ),
    (
        "null.jsonl",
        '{"id": 1, "embedding": [1.0]}\n{"id": 2, "embedding": null}\n',
        [],
        1,
        "null in 1 rows",
    ),
    ("corrupt.parquet", b"PAR1garbagePAR1", [], 1, "not a readable Parquet"),
    ("file.txt", "hello", [], 2, "cannot tell the format"),
]


@pytest.mark.parametrize(("name", "content", "extra", "code", "fragment"), BAD_SELECT)
def test_bad_select_inputs(cli, tmp_path, name, content, extra, code, fragment):
    src = tmp_path / name
    if content is not None:
        write(src, content)
    out = tmp_path / "out.parquet"
    r = cli("select", src, "-s", "kcenter", "-b", "1", "-o", out, *extra)
    assert r.exit_code == code, (r.stdout, r.stderr)
    assert fragment in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr  # one line
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not out.exists() and leftovers(tmp_path) == []


def test_nan_and_inf_vectors_are_refused(cli, tmp_path):
    for bad in (np.nan, np.inf):
        x = np.ones((4, 3), dtype=np.float32)
        x[2, 1] = bad
        pl.DataFrame({"id": [1, 2, 3, 4], "embedding": x}).write_parquet(tmp_path / "v.parquet")
        np.save(tmp_path / "v.npy", x)
        for src in ("v.parquet", "v.npy"):
            r = cli(
                "select", tmp_path / src, "-s", "kcenter", "-b", "1", "-o", tmp_path / "o.parquet"
            )
            assert r.exit_code == 1 and "NaN or infinite values (first at row 2)" in r.stderr
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize(
    ("budget", "code", "fragment"),
    [
        ("0", 2, "selects nothing"),
        ("-3", 2, "negative"),
        ("401", 1, "larger than the pool of 400"),
        ("lots", 2, "not a count"),
        ("150%", 2, "above 1"),
    ],
)
def test_bad_budgets(cli, tmp_path, rt_emb, budget, code, fragment):
    out = tmp_path / "out.parquet"
    r = cli("select", rt_emb, "-s", "random", "-b", budget, "-o", out)
    assert r.exit_code == code and fragment in r.stderr
    assert not out.exists()


def test_usage_errors(cli, tmp_path, rt_emb):
    out = tmp_path / "o.parquet"
    cases = [
        (["select", rt_emb, "-s", "nope", "-b", "1", "-o", out], "unknown strategy"),
        (
            ["select", rt_emb, "-s", "kcenter", "-b", "1", "-p", "metric=manhattan", "-o", out],
            "must be one of",
        ),
        (
            ["select", rt_emb, "-s", "kcenter", "-b", "1", "-p", "zzz=1", "-o", out],
            "has no parameter",
        ),
        (["select", rt_emb, "-s", "kcenter", "-b", "1", "-p", "metric", "-o", out], "KEY=VALUE"),
        (["select", rt_emb, "-s", "kcenter", "-b", "1", "-o", rt_emb], "also an input"),
        (
            ["select", rt_emb, "-s", "kcenter", "-b", "1", "-o", tmp_path / "no" / "o.parquet"],
            "does not exist",
        ),
        (["select", rt_emb, "-s", "kcenter", "-b", "1"], "Missing option"),
    ]
    for args, fragment in cases:
        r = cli(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)
    assert not out.exists()


def test_failed_run_leaves_existing_output_intact(cli, tmp_path, rt_emb):
    out = tmp_path / "keep.parquet"
    out.write_bytes(b"previous result")
    r = cli("select", rt_emb, "-s", "random", "-b", "100000", "-o", out)
    assert r.exit_code == 1 and out.read_bytes() == b"previous result"


def test_embed_errors(cli, tmp_path, rt_small):
    r = cli(
        "embed",
        write(tmp_path / "c.jsonl", '{"id": 1, "body": "x"}\n'),
        "-o",
        tmp_path / "e.parquet",
    )
    assert r.exit_code == 1 and "no text column 'text'" in r.stderr and "--text-col" in r.stderr
    r = cli("embed", rt_small, "-o", tmp_path / "e.parquet", "-e", "bogus")
    assert r.exit_code == 2 and "unknown embedder" in r.stderr
    r = cli("embed", rt_small, "-o", tmp_path / "e.csv")
    assert r.exit_code == 2 and "CSV cannot hold" in r.stderr
    assert not any(tmp_path.glob("e.*")) and leftovers(tmp_path) == []


def test_apply_errors(cli, tmp_path, rt_small, rt_emb):
    m = tmp_path / "m.parquet"
    assert cli("select", rt_emb, "-s", "random", "-b", "5", "-o", m).exit_code == 0
    other = write(tmp_path / "other.jsonl", '{"id": "zzz", "text": "a"}\n')
    r = cli("apply", m, other, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and "5 of the 5 manifest ids are not in" in r.stderr
    ints = write(tmp_path / "ints.jsonl", '{"id": 1, "text": "a"}\n')
    r = cli("apply", m, ints, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and "ids of" in r.stderr
    r = cli("apply", rt_emb, rt_small, "-o", tmp_path / "s.jsonl")
    assert r.exit_code == 1 and "not a manifest" in r.stderr
    r = cli("apply", m, rt_small, "-o", tmp_path / "s.jsonl", "--order", "random")
    assert r.exit_code == 2
    assert not (tmp_path / "s.jsonl").exists()


def test_help_for_every_command(cli):
    for cmd in ("embed", "select", "apply", "inspect", "strategies", "demo"):
        r = cli(cmd, "--help")
        assert r.exit_code == 0 and "Usage" in r.stdout, cmd
    assert cli("--version").stdout.startswith("selectkit ")


def test_demo_runs_on_bundled_data(cli, tmp_path):
    summary = cli.json("demo", "--out", tmp_path / "demo", "--budget", "100")
    assert summary["rows"] == 3000
    kc, rnd = summary["selections"]["kcenter"], summary["selections"]["random"]
    assert kc["max_distance"] < rnd["max_distance"]
    assert sum(kc["labels"].values()) == 100
    for path in summary["outputs"].values():
        assert Path(path).exists()


def run_shell(cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_subprocess_smoke_pipes_through_stdin_and_stdout(tmp_path, rt_small):
    """The installed console script, chained with real pipes: stdout carries only data."""
    proc = run_shell(
        f"cat {rt_small} | selectkit embed - -o - | selectkit select - --strategy random --budget 10 -o -",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 10 and [r["rank"] for r in rows] == list(range(10))
    ids = {json.loads(line)["id"] for line in rt_small.read_text().splitlines()}
    assert {r["id"] for r in rows} <= ids
    bad = run_shell("selectkit select nothing.parquet -s random -b 1 -o x.parquet", tmp_path)
    assert bad.returncode == 1 and bad.stdout == "" and "does not exist" in bad.stderr
    usage = run_shell("selectkit select", tmp_path)
    assert usage.returncode == 2


def test_python_module_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "selectkit", "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0 and proc.stdout.startswith("selectkit")


def test_numpy_output_of_embed_is_refused_for_streams(cli, tmp_path, rt_small):
    r = cli("embed", rt_small, "-o", tmp_path / "e.npy")
    assert r.exit_code == 2 and ".parquet" in r.stderr
    assert np.__name__ == "numpy"


def test_missing_named_id_column_is_an_error(cli, tmp_path, rt_small, rt_emb):
    r = cli(
        "select",
        rt_emb,
        "-s",
        "random",
        "-b",
        "1",
        "--id-col",
        "doc_id",
        "-o",
        tmp_path / "m.parquet",
    )
    assert r.exit_code == 1 and "no id column 'doc_id'" in r.stderr
    r = cli("embed", rt_small, "--id-col", "doc_id", "-o", tmp_path / "e.parquet")
    assert r.exit_code == 1 and "no id column 'doc_id'" in r.stderr
    assert not any(tmp_path.iterdir())


def test_provenance_records_the_command_line(tmp_path, rt_emb):
    proc = run_shell(f"selectkit -q select {rt_emb} -s random -b 3 --seed 5 -o m.parquet", tmp_path)
    assert proc.returncode == 0, proc.stderr
    from selectkit.io import read_provenance

    argv = read_provenance(tmp_path / "m.parquet")["argv"]
    assert argv[:3] == ["selectkit", "-q", "select"] and "--seed" in argv


def test_error_messages_keep_brackets(cli, tmp_path):
    r = cli(
        "select",
        tmp_path / "data[bold].parquet",
        "-s",
        "random",
        "-b",
        "1",
        "-o",
        tmp_path / "o.parquet",
    )
    assert r.exit_code == 1 and "data[bold].parquet" in r.stderr


def test_closed_pipe_is_not_an_internal_error(tmp_path):
    proc = run_shell(
        f"selectkit embed {REPO / 'data_samples' / 'fortunes.jsonl'} -o - | head -c 100", tmp_path
    )
    assert len(proc.stdout) == 100
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    status = run_shell(
        f"selectkit embed {REPO / 'data_samples' / 'fortunes.jsonl'} -o - | head -c 100 >/dev/null; "
        "echo ${PIPESTATUS[0]}",
        tmp_path,
    )
    assert status.stdout.strip().splitlines()[-1] == "141"


def test_embed_option_errors_are_usage_errors_before_loading(cli, tmp_path, rt_small):
    out = tmp_path / "e.parquet"
    for args, fragment in [
        (["-e", "wordllama", "--dim", "100"], "64, 128 or 256"),
        (["-e", "minilm", "--dim", "100"], "384 dimensions"),
        (["-e", "minilm", "--pooling", "max"], "not one of"),
        (["--pooling", "cls"], "minilm embedder only"),
        (["--keep", "genre"], None),
    ]:
        r = cli("embed", rt_small, "-o", out, *args)
        if fragment is None:
            assert r.exit_code == 1 and "no column 'genre'; drop it from --keep" in r.stderr
        else:
            assert r.exit_code == 2 and fragment in r.stderr, (args, r.stderr)
    assert not out.exists()


def test_input_format_for_stdin_parquet_and_unknown_extensions(cli, tmp_path, rt_small, rt_emb):
    frame = pl.read_ndjson(rt_small)
    frame.write_parquet(tmp_path / "c.parquet")
    proc = run_shell(
        f"cat {tmp_path / 'c.parquet'} | selectkit -q embed - --input-format parquet -o e.parquet",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert pl.read_parquet(tmp_path / "e.parquet").height == 400
    (tmp_path / "emb.dat").write_bytes(rt_emb.read_bytes())
    r = cli(
        "select",
        tmp_path / "emb.dat",
        "--input-format",
        "parquet",
        "-s",
        "random",
        "-b",
        "3",
        "-o",
        tmp_path / "m.jsonl",
    )
    assert r.exit_code == 0, r.stderr
    r = cli("select", rt_emb, "-s", "random", "-b", "3", "-o", tmp_path / "m.txt")
    assert r.exit_code == 2 and "cannot tell which format to write" in r.stderr


def test_string_cluster_column_is_refused(cli, tmp_path, rt_emb, rt_small):
    r = cli(
        "select",
        rt_emb,
        rt_small,
        "-s",
        "random",
        "-b",
        "4",
        "--label-col",
        "none",
        "--cluster-col",
        "label",
        "-o",
        tmp_path / "m.parquet",
    )
    assert r.exit_code == 1 and "not integer cluster ids" in r.stderr


def test_warning_for_ignored_duplicate_columns(tmp_path, rt_emb):
    pl.read_parquet(rt_emb).write_parquet(tmp_path / "again.parquet")
    proc = run_shell(
        f"selectkit select {rt_emb} {tmp_path / 'again.parquet'} -s random -b 2 -o m.parquet",
        tmp_path,
    )
    assert proc.returncode == 0 and "warning: column(s) ['embedding']" in proc.stderr
    quiet = run_shell(
        f"selectkit -q select {rt_emb} {tmp_path / 'again.parquet'} -s random -b 2 -o m.parquet",
        tmp_path,
    )
    assert quiet.stderr == ""


def test_apply_records_metrics(cli, tmp_path, rt_emb, rt_small):
    m = tmp_path / "m.parquet"
    assert cli("select", rt_emb, "-s", "random", "-b", "7", "-o", m).exit_code == 0
    summary = cli.json("apply", m, rt_small, "-o", tmp_path / "s.parquet")
    assert summary["rows"] == 7 and summary["table_rows"] == 400
    from selectkit.io import read_provenance

    prov = read_provenance(tmp_path / "s.parquet")
    assert (
        prov["command"] == "apply" and "apply_s" in prov["timings"] and prov["metrics"]["rows"] == 7
    )


def test_unwritable_output_folder_is_a_clean_error(cli, rt_emb):
    """/proc refuses new files even for root: the OSError becomes one line and exit 1."""
    r = cli("select", rt_emb, "-s", "random", "-b", "2", "-o", "/proc/selectkit-test.parquet")
    assert r.exit_code == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
