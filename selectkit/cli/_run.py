"""Shared CLI plumbing: error handling with exit codes, global flags and summaries."""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from polars.exceptions import PanicException  # a BaseException: a bug in polars or in our use
from rich.table import Table
from rich.text import Text

from selectkit import interrupts
from selectkit.cli._click import PASS_THROUGH, get_current_context
from selectkit.console import is_quiet, set_quiet, stderr_console
from selectkit.errors import (
    SelectkitError,
    SelectkitInternalError,
    SelectkitUsageError,
    cli_messages,
)

T = TypeVar("T")
#: exit status of a bug in selectkit (sysexits' EX_SOFTWARE), apart from 1 = the run failed
INTERNAL_ERROR = 70
_flags = {"debug": False, "stopped": False}


def set_debug(debug: bool) -> None:
    _flags["debug"] = debug


def configure(quiet: bool, debug: bool) -> None:
    set_quiet(quiet)
    set_debug(debug)


def _error_line(label: str, message: str) -> Text:
    # the message is plain text: file names like data[1].parquet must not be read as markup
    return Text.assemble((label, "bold red"), " ", message)


def _is_broken_pipe(exc: OSError) -> bool:
    # polars reports a closed pipe as a plain OSError whose text carries the errno
    return exc.errno == errno.EPIPE or "Broken pipe" in str(exc)


def run(fn: Callable[[], T]) -> T:
    """Call ``fn``; turn errors into one line on stderr and the documented exit code."""
    console = stderr_console()
    try:
        from selectkit.io.dataset import KEPT

        KEPT.clear()  # only this run's kept parts are worth a mention
        with cli_messages():  # messages name options as flags (--label-col), not label_col=
            return fn()
    except PASS_THROUGH:
        raise  # typer's own exits and usage errors: the root group renders them
    except SelectkitInternalError as exc:  # an invariant of selectkit's own broke: a bug
        if _flags["debug"]:
            traceback.print_exc()
        message = f"{exc} (run with --debug for the traceback and report it)"
        console.print(_error_line("internal error:", message), soft_wrap=True)
        raise typer.Exit(INTERNAL_ERROR) from None
    except SelectkitError as exc:
        if _flags["debug"]:
            traceback.print_exc()
        message = str(exc)
        if exc.exit_code == 2:
            message = with_help_hint(message)
        if "--resume" not in message:
            message += _kept_parts()
        console.print(_error_line("error:", message), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:
        if not _is_broken_pipe(exc):  # disk full, permission denied, ...: the run failed
            if _flags["debug"]:
                traceback.print_exc()
            console.print(_error_line("error:", str(exc)), soft_wrap=True)
            raise typer.Exit(1) from None
        # the reader of stdout went away (e.g. `| head`): stop quietly, like other Unix tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(141) from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP (interrupts.Interrupted)
        raise typer.Exit(stopped(exc)) from None
    except MemoryError:
        console.print(_error_line("error:", "out of memory; use a smaller batch or input"))
        raise typer.Exit(1) from None
    except (Exception, PanicException) as exc:  # a bug: say so, and how to get the traceback
        if _flags["debug"]:
            traceback.print_exc()
        else:
            message = (
                f"{type(exc).__name__}: {exc} (run with --debug for the traceback and report it)"
            )
            console.print(_error_line("internal error:", message), soft_wrap=True)
        raise typer.Exit(INTERNAL_ERROR) from None


def guarded(command: Callable[..., T]) -> Callable[..., T]:
    """``command`` inside the one error boundary (:func:`run`): what every CLI command is."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return run(lambda: command(*args, **kwargs))

    return wrapper


def with_help_hint(message: str) -> str:
    """A usage error's message with where to read the command's usage, as every usage error
    (ours and Click's) ends."""
    ctx = get_current_context(silent=True)
    if ctx is None or "--help" in message:
        return message
    return f"{message.rstrip()} (see '{ctx.command_path} --help')"


def _kept_parts() -> str:
    """What a failed or stopped run left for ``--resume`` (a folder output's finished parts)."""
    from selectkit.io.dataset import KEPT

    return "".join(
        f"; {parts} finished part(s) kept in '{staging}' for --resume"
        for staging, parts in KEPT
        if parts
    )


def stopped(exc: KeyboardInterrupt) -> int:
    """Say on stderr that a signal stopped the run; return the exit status for it."""
    from selectkit.io.write import COMMITTED

    what = f"stopped by {exc.name}" if isinstance(exc, interrupts.Interrupted) else "interrupted"
    if COMMITTED:  # the signal came after the outputs were complete and in place
        done = ", ".join(f"'{p}'" for p in COMMITTED)
        line = f"{what} after the run wrote {done} (complete)"
    else:
        line = f"{what}; no output was written or changed"
    line += _kept_parts()
    if not _flags["stopped"]:
        _flags["stopped"] = True
        stderr_console().print(line, soft_wrap=True)
    return interrupts.exit_code(exc)


def stopped_saying(exc: KeyboardInterrupt, line: str) -> int:
    """Like :func:`stopped`, for a command whose outputs are not all-or-nothing (``stream``
    writes kept lines as it goes): say ``line`` once; return the exit status."""
    if not _flags["stopped"]:
        _flags["stopped"] = True
        stderr_console().print(line, soft_wrap=True)
    return interrupts.exit_code(exc)


def stopped_outside_run(status: object) -> int | None:
    """The exit status for a signal that Typer itself caught (turning it into a silent 130).

    A signal can land outside :func:`run`: while Typer parses, or while a command imports its
    module. Returns ``None`` when ``status`` is no such case.
    """
    signum = interrupts.received()
    if signum is None or status != 128 + signal.SIGINT:
        return None
    return stopped(interrupts.Interrupted(signum))


def report(summary: dict[str, Any], *, as_json: bool, title: str) -> None:
    """Print a run summary: JSON on stdout with --json, else a table on stderr (if a terminal)."""
    if as_json:
        text = json.dumps(_finite(summary), indent=2, sort_keys=True, default=str, allow_nan=False)
        sys.stdout.write(text + "\n")
        return
    console = stderr_console()
    if is_quiet() or not sys.stderr.isatty():
        return
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in _flatten(summary):
        table.add_row(key, str(value))
    console.print(table)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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
        raise SelectkitUsageError(
            "--json prints the summary on stdout, which '-o -' already uses for data; "
            "write the output to a file or drop --json"
        )
