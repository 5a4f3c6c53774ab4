"""A cap on the length of one text, shared by ``embed`` and ``select --strategy dsir``.

Hashing a text costs memory in proportion to its bytes (prefix sums, n-gram arrays): one 50 MB
line alone needed 13 GB. So every text longer than ``max_chars`` characters is cut to its first
``max_chars`` characters (``on_long="truncate"``, the default, with a count on stderr and in the
provenance) or stops the run with one line naming the file, row, id and length
(``on_long="error"``). The option is declared here once; the CLI's ``embed`` options and DSIR's
strategy parameters are both built from these constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from selectkit.arguments import text
from selectkit.console import warn
from selectkit.errors import SelectkitDataError, option
from selectkit.params import Param, check_arguments

MAX_CHARS = 100_000  # ~20 pages: far above real documents, far below what exhausts memory
ON_LONG = ("truncate", "error")
MAX_CHARS_HELP = "Cut texts longer than this many characters (counted on stderr, recorded)."
ON_LONG_HELP = "A text longer than --max-chars: truncate it (default) or error (exit 1)."
#: the one declaration of the cap's bound; the CLI's --max-chars and DSIR's max_chars match it
BOUNDS = {"max_chars": Param(int, MAX_CHARS, MAX_CHARS_HELP, low=1)}


@dataclass
class TextCap:
    """Applies the cap batch by batch and counts what it truncated."""

    max_chars: int = MAX_CHARS
    on_long: str = "truncate"
    truncated: int = 0

    def __post_init__(self) -> None:
        check_arguments(BOUNDS, max_chars=self.max_chars)
        text(self.on_long, "on_long", choices=ON_LONG)

    def apply(
        self, texts: pl.Series, *, where: str, row0: int = 0, ids: pl.Series | None = None
    ) -> pl.Series:
        """``texts`` with every text cut to ``max_chars`` characters (``texts`` itself when none
        is longer); with ``on_long="error"`` a long text raises ``SelectkitDataError``
        naming ``where``, its row (``row0`` + position) and id, and its length."""
        lengths = texts.str.len_chars()
        over = lengths > self.max_chars
        n_over = int(over.sum())
        if n_over == 0:
            return texts
        if self.on_long == "error":
            at = int(over.arg_max())
            who = f" (id {ids[at]!r})" if ids is not None else ""
            raise SelectkitDataError(
                f"{where}: the text at row {row0 + at}{who} has {lengths[at]:,} characters, more "
                f"than the {self.max_chars:,} of {option('max_chars')}; raise "
                f"{option('max_chars')} or drop "
                f"{option('on_long', 'error', python='on_long=' + repr('error'))} to truncate it"
            )
        self.truncated += n_over
        # polars slices by characters (code points), as Python's text[:max_chars] does
        return texts.str.slice(0, self.max_chars)

    def report(self) -> None:
        """One warning line on stderr when texts were truncated."""
        warn_truncated(self.truncated, self.max_chars)

    def record(self) -> dict[str, Any]:
        """The cap's parameters, for provenance (the count goes into the run's metrics)."""
        return {"max_chars": self.max_chars, "on_long": self.on_long}


def warn_truncated(count: int, max_chars: int) -> None:
    """``warning: truncated N texts longer than M characters`` on stderr, when N > 0."""
    if count:
        plural = "s" if count != 1 else ""
        warn(
            f"truncated {count:,} text{plural} longer than {max_chars} characters "
            f"({option('max_chars')})"
        )
