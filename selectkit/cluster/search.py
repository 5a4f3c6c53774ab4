"""Nearest-centroid search: exact faiss search in fixed single-threaded groups of rows.

faiss's distances for a row depend on how BLAS splits a search among threads (and on which
rows share the search), so a row's result would change with the thread count, the engine or
the worker. Here every search covers a fixed group of ``SEARCH_ROWS`` rows on one thread
(groups run in parallel threads), and each distance is recomputed from the row and its
centroid alone. Labels and distances are then the same whatever the threads or the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np

from selectkit.engine.threads import map_threads
from selectkit.linalg import unit_rows

CHUNK_ROWS = 1 << 16
#: rows per faiss search, each run on one thread: the unit of work that makes every label and
#: distance independent of the thread count, the engine and the worker that computes it
SEARCH_ROWS = 4096
#: rows per chunk of the distance recomputation (a row's distance never depends on it)
DIST_ROWS = 1024


@dataclass
class CentroidIndex:
    """Centroids ready for nearest-centroid search: float32 (unit-norm with ``spherical``), and
    an exact faiss index over them (IndexFlatIP when spherical, else IndexFlatL2) built on first
    use. Pickles as its centroids alone (kernels on other processes rebuild the index)."""

    centroids: np.ndarray
    spherical: bool = False
    _index: faiss.Index | None = field(default=None, repr=False, compare=False)

    @property
    def index(self) -> faiss.Index:
        if self._index is None:
            d = self.centroids.shape[1]
            self._index = faiss.IndexFlatIP(d) if self.spherical else faiss.IndexFlatL2(d)
            self._index.add(self.centroids)
        return self._index

    def __getstate__(self) -> dict:
        return {"centroids": self.centroids, "spherical": self.spherical, "_index": None}


def centroid_index(centroids: np.ndarray, spherical: bool) -> CentroidIndex:
    """A ``CentroidIndex`` over ``centroids`` (scaled to unit norm for ``spherical``); O(k d)."""
    c = unit_rows(centroids) if spherical else np.array(centroids, dtype=np.float32)
    return CentroidIndex(np.ascontiguousarray(c), spherical)


def _search_rows(index: CentroidIndex, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid and exact squared distance of at most SEARCH_ROWS rows, on one thread.

    faiss's result for a row depends on how BLAS splits the work among threads, so each search
    runs single-threaded on a fixed group of rows. The distance is then recomputed from the row
    and its centroid alone (float64 sum of float32 differences), so it does not depend on which
    rows share the search either."""
    _, label = index.index.search(rows, 1)
    label = label[:, 0]
    return label, row_distances(rows, index.centroids, label)


def _search_labels(index: CentroidIndex, rows: np.ndarray) -> tuple[np.ndarray, None]:
    """Nearest centroid alone (no distances) of at most SEARCH_ROWS rows, on one thread."""
    return index.index.search(rows, 1)[1][:, 0], None


def row_distances(rows: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Float32 squared distance of each row to its centroid, from the row and that centroid
    alone (float64 sum of float32 differences), so it does not depend on the search's grouping,
    threads or engine. O(rows d)."""
    out = np.empty(rows.shape[0], dtype=np.float32)
    for s in range(
        0, rows.shape[0], DIST_ROWS
    ):  # small chunks: the float64 temporaries stay in cache
        diff = (rows[s : s + DIST_ROWS] - centroids[labels[s : s + DIST_ROWS]]).astype(np.float64)
        out[s : s + DIST_ROWS] = np.square(diff).sum(axis=1)
    return out


def _one_thread(search, index: CentroidIndex, rows: np.ndarray):
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # per thread in OpenMP: other threads keep their setting
    try:
        return search(index, rows)
    finally:
        faiss.omp_set_num_threads(before)


def assign_block(
    block: np.ndarray,
    index: CentroidIndex,
    spherical: bool | None = None,
    rows_are_unit: bool = False,
    threads: int | None = None,
    distances: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (int64) and squared L2 distance (float32) for each row of ``block``;
    with a spherical index the rows are unit-normalised first (unless ``rows_are_unit``) and the
    distance is 2 - 2 cos. The rows are searched in fixed groups of ``SEARCH_ROWS``, up to
    ``threads`` groups at once (default: OpenMP's current limit, which ``--threads`` sets), so
    the result is the same whatever the thread count. O(rows k d). ``distances=False`` returns
    None for the distances (a Lloyd step that needs only the labels skips their O(rows d))."""
    if spherical is not None and spherical != index.spherical:
        raise ValueError("spherical= disagrees with the index; build it with centroid_index")
    if index.spherical and not rows_are_unit:
        block = unit_rows(block)
    block = np.ascontiguousarray(block, dtype=np.float32)
    starts = range(0, block.shape[0], SEARCH_ROWS)
    parts = [block[s : s + SEARCH_ROWS] for s in starts]
    index.index  # noqa: B018 (built here, once, before any thread searches it)
    # faiss releases the GIL: threads, each searching its own groups single-threaded
    threads = threads or faiss.omp_get_max_threads()
    search = _search_rows if distances else _search_labels
    results = map_threads(lambda part: _one_thread(search, index, part), parts, threads)
    if not results:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32) if distances else None
    return (
        np.concatenate([r[0] for r in results]).astype(np.int64, copy=False),
        np.concatenate([r[1] for r in results]) if distances else None,
    )


def assign(
    x: np.ndarray, centroids: np.ndarray, *, spherical: bool = False, rows_are_unit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and squared distances of every row of ``x`` to its nearest centroid; chunked,
    O(n k d) time, O(n) memory. ``rows_are_unit`` skips re-normalising rows for ``spherical``.
    The result does not depend on the thread count; the distance not on the chunking either."""
    index = centroid_index(centroids, spherical)
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], CHUNK_ROWS):
        labels[s : s + CHUNK_ROWS], dist[s : s + CHUNK_ROWS] = assign_block(
            x[s : s + CHUNK_ROWS], index, rows_are_unit=rows_are_unit
        )
    return labels, dist
