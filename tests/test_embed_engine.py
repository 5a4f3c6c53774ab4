"""``embed`` on shards and engines (issue 13 items 2, 3, 7, 8, 9): real text from data_samples/
split into gzip shards; the local engine (in process and a process pool) and the two-node Ray
test cluster give the same bytes; duplicate ids across shards, corrupt shards, --resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selectkit.embed import embed_file
from selectkit.embed.kernel import embed_shard
from selectkit.engine import LocalEngine, get_engine
from selectkit.errors import SelectkitDataError, SelectkitMismatchError, SelectkitUsageError
from selectkit.io import read_provenance

from ._same_bytes import assert_same_output
from .conftest import FORTUNES, RT

SHARDS = 4
ROWS = 300  # per shard: small enough for a busy 2-core machine, several batches each
OPTS = ["--fit-rows", "500", "--batch-size", "128"]
KW = {"fit_rows": 500, "batch_size": 128}


def _split(frame: pl.DataFrame, folder: Path) -> Path:
    folder.mkdir()
    for k in range(SHARDS):
        with gzip.open(folder / f"part-{k}.jsonl.gz", "wb") as fh:
            frame.slice(k * ROWS, ROWS).write_ndjson(fh)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pl.DataFrame:
    """1,200 real documents: Rotten Tomatoes reviews, then fortunes (string ids)."""
    rt = pl.read_ndjson(RT).select("id", "text")
    fortunes = pl.read_ndjson(FORTUNES).select("id", "text")
    return pl.concat([rt.head(SHARDS * ROWS // 2), fortunes.head(SHARDS * ROWS // 2)])


@pytest.fixture(scope="module")
def shards(tmp_path_factory, corpus) -> Path:
    return _split(corpus, tmp_path_factory.mktemp("embed-shards") / "shards")


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory, shards, corpus) -> dict[str, Path]:
    """The local engine's file and folder outputs over the shards, and the one-file output."""
    out = tmp_path_factory.mktemp("embed-local")
    glob = str(shards / "*.jsonl.gz")
    whole = out / "whole.jsonl"
    corpus.write_ndjson(whole)
    embed_file(glob, out / "emb.parquet", **KW)
    embed_file(glob, f"{out}/emb/", **KW)
    embed_file(whole, out / "whole.parquet", **KW)
    return {"file": out / "emb.parquet", "folder": out / "emb", "whole": out / "whole.parquet"}


def test_shards_give_the_rows_and_vectors_of_the_one_file(local_runs, corpus):
    shards = pl.read_parquet(local_runs["file"])
    whole = pl.read_parquet(local_runs["whole"])
    assert shards.get_column("id").equals(corpus.get_column("id"))
    # the same bits: a vector does not depend on where its batch or shard was cut
    assert shards.equals(whole)
    assert np.array_equal(
        shards.get_column("embedding").to_numpy(), whole.get_column("embedding").to_numpy()
    )
    prov = read_provenance(local_runs["file"])
    assert [Path(i["path"]).name for i in prov["inputs"]] == [
        f"part-{k}.jsonl.gz" for k in range(SHARDS)
    ]
    assert [i["rows"] for i in prov["inputs"]] == [ROWS] * SHARDS
    assert prov["engine"] == {"engine": "local", "workers": 1}
    # the fit saw the first --fit-rows rows across the shards, as for the one file
    assert (
        prov["params"]["model_fingerprint"]
        == read_provenance(local_runs["whole"])["params"]["model_fingerprint"]
    )


def test_folder_output_is_one_part_per_shard_holding_the_file_output(local_runs):
    folder = local_runs["folder"]
    parts = sorted(p.name for p in folder.glob("part-*.parquet"))
    assert parts == [f"part-{k:05d}.parquet" for k in range(SHARDS)]
    record = json.loads((folder / "_selectkit.json").read_text())
    assert record["complete"] and record["rows"] == SHARDS * ROWS
    frames = [pl.read_parquet(folder / p) for p in parts]
    assert pl.concat(frames).equals(pl.read_parquet(local_runs["file"]))
    part_prov = read_provenance(folder / parts[1])
    assert part_prov["inputs"][0]["path"].endswith("part-1.jsonl.gz")
    assert part_prov["metrics"]["rows"] == ROWS and "argv" not in part_prov
    # a dataset folder is an input like any table: select reads it as one
    from selectkit import select_files

    select_files([f"{folder}/"], folder.parent / "m.parquet", strategy="random", budget=5)
    assert pl.read_parquet(folder.parent / "m.parquet").height == 5


def test_a_process_pool_gives_the_same_bytes(tmp_path, shards, local_runs):
    glob = str(shards / "*.jsonl.gz")
    with get_engine("local", workers=2) as pool:
        embed_file(glob, tmp_path / "emb.parquet", engine=pool, **KW)
        embed_file(glob, f"{tmp_path}/emb/", engine=pool, **KW)
    assert_same_output(local_runs["file"], tmp_path / "emb.parquet")
    assert_same_output(local_runs["folder"], tmp_path / "emb")


@pytest.mark.ray
def test_ray_on_two_nodes_gives_the_same_bytes_as_local(cli, tmp_path, shards, local_runs):
    glob = str(shards / "*.jsonl.gz")
    for out in (tmp_path / "emb.parquet", f"{tmp_path}/emb/"):
        r = cli("embed", glob, "-o", out, "--engine", "ray", *OPTS)
        assert r.exit_code == 0, r.output
    assert_same_output(local_runs["file"], tmp_path / "emb.parquet")
    assert_same_output(local_runs["folder"], tmp_path / "emb")
    engine = read_provenance(tmp_path / "emb.parquet")["engine"]
    assert engine["engine"] == "ray" and engine["nodes"] == 2 and engine["workers"] == 2


@pytest.mark.ray
def test_ray_row_number_ids_run_on_across_shards(tmp_path, corpus):
    """Shards without ids: each shard's kernel needs the rows before it (counted first)."""
    shards = _split(corpus.select("text"), tmp_path / "noid")
    glob = str(shards / "*.jsonl.gz")
    embed_file(glob, tmp_path / "local.parquet", **KW)
    embed_file(glob, f"{tmp_path}/ray/", engine="ray", **KW)
    local = pl.read_parquet(tmp_path / "local.parquet")
    assert local.get_column("id").to_list() == list(range(SHARDS * ROWS))
    ray_rows = pl.read_parquet(sorted((tmp_path / "ray").glob("part-*.parquet")))
    assert ray_rows.equals(local)


def test_row_number_ids_from_parquet_and_jsonl_shards_agree(tmp_path, corpus):
    texts = corpus.select("text")
    (tmp_path / "a").mkdir()
    texts.head(500).write_parquet(tmp_path / "a" / "0.parquet")
    texts.slice(500).write_ndjson(tmp_path / "a" / "1.jsonl")
    emb = embed_file([tmp_path / "a" / "0.parquet", tmp_path / "a" / "1.jsonl"],
                     f"{tmp_path}/e/", **KW)  # fmt: skip
    ids = pl.read_parquet(sorted((tmp_path / "e").glob("part-*.parquet"))).get_column("id")
    assert ids.to_list() == list(range(texts.height)) and emb.metrics["rows"] == texts.height


def test_a_duplicate_id_across_shards_names_it_and_both_files(cli, tmp_path, corpus):
    frame = corpus.with_columns(
        pl.when(pl.int_range(pl.len()) == 1000)
        .then(pl.lit(corpus.get_column("id")[7]))
        .otherwise(pl.col("id"))
        .alias("id")
    )
    shards = _split(frame, tmp_path / "dup")
    for out in (tmp_path / "e.parquet", tmp_path / "e"):
        r = cli("embed", str(shards / "*.jsonl.gz"), "-o", f"{out}/" if out.suffix == "" else out)
        assert r.exit_code == 1, r.output
        line = r.stderr.strip()
        assert line.startswith("error: ") and "\n" not in line
        assert "duplicate ids" in line and repr(corpus.get_column("id")[7]) in line
        assert "part-0.jsonl.gz" in line and "part-3.jsonl.gz" in line
        assert not out.exists()


def test_a_corrupt_shard_is_one_error_naming_it_and_writes_nothing(cli, tmp_path, shards):
    work = tmp_path / "shards"
    work.mkdir()
    for p in shards.iterdir():
        (work / p.name).write_bytes(p.read_bytes())
    good = (work / "part-2.jsonl.gz").read_bytes()
    (work / "part-2.jsonl.gz").write_bytes(good[: len(good) // 2])  # a cut download
    for out in (tmp_path / "emb.parquet", f"{tmp_path}/emb/"):
        r = cli("embed", str(work / "*.jsonl.gz"), "-o", out, *OPTS)
        line = r.stderr.strip()
        assert r.exit_code == 1 and line.startswith("error: ") and "\n" not in line, r.output
        assert "part-2.jsonl.gz" in line and "internal" not in line
    assert not (tmp_path / "emb.parquet").exists() and not (tmp_path / "emb").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".sk-tmp")]


class _CrashAfter(LocalEngine):
    """The local engine, stopped after ``parts`` shards as a crashed driver would be."""

    def __init__(self, parts: int) -> None:
        super().__init__(1)
        self.parts = parts

    def map(self, kernel, items, **kw):
        for n, result in enumerate(super().map(kernel, items, **kw)):
            if kernel is embed_shard and n == self.parts:
                raise RuntimeError("the driver's machine went down")
            yield result


def test_resume_after_a_crash_computes_only_the_missing_parts(cli, tmp_path, shards, local_runs):
    glob = str(shards / "*.jsonl.gz")
    out = f"{tmp_path}/emb/"
    with pytest.raises(RuntimeError, match="went down"):
        embed_file(glob, out, engine=_CrashAfter(2), **KW)
    assert not (tmp_path / "emb").exists()
    staging = tmp_path / ".emb.sk-partial"
    progress = json.loads((staging / "_selectkit.progress.json").read_text())
    assert [p["name"] for p in progress["parts"]] == ["part-00000.parquet", "part-00001.parquet"]
    kept = {
        n: (staging / n).stat().st_mtime_ns for n in ("part-00000.parquet", "part-00001.parquet")
    }
    # changed parameters are refused, naming what changed; the staged parts stay
    r = cli("embed", glob, "-o", out, "--fit-rows", "400", "--batch-size", "128", "--resume")
    assert r.exit_code == 1 and "fit_rows" in r.stderr and "--resume" in r.stderr, r.output
    assert sorted(kept) == sorted(p.name for p in staging.glob("part-0000[01].parquet"))
    r = cli("embed", glob, "-o", out, *OPTS, "--resume")
    assert r.exit_code == 0, r.output
    assert_same_output(local_runs["folder"], tmp_path / "emb")
    reused = {n: (tmp_path / "emb" / n).stat().st_mtime_ns for n in kept}
    assert reused == kept, "the parts finished before the crash were computed again"


def test_resume_needs_a_folder_and_stdin_needs_the_local_engine(cli, tmp_path, shards):
    r = cli("embed", str(shards / "*.jsonl.gz"), "-o", tmp_path / "e.parquet", "--resume")
    assert r.exit_code == 2 and "-o DIR/" in r.stderr
    r = cli("embed", "-", "-o", tmp_path / "e.parquet", "--engine", "ray", input="{}\n")
    assert r.exit_code == 2 and "stdin" in r.stderr
    with pytest.raises(SelectkitUsageError, match="resume="):
        embed_file(shards / "part-0.jsonl.gz", tmp_path / "e.parquet", resume=True)
    assert not (tmp_path / "e.parquet").exists()


def test_the_text_cap_is_counted_across_shards(cli, tmp_path, shards, corpus):
    long = int((corpus.get_column("text").str.len_chars() > 200).sum())
    assert long > 10
    out = tmp_path / "e.parquet"
    r = cli.runner.invoke(
        __import__("selectkit.cli", fromlist=["app"]).app,
        ["embed", str(shards / "*.jsonl.gz"), "-o", str(out), "--max-chars", "200", *OPTS],
    )
    assert r.exit_code == 0, r.output
    assert f"truncated {long:,} texts longer than 200" in r.stderr
    assert r.stderr.count("truncated") == 1
    prov = read_provenance(out)
    assert prov["metrics"]["truncated_texts"] == long and prov["params"]["max_chars"] == 200


def test_on_long_error_names_the_shard_and_its_row(tmp_path, shards, corpus):
    texts = corpus.get_column("text").slice(ROWS, ROWS).str.len_chars()  # part-1's texts
    cap = int(texts.max()) - 1
    row = int(texts.arg_max())
    with pytest.raises(SelectkitDataError, match=rf"part-1\.jsonl\.gz'?: the text at row {row}"):
        embed_file(
            [shards / "part-1.jsonl.gz", shards / "part-2.jsonl.gz"],
            tmp_path / "e.parquet",
            max_chars=cap,
            on_long="error",
            **KW,
        )
    assert not (tmp_path / "e.parquet").exists()


def test_a_changed_input_refuses_resume_naming_it(tmp_path, shards):
    glob_dir = tmp_path / "s"
    glob_dir.mkdir()
    for p in shards.iterdir():
        (glob_dir / p.name).write_bytes(p.read_bytes())
    out = f"{tmp_path}/emb/"
    embed_file(str(glob_dir / "*.jsonl.gz"), out, **KW)
    with gzip.open(glob_dir / "part-3.jsonl.gz", "wb") as fh:
        fh.write(b'{"id": "new", "text": "a new document"}\n')
    with pytest.raises(SelectkitMismatchError, match=r"part-3\.jsonl\.gz"):
        embed_file(str(glob_dir / "*.jsonl.gz"), out, resume=True, **KW)
