"""Dataset folders (issue 13 item 2): the writer, its completion record, --resume, the readers.

Everything runs on the real Rotten Tomatoes corpus, cut into shards of rows; parts are real
Parquet files written through the kernel-side ``write_part`` and read back with pyarrow and
polars directly, never through the code under test alone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from selectkit.cli import app
from selectkit.console import is_quiet, set_quiet
from selectkit.errors import (
    SelectkitDataError,
    SelectkitError,
    SelectkitMismatchError,
    SelectkitUsageError,
)
from selectkit.inspect import inspect_file
from selectkit.io import (
    DatasetRecord,
    DatasetWriter,
    PartRecord,
    Provenance,
    check_output_path,
    dataset_parts,
    is_folder_output,
    iter_batches,
    output_group,
    read_provenance,
    read_record,
    read_table,
    write_part,
    write_table,
)
from selectkit.io.dataset import (
    KEPT,
    PROGRESS_NAME,
    RECORD_NAME,
    dataset_fingerprint,
    identity_changes,
    staging_of,
)
from selectkit.io.provenance import METADATA_KEY
from selectkit.io.tables import expand_inputs, fingerprint_file
from selectkit.io.vector_source import open_vectors
from tests.conftest import RT


@dataclass(frozen=True)
class Shard:
    """The two fields the writer reads of ``selectkit.engine.shards.Shard``."""

    index: int
    key: str
    rows: tuple[int, int]


ROWS = pl.read_ndjson(RT)  # 3,000 real rows: id, text, label
SHARDS = [Shard(i, f"rt.jsonl:{s}-{min(s + 700, 3000)}", (s, min(s + 700, 3000)))
          for i, s in enumerate(range(0, 3000, 700))]  # fmt: skip
IDENTITY = {"inputs": [fingerprint_file(RT)], "params": {"model": "hashing", "dim": 64}}


def kernel(staging: Path, shard: Shard) -> PartRecord:
    """A real per-shard kernel: the shard's rows with their text length, in batches of 256."""
    lo, hi = shard.rows
    rows = ROWS.slice(lo, hi - lo).with_columns(n_chars=pl.col("text").str.len_chars())
    prov = Provenance("test-embed", params={"shard": shard.key}, seed=0)
    return write_part(staging, shard, rows.iter_slices(256), prov)


def run(out, *, shards=SHARDS, identity=IDENTITY, resume=False, fail_after=None) -> DatasetWriter:
    """One run of a command writing ``out``; ``fail_after`` parts, raise (a crashing kernel)."""
    with DatasetWriter(out, command="test-embed", identity=identity, resume=resume) as w:
        for n, shard in enumerate(w.todo(shards)):
            if fail_after is not None and n == fail_after:
                raise RuntimeError("kernel crashed")
            w.done(kernel(w.staging, shard))
        w.commit(Provenance("test-embed", params=identity["params"], seed=0))
    return w


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def put_old(folder: Path) -> dict[str, bytes]:
    """An earlier run's folder (it has selectkit's record), with a file of the user's in it."""
    folder.mkdir()
    (folder / "part-00000.parquet").write_bytes(b"an old part that must survive\n")
    (folder / "notes.txt").write_bytes(b"old\n")
    (folder / "_selectkit.json").write_bytes(b"{}\n")
    return snapshot(folder)


# ---------------------------------------------------------------------------------------------
# layout and record


def test_layout_parts_record_and_provenance(tmp_path):
    out = tmp_path / "emb"
    run(f"{out}/")
    names = sorted(p.name for p in out.iterdir())
    assert names == [RECORD_NAME] + [f"part-{i:05d}.parquet" for i in range(5)]
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["complete"] is True and record["command"] == "test-embed"
    assert record["identity"] == IDENTITY
    assert record["rows"] == 3000
    assert [p["key"] for p in record["parts"]] == [s.key for s in SHARDS]
    assert [p["rows"] for p in record["parts"]] == [700, 700, 700, 700, 200]
    assert record["provenance"]["command"] == "test-embed"
    for part in record["parts"]:
        path = out / part["name"]
        assert part["fingerprint"] == fingerprint_file(path)
        meta = pq.read_schema(path).metadata  # what Ray and pandas read: the Arrow schema
        assert json.loads(meta[METADATA_KEY.encode()])["params"] == {"shard": part["key"]}
    back = pl.concat([pl.read_parquet(out / p["name"]) for p in record["parts"]])
    assert back.select("id", "text", "label").equals(ROWS)
    assert not staging_of(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["emb"]  # nothing left beside it


def test_parts_are_regrouped_whatever_the_batch_size(tmp_path):
    """The part's bytes depend on the rows, not on how the kernel batched them."""
    a, b = tmp_path / "a", tmp_path / "b"
    frame = ROWS.slice(0, 700)
    with DatasetWriter(a, command="c", identity=IDENTITY) as w:
        w.todo(SHARDS[:1])
        w.done(write_part(w.staging, SHARDS[0], frame.iter_slices(7), None))
        w.commit(None)
    with DatasetWriter(b, command="c", identity=IDENTITY) as w:
        w.todo(SHARDS[:1])
        w.done(write_part(w.staging, SHARDS[0], [frame], None))
        w.commit(None)
    assert snapshot(a) == snapshot(b)


def test_commit_replaces_the_old_folder_only_at_the_end(tmp_path):
    out = tmp_path / "emb"
    old = put_old(out)
    with DatasetWriter(out, command="test-embed", identity=IDENTITY) as w:
        for shard in w.todo(SHARDS):
            w.done(kernel(w.staging, shard))
            assert snapshot(out) == old
        w.commit(None)
    assert "notes.txt" not in snapshot(out) and read_record(out).rows == 3000


def test_a_crash_keeps_the_old_folder_and_the_finished_parts(tmp_path):
    out = tmp_path / "emb"
    old = put_old(out)
    with pytest.raises(RuntimeError, match="kernel crashed"):
        run(out, fail_after=2)
    assert snapshot(out) == old
    staging = staging_of(out)
    assert KEPT[-1] == (str(staging), 2)  # what a "stopped by" line can say
    progress = DatasetRecord.from_json((staging / PROGRESS_NAME).read_text())
    assert not progress.complete and [p.name for p in progress.parts] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    parts = sorted(p.name for p in staging.glob("part-*"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    assert not [p for p in staging.iterdir() if p.name.endswith(".sk-tmp")]
    with pytest.raises(SelectkitDataError, match=r"holds an unfinished run .*resume= to finish it"):
        dataset_parts(staging)


def test_resume_computes_only_the_missing_parts_and_gives_the_same_bytes(tmp_path):
    ref = tmp_path / "ref"
    run(ref)
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=3)
    with DatasetWriter(out, command="test-embed", identity=IDENTITY, resume=True) as w:
        todo = w.todo(SHARDS)
        assert [s.index for s in todo] == [3, 4]
        assert [p.name for p in w.reused] == [f"part-{i:05d}.parquet" for i in range(3)]
        for shard in todo:
            w.done(kernel(w.staging, shard))
        w.commit(Provenance("test-embed", params=IDENTITY["params"], seed=0))
    assert snapshot(out) == snapshot(ref)


def test_resume_on_a_complete_folder_reuses_everything(tmp_path):
    out = tmp_path / "emb"
    run(out)
    before = snapshot(out)
    with DatasetWriter(out, command="test-embed", identity=IDENTITY, resume=True) as w:
        assert w.todo(SHARDS) == []
        w.commit(Provenance("test-embed", params=IDENTITY["params"], seed=0))
    assert snapshot(out) == before


def test_resume_recomputes_a_damaged_or_rekeyed_part(tmp_path):
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=3)
    staging = staging_of(out)
    (staging / "part-00001.parquet").write_bytes(b"damaged")  # a disk error, a bad copy
    shards = [*SHARDS[:2], Shard(2, "rt.jsonl:other", SHARDS[2].rows), *SHARDS[3:]]
    with DatasetWriter(out, command="test-embed", identity=IDENTITY, resume=True) as w:
        assert [s.index for s in w.todo(shards)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("identity", "command", "expected"),
    [
        (
            {**IDENTITY, "params": {"model": "hashing", "dim": 128}},
            "test-embed",
            "parameter 'dim' changed (64 then, 128 now)",
        ),
        (
            {**IDENTITY, "params": {"model": "hashing"}},
            "test-embed",
            "parameter 'dim' changed (64 then, unset now)",
        ),
        (
            {**IDENTITY, "inputs": ["blake2b-128:00"]},
            "test-embed",
            f'input #1 changed (fingerprint "{IDENTITY["inputs"][0]}" then, "blake2b-128:00" now)',
        ),
        (IDENTITY, "cluster", "the command changed ('test-embed' then, 'cluster' now)"),
    ],
)
def test_resume_refuses_a_changed_run_naming_what_changed(tmp_path, identity, command, expected):
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=2)
    before = snapshot(staging_of(out))
    with pytest.raises(SelectkitMismatchError) as info:
        DatasetWriter(out, command=command, identity=identity, resume=True).__enter__()
    message = str(info.value)
    assert expected in message, message
    assert "drop resume= to start over" in message and "restore" in message
    assert snapshot(staging_of(out)) == before  # the unfinished run is still resumable


def test_a_folder_selectkit_did_not_write_is_refused_and_left_alone(tmp_path):
    # the commit replaces the whole folder: `-o mydocs/` must never delete the user's files
    out = tmp_path / "mydocs"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(SelectkitUsageError, match=r"not a selectkit dataset folder"):
        run(out)
    assert snapshot(out) == {"notes.txt": b"mine\n"}
    assert not staging_of(out).exists()
    r = CliRunner().invoke(app, ["embed", str(RT), "-o", f"{out}/"])
    assert r.exit_code == 2 and "not a selectkit dataset folder" in r.output, r.output
    assert snapshot(out) == {"notes.txt": b"mine\n"}
    out.joinpath("notes.txt").unlink()  # an empty folder is fine
    run(out)
    assert (out / "_selectkit.json").is_file()


def test_a_refused_resume_leaves_no_staging_folder_behind(tmp_path):
    out = tmp_path / "emb"
    run(out)
    before = snapshot(out)
    changed = {**IDENTITY, "params": {"model": "hashing", "dim": 32}}
    with pytest.raises(SelectkitMismatchError, match=r"from its finished run: parameter 'dim'"):
        DatasetWriter(out, command="test-embed", identity=changed, resume=True).__enter__()
    assert not staging_of(out).exists()  # no lock left to make the next run warn
    assert snapshot(out) == before


def test_resume_refuses_a_complete_folder_of_other_inputs(tmp_path):
    out = tmp_path / "emb"
    run(out)
    identity = {"inputs": [{"path": "rt.jsonl", "fingerprint": "blake2b-128:ff"}], "params": {}}
    with DatasetWriter(out, command="test-embed", identity=identity) as w:  # a new run, no resume
        w.todo(SHARDS[:1])
        w.done(kernel(w.staging, SHARDS[0]))
        w.commit(None)
    changed = {"inputs": [{"path": "rt.jsonl", "fingerprint": "blake2b-128:00"}], "params": {}}
    with pytest.raises(SelectkitMismatchError, match=r"input 'rt.jsonl' changed \(its fingerprint"):
        DatasetWriter(out, command="test-embed", identity=changed, resume=True).__enter__()


def test_without_resume_an_unfinished_run_is_discarded_with_one_line(tmp_path, capsys):
    quiet = is_quiet()  # an earlier CLI test's -q would hide the warning
    set_quiet(False)
    try:
        _discard_and_say_so(tmp_path, capsys)
    finally:
        set_quiet(quiet)


def _discard_and_say_so(tmp_path, capsys):
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=2)
    capsys.readouterr()
    with DatasetWriter(out, command="test-embed", identity=IDENTITY) as w:
        assert len(w.todo(SHARDS)) == 5
        assert not list(w.staging.glob("part-*"))
        for shard in w.todo(SHARDS):
            w.done(kernel(w.staging, shard))
        w.commit(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: discarding an unfinished run in '.emb.sk-partial'; use resume= to continue it"
    ]


def test_empty_shards(tmp_path):
    out = tmp_path / "emb"
    shards = [Shard(0, "a", (0, 0)), Shard(1, "b", (0, 0)), Shard(2, "c", (0, 5))]
    with DatasetWriter(out, command="c", identity=IDENTITY) as w:
        w.todo(shards)
        w.done(write_part(w.staging, shards[0], iter(()), None))  # nothing at all: no file
        w.done(write_part(w.staging, shards[1], [ROWS.head(0)], None))  # schema, no rows
        w.done(write_part(w.staging, shards[2], [ROWS.head(5)], None))
        w.commit(None)
    record = read_record(out)
    assert [(p.name, p.rows, p.fingerprint is None) for p in record.parts] == [
        ("part-00000.parquet", 0, True),
        ("part-00001.parquet", 0, False),
        ("part-00002.parquet", 5, False),
    ]
    assert not (out / "part-00000.parquet").exists()
    assert pl.read_parquet(out / "part-00001.parquet").schema == ROWS.schema
    assert dataset_parts(out) == [str(out / "part-00001.parquet"), str(out / "part-00002.parquet")]


def test_two_runs_on_one_folder_are_refused(tmp_path):
    out = tmp_path / "emb"
    with DatasetWriter(out, command="c", identity=IDENTITY) as w:
        with pytest.raises(SelectkitError, match="another run is writing") as info:
            DatasetWriter(out, command="c", identity=IDENTITY).__enter__()
        assert str(out) in str(info.value)
        w.todo(SHARDS[:1])
        w.done(kernel(w.staging, SHARDS[0]))
        w.commit(None)
    assert read_record(out).rows == 700


def test_a_folder_joins_an_output_group(tmp_path):
    """A dataset folder and a side file (cluster's centroids) are committed together or not."""
    out, side = tmp_path / "clusters", tmp_path / "c.parquet"
    with pytest.raises(RuntimeError), output_group():
        with DatasetWriter(out, command="test-embed", identity=IDENTITY) as w:
            w.todo(SHARDS[:1])
            w.done(kernel(w.staging, SHARDS[0]))
            w.commit(None)
        write_table(ROWS.head(3), side)
        raise RuntimeError("the run failed after both were staged")
    assert not out.exists() and not side.exists()
    assert (staging_of(out) / "part-00000.parquet").exists()  # still there for --resume
    with output_group():
        run(out, resume=True)
        write_table(ROWS.head(3), side)
    assert read_record(out).rows == 3000 and side.exists()


def test_done_refuses_a_part_outside_the_plan(tmp_path):
    with DatasetWriter(tmp_path / "x", command="c", identity=IDENTITY) as w:
        w.todo(SHARDS[:1])
        with pytest.raises(SelectkitError, match="not in this run's plan"):
            w.done(PartRecord("part-00009.parquet", "k", 1, "f"))
        with pytest.raises(SelectkitError, match="has no part"):
            w.commit(None)


def test_output_paths(tmp_path):
    assert is_folder_output(f"{tmp_path}/new/")
    assert is_folder_output(tmp_path)
    assert not is_folder_output(tmp_path / "out.parquet")
    assert not is_folder_output("-")
    check_output_path(tmp_path, [RT], folder=True)  # an existing folder is fine for a folder
    with pytest.raises(SelectkitUsageError, match="is a folder; give a file path"):
        check_output_path(tmp_path, [RT])
    (tmp_path / "f.parquet").write_bytes(b"x")
    with pytest.raises(SelectkitUsageError, match="is a file; give a folder path"):
        check_output_path(tmp_path / "f.parquet", [RT], folder=True)
    (tmp_path / "d").mkdir()
    with pytest.raises(SelectkitUsageError, match="also an input; write to a new folder"):
        check_output_path(tmp_path / "d", [tmp_path / "d" / "part-00000.parquet"], folder=True)
    with pytest.raises(SelectkitUsageError, match="is a file; give a folder path"):
        DatasetWriter(tmp_path / "f.parquet", command="c", identity=IDENTITY).__enter__()
    with pytest.raises(SelectkitUsageError, match="does not exist; create it first"):
        DatasetWriter(tmp_path / "no" / "d", command="c", identity=IDENTITY).__enter__()


# ---------------------------------------------------------------------------------------------
# the record and the identity, as data

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_identities = st.fixed_dictionaries(
    {
        "inputs": st.lists(st.text(min_size=1, max_size=20), max_size=4),
        "params": st.dictionaries(st.text(min_size=1, max_size=8), _json, max_size=5),
    }
)
_parts = st.lists(
    st.builds(
        PartRecord,
        name=st.integers(0, 99999).map(lambda i: f"part-{i:05d}.parquet"),
        key=st.text(max_size=30),
        rows=st.integers(0, 2**40),
        fingerprint=st.none() | st.text(min_size=1, max_size=40),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(identity=_identities, parts=_parts, complete=st.booleans(), command=st.text(max_size=10))
def test_record_round_trip(identity, parts, complete, command):
    record = DatasetRecord(command, identity, parts, complete, {"seed": 1} if complete else None)
    back = DatasetRecord.from_json(record.to_json())
    assert back == record
    assert identity_changes(identity, back.identity) == []


@settings(max_examples=200, deadline=None)
@given(identity=_identities, name=st.text(min_size=1, max_size=8), value=_json)
def test_a_changed_parameter_is_named(identity, name, value):
    changed = {**identity, "params": {**identity["params"], name: value}}
    changes = identity_changes(identity, changed)
    if identity["params"].get(name, object()) == value:
        assert changes == []
    else:
        assert len(changes) == 1 and changes[0].startswith(f"parameter '{name}' changed (")


def test_a_malformed_record_is_a_clear_error(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / RECORD_NAME).write_text("{not json")
    with pytest.raises(SelectkitDataError, match=r"_selectkit.json' is not a readable selectkit"):
        dataset_parts(folder)
    (folder / RECORD_NAME).write_text(json.dumps({"format": "selectkit-dataset", "version": 1,
                                                  "identity": {}, "parts": [{"name": "../x"}]}))  # fmt: skip
    with pytest.raises(SelectkitDataError, match="not a readable selectkit dataset record"):
        read_record(folder)


def test_staging_is_beside_the_output(tmp_path, monkeypatch):
    assert staging_of(f"{tmp_path}/emb/") == tmp_path / ".emb.sk-partial"
    assert staging_of(tmp_path / "emb") == tmp_path / ".emb.sk-partial"
    monkeypatch.chdir(tmp_path)
    assert staging_of("emb/") == tmp_path / ".emb.sk-partial"


# ---------------------------------------------------------------------------------------------
# reading: a dataset folder (or a quoted glob) is one input to every reader


@pytest.fixture(scope="module")
def emb_parts(tmp_path_factory) -> tuple[Path, Path]:
    """Real embeddings of the corpus (made by `selectkit embed`), as one file and as a dataset
    folder of five parts cut from it by the real writer."""
    root = tmp_path_factory.mktemp("embparts")
    single = root / "emb.parquet"
    result = CliRunner().invoke(app, ["-q", "embed", str(RT), "-o", str(single)])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(single)
    folder = root / "emb"
    with DatasetWriter(f"{folder}/", command="embed", identity=IDENTITY) as w:
        for shard in w.todo(SHARDS):
            lo, hi = shard.rows
            w.done(write_part(w.staging, shard, [table.slice(lo, hi - lo)], None))
        w.commit(Provenance("embed", seed=0))
    return single, folder


def test_iter_batches_reads_a_folder_as_one_input(tmp_path):
    folder = tmp_path / "d"
    run(folder)
    source, batches = iter_batches(folder, id_col="id", batch_size=500)
    frames = list(batches)
    assert max(f.height for f in frames) <= 500
    assert pl.concat(frames).select("id", "text", "label").equals(ROWS)
    assert (source.path, source.rows, source.parts, source.format) == (
        str(folder),
        3000,
        5,
        "parquet",
    )
    assert source.fingerprint == dataset_fingerprint(folder)
    assert source.as_dict()["parts"] == 5
    # the fingerprint is the data's: the same parts elsewhere (no record, Spark-like) match it
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in dataset_parts(folder):
        shutil.copy(name, copy / Path(name).name)
    assert dataset_fingerprint(copy) == source.fingerprint
    table = read_table(copy)
    assert table.source.fingerprint == source.fingerprint and table.height == 3000


def test_read_table_reads_a_folder_and_checks_ids_across_parts(tmp_path):
    folder = tmp_path / "d"
    run(folder)
    table = read_table(folder)
    assert table.frame.select("id", "text", "label").equals(ROWS)
    assert (table.source.rows, table.source.parts) == (3000, 5)
    dup = tmp_path / "dup"
    shards = [Shard(0, "a", (0, 10)), Shard(1, "b", (5, 15))]  # rows 5-9 in both parts
    with DatasetWriter(dup, command="c", identity=IDENTITY) as w:
        for shard in w.todo(shards):
            w.done(kernel(w.staging, shard))
        w.commit(None)
    with pytest.raises(SelectkitDataError, match=r"rt-00005"):
        read_table(dup)


def test_row_number_ids_continue_across_parts(tmp_path, emb_parts):
    """Parts without an id column (Spark output, say) get row numbers over the whole input."""
    single, _ = emb_parts
    table = pl.read_parquet(single).drop("id")
    spark = tmp_path / "spark"
    spark.mkdir()
    for i, lo in enumerate(range(0, 3000, 1000)):
        table.slice(lo, 1000).write_parquet(spark / f"part-{i:05d}-4f1c-c000.snappy.parquet")
    (spark / "_SUCCESS").write_bytes(b"")
    read = read_table(spark)
    assert read.frame.get_column("id").to_list() == list(range(3000))
    vs = open_vectors(spark)
    assert vs.n == 3000 and vs.ids().to_list() == list(range(3000))
    ids = pl.concat([ids for ids, _ in vs.batches(700)])
    assert ids.to_list() == list(range(3000))
    want = np.asarray(table.get_column("embedding").to_list(), dtype=np.float32)
    assert np.array_equal(vs.load(), want)
    assert np.array_equal(vs.take(np.array([0, 999, 1000, 2999])), want[[0, 999, 1000, 2999]])


def test_open_vectors_reads_a_dataset_folder(emb_parts):
    single, folder = emb_parts
    one, many = open_vectors(single), open_vectors(folder)
    assert (many.n, many.dim) == (one.n, one.dim)
    assert many.ids().equals(one.ids())
    assert np.array_equal(many.load(), one.load())
    rows = np.array([3, 699, 700, 2999])
    assert np.array_equal(many.take(rows), one.take(rows))
    assert many.source.parts == 5 and many.source.fingerprint == dataset_fingerprint(folder)


def test_quoted_globs_everywhere(tmp_path):
    lines = RT.read_text().splitlines(keepends=True)
    for i in range(3):
        (tmp_path / f"shard-{i}.jsonl").write_text("".join(lines[i * 1000 : (i + 1) * 1000]))
    pattern = str(tmp_path / "shard-*.jsonl")
    assert read_table(pattern).frame.equals(ROWS)
    source, batches = iter_batches(pattern, id_col="id")
    assert pl.concat(list(batches)).equals(ROWS) and source.rows == 3000 and source.parts == 3
    assert expand_inputs([pattern]) == [str(tmp_path / f"shard-{i}.jsonl") for i in range(3)]
    with pytest.raises(SelectkitDataError, match=r"no file matches '.*nothing-\*.jsonl'"):
        read_table(str(tmp_path / "nothing-*.jsonl"))


def test_expand_inputs_gives_a_folders_parts_in_record_order(tmp_path):
    folder = tmp_path / "d"
    run(folder)
    assert expand_inputs([folder, RT]) == [*dataset_parts(folder), str(RT)]
    assert [Path(p).name for p in dataset_parts(folder)] == [
        f"part-{i:05d}.parquet" for i in range(5)
    ]


def test_a_later_part_of_another_type_is_named(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    pl.DataFrame({"id": ["a", "b"], "x": [1, 2]}).write_parquet(folder / "part-00000.parquet")
    pl.DataFrame({"id": ["c"], "x": ["three"]}).write_parquet(folder / "part-00001.parquet")
    with pytest.raises(SelectkitDataError, match=r"part-00001.parquet'?: column 'x' holds Int64"):
        read_table(folder)
    with pytest.raises(SelectkitDataError, match=r"part-00001.parquet'?: column 'x' holds Int64"):
        list(iter_batches(folder)[1])


def test_unfinished_and_empty_folders_are_clear_errors(tmp_path):
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=2)
    staging = staging_of(out)
    for reader in (read_table, open_vectors, lambda p: list(iter_batches(p)[1])):
        with pytest.raises(SelectkitDataError) as info:
            reader(staging)
        assert str(info.value) == (
            f"'{staging}' holds an unfinished run (no completion record _selectkit.json); "
            "rerun the command that writes it with resume= to finish it"
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SelectkitDataError, match=r"is a folder without _selectkit\.json or part-"):
        read_table(empty)
    run(out)
    (out / "part-00002.parquet").unlink()
    with pytest.raises(SelectkitDataError, match=r"lists part-00002\.parquet, which is missing"):
        read_table(out)


# ---------------------------------------------------------------------------------------------
# through the real CLI


def test_cli_reads_a_dataset_folder_like_the_file_it_was_cut_from(emb_parts, tmp_path, cli):
    single, folder = emb_parts
    for name, src in (("one", single), ("many", folder)):
        r = cli("select", src, "-s", "kcenter", "-b", "40", "-o", tmp_path / f"{name}.parquet")
        assert r.exit_code == 0, r.output
        r = cli("cluster", src, "-k", "8", "-o", tmp_path / f"{name}-cl.parquet")
        assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "one.parquet").equals(
        pl.read_parquet(tmp_path / "many.parquet")
    )
    one, many = (pl.read_parquet(tmp_path / f"{n}-cl.parquet") for n in ("one", "many"))
    assert one.equals(many)
    inputs = read_provenance(tmp_path / "many.parquet")["inputs"]
    assert inputs[0]["path"] == str(folder) and inputs[0]["parts"] == 5


def test_cli_embeds_a_quoted_glob(tmp_path, cli, emb_parts):
    single, _ = emb_parts
    lines = RT.read_text().splitlines(keepends=True)
    for i in range(3):
        (tmp_path / f"s{i}.jsonl").write_text("".join(lines[i * 1000 : (i + 1) * 1000]))
    r = cli("embed", str(tmp_path / "s*.jsonl"), "-o", tmp_path / "e.parquet")
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "e.parquet").equals(pl.read_parquet(single))


def test_cli_inspects_a_dataset_folder(emb_parts, cli):
    _, folder = emb_parts
    r = cli("inspect", folder, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["format"], info["rows"], info["complete"]) == ("dataset", 3000, True)
    assert [p["rows"] for p in info["parts"]] == [700, 700, 700, 700, 200]
    assert info["columns"]["embedding"].startswith(("fixed_size_list", "list"))
    assert info["provenance"]["command"] == "embed" and info["command"] == "embed"


def test_cli_inspect_prints_a_folder(emb_parts, cli):
    _, folder = emb_parts
    r = cli("inspect", folder)
    assert r.exit_code == 0, r.output
    assert f"{folder}  dataset, 3000 rows" in r.stdout and "made by: selectkit" in r.stdout


def test_inspect_describes_an_unfinished_run(tmp_path):
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError):
        run(out, fail_after=2)
    info = inspect_file(staging_of(out))
    assert (info["complete"], info["rows"], len(info["parts"])) == (False, 1400, 2)


def test_resume_after_a_swap_that_did_not_happen(tmp_path):
    """A run whose commit was staged but never swapped in (its output group failed) leaves a
    complete record in the staging folder: --resume reuses every part."""
    out = tmp_path / "emb"
    with pytest.raises(RuntimeError), output_group():
        run(out)
        raise RuntimeError("another output of the run failed")
    assert (staging_of(out) / RECORD_NAME).is_file() and not out.exists()
    with DatasetWriter(out, command="test-embed", identity=IDENTITY, resume=True) as w:
        assert (staging_of(out) / PROGRESS_NAME).is_file()
        assert not (staging_of(out) / RECORD_NAME).exists()
        assert w.todo(SHARDS) == [] and len(w.reused) == 5
        w.commit(None)
    assert read_record(out).rows == 3000


def test_the_writer_is_a_context_manager(tmp_path):
    with pytest.raises(SelectkitError, match="use DatasetWriter as a context manager"):
        DatasetWriter(tmp_path / "x", command="c", identity=IDENTITY).todo(SHARDS)
