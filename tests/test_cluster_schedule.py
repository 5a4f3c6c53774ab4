"""k-means' sampled schedule (issue 14): seed and run Lloyd on max(256 k, 65,536) rows chosen
by seeded id hash, then refine on every row. The floor is lowered here so that scikit-learn's
digits (1,797 rows) and the real embeddings of data_samples/ take the sampled path."""

from __future__ import annotations

import importlib

import numpy as np
import polars as pl
import pytest

from selectkit.cluster import cluster_file, kmeans
from selectkit.cluster import lloyd_blocks as lloyd
from selectkit.cluster.kmeans import schedule_sample_rows
from selectkit.errors import SelectkitUsageError
from selectkit.io import read_provenance

#: the module (``selectkit.cluster.kmeans`` the attribute is the function)
kmeans_module = importlib.import_module("selectkit.cluster.kmeans")


@pytest.fixture
def low_floor(monkeypatch):
    """The sampled schedule's floor at 200 rows (the constant is 65,536)."""
    monkeypatch.setattr(kmeans_module, "MIN_SAMPLE_ROWS", 200)


def _write(path, x: np.ndarray, ids: list[str]) -> None:
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(path)


def test_schedule_rows():
    assert schedule_sample_rows(10**6, 100, 256) == 65536  # the floor
    assert schedule_sample_rows(10**6, 1000, 256) == 256_000
    assert schedule_sample_rows(100_000, 1000, 256) == 100_000  # every row: the full schedule
    assert schedule_sample_rows(10**6, 1000, 0) == 10**6


def test_small_data_keeps_the_full_schedule_bytes(digits):
    x, _ = digits
    new = kmeans(x, 10, seed=3)
    old = kmeans(x, 10, seed=3, sample_per_centroid=0)
    assert new.info["schedule"] == old.info["schedule"] == "full"
    assert new.centroids.tobytes() == old.centroids.tobytes()
    assert np.array_equal(new.labels, old.labels)


def test_sampled_cost_is_close_to_the_full_schedule(digits, low_floor):
    x, _ = digits
    ratios = []
    for seed in range(3):
        sampled = kmeans(x, 10, seed=seed, sample_per_centroid=40)  # 400 of 1,797 rows
        full = kmeans(x, 10, seed=seed, sample_per_centroid=0)
        assert sampled.info["schedule"] == "sampled" and sampled.info["schedule_rows"] == 400
        assert sampled.info["refine_iterations"] >= 1
        assert np.array_equal(sampled.labels, kmeans_module.assign(x, sampled.centroids)[0])
        ratios.append(sampled.inertia / full.inertia)
    assert np.median(ratios) < 1.01, ratios  # measured: 0.980, 1.0002, 1.002


def test_sampled_schedule_follows_the_ids_not_the_order(tmp_path, digits, low_floor):
    x, _ = digits
    ids = [f"d{i:05d}" for i in range(x.shape[0])]
    perm = np.random.default_rng(7).permutation(x.shape[0])
    _write(tmp_path / "a.parquet", x, ids)
    _write(tmp_path / "b.parquet", x[perm], [ids[i] for i in perm])
    for name in "ab":
        prov = cluster_file(
            tmp_path / f"{name}.parquet",
            tmp_path / f"{name}_out.parquet",
            k=10,
            sample_per_centroid=40,
            centroids_out=tmp_path / f"{name}_c.parquet",
        )
        assert prov.metrics["schedule"] == "sampled"
        assert prov.params["sample_per_centroid"] == 40 and prov.params["refine_iters"] == 2
    a = pl.read_parquet(tmp_path / "a_out.parquet").sort("id")
    b = pl.read_parquet(tmp_path / "b_out.parquet").sort("id")
    assert a.equals(b)
    ca, cb = (pl.read_parquet(tmp_path / f"{n}_c.parquet") for n in "ab")
    assert ca.equals(cb)
    record = read_provenance(tmp_path / "a_out.parquet")
    assert record["metrics"]["inertia"] == pytest.approx(
        float(a["distance"].cast(pl.Float64).sum())
    )


def test_sampled_schedule_same_bytes_on_a_pool(digits, low_floor, monkeypatch):
    from selectkit.engine import get_engine

    monkeypatch.setattr(lloyd, "LLOYD_BLOCK_ROWS", 256)  # the sample and the refinement span blocks
    x, _ = digits
    here = kmeans(x, 10, seed=1, sample_per_centroid=60)
    engine = get_engine("local", workers=2)
    try:
        there = kmeans(x, 10, seed=1, sample_per_centroid=60, engine=engine)
    finally:
        engine.close()
    assert here.info["schedule"] == "sampled"
    assert here.centroids.tobytes() == there.centroids.tobytes()
    assert here.distances.tobytes() == there.distances.tobytes()


def test_iters_zero_keeps_the_sampled_seeds(digits, low_floor):
    x, _ = digits
    r = kmeans(x, 10, seed=2, iters=0, sample_per_centroid=40)
    assert r.info["schedule"] == "sampled" and r.info["refine_iterations"] == 0
    assert np.array_equal(r.centroids, x[r.seed_rows])  # seed rows index x, not the sample
    assert np.array_equal(r.labels, kmeans_module.assign(x, r.centroids)[0])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sample-per-centroid", "-1"], "--sample-per-centroid"),
        (["--refine-iters", "-2"], "--refine-iters"),
    ],
)
def test_schedule_bounds_on_the_command_line(cli, tmp_path, digits_parquet, args, fragment):
    result = cli("cluster", digits_parquet, "-k", "5", "-o", tmp_path / "o.parquet", *args)
    assert result.exit_code == 2
    assert fragment in result.output


def test_schedule_bounds_from_python(digits):
    x, _ = digits
    with pytest.raises(SelectkitUsageError, match="sample_per_centroid=-1"):
        kmeans(x, 5, sample_per_centroid=-1)
    with pytest.raises(SelectkitUsageError, match="refine_iters"):
        kmeans(x, 5, refine_iters=-1)
    with pytest.raises(SelectkitUsageError, match="refine_iters"):
        cluster_file("x.parquet", "o.parquet", k=5, refine_iters=-1)
