"""Stratified random sampling within clusters (or any integer grouping)."""

from __future__ import annotations

import numpy as np

from selectkit.pool import Pool
from selectkit.strategies.allocation import draw_within_groups, fill_smallest_first, proportional
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy


@register_strategy(
    "stratified",
    summary="Uniform random rows within each cluster; the budget split in proportion to cluster "
    "size, or equally (small clusters taken whole, the surplus to the rest).",
    needs=("cluster",),
    params={
        "allocation": Param(
            str,
            "proportional",
            "proportional: each cluster's share of the pool; equal: the same count per cluster",
            ("proportional", "equal"),
        )
    },
    labels=LABELS_AS_DATA,  # sampling labelled data per cluster
    cost="O(n log n) time, O(n) memory.",
)
def stratified(
    pool: Pool, budget: int, rng: np.random.Generator, allocation: str = "proportional"
) -> Selection:
    """Return ``budget`` rows drawn uniformly inside clusters; O(n log n)."""
    candidates = pool.candidates
    _, groups = np.unique(pool.cluster_labels[candidates], return_inverse=True)
    sizes = np.bincount(groups)
    if allocation == "equal":
        counts = fill_smallest_first(sizes, budget)
    else:
        counts = proportional(sizes, budget, rng)
    picks = draw_within_groups(groups, counts, rng)
    picks = picks[rng.permutation(picks.size)]
    return Selection(
        indices=candidates[picks],
        metrics={
            "stratified_clusters": int(sizes.size),
            "stratified_min_cluster": int(sizes.min()),
        },
    )
