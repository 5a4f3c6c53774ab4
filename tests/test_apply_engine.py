"""``apply`` on shards and engines (issue 13 items 2, 6, 7, 8, 9): each shard filtered by the
manifest's ids on the local engine and on the two-node Ray test cluster, with the same bytes, and
every check the one-table apply makes (row numbers, shard order, --force, missing ids)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from selectkit import select_files
from selectkit.apply import apply_manifest
from selectkit.engine import get_engine
from selectkit.errors import SelectkitMismatchError
from selectkit.io import read_provenance

from ._same_bytes import assert_same_output
from .conftest import RT

SHARDS = 4
ROWS = 250


def _split(frame: pl.DataFrame, folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for k in range(SHARDS):
        path = folder / f"part-{k}.jsonl.gz"
        with gzip.open(path, "wb") as fh:
            frame.slice(k * ROWS, ROWS).write_ndjson(fh)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def corpus() -> pl.DataFrame:
    return pl.read_ndjson(RT).head(SHARDS * ROWS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, corpus) -> dict[str, Path]:
    """Shards with ids and without, a manifest over each (random over the ids; DSIR over the
    id-less shards, whose ids are row numbers), and the local engine's outputs."""
    root = tmp_path_factory.mktemp("apply")
    _split(corpus, root / "ided")
    noid = _split(corpus.select("text", "label"), root / "noid")
    ids = root / "ids.parquet"
    corpus.select("id").write_parquet(ids)
    select_files([ids], root / "m.parquet", strategy="random", budget=40, seed=3)
    select_files(
        [str(p) for p in noid],
        root / "m_noid.parquet",
        strategy="dsir",
        budget=30,
        params={"target": str(RT)},
    )
    out = {"root": root, "ided": root / "ided", "noid": root / "noid"}
    out["m"], out["m_noid"] = root / "m.parquet", root / "m_noid.parquet"
    apply_manifest(out["m"], str(out["ided"] / "*.jsonl.gz"), root / "sel.parquet")
    apply_manifest(out["m"], str(out["ided"] / "*.jsonl.gz"), f"{root}/sel/")
    apply_manifest(out["m_noid"], [str(p) for p in noid], root / "sel_noid.parquet")
    return out


def test_shards_give_the_rows_of_the_one_table(setup, corpus, tmp_path):
    whole = tmp_path / "whole.jsonl"
    corpus.write_ndjson(whole)
    apply_manifest(setup["m"], whole, tmp_path / "one.parquet")
    one, shards = (
        pl.read_parquet(tmp_path / "one.parquet"),
        pl.read_parquet(setup["root"] / "sel.parquet"),
    )
    assert one.equals(shards) and shards.height == 40
    assert shards.get_column("rank").to_list() == list(range(40))
    prov = read_provenance(setup["root"] / "sel.parquet")
    assert prov["metrics"] == {"manifest_rows": 40, "table_rows": SHARDS * ROWS, "rows": 40}
    assert len(prov["inputs"]) == 1 + SHARDS and prov["engine"]["engine"] == "local"


def test_folder_output_holds_each_shards_picked_rows(setup):
    folder = setup["root"] / "sel"
    record = json.loads((folder / "_selectkit.json").read_text())
    assert record["complete"] and record["rows"] == 40
    parts = [pl.read_parquet(folder / p["name"]) for p in record["parts"]]
    assert len(parts) == SHARDS
    whole = pl.read_parquet(setup["root"] / "sel.parquet")
    assert pl.concat(parts).sort("rank").equals(whole)
    for k, part in enumerate(parts):  # a shard's rows, by rank within the part
        assert part.get_column("rank").is_sorted()
        with gzip.open(setup["ided"] / f"part-{k}.jsonl.gz") as fh:
            src = pl.read_ndjson(fh)
        assert part.get_column("id").is_in(src.get_column("id").implode()).all()


def test_row_number_manifests_on_id_less_shards(setup, corpus):
    picked = pl.read_parquet(setup["root"] / "sel_noid.parquet")
    manifest = pl.read_parquet(setup["m_noid"])
    assert picked.height == 30 and picked.get_column("id").equals(manifest.get_column("id"))
    rows = corpus.drop("id").with_row_index("id").with_columns(pl.col("id").cast(pl.Int64))
    expected = manifest.select("id").join(rows, on="id", how="left", maintain_order="left")
    assert picked.get_column("text").equals(expected.get_column("text"))


def test_a_process_pool_gives_the_same_bytes(setup, tmp_path):
    glob = str(setup["ided"] / "*.jsonl.gz")
    with get_engine("local", workers=2) as pool:
        apply_manifest(setup["m"], glob, tmp_path / "sel.parquet", engine=pool)
        apply_manifest(setup["m"], glob, f"{tmp_path}/sel/", engine=pool)
    assert_same_output(setup["root"] / "sel.parquet", tmp_path / "sel.parquet")
    assert_same_output(setup["root"] / "sel", tmp_path / "sel")


@pytest.mark.ray
def test_ray_on_two_nodes_gives_the_same_bytes_and_checks(cli, setup, tmp_path):
    glob = str(setup["ided"] / "*.jsonl.gz")
    for out in (tmp_path / "sel.parquet", f"{tmp_path}/sel/"):
        r = cli("apply", setup["m"], glob, "-o", out, "--engine", "ray")
        assert r.exit_code == 0, r.output
    assert_same_output(setup["root"] / "sel.parquet", tmp_path / "sel.parquet")
    assert_same_output(setup["root"] / "sel", tmp_path / "sel")
    noid = sorted(str(p) for p in setup["noid"].iterdir())
    r = cli("apply", setup["m_noid"], *noid, "-o", tmp_path / "noid.parquet", "--engine", "ray")
    assert r.exit_code == 0, r.output
    assert_same_output(setup["root"] / "sel_noid.parquet", tmp_path / "noid.parquet")
    # the driver's checks hold on Ray: shard order, row counts, missing ids
    r = cli("apply", setup["m_noid"], *noid[::-1], "-o", tmp_path / "x.parquet", "--engine", "ray")
    assert r.exit_code == 1 and "not in the order" in r.stderr
    r = cli("apply", setup["m_noid"], *noid[:3], "-o", tmp_path / "x.parquet", "--engine", "ray")
    assert r.exit_code == 1 and "--force" in r.stderr and "750 rows" in r.stderr
    r = cli("apply", setup["m"], *noid[:1], "-o", tmp_path / "x.parquet", "--engine", "ray")
    assert r.exit_code == 1
    assert not (tmp_path / "x.parquet").exists()


def test_missing_ids_and_row_counts_are_checked_across_shards(setup, tmp_path):
    ided = sorted(str(p) for p in setup["ided"].iterdir())
    with pytest.raises(SelectkitMismatchError, match=r"of the 40 manifest ids are not in"):
        apply_manifest(setup["m"], ided[:2], tmp_path / "x.parquet")
    noid = sorted(str(p) for p in setup["noid"].iterdir())
    with pytest.raises(SelectkitMismatchError, match="750 rows"):
        apply_manifest(setup["m_noid"], noid[:3], tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    # --force skips the row-count check (recorded); the ids found are still all required
    manifest = pl.read_parquet(setup["m_noid"])
    inside = manifest.filter(pl.col("id") < 3 * ROWS)
    small = tmp_path / "m_small.parquet"
    inside.write_parquet(small)
    prov = apply_manifest(small, noid[:3], tmp_path / "forced.parquet", force=True)
    assert prov.params["force"] is True and prov.metrics["rows"] == inside.height


def test_a_corrupt_shard_is_one_error_naming_it(cli, setup, tmp_path):
    shards = sorted(setup["ided"].iterdir())
    cut = tmp_path / "part-1.jsonl.gz"
    data = shards[1].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for out in (tmp_path / "sel.parquet", f"{tmp_path}/sel/"):
        r = cli("apply", setup["m"], shards[0], cut, shards[2], shards[3], "-o", out)
        line = r.stderr.strip()
        assert r.exit_code == 1 and line.startswith("error: ") and "\n" not in line, r.output
        assert str(cut) in line
    assert not (tmp_path / "sel.parquet").exists() and not (tmp_path / "sel").exists()


def test_resume_reuses_the_finished_parts(setup, tmp_path):
    glob = str(setup["ided"] / "*.jsonl.gz")
    out = f"{tmp_path}/sel/"
    apply_manifest(setup["m"], glob, out)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "sel").glob("part-*.parquet")}
    apply_manifest(setup["m"], glob, out, resume=True)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "sel").glob("part-*.parquet")}
    assert after == before
    assert_same_output(setup["root"] / "sel", tmp_path / "sel")
    with pytest.raises(SelectkitMismatchError, match="'order' changed"):
        apply_manifest(setup["m"], glob, out, order="original", resume=True)
