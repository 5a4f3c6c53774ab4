"""The one place where the thread policy of numeric kernels (BLAS, OpenMP, faiss, polars) is set.

A command runs its kernels either in this process, with every core (or ``--threads``), or as
several workers per machine (a local process pool, Ray), each of which must use one core, or
the workers oversubscribe the machine. Workers mark themselves with ``SELECTKIT_KERNEL_THREADS``
and :func:`thread_limits` honours it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from threadpoolctl import threadpool_limits

#: set in a worker process to the threads one kernel may use there
KERNEL_THREADS_ENV = "SELECTKIT_KERNEL_THREADS"

T = TypeVar("T")
R = TypeVar("R")


def kernel_threads() -> int | None:
    """Threads a kernel may use in this process: 1 in a pool or Ray worker, else None (all)."""
    raw = os.environ.get(KERNEL_THREADS_ENV)
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else None


def mark_worker(threads: int = 1) -> None:
    """Called once in a worker process: its kernels use ``threads`` threads (polars included,
    which reads its variable when first imported)."""
    from selectkit.engine.memory import tune_allocations

    tune_allocations()
    os.environ[KERNEL_THREADS_ENV] = str(threads)
    os.environ.setdefault("POLARS_MAX_THREADS", str(threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@contextlib.contextmanager
def thread_limits(threads: int | None = None) -> Iterator[None]:
    """Limit BLAS/OpenMP (faiss uses OpenMP) threads to ``threads``, or to the worker's share
    when this process is a worker; no limit when both are None. O(1)."""
    limit = threads if threads is not None else kernel_threads()
    if limit is None:
        yield
        return
    with threadpool_limits(limits=limit):
        yield


def map_threads(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``threads`` threads, in order: for kernels that
    release the GIL (faiss searches), each item's work fixed by the item, never by the threads."""
    workers = min(len(items), max(1, threads))
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


class Background(Generic[R]):
    """``fn()`` started on a daemon thread, for GIL-releasing work (hashing a file) that can
    overlap the caller's; ``result()`` waits for it and re-raises its error. A daemon thread,
    so an interrupted command exits at once instead of finishing the work first."""

    def __init__(self, fn: Callable[[], R]) -> None:
        self._value: R | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], R]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to result(), in the caller's thread
            self._error = exc

    def result(self) -> R:
        """The value of ``fn()`` (waiting for it), or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
