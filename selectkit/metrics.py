"""Summary metrics of a selection, computed exactly with faiss in chunks (no n x n matrix)."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from selectkit.linalg import group_means, squared_distances_to

CHUNK_ROWS = 1 << 16
# Coverage is measured on at most this many distance evaluations (pool rows x selected rows x d);
# above it, on a seeded sample of pool rows, so the metric never dominates the selection's cost.
COVERAGE_WORK = 2_000_000_000
COVERAGE_MIN_ROWS = 2_000


def nearest_distances(x: np.ndarray, selected_rows: np.ndarray) -> np.ndarray:
    """Float32 L2 distance from every row of ``x`` to its nearest row of ``selected_rows``.

    One exact faiss search in chunks: O(n |S| d) time, O(n + |S| d) memory.
    """
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(selected_rows, dtype=np.float32))
    dist = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        block = np.ascontiguousarray(x[start : start + CHUNK_ROWS], dtype=np.float32)
        d, _ = index.search(block, 1)
        dist[start : start + block.shape[0]] = d[:, 0]
    return np.sqrt(np.maximum(dist, 0.0))


def coverage(x: np.ndarray, selected: np.ndarray) -> dict[str, float]:
    """Distance from every row of ``x`` to its nearest selected row: mean, 95th percentile, max.

    The mean is the CCS paper's AUC_pr coverage measure; lower is better coverage.
    O(n * |selected| * d) time, O(n) memory.
    """
    root = nearest_distances(x, np.asarray(x[np.sort(np.asarray(selected))]))
    return {
        "mean_distance": float(root.mean()),
        "p95_distance": float(np.percentile(root, 95)),
        "max_distance": float(root.max()),
    }


def sampled_coverage(
    x: np.ndarray, selected: np.ndarray, rng: np.random.Generator
) -> dict[str, float | int]:
    """``coverage`` of the pool by ``selected``, on every row when that costs at most
    ``COVERAGE_WORK`` distance terms, else on a seeded uniform sample of rows (its size recorded
    as ``coverage_rows``). O(min(n, COVERAGE_WORK / (|S| d)) |S| d) time."""
    n, d = x.shape
    cap = max(COVERAGE_MIN_ROWS, COVERAGE_WORK // max(1, selected.size * d))
    rows = np.sort(rng.choice(n, size=cap, replace=False)) if n > cap else None
    points = x if rows is None else np.asarray(x[rows])
    root = nearest_distances(points, np.asarray(x[np.sort(selected)]))
    return {
        "coverage_mean_distance": float(root.mean()),
        "coverage_p95_distance": float(np.percentile(root, 95)),
        "coverage_rows": int(points.shape[0]),
    }


def weighted_cost_ratio(
    x: np.ndarray,
    population: np.ndarray,
    selected: np.ndarray,
    weights: np.ndarray,
    labels: np.ndarray | None,
) -> float:
    """Weighted k-means cost of the selection over the population's cost, against the centres
    given by ``labels`` (the means of the population's clusters; one global mean without labels).

    1.0 means the weighted subset reproduces the population's clustering cost exactly: the test
    a coreset must pass. O(n d) time, O(k d) memory.
    """
    pop_labels = np.zeros(population.size, dtype=np.int64) if labels is None else labels[population]
    k = int(pop_labels.max()) + 1
    centres = group_means(x, pop_labels, k, rows=population)[0].astype(np.float32)

    full = squared_distances_to(x, population, centres, pop_labels).sum()
    sel_labels = np.zeros(selected.size, dtype=np.int64) if labels is None else labels[selected]
    part = squared_distances_to(x, selected, centres, sel_labels) @ weights
    return float(part / full) if full > 0 else 1.0


def selection_metrics(
    x: np.ndarray | None,
    candidates: np.ndarray,
    selected: np.ndarray,
    weights: np.ndarray | None,
    labels: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The coverage metrics ``select`` records for every strategy (when embeddings exist):
    ``coverage_*`` of the whole pool by the selection, and for weighted selections
    ``weighted_cost_ratio`` over the selectable rows (``candidates``)."""
    if x is None or selected.size == 0:
        return {}
    out: dict[str, Any] = dict(sampled_coverage(x, selected, rng))
    if weights is not None and not np.all(weights == 1.0):
        out["weighted_cost_ratio"] = weighted_cost_ratio(x, candidates, selected, weights, labels)
    return out
