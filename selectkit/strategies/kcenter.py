"""Greedy k-center (Gonzalez 1985; the core-set of Sener & Savarese 2018).

Repeatedly picks the unlabelled row farthest from everything already picked or labelled, which
2-approximates the smallest radius that covers the pool. Squared distances to all rows are
updated in chunks with one BLAS matrix-vector product per chunk, so extra memory is O(n) floats
plus one chunk, never an n x n or n x budget matrix.
"""

from __future__ import annotations

import faiss
import numpy as np

from selectkit.console import progress_bar
from selectkit.pool import Pool
from selectkit.strategies.base import Param, Selection, register_strategy

CHUNK_ROWS = 1 << 16


def squared_norms(x: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Row-wise squared L2 norms (float32), computed in chunks so memmaps stay paged."""
    out = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], chunk_rows):
        block = np.asarray(x[start : start + chunk_rows], dtype=np.float32)
        out[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    return out


def update_min_sq_dist(
    x: np.ndarray,
    x_sq: np.ndarray,
    center: np.ndarray,
    min_dist: np.ndarray,
    chunk_rows: int = CHUNK_ROWS,
) -> None:
    """In place: ``min_dist = min(min_dist, ||x - center||^2)``; O(n d) time, O(chunk) memory."""
    center = np.asarray(center, dtype=np.float32)
    c_sq = np.float32(center @ center)
    buf = np.empty(min(chunk_rows, x.shape[0]), dtype=np.float32)
    for start in range(0, x.shape[0], chunk_rows):
        block = x[start : start + chunk_rows]
        m = block.shape[0]
        d = buf[:m]
        np.dot(block, center, out=d)
        d *= -2.0
        d += x_sq[start : start + m]
        d += c_sq
        np.maximum(d, 0.0, out=d)  # rounding can make a true zero slightly negative
        np.minimum(min_dist[start : start + m], d, out=min_dist[start : start + m])


def min_sq_dist_to_set(
    x: np.ndarray, centers: np.ndarray, chunk_rows: int = CHUNK_ROWS
) -> np.ndarray:
    """Squared distance of every row of ``x`` to its nearest row of ``centers`` (exact, faiss)."""
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    out = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], chunk_rows):
        block = np.ascontiguousarray(x[start : start + chunk_rows], dtype=np.float32)
        dist, _ = index.search(block, 1)
        out[start : start + block.shape[0]] = np.maximum(dist[:, 0], 0.0)
    return out


def greedy_kcenter(
    x: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    selectable: np.ndarray | None = None,
    covered: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy k-center on the rows of ``x``.

    ``selectable``: boolean mask of rows that may be picked (default all); ``covered``: boolean
    mask of rows that already act as centres (e.g. labelled rows). Without covered rows the first
    pick is uniform among the selectable ones. Returns (picked row indices in order, the squared
    distance of each pick to the nearest earlier centre, NaN for a random first pick, and the
    final covering radius squared over the selectable rows). O(n d budget) time, O(n) memory.
    """
    n = x.shape[0]
    selectable = np.ones(n, dtype=bool) if selectable is None else selectable
    x_sq = squared_norms(x)
    picks = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.float64)
    if covered is not None and covered.any():
        min_dist = min_sq_dist_to_set(x, x[np.flatnonzero(covered)])
        start = 0
    else:
        first = int(rng.choice(np.flatnonzero(selectable)))
        picks[0], gains[0] = first, np.nan
        min_dist = np.full(n, np.inf, dtype=np.float32)
        update_min_sq_dist(x, x_sq, x[first], min_dist)
        start = 1
    # Rows that may not be picked hold -1: min(-1, d) keeps them out of every later argmax.
    min_dist[~selectable] = -1.0
    if start:
        min_dist[picks[0]] = -1.0
    with progress_bar("kcenter", budget) as bar:
        bar.advance(start)
        for i in range(start, budget):
            best = int(np.argmax(min_dist))
            picks[i], gains[i] = best, float(min_dist[best])
            update_min_sq_dist(x, x_sq, x[best], min_dist)
            min_dist[best] = -1.0
            bar.advance()
    radius_sq = float(min_dist.max())
    return picks, gains, max(radius_sq, 0.0)


@register_strategy(
    "kcenter",
    summary="Greedy k-center coreset: each pick is the row farthest from all picked and "
    "labelled rows (Sener & Savarese 2018).",
    needs=("embedding",),
    optional=("label",),
    params={
        "metric": Param(
            str, "l2", "distance: l2, or cosine (rows L2-normalised first)", ("l2", "cosine")
        ),
    },
    cost="O(n*d*budget) time, O(n) extra memory; labelled rows cost one exact kNN pass.",
)
def kcenter(pool: Pool, budget: int, rng: np.random.Generator, metric: str = "l2") -> Selection:
    """Greedy k-center over the pool's embeddings; scores are each pick's distance to the
    nearest earlier pick or labelled row (null for a random first pick)."""
    x = pool.embeddings
    if metric == "cosine":
        norms = np.sqrt(squared_norms(x))
        norms[norms == 0] = 1.0
        x = np.asarray(x, dtype=np.float32) / norms[:, None]
    labelled = pool.labelled_mask
    selectable = np.zeros(len(pool), dtype=bool)
    selectable[pool.candidates] = True
    picks, gains, radius_sq = greedy_kcenter(
        x, budget, rng, selectable=selectable, covered=labelled if labelled.any() else None
    )
    return Selection(
        indices=picks,
        scores=np.sqrt(gains),
        metrics={"covering_radius": float(np.sqrt(radius_sq))},
    )
