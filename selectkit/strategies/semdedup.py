"""Semantic deduplication within clusters (SemDeDup; Abbas et al. 2023).

Inside each cluster, rows are visited in a fixed order (farthest from the cluster's centroid
first, as in SemDeDup, so the atypical copy of a group is the one kept) and a row is dropped when
its cosine similarity to an earlier *kept* row exceeds the threshold. Already labelled rows are
visited first and always kept, so near-copies of labelled data are dropped too. Similarities are
computed cluster by cluster, a block of rows against the rows kept so far: never an n x n
matrix, and the fewer rows are kept (the more duplicates), the less work.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.linalg import group_means, unit_rows
from selectkit.pool import Pool
from selectkit.strategies.base import Param, Selection, register_strategy

BLOCK_ENTRIES = 1 << 24  # similarity entries per block: 64 MiB of float32
MAX_BLOCK_ROWS = 1024  # a block's survivors are also compared among themselves (rows^2)


def near_pairs(v: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (later, earlier, similarity) of rows of the unit-norm ``v`` whose cosine similarity
    exceeds ``threshold``, earlier < later; O(m^2 d) time. Used within one block of rows."""
    sim = v @ v.T
    later, earlier = np.nonzero(np.tril(sim > threshold, k=-1))
    return later, earlier, sim[later, earlier]


def dedup_in_order(
    v: np.ndarray, threshold: float, forced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy dedup of the unit-norm rows ``v`` in their order: a row is dropped when its cosine
    similarity to an earlier kept row exceeds ``threshold``; ``forced`` rows are always kept.

    Returns (kept mask, position of the first kept row it matched or -1, that similarity). Rows
    go in blocks: each block is compared with the rows kept so far (one matrix product), then
    its survivors among themselves. Time O(m * kept * d), so near-duplicate-heavy data is fast;
    memory O(BLOCK_ENTRIES) for the similarity blocks plus the kept rows.
    """
    m = v.shape[0]
    kept = np.zeros(m, dtype=bool)
    match = np.full(m, -1, dtype=np.int64)
    match_sim = np.full(m, np.nan, dtype=np.float64)
    kept_rows = np.empty(0, dtype=np.int64)
    start = 0
    while start < m:
        step = int(min(MAX_BLOCK_ROWS, max(1, BLOCK_ENTRIES // max(kept_rows.size, 1))))
        block = np.arange(start, min(m, start + step))
        start = block[-1] + 1
        alive = np.ones(block.size, dtype=bool)
        if kept_rows.size:
            sim = v[block] @ v[kept_rows].T
            above = sim > threshold
            hit = above.any(axis=1) & ~forced[block]
            first = above.argmax(axis=1)  # kept rows are in visiting order: the earliest match
            rows = np.flatnonzero(hit)
            match[block[rows]] = kept_rows[first[rows]]
            match_sim[block[rows]] = sim[rows, first[rows]]
            alive = ~hit
        survivors = block[alive]
        later, earlier, sims = near_pairs(v[survivors], threshold)
        keep_s, match_s, sim_s = greedy_keep(
            survivors.size, later, earlier, sims, forced[survivors]
        )
        kept[survivors[keep_s]] = True
        gone = np.flatnonzero(match_s >= 0)
        match[survivors[gone]] = survivors[match_s[gone]]
        match_sim[survivors[gone]] = sim_s[gone]
        kept_rows = np.concatenate([kept_rows, survivors[keep_s]])
    return kept, match, match_sim


def greedy_keep(
    m: int, later: np.ndarray, earlier: np.ndarray, sims: np.ndarray, forced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visit rows 0..m-1 in order; a row is dropped when a near pair links it to an earlier kept
    row (``forced`` rows are always kept). Returns (kept mask, matched earlier row or -1, its
    similarity, NaN if none) per row. The loop runs over rows that have a near pair only."""
    kept = np.ones(m, dtype=bool)
    match = np.full(m, -1, dtype=np.int64)
    match_sim = np.full(m, np.nan, dtype=np.float64)
    if later.size == 0:
        return kept, match, match_sim
    order = np.lexsort((earlier, later))
    later, earlier, sims = later[order], earlier[order], sims[order]
    starts = np.flatnonzero(np.r_[True, later[1:] != later[:-1]])
    ends = np.r_[starts[1:], later.size]
    # Python lists: fast scalar access in the sequential pass
    kept_list, earlier_list, later_list = kept.tolist(), earlier.tolist(), later.tolist()
    forced_list = forced.tolist()
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        row = later_list[s]
        if forced_list[row]:
            continue
        for j in range(s, e):  # earlier rows, in order: the first kept one is the match
            if kept_list[earlier_list[j]]:
                kept_list[row] = False
                match[row] = earlier_list[j]
                match_sim[row] = sims[j]
                break
    return np.array(kept_list, dtype=bool), match, match_sim


@register_strategy(
    "semdedup",
    summary="Semantic dedup: within each cluster drop rows whose cosine similarity to an "
    "earlier kept row exceeds --threshold (visited farthest from the centroid first).",
    needs=("embedding", "cluster"),
    params={
        "threshold": Param(
            float, 0.95, "cosine similarity above which a row is a duplicate", low=-1.0, high=1.0
        ),
        "order": Param(
            str,
            "far",
            "visiting order in a cluster: far (farthest from the centroid first, kept "
            "preferentially, as SemDeDup), near (most typical first), or input (row order)",
            ("far", "near", "input"),
        ),
    },
    cost="O(sum over clusters of |cluster| * kept in it * d) time; O(n + 16M) memory.",
    self_sized=True,
    emits=("dropped",),
    reads_row_order=lambda params: params.get("order") == "input",
)
def semdedup(
    pool: Pool,
    budget: None,
    rng: np.random.Generator,
    threshold: float = 0.95,
    order: str = "far",
) -> Selection:
    """Return every unlabelled row that is no near-duplicate of an earlier kept row, in pool
    order (no score). ``tables['dropped']`` lists each dropped id with the kept id it
    duplicates and their similarity."""
    x = pool.embeddings
    labels = pool.cluster_labels
    k = int(labels.max()) + 1
    centres = unit_rows(group_means(x, labels, k)[0])
    labelled = pool.labelled_mask
    by_cluster = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_cluster], np.arange(k + 1))
    kept = np.ones(len(pool), dtype=bool)
    match = np.full(len(pool), -1, dtype=np.int64)
    match_sim = np.full(len(pool), np.nan)
    for c in range(k):  # a loop over clusters; the work inside is blocked matrix products
        rows = by_cluster[bounds[c] : bounds[c + 1]]
        if rows.size < 2:
            continue
        v = unit_rows(x[rows])
        cos = v @ centres[c].astype(np.float32)
        key = {"far": cos, "near": -cos, "input": np.zeros(rows.size)}[order]
        # labelled rows first (always kept), then by the chosen order, ties by row
        visit = np.lexsort((rows, key, ~labelled[rows]))
        rows, v = rows[visit], v[visit]
        keep_c, match_c, sim_c = dedup_in_order(v, threshold, labelled[rows])
        kept[rows] = keep_c
        match[rows] = np.where(match_c >= 0, rows[np.maximum(match_c, 0)], -1)
        match_sim[rows] = sim_c
    candidates = pool.candidates
    picks = candidates[kept[candidates]]
    dropped = candidates[~kept[candidates]]
    ids = pool.ids
    table = pl.DataFrame(
        {
            "id": ids.gather(dropped),
            "duplicate_of": ids.gather(match[dropped]),
            "similarity": match_sim[dropped],
            "cluster": pool.frame.get_column(pool.columns.cluster).gather(dropped),
        }
    )
    return Selection(
        indices=picks,
        tables={"dropped": table},
        metrics={
            "semdedup_kept": int(picks.size),
            "semdedup_dropped": int(dropped.size),
            "semdedup_dropped_share": float(dropped.size / max(candidates.size, 1)),
        },
    )
