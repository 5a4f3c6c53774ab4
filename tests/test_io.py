"""The I/O layer on real files: every format, the join, atomic writes, provenance, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

from selectkit.errors import SelectkitError, SelectkitUsageError
from selectkit.io import Provenance, read_provenance, read_table, write_table
from selectkit.io.tables import iter_batches
from selectkit.io.write import TableWriter
from selectkit.pool import Columns, load_pool

from .conftest import leftovers


def test_read_every_format_gives_same_table(tmp_path, rt_small):
    frame = pl.read_ndjson(rt_small)
    frame.write_parquet(tmp_path / "t.parquet")
    frame.write_csv(tmp_path / "t.csv")
    for name in ("t.parquet", "t.csv"):
        table = read_table(tmp_path / name)
        assert table.frame.equals(frame), name
        assert table.source.rows == 400
        assert re.match(r"(parquet-data-)?blake2b-128:[0-9a-f]{32}$", table.source.fingerprint)
    assert read_table(rt_small).frame.equals(frame)


def test_npy_is_memory_mapped_with_row_number_ids(digits_npy, digits):
    table = read_table(digits_npy)
    assert isinstance(table.arrays["embedding"], np.memmap)
    assert table.frame.get_column("id").to_list() == list(range(len(digits[0])))
    np.testing.assert_array_equal(table.arrays["embedding"], digits[0])


def test_table_without_id_gets_row_numbers(tmp_path):
    path = tmp_path / "noid.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert read_table(path).frame.get_column("id").to_list() == [0, 1]


def test_stdin_jsonl(rt_small):
    with open(rt_small, "rb") as f:
        table = read_table("-", stdin=f)
    assert table.height == 400 and table.source.path == "-"


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.parquet", None, "does not exist"),
        ("empty.jsonl", b"", "empty"),
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet"),
        ("bad.jsonl", b'{"id": 1, "text": \n', "not valid JSON Lines"),
        ("dup.jsonl", b'{"id": 1}\n{"id": 1}\n{"id": 2}\n', "duplicate ids"),
        ("nullid.jsonl", b'{"id": 1}\n{"id": null}\n', "null in 1 rows"),
        ("zero.csv", b"id,text\n", "no rows"),
        ("vec.npy", None, "NaN"),
    ],
)
def test_bad_tables_fail_with_the_file_named(tmp_path, name, content, match):
    path = tmp_path / name
    if name == "vec.npy":
        arr = np.ones((5, 3), dtype=np.float32)
        arr[2, 1] = np.nan
        np.save(path, arr)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(SelectkitError, match=match) as info:
        read_table(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_unknown_extension_is_usage_error(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SelectkitUsageError, match="input_format="):  # Python speaks Python
        read_table(tmp_path / "x.txt")


def test_ragged_and_null_vectors_are_refused(tmp_path):
    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text('{"id":1,"embedding":[1.0,2.0]}\n{"id":2,"embedding":[1.0]}\n')
    with pytest.raises(SelectkitError, match="ragged"):
        _ = load_pool([ragged]).embeddings
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text('{"id":1,"embedding":[1.0,2.0]}\n{"id":2,"embedding":null}\n')
    with pytest.raises(SelectkitError, match="null in 1 rows"):
        _ = load_pool([nulls]).embeddings
    inner = tmp_path / "inner.jsonl"
    inner.write_text('{"id":1,"embedding":[1.0,2.0]}\n{"id":2,"embedding":[1.0,null]}\n')
    with pytest.raises(SelectkitError, match="null entries"):
        _ = load_pool([inner]).embeddings
    nan = tmp_path / "nan.parquet"
    pl.DataFrame(
        {"id": [1, 2], "embedding": np.array([[1, 2], [np.nan, 1]], np.float32)}
    ).write_parquet(nan)
    with pytest.raises(SelectkitError, match="NaN"):
        _ = load_pool([nan]).embeddings


def test_join_aligns_rows_by_id(tmp_path, digits):
    x, y = digits
    ids = [f"d{i}" for i in range(len(x))]
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(tmp_path / "emb.parquet")
    # labels table in reverse order with extra rows: rows must follow the first table
    labels = pl.DataFrame({"id": [*ids[::-1], "extra"], "label": [*y[::-1].tolist(), 0]})
    labels.write_parquet(tmp_path / "lab.parquet")
    pool = load_pool([tmp_path / "emb.parquet", tmp_path / "lab.parquet"])
    assert pool.frame.get_column("label").to_list() == y.tolist()
    np.testing.assert_array_equal(pool.embeddings, x)


def test_join_reorders_npy_vectors(tmp_path, digits):
    x, _ = digits
    np.save(tmp_path / "v.npy", x[:50])
    order = np.arange(50)[::-1]
    pl.DataFrame({"id": order, "label": [None] * 50}).write_parquet(tmp_path / "ids.parquet")
    pool = load_pool([tmp_path / "ids.parquet", tmp_path / "v.npy"])
    np.testing.assert_array_equal(pool.embeddings, x[:50][order])


def test_join_missing_ids_and_type_mismatch(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "x": [1, 2]}).write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"id": ["a"], "y": [1]}).write_parquet(tmp_path / "b.parquet")
    pl.DataFrame({"id": [1, 2], "y": [1, 2]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(SelectkitError, match="lacks 1 of the 2 ids"):
        load_pool([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    with pytest.raises(SelectkitError, match="one type"):
        load_pool([tmp_path / "a.parquet", tmp_path / "c.parquet"])


def test_missing_column_names_the_command_that_makes_it(tmp_path):
    pl.DataFrame({"id": [1, 2], "text": ["a", "b"]}).write_parquet(tmp_path / "t.parquet")
    pool = load_pool([tmp_path / "t.parquet"])
    # from Python the fix is spelled in Python (the CLI's --embedding-col: tests/test_api_parity.py)
    with pytest.raises(SelectkitError, match=r"selectkit embed.*columns=Columns\(embedding="):
        pool.require(["embedding"], "strategy 'kcenter'")
    pool = load_pool([tmp_path / "t.parquet"], columns=Columns(embedding="text"))
    assert pool.has("embedding")


def test_write_roundtrip_all_formats_and_provenance(tmp_path):
    frame = pl.DataFrame({"id": ["a", "b"], "rank": [0, 1], "score": [0.5, None]})
    prov = Provenance(command="test", params={"k": 1}, seed=3)
    for ext in ("parquet", "jsonl", "csv"):
        write_table(frame, tmp_path / f"o.{ext}", provenance=prov)
        assert read_table(tmp_path / f"o.{ext}").frame.equals(frame), ext
    meta = read_provenance(tmp_path / "o.parquet")
    assert meta["command"] == "test" and meta["seed"] == 3 and meta["params"] == {"k": 1}
    assert leftovers(tmp_path) == []


def test_npy_output_needs_row_number_ids(tmp_path, digits):
    x, _ = digits
    write_table(pl.DataFrame({"id": np.arange(len(x)), "embedding": x}), tmp_path / "v.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), x)
    with pytest.raises(SelectkitUsageError, match="cannot keep the ids"):
        write_table(pl.DataFrame({"id": ["a"], "embedding": x[:1]}), tmp_path / "w.npy")


def test_failed_write_leaves_existing_output_intact(tmp_path):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(RuntimeError), TableWriter(out) as writer:
        writer.write(pl.DataFrame({"id": [1]}))
        raise RuntimeError("boom")
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


def test_csv_cannot_hold_vectors(tmp_path, digits):
    with pytest.raises(SelectkitUsageError, match="CSV cannot hold"):
        write_table(pl.DataFrame({"id": [0], "embedding": digits[0][:1]}), tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_iter_batches_streams_every_format(tmp_path, rt_small):
    frame = pl.read_ndjson(rt_small)
    frame.write_parquet(tmp_path / "t.parquet", row_group_size=100)
    frame.write_csv(tmp_path / "t.csv")
    for path in (rt_small, tmp_path / "t.parquet", tmp_path / "t.csv"):
        source, batches = iter_batches(path, columns=["id", "text"], batch_size=64)
        parts = list(batches)
        assert max(p.height for p in parts) <= 100
        assert pl.concat(parts).equals(frame.select("id", "text")), path
        assert source.rows == 400 and source.fingerprint


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    """A real SIGINT in the middle of a streamed write: exit 130, no output, no temp file."""
    out = tmp_path / "out.parquet"
    script = textwrap.dedent(
        f"""
        import sys, time, polars as pl
        from selectkit.io.write import TableWriter
        from selectkit.cli._run import run
        import typer
        def work():
            with TableWriter({str(out)!r}) as w:
                w.write(pl.DataFrame({{"id": [1, 2]}}))
                print("writing", flush=True)
                time.sleep(30)
        try:
            run(work)
        except typer.Exit as e:
            sys.exit(e.exit_code)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_provenance_records_fingerprints(tmp_path, rt_small):
    from selectkit.io.tables import fingerprint_file

    fp = fingerprint_file(rt_small)
    assert read_table(rt_small).source.fingerprint == fp
    (tmp_path / "copy.jsonl").write_bytes(rt_small.read_bytes() + b'{"id":"new","text":"x"}\n')
    assert fingerprint_file(tmp_path / "copy.jsonl") != fp
    assert json.loads(Provenance(command="x", seed=1).to_json())["seed"] == 1
    assert os.path.exists(rt_small)


def test_parquet_fingerprint_ignores_provenance_metadata(tmp_path):
    """Two artefacts with the same data but different provenance (timings) fingerprint alike;
    a change of data does not."""
    from selectkit.io.tables import fingerprint_file

    frame = pl.DataFrame({"id": ["a", "b"], "rank": [0, 1]})
    write_table(
        frame, tmp_path / "a.parquet", provenance=Provenance(command="x", timings={"t_s": 1.0})
    )
    write_table(
        frame, tmp_path / "b.parquet", provenance=Provenance(command="x", timings={"t_s": 2.0})
    )
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "b.parquet").read_bytes()
    fa, fb = fingerprint_file(tmp_path / "a.parquet"), fingerprint_file(tmp_path / "b.parquet")
    assert fa == fb and fa.startswith("parquet-data-blake2b-128:")
    write_table(frame.with_columns(pl.col("rank") + 1), tmp_path / "c.parquet")
    assert fingerprint_file(tmp_path / "c.parquet") != fa


def test_outputs_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_table(pl.DataFrame({"id": [1]}), tmp_path / "o.parquet")
    finally:
        os.umask(old)
    assert (tmp_path / "o.parquet").stat().st_mode & 0o777 == 0o644


def test_stdin_parquet_streams(tmp_path, rt_small):
    frame = pl.read_ndjson(rt_small)
    frame.write_parquet(tmp_path / "t.parquet")
    with open(tmp_path / "t.parquet", "rb") as f:
        source, batches = iter_batches("-", columns=["id", "text"], input_format="parquet", stdin=f)
        assert pl.concat(list(batches)).equals(frame.select("id", "text"))
    assert source.rows == 400


def test_provenance_is_in_the_arrow_schema_too(cli, tmp_path, rt_emb):
    """pyarrow's read_schema / read_table (what pandas and Ray read) see the provenance."""
    import pyarrow.parquet as pq

    out = tmp_path / "m.parquet"
    assert cli("select", rt_emb, "-s", "random", "-b", "5", "-o", out).exit_code == 0
    from_schema = json.loads(pq.read_schema(out).metadata[b"selectkit"])
    from_table = json.loads(pq.read_table(out).schema.metadata[b"selectkit"])
    from_footer = json.loads(pq.ParquetFile(out).metadata.metadata[b"selectkit"])
    assert from_schema == from_table == from_footer and from_schema["command"] == "select"
    assert pl.read_parquet(out).height == 5
