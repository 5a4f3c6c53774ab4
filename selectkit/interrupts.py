"""Signals that end a run: SIGINT, SIGTERM and SIGHUP unwind the stack like Ctrl-C.

A scheduler stops a job with SIGTERM (and a closed terminal sends SIGHUP). Python's default for
both is to die on the spot, which skips every ``finally`` block: temporary files stay behind and
worker processes run on. :func:`install` turns them into :class:`Interrupted`, a subclass of
``KeyboardInterrupt``, so the same clean-up runs for all three and the process exits
``128 + signal`` (130, 143, 129).

Worker processes call :func:`ignore_in_worker`: a terminal's Ctrl-C reaches every process in the
group, and only the parent should decide what happens (it terminates its pool).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: the signals that stop a run, each with the exit status a shell reports for it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_code`` is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_received: list[int] = []
_held: list[int] = []  # stop signals that arrived inside deferred(), raised at its end
_holding = [0]  # nesting depth of deferred()


def _raise(signum: int, _frame: object) -> None:
    _received.append(signum)
    if _holding[0]:
        _held.append(signum)
        return
    raise Interrupted(signum)


def received() -> int | None:
    """The first stop signal this process received through :func:`install`'s handler, if any."""
    return _received[0] if _received else None


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    Only for a process that owns its signals (the ``selectkit`` command); a notebook keeps its own.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup selectkit ...` keeps SIGHUP off
            signal.signal(sig, _raise)


@contextlib.contextmanager
def handlers_kept() -> Iterator[None]:
    """Restore the stop signals' handlers after the block, which may replace them: Ray's
    ``ray.init`` installs a SIGTERM handler that exits on the spot and a C-level crash handler
    that prints a stack dump; ours must stay, so a scheduler's SIGTERM still unwinds the run
    (exit 143, outputs untouched). Main thread only (elsewhere nothing can be set)."""
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if main else {}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(sig, handler)


def ignore_in_worker() -> None:
    """Pool initializer: leave SIGINT and SIGHUP to the parent, keep SIGTERM's default.

    The parent terminates the pool (SIGTERM) when it stops, so a worker never prints a traceback
    of its own or outlives the run.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_code(exc: BaseException) -> int:
    """The shell's status for a run stopped by ``exc`` (130 for a plain KeyboardInterrupt)."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold the stop signals for the block; one that arrived meanwhile raises at its end.

    For short critical sections (renaming finished outputs into place, stopping workers) that
    must run whole or not at all. The handler itself holds them: masking the main thread alone
    is not enough, since the kernel may hand a signal to any thread (polars', OpenMP's) and
    Python then runs the handler in the main thread anyway. The mask is set as well, for a
    process without :func:`install`'s handler. :func:`pending` tells whether one is waiting.
    """
    with _masked(STOP_SIGNALS):
        _holding[0] += 1
        try:
            yield
        finally:
            _holding[0] -= 1
    if not _holding[0] and _held:
        signum = _held[0]
        _held.clear()
        raise Interrupted(signum)


@contextlib.contextmanager
def _masked(signals: tuple[int, ...]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def spawning() -> contextlib.AbstractContextManager[None]:
    """Start helper processes inside this block: they are born with SIGINT and SIGHUP blocked.

    A terminal's Ctrl-C or hang-up reaches the whole process group: a worker still importing
    would die with a traceback, and multiprocessing's resource tracker (which ignores SIGINT and
    SIGTERM but not SIGHUP) would die and leak the pool's semaphores. A blocked mask is inherited
    through fork and exec, so the children are born deaf to both (workers then ignore them for
    good, :func:`ignore_in_worker`). This process keeps its handlers, so a signal that arrives
    meanwhile is delivered, never lost. SIGTERM stays open: the parent terminates its workers.
    """
    return _masked((signal.SIGINT, signal.SIGHUP))


def pending() -> bool:
    """Whether a stop signal (that this process does not ignore) is held and waiting."""
    if _held:
        return True
    waiting = set(signal.sigpending()) & set(STOP_SIGNALS)
    return any(signal.getsignal(sig) is not signal.SIG_IGN for sig in waiting)
