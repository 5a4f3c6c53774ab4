"""Errors that reach the user as one clear line and a documented exit code.

Every error selectkit raises on purpose is a :class:`SelectkitError`; the subclass says whose
fault it is and fixes the command line's exit code::

    SelectkitError            1   the run failed (base class; catch this one)
    ├── SelectkitUsageError   2   the command line or the call is wrong
    ├── SelectkitDataError    1   the input data is wrong (a missing column, a null, a NaN, ...)
    ├── SelectkitMismatchError 1  an artefact was applied to data other than its own
    └── SelectkitInternalError 70 selectkit broke one of its own invariants (a bug: report it)

Messages that name an option go through :func:`option`, so one message reads ``--label-col``
on the command line and ``label_col=`` from Python.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar


class SelectkitError(Exception):
    """The run failed on its data or on an impossible request (exit code 1).

    The message names the file, column or value at fault and what to do about it.
    """

    exit_code = 1


class SelectkitUsageError(SelectkitError):
    """The command line or the call itself is wrong (exit code 2)."""

    exit_code = 2


class SelectkitDataError(SelectkitError):
    """The input data is wrong: a missing or mistyped column, nulls, NaN, duplicate ids (exit 1)."""

    exit_code = 1


class SelectkitMismatchError(SelectkitError):
    """An artefact (manifest, predictor) was applied to data other than the data it was made from (exit 1)."""

    exit_code = 1


class SelectkitInternalError(SelectkitError):
    """selectkit broke one of its own invariants: a bug, to be reported (exit code 70)."""

    exit_code = 70


# True while the command line runs a command (set by selectkit.cli._run.run): messages then name
# options as flags. A contextvar, so a thread or task running Python calls is never affected.
_CLI: ContextVar[bool] = ContextVar("selectkit_cli", default=False)
_NO_VALUE = object()


@contextlib.contextmanager
def cli_messages() -> Iterator[None]:
    """Within this block, :func:`option` renders command-line flags (``--label-col``)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def speaking_cli() -> bool:
    """Whether error messages are being rendered for the command line."""
    return _CLI.get()


def option(
    name: str,
    value: object = _NO_VALUE,
    *,
    cli: str | None = None,
    python: str | None = None,
) -> str:
    """How a message names the option ``name`` (a Python argument name, ``label_col``).

    On the command line: ``--label-col`` (``-k`` for one letter), followed by ``value`` if given;
    ``cli`` replaces that whole rendering (``cli="-o"``). From Python: ``label_col=`` followed by
    ``repr(value)`` if given; ``python`` replaces it where the Python fix is spelled otherwise
    (``python="columns=Columns(label=None)"`` for ``--label-col none``). Cost: O(1).
    """
    if _CLI.get():
        if cli is not None:
            return cli
        flag = ("-" if len(name) == 1 else "--") + name.replace("_", "-")
        return flag if value is _NO_VALUE else f"{flag} {value}"
    if python is not None:
        return python
    return f"{name}=" if value is _NO_VALUE else f"{name}={value!r}"


def param_option(name: str, value: object = _NO_VALUE) -> str:
    """How a message names the strategy parameter ``name``: ``--min-tokens 5`` on the command
    line, ``params={'min_tokens': 5}`` from Python (strategy parameters travel in ``params``)."""
    given = value is not _NO_VALUE
    flag = "--" + name.replace("_", "-") + (f" {value}" if given else "")
    shown = repr(value) if given else "..."
    return option(name, cli=flag, python=f"params={{{name!r}: {shown}}}")
