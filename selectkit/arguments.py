"""Checks of the arguments of public functions: a wrong type or value is a ``SelectkitUsageError``
naming the argument (``--k`` on the command line, ``k=`` from Python), never a raw ``TypeError``.

Each public function checks its own arguments once, at its entry, with these helpers; numeric
bounds are declared once per command in a ``{name: Bound}`` dict (the CLI option's ``min``/``max``
match it, which the tests verify) and checked by :func:`check_bounds`.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selectkit.errors import SelectkitUsageError, option


def _kind(value: object) -> str:
    return (
        f"{type(value).__name__} {value!r}" if not isinstance(value, (str, Path)) else repr(value)
    )


def _short(value: object) -> str:
    text = _kind(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Bound:
    """A numeric argument's type and inclusive range; ``optional`` allows ``None``."""

    kind: type = int
    min: float | None = None
    max: float | None = None
    optional: bool = False

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.min is not None and self.max is not None:
            return f"{what} from {self.min} to {self.max}"
        if self.min is not None:
            return f"{what} >= {self.min}"
        if self.max is not None:
            return f"{what} <= {self.max}"
        return what


def check_bounds(bounds: Mapping[str, Bound], **values: Any) -> None:
    """Refuse any of ``values`` that is not of its ``bounds`` entry's type or range. O(len)."""
    for name, value in values.items():
        bound = bounds[name]
        if value is None and bound.optional:
            continue
        checker = integer if bound.kind is int else number
        checker(value, name, min=bound.min, max=bound.max)


def integer(value: object, name: str, *, min: float | None = None, max: float | None = None) -> int:
    """``value`` as an int; a bool, float or str is refused, as is a value outside [min, max]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SelectkitUsageError(f"{option(name)} must be an integer, not {_short(value)}")
    return _in_range(int(value), name, min, max, "an integer")


def number(
    value: object, name: str, *, min: float | None = None, max: float | None = None
) -> float:
    """``value`` as a float (ints accepted); NaN and values outside [min, max] are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SelectkitUsageError(f"{option(name)} must be a number, not {_short(value)}")
    if value != value:  # NaN
        raise SelectkitUsageError(f"{option(name)} must be a number, not NaN")
    return _in_range(float(value), name, min, max, "a number")


def _in_range(value, name: str, low: float | None, high: float | None, what: str):
    if (low is not None and value < low) or (high is not None and value > high):
        bound = Bound(int if what == "an integer" else float, low, high)
        raise SelectkitUsageError(f"{option(name)} must be {bound.describe()}, not {value}")
    return value


def text(
    value: object, name: str, *, choices: Sequence[str] | None = None, what: str | None = None
) -> str:
    """``value`` as a str, one of ``choices`` if given (``what`` names a choice in the error:
    "unknown embedder 'x' (--embedder)")."""
    if not isinstance(value, str):
        raise SelectkitUsageError(f"{option(name)} must be a string, not {_short(value)}")
    if choices is not None and value not in choices:
        named = f"{what} {value!r} ({option(name)})" if what else f"{option(name)} {value!r}"
        raise SelectkitUsageError(f"unknown {named}: not one of {', '.join(map(str, choices))}")
    return value


def texts(value: object, name: str) -> list[str]:
    """``value`` as a list of str; a lone str is refused (it would be read as its characters)."""
    if isinstance(value, str):
        raise SelectkitUsageError(
            f"{option(name)} must be a list of strings, not the string {value!r}; "
            f"write {name}=[{value!r}]" + (" (split the commas yourself)" if "," in value else "")
        )
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise SelectkitUsageError(f"{option(name)} must be a list of strings, not {_short(value)}")
    return list(value)


def path(value: object, name: str) -> str | Path:
    """``value`` if it is a path (str, ``os.PathLike``; ``'-'`` is stdin or stdout)."""
    if isinstance(value, os.PathLike):
        return Path(os.fspath(value))
    if not isinstance(value, str) or not value:
        raise SelectkitUsageError(
            f"{option(name)} must be a path (str or pathlib.Path), not {_short(value)}"
        )
    return value


def optional_path(value: object, name: str) -> str | Path | None:
    """``value`` checked by :func:`path`, or None."""
    return None if value is None else path(value, name)


def paths(value: object, name: str) -> list[str | Path]:
    """One path or a sequence of paths, as a list (a lone str is one path, not its characters)."""
    if isinstance(value, (str, os.PathLike)):
        return [path(value, name)]
    if not isinstance(value, Sequence):
        raise SelectkitUsageError(
            f"{option(name)} must be a path or a list of paths, not {_short(value)}"
        )
    return [path(v, name) for v in value]


def instance(value: object, cls: type, name: str, example: str, *, optional: bool = True) -> Any:
    """``value`` if it is a ``cls`` (or None, if ``optional``); else an error showing
    ``example`` of one."""
    if (value is not None or not optional) and not isinstance(value, cls):
        raise SelectkitUsageError(
            f"{option(name)} must be a {cls.__name__}, e.g. {example}, not {_short(value)}"
        )
    return value
