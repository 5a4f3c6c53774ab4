"""The report's 2-D map: which pool rows are drawn, and where.

Rows are drawn by id hash (seed + id, never position): every picked row first (up to half the
cap), then the pool rows with the smallest hashes, so the same pool in any order or sharding
gives the same points. Their place is the first two principal components of the drawn rows'
embeddings, computed in hash order, sign-fixed, scaled to a 0..1023 integer grid (the grid makes
the page small and the bytes stable against the last bits of floating point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from selectkit.rng import derive_salt, id_hashes, smallest_keys

#: default cap on the points the map draws (the page stays a few MB with texts)
MAX_POINTS = 50_000
GRID = 1023


@dataclass
class MapPoints:
    """Rows drawn on the map: ``rows`` (positions in the pool, in drawing order) and their
    integer coordinates ``xy`` (n x 2, in 0..GRID)."""

    rows: np.ndarray
    xy: np.ndarray


def sample_rows(ids: pl.Series, picked: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Pool positions to draw: picked rows (bool mask ``picked``) first, then the rest, each by
    smallest id hash; at most ``cap``, sorted by hash. O(n) hashing + O(n) selection."""
    keys = id_hashes(ids, derive_salt(seed, "report", "map"))
    pick_rows = np.flatnonzero(picked)
    other_rows = np.flatnonzero(~picked)
    take_picks = min(pick_rows.size, max(cap // 2, cap - other_rows.size))
    chosen_picks = pick_rows[smallest_keys(keys[pick_rows], take_picks)]
    chosen_rest = other_rows[smallest_keys(keys[other_rows], cap - chosen_picks.size)]
    rows = np.concatenate([chosen_picks, chosen_rest])
    return rows[np.argsort(keys[rows], kind="stable")]


def project(vectors: np.ndarray) -> np.ndarray:
    """Integer 2-D coordinates (n x 2, 0..GRID) of ``vectors`` by PCA: the top two eigenvectors
    of their covariance (each sign-fixed so its largest loading is positive), clipped to the
    0.5-99.5 percentiles of each axis. O(n d^2 + d^3)."""
    x = np.asarray(vectors, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, 2), dtype=np.int32)
    x = x - x.mean(axis=0)
    if n == 1 or x.shape[1] == 0:
        return np.full((n, 2), GRID // 2, dtype=np.int32)
    cov = x.T @ x / max(n - 1, 1)
    _vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :2]
    if comps.shape[1] < 2:
        comps = np.hstack([comps, np.zeros((comps.shape[0], 1))])
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), [0, 1]])
    comps = comps * np.where(signs == 0, 1.0, signs)
    z = x @ comps
    lo = np.percentile(z, 0.5, axis=0)
    hi = np.percentile(z, 99.5, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    grid = np.clip((z - lo) / span, 0.0, 1.0) * GRID
    return np.rint(grid).astype(np.int32)


def map_points(
    ids: pl.Series, vectors: np.ndarray, picked: np.ndarray, cap: int, seed: int
) -> MapPoints:
    """The drawn rows of a pool and their map coordinates (see the module doc)."""
    rows = sample_rows(ids, picked, cap, seed)
    return MapPoints(rows=rows, xy=project(vectors[rows]))
