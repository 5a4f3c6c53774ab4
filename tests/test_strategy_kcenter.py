"""Greedy k-center: exact against a brute-force reference, the greedy invariants, and better
coverage than random on real data over many seeds. Parameter: metric (l2, cosine)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selectkit import Pool, select
from selectkit.metrics import coverage
from selectkit.rng import derive_rng, id_hashes, salt_of
from selectkit.strategies.kcenter import greedy_kcenter


def brute_force_kcenter(x: np.ndarray, budget: int, first: int) -> list[int]:
    x = x.astype(np.float64)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    picks = [first]
    min_d = d[first].copy()
    while len(picks) < budget:
        min_d[picks] = -1
        nxt = int(np.argmax(min_d))
        picks.append(nxt)
        min_d = np.minimum(min_d, d[nxt])
    return picks


def test_matches_brute_force_on_digits(digits):
    x = digits[0][:400]
    picks, gains, radius_sq = greedy_kcenter(x, 30, derive_rng(0, "t"))
    assert picks.tolist() == brute_force_kcenter(x, 30, int(picks[0]))
    assert np.isnan(gains[0])
    d_final = coverage(x, picks)["max_distance"]
    assert np.isclose(np.sqrt(radius_sq), d_final, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(
    n_blobs=st.integers(1, 12),
    spread=st.sampled_from([0.3, 1.0, 3.0]),
    labelled=st.integers(0, 5),
    seed=st.integers(0, 1000),
)
def test_pruned_cover_picks_a_farthest_row_every_step(n_blobs, spread, labelled, seed):
    """The triangle-inequality pruning is exact: replaying the picks in float64, every pick is a
    farthest remaining row up to float32 rounding, on well-separated blobs (where
    pruning skips most rows) and on overlapping ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (n_blobs, 4))
    x = (centres[rng.integers(0, n_blobs, 150)] + rng.normal(0, spread, (150, 4))).astype(
        np.float32
    )
    covered = np.zeros(150, dtype=bool)
    covered[:labelled] = True
    budget = 40
    picks, gains, _ = greedy_kcenter(
        x, budget, derive_rng(seed, "t"), selectable=~covered, covered=covered if labelled else None
    )
    x64 = x.astype(np.float64)
    d = ((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1)
    min_d = d[:labelled].min(axis=0) if labelled else d[picks[0]].copy()
    taken = covered.copy()
    taken[picks[0]] = not labelled
    # float32 norm expansion: absolute error ~1e-7 of the squared spread of the data
    tol = 1e-5 * ((x64 - x64.mean(axis=0)) ** 2).sum(1).max()
    for i in range(0 if labelled else 1, budget):
        best = np.where(taken, -1.0, min_d).max()
        assert not taken[picks[i]]
        assert min_d[picks[i]] >= best * (1 - 1e-4) - tol
        assert abs(gains[i] - min_d[picks[i]]) <= 1e-4 * best + tol
        taken[picks[i]] = True
        min_d = np.minimum(min_d, d[picks[i]])


def test_pruning_skips_rows_on_separated_blobs():
    rng = np.random.default_rng(0)
    x = (
        rng.normal(0, 100, (50, 8))[rng.integers(0, 50, 20000)] + rng.normal(0, 1, (20000, 8))
    ).astype(np.float32)
    from selectkit.strategies.kcenter import _Cover

    visited = []
    original = _Cover._update

    def counting(self, rows, *args):
        visited.append(
            len(rows) if not isinstance(rows, slice) else len(range(*rows.indices(len(self.x))))
        )
        return original(self, rows, *args)

    _Cover._update = counting
    try:
        greedy_kcenter(x, 200, derive_rng(0, "t"))
    finally:
        _Cover._update = original
    assert sum(visited) < 0.2 * 200 * len(x)


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(
        np.float32,
        st.tuples(st.integers(2, 60), st.integers(1, 5)),
        elements=st.floats(-100, 100, width=32),
    ),
    data=st.data(),
)
def test_greedy_invariants(x, data):
    """Gains never increase, the final radius is at most the last gain, and picking every row
    leaves radius zero."""
    budget = data.draw(st.integers(1, x.shape[0]))
    picks, gains, radius_sq = greedy_kcenter(x, budget, derive_rng(1, "t"))
    assert np.unique(picks).size == budget
    g = gains[1:]
    assert np.all(np.diff(g) <= 1e-3 * (1 + np.abs(g[:-1])))
    if budget > 1:
        assert radius_sq <= g[-1] * (1 + 1e-4) + 1e-3
    if budget == x.shape[0]:
        assert radius_sq == 0.0


def test_labelled_rows_count_as_centres(digits):
    x, y = digits
    labels = np.where(y == 3, None, y).astype(object)  # everything but the 3s is labelled
    pool = Pool.from_arrays(x, labels=labels)
    manifest, sel = select(pool, "kcenter", 10, seed=0)
    assert (y[sel.indices] == 3).all()
    # no random first pick: every score is a real distance
    assert manifest.get_column("score").null_count() == 0


def test_beats_random_coverage_on_real_data(digits):
    """Over 10 seeds, kcenter's worst-case distance to the nearest pick is below random's
    every time, and lower on average by a wide margin."""
    x = digits[0]
    pool = Pool.from_arrays(x)
    ours, theirs = [], []
    for seed in range(10):
        ours.append(coverage(x, select(pool, "kcenter", 50, seed=seed)[1].indices)["max_distance"])
        theirs.append(coverage(x, select(pool, "random", 50, seed=seed)[1].indices)["max_distance"])
    ours, theirs = np.array(ours), np.array(theirs)
    assert (ours < theirs).all()
    assert ours.mean() < 0.85 * theirs.mean()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_metric_param(digits, metric):
    x = digits[0][:300]
    _, sel = select(Pool.from_arrays(x), "kcenter", 20, seed=0, params={"metric": metric})
    xn = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    rng = derive_rng(0, "select", "kcenter")
    # the first pick is the row with the smallest seeded hash of its id (0..299 here)
    keys = id_hashes(np.arange(x.shape[0]), salt_of(rng))
    picks, _, _ = greedy_kcenter(xn, 20, rng, first_keys=keys)
    assert sel.indices.tolist() == picks.tolist()


def test_cosine_ignores_scale(digits):
    x = digits[0][:300]
    scaled = x * np.linspace(0.5, 3.0, x.shape[0], dtype=np.float32)[:, None]
    a = select(Pool.from_arrays(x), "kcenter", 15, params={"metric": "cosine"})[1].indices
    b = select(Pool.from_arrays(scaled), "kcenter", 15, params={"metric": "cosine"})[1].indices
    assert a.tolist() == b.tolist()


def test_memmap_input_gives_same_picks(tmp_path, digits):
    x = digits[0]
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = greedy_kcenter(x, 25, derive_rng(0, "t"))[0]
    b = greedy_kcenter(mm, 25, derive_rng(0, "t"))[0]
    assert a.tolist() == b.tolist()


def test_duplicates_do_not_break_it():
    x = np.zeros((10, 3), dtype=np.float32)
    _, sel = select(Pool.from_arrays(x), "kcenter", 10, seed=0)
    assert sorted(sel.indices.tolist()) == list(range(10))
