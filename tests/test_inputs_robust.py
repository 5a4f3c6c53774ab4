"""Inputs data jobs produce every day, through the real CLI in a subprocess (issue 11, item 5).

Each bad input must fail with exit 1 and one `error:` line naming the file (never an internal
error) and leave no output; each odd-but-valid input (BOM, gzip on stdin, FIFOs, empty shards,
a column null in the first batch) must simply work.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]


def sk(*args: object, stdin: bytes | None = None, quiet: bool = True):
    """Run `python -m selectkit` on this checkout; returns the CompletedProcess (bytes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    flags = ["-q"] if quiet else []
    return subprocess.run(
        [sys.executable, "-m", "selectkit", *flags, *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
    )


def assert_one_error(result, name: str, out: Path, *, code: int = 1) -> str:
    """Exit ``code``, stderr exactly one `error:` line naming ``name``, and no output left."""
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert result.returncode == code, result.stderr.decode()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and len(lines) == 1, lines
    assert "internal error" not in errors[0] and "Traceback" not in errors[0]
    assert name in errors[0], errors[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    return errors[0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def corpus(n: int, start: int = 0) -> list[dict]:
    return [{"id": i, "text": f"document {i} about topic {i % 7}"} for i in range(start, start + n)]


def test_column_null_in_first_batch_then_text_is_kept(tmp_path):
    rows = [{**r, "note": None if r["id"] < 9000 else f"n{r['id']}"} for r in corpus(10_000)]
    plain = write_jsonl(tmp_path / "n.jsonl", rows)
    packed = tmp_path / "n.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for src in (plain, packed):  # whole-file schema, and the streamed first-batch schema
        out = tmp_path / f"{src.name}.parquet"
        r = sk("embed", src, "--keep", "note", "-o", out)
        assert r.returncode == 0, r.stderr.decode()
        note = pl.read_parquet(out).get_column("note")
        assert note.dtype == pl.String and note.null_count() == 9000 and note[9000] == "n9000"


def test_string_id_late_in_jsonl_is_refused_naming_row_and_value(tmp_path):
    rows = corpus(16_000)
    rows[15_000]["id"] = "x15000"
    plain = write_jsonl(tmp_path / "sid.jsonl", rows)
    packed = tmp_path / "sid.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for src in (plain, packed):
        out = tmp_path / "e.parquet"
        line = assert_one_error(sk("embed", src, "-o", out), src.name, out)
        assert "mixes id kinds" in line and "row 15000" in line and "'x15000'" in line


@pytest.fixture
def manifest(tmp_path) -> tuple[Path, Path]:
    """A corpus of 200 rows and a manifest of 5 of its ids made by the CLI."""
    src = write_jsonl(tmp_path / "corpus.jsonl", corpus(200))
    emb, man = tmp_path / "emb.parquet", tmp_path / "man.parquet"
    assert sk("embed", src, "-o", emb).returncode == 0
    assert sk("select", emb, "-s", "random", "-b", "5", "-o", man).returncode == 0
    return src, man


def test_truncated_gzip_is_one_error_for_embed_and_apply(tmp_path, manifest):
    src, man = manifest
    data = gzip.compress(src.read_bytes() * 30)
    bad = tmp_path / "cut.jsonl.gz"
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o.parquet"
    line = assert_one_error(sk("embed", bad, "-o", out), "cut.jsonl.gz", out)
    assert "truncated" in line
    out = tmp_path / "o.jsonl"
    assert_one_error(sk("apply", man, bad, "-o", out), "cut.jsonl.gz", out)


def test_apply_on_a_corpus_with_duplicate_ids_names_the_id(tmp_path, manifest):
    _src, man = manifest
    picked = pl.read_parquet(man).get_column("id")[0]
    rows = [*corpus(200), {"id": int(picked), "text": "a second row with this id"}]
    dup = write_jsonl(tmp_path / "dup.jsonl", rows)
    out = tmp_path / "o.jsonl"
    line = assert_one_error(sk("apply", man, dup, "-o", out), "dup.jsonl", out)
    assert "duplicate ids" in line and f"{picked!r}" in line


@pytest.mark.parametrize(
    ("kind", "ids", "message"),
    [
        ("null", [None, *range(1, 40)], "is null in 1 rows (first at row 0)"),
        ("float", [i + 0.5 for i in range(40)], "type Float64"),
        ("bool", [i % 2 == 0 for i in range(40)], "type Boolean"),
        ("mixed", [i if i % 2 else f"s{i}" for i in range(40)], "mixes id kinds"),
    ],
)
def test_embed_refuses_the_ids_select_refuses(tmp_path, kind, ids, message):
    texts = write_jsonl(tmp_path / f"{kind}.jsonl", [
        {"id": v, "text": f"text number {i}"} for i, v in enumerate(ids)
    ])  # fmt: skip
    out = tmp_path / "e.parquet"
    line = assert_one_error(sk("embed", texts, "-o", out), texts.name, out)
    assert message in line
    # select reads ids through the same check and refuses them with the same words
    vectors = write_jsonl(tmp_path / f"{kind}-v.jsonl", [
        {"id": v, "embedding": [float(i), 1.0]} for i, v in enumerate(ids)
    ])  # fmt: skip
    out = tmp_path / "m.parquet"
    line = assert_one_error(sk("select", vectors, "-s", "random", "-b", "3", "-o", out),
                            vectors.name, out)  # fmt: skip
    assert message in line


def test_vectors_beyond_float32_are_refused_with_file_and_row(tmp_path):
    x = np.random.default_rng(0).random((50, 4))
    x[7, 2] = 1e39  # finite in float64, inf in float32
    npy = tmp_path / "big.npy"
    np.save(npy, x)
    table = tmp_path / "big.parquet"
    pl.DataFrame({"id": range(50), "embedding": x.tolist()}).write_parquet(table)
    for src in (npy, table):
        out = tmp_path / "m.parquet"
        r = sk("select", src, "-s", "random", "-b", "3", "--json", "-o", out)
        line = assert_one_error(r, src.name, out)
        assert "first at row 7" in line and b"Infinity" not in r.stdout


def test_empty_shards_are_skipped_and_all_empty_is_an_error(tmp_path, manifest):
    _src, man = manifest
    rows = corpus(200)
    first = write_jsonl(tmp_path / "part-0.jsonl", rows[:100])
    second = write_jsonl(tmp_path / "part-2.jsonl", rows[100:])
    zero_bytes = tmp_path / "part-1.jsonl"
    zero_bytes.write_bytes(b"")
    zero_rows = tmp_path / "part-3.parquet"
    pl.DataFrame(schema={"id": pl.Int64, "text": pl.String}).write_parquet(zero_rows)
    out = tmp_path / "subset.jsonl"
    r = sk("apply", man, first, zero_bytes, second, zero_rows, "-o", out, quiet=False)
    assert r.returncode == 0, r.stderr.decode()
    assert b"part-1.jsonl' is empty (no rows); skipped" in r.stderr
    assert b"part-3.parquet' is empty (no rows); skipped" in r.stderr
    assert pl.read_ndjson(out).height == 5
    out = tmp_path / "none.jsonl"
    assert_one_error(sk("apply", man, zero_bytes, zero_rows, "-o", out), "part-1.jsonl", out)


def test_fifo_and_process_substitution_are_read_as_streams(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(300))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()))
    writer.start()
    out = tmp_path / "fifo.parquet"
    r = sk("embed", fifo, "--input-format", "jsonl", "-o", out)
    writer.join(timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert pl.read_parquet(out).height == 300
    out = tmp_path / "subst.parquet"  # <(...) is /dev/fd/N: no extension, format by content
    command = f"{sys.executable} -m selectkit -q embed <(gzip -c {src}) -o {out}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", "-c", command], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert pl.read_parquet(out).get_column("id").to_list() == list(range(300))


def test_dsir_and_inspect_read_a_process_substitution(tmp_path):
    # DSIR reads its pool twice (histograms, then top-k): a pipe is spooled once, not seen empty
    src = write_jsonl(tmp_path / "c.jsonl", corpus(300))
    out = tmp_path / "dsir.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = (
        f"{sys.executable} -m selectkit -q select <(gzip -c {src}) --strategy dsir "
        f"--target {src} --budget 40 -o {out}"
    )
    r = subprocess.run(["bash", "-c", command], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    assert pl.read_parquet(out).height == 40
    command = f"{sys.executable} -m selectkit inspect --json <(cat {out})"
    r = subprocess.run(["bash", "-c", command], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    info = json.loads(r.stdout)
    assert (info["format"], info["rows"]) == ("parquet", 40)


def test_gzip_is_detected_by_content_on_stdin_and_in_files(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", corpus(120))
    packed = gzip.compress(src.read_bytes())
    out = tmp_path / "stdin.parquet"
    r = sk("embed", "-", "-o", out, stdin=packed)
    assert r.returncode == 0, r.stderr.decode()
    assert pl.read_parquet(out).height == 120
    misnamed = tmp_path / "really-gzip.jsonl"
    misnamed.write_bytes(packed)
    out = tmp_path / "file.parquet"
    r = sk("embed", misnamed, "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    assert pl.read_parquet(out).height == 120


def test_utf8_bom_is_dropped_in_jsonl_and_csv(tmp_path):
    bom = b"\xef\xbb\xbf"
    rows = corpus(60, start=100)  # ids 100.. so that row numbers would be wrong
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(bom + "".join(json.dumps(r) + "\n" for r in rows).encode())
    csv = tmp_path / "bom.csv"
    csv.write_bytes(bom + b"id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows).encode())
    for src in (jsonl, csv):
        out = tmp_path / f"{src.suffix[1:]}.parquet"
        r = sk("embed", src, "-o", out)
        assert r.returncode == 0, r.stderr.decode()
        assert pl.read_parquet(out).get_column("id").to_list() == list(range(100, 160))


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b'{"id": 100, "text": "caf\xe9 in latin-1"}\n', "line 101: byte 0xe9 at column 25"),
        (b'{"id": 100, "text": "unterminated\n', "line 101 is not valid JSON Lines"),
        (b"[100, 101]\n", "line 101 is not valid JSON Lines: not a JSON object"),
    ],
)
def test_a_bad_line_is_reported_at_its_line_number(tmp_path, bad_line, message):
    lines = [(json.dumps(r) + "\n").encode() for r in corpus(200)]
    lines[100] = bad_line
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"".join(lines))
    out = tmp_path / "e.parquet"
    line = assert_one_error(sk("embed", src, "-o", out), "bad.jsonl", out)
    assert message in line


def test_a_bytes_column_to_text_output_is_refused_before_writing(tmp_path):
    """polars panics when asked to write raw bytes as JSON: refuse it naming the column."""
    table = tmp_path / "blobs.parquet"
    pl.DataFrame(
        {"id": [0, 1, 2], "text": ["a b", "c d", "e f"], "blob": [b"\x00\xff", b"x", b"y"]}
    ).write_parquet(table)
    manifest = tmp_path / "m.parquet"
    pl.DataFrame({"id": [0, 2], "rank": [0, 1]}).write_parquet(manifest)
    out = tmp_path / "subset.jsonl"
    out.write_text("old\n")
    result = sk("apply", manifest, table, "-o", out)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr.decode()
    assert "column 'blob' holds raw bytes" in lines[0] and "panicked" not in lines[0]
    assert out.read_text() == "old\n"


def test_json_summaries_are_valid_json_whatever_the_numbers(capsys):
    """JSON has no Infinity or NaN: such values become null, never invalid output."""
    from selectkit.cli._run import report

    report(
        {"a": float("inf"), "b": [1.0, float("nan")], "c": {"d": -float("inf")}},
        as_json=True,
        title="x",
    )
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [1.0, None], "c": {"d": None}}
