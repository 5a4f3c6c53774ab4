"""Uniform random sampling without replacement: the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np

from selectkit.pool import Pool
from selectkit.strategies.base import Selection, register_strategy


@register_strategy(
    "random",
    summary="Uniform random sample of the unlabelled rows, without replacement.",
    cost="O(n) time and memory.",
)
def random_sample(pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
    """Return ``budget`` unlabelled rows drawn uniformly without replacement; O(n)."""
    candidates = pool.candidates
    picks = rng.choice(candidates.size, size=budget, replace=False)
    return Selection(indices=candidates[picks])
