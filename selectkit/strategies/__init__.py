"""Selection strategies; importing this package registers the built-in ones."""

from selectkit.strategies import (  # noqa: F401  (registration on import)
    balanced,
    ccs,
    disco,
    dsir,
    kcenter,
    random,
    semdedup,
    sensitivity,
    stratified,
    topk,
)
from selectkit.strategies.base import (
    Param,
    Selection,
    Strategy,
    get_strategy,
    list_strategies,
    register_strategy,
)

__all__ = [
    "Param",
    "Selection",
    "Strategy",
    "get_strategy",
    "list_strategies",
    "register_strategy",
]
