"""stratified: allocation across clusters and uniform draws inside them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, select
from selectkit.strategies.allocation import proportional


def pool_of(sizes):
    cluster = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    return Pool.from_arrays(np.zeros((cluster.size, 2), np.float32), cluster=cluster), cluster


def test_proportional_allocation():
    pool, cluster = pool_of([500, 300, 200])
    _, sel = select(pool, "stratified", 100, seed=0, params={"allocation": "proportional"})
    assert np.bincount(cluster[sel.indices]).tolist() == [50, 30, 20]


def test_equal_allocation_takes_small_clusters_whole():
    pool, cluster = pool_of([500, 300, 5])
    _, sel = select(pool, "stratified", 105, seed=0, params={"allocation": "equal"})
    assert np.bincount(cluster[sel.indices]).tolist() == [50, 50, 5]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.data())
def test_proportional_counts_sum_and_stay_within_sizes(sizes, data):
    sizes = np.array(sizes)
    budget = data.draw(st.integers(0, int(sizes.sum())))
    counts = proportional(sizes, budget, np.random.default_rng(0))
    assert counts.sum() == budget and np.all(counts <= sizes)
    assert np.all(np.abs(counts - sizes * budget / sizes.sum()) < 1.0 + 1e-9)


def test_draws_are_uniform_inside_a_cluster():
    pool, _ = pool_of([50, 50])
    hits = np.zeros(100)
    for seed in range(400):
        _, sel = select(pool, "stratified", 10, seed=seed, metrics=False)
        hits[sel.indices] += 1
    # each row is picked with probability 0.1 (40 expected hits): a chi-square test with 99
    # degrees of freedom, rejected far out in the tail (mean 99, sd 14)
    chi2 = ((hits - 40.0) ** 2 / 40.0).sum()
    assert chi2 < 99 + 6 * np.sqrt(2 * 99)
