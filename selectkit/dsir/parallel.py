"""Moved to :mod:`selectkit.engine.local` (the one place where execution is decided)."""

from selectkit.engine.local import STOP_TIMEOUT_S, Executor, default_workers

__all__ = ["STOP_TIMEOUT_S", "Executor", "default_workers"]
