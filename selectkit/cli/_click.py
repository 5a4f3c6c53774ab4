"""The Click that Typer runs on: Typer 0.2x vendors it as ``typer._click``; older Typers use
the ``click`` package. Everything selectkit needs of it comes through here."""

from __future__ import annotations

import typer

try:
    from typer._click import exceptions as _exceptions
    from typer._click.globals import get_current_context
    from typer._click.utils import echo
except ImportError:  # pragma: no cover - Typer before it vendored Click
    from click import echo, get_current_context
    from click import exceptions as _exceptions

ClickException = _exceptions.ClickException
UsageError = _exceptions.UsageError
#: `selectkit al` with no subcommand (Click >= 8.2); None where Click has no such class
NoArgsIsHelpError = getattr(_exceptions, "NoArgsIsHelpError", None)
#: exceptions that are Typer's own way of ending a command: a boundary lets them through
PASS_THROUGH = (typer.Exit, typer.Abort, ClickException)

__all__ = [
    "PASS_THROUGH",
    "ClickException",
    "NoArgsIsHelpError",
    "UsageError",
    "echo",
    "get_current_context",
]
