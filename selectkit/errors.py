"""Errors that reach the user as one clear line and a documented exit code."""

from __future__ import annotations


class SelectkitError(Exception):
    """The run failed on its data or on an impossible request (exit code 1).

    The message names the file, column or value at fault and what to do about it.
    """

    exit_code = 1


class SelectkitUsageError(SelectkitError):
    """The command line or the call itself is wrong (exit code 2)."""

    exit_code = 2


class SelectkitMismatchError(SelectkitError):
    """An artefact (manifest, predictor) was applied to data other than the data it was made from (exit 1)."""

    exit_code = 1
