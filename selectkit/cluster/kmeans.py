"""Lloyd's k-means on faiss, seeded by ``seeding``, and streaming assignment to centroids.

Assignment uses faiss exact search (IndexFlatL2, or IndexFlatIP with ``spherical``) in fixed
single-threaded groups of rows (``search``); Lloyd runs over fixed blocks of rows whose float64
centroid sums are reduced in block order (``lloyd``), O(nd) per iteration with O(kd) extra
memory. An empty cluster is re-seeded at the row farthest from its centroid (deterministic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from selectkit.cluster.lloyd_blocks import lloyd_steps
from selectkit.cluster.search import (  # noqa: F401 (re-exported: the public names)
    CHUNK_ROWS,
    SEARCH_ROWS,
    CentroidIndex,
    assign,
    assign_block,
    centroid_index,
)
from selectkit.cluster.seeding import SEED_BOUNDS, check_seed_args, potential, seed_checked
from selectkit.errors import SelectkitUsageError
from selectkit.io.vectors import check_finite
from selectkit.linalg import unit_rows
from selectkit.params import Param, check_arguments
from selectkit.rng import derive_rng, id_hashes, salt_of, smallest_keys

#: the one declaration of k-means' bounds (seeding's included); `selectkit cluster` matches it
KMEANS_BOUNDS = {
    **SEED_BOUNDS,
    "iters": Param(int, 25, "Lloyd iterations after seeding (0: seeds only)", low=0),
    "tol": Param(float, 1e-4, "stop when the cost falls by less than this (relative)", low=0),
    "seed": Param(int, 0, "seeds the seeding and any resampling (recorded)", low=0),
    "sample_per_centroid": Param(
        int,
        256,
        "seed and run Lloyd on this many rows per centroid (sampled by id hash), then refine "
        "on every row; 0: every Lloyd iteration on every row (the full-data schedule)",
        low=0,
    ),
    "refine_iters": Param(
        int, 2, "after Lloyd on the sample: Lloyd iterations on every row (sampled schedule)", low=0
    ),
}

#: the sampled schedule never fits on fewer rows than this (below it, every row is used)
MIN_SAMPLE_ROWS = 65536


def schedule_sample_rows(n: int, k: int, sample_per_centroid: int) -> int:
    """Rows the sampled schedule seeds and runs Lloyd on: max(sample_per_centroid * k,
    MIN_SAMPLE_ROWS), or n (every row: the full-data schedule) when that is not fewer than n
    or ``sample_per_centroid`` is 0."""
    if sample_per_centroid == 0:
        return n
    return min(n, max(sample_per_centroid * k, MIN_SAMPLE_ROWS))


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
    c, sizes, cost, done, history, _, _ = lloyd_steps(
        x, centroids, iters=iters, tol=tol, spherical=spherical, rows_are_unit=rows_are_unit
    )
    return c, sizes, cost, done, history


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
    engine=None,
    sample_per_centroid: int = 256,
    refine_iters: int = 2,
    row_ids=None,
) -> KMeansResult:
    """Seed with ``seeding`` (one of ``SEEDERS``) and refine with ``iters`` Lloyd iterations.

    Returns the centroids with every row's cluster (``result.labels``) and squared distance to
    it (``result.distances``). ``iters=0`` returns the seeds themselves as centroids. ``rng``
    defaults to a generator derived from ``seed``. Arguments outside ``KMEANS_BOUNDS`` are a
    ``SelectkitUsageError``; ``k`` above the rows of ``x`` a ``SelectkitDataError``.
    Cost: the seeder's, plus O(iters n k d) for Lloyd; memory O(n + k d) beyond ``x``.
    ``engine`` (a ``selectkit.engine`` Engine) runs Lloyd's blocks of ``LLOYD_BLOCK_ROWS`` rows
    when ``x`` has more than one; the result is the same bytes with or without it.

    Schedule: with more rows than ``schedule_sample_rows(n, k, sample_per_centroid)`` = m
    (256 k, at least 65,536), the seeding and the ``iters`` Lloyd iterations run on the m rows
    with the smallest hashes of their ids (``row_ids``, default the row numbers; salt drawn
    from ``rng``), kept in the order of ``x``, then ``refine_iters`` Lloyd iterations run on
    every row (each also stops at ``tol``). Cost then O(iters m k d + (refine_iters + 1) n k d).
    ``sample_per_centroid=0`` (or n <= m) runs every iteration on every row, as before;
    ``iters=0`` keeps the seeds (drawn from the sample) with no refinement.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 2:
        raise SelectkitUsageError("x= must be a 2-d numpy array of shape (rows, dim)")
    check_seed_args(x.shape[0], k, seeding, max_trials=max_trials, chain=chain)
    check_arguments(
        KMEANS_BOUNDS,
        iters=iters,
        tol=tol,
        seed=seed,
        sample_per_centroid=sample_per_centroid,
        refine_iters=refine_iters,
    )
    if rng is None:  # the documented Python default: a generator derived from ``seed``
        rng = derive_rng(seed, "kmeans")
    elif not isinstance(rng, np.random.Generator):
        raise SelectkitUsageError(
            f"rng= must be a numpy Generator (np.random.default_rng(0)), not {type(rng).__name__}"
        )
    check_finite(x, "the data", "vectors")
    if spherical:  # cosine k-means: unit-norm rows throughout (one float32 copy of x)
        x = unit_rows(x)
    n = x.shape[0]
    m = schedule_sample_rows(n, k, sample_per_centroid)
    sample = None
    if m < n:  # the sampled schedule: the m rows of smallest seeded id hash, in x's order
        ids = np.arange(n) if row_ids is None else row_ids
        if len(ids) != n:
            raise SelectkitUsageError(f"row_ids= has {len(ids)} ids for {n} rows of x")
        sample = np.sort(smallest_keys(id_hashes(ids, salt_of(rng)), m))
    fit_x = x if sample is None else np.asarray(x[sample], dtype=np.float32)
    t0 = time.perf_counter()
    seeds = seed_checked(fit_x, k, rng, method=seeding, max_trials=max_trials, chain=chain)
    seed_s = time.perf_counter() - t0
    init = np.asarray(fit_x[np.sort(seeds.indices)], dtype=np.float32)[
        np.argsort(np.argsort(seeds.indices))
    ]
    seed_cost = potential(fit_x, unit_rows(init) if spherical else init)
    t1 = time.perf_counter()
    centroids, sizes, cost, done, history, labels, dist = lloyd_steps(
        fit_x,
        init,
        iters=iters,
        tol=tol,
        spherical=spherical,
        rows_are_unit=spherical,
        engine=engine,
    )
    lloyd_s = time.perf_counter() - t1
    info = {
        "schedule": "full" if sample is None else "sampled",
        "schedule_rows": int(fit_x.shape[0]),
    }
    if sample is not None:
        info["sample_cost"] = cost
        del fit_x
        t2 = time.perf_counter()
        # iters=0 keeps the seeds (one pass labels every row); else refine on every row
        centroids, sizes, cost, refined, more, labels, dist = lloyd_steps(
            x, centroids, iters=refine_iters if iters else 0, tol=tol, spherical=spherical,
            rows_are_unit=spherical, engine=engine,
        )  # fmt: skip
        history = history + more
        info["refine_iterations"] = refined
        info["refine_s"] = round(time.perf_counter() - t2, 6)
    return KMeansResult(
        centroids=centroids,
        sizes=sizes,
        inertia=cost,
        seed_cost=seed_cost,
        iterations=done,
        seed_rows=seeds.indices if sample is None else sample[seeds.indices],
        history=history,
        labels=labels,
        distances=dist,
        info={
            "seeding_s": round(seed_s, 6),
            "lloyd_s": round(lloyd_s, 6),
            "seeding_trials": seeds.trials,
            "seeding_fallbacks": seeds.fallbacks,
            "seeding_distance_evals": seeds.distance_evals,
            **info,
        },
    )
