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

from selectkit.cluster.search import (
    DIST_ROWS,
    CentroidIndex,
    assign,
    assign_block,
    centroid_index,
    row_distances,
)
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
    sq_norms: float = 0.0  # float64 sum of the rows' squared norms (a step's cost needs it)


@dataclass(frozen=True)
class StepSpec:
    """What every block of one Lloyd step shares: the centroids, and whether the step needs
    the rows' distances (and farthest rows) or its labels alone."""

    index: CentroidIndex
    distances: bool = True


@dataclass
class BlockStats:
    """One block's share of a Lloyd step under the shared centroids."""

    sums: np.ndarray  # (k, d) float64
    counts: np.ndarray  # (k,) int64
    labels: np.ndarray  # int64, one per row
    dist: np.ndarray | None  # float32, one per row (None: the step did not ask)
    far_rows: np.ndarray  # global rows: the block's farthest, farthest first (ties: lower row)
    far_dist: np.ndarray


def lloyd_block(block: LloydBlock, spec: StepSpec) -> BlockStats:
    """Assign the block's rows (already unit-norm when spherical) to ``spec.index`` and sum
    them per cluster. A cluster empty in the whole matrix is empty in every block, so the
    block's own empty clusters bound how many far rows the driver can need from it.
    O(rows k d); the distances, when asked, O(rows d) more."""
    x = block.data.get()
    k = spec.index.centroids.shape[0]
    labels, dist = assign_block(x, spec.index, rows_are_unit=True, distances=spec.distances)
    counts = np.bincount(labels, minlength=k)
    far = np.empty(0, dtype=np.int64)
    if dist is not None:
        wanted = min(int((counts == 0).sum()), labels.size)
        far = smallest_keys(-dist, wanted)  # farthest first, ties by position (a stable order)
    return BlockStats(
        sums=group_sums(x, labels, k),
        counts=counts,
        labels=labels,
        dist=dist,
        far_rows=far + block.start,
        far_dist=dist[far] if dist is not None else np.empty(0, dtype=np.float32),
    )


@dataclass(frozen=True)
class LabelledBlock:
    """A block with its rows' clusters from the last step (their distances are to come)."""

    block: LloydBlock
    labels: np.ndarray

    @property
    def key(self) -> str:
        return self.block.key


def block_distances(item: LabelledBlock, index: CentroidIndex) -> np.ndarray:
    """Float32 squared distance of each row of the block to its cluster's centroid; O(rows d)."""
    return row_distances(item.block.data.get(), index.centroids, item.labels)


def step_cost(
    sq_norms: float, sums: np.ndarray, counts: np.ndarray, centroids: np.ndarray
) -> float:
    """A step's cost from its per-cluster sums: sum |x - c_l|^2 = sum |x|^2 - 2 sum_c S_c . c
    + sum_c n_c |c|^2, in float64 (no cancellation to fear: the cost is a sizeable share of
    sum |x|^2 on real data). O(k d)."""
    c = centroids.astype(np.float64)
    cost = sq_norms - 2.0 * float(np.einsum("ij,ij->", sums, c))
    cost += float(counts.astype(np.float64) @ np.einsum("ij,ij->i", c, c))
    return max(cost, 0.0)


@dataclass
class Step:
    """The partial results of every block, reduced in block order."""

    sums: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    dist: np.ndarray | None
    far_rows: np.ndarray
    far_dist: np.ndarray
    cost: float = 0.0  # set by the caller, from the sums (``step_cost``)

    def farthest(self, count: int) -> np.ndarray:
        """The ``count`` rows farthest from their centroid, farthest first, ties by row:
        ``np.argsort(-dist, kind="stable")[:count]`` over the whole matrix."""
        order = np.lexsort((self.far_rows, -self.far_dist))
        return self.far_rows[order[:count]]


def reduce_blocks(parts: list[BlockStats]) -> Step:
    """Add the blocks' partial results in block order (float sums in that fixed order)."""
    sums, counts = parts[0].sums, parts[0].counts
    for part in parts[1:]:
        sums = sums + part.sums
        counts = counts + part.counts
    with_dist = parts[0].dist is not None
    return Step(
        sums=sums,
        counts=counts,
        labels=np.concatenate([p.labels for p in parts]),
        dist=np.concatenate([p.dist for p in parts]) if with_dist else None,
        far_rows=np.concatenate([p.far_rows for p in parts]),
        far_dist=np.concatenate([p.far_dist for p in parts]),
    )


def fit_blocks(x: np.ndarray, engine: Engine | None = None) -> list[LloydBlock]:
    """``x`` cut into LLOYD_BLOCK_ROWS-row blocks, each stored once (on the engine when given)."""
    engine = engine or LocalEngine()
    n = x.shape[0]
    return [
        LloydBlock(f"fit-rows:{s}-{min(s + LLOYD_BLOCK_ROWS, n)}", s, min(s + LLOYD_BLOCK_ROWS, n),
                   engine.put(x[s : s + LLOYD_BLOCK_ROWS]), _sq_norms(x[s : s + LLOYD_BLOCK_ROWS]))
        for s in range(0, n, LLOYD_BLOCK_ROWS)
    ]  # fmt: skip


def _sq_norms(rows: np.ndarray) -> float:
    """Float64 sum of the rows' squared norms, in fixed chunks (the same bytes on any engine)."""
    total = 0.0
    for s in range(0, rows.shape[0], DIST_ROWS):  # small chunks: temporaries stay in cache
        total += float(np.square(np.asarray(rows[s : s + DIST_ROWS], dtype=np.float64)).sum())
    return total


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
    sq_norms = sum(b.sq_norms for b in blocks)  # in block order

    def step(c: np.ndarray, distances: bool = False) -> Step:
        spec = StepSpec(centroid_index(c, spherical), distances)
        current = reduce_blocks(list(use.map(lloyd_block, blocks, shared=spec)))
        current.cost = step_cost(sq_norms, current.sums, current.counts, spec.index.centroids)
        return current

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
                if current.dist is None:  # the same step again, now with its distances
                    current = step(c, distances=True)
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
    dist = current.dist
    if dist is None:  # the last step's rows, their distances: O(n d), no search
        index = centroid_index(c, spherical)
        items = [LabelledBlock(b, current.labels[b.start : b.stop]) for b in blocks]
        dist = np.concatenate(list(use.map(block_distances, items, shared=index)))
    # the cost returned is the exact sum of those distances (block by block, in block order)
    cost = 0.0
    for b in blocks:
        cost += float(dist[b.start : b.stop].astype(np.float64).sum())
    return c, current.counts, cost, done, history, current.labels, dist


def assign_rows(
    x: np.ndarray, centroids: np.ndarray, *, spherical: bool = False, engine: Engine | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``assign(x, centroids)``, on ``engine``'s workers block by block when ``x`` has more
    than one block (the same labels and distances: rows are searched in the same groups)."""
    if engine is None or x.shape[0] <= LLOYD_BLOCK_ROWS:
        return assign(x, centroids, spherical=spherical)
    blocks = fit_blocks(unit_rows(x) if spherical else x, engine)
    spec = StepSpec(centroid_index(centroids, spherical))
    parts = list(engine.map(lloyd_block, blocks, shared=spec))
    return np.concatenate([p.labels for p in parts]), np.concatenate([p.dist for p in parts])
