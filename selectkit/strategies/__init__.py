"""Selection strategies; importing this package registers the built-in ones."""

from selectkit.strategies import (  # noqa: F401  (registration on import)
    badge,
    balanced,
    ccs,
    coreset,
    disco,
    dsir,
    fair_centers,
    kcenter,
    kmq,
    moderate,
    omp,
    random,
    semdedup,
    sensitivity,
    stratified,
    topk,
    typiclust,
    uncertainty,
)
from selectkit.strategies.base import (
    Param,
    Selection,
    Strategy,
    get_strategy,
    list_strategies,
    register_strategy,
)
from selectkit.strategies.scored import Acquisition, register_scored_strategy

__all__ = [
    "Acquisition",
    "Param",
    "Selection",
    "Strategy",
    "get_strategy",
    "list_strategies",
    "register_scored_strategy",
    "register_strategy",
]
