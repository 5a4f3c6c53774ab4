"""badge: the factorised gradient-embedding distances equal the explicit ones, and the picks equal
a brute-force BADGE on explicit gradient embeddings with the same random stream."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, select
from selectkit.cluster.seeding import d2_draw
from selectkit.rng import derive_rng
from selectkit.strategies.badge import GradientEmbedding
from tests._al_helpers import digits_proba


def explicit(p: np.ndarray, h: np.ndarray) -> np.ndarray:
    a = p.astype(np.float64).copy()
    a[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    return (a[:, :, None] * h.astype(np.float64)[:, None, :]).reshape(len(p), -1)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), c=st.integers(2, 6), d=st.integers(1, 8), seed=st.integers(0, 999))
def test_factorised_distance_equals_explicit(n, c, d, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    h = rng.normal(0, 3, (n, d)).astype(np.float32)
    g = explicit(p, h)
    grad = GradientEmbedding(p, h)
    assert np.allclose(grad.norm_sq, (g**2).sum(1), rtol=1e-4, atol=1e-5)
    j = int(rng.integers(n))
    want = ((g - g[j]) ** 2).sum(1)
    assert np.allclose(grad.sq_dist_to(j), want, rtol=1e-3, atol=1e-4 * want.max() + 1e-6)


def brute_force_badge(g: np.ndarray, budget: int, rng) -> list[int]:
    picks = [int(np.argmax((g**2).sum(1)))]
    min_d = ((g - g[picks[0]]) ** 2).sum(1)
    min_d[picks[0]] = 0
    while len(picks) < budget:
        row = int(d2_draw(min_d, rng, 1)[0])
        picks.append(row)
        min_d = np.minimum(min_d, ((g - g[row]) ** 2).sum(1))
        min_d[row] = 0
    return picks


def test_same_picks_as_explicit_badge_on_digits(digits):
    x = digits[0][:600]
    p = digits_proba(digits)[:600]
    _, sel = select(Pool.from_arrays(x, proba=p), "badge", 25, seed=3)
    want = brute_force_badge(
        explicit(p.astype(np.float32), x), 25, derive_rng(3, "select", "badge")
    )
    assert sel.indices.tolist() == want


def test_more_diverse_and_more_uncertain_than_random(digits):
    """Over 10 seeds BADGE's batch covers more predicted classes and has lower max-probability
    than a random batch of the same size."""
    x = digits[0]
    p = digits_proba(digits)
    pool = Pool.from_arrays(x, proba=p)
    conf_b, conf_r = [], []
    for seed in range(10):
        b = select(pool, "badge", 30, seed=seed)[1].indices
        r = select(pool, "random", 30, seed=seed)[1].indices
        conf_b.append(p[b].max(1).mean())
        conf_r.append(p[r].max(1).mean())
    assert np.mean(conf_b) < np.mean(conf_r)


def test_labelled_rows_never_picked_and_duplicates_handled():
    p = np.tile([[0.6, 0.4]], (8, 1))
    x = np.ones((8, 3), dtype=np.float32)  # all rows identical: zero D² mass after one pick
    labels = np.array([1, None, None, None, None, None, None, None], dtype=object)
    _, sel = select(Pool.from_arrays(x, proba=p, labels=labels), "badge", 7, seed=0)
    assert sorted(sel.indices.tolist()) == list(range(1, 8))
