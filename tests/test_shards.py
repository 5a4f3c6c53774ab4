"""Shards are fixed by the data: the same files give the same plan wherever they are mounted,
whatever the number of workers; each shard's rows, read back, are exactly the file's rows."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selectkit.engine import get_engine
from selectkit.engine.shards import plan_shards, shard_batches, shard_vectors
from selectkit.errors import SelectkitDataError, SelectkitUsageError

from .conftest import RT


@pytest.fixture(scope="module")
def rt_frame() -> pl.DataFrame:
    return pl.read_ndjson(RT)


def _parquet(frame: pl.DataFrame, path: Path, group_rows: int) -> Path:
    frame.write_parquet(path, row_group_size=group_rows)
    return path


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(group_rows=st.integers(50, 1200), shard_rows=st.integers(1, 4000))
def test_parquet_shards_cover_every_row_once_in_order(tmp_path, rt_frame, group_rows, shard_rows):
    path = _parquet(rt_frame, tmp_path / f"rt-{group_rows}.parquet", group_rows)
    shards = plan_shards([path], shard_rows=shard_rows)
    ids = pl.concat([f.get_column("id") for s in shards for f in shard_batches(s, columns=["id"])])
    assert ids.to_list() == rt_frame.get_column("id").to_list()
    assert [s.index for s in shards] == list(range(len(shards)))
    for s in shards[:-1]:  # every shard but the last holds at least shard_rows rows
        assert s.rows is None or s.rows[1] - s.rows[0] >= min(shard_rows, rt_frame.height)
    assert [s.row0 for s in shards] == [0 if s.rows is None else s.rows[0] for s in shards]


def test_plan_depends_on_the_data_not_where_it_is_mounted(tmp_path, rt_frame):
    for root in ("a", "b/deeper"):
        (tmp_path / root / "shards").mkdir(parents=True)
        for i, part in enumerate(rt_frame.iter_slices(1000)):
            _parquet(part, tmp_path / root / "shards" / f"s{i}.parquet", 100)
    plans = [
        plan_shards(sorted((tmp_path / root / "shards").glob("*.parquet")), shard_rows=300)
        for root in ("a", "b/deeper")
    ]
    assert [(s.key, s.rows, s.groups, s.row0) for s in plans[0]] == [
        (s.key, s.rows, s.groups, s.row0) for s in plans[1]
    ]
    assert plans[0][0].key == "s0.parquet:0-300"
    # a quoted glob is the same input as the files it names
    glob_plan = plan_shards([str(tmp_path / "a" / "shards" / "*.parquet")], shard_rows=300)
    assert [s.key for s in glob_plan] == [s.key for s in plans[0]]


def test_text_files_are_one_shard_each_and_compressed_ones_read(tmp_path, rt_frame):
    plain = tmp_path / "one.jsonl"
    rt_frame.head(100).write_ndjson(plain)
    packed = tmp_path / "two.jsonl.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    shards = plan_shards([plain, packed], shard_rows=10)
    assert [s.key for s in shards] == ["one.jsonl", "two.jsonl.gz"]
    assert shards[0].row0 == 0 and shards[1].row0 is None  # unknown until the first is read
    rows = [sum(f.height for f in shard_batches(s)) for s in shards]
    assert rows == [100, 100]


def test_npy_shards_slice_the_matrix_with_global_row_numbers(tmp_path, digits):
    x = digits[0]
    np.save(tmp_path / "x.npy", x)
    shards = plan_shards([tmp_path / "x.npy"], shard_rows=500)
    assert [s.rows for s in shards] == [(0, 500), (500, 1000), (1000, 1500), (1500, 1797)]
    got_ids, got = zip(*(b for s in shards for b in shard_vectors(s, batch_size=128)), strict=True)
    np.testing.assert_array_equal(np.concatenate(got), x)
    assert pl.concat(got_ids).to_list() == list(range(len(x)))


def test_missing_input_is_named(tmp_path):
    with pytest.raises(SelectkitDataError, match=r"nope\.parquet"):
        plan_shards([tmp_path / "nope.parquet"])
    with pytest.raises(SelectkitDataError, match="no file matches"):
        plan_shards([str(tmp_path / "*.parquet")])


def _double(item: int, shared: int) -> int:
    return item * shared


def test_local_engine_maps_in_order_inline_and_in_a_pool():
    for workers in (1, 2):
        with get_engine("local", workers=workers) as engine:
            assert list(engine.map(_double, range(7), shared=3)) == [3 * i for i in range(7)]
            assert engine.describe() == {"engine": "local", "workers": workers}


def test_engine_arguments_are_checked():
    with pytest.raises(SelectkitUsageError, match="unknown engine 'spark'"):
        get_engine("spark")
    with pytest.raises(SelectkitUsageError, match=r"needs the Ray engine: add engine=.ray."):
        get_engine("local", ray_address="head:6379")
