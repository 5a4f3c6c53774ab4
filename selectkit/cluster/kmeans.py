"""Lloyd's k-means on faiss, seeded by ``seeding``, and streaming assignment to centroids.

Assignment uses faiss exact search (IndexFlatL2, or IndexFlatIP with ``spherical``), chunked;
centroid sums are float64 sparse-matrix products, O(nd) per iteration with O(kd) extra memory.
An empty cluster is re-seeded at the row farthest from its centroid (deterministic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import faiss
import numpy as np

from selectkit.cluster.seeding import SEED_BOUNDS, check_seed_args, potential, seed_checked
from selectkit.console import progress_bar
from selectkit.errors import SelectkitUsageError
from selectkit.io.vectors import check_finite
from selectkit.linalg import group_sums, unit_rows
from selectkit.params import Param, check_arguments
from selectkit.rng import derive_rng

CHUNK_ROWS = 1 << 16
#: the one declaration of k-means' bounds (seeding's included); `selectkit cluster` matches it
KMEANS_BOUNDS = {
    **SEED_BOUNDS,
    "iters": Param(int, 25, "Lloyd iterations after seeding (0: seeds only)", low=0),
    "tol": Param(float, 1e-4, "stop when the cost falls by less than this (relative)", low=0),
    "seed": Param(int, 0, "seeds the seeding and any resampling (recorded)", low=0),
}


@dataclass
class KMeansResult:
    """Centroids (k, d) float32, cluster sizes on the fit data, costs and timings.

    ``labels`` (int64) and ``distances`` (float32, squared; 2 - 2 cos when spherical) are each
    fitted row's cluster and its distance to that cluster's centroid, as ``assign`` would give:
    ``kmeans(x, k, rng=rng).labels`` is ``assign(x, result.centroids)[0]``.
    """

    centroids: np.ndarray
    sizes: np.ndarray
    inertia: float
    seed_cost: float
    iterations: int
    seed_rows: np.ndarray
    history: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    distances: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float32))


def centroid_index(centroids: np.ndarray, spherical: bool) -> faiss.Index:
    """An exact faiss index over the centroids (inner product for unit-norm spherical ones)."""
    if spherical:
        centroids = unit_rows(centroids)
    index = (
        faiss.IndexFlatIP(centroids.shape[1])
        if spherical
        else faiss.IndexFlatL2(centroids.shape[1])
    )
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return index


def assign_block(
    block: np.ndarray, index: faiss.Index, spherical: bool, rows_are_unit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (int64) and squared L2 distance (float32) for each row of ``block``;
    with ``spherical`` the rows are unit-normalised first (unless ``rows_are_unit``) and the
    distance is 2 - 2 cos."""
    if spherical and not rows_are_unit:
        block = unit_rows(block)
    block = np.ascontiguousarray(block, dtype=np.float32)
    score, label = index.search(block, 1)
    if spherical:  # ||x - c||^2 = ||x||^2 + ||c||^2 - 2 x.c with unit-norm rows and centroids
        dist = np.einsum("ij,ij->i", block, block) + 1.0 - 2.0 * score[:, 0]
    else:
        dist = score[:, 0]
    return label[:, 0], np.maximum(dist, 0.0).astype(np.float32)


def assign(
    x: np.ndarray, centroids: np.ndarray, *, spherical: bool = False, rows_are_unit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and squared distances of every row of ``x`` to its nearest centroid; chunked,
    O(n k d) time, O(n) memory. ``rows_are_unit`` skips re-normalising rows for ``spherical``."""
    index = centroid_index(centroids, spherical)
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float32)
    for s in range(0, x.shape[0], CHUNK_ROWS):
        labels[s : s + CHUNK_ROWS], dist[s : s + CHUNK_ROWS] = assign_block(
            x[s : s + CHUNK_ROWS], index, spherical, rows_are_unit
        )
    return labels, dist


def lloyd(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    iters: int = 25,
    tol: float = 1e-4,
    spherical: bool = False,
    rows_are_unit: bool = False,
) -> tuple[np.ndarray, np.ndarray, float, int, list[float]]:
    """Run Lloyd iterations from ``centroids``; stop after ``iters`` or when the cost falls by
    less than ``tol`` (relative). Returns (centroids, sizes, cost, iterations run, cost history).
    The cost is measured against the centroids returned."""
    c, sizes, cost, done, history, _, _ = _lloyd(
        x, centroids, iters=iters, tol=tol, spherical=spherical, rows_are_unit=rows_are_unit
    )
    return c, sizes, cost, done, history


def _lloyd(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    iters: int,
    tol: float,
    spherical: bool,
    rows_are_unit: bool,
) -> tuple[np.ndarray, np.ndarray, float, int, list[float], np.ndarray, np.ndarray]:
    """``lloyd``, also returning each row's final label and squared distance."""
    k = centroids.shape[0]
    if spherical and not rows_are_unit:
        x = unit_rows(x)
    c = np.array(centroids, dtype=np.float32)
    if spherical:
        c = unit_rows(c)
    history: list[float] = []
    labels, dist = assign(x, c, spherical=spherical, rows_are_unit=True)
    cost = float(dist.astype(np.float64).sum())
    history.append(cost)
    done = 0
    with progress_bar("lloyd", iters) as bar:
        for _ in range(iters):
            sums = group_sums(x, labels, k)
            sizes = np.bincount(labels, minlength=k)
            new = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], c)
            empty = np.flatnonzero(sizes == 0)
            if empty.size:  # re-seed each empty cluster at a far row, farthest first
                far = np.argsort(-dist, kind="stable")[: empty.size]
                new[empty] = np.asarray(x[np.sort(far)], dtype=np.float64)[
                    np.argsort(np.argsort(far))
                ]
            c = new.astype(np.float32)
            if spherical:
                c = unit_rows(c)
            old_labels = labels
            labels, dist = assign(x, c, spherical=spherical, rows_are_unit=True)
            new_cost = float(dist.astype(np.float64).sum())
            history.append(new_cost)
            done += 1
            bar.advance()
            stalled = cost > 0 and (cost - new_cost) / cost < tol
            converged = np.array_equal(labels, old_labels)  # exact: the next step changes nothing
            cost = new_cost
            if (stalled or converged) and not empty.size:
                break
    sizes = np.bincount(labels, minlength=k)
    return c, sizes, cost, done, history, labels.astype(np.int64), dist


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    seeding: str = "rs-greedy",
    iters: int = 25,
    tol: float = 1e-4,
    spherical: bool = False,
    rng: np.random.Generator | None = None,
    seed: int = 0,
    max_trials: int = 0,
    chain: int = 50,
) -> KMeansResult:
    """Seed with ``seeding`` (one of ``SEEDERS``) and refine with ``iters`` Lloyd iterations.

    Returns the centroids with every row's cluster (``result.labels``) and squared distance to
    it (``result.distances``). ``iters=0`` returns the seeds themselves as centroids. ``rng``
    defaults to a generator derived from ``seed``. Arguments outside ``KMEANS_BOUNDS`` are a
    ``SelectkitUsageError``; ``k`` above the rows of ``x`` a ``SelectkitDataError``.
    Cost: the seeder's, plus O(iters n k d) for Lloyd; memory O(n + k d) beyond ``x``.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise SelectkitUsageError("x= must be a 2-d numpy array of shape (rows, dim)")
    check_seed_args(x.shape[0], k, seeding, max_trials=max_trials, chain=chain)
    check_arguments(KMEANS_BOUNDS, iters=iters, tol=tol, seed=seed)
    if rng is None:  # the documented Python default: a generator derived from ``seed``
        rng = derive_rng(seed, "kmeans")
    elif not isinstance(rng, np.random.Generator):
        raise SelectkitUsageError(
            f"rng= must be a numpy Generator (np.random.default_rng(0)), not {type(rng).__name__}"
        )
    check_finite(x, "the data", "vectors")
    if spherical:  # cosine k-means: unit-norm rows throughout (one float32 copy of x)
        x = unit_rows(x)
    t0 = time.perf_counter()
    seeds = seed_checked(x, k, rng, method=seeding, max_trials=max_trials, chain=chain)
    seed_s = time.perf_counter() - t0
    init = np.asarray(x[np.sort(seeds.indices)], dtype=np.float32)[
        np.argsort(np.argsort(seeds.indices))
    ]
    seed_cost = potential(x, unit_rows(init) if spherical else init)
    t1 = time.perf_counter()
    centroids, sizes, cost, done, history, labels, dist = _lloyd(
        x, init, iters=iters, tol=tol, spherical=spherical, rows_are_unit=False
    )
    return KMeansResult(
        centroids=centroids,
        sizes=sizes,
        inertia=cost,
        seed_cost=seed_cost,
        iterations=done,
        seed_rows=seeds.indices,
        history=history,
        labels=labels,
        distances=dist,
        info={
            "seeding_s": round(seed_s, 6),
            "lloyd_s": round(time.perf_counter() - t1, 6),
            "seeding_trials": seeds.trials,
            "seeding_fallbacks": seeds.fallbacks,
            "seeding_distance_evals": seeds.distance_evals,
        },
    )
