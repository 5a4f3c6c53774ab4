"""Lloyd iterations over fixed blocks of the fit matrix: one kernel per block, reduced in order.

The blocks are ``LLOYD_BLOCK_ROWS`` consecutive rows of the (id-ordered) fit matrix, fixed by
the matrix alone, never by the number of workers. Each iteration maps ``lloyd_block`` over the
blocks with the current centroids shared; each block returns float64 per-cluster sums, counts,
its cost, its labels and distances, and its farthest rows (for re-seeding empty clusters). The
driver adds the partial results in block order, so in-process, a local pool and Ray give the
same bytes, and a matrix of one block gives exactly what a single pass over it gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selectkit.cluster.search import CentroidIndex, assign, assign_block, centroid_index
from selectkit.console import progress_bar
from selectkit.engine import Engine, LocalEngine
from selectkit.linalg import group_sums, unit_rows
from selectkit.rng import smallest_keys

LLOYD_BLOCK_ROWS = 1 << 17


@dataclass(frozen=True)
class LloydBlock:
    """Rows [start, stop) of the fit matrix, stored once (``data.get()`` reads them)."""

    key: str
    start: int
    stop: int
    data: object  # a handle from engine.put


@dataclass
class BlockStats:
    """One block's share of a Lloyd step under the shared centroids."""

    sums: np.ndarray  # (k, d) float64
    counts: np.ndarray  # (k,) int64
    cost: float  # float64 sum of the block's squared distances
    labels: np.ndarray  # int64, one per row
    dist: np.ndarray  # float32, one per row
    far_rows: np.ndarray  # global rows: the block's farthest, farthest first (ties: lower row)
    far_dist: np.ndarray


def lloyd_block(block: LloydBlock, index: CentroidIndex) -> BlockStats:
    """Assign the block's rows (already unit-norm when spherical) to ``index`` and sum them per
    cluster. A cluster empty in the whole matrix is empty in every block, so the block's own
    empty clusters bound how many far rows the driver can need from it. O(rows k d)."""
    x = block.data.get()
    k = index.centroids.shape[0]
    labels, dist = assign_block(x, index, rows_are_unit=True)
    counts = np.bincount(labels, minlength=k)
    wanted = min(int((counts == 0).sum()), labels.size)
    far = smallest_keys(-dist, wanted)  # farthest first, ties by position (a stable order)
    return BlockStats(
        sums=group_sums(x, labels, k),
        counts=counts,
        cost=float(dist.astype(np.float64).sum()),
        labels=labels,
        dist=dist,
        far_rows=far + block.start,
        far_dist=dist[far],
    )


@dataclass
class Step:
    """The partial results of every block, reduced in block order."""

    sums: np.ndarray
    counts: np.ndarray
    cost: float
    labels: np.ndarray
    dist: np.ndarray
    far_rows: np.ndarray
    far_dist: np.ndarray

    def farthest(self, count: int) -> np.ndarray:
        """The ``count`` rows farthest from their centroid, farthest first, ties by row:
        ``np.argsort(-dist, kind="stable")[:count]`` over the whole matrix."""
        order = np.lexsort((self.far_rows, -self.far_dist))
        return self.far_rows[order[:count]]


def reduce_blocks(parts: list[BlockStats]) -> Step:
    """Add the blocks' partial results in block order (float sums in that fixed order)."""
    sums, cost = parts[0].sums, parts[0].cost
    counts = parts[0].counts
    for part in parts[1:]:
        sums = sums + part.sums
        counts = counts + part.counts
        cost += part.cost
    return Step(
        sums=sums,
        counts=counts,
        cost=cost,
        labels=np.concatenate([p.labels for p in parts]),
        dist=np.concatenate([p.dist for p in parts]),
        far_rows=np.concatenate([p.far_rows for p in parts]),
        far_dist=np.concatenate([p.far_dist for p in parts]),
    )


def fit_blocks(x: np.ndarray, engine: Engine | None = None) -> list[LloydBlock]:
    """``x`` cut into LLOYD_BLOCK_ROWS-row blocks, each stored once (on the engine when given)."""
    engine = engine or LocalEngine()
    n = x.shape[0]
    return [
        LloydBlock(f"fit-rows:{s}-{min(s + LLOYD_BLOCK_ROWS, n)}", s, min(s + LLOYD_BLOCK_ROWS, n),
                   engine.put(x[s : s + LLOYD_BLOCK_ROWS]))
        for s in range(0, n, LLOYD_BLOCK_ROWS)
    ]  # fmt: skip


def lloyd_steps(
    x: np.ndarray,
    centroids: np.ndarray,
    *,
    iters: int,
    tol: float,
    spherical: bool,
    rows_are_unit: bool,
    engine: Engine | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int, list[float], np.ndarray, np.ndarray]:
    """Lloyd from ``centroids``: (centroids, sizes, cost, iterations, history, labels, dist).

    Stops after ``iters`` iterations, when the cost falls by less than ``tol`` (relative) or
    when no row changes cluster. An empty cluster is re-seeded at the row farthest from its
    centroid, farthest first. ``engine`` runs the blocks when the matrix has more than one
    (otherwise, and without one, they run here); the result is the same bytes either way.
    Cost: O(iters n k d) in the blocks, O(k d + n) per iteration on the driver."""
    if spherical and not rows_are_unit:
        x = unit_rows(x)
    use = engine if engine is not None and x.shape[0] > LLOYD_BLOCK_ROWS else LocalEngine()
    blocks = fit_blocks(x, use)

    def step(c: np.ndarray) -> Step:
        return reduce_blocks(
            list(use.map(lloyd_block, blocks, shared=centroid_index(c, spherical)))
        )

    c = np.array(centroids, dtype=np.float32)
    if spherical:
        c = unit_rows(c)
    current = step(c)
    cost = current.cost
    history = [cost]
    done = 0
    with progress_bar("lloyd", iters) as bar:
        for _ in range(iters):
            sizes = current.counts
            new = np.where(sizes[:, None] > 0, current.sums / np.maximum(sizes, 1)[:, None], c)
            empty = np.flatnonzero(sizes == 0)
            if empty.size:  # re-seed each empty cluster at a far row, farthest first
                far = current.farthest(empty.size)
                new[empty] = np.asarray(x[np.sort(far)], dtype=np.float64)[
                    np.argsort(np.argsort(far))
                ]
            c = new.astype(np.float32)
            if spherical:
                c = unit_rows(c)
            old_labels = current.labels
            current = step(c)
            new_cost = current.cost
            history.append(new_cost)
            done += 1
            bar.advance()
            stalled = cost > 0 and (cost - new_cost) / cost < tol
            converged = np.array_equal(current.labels, old_labels)  # the next step changes nothing
            cost = new_cost
            if (stalled or converged) and not empty.size:
                break
    return c, current.counts, cost, done, history, current.labels, current.dist


def assign_rows(
    x: np.ndarray, centroids: np.ndarray, *, spherical: bool = False, engine: Engine | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``assign(x, centroids)``, on ``engine``'s workers block by block when ``x`` has more
    than one block (the same labels and distances: rows are searched in the same groups)."""
    if engine is None or x.shape[0] <= LLOYD_BLOCK_ROWS:
        return assign(x, centroids, spherical=spherical)
    blocks = fit_blocks(unit_rows(x) if spherical else x, engine)
    parts = list(engine.map(lloyd_block, blocks, shared=centroid_index(centroids, spherical)))
    return np.concatenate([p.labels for p in parts]), np.concatenate([p.dist for p in parts])
