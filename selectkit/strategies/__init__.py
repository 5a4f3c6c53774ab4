"""Selection strategies; importing this package registers the built-in ones."""

from selectkit.strategies import disco, kcenter, random  # noqa: F401  (registration on import)
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
