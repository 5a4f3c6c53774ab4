"""The local engine: kernels in this process, or in a pool of spawned processes on this machine.

Workers are *spawned* (fresh interpreters): forking a process that already runs polars' thread
pool can deadlock. Each worker runs its kernels on one thread, so W workers use W cores. With
one worker everything runs in this process (no start-up cost, used for small inputs and tests).
Task arguments are built lazily, so a task submitted later sees the caller's latest state (DSIR's
current top-k threshold). Memory: O(window) tasks' arguments and results.

Stopping: workers ignore SIGINT and SIGHUP (a terminal's Ctrl-C reaches the whole process group);
the parent, on any exception or signal, terminates them (SIGTERM) and waits for them, so none
outlives the run and the pool's semaphores are released.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import resource_tracker
from typing import Any

from selectkit import interrupts
from selectkit.console import progress_bar
from selectkit.engine.base import Engine, call, item_name, unwrap
from selectkit.engine.threads import mark_worker
from selectkit.errors import SelectkitError


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


STOP_TIMEOUT_S = 5.0


def _terminate(pool: Any) -> None:
    pool.terminate()
    pool.join()


def _init_worker() -> None:
    interrupts.ignore_in_worker()
    mark_worker(1)


#: seconds a task may still finish after a worker died before it is named as the lost one
DEATH_GRACE_S = 10.0


class Executor:
    """``map(fn, tasks)`` over ``workers`` spawned processes (or inline for one)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = None
        if workers > 1:
            saved = os.environ.get("POLARS_MAX_THREADS")
            os.environ["POLARS_MAX_THREADS"] = "1"
            try:
                # two blocks: starting the tracker unblocks SIGINT again on its way out
                with interrupts.spawning():
                    resource_tracker.ensure_running()
                with interrupts.spawning():
                    self._pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)
            except BaseException:
                # a signal held while the workers started is delivered as the block ends:
                # stop them here, before their semaphores go (no caller will close us)
                self.close()
                raise
            finally:
                if saved is None:
                    os.environ.pop("POLARS_MAX_THREADS", None)
                else:
                    os.environ["POLARS_MAX_THREADS"] = saved

    def map(
        self, fn: Callable[..., Any], tasks: Iterable[tuple], names: Iterable[str] | None = None
    ) -> Iterator[Any]:
        """Yield ``fn(*task)`` for each task, in order; at most 2 * workers tasks in flight.

        A worker process that dies (killed, out of memory) fails the map with a
        ``SelectkitError`` naming the oldest task that does not finish within
        ``DEATH_GRACE_S`` of the death (``names``, when given) instead of
        waiting forever for a result that ``multiprocessing.Pool`` would never deliver."""
        if self._pool is None:
            for task in tasks:
                yield fn(*task)
            return
        window: deque = deque()
        labels = iter(names) if names is not None else None
        limit = 2 * self.workers
        for task in tasks:
            name = next(labels, None) if labels is not None else None
            # the workers alive now: one of them dying before this task's result arrives may
            # have taken the task with it (the pool replaces the worker, not the task)
            window.append((self._pool.apply_async(fn, task), name, list(self._pool._pool)))
            if len(window) >= limit:
                yield self._result(*window.popleft())
        while window:
            yield self._result(*window.popleft())

    def _result(self, pending: Any, name: str | None, workers: list) -> Any:
        dead_since = None
        while True:
            try:
                return pending.get(timeout=0.5)
            except mp.TimeoutError:
                dead = [p for p in workers if p.exitcode is not None]
                if dead and dead_since is None:
                    # the dead worker may have held another task: this one, on a live worker,
                    # may still finish, so it is blamed only if it does not within the grace
                    dead_since = time.monotonic()
                if dead and time.monotonic() - dead_since > DEATH_GRACE_S:
                    code = dead[0].exitcode
                    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                    raise SelectkitError(
                        f"a worker process died ({how}) while running "
                        f"{name or 'a task'}. Rerun it; if it dies again, "
                        "give it more memory or fewer workers"
                    ) from None

    def close(self) -> None:
        """Terminate the workers (SIGTERM) and wait for them, at most a few seconds.

        ``Pool.terminate`` first takes the task queue's lock, which an idle worker can hold while
        it waits for a task; if that does not finish in time the workers are killed outright.
        Stop signals wait meanwhile, so the clean-up is never cut in half.
        """
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        with interrupts.deferred():
            stopper = threading.Thread(target=_terminate, args=(pool,), daemon=True)
            stopper.start()
            stopper.join(STOP_TIMEOUT_S)
            if stopper.is_alive():
                for child in mp.active_children():
                    child.kill()
                stopper.join(STOP_TIMEOUT_S)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: per worker process: the state ``setup`` made for a map (a loaded model), by the map's token
_STATES: dict[str, Any] = {}


def _pool_call(kernel, item, shared, setup, token) -> Any:
    if setup is None:
        return call(kernel, item, shared)
    if token not in _STATES:
        _STATES.clear()  # one map's state at a time per worker
        try:
            _STATES[token] = setup(shared)
        except Exception as exc:
            from selectkit.engine.base import KernelFailure

            return KernelFailure(exc)
    return call(kernel, item, None, _STATES[token], with_state=True)


class LocalEngine(Engine):
    """Kernels in this process (``workers=1``) or in ``workers`` spawned processes.

    The pool starts on the first map that needs it and serves every later map until
    :meth:`close` (a k-means runs one map per Lloyd iteration)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._executor: Executor | None = None

    def map(
        self,
        kernel: Callable[..., Any],
        items: Iterable[Any],
        *,
        shared: Any = None,
        setup: Callable[[Any], Any] | None = None,
        label: str | None = None,
        total: int | None = None,
    ) -> Iterator[Any]:
        with progress_bar(label, total) if label else contextlib.nullcontext() as bar:
            if self.workers == 1:
                state = setup(shared) if setup is not None else None
                for item in items:
                    result = kernel(state, item) if setup is not None else kernel(item, shared)
                    if bar is not None:
                        bar.advance()
                    yield result
                return
            if self._executor is None:
                self._executor = Executor(self.workers)
            token = uuid.uuid4().hex
            items = list(items)
            tasks = ((kernel, item, shared, setup, token) for item in items)
            names = (item_name(item) for item in items)
            for result in self._executor.map(_pool_call, tasks, names):
                if bar is not None:
                    bar.advance()
                yield unwrap(result)

    def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.close()
