"""Where cluster's kernels run: in this process (no engine) or on a ``selectkit.engine`` Engine.

Kernels and their reductions do not know which; the results are the same bytes either way,
because every kernel's work is fixed by the data and the driver reduces in item order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Held:
    """A value kept in this process, read like an engine's handle (``get()``)."""

    value: Any

    def get(self) -> Any:
        return self.value


def put(engine, value: Any):
    """A handle to ``value`` that kernels read with ``.get()``: the engine's store, or in hand."""
    return Held(value) if engine is None else engine.put(value)


def run_map(engine, kernel: Callable, items: list, shared: Any = None) -> Iterator:
    """``kernel(item, shared)`` for every item, yielded in the order of ``items``."""
    if engine is None:
        return (kernel(item, shared) for item in items)
    return engine.map(kernel, items, shared=shared)
