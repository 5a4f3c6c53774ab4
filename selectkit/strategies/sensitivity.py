"""Clustering-based sensitivity sampling (Axiotis et al., ICML 2024).

Each cluster's representative is the unlabelled row nearest its mean. A row's loss is bounded
by its representative's loss plus lambda times its squared distance to the representative; rows
are sampled in proportion to that bound (mixed with a uniform floor so no weight explodes) and
weighted by the inverse of their sampling probability, so that

    sum over picks of weight * loss  ~  sum over all selectable rows of loss

is an unbiased estimate. The representatives are always picked (weight 1) and the sample is
drawn from the other rows. Without a loss column the classic k-means sensitivity bound
d^2(x, centre) / cost + 1 / |cluster| is used instead.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.cluster.hierarchical import closest_per_cluster
from selectkit.console import warn
from selectkit.errors import SelectkitError, param_option
from selectkit.linalg import group_means, squared_distances_to
from selectkit.pool import Pool
from selectkit.strategies.base import AUTO, LABELS_AS_DATA, Param, Selection, register_strategy

MIN_PILOT = 10  # rows with a known loss needed to estimate lambda from the data


def with_floor(bound: np.ndarray, floor: float) -> np.ndarray:
    """Sampling probabilities (1 - floor) * bound / sum + floor / n; uniform when the bound is
    all zero."""
    total = bound.sum()
    if total <= 0:
        return np.full(bound.size, 1.0 / bound.size)
    p = (1.0 - floor) * bound / total + floor / bound.size
    return p / p.sum()


def draw_with_replacement(
    p: np.ndarray, distinct: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw i.i.d. from ``p`` until ``distinct`` different positions came up; returns (positions
    in first-draw order, their draw counts, total draws m)."""
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    draws = np.empty(0, dtype=np.int64)
    batch = max(16, 2 * distinct)
    while True:
        new = np.searchsorted(cdf, rng.random(batch), side="right")
        draws = np.concatenate([draws, np.minimum(new, p.size - 1)])
        uniq, first = np.unique(draws, return_index=True)
        if uniq.size >= distinct:
            # stop at the draw that brought the distinct-th new position
            m = int(np.sort(first)[distinct - 1]) + 1
            draws = draws[:m]
            uniq, first, counts = np.unique(draws, return_index=True, return_counts=True)
            order = np.argsort(first)
            return uniq[order], counts[order], m
        batch *= 2


def inclusion_probabilities(p: np.ndarray, size: int) -> np.ndarray:
    """pi_i = min(1, c p_i) with sum(pi) = ``size`` (rows that would exceed 1 are capped)."""
    pi = np.zeros(p.size)
    capped = np.zeros(p.size, dtype=bool)
    while True:
        free = ~capped
        left = size - capped.sum()
        if left <= 0 or not free.any():
            pi[capped] = 1.0
            return pi
        pi[free] = p[free] * (left / p[free].sum())
        over = free & (pi >= 1.0)
        if not over.any():
            pi[capped] = 1.0
            return pi
        capped |= over


def systematic_pps(
    p: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly ``size`` positions without replacement, position i included with probability
    pi_i (systematic sampling over a random order); returns (positions, pi of each)."""
    pi = inclusion_probabilities(p, size)
    order = rng.permutation(p.size)
    cum = np.cumsum(pi[order])
    cum *= size / cum[-1]
    hits = np.searchsorted(cum, rng.random() + np.arange(size), side="right")
    picked = order[np.minimum(hits, p.size - 1)]
    return picked, pi[picked]


def loss_column(pool: Pool, loss: str) -> str | None:
    """The loss column to use: ``loss`` itself, ``'loss'`` when auto finds one, or None."""
    if loss == "none":
        return None
    if loss == AUTO:
        return "loss" if "loss" in pool.frame.columns else None
    if loss not in pool.frame.columns:
        raise SelectkitError(
            f"{pool.where} has no loss column '{loss}'; name an existing column with "
            f"{param_option('loss_col')}, or {param_option('loss_col', 'none')} for the "
            "distance-only bound"
        )
    return loss


@register_strategy(
    "sensitivity",
    summary="Clustering-based sensitivity sampling: the cluster representatives plus a weighted "
    "sample drawn in proportion to an upper bound on each row's loss (Axiotis et al. 2024).",
    needs=("embedding", "cluster"),
    params={
        "loss_col": Param(
            str,
            AUTO,
            "column with per-row losses (only the representatives' are needed); auto: 'loss' if "
            "present; none: the classic distance-only sensitivity bound",
        ),
        "lam": Param(
            float,
            AUTO,
            "lambda in loss(rep) + lambda * distance^2; auto: the median ratio over rows with a "
            "known loss, else mean rep loss / mean distance^2",
            low=0.0,
        ),
        "floor": Param(
            float, 0.5, "share of uniform probability mixed into the sampling", low=0.0, high=1.0
        ),
        "sampling": Param(
            str,
            "replacement",
            "replacement: i.i.d. draws until the budget is filled, weight count/(m p); pps: "
            "without replacement, weight 1/inclusion probability",
            ("replacement", "pps"),
        ),
    },
    labels=LABELS_AS_DATA,  # estimating the loss of labelled data: every row may be picked
    cost="O(n d) time, O(n) memory (one pass for cluster means, one for distances).",
)
def sensitivity(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    loss_col: str = AUTO,
    lam: float | str = AUTO,
    floor: float = 0.5,
    sampling: str = "replacement",
) -> Selection:
    """Return the representatives (weight 1) then the weighted sample; the manifest score is
    each pick's bound s(x). O(n d)."""
    x = pool.embeddings
    candidates = pool.candidates
    _, groups = np.unique(pool.cluster_labels[candidates], return_inverse=True)
    k = int(groups.max()) + 1
    centres, _ = group_means(x, groups, k, rows=candidates)
    d2_centre = squared_distances_to(x, candidates, centres, groups)
    # the row nearest each cluster's mean, in cluster order (ties: the earlier row)
    reps = closest_per_cluster(groups, d2_centre, k, 1)
    reps = reps[np.argsort(groups[reps], kind="stable")]
    if budget == candidates.size:  # a census: every row, each standing for itself
        return Selection(
            indices=candidates,
            weights=np.ones(candidates.size),
            metrics={"sensitivity_representatives": int(reps.size), "sensitivity_draws": 0},
        )
    if reps.size > budget:
        raise SelectkitError(
            f"budget {budget} is smaller than the {reps.size} cluster representatives that "
            "sensitivity sampling always includes; raise the budget or use fewer clusters"
        )
    if reps.size == budget:  # no room for a sample: each representative stands for its cluster
        warn(
            f"sensitivity: the budget {budget} holds only the cluster representatives; each is "
            "weighted by its cluster's size (a k-medoids coreset, not an unbiased sample)"
        )
        return Selection(
            indices=candidates[reps],
            weights=np.bincount(groups, minlength=k)[groups[reps]].astype(np.float64),
            metrics={"sensitivity_representatives": int(reps.size), "sensitivity_draws": 0},
        )
    d2_rep = squared_distances_to(x, candidates, x[candidates[reps]], groups)
    column = loss_column(pool, loss_col)
    lam_used: float | None = None
    if column is None:
        cost = d2_centre.sum()
        sizes = np.bincount(groups, minlength=k)
        bound = (d2_centre / cost if cost > 0 else 0.0) + 1.0 / sizes[groups]
    else:
        losses = pool.frame.get_column(column).cast(pl.Float64).to_numpy()[candidates]
        rep_loss = losses[reps]
        if not np.all(np.isfinite(rep_loss)):
            missing = pool.ids.gather(candidates[reps[~np.isfinite(rep_loss)]]).to_list()
            raise SelectkitError(
                f"column '{column}' has no loss for {len(missing)} cluster representatives "
                f"(e.g. id {missing[0]!r}); compute the loss of those rows first"
            )
        lam_used = estimate_lambda(losses, rep_loss[groups], d2_rep) if lam == AUTO else float(lam)
        bound = np.maximum(rep_loss[groups], 0.0) + lam_used * d2_rep
        if not np.all(np.isfinite(bound)):
            raise SelectkitError(
                f"lam={lam_used:g} makes the loss bound overflow; give a smaller "
                + param_option("lam")
            )
    rest = np.setdiff1d(np.arange(candidates.size), reps)
    target = budget - reps.size
    p = with_floor(bound[rest], floor) if target else np.empty(0)
    if target == 0:
        sample, weights, draws = np.empty(0, dtype=np.int64), np.empty(0), 0
    elif sampling == "pps":
        sample, pi = systematic_pps(p, target, rng)
        weights, draws = 1.0 / pi, target
    else:
        sample, counts, draws = draw_with_replacement(p, target, rng)
        weights = counts / (draws * p[sample])
    picks = np.concatenate([reps, rest[sample]])
    return Selection(
        indices=candidates[picks],
        scores=bound[picks],
        weights=np.concatenate([np.ones(reps.size), weights]),
        params={"lam": lam_used} if lam_used is not None else {},
        metrics={
            "sensitivity_representatives": int(reps.size),
            "sensitivity_draws": int(draws),
            "sensitivity_loss_column": column,
        },
    )


def estimate_lambda(losses: np.ndarray, rep_loss: np.ndarray, d2_rep: np.ndarray) -> float:
    """Median of |loss - loss(rep)| / distance^2 over rows with a known loss (the Hoelder
    constant seen in the data); with too few such rows, mean rep loss / mean distance^2."""
    known = np.isfinite(losses) & (d2_rep > 0)
    if known.sum() >= MIN_PILOT:
        return float(np.median(np.abs(losses[known] - rep_loss[known]) / d2_rep[known]))
    mean_d2 = d2_rep.mean()
    return float(np.abs(rep_loss).mean() / mean_d2) if mean_d2 > 0 else 0.0
