"""One parameter vocabulary: a declared parameter (type, default, bounds, choices) and the
functions that check given values against such declarations.

Strategies declare their parameters with ``Param`` (checked by :func:`check_params`); the
acquisition modifiers do too, and so do the commands' Python functions (``CLUSTER_BOUNDS``,
``SIMULATE_BOUNDS``, ``EVALUATE_BOUNDS``, ...; checked by :func:`check_arguments`, whose
messages name the argument the caller's way: ``--test-size 1.5`` on the command line,
``test_size=1.5`` from Python). Every bound lives in the declaration, so no caller re-checks a
value by hand, the CLI options take their ``min``/``max`` from it (``Param.cli_min`` and
``cli_max``), and every refusal is the same ``SelectkitUsageError`` (exit 2) with the same
wording. Imports only the standard library (the CLI reads these declarations at startup).
"""

from __future__ import annotations

import decimal
import difflib
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from selectkit.errors import SelectkitUsageError, option

AUTO = "auto"  # a parameter default meaning "the chooser decides; the choice is recorded"


class _Required:
    """The default of an argument that has none (``k`` of ``kmeans``): a value must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_TRUE = {"true", "1", "yes"}
_BOOLS = _TRUE | {"false", "0", "no"}


def _num(value: float) -> str:
    """A bound as a user would write it: 1 rather than 1.0, 1000000 rather than 1e+06."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


#: an integer written with an exponent on the command line ("5e9", "1.5E6")
_SCIENTIFIC = re.compile(r"^\d+(\.\d+)?[eE]\+?\d+$")


@dataclass(frozen=True)
class Param:
    """A declared parameter: its type, default, one line of help and every limit on its value.

    ``choices``: the only values allowed. ``low``/``high``: bounds of a number, inclusive unless
    ``low_open``/``high_open`` (so a fraction in (0, 1) is ``low=0, high=1, low_open=True,
    high_open=True``). ``multiple``: a list of values (the CLI option may repeat), each checked,
    with at least ``min_items`` of them; with ``sep``, a string is split on it first
    (``"1000,100"`` -> ``[1000, 100]``). A default of ``"auto"`` also accepts ``"auto"`` (the
    strategy then chooses); a default of None also accepts None (unset); ``REQUIRED`` means
    the argument has no default.
    """

    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    multiple: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    min_items: int = 0
    sep: str | None = None

    def parse(self, name: str, raw: Any, *, what: str = "parameter") -> Any:
        """Return ``raw`` (a CLI string or a Python value) converted to this parameter's type
        and checked against its choices and bounds; a ``SelectkitUsageError`` naming
        ``what name=raw`` and the allowed values otherwise. O(1) (O(items) when ``multiple``)."""
        if self.default == AUTO and _is_auto(raw):
            return AUTO
        if self.multiple:
            items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
            if self.sep is not None:  # "1000,100" (or a repeated option of such) -> items
                items = [part for v in items for part in _split(v, self.sep)]
            if len(items) < self.min_items:
                raise SelectkitUsageError(
                    f"{what} {name} needs at least {self.min_items} value"
                    f"{'s' if self.min_items > 1 else ''}, got {len(items)}"
                )
            one = replace(self, multiple=False, default=None, min_items=0, sep=None)
            return [one.parse(name, v, what=what) for v in items]
        if self.default is None and raw is None:
            return None
        value = self._convert(name, raw, what)
        if self.choices is not None and value not in self.choices:
            raise SelectkitUsageError(
                f"{what} {name}={raw!r} must be one of {', '.join(map(str, self.choices))}"
            )
        if not self.within(value):
            # the typed value: "neighbours=0", not the CLI's string "neighbours='0'"
            raise SelectkitUsageError(f"{what} {name}={value!r} must {self.bounds_text()}")
        return value

    def _convert(self, name: str, raw: Any, what: str) -> Any:
        try:
            if self.type is bool and isinstance(raw, str):
                if raw.lower() not in _BOOLS:
                    raise ValueError(raw)
                return raw.lower() in _TRUE
            if self.type in (int, float) and isinstance(raw, bool):
                raise ValueError(raw)  # True is no number of strata
            if self.type is int and isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)  # never truncate 2.7 to 2 silently
            if self.type is int and isinstance(raw, str) and _SCIENTIFIC.match(raw.strip()):
                exact = decimal.Decimal(raw.strip())  # "5e9" tokens: exact, or refused
                if exact != exact.to_integral_value():
                    raise ValueError(raw)
                return int(exact)
            value = self.type(raw)
            if self.type is float and not math.isfinite(value):
                raise ValueError(raw)
            return value
        except (TypeError, ValueError, OverflowError):
            finite = "finite " if self.type is float else ""
            raise SelectkitUsageError(
                f"{what} {name}={raw!r} is not a {finite}{self.type.__name__}"
            ) from None

    @property
    def cli_min(self) -> float | None:
        """The inclusive lower bound a CLI option may enforce itself (``min=``; None when open)."""
        return None if self.low_open else self.low

    @property
    def cli_max(self) -> float | None:
        """The inclusive upper bound a CLI option may enforce itself (``max=``; None when open)."""
        return None if self.high_open else self.high

    def check(self, name: str, value: Any) -> Any:
        """Return ``value``, an argument of a Python call, if it is of this parameter's type
        (strictly: no str for an int, no bool or float for an int, no NaN for a float) and
        within its choices and bounds; a ``SelectkitUsageError`` naming it the caller's way
        (``-k 0`` on the command line, ``k=0`` from Python) otherwise. O(1)."""
        if value is None and self.default is None:
            return None
        if self.choices is not None:
            if isinstance(value, str) != (self.type is str) or value not in self.choices:
                raise SelectkitUsageError(
                    f"{option(name, value)} must be one of {', '.join(map(str, self.choices))}"
                )
            return value
        checked = self._strict(name, value)
        if not self.within(checked):  # named as given: test_size=0, not test_size=0.0
            raise SelectkitUsageError(f"{option(name, value)} must {self.bounds_text()}")
        return checked

    def _strict(self, name: str, value: Any) -> Any:
        """``value`` as this parameter's type, refusing any conversion a caller did not mean."""
        if self.type is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise SelectkitUsageError(f"{option(name)} must be an integer, not {short(value)}")
            return int(value)
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise SelectkitUsageError(f"{option(name)} must be a number, not {short(value)}")
            if value != value:
                raise SelectkitUsageError(f"{option(name)} must be a number, not NaN")
            return float(value)
        if not isinstance(value, self.type):
            raise SelectkitUsageError(
                f"{option(name)} must be a {self.type.__name__}, not {short(value)}"
            )
        return value

    def within(self, value: Any) -> bool:
        """Whether a converted ``value`` lies within the declared bounds."""
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def bounds_text(self) -> str:
        """The bounds in words: 'be at least 1', 'lie in [0, 1)', ... ('' when unbounded)."""
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"lie in {left}{_num(lo)}, {_num(hi)}{right}"
        if lo is not None:
            return f"be {'greater than' if self.low_open else 'at least'} {_num(lo)}"
        if hi is not None:
            return f"be {'less than' if self.high_open else 'at most'} {_num(hi)}"
        return ""

    def describe(self) -> dict[str, Any]:
        """The declaration as plain data (for ``selectkit strategies --json`` and docs)."""
        out: dict[str, Any] = {"type": self.type.__name__}
        if self.default is not REQUIRED:
            out["default"] = self.default
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.bounds_text():
            out["bounds"] = self.bounds_text()
        if self.multiple:
            out["multiple"] = True if self.sep is None else f"{self.sep}-separated"
        return out

    def invalid_values(self) -> list[Any]:
        """Values this declaration must refuse, generated from its type, bounds and choices
        (what ``selectkit.testing`` feeds a strategy to check that it refuses them)."""
        bad: list[Any] = []
        if self.choices is not None:
            bad.append("__not_a_choice__" if self.type is str else _outside(self.choices))
        step = 1 if self.type is int else 1e-3 * max(1.0, abs(self.low or 0), abs(self.high or 0))
        if self.low is not None:
            bad.append(self.type(self.low) if self.low_open else self.type(self.low - step))
        if self.high is not None:
            bad.append(self.type(self.high) if self.high_open else self.type(self.high + step))
        if self.type is int:
            bad += ["2.5", True]
        elif self.type is float:
            bad += ["nan", "inf", "x"]
        elif self.type is bool:
            bad.append("maybe")
        if self.multiple and self.min_items:
            bad.append([])
        return [v for v in bad if v is not None]


def short(value: object) -> str:
    """A value as an error message shows it: ``'5'``, ``float 5.0``, cut to 60 characters."""
    text = (
        repr(value)
        if isinstance(value, (str, os.PathLike))
        else f"{type(value).__name__} {value!r}"
    )
    return text if len(text) <= 60 else text[:57] + "..."


def check_arguments(declared: Mapping[str, Param], **values: Any) -> dict[str, Any]:
    """Return ``values`` (arguments of a Python call, by name) each checked by its declared
    ``Param`` (:meth:`Param.check`): the first of the wrong type or outside its choices or
    bounds is a ``SelectkitUsageError`` (exit 2) naming it the caller's way. A name that is
    not declared is a bug of the caller (``KeyError``). O(len(values))."""
    return {name: declared[name].check(name, value) for name, value in values.items()}


def _is_auto(raw: Any) -> bool:
    """None, "auto" or ["auto"] (a repeatable option given "auto" once)."""
    if isinstance(raw, (list, tuple)):
        return len(raw) == 1 and isinstance(raw[0], str) and raw[0] == AUTO
    return raw is None or (isinstance(raw, str) and raw == AUTO)


def _split(value: Any, sep: str) -> list[Any]:
    """A string's non-empty ``sep``-separated parts, stripped; any other value as it is."""
    if not isinstance(value, str):
        return [value]
    return [part.strip() for part in value.split(sep) if part.strip()]


def _outside(choices: tuple[Any, ...]) -> Any:
    """A number not among numeric ``choices``."""
    numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    return max(numbers) + 1 if numbers else None


def check_params(
    given: Mapping[str, Any],
    params: Mapping[str, Param],
    *,
    owner: str,
    what: str = "parameter",
) -> dict[str, Any]:
    """Return every declared value: the defaults of ``params`` overlaid with ``given``, each
    parsed and checked by its ``Param``. A name not declared is a ``SelectkitUsageError``
    naming ``owner`` (e.g. "strategy 'ccs'"), a did-you-mean and the declared names; so is any
    value outside its declaration. O(number of parameters)."""
    unknown = sorted(set(given) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        close = difflib.get_close_matches(unknown[0], list(params), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SelectkitUsageError(
            f"{owner} has no {what} {unknown[0]!r}; {hint}its {what}s: {known}"
        )
    resolved = {k: p.default for k, p in params.items()}
    resolved.update({k: params[k].parse(k, v, what=what) for k, v in given.items()})
    return resolved
