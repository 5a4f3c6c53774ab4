"""Parse a selection budget: a count (``1000``) or a fraction (``0.05``, ``5%``) of the pool."""

from __future__ import annotations

import math
import re

from selectkit.errors import SelectkitDataError, SelectkitUsageError, option

_COUNT = re.compile(r"^\d+$")
_FRACTION = re.compile(r"^(\d*\.\d+|\d+\.\d*)$")
_PERCENT = re.compile(r"^(\d+(\.\d*)?|\.\d+)%$")


def parse_budget(text: str | int | float, pool_size: int) -> int:
    """Return the number of rows to select from a pool of ``pool_size``.

    ``"1000"`` or ``1000`` is a count, ``"0.05"`` or ``0.05`` a fraction of the pool and ``"5%"`` a
    percentage; fractions round half up, and a positive fraction selects at least one row.
    Written as text, ``"1.0"`` (or ``"1."``) is refused as ambiguous: ``1`` is one row and
    ``1.0`` would be every row, so write ``1`` or ``100%``; the float ``1.0`` is every row.
    Raises ``SelectkitUsageError`` for text that is no budget or a budget of zero, and
    ``SelectkitDataError`` for one larger than the pool (that depends on the data).
    """
    raw = str(text).strip()
    if isinstance(text, bool):
        raise SelectkitUsageError(f"budget {text!r} is not a count, a fraction or a percentage")
    if raw.startswith("-"):
        raise SelectkitUsageError(f"budget {raw} is negative; give a positive count or fraction")
    if isinstance(text, int) or _COUNT.match(raw):
        count = int(raw)
        what = f"budget {raw}"
    elif isinstance(text, float) or _FRACTION.match(raw) or _PERCENT.match(raw):
        frac = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
        if isinstance(text, str) and not raw.endswith("%") and frac == 1.0:
            raise SelectkitUsageError(
                f"budget {raw!r} is ambiguous: {option('budget', 1)} picks one row and "
                f"{option('budget', '100%', python='budget=1.0')} every row; write the one you mean"
            )
        if not math.isfinite(frac) or frac > 1.0:
            raise SelectkitUsageError(
                f"budget {raw!r} is a fraction above 1 (100%); give a count like 1000 "
                "or a fraction like 0.05 or 5%"
            )
        count = max(1, math.floor(frac * pool_size + 0.5)) if frac > 0 else 0
        what = f"budget {raw} ({count} of {pool_size} rows)"
    else:
        raise SelectkitUsageError(
            f"budget {raw!r} is not a count, a fraction or a percentage; "
            f"use e.g. {option('budget', 1000)}, {option('budget', 0.05)} or "
            + option("budget", "5%", python="budget='5%'")
        )
    if count <= 0:  # only a literal zero: a positive fraction always selects a row
        raise SelectkitUsageError(f"{what} selects nothing; give a positive count or fraction")
    if count > pool_size:
        raise SelectkitDataError(
            f"{what} is larger than the pool of {pool_size} selectable rows; "
            f"lower it to at most {pool_size} or give a fraction such as 50%"
        )
    return count
