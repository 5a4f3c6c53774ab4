"""A command's parameter bounds, declared once and checked by one function.

Each command (``al simulate``, ``disco fit``/``evaluate``) declares its bounds in one dict of
``Bound``; the Python function checks its arguments with ``check_bounds`` before any work, and
the CLI takes its options' ``min``/``max`` from the same declaration (``Bound.cli_min``), so a
bound is written in one place. Strategy parameters have the same fields on their ``Param``
(``selectkit.strategies.base``); once ``Param`` is importable by commands these can become
``Param``s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from selectkit.errors import SelectkitUsageError


@dataclass(frozen=True)
class Bound:
    """Allowed values of one parameter: a range (``low``/``high``, inclusive unless
    ``open_low``/``open_high``) or a set of ``choices``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def cli_min(self) -> float | None:
        """The inclusive lower bound a CLI option may enforce itself (None when open)."""
        return None if self.open_low else self.low

    @property
    def cli_max(self) -> float | None:
        """The inclusive upper bound a CLI option may enforce itself (None when open)."""
        return None if self.open_high else self.high

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return False  # True is no count, and NaN lies in no range
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self) -> str:
        """``one of a, b`` or an interval such as ``[1, inf)`` or ``(0, 1)``."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.open_low or self.low is None else "["
        right = ")" if self.open_high or self.high is None else "]"
        return f"in {left}{lo}, {hi}{right}"


def check_bounds(declared: Mapping[str, Bound], **values: Any) -> None:
    """Raise ``SelectkitUsageError`` (exit 2) for the first value outside its declared bound,
    naming the option both ways (``--test-size`` / ``test_size=``). O(parameters)."""
    for name, value in values.items():
        bound = declared[name]
        if not bound.holds(value):
            flag = "--" + name.replace("_", "-")
            raise SelectkitUsageError(f"{flag} / {name}={value!r} must be {bound.describe()}")
