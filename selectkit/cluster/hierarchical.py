"""Hierarchical k-means with resampling (Vo et al. 2024, "automatic data curation").

Level 1 clusters the data; each level above clusters the centroids of the level below, so the
levels form a tree. At every level, ``resample_steps`` times: take the ``sample_size`` points
closest to each centroid, rerun k-means (seeding included) on their union and reassign all
points. This spreads centroids over the support of the data instead of following its
density, which is what balanced sampling over the tree needs.
Cost: about (1 + resample_steps) k-means runs per level; level 1 dominates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from selectkit.cluster.kmeans import KMeansResult, kmeans
from selectkit.cluster.lloyd_blocks import assign_rows
from selectkit.cluster.seeding import check_k_fits
from selectkit.errors import SelectkitUsageError, option


@dataclass
class Level:
    """One level of the tree: its centroids, the label of each input point and each centroid's
    parent at the next level (None at the top)."""

    k: int
    result: KMeansResult
    labels: np.ndarray
    parents: np.ndarray | None = None


def closest_per_cluster(labels: np.ndarray, dist: np.ndarray, k: int, size: int) -> np.ndarray:
    """Row indices of the ``size`` rows closest to their centroid in each cluster (sorted)."""
    order = np.lexsort((np.arange(labels.size), dist, labels))  # by cluster, then distance
    starts = np.searchsorted(labels[order], np.arange(k))
    rank = np.arange(labels.size) - np.repeat(starts, np.diff(np.append(starts, labels.size)))
    return np.sort(order[rank < size])


def resampled_kmeans(
    x: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator,
    resample_steps: int,
    sample_size: int | None,
    row_ids=None,
    **kw,
) -> tuple[KMeansResult, np.ndarray]:
    """k-means followed by ``resample_steps`` rounds of resampling; returns (result, labels).
    ``kw`` goes to ``kmeans`` (its ``engine`` also runs the reassignment of every row);
    ``row_ids`` (default the row numbers) are the ids its sampled schedule hashes."""
    result = kmeans(x, k, rng=rng, row_ids=row_ids, **kw)
    labels, dist = result.labels, result.distances
    size = sample_size or max(1, x.shape[0] // (2 * k))
    # one point per cluster would rerun k-means on k points: the reference code skips that too
    for _ in range(resample_steps if size > 1 else 0):
        rows = closest_per_cluster(labels, dist, k, size)
        if rows.size < k:
            break
        seed_cost = result.seed_cost
        sub_ids = None if row_ids is None else _take(row_ids, rows)
        result = kmeans(np.asarray(x[rows], dtype=np.float32), k, rng=rng, row_ids=sub_ids, **kw)
        result.seed_cost = seed_cost
        labels, dist = assign_rows(
            x, result.centroids, spherical=kw.get("spherical", False), engine=kw.get("engine")
        )
    result.sizes = np.bincount(labels, minlength=k)
    result.inertia = float(dist.astype(np.float64).sum())
    result.labels, result.distances = labels, dist  # of every row of x, not of the last sample
    return result, labels


def _take(ids, rows: np.ndarray):
    """``ids[rows]`` for a numpy array or a polars Series."""
    return ids.gather(rows) if hasattr(ids, "gather") else np.asarray(ids)[rows]


def check_levels(levels: list[int], name: str = "levels") -> None:
    """Refuse cluster counts that are not positive and strictly decreasing (finest first)."""
    if not levels or min(levels) < 1:
        raise SelectkitUsageError(f"{option(name)} must list positive integers, got {levels}")
    if any(b >= a for a, b in itertools.pairwise(levels)):
        raise SelectkitUsageError(
            f"{option(name)} must decrease from finest to coarsest, got {levels}"
        )


def hierarchical_kmeans(
    x: np.ndarray,
    levels: list[int],
    *,
    rng_for_level,
    resample_steps: int = 10,
    sample_size: int | list[int] | None = None,
    row_ids=None,
    **kw,
) -> list[Level]:
    """Build the tree bottom-up; ``levels`` are the cluster counts from finest to coarsest
    (e.g. [10000, 1000, 100]), each smaller than the one before. ``rng_for_level(i)`` gives the
    generator of level i. ``sample_size`` is one value for every level or one per level (None:
    half the mean cluster size of each level). ``row_ids``: the ids of the rows of ``x``
    (default their row numbers), hashed by k-means' sampled schedule at the first level."""
    check_levels(levels)
    out: list[Level] = []
    points = x
    for i, k in enumerate(levels):
        rows = "the data has" if i == 0 else f"level {i} (its centroids) has"
        check_k_fits(k, points.shape[0], rows=rows, name="levels", hint=f" (level {i + 1})")
        result, labels = resampled_kmeans(
            points,
            k,
            rng=rng_for_level(i),
            resample_steps=resample_steps,
            sample_size=sample_size[i] if isinstance(sample_size, list) else sample_size,
            row_ids=row_ids if i == 0 else None,
            **kw,
        )
        if out:
            out[-1].parents = labels.astype(np.int64)
        out.append(Level(k=k, result=result, labels=labels))
        points = result.centroids
    return out
