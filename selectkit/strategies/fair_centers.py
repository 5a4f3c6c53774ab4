"""Fair range clustering (Hotegni, Mahabadi & Vakilian, ICML 2023): k centres that are data
points, with [min, max] centres per group, for k-median, k-means or k-center.

The paper's own algorithm (LP relaxation and rounding) is not implemented. For disjoint groups
the feasible partial centre sets form a matroid: a set S is independent iff |S_g| <= max_g for
every group and sum_g max(min_g, |S_g|) <= k (docs/strategies.md, "fair-centers", gives the
exchange argument), so greedy seeding and swap local search keep every bound by construction:

1. Seeding: k times, draw a row that can still be added (its group below its max, and below its
   min or room left for every min) with probability proportional to d(x, S)^p (p = 1 for
   kmedian, 2 for kmeans); kcenter takes the farthest addable row (ties by seeded id hash).
2. Swap local search: ``passes`` passes of ``swaps`` candidate rows each, drawn by D^2 (kcenter)
   or D^p sampling from the evaluation rows; for a candidate x the best centre c to swap out
   over all k centres is found at once (cached nearest and second-nearest centre per evaluation
   row), among the swaps that keep a base (same group, or c's group stays >= its min and x's
   <= its max). A swap is kept when the cost falls by a factor (1 - 0.01/k). A pass without a
   kept swap stops the search.

The cost is evaluated on at most ``sample`` rows (the candidates with the smallest seeded id
hashes: the same rows in any input order), never on an n x n matrix; nearest centres come
from faiss. With group ranges the same algorithm also runs without them, and the metric
``fair_centers_cost_ratio`` is the constrained cost over the unconstrained one (>= 1 means
what the ranges cost). ``weight`` = candidate rows nearest to each centre (the picks are also
a k-median coreset); pick order = the seeding order, a swapped-in centre taking the slot of the
centre it replaced.

Cost: seeding O(n k d) time; each pass O(swaps * n_s * d) plus O(n_s k d) per kept swap
(n_s = min(n, sample)); weights one O(n k d) faiss pass; O(n + n_s d) extra memory (the
candidates' embeddings are copied when some rows are already labelled).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from selectkit.linalg import squared_norms
from selectkit.pool import Pool
from selectkit.rng import id_hashes, salt_of, smallest_keys
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy

OBJECTIVES = {"kmedian": 1.0, "kmeans": 2.0, "kcenter": np.inf}
IMPROVE = 0.01  # a swap is kept when the cost falls by a factor (1 - IMPROVE / k)


def objective_cost(sq: np.ndarray, p: float) -> float:
    """The objective of squared nearest-centre distances ``sq``: sum of d (kmedian), sum of d^2
    (kmeans) or max d (kcenter). O(n)."""
    sq = np.maximum(sq.astype(np.float64), 0.0)
    if p == 1.0:
        return float(np.sqrt(sq).sum())
    if p == 2.0:
        return float(sq.sum())
    return float(np.sqrt(sq.max())) if sq.size else 0.0


def _first_addable(mask: np.ndarray, keys: np.ndarray) -> int:
    rows = np.flatnonzero(mask)
    return int(rows[np.argmin(keys[rows])])


def seed_centres(
    x: np.ndarray,
    groups: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    p: float,
    rng: np.random.Generator,
    keys: np.ndarray,
) -> np.ndarray:
    """Matroid-constrained D^p seeding: ``k`` row positions of ``x`` (int64, pick order) whose
    group counts lie in [lo, hi] (``groups``: code per row). kcenter (p = inf) takes the
    farthest addable row; ties and all-zero distances go to the smallest ``keys`` (seeded id
    hashes). O(n k d) time, O(n) memory."""
    n = x.shape[0]
    counts = np.zeros(lo.size, dtype=np.int64)
    centre = np.zeros(n, dtype=bool)
    nearest = np.full(n, np.inf, dtype=np.float32)
    picks = np.empty(k, dtype=np.int64)
    for step in range(k):
        need = int(np.maximum(lo - counts, 0).sum())
        open_ = (counts < hi) & ((counts < lo) | (step + need < k))
        mask = open_[groups] & ~centre
        if step == 0:
            pick = _first_addable(mask, keys)
        elif np.isinf(p):
            val = np.where(mask, nearest, -1.0)
            ties = np.flatnonzero(val == val.max())
            pick = int(ties[np.argmin(keys[ties])])
        else:
            w = np.where(mask, np.maximum(nearest, 0.0).astype(np.float64) ** (p / 2.0), 0.0)
            total = float(w.sum())
            if total <= 0.0:
                pick = _first_addable(mask, keys)
            else:
                cum = np.cumsum(w)
                pick = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
                pick = min(pick, n - 1)
                if not mask[pick]:  # rounding at a zero-weight edge: the next addable row
                    pick = int(np.flatnonzero(mask & (np.arange(n) >= pick))[0])
        picks[step] = pick
        centre[pick] = True
        counts[groups[pick]] += 1
        nearest = np.minimum(nearest, squared_norms(x, x[pick]))
    return picks


def _two_nearest(xe: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, ...]:
    """(d1, a1, d2): squared distance to the nearest centre, its slot, squared distance to the
    second nearest (inf for one centre), per evaluation row; one faiss pass, O(n_s k d)."""
    index = faiss.IndexFlatL2(centres.shape[1])
    index.add(np.ascontiguousarray(centres, dtype=np.float32))
    dist, slot = index.search(xe, min(2, centres.shape[0]))
    dist = np.maximum(dist, 0.0)
    d2 = dist[:, 1] if dist.shape[1] > 1 else np.full(xe.shape[0], np.inf, dtype=np.float32)
    return dist[:, 0].copy(), slot[:, 0].astype(np.int64), d2.copy()


def _swap_costs(
    dx: np.ndarray, d1: np.ndarray, a1: np.ndarray, d2: np.ndarray, k: int, p: float
) -> np.ndarray:
    """Cost after swapping each of the k centre slots for a row at squared distances ``dx``
    from the evaluation rows; O(n_s + k)."""
    base = np.minimum(d1, dx).astype(np.float64)
    repl = np.minimum(d2, dx).astype(np.float64)
    if np.isinf(p):
        top_base = np.zeros(k)
        np.maximum.at(top_base, a1, base)
        top_repl = np.zeros(k)
        np.maximum.at(top_repl, a1, repl)
        order = np.argsort(-top_base, kind="stable")
        others = np.full(k, top_base[order[0]])
        others[order[0]] = top_base[order[1]] if k > 1 else 0.0
        return np.sqrt(np.maximum(others, top_repl))
    if p == 1.0:
        base, repl = np.sqrt(base), np.sqrt(repl)
    return base.sum() + np.bincount(a1, weights=repl - base, minlength=k)


def local_search(
    x: np.ndarray,
    eval_rows: np.ndarray,
    groups: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    picks: np.ndarray,
    p: float,
    rng: np.random.Generator,
    passes: int,
    swaps: int,
) -> tuple[np.ndarray, float, int]:
    """Swap local search from ``picks`` (kept a base of the range matroid): returns (centres,
    cost on ``eval_rows``, swaps kept). O(passes * swaps * n_s * d + kept * n_s * k * d)."""
    picks = picks.copy()
    k = picks.size
    xe = np.ascontiguousarray(x[eval_rows], dtype=np.float32)
    counts = np.bincount(groups[picks], minlength=lo.size)
    d1, a1, d2 = _two_nearest(xe, x[picks])
    cost = objective_cost(d1, p)
    kept = 0
    power = 2.0 if np.isinf(p) else p
    eval_groups = groups[eval_rows]
    for _ in range(passes):
        improved = False
        w = np.maximum(d1, 0.0).astype(np.float64) ** (power / 2.0)
        if float(w.sum()) <= 0.0:
            break
        cum = np.cumsum(w)
        tries = np.searchsorted(cum, rng.random(swaps) * cum[-1], side="right")
        for t in np.unique(np.minimum(tries, eval_rows.size - 1)).tolist():
            row = int(eval_rows[t])
            if d1[t] <= 0.0:  # a centre, or a duplicate of one
                continue
            g = int(eval_groups[t])
            out_g = groups[picks]
            valid = (out_g == g) | ((counts[out_g] - 1 >= lo[out_g]) & (counts[g] + 1 <= hi[g]))
            if not valid.any():
                continue
            dx = squared_norms(xe, x[row])
            new = np.where(valid, _swap_costs(dx, d1, a1, d2, k, p), np.inf)
            slot = int(np.argmin(new))
            if new[slot] < (1.0 - IMPROVE / k) * cost:
                counts[out_g[slot]] -= 1
                counts[g] += 1
                picks[slot] = row
                d1, a1, d2 = _two_nearest(xe, x[picks])
                cost = objective_cost(d1, p)
                kept += 1
                improved = True
        if not improved:
            break
    return picks, cost, kept


def solve(
    x: np.ndarray,
    groups: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    p: float,
    rng: np.random.Generator,
    keys: np.ndarray,
    eval_rows: np.ndarray,
    passes: int,
    swaps: int,
) -> tuple[np.ndarray, float, int]:
    """Seeding then local search: (centre positions in ``x``, cost on ``eval_rows``, swaps)."""
    picks = seed_centres(x, groups, lo, hi, k, p, rng, keys)
    return local_search(x, eval_rows, groups, lo, hi, picks, p, rng, passes, swaps)


@register_strategy(
    "fair-centers",
    summary="Fair range clustering: k centres that are data points, each group's count within "
    "[--group-min, --group-max], for k-median/k-means/k-center (Hotegni et al. 2023; matroid "
    "seeding + swap search).",
    needs=("embedding",),
    optional=("group",),
    params={
        "objective": Param(
            str,
            "kmedian",
            "kmedian (sum of distances), kmeans (sum of squared distances) or kcenter (max)",
            ("kmedian", "kmeans", "kcenter"),
        ),
        "passes": Param(
            int, 5, "swap passes of the local search (0 = seeding only)", low=0, high=100
        ),
        "swaps": Param(int, 64, "candidate centres tried per pass", low=1, high=100_000),
        "sample": Param(
            int, 50_000, "rows the cost is evaluated on (seeded id-hash sample)", low=10
        ),
    },
    labels=LABELS_AS_DATA,  # representatives of the data: every row may be a centre
    meets_ranges=True,
    cost="O(n*k*d) seeding and weights; O(passes*swaps*min(n, sample)*d) swap search; O(n) "
    "memory plus the evaluation sample; no n x n matrix.",
)
def fair_centers(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    objective: str = "kmedian",
    passes: int = 5,
    swaps: int = 64,
    sample: int = 50_000,
    bounds: Any = None,
) -> Selection:
    """Return ``budget`` centres (data points) meeting ``bounds`` (a GroupBounds from
    ``select``'s group ranges; None = no ranges), weighted by the candidate rows nearest to
    each; metrics give the cost, and with ranges its ratio to the unconstrained solution."""
    cand = pool.candidates
    emb = pool.embeddings
    x = emb if cand.size == len(pool) else np.ascontiguousarray(emb[cand])
    x = np.ascontiguousarray(x, dtype=np.float32)
    p = OBJECTIVES[objective]
    unconstrained_rng = np.random.default_rng(int(rng.integers(0, 1 << 62)))
    keys = id_hashes(pool.ids.gather(cand), salt_of(rng))
    eval_rows = np.sort(smallest_keys(keys, min(sample, cand.size)))
    free = (np.zeros(cand.size, dtype=np.int64), np.zeros(1, np.int64), np.array([cand.size]))
    groups, lo, hi = free if bounds is None else (bounds.codes[cand], bounds.lo, bounds.hi)
    picks, cost, kept = solve(x, groups, lo, hi, budget, p, rng, keys, eval_rows, passes, swaps)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x[picks]))
    _, nearest = index.search(x, 1)
    weights = np.bincount(nearest[:, 0], minlength=budget).astype(np.float64)
    metrics: dict[str, Any] = {
        "fair_centers_objective": objective,
        "fair_centers_cost": cost,
        "fair_centers_eval_rows": int(eval_rows.size),
        "fair_centers_swaps": kept,
    }
    if bounds is not None:
        _, free_cost, _ = solve(
            x, *free, budget, p, unconstrained_rng, keys, eval_rows, passes, swaps
        )
        metrics["fair_centers_unconstrained_cost"] = free_cost
        metrics["fair_centers_cost_ratio"] = cost / free_cost if free_cost > 0 else 1.0
    return Selection(indices=cand[picks], weights=weights, metrics=metrics)
