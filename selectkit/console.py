"""Where people-facing output goes: progress bars and messages on stderr, never stdout.

Progress bars and notes appear only when stderr is a terminal and nobody asked for quiet (``-q``,
or ``set_quiet(True)`` from Python); warnings appear unless quiet; ``NO_COLOR`` removes colour.
Data never goes through this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) progress bars, notes and warnings for this process."""
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def stderr_console() -> Console:
    """Return a rich console bound to the current ``sys.stderr``."""
    return Console(file=sys.stderr, no_color="NO_COLOR" in os.environ, highlight=False)


def progress_enabled() -> bool:
    """True when a progress bar should be drawn: stderr is a terminal and nobody asked for quiet."""
    return not _state["quiet"] and sys.stderr.isatty()


def note(message: str) -> None:
    """Print an informational line to stderr when it is a terminal and not quiet."""
    if progress_enabled():
        stderr_console().print(message, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning line to stderr (logs included) unless quiet."""
    if not _state["quiet"]:
        stderr_console().print("warning: " + message, markup=False, soft_wrap=True)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


class _RateColumn(ProgressColumn):
    """Items per second (e.g. documents per second)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s")


@contextmanager
def progress_bar(description: str, total: int | None, *, rate: bool = False) -> Iterator[_Bar]:
    """Yield a bar with ``.advance(n)``; a no-op when progress is disabled. ``rate`` adds an
    items-per-second column."""
    if not progress_enabled():
        yield _Bar(None, None)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *([_RateColumn()] if rate else []),
        console=stderr_console(),
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield _Bar(progress, task)
