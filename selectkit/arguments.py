"""Checks of the arguments of public functions: a wrong type or value is a ``SelectkitUsageError``
naming the argument (``--k`` on the command line, ``k=`` from Python), never a raw ``TypeError``.

Each public function checks its own arguments once, at its entry, with these helpers; numeric
bounds and choices are declared once per command in a ``{name: Param}`` dict (the CLI option's
``min``/``max`` match it, which the tests verify) and checked by
:func:`selectkit.params.check_arguments`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selectkit.errors import SelectkitUsageError, option
from selectkit.params import REQUIRED, Param
from selectkit.params import short as _short


def _range(kind: type, low: float | None, high: float | None) -> Param:
    return Param(kind, REQUIRED, "", low=low, high=high)


def integer(value: object, name: str, *, min: float | None = None, max: float | None = None) -> int:
    """``value`` as an int; a bool, float or str is refused, as is a value outside [min, max]
    (checked by a ``Param``, the one vocabulary of bounds: ``selectkit.params``)."""
    return _range(int, min, max).check(name, value)


def number(
    value: object, name: str, *, min: float | None = None, max: float | None = None
) -> float:
    """``value`` as a float (ints accepted); NaN and values outside [min, max] are refused
    (checked by a ``Param``, the one vocabulary of bounds: ``selectkit.params``)."""
    return _range(float, min, max).check(name, value)


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
