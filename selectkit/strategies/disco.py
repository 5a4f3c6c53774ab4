"""DISCO (Rubinstein et al., 2025): the samples on which existing models disagree most.

Input is long: one row per (model, id) with ``proba``; its input adapter (``LONG``) pivots it to
one row per sample id first, so the budget counts samples and the manifest lists sample ids with
``score`` = disagreement. The models used are recorded in the provenance metrics.
"""

from __future__ import annotations

import numpy as np

from selectkit.disco.anchors import STRATIFY, choose_anchors
from selectkit.disco.data import LONG, ModelPool
from selectkit.disco.disagreement import METHODS
from selectkit.errors import SelectkitError
from selectkit.strategies.base import LABELS_AS_DATA, Param, Selection, register_strategy

MAX_LISTED_MODELS = 1000


@register_strategy(
    "disco",
    summary="DISCO: the samples on which models disagree most (PDS or JSD over their "
    "probabilities), top-k per group; anchors for `selectkit disco fit` (Rubinstein et al. 2025).",
    needs=("model", "proba"),
    optional=("group", "label"),
    inputs=LONG,
    labels=LABELS_AS_DATA,  # the label is each sample's true class, for the anchors' accuracy
    params={
        "disagreement": Param(
            str,
            "pds",
            "pds: sum over classes of the highest probability any model gives it; jsd: "
            "Jensen-Shannon divergence between the models",
            METHODS,
        ),
        "stratify": Param(
            str,
            "auto",
            "group: quotas split evenly over the group column; none: global top-k; auto: group "
            "when a group column exists",
            STRATIFY,
        ),
        "guiding_models": Param(
            int, 0, "score disagreement over this many randomly drawn models (0 = all)", low=0
        ),
        "drop_incomplete": Param(
            bool,
            False,
            "drop models that lack rows for some ids (with a warning) instead of failing",
        ),
    },
    cost="O(models*samples*classes) time, chunked over samples; memory: the long table while "
    "it is pivoted, then the dense models x samples x classes float32 array.",
)
def disco(
    pool: ModelPool,
    budget: int,
    rng: np.random.Generator,
    disagreement: str = "pds",
    stratify: str = "auto",
    guiding_models: int = 0,
    drop_incomplete: bool = False,  # applied by the pivot, before the strategy runs
) -> Selection:
    """Top-``budget`` unlabelled samples by disagreement; scores = the disagreement."""
    preds = getattr(pool, "predictions", None)
    if preds is None:
        raise SelectkitError(
            "strategy 'disco' needs a long table (one row per model and id); call it through "
            "selectkit.select, which pivots the pool"
        )
    anchors = choose_anchors(
        preds,
        budget,
        rng,
        method=disagreement,
        stratify=stratify,
        guiding_models=guiding_models,
        candidates=pool.candidates,
    )
    metrics = {
        "disagreement": disagreement,
        "stratified": anchors.stratified,
        "n_models": preds.n_models,
        "n_guiding_models": len(anchors.models),
        "n_classes": preds.n_classes,
        "guiding_models": anchors.models[:MAX_LISTED_MODELS],
        "mean_score_selected": float(anchors.scores.mean()),
        "mean_score_pool": float(anchors.all_scores[pool.candidates].mean()),
    }
    if preds.dropped:
        metrics["dropped_models"] = preds.dropped
    return Selection(indices=anchors.indices, scores=anchors.scores, metrics=metrics)
