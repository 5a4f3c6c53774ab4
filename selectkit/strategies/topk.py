"""Top-k by a score column: the importance-score baseline (EL2N, forgetting, AUM, ...)."""

from __future__ import annotations

import numpy as np

from selectkit.pool import Pool
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy


@register_strategy(
    "topk",
    summary="The rows with the highest (or lowest) score; ties go to the earlier row.",
    needs=("score",),
    params={
        "order": Param(
            str, "high", "high: largest scores first; low: smallest first", ("high", "low")
        )
    },
    labels=LABELS_AS_DATA,  # pruning labelled data by score
    cost="O(n log n) time, O(n) memory.",
)
def topk(pool: Pool, budget: int, rng: np.random.Generator, order: str = "high") -> Selection:
    """Return the ``budget`` unlabelled rows with the extreme scores, best first. O(n log n)."""
    candidates = pool.candidates
    scores = pool.values("score")[candidates]
    key = -scores if order == "high" else scores
    picks = np.lexsort((np.arange(candidates.size), key))[:budget]
    return Selection(indices=candidates[picks], scores=scores[picks])
