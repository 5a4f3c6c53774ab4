"""Core-set (Sener & Savarese 2018) and PCoreSet (Kang et al. 2025): greedy k-center from the
labelled rows, on embeddings or on the model's class-probability vectors.

Both reuse ``kcenter.greedy_kcenter``: labelled rows start as centres; with none (cold start)
the first pick is uniform among the unlabelled rows, drawn from the seed.
"""

from __future__ import annotations

import numpy as np

from selectkit.pool import Pool
from selectkit.rng import id_hashes, salt_of
from selectkit.strategies.base import Param, Selection, register_strategy
from selectkit.strategies.kcenter import greedy_kcenter, kcenter


@register_strategy(
    "coreset",
    summary="Core-set active learning: greedy k-center on embeddings, labelled rows as the first "
    "centres (Sener & Savarese 2018); the AL name of kcenter.",
    needs=("embedding",),
    optional=("label",),
    params={
        "metric": Param(
            str, "l2", "distance: l2, or cosine (rows L2-normalised first)", ("l2", "cosine")
        ),
    },
    cost="O(n*d*(labelled+budget)) time at worst; O(n) extra memory plus the centre matrix.",
)
def coreset(pool: Pool, budget: int, rng: np.random.Generator, metric: str = "l2") -> Selection:
    """Greedy k-center over the embeddings (see ``kcenter``); scores are distances to the nearest
    earlier pick or labelled row."""
    return kcenter(pool, budget, rng, metric=metric)


@register_strategy(
    "pcoreset",
    summary="PCoreSet: greedy k-center in the model's probability space (proba), labelled rows as "
    "the first centres (Kang et al. 2025).",
    needs=("proba",),
    optional=("label",),
    cost="O(n*C*(labelled+budget)) time at worst; O(n) extra memory plus the centre matrix.",
)
def pcoreset(pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
    """Greedy k-center on the probability vectors; scores are L2 distances between them."""
    labelled = pool.labelled_mask
    selectable = np.zeros(len(pool), dtype=bool)
    selectable[pool.candidates] = True
    picks, gains, radius_sq = greedy_kcenter(
        pool.proba,
        budget,
        rng,
        selectable=selectable,
        covered=labelled if labelled.any() else None,
        first_keys=id_hashes(pool.ids, salt_of(rng)),
    )
    return Selection(
        indices=picks, scores=np.sqrt(gains), metrics={"covering_radius": float(np.sqrt(radius_sq))}
    )
