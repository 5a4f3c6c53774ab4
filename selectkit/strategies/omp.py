"""Weighted coresets by positive orthogonal matching pursuit per cluster (TAGCOS-style; Zhang et
al., arXiv 2407.15235).

Per cluster C of n_C rows with vectors v_i (the ``embedding`` column, or any vector column named
with ``--vector-col``/``--embedding-col``, e.g. ``selectkit scores --gradients``' ``gradient``),
the target is the cluster's mean mu_C. Positive OMP adds, one at a time, the row whose vector has
the largest *positive* inner product with the residual r = mu_C - sum_S x_i v_i, refits the
coefficients x >= 0 on the chosen set S by least squares (an incremental Cholesky factor of the
small Gram matrix; scipy's ``nnls`` on that factor when a coefficient would turn negative, and
rows whose coefficient reaches 0 leave S), and stops when ||r|| <= ``tol`` ||mu_C||, when no row
correlates positively with r, or at the cluster's budget. As in TAGCOS, a round that stops early
is followed by another on the rows not yet chosen, until the cluster's budget is filled (a round
that can choose nothing fills the rest with the rows most aligned with mu_C). The final
coefficients are one non-negative least-squares fit of mu_C on all the cluster's picks, each at
least ``min_weight`` / n_C.

Weights (``weighting``): ``sum`` (default) w_i = n_C x_i, so sum_S w_i v_i estimates the
cluster's sum n_C mu_C and, over the clusters, the weighted picks estimate the pool's sum (divide
by n for its mean); ``mass`` rescales them to sum to n_C per cluster; ``none`` gives 1.0 (TAGCOS
trains unweighted). The metrics record the relative matching error ||sum_S w v - n_C mu_C|| /
||n_C mu_C|| per cluster (of the ``sum`` weights) and overall against the pool's sum.

Clusters: the ``cluster`` column when the pool has one, else the whole pool is one cluster. The
budget is split by cluster size (largest remainder, capped at each size), every cluster getting
at least one pick when the budget allows. Ties in the greedy choice are broken by a seeded hash
of the id (each cluster's rows are held in hash order), never by row position.

Cost: per cluster O(b_C n_C d) for the correlations (one matrix-vector product per step) plus
O(b_C^2 d + b_C^3) for the Gram factor and refits; memory one float32 copy of the cluster's rows
(n_C d) plus O(b_C d + b_C^2); no n x n matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.optimize import nnls
from threadpoolctl import threadpool_limits

from selectkit.console import progress_bar
from selectkit.pool import Pool
from selectkit.rng import id_hashes, salt_of
from selectkit.strategies.allocation import proportional
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy
from selectkit.strategies.moderate import at_least_one_each

DEPENDENT = 1e-10  # a new row whose Cholesky pivot^2 falls below this share of ||v||^2 is skipped


def _nnls_on_factor(chol: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """argmin_{x >= 0} x'(L L')x - 2 rhs'x for the lower Cholesky factor L: nnls on L' x = L^-1 rhs;
    O(k^3)."""
    z = solve_triangular(chol, rhs, lower=True)
    x, _ = nnls(chol.T, z)
    return x


def _cholesky(gram: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of the Gram matrix of rows that were each accepted as independent;
    a jitter of DEPENDENT x its mean diagonal where rounding made it lose definiteness. O(k^3)."""
    try:
        return np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        jitter = DEPENDENT * float(np.trace(gram)) / max(gram.shape[0], 1)
        return np.linalg.cholesky(gram + jitter * np.eye(gram.shape[0]))


def omp_round(
    a: np.ndarray,
    target: np.ndarray,
    need: int,
    taken: np.ndarray,
    *,
    tol: float,
    ridge: float,
) -> list[int]:
    """Positions (into ``a``'s rows) chosen by one round of positive OMP toward ``target``,
    in the order chosen, at most ``need``, never a ``taken`` row. Stops when the relative residual
    is at most ``tol``, no free row correlates positively with it, or ``need`` are chosen.
    Among equal correlations the lowest position wins (``a`` is held in id-hash order).
    Cost O(steps * n d + k^2 d) time, O(k d + k^2) memory beyond ``a``."""
    d = a.shape[1]
    blocked = taken.copy()
    chosen: list[int] = []
    rows = np.zeros((need, d), dtype=np.float64)  # the chosen vectors
    chol = np.zeros((need, need), dtype=np.float64)  # lower factor of rows rows' + ridge I
    rhs = np.zeros(need, dtype=np.float64)  # rows @ target
    residual = target.copy()
    stop = tol * float(np.linalg.norm(target))
    k = 0
    for _ in range(4 * need + 16):  # each step adds or blocks a row; bounded in any case
        if k >= need:
            break
        corr = a @ residual.astype(np.float32)
        corr[blocked] = -np.inf
        j = int(np.argmax(corr))
        if not corr[j] > 0:
            break
        blocked[j] = True
        v = a[j].astype(np.float64)
        vv = float(v @ v) + ridge
        w = solve_triangular(chol[:k, :k], rows[:k] @ v, lower=True) if k else np.zeros(0)
        pivot2 = vv - float(w @ w)
        if pivot2 <= DEPENDENT * vv:  # (numerically) in the span of the chosen rows
            continue
        chol[k, :k], chol[k, k] = w, np.sqrt(pivot2)
        rows[k], rhs[k] = v, float(v @ target)
        chosen.append(j)
        k += 1
        x = cho_solve((chol[:k, :k], True), rhs[:k])
        if x.min() <= 0:
            x = _nnls_on_factor(chol[:k, :k], rhs[:k])
            keep = x > 0
            if not keep.all():  # rows at 0 leave the set (and stay blocked this round)
                chosen = [c for c, kp in zip(chosen, keep, strict=True) if kp]
                k = len(chosen)
                rows[:k], rhs[:k], x = rows[: keep.size][keep], rhs[: keep.size][keep], x[keep]
                chol[:] = 0.0
                chol[:k, :k] = _cholesky(rows[:k] @ rows[:k].T + ridge * np.eye(k))
        residual = target - rows[:k].T @ x
        if np.linalg.norm(residual) <= stop:
            break
    return chosen


def final_fit(
    picks: np.ndarray, target: np.ndarray, *, ridge: float, floor: float
) -> tuple[np.ndarray, float]:
    """Coefficients x >= ``floor`` minimising ||picks' x - target||^2 + ridge ||x||^2 (``picks``
    is (k, d)), and the relative residual ||picks' x - target|| / ||target|| (0 for a zero
    target fitted exactly). One nnls on a (d + k) x k system; O(k^2 (d + k)) at worst."""
    k = picks.shape[0]
    m = picks.T.astype(np.float64)  # (d, k)
    base = np.full(k, floor)
    rhs = target - m @ base
    if ridge > 0:
        m = np.vstack([m, np.sqrt(ridge) * np.eye(k)])
        rhs = np.concatenate([rhs, -np.sqrt(ridge) * base])
    z, _ = nnls(m, rhs)
    x = base + z
    norm = float(np.linalg.norm(target))
    err = float(np.linalg.norm(picks.T.astype(np.float64) @ x - target))
    return x, err / norm if norm > 0 else err


def omp_cluster(
    a: np.ndarray,
    count: int,
    *,
    tol: float = 1e-4,
    ridge: float = 0.0,
    min_weight: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``count`` positions into the rows ``a`` (n, d float32, held in id-hash order) chosen by
    rounds of positive OMP toward their mean, in pick order; their weights w = n x (so the
    weighted sum estimates the rows' sum; each at least ``min_weight``); and the relative
    matching error. A zero mean takes the first ``count`` rows with weight n / count.
    Cost O(count * n d + count^2 d + count^3); memory O(count d + count^2) beyond ``a``."""
    n = a.shape[0]
    if count <= 0:
        return np.empty(0, np.int64), np.empty(0), 0.0
    target = a.mean(axis=0, dtype=np.float64)
    if not np.linalg.norm(target) > 0:
        return np.arange(count, dtype=np.int64), np.full(count, n / count), 0.0
    taken = np.zeros(n, dtype=bool)
    order: list[int] = []
    while len(order) < count:
        got = omp_round(a, target, count - len(order), taken, tol=tol, ridge=ridge)
        if not got:  # nothing correlates positively: the rows most aligned with the mean
            free = np.flatnonzero(~taken)
            corr = a[free] @ target.astype(np.float32)
            got = free[np.lexsort((free, -corr))[: count - len(order)]].tolist()
        order.extend(got)
        taken[got] = True
    picks = np.asarray(order, dtype=np.int64)
    x, err = final_fit(a[picks], target, ridge=ridge, floor=min_weight / n)
    return picks, n * x, err


@register_strategy(
    "omp",
    summary="Weighted coreset by positive orthogonal matching pursuit per cluster (TAGCOS): the "
    "rows whose weighted sum matches the cluster's mean vector (embeddings or gradients).",
    needs=("embedding",),
    optional=("cluster",),
    params={
        "tol": Param(
            float,
            1e-4,
            "a round of OMP stops when the residual is this share of the cluster's mean",
            low=0.0,
            high=1.0,
            high_open=True,
        ),
        "ridge": Param(
            float,
            0.0,
            "ridge penalty on the coefficients (TAGCOS uses 1.0, which shrinks them)",
            low=0.0,
        ),
        "normalize_rows": Param(
            bool, False, "match unit-norm rows (TAGCOS) instead of the raw vectors"
        ),
        "weighting": Param(
            str,
            "sum",
            "sum: weights make the picks' weighted sum estimate the cluster's sum; mass: "
            "rescaled to sum to the cluster's size; none: 1.0 (TAGCOS trains unweighted)",
            ("sum", "mass", "none"),
        ),
        "min_weight": Param(
            float,
            1e-3,
            "smallest weight of a pick (in rows), so every pick keeps a positive weight",
            low=0.0,
            low_open=True,
        ),
    },
    labels=LABELS_AS_DATA,  # a coreset of labelled data: every row may be picked
    cost="O(b_j n_j d) per cluster (one matrix-vector product per pick) + O(b_j^2 d + b_j^3); "
    "memory one float32 copy of the largest cluster's rows + O(b_j d + b_j^2).",
)
def omp(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    tol: float = 1e-4,
    ridge: float = 0.0,
    normalize_rows: bool = False,
    weighting: str = "sum",
    min_weight: float = 1e-3,
) -> Selection:
    """Return ``budget`` rows chosen by positive OMP toward each cluster's mean vector, with
    weights per ``weighting`` (scores: null); metrics give the matching errors."""
    from selectkit.linalg import normalise_rows_

    candidates = pool.candidates
    x = pool.embeddings
    if pool.has("cluster"):
        groups = np.unique(pool.cluster_labels[candidates], return_inverse=True)[1]
    else:
        groups = np.zeros(candidates.size, dtype=np.int64)
    k = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=k)
    counts = proportional(sizes, budget, rng)
    if budget >= k:
        counts = at_least_one_each(counts)
    tie = id_hashes(pool.ids.gather(candidates), salt_of(rng))
    order = np.lexsort((tie, groups))  # by cluster, within it by id hash
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picks, weights, quantile, errors = [], [], [], np.zeros(k)
    pool_sum = np.zeros(x.shape[1])
    miss = np.zeros(x.shape[1])
    # one BLAS thread: a matrix-vector product per pick is too small to share (14x faster on
    # 10,000 x 128 rows on 2 cores than the default threads)
    with progress_bar("omp clusters", k) as bar, threadpool_limits(limits=1):
        for c in range(k):  # a loop over clusters, not rows
            members = candidates[order[starts[c] : starts[c + 1]]]
            a = np.asarray(x[members], dtype=np.float32)  # one gather, in id-hash order
            if normalize_rows:
                normalise_rows_(a)
            pos, w, errors[c] = omp_cluster(
                a, int(counts[c]), tol=tol, ridge=ridge, min_weight=min_weight
            )
            total = a.sum(axis=0, dtype=np.float64)
            pool_sum += total
            if pos.size:
                miss += a[pos].T.astype(np.float64) @ w - total
            else:
                miss -= total
            if weighting == "mass" and pos.size:
                w = w * (sizes[c] / w.sum())
            elif weighting == "none":
                w = np.ones(pos.size)
            picks.append(members[pos])
            weights.append(w)
            quantile.append((np.arange(pos.size) + 0.5) / max(pos.size, 1))
            bar.advance()
    idx = np.concatenate(picks)
    wts = np.concatenate(weights)
    q = np.concatenate(quantile)
    hashes = id_hashes(pool.ids.gather(idx), salt_of(rng))
    rank = np.lexsort((hashes, q))  # the clusters' first picks first: a prefix spans them
    norm = float(np.linalg.norm(pool_sum))
    return Selection(
        indices=idx[rank],
        weights=wts[rank],
        metrics={
            "omp_clusters": k,
            "omp_error": float(np.linalg.norm(miss) / norm) if norm > 0 else 0.0,
            "omp_cluster_error_mean": float(errors.mean()),
            "omp_cluster_error_max": float(errors.max()),
            "omp_cluster_errors": [round(float(e), 6) for e in errors],
        },
    )
