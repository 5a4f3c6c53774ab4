"""Split a budget across groups (strata, clusters, tree nodes) and draw within each group.

Shared by ccs, stratified and balanced. Every function is O(k log k) in the number of groups,
except ``draw_within_groups``, which is O(n log n) in the rows and loops over no row.
"""

from __future__ import annotations

import numpy as np


def fill_smallest_first(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Per-group counts summing to ``min(budget, sizes.sum())``: the smallest groups are taken
    whole and their surplus flows to the larger ones (CCS's allocation).

    Groups in increasing size: b_i = min(n_i, floor(R / (groups left))), R -= b_i. Sizes
    [2, 5, 100] with budget 30 give [2, 5, 23]. Ties in size keep their input order.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    counts = np.zeros_like(sizes)
    left = int(budget)
    order = np.argsort(sizes, kind="stable")
    for i, g in enumerate(order):  # a loop over groups (at most a few thousand), not rows
        take = min(int(sizes[g]), left // (order.size - i))
        counts[g] = take
        left -= take
    return counts


def water_level(sizes: np.ndarray, budget: int) -> int:
    """The largest integer cut t with sum(min(t, n_j)) <= ``budget``; O(G log max n_j)."""
    lo, hi = 0, int(np.max(sizes, initial=0))
    while lo < hi:  # filled(t) = sum(min(t, n_j)) grows with t
        mid = (lo + hi + 1) // 2
        if int(np.minimum(mid, sizes).sum()) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def water_fill(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Per-group counts min(t, n_j) for the largest integer cut t with sum <= ``budget``; the
    remainder goes one each to groups larger than t, chosen at random (balanced sampling).
    Sums to ``min(budget, sizes.sum())``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    budget = min(int(budget), int(sizes.sum()))
    if budget == 0:
        return np.zeros_like(sizes)
    lo = water_level(sizes, budget)
    counts = np.minimum(lo, sizes)
    rest = budget - int(counts.sum())
    if rest:
        larger = np.flatnonzero(sizes > lo)
        counts[rng.choice(larger, size=rest, replace=False)] += 1
    return counts


def proportional(sizes: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Per-group counts proportional to size (largest remainder; ties at random), each at most
    its group's size, summing to ``min(budget, sizes.sum())``."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    budget = min(int(budget), total)
    exact = sizes * (budget / total)
    counts = np.floor(exact).astype(np.int64)
    rest = budget - int(counts.sum())
    if rest:
        frac = exact - counts
        frac[counts >= sizes] = -1.0  # a full group cannot take one more
        order = np.lexsort((rng.random(sizes.size), -frac))
        counts[order[:rest]] += 1
    return counts


def draw_within_groups(
    groups: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator | None = None,
    key: np.ndarray | None = None,
) -> np.ndarray:
    """Positions into ``groups`` (int codes 0..k-1): ``counts[g]`` from each group g, uniformly
    at random without replacement, or the ``counts[g]`` smallest ``key`` values when a key is
    given (ties by position). Returned grouped by group, in draw order within each group."""
    order_key = key if key is not None else rng.random(groups.size)
    order = np.lexsort((np.arange(groups.size), order_key, groups))
    sorted_groups = groups[order]
    starts = np.searchsorted(sorted_groups, np.arange(counts.size))
    rank = np.arange(groups.size) - starts[sorted_groups]
    return order[rank < counts[sorted_groups]]


def capped_proportional(
    mass: np.ndarray, sizes: np.ndarray, budget: int, tie: np.ndarray
) -> np.ndarray:
    """Per-group counts proportional to ``mass`` (largest remainder), each at most its group's
    size, the surplus of capped groups redistributed over the others; sums to
    ``min(budget, sizes.sum())``.

    Groups whose share b * m_j / sum(m) reaches their size are taken whole and the rest of the
    budget is shared over the other groups by their mass, repeated until no share exceeds its
    size; then each uncapped group gets floor(share) and the leftover rows go one each to the
    largest fractional parts (ties: smallest ``tie`` key). Groups of zero mass get rows only when
    the groups with mass cannot hold the budget (then they share the rest by size).
    ``mass = sizes`` is ``proportional``; ``mass = weights * sizes`` is a weighted allocation.
    O(k) per capping round, at most k rounds (a loop over groups, never rows).
    """
    mass = np.asarray(mass, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.int64)
    budget = min(int(budget), int(sizes.sum()))
    counts = np.zeros_like(sizes)
    live = (mass > 0) & (sizes > 0)
    if int(sizes[live].sum()) <= budget:  # every group with mass is taken whole
        counts[live] = sizes[live]
        rest = budget - int(counts.sum())
        if rest:
            counts[~live] = capped_proportional(
                sizes[~live].astype(np.float64), sizes[~live], rest, tie[~live]
            )
        return counts
    open_ = live.copy()
    left = budget
    while True:  # at most k rounds: each one caps at least one more group
        share = np.zeros(sizes.size)
        share[open_] = left * mass[open_] / mass[open_].sum()
        full = open_ & (share >= sizes)
        if not full.any():
            break
        counts[full] = sizes[full]
        left -= int(sizes[full].sum())
        open_ &= ~full
    base = np.floor(share[open_]).astype(np.int64)
    counts[open_] = base
    rest = left - int(base.sum())
    if rest:
        idx = np.flatnonzero(open_)
        frac = share[idx] - base
        order = np.lexsort((tie[idx], -frac))
        counts[idx[order[:rest]]] += 1
    return counts
