"""Greedy k-center (Gonzalez 1985; the core-set of Sener & Savarese 2018).

Repeatedly picks the unlabelled row farthest from everything already picked or labelled, which
2-approximates the smallest radius that covers the pool. Each pick updates the distance of every
row to its nearest centre with one matrix-vector product per chunk of rows, skipping (exactly, by
the triangle inequality) the rows of centres too far from the new one to change. Extra memory is
O(n) floats plus one chunk and the (labelled + budget) x d centre matrix, never an n x n or
n x budget matrix. The loop runs with one BLAS thread: its matrix-vector products are too small
for threads to pay, and threads collapse when the cores are shared (DESIGN.md §5).
"""

from __future__ import annotations

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from selectkit.console import progress_bar
from selectkit.cost import CostBudget
from selectkit.linalg import column_mean, squared_norms, unit_rows
from selectkit.pool import Pool
from selectkit.rng import id_hashes, salt_of
from selectkit.strategies.base import Param, Selection, register_strategy

CHUNK_ROWS = 1 << 16


class _Cover:
    """Nearest-centre state for greedy k-center, with triangle-inequality pruning.

    Every row keeps its squared distance to the nearest centre (``min_dist``; -1 marks rows that
    can no longer be picked and whose distance no longer matters) and that centre's number
    (``assign``). Each centre j keeps ``radius_sq[j]``, the largest squared distance among its rows.
    A new centre c can only take rows from centre j when ||c - c_j|| < 2 * radius_j (otherwise,
    for every row x of j, ||x - c|| >= ||c - c_j|| - ||x - c_j|| >= radius_j >= ||x - c_j||), so only
    the rows of such "active" centres are visited. Exact, not approximate; the saving is large on
    clustered data and nil when distances concentrate, where it falls back to one full pass.

    Distances use ||x - c||^2 = ||x - mu||^2 + ||c - mu||^2 - 2 (x.(c - mu) - mu.(c - mu)) with the
    data mean mu, so float32 rounding scales with the spread of the data, not its offset from 0.
    """

    def __init__(self, x: np.ndarray, capacity: int) -> None:
        self.x = np.asarray(x)  # a plain ndarray view: memmap subclass indexing is slow
        self.mu = column_mean(x)
        self.x_sq = squared_norms(x, self.mu)
        n = x.shape[0]
        self.min_dist = np.full(n, np.inf, dtype=np.float32)
        self.assign = np.zeros(n, dtype=np.int64)
        self.centers = np.empty((capacity, x.shape[1]), dtype=np.float32)
        self.centers_sq = np.empty(capacity, dtype=np.float32)
        self.radius_sq = np.zeros(capacity, dtype=np.float32)
        self.count = 0

    def seed_with(self, rows: np.ndarray) -> None:
        """Make ``rows`` the first centres (labelled rows); one exact faiss kNN pass."""
        centers = (np.asarray(self.x[rows], dtype=np.float64) - self.mu).astype(np.float32)
        m = centers.shape[0]
        self.centers[:m] = centers
        self.centers_sq[:m] = squared_norms(centers)
        self.count = m
        index = faiss.IndexFlatL2(self.x.shape[1])
        index.add(centers)
        for start in range(0, self.x.shape[0], CHUNK_ROWS):
            block = (np.asarray(self.x[start : start + CHUNK_ROWS], np.float64) - self.mu).astype(
                np.float32
            )
            dist, nearest = index.search(block, 1)
            stop = start + block.shape[0]
            self.min_dist[start:stop] = np.maximum(dist[:, 0], 0.0)
            self.assign[start:stop] = nearest[:, 0]
        self._refresh_radii(None)

    def add(self, row: int) -> None:
        """Make ``row`` a centre and update every row it is now nearest to."""
        centered = np.asarray(self.x[row], dtype=np.float64) - self.mu
        c = centered.astype(np.float32)
        c_sq = np.float32(centered @ centered)
        shift = np.float32(self.mu @ centered)  # x.(c - mu) - mu.(c - mu) = (x - mu).(c - mu)
        j = self.count
        self.centers[j], self.centers_sq[j] = c, c_sq
        self.count += 1
        active = None
        if j == 0:
            active_rows = None
        else:
            gap = self.centers_sq[:j] + c_sq - 2.0 * (self.centers[:j] @ c)
            # a small margin keeps float rounding from ever skipping a row that could move
            active = gap < 4.0 * self.radius_sq[:j] * (1.0 + 1e-4) + 1e-6
            active_rows = None if active.mean() > 0.5 else np.flatnonzero(active[self.assign])
            if active_rows is not None and active_rows.size > self.x.shape[0] // 2:
                active_rows = None
        if active_rows is None:
            for start in range(0, self.x.shape[0], CHUNK_ROWS):
                self._update(slice(start, start + CHUNK_ROWS), c, c_sq, shift, j)
        else:
            for start in range(0, active_rows.size, CHUNK_ROWS):
                self._update(active_rows[start : start + CHUNK_ROWS], c, c_sq, shift, j)
        self._refresh_radii(active_rows, j, active)

    def _update(
        self,
        rows: slice | np.ndarray,
        c: np.ndarray,
        c_sq: np.float32,
        shift: np.float32,
        j: int,
    ) -> None:
        block = self.x[rows]
        d = block @ c
        d -= shift
        d *= -2.0
        d += self.x_sq[rows]
        d += c_sq
        np.maximum(d, 0.0, out=d)  # rounding can make a true zero slightly negative
        current = self.min_dist[rows]
        closer = d < current
        idx = np.flatnonzero(closer) + rows.start if isinstance(rows, slice) else rows[closer]
        self.min_dist[idx] = d[closer]
        self.assign[idx] = j

    def _refresh_radii(
        self, rows: np.ndarray | None, new: int | None = None, active: np.ndarray | None = None
    ) -> None:
        """Recompute the radius of every centre whose rows were visited (all when ``rows`` is
        None); the rest keep theirs, which stay exact because they neither gained nor lost rows."""
        if rows is None:
            self.radius_sq[: self.count] = 0.0
            np.maximum.at(self.radius_sq, self.assign, np.maximum(self.min_dist, 0.0))
            return
        self.radius_sq[np.flatnonzero(active)] = 0.0
        self.radius_sq[new] = 0.0
        np.maximum.at(self.radius_sq, self.assign[rows], np.maximum(self.min_dist[rows], 0.0))


def greedy_kcenter(
    x: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    *,
    selectable: np.ndarray | None = None,
    covered: np.ndarray | None = None,
    first_keys: np.ndarray | None = None,
    spend: CostBudget | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy k-center on the rows of ``x`` (float32 array or memmap).

    ``selectable``: boolean mask of rows that may be picked (default all); ``covered``: boolean
    mask of rows that already act as centres (e.g. labelled rows). Without covered rows the first
    pick is uniform among the selectable ones. Returns (picked row indices in order, the squared
    distance of each pick to the nearest earlier centre, NaN for a random first pick, and the
    final covering radius squared over the selectable rows). Rows that are not selectable do not
    count towards the radius. ``first_keys`` (uint64 per row, e.g. seeded hashes of the row ids)
    makes the random first pick the selectable row with the smallest key, so it follows the row
    and not its position. Later ties of the argmax go to the earliest row, which ``select`` makes
    canonical by running strategies on the rows in id order. O(n d budget) time at worst, less on
    clustered data (see ``_Cover``); O(n) extra memory plus one chunk of rows.

    ``spend`` (a ``selectkit.cost.CostBudget``) makes it cost-aware: each pick is the argmax of
    min-dist / cost**λ among the rows whose cost still fits (the first random pick among the
    affordable rows too), and it stops when no row fits, so fewer than ``budget`` rows may come
    back (``budget`` is then only an upper bound). O(n) more per pick.
    """
    n = x.shape[0]
    selectable = np.ones(n, dtype=bool) if selectable is None else selectable
    covered_rows = np.flatnonzero(covered) if covered is not None else np.empty(0, np.int64)
    cover = _Cover(x, covered_rows.size + budget)
    picks = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.float64)
    start = 0
    if spend is not None:
        selectable = selectable & ~spend.unaffordable(0.0)
    if covered_rows.size:
        cover.seed_with(covered_rows)
    else:
        allowed = np.flatnonzero(selectable)
        if first_keys is None:
            first = int(rng.choice(allowed))
        else:
            first = int(allowed[np.argmin(first_keys[allowed])])
        picks[0], gains[0] = first, np.nan
        cover.add(first)
        start = 1
    # Rows that may not be picked hold -1: min(-1, d) keeps them out of every later argmax.
    min_dist = cover.min_dist
    min_dist[~selectable] = -1.0
    if start:
        min_dist[picks[0]] = -1.0
    divisor = None if spend is None else spend.divisor()
    spent = 0.0 if spend is None or not start else float(spend.costs[picks[0]])
    done = budget
    with progress_bar("kcenter", budget) as bar, threadpool_limits(limits=1):
        bar.advance(start)
        for i in range(start, budget):
            if divisor is None:
                best = int(np.argmax(min_dist))
            else:  # cost-aware: only rows that still fit, by distance per cost**λ
                min_dist[spend.unaffordable(spent) & (min_dist >= 0)] = -1.0
                best = int(np.argmax(np.where(min_dist >= 0, min_dist / divisor, -1.0)))
                if min_dist[best] < 0:
                    done = i
                    break
                spent += float(spend.costs[best])
            picks[i], gains[i] = best, float(min_dist[best])
            cover.add(best)
            min_dist[best] = -1.0
            bar.advance()
    radius_sq = float(min_dist.max())
    return picks[:done], gains[:done], max(radius_sq, 0.0)


@register_strategy(
    "kcenter",
    summary="Greedy k-center coreset: each pick is the row farthest from all picked and "
    "labelled rows (Sener & Savarese 2018).",
    needs=("embedding",),
    optional=("label",),
    params={
        "metric": Param(
            str, "l2", "distance: l2, or cosine (rows L2-normalised first)", ("l2", "cosine")
        ),
    },
    cost="O(n*d*budget) time at worst, less on clustered data; O(n) extra memory plus a "
    "(labelled + budget) x d centre matrix; labelled rows cost one exact kNN pass.",
    spends_cost=True,
)
def kcenter(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    metric: str = "l2",
    spend: CostBudget | None = None,
) -> Selection:
    """Greedy k-center over the pool's embeddings; scores are each pick's distance to the
    nearest earlier pick or labelled row (null for a random first pick). With ``spend`` (a cost
    budget) each pick maximises distance / cost**λ among the affordable rows."""
    x = pool.embeddings
    if metric == "cosine":
        x = unit_rows(x)
    labelled = pool.labelled_mask
    selectable = np.zeros(len(pool), dtype=bool)
    selectable[pool.candidates] = True
    picks, gains, radius_sq = greedy_kcenter(
        x,
        budget,
        rng,
        selectable=selectable,
        covered=labelled if labelled.any() else None,
        first_keys=id_hashes(pool.ids, salt_of(rng)),
        spend=spend,
    )
    return Selection(
        indices=picks,
        scores=np.sqrt(gains),
        metrics={"covering_radius": float(np.sqrt(radius_sq))},
    )
