"""moderate: per class, the middle band of distances to the class's coordinate-wise median.
Parameters: band_center, allocation."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, select
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.strategies.moderate import equal_counts


def brute_distances(x, y):
    """Distance of each row to its class's coordinate-wise median, the slow obvious way."""
    d = np.empty(len(x))
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        d[rows] = np.linalg.norm(x[rows].astype(np.float64) - np.median(x[rows], axis=0), axis=1)
    return d


def band_ranks(d, y, picks):
    """Distance rank (0 = nearest the median) of each pick within its class."""
    ranks = np.empty(len(d), dtype=np.int64)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        ranks[rows[np.argsort(d[rows], kind="stable")]] = np.arange(rows.size)
    return ranks[picks]


def test_digits_picks_are_the_middle_band_of_each_class(digits):
    x, y = digits
    manifest, sel = select(Pool.from_arrays(x, labels=y), "moderate", 100, seed=0)
    counts = np.bincount(y[sel.indices], minlength=10)
    assert counts.tolist() == [10] * 10  # equal allocation over the ten digits
    d = brute_distances(x, y)
    assert np.allclose(manifest["score"].to_numpy(), d[sel.indices], rtol=1e-6)
    sizes = np.bincount(y)
    ranks = band_ranks(d, y, sel.indices)
    centre = 0.5 * sizes[y[sel.indices]]
    assert np.all(np.abs(ranks - centre) <= 7)  # 10 consecutive ranks around the middle
    # weight = class size / picks of the class (the mass each pick stands for)
    assert np.allclose(manifest["weight"].to_numpy(), sizes[y[sel.indices]] / 10)


def test_band_center_moves_the_band(digits):
    x, y = digits
    pool = Pool.from_arrays(x, labels=y)
    d = brute_distances(x, y)
    _, easy = select(pool, "moderate", 50, seed=0, params={"band_center": 0.1})
    _, hard = select(pool, "moderate", 50, seed=0, params={"band_center": 0.9})
    assert d[easy.indices].mean() < d[hard.indices].mean()
    sizes = np.bincount(y)
    q_easy = band_ranks(d, y, easy.indices) / sizes[y[easy.indices]]
    q_hard = band_ranks(d, y, hard.indices) / sizes[y[hard.indices]]
    assert q_easy.max() < 0.15 and q_hard.min() > 0.85


def test_proportional_allocation_follows_class_sizes():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [500, 300, 200])
    x = rng.normal(size=(y.size, 8)).astype(np.float32)
    _, sel = select(
        Pool.from_arrays(x, labels=y),
        "moderate",
        100,
        seed=0,
        params={"allocation": "proportional"},
    )
    assert np.bincount(y[sel.indices]).tolist() == [50, 30, 20]
    _, eq = select(Pool.from_arrays(x, labels=y), "moderate", 100, seed=0)
    assert np.bincount(y[eq.indices]).tolist() == [34, 33, 33]  # remainder to the largest


def test_small_classes_give_every_row_and_the_surplus_flows_on():
    assert equal_counts(np.array([2, 50, 50]), 30).tolist() == [2, 14, 14]
    assert equal_counts(np.array([2, 50, 50]), 31).tolist() == [2, 15, 14]  # ties: lower class
    assert equal_counts(np.array([3, 3]), 10).tolist() == [3, 3]


def test_every_class_gets_a_row_when_the_budget_allows():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2, 3], [970, 10, 10, 10])
    x = rng.normal(size=(y.size, 4)).astype(np.float32)
    _, sel = select(
        Pool.from_arrays(x, labels=y), "moderate", 4, seed=0, params={"allocation": "proportional"}
    )
    assert sorted(y[sel.indices].tolist()) == [0, 1, 2, 3]


def test_cluster_column_is_the_class_without_labels(digits):
    x, y = digits
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    manifest, sel = select(pool, "moderate", 30, seed=0)
    assert np.bincount(y[sel.indices]).tolist() == [3] * 10
    assert manifest["score"].to_numpy() == pytest.approx(brute_distances(x, y)[sel.indices])


def test_no_label_and_no_cluster_is_a_usage_error(digits):
    with pytest.raises(SelectkitUsageError, match=r"'label' .* or 'cluster'"):
        select(Pool.from_arrays(digits[0]), "moderate", 10)


def test_partly_null_labels_are_refused_naming_the_column(digits):
    x, y = digits
    labels = np.where(np.arange(len(y)) % 7 == 0, None, y).astype(object)
    with pytest.raises(SelectkitDataError, match=r"column 'label' .* null in 257"):
        select(Pool.from_arrays(x, labels=labels), "moderate", 10)
    # with a cluster column, the clusters are the classes (recorded in the metrics)
    pool = Pool.from_arrays(x, labels=labels, cluster=(y % 3).astype(np.int32))
    _, sel = select(pool, "moderate", 30, seed=0)
    assert np.bincount(y[sel.indices] % 3).tolist() == [10, 10, 10]
    assert sel.metrics["moderate_class_column"] == "cluster"


def tied_pool(n_per, seed):
    """Two classes whose rows all lie at one of two distances: ties everywhere."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(2 * n_per, 3))
    scale = rng.choice([1.0, 2.0], size=(2 * n_per, 1))
    x = (signs * scale).astype(np.float32)
    y = np.repeat([0, 1], n_per)
    ids = [f"r{i}" for i in range(2 * n_per)]
    return x, y, ids


@settings(max_examples=40, deadline=None)
@given(
    st.integers(5, 60),
    st.integers(0, 1000),
    st.floats(0.05, 0.95),
    st.sampled_from(["equal", "proportional"]),
    st.data(),
)
def test_shuffled_rows_give_the_same_manifest(n_per, seed, centre, allocation, data):
    x, y, ids = tied_pool(n_per, seed)
    budget = data.draw(st.integers(1, 2 * n_per))
    params = {"band_center": centre, "allocation": allocation}
    a, _ = select(Pool.from_arrays(x, ids=ids, labels=y), "moderate", budget, seed=3, params=params)
    perm = np.random.default_rng(seed).permutation(len(ids))
    shuffled = Pool.from_arrays(x[perm], ids=[ids[i] for i in perm], labels=y[perm])
    b, _ = select(shuffled, "moderate", budget, seed=3, params=params)
    assert a.equals(b)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.floats(0.05, 0.95), st.data())
def test_counts_are_as_allocated_and_picks_lie_in_the_band(sizes, centre, data):
    rng = np.random.default_rng(len(sizes))
    y = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.normal(size=(y.size, 5)).astype(np.float32)
    budget = data.draw(st.integers(1, y.size))
    _, sel = select(
        Pool.from_arrays(x, labels=y), "moderate", budget, seed=0, params={"band_center": centre}
    )
    want = equal_counts(np.array(sizes), budget)
    got = np.bincount(y[sel.indices], minlength=len(sizes))
    assert got.tolist() == want.tolist()
    if budget >= len(sizes):
        assert (got >= 1).all()
    # the picks of each class are the distances ranked [lo, lo + m) around centre * size;
    # compared as distance values, since tied distances (a class of two rows is always tied)
    # may be broken either way
    d = brute_distances(x, y)
    for c in range(len(sizes)):
        picked = np.sort(d[sel.indices[y[sel.indices] == c]])
        if picked.size:
            lo = int(
                np.clip(np.round(centre * sizes[c] - picked.size / 2), 0, sizes[c] - picked.size)
            )
            band = np.sort(d[y == c])[lo : lo + picked.size]
            assert picked == pytest.approx(band, rel=1e-5, abs=1e-6)


def test_cli_selects_moderate_from_real_embeddings(cli, tmp_path, rt_small, rt_emb):
    labels = tmp_path / "labels.parquet"
    raw = pl.read_ndjson(rt_small)
    raw.select("id", "label").write_parquet(labels)
    out = tmp_path / "core.parquet"
    result = cli(
        "select", rt_emb, labels, "--strategy", "moderate", "--budget", "10%", "-o", out,
        "--param", "band_center=0.4", "--param", "allocation=proportional",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = pl.read_parquet(out)
    assert manifest.height == 40 and manifest["score"].is_not_null().all()
    joined = manifest.join(raw.select("id", "label"), on="id")
    share = raw["label"].value_counts().sort("label")["count"].to_numpy() / raw.height
    got = joined["label"].value_counts().sort("label")["count"].to_numpy()
    assert np.all(np.abs(got - 40 * share) <= 1)


def test_cli_without_a_class_column_exits_2_naming_both(cli, tmp_path, rt_emb):
    result = cli(
        "select", rt_emb, "--strategy", "moderate", "--budget", "5", "-o", tmp_path / "m.parquet"
    )
    assert result.exit_code == 2
    assert "'label'" in result.stderr and "'cluster'" in result.stderr
    assert not (tmp_path / "m.parquet").exists()
