"""Moderate-DS (Xia et al., ICLR 2023), the coreset of "The Power of Few" (Jafari et al. 2024).

Per class, the prototype is the coordinate-wise median embedding and each row's score is its
Euclidean distance to it. The class keeps its share of the budget from the band of distance
ranks centred at ``band_center`` (0.5: the rows of moderate distance, neither the most typical
nor the outliers; lower targets easier rows, higher harder ones). The class is the ``label``
column when every candidate row has a label; otherwise (no label column, ``--label-col none``,
or null labels) the ``cluster`` column, and a partly null label column without a cluster column
is refused. The column used is recorded as the metric ``moderate_class_column``.

Allocation: ``equal`` gives every class the same count (min(t, size) for the largest cut t that
fits; small classes are taken whole and their surplus flows to the others; the remainder one
each to the largest classes, ties by class value), ``proportional`` each class its share of the
pool (largest remainder). Every class gets at least one row when the budget allows. Ties in
distance are broken by a seeded hash of the id, never by row position. Picks are ranked by how
close their distance rank is to the band centre (relative to the class), so a manifest prefix
stays spread over the classes. ``weight`` = class size / picks in the class (the mass each pick
stands for: weighted training restores the class priors that equal counts distort).

Cost: O(n d) for the medians and distances (computed in blocks of columns, so the extra memory
is O(n) plus one block of the largest class), O(n log n) for the sort; no loop over rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.pool import Pool, column_option
from selectkit.rng import id_hashes, salt_of
from selectkit.strategies.allocation import proportional, water_level
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy

COLUMN_BLOCK = 64  # embedding columns per pass: bounds the per-class copy to n_c x 64 floats


def class_codes(pool: Pool, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """Dense int64 class codes 0..C-1 (in sorted class order) of ``rows`` and the column they
    came from: the label column where every such row has a label, else the cluster column (a
    label column null on some rows and no cluster column is a data error)."""
    name = pool.columns.label
    if pool.use_labels and name in pool.frame.columns:
        labels = pool.frame.get_column(name).gather(rows)
        nulls = labels.null_count()
        if nulls == 0:
            codes = labels.rank("dense").cast(pl.Int64).to_numpy() - 1
            return codes.astype(np.int64), name
        if nulls < labels.len() and not pool.has("cluster"):
            raise SelectkitDataError(
                f"column '{name}' of {pool.where} is null in {nulls} of the {labels.len()} rows "
                "moderate may pick; give every row a class, or classify by cluster with "
                + column_option("label", "none")
            )
    if pool.has("cluster"):  # dense over ``rows``: a cluster without such rows is no class
        codes = np.unique(pool.cluster_labels[rows], return_inverse=True)[1]
        return codes.astype(np.int64), pool.columns.cluster
    raise SelectkitUsageError(
        f"strategy 'moderate' needs a class per row: column '{name}' (label) or "
        f"'{pool.columns.cluster}' (cluster), which {pool.where} lacks; add labels, or make "
        "clusters with `selectkit cluster` and pass that file too"
    )


def equal_counts(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Per-class counts min(t, n_c) for the largest cut t that fits ``budget``; the remainder one
    each to the classes larger than t, largest first, ties by class code. Sums to
    ``min(budget, sizes.sum())``; O(C log C)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    budget = min(int(budget), int(sizes.sum()))
    lo = water_level(sizes, budget)
    counts = np.minimum(lo, sizes)
    rest = budget - int(counts.sum())
    if rest:
        larger = np.flatnonzero(sizes > lo)
        larger = larger[np.lexsort((larger, -sizes[larger]))]
        counts[larger[:rest]] += 1
    return counts


def at_least_one_each(counts: np.ndarray) -> np.ndarray:
    """``counts`` with every empty class given one row, taken from the classes with the most
    (ties by the highest code); assumes ``counts.sum() >= counts.size``. A loop over classes."""
    counts = counts.copy()
    for c in np.flatnonzero(counts == 0):
        donor = int(counts.size - 1 - np.argmax(counts[::-1]))
        counts[donor] -= 1
        counts[c] = 1
    return counts


def distances_to_medians(x: np.ndarray, rows: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Float64 Euclidean distance of each of ``rows`` (positions into ``x``) to its group's
    coordinate-wise median; ``groups`` are codes 0..k-1 per row. O(n d) time (a selection per
    column block), O(n + n_c * COLUMN_BLOCK) memory. A loop over groups and column blocks."""
    order = np.argsort(groups, kind="stable")
    bounds = np.searchsorted(groups[order], np.arange(k + 1))
    d2 = np.zeros(rows.size, dtype=np.float64)
    for g in range(k):
        members = order[bounds[g] : bounds[g + 1]]
        src = rows[members]
        for a in range(0, x.shape[1], COLUMN_BLOCK):
            block = np.asarray(x[src, a : a + COLUMN_BLOCK], dtype=np.float64)
            diff = block - np.median(block, axis=0)
            d2[members] += np.einsum("ij,ij->i", diff, diff)
    return np.sqrt(d2)


@register_strategy(
    "moderate",
    summary="Moderate-DS coreset (Xia et al. 2023; The Power of Few): per class, the rows whose "
    "distance to the class's median embedding is closest to the middle of the class's distances.",
    needs=("embedding",),
    optional=("label", "cluster"),
    params={
        "band_center": Param(
            float,
            0.5,
            "where the band of distance ranks is centred: 0.5 moderate rows, lower easier "
            "(closer to the class median), higher harder",
            low=0.0,
            high=1.0,
            low_open=True,
            high_open=True,
        ),
        "allocation": Param(
            str,
            "equal",
            "equal: the same count per class (small classes whole, surplus to the rest); "
            "proportional: each class's share of the pool",
            ("equal", "proportional"),
        ),
    },
    labels=LABELS_AS_DATA,  # pruning labelled data: every row may be picked
    cost="O(n d) medians and distances + O(n log n) sort; O(n) memory beyond the embeddings.",
)
def moderate(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    band_center: float = 0.5,
    allocation: str = "equal",
) -> Selection:
    """Return ``budget`` rows from the middle band of each class's distances to its median;
    scores are those distances, weights class size / picks in the class."""
    candidates = pool.candidates
    groups, source = class_codes(pool, candidates)
    x = pool.embeddings
    k = int(groups.max()) + 1 if groups.size else 0
    sizes = np.bincount(groups, minlength=k)
    if allocation == "proportional":
        counts = proportional(sizes, budget, rng)
    else:
        counts = equal_counts(sizes, budget)
    if budget >= k:
        counts = at_least_one_each(counts)
    dist = distances_to_medians(x, candidates, groups, k)
    tie = id_hashes(pool.ids.gather(candidates), salt_of(rng))
    order = np.lexsort((tie, dist, groups))  # by class, then distance, ties by id hash
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rank = np.arange(groups.size) - starts[groups[order]]
    # band [lo, lo + m) centred at band_center * n, clipped inside the class
    lo = np.clip(np.round(band_center * sizes - counts / 2.0), 0, sizes - counts).astype(np.int64)
    g_sorted = groups[order]
    keep = (rank >= lo[g_sorted]) & (rank < lo[g_sorted] + counts[g_sorted])
    picks = order[keep]
    quantile = (rank[keep] + 0.5) / sizes[g_sorted[keep]]
    # most central (relative to the class) first, ties by id hash: a prefix spans the classes
    pick_order = np.lexsort((tie[picks], np.abs(quantile - band_center)))
    picks = picks[pick_order]
    g_picks = groups[picks]
    weights = sizes[g_picks] / counts[g_picks]
    return Selection(
        indices=candidates[picks],
        scores=dist[picks],
        weights=weights.astype(np.float64),
        metrics={
            "moderate_classes": k,
            "moderate_class_column": source,
            "moderate_min_class_picks": int(counts.min()) if k else 0,
        },
    )
