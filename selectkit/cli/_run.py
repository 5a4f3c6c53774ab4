"""Shared CLI plumbing: error handling with exit codes, global flags and summaries."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.table import Table

from selectkit.console import set_quiet, stderr_console
from selectkit.errors import SelectkitError

T = TypeVar("T")
_flags = {"debug": False}


def set_debug(debug: bool) -> None:
    _flags["debug"] = debug


def configure(quiet: bool, debug: bool) -> None:
    set_quiet(quiet)
    set_debug(debug)


def run(fn: Callable[[], T]) -> T:
    """Call ``fn``; turn errors into one line on stderr and the documented exit code."""
    console = stderr_console()
    try:
        return fn()
    except SelectkitError as exc:
        if _flags["debug"]:
            traceback.print_exc()
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print("interrupted; no output was written")
        raise typer.Exit(130) from None
    except MemoryError:
        console.print("[bold red]error:[/] out of memory; use a smaller batch or input")
        raise typer.Exit(1) from None
    except Exception as exc:  # an internal bug: say so, and how to get the traceback
        if _flags["debug"]:
            traceback.print_exc()
        else:
            console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback and report it)",
                soft_wrap=True,
            )
        raise typer.Exit(1) from None


def report(summary: dict[str, Any], *, as_json: bool, title: str) -> None:
    """Print a run summary: JSON on stdout with --json, else a table on stderr (if a terminal)."""
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        return
    console = stderr_console()
    if not sys.stderr.isatty():
        return
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in _flatten(summary):
        table.add_row(key, str(value))
    console.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def check_json_stdout(as_json: bool, output: str) -> None:
    if as_json and output == "-":
        raise typer.BadParameter("--json prints to stdout, which -o - already uses for data")
