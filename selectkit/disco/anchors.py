"""Pick the anchor samples: top-k by disagreement, globally or stratified over groups.

Stratified (the DISCO default when samples carry a group, i.e. a sub-benchmark): the budget is
split evenly over the groups, the remainder going to the first groups in sorted order; a group
with fewer selectable samples than its share gives the surplus to the others (again evenly), so
the total is always the budget. Inside each group the highest scores win; ties go to the earlier
sample. Deterministic given the scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selectkit.disco.data import Predictions
from selectkit.disco.disagreement import disagreement
from selectkit.errors import SelectkitError, SelectkitUsageError

STRATIFY = ("auto", "group", "none")


def even_quotas(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` over strata of ``sizes`` as evenly as their sizes allow (water-filling).

    Every stratum gets min(size, L) for the largest level L that fits in the budget; what is
    left (fewer than the strata above L) goes one each to the first strata, in order, that still
    have room. Returns int64 quotas summing to min(budget, sizes.sum()); O(g log max(sizes)).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = min(int(budget), int(sizes.sum()))
    lo, hi = 0, int(sizes.max(initial=0))
    while lo < hi:  # largest L with sum(min(sizes, L)) <= total
        mid = (lo + hi + 1) // 2
        if int(np.minimum(sizes, mid).sum()) <= total:
            lo = mid
        else:
            hi = mid - 1
    quotas = np.minimum(sizes, lo)
    left = total - int(quotas.sum())
    room = np.flatnonzero(sizes > lo)[:left]
    quotas[room] += 1
    return quotas


def top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidates with the highest scores, best first; ties go to the lower index."""
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def stratified_top_k(
    scores: np.ndarray, candidates: np.ndarray, groups: np.ndarray, k: int
) -> np.ndarray:
    """Top-k inside each group with quotas from ``even_quotas`` over the sorted group names.

    Returns the picks ordered by score (best first, ties to the lower index). O(n log n).
    """
    names, inverse = np.unique(groups[candidates].astype(str), return_inverse=True)
    sizes = np.bincount(inverse, minlength=names.size)
    quotas = even_quotas(sizes, k)
    # rank every candidate inside its group by score, then keep the first quota of each group
    order = np.lexsort((candidates, -scores[candidates], inverse))
    sorted_groups = inverse[order]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank_in_group = np.arange(order.size) - starts[sorted_groups]
    picked = candidates[order[rank_in_group < quotas[sorted_groups]]]
    return picked[np.lexsort((picked, -scores[picked]))]


@dataclass
class Anchors:
    """Anchor samples (indices into the samples, best first), their scores, the models whose
    disagreement chose them and whether the choice was stratified."""

    indices: np.ndarray
    scores: np.ndarray
    models: list[str]
    stratified: bool
    all_scores: np.ndarray


def choose_anchors(
    preds: Predictions,
    budget: int,
    rng: np.random.Generator,
    *,
    method: str = "pds",
    stratify: str = "auto",
    guiding_models: int = 0,
    candidates: np.ndarray | None = None,
) -> Anchors:
    """DISCO's anchor selection on ``preds`` (the source models only: never the models whose
    accuracy is to be predicted).

    ``guiding_models`` > 0 scores disagreement over that many models drawn from ``rng`` (0 = all).
    ``stratify``: ``auto`` (by group when ``preds`` has groups), ``group`` or ``none``.
    ``candidates``: sample indices that may be picked (default all). O(M N C) + O(N log N).
    """
    if stratify not in STRATIFY:
        raise SelectkitUsageError(f"stratify={stratify!r} must be one of {', '.join(STRATIFY)}")
    m = preds.n_models
    rows = np.arange(m)
    if guiding_models:
        if guiding_models > m:
            raise SelectkitError(
                f"guiding_models={guiding_models} is more than the {m} models in {preds.where}; "
                f"give at most {m} (or 0 for all)"
            )
        rows = np.sort(rng.choice(m, size=guiding_models, replace=False))
    proba = preds.proba if rows.size == m else preds.proba[rows]
    scores = disagreement(proba, method)
    cand = np.arange(preds.n_samples) if candidates is None else np.asarray(candidates, np.int64)
    if budget > cand.size:
        raise SelectkitError(f"budget {budget} is larger than the {cand.size} selectable samples")
    if stratify == "group" and preds.groups is None:
        raise SelectkitError(
            f"stratify=group needs a 'group' column (the sub-benchmark of each id) in "
            f"{preds.where}; add one or use stratify=none"
        )
    stratified = stratify == "group" or (stratify == "auto" and preds.groups is not None)
    if stratified:
        picks = stratified_top_k(scores, cand, preds.groups, budget)
    else:
        picks = top_k(scores, cand, budget)
    return Anchors(
        indices=picks,
        scores=scores[picks],
        models=[preds.models[i] for i in rows],
        stratified=stratified,
        all_scores=scores,
    )
