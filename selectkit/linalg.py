"""Row statistics and normalisation shared by the embedders, k-center and k-means (memmap-friendly)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

CHUNK_ROWS = 1 << 16
CENTRED_CHUNK_ROWS = 1 << 14  # centred float32 temporaries: 8 MiB at d = 128


def squared_norms(
    x: np.ndarray, center: np.ndarray | None = None, chunk_rows: int = CENTRED_CHUNK_ROWS
) -> np.ndarray:
    """Row-wise squared L2 norms of ``x - center`` as float32, in chunks so memmaps stay paged.

    The difference is taken in float32 against the data's own mean, so rounding scales with the
    spread of the data (relative error ~1e-7), not with its offset. O(n d) time, O(n) memory.
    """
    out = np.empty(x.shape[0], dtype=np.float32)
    c32 = None if center is None else np.asarray(center, dtype=np.float32)
    for start in range(0, x.shape[0], chunk_rows):
        block = np.asarray(x[start : start + chunk_rows], dtype=np.float32)
        if c32 is not None:
            block = block - c32
        out[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    return out


def column_mean(x: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """Float64 mean of the rows of ``x`` (float64 accumulation), in chunks."""
    total = np.zeros(x.shape[1], dtype=np.float64)
    for start in range(0, x.shape[0], chunk_rows):
        total += np.asarray(x[start : start + chunk_rows]).sum(axis=0, dtype=np.float64)
    return total / max(x.shape[0], 1)


def normalise_rows_(x: np.ndarray) -> np.ndarray:
    """Scale every row of the float array ``x`` to unit L2 norm in place (zero rows stay zero);
    returns ``x``."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return np.divide(x, norms, out=x, where=norms > 0)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """A float32 copy of ``x`` with every row scaled to unit L2 norm (zero rows stay zero)."""
    return normalise_rows_(np.array(x, dtype=np.float32))


def group_sums(
    x: np.ndarray,
    labels: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> np.ndarray:
    """Float64 (k, d) sums of the rows of ``x`` per label in 0..k-1 (optionally weighted).

    A sparse one-hot product per chunk: float32 products, float64 accumulation, no float64 copy
    of the data. O(n d) time, O(k d) memory.
    """
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    for start in range(0, x.shape[0], chunk_rows):
        block = np.asarray(x[start : start + chunk_rows], dtype=np.float32)
        lab = labels[start : start + block.shape[0]]
        w = (
            np.ones(lab.size, dtype=np.float32)
            if weights is None
            else np.asarray(weights[start : start + block.shape[0]], dtype=np.float32)
        )
        onehot = sp.csr_matrix((w, (lab, np.arange(lab.size))), shape=(k, lab.size))
        sums += onehot @ block
    return sums


def group_means(
    x: np.ndarray, labels: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(means (k, d) float64, sizes (k,) int64) of the rows of ``x`` per label; an empty group's
    mean is zero. With ``rows``, only those rows count and ``labels`` holds one label per row in
    ``rows`` (``x`` is not copied: the other rows go to a discarded extra group). O(n d) time,
    O(k d) memory."""
    if rows is not None:
        all_labels = np.full(x.shape[0], k, dtype=np.int64)
        all_labels[rows] = labels
        means, sizes = group_means(x, all_labels, k + 1)
        return means[:k], sizes[:k]
    sizes = np.bincount(labels, minlength=k)
    return group_sums(x, labels, k) / np.maximum(sizes, 1)[:, None], sizes


def squared_distances_to(
    x: np.ndarray, rows: np.ndarray, targets: np.ndarray, target_of_row: np.ndarray
) -> np.ndarray:
    """Float64 ||x[rows[i]] - targets[target_of_row[i]]||^2 for each i, in chunks; O(n d)."""
    out = np.empty(rows.size, dtype=np.float64)
    t32 = np.asarray(targets, dtype=np.float32)
    for start in range(0, rows.size, CENTRED_CHUNK_ROWS):
        part = rows[start : start + CENTRED_CHUNK_ROWS]
        diff = np.asarray(x[part], dtype=np.float32) - t32[target_of_row[start : start + part.size]]
        out[start : start + part.size] = np.einsum("ij,ij->i", diff, diff)
    return out
