"""Uniform random sampling without replacement: the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np

from selectkit.pool import Pool
from selectkit.rng import id_hashes, salt_of, smallest_keys
from selectkit.strategies.base import Selection, register_strategy


@register_strategy(
    "random",
    summary="Uniform random sample of the unlabelled rows, without replacement.",
    cost="O(n) time and memory (one hash per row id).",
)
def random_sample(pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
    """Return the ``budget`` unlabelled rows with the smallest seeded hashes of their ids: a
    uniform sample without replacement in which each row's fate depends only on the seed and its
    id, so the same rows in any order, sharding or subset rank the same; O(n)."""
    candidates = pool.candidates
    keys = id_hashes(pool.ids.gather(candidates), salt_of(rng))
    return Selection(indices=candidates[smallest_keys(keys, budget)])
