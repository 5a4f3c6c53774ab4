"""Summary metrics of a selection, computed exactly with faiss in chunks (no n x n matrix)."""

from __future__ import annotations

import faiss
import numpy as np

CHUNK_ROWS = 1 << 16


def coverage(x: np.ndarray, selected: np.ndarray) -> dict[str, float]:
    """Distance from every row of ``x`` to its nearest selected row: mean, 95th percentile, max.

    Lower is better coverage. O(n * |selected| * d) time, O(n) memory.
    """
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x[np.asarray(selected)], dtype=np.float32))
    dist = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], CHUNK_ROWS):
        block = np.ascontiguousarray(x[start : start + CHUNK_ROWS], dtype=np.float32)
        d, _ = index.search(block, 1)
        dist[start : start + block.shape[0]] = d[:, 0]
    root = np.sqrt(np.maximum(dist, 0.0))
    return {
        "mean_distance": float(root.mean()),
        "p95_distance": float(np.percentile(root, 95)),
        "max_distance": float(root.max()),
    }
