"""Seeders: rejection sampling is exact D^2 sampling, and each seeder's quality on real data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit.cluster.seeding import (
    SEEDERS,
    RejectionSampler,
    _Centres,
    _Data,
    potential,
    seed,
)
from selectkit.errors import SelectkitDataError
from selectkit.rng import derive_rng


def test_rejection_sampling_is_exact_d2(digits):
    """200,000 draws on a fixed 50-point set with fixed centres: total-variation distance to the
    D^2 distribution below 0.01, and mean trials within 3% of 2(F + n|c1|^2)/Delta(X,S)."""
    x = digits[0][:50]
    data = _Data(x)
    first = 7
    centres = _Centres(data, 5)
    for row in (first, 11, 23, 31, 42):
        centres.add(row)
    sampler = RejectionSampler(data, first)
    rng = derive_rng(0, "test", "rs")
    rows, trials = sampler.draw(centres, rng, count=200_000)
    assert rows.size == 200_000
    delta = centres.min_sq_dist(np.arange(50))
    target = delta / delta.sum()
    empirical = np.bincount(rows, minlength=50) / rows.size
    assert 0.5 * np.abs(empirical - target).sum() < 0.01
    expected_trials = 2 * (data.sq.sum() + 50 * data.sq[first]) / delta.sum()
    assert abs(trials / rows.size - expected_trials) / expected_trials < 0.03
    assert empirical[[first, 11, 23, 31, 42]].sum() == 0  # a centre has Delta = 0: never drawn


def test_kmeanspp_draw_matches_d2_too(digits):
    """The plain k-means++ seeder's second centre follows D^2 w.r.t. the first (chi-square)."""
    x = digits[0][:30]
    counts = np.zeros(30)
    firsts = []
    for s in range(3000):
        rows = seed(x, 2, derive_rng(s, "t"), method="kmeans++").indices
        firsts.append(rows[0])
        if rows[0] == 0:
            counts[rows[1]] += 1
    assert counts.sum() > 50
    d = ((x - x[0]) ** 2).sum(1).astype(np.float64)
    expected = d / d.sum() * counts.sum()
    mask = expected > 5
    chi2 = ((counts[mask] - expected[mask]) ** 2 / expected[mask]).sum()
    assert chi2 < 2 * mask.sum() + 20


@pytest.mark.parametrize("method", SEEDERS)
def test_every_seeder_returns_k_distinct_rows_reproducibly(digits, method):
    x = digits[0]
    a = seed(x, 25, derive_rng(3, "s"), method=method)
    b = seed(x, 25, derive_rng(3, "s"), method=method)
    assert a.indices.tolist() == b.indices.tolist()
    assert np.unique(a.indices).size == 25
    assert a.indices.min() >= 0 and a.indices.max() < x.shape[0]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), data=st.data())
def test_seeders_on_small_and_duplicate_data(n, data):
    k = data.draw(st.integers(1, n))
    method = data.draw(st.sampled_from(SEEDERS))
    dup = data.draw(st.booleans())
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    if dup:
        x[: n // 2] = x[0]
    rows = seed(
        x, k, derive_rng(0, "h"), method=method, max_trials=data.draw(st.sampled_from([0, 1, 5]))
    ).indices
    assert np.unique(rows).size == k


def _mean_costs(x, k, methods, seeds=10):
    out = {}
    for m in methods:
        costs = [
            potential(x, x[seed(x, k, derive_rng(s, "q"), method=m).indices]) for s in range(seeds)
        ]
        out[m] = (np.mean(costs), np.std(costs) / np.sqrt(seeds))
    return out


def test_seed_quality_on_real_data(digits):
    """Over 10 seeds on digits (k=30): rs is within 5% of k-means++ (they sample the same
    distribution), rs-greedy within 3% of greedy k-means++, greedy beats plain D^2 sampling and
    every seeder beats random rows."""
    x = digits[0]
    c = _mean_costs(x, 30, SEEDERS)
    assert abs(c["rs"][0] / c["kmeans++"][0] - 1) < 0.05
    assert c["rs-greedy"][0] < 1.03 * c["greedy"][0]
    assert c["greedy"][0] < c["kmeans++"][0]
    for m in SEEDERS:
        if m != "random":
            assert c[m][0] < c["random"][0], m


def test_max_trials_falls_back_to_uniform(digits):
    x = digits[0]
    capped = seed(x, 40, derive_rng(0, "c"), method="rs", max_trials=1)
    assert capped.fallbacks > 0 and np.unique(capped.indices).size == 40
    free = seed(x, 40, derive_rng(0, "c"), method="rs", max_trials=0)
    assert free.fallbacks == 0


def test_k_out_of_range():
    with pytest.raises(SelectkitDataError, match="larger than the 3 rows"):
        seed(np.zeros((3, 2), np.float32), 4, derive_rng(0), method="rs")
