"""What every engine offers: map a kernel over items (shards), in order; store a value once.

An engine runs *kernels*: module-level functions over picklable items (shard descriptors,
blocks) that return picklable partial results. The caller reduces those results on the driver
in the order of the items, so the result never depends on which worker ran what, or when.
"""

from __future__ import annotations

import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from selectkit.errors import SelectkitError, SelectkitInternalError


class Handle:
    """A value stored once and read by many kernels (``handle.get()``, on any engine).

    Local engines hold the value itself; the Ray engine holds an object reference, fetched once
    per worker process."""

    __slots__ = ("_ref", "_value")

    def __init__(self, value: Any = None, ref: Any = None) -> None:
        self._value = value
        self._ref = ref

    def get(self) -> Any:
        """The stored value (from the object store on a Ray worker: once per process)."""
        if self._ref is None:
            return self._value
        from selectkit.engine.ray_engine import fetch

        return fetch(self._ref)

    def __getstate__(self) -> tuple:
        return (self._value, self._ref)

    def __setstate__(self, state: tuple) -> None:
        self._value, self._ref = state


def item_name(item: Any) -> str:
    """How an error names an item: its ``key`` (a shard's relative path) or its repr."""
    key = getattr(item, "key", None)
    return f"shard '{key}'" if key is not None else f"item {item!r}"[:200]


class KernelFailure:
    """An exception a kernel raised, carried back to the driver intact (its type, message,
    exit code) with the worker's traceback as text."""

    def __init__(self, exc: BaseException) -> None:
        self.trace = "".join(traceback.format_exception(exc))
        try:
            pickle.loads(pickle.dumps(exc))
            self.exc: BaseException = exc
        except Exception:  # an exception that does not survive pickling: keep its words
            self.exc = SelectkitInternalError(f"{type(exc).__name__}: {exc}")

    def raise_(self) -> None:
        exc = self.exc
        if not isinstance(exc, SelectkitError):
            exc.add_note(f"raised in a worker:\n{self.trace}")
        raise exc


def call(
    kernel: Callable[..., Any], item: Any, shared: Any, state: Any = None, with_state: bool = False
) -> Any:
    """Run one kernel call; a raised exception comes back as a ``KernelFailure``."""
    try:
        return kernel(state, item) if with_state else kernel(item, shared)
    except Exception as exc:
        return KernelFailure(exc)


class Engine:
    """Where kernels run. Subclasses: :class:`~selectkit.engine.local.LocalEngine`,
    :class:`~selectkit.engine.ray_engine.RayEngine`."""

    name: str = "engine"
    workers: int = 1

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
        """Yield ``kernel(item, shared)`` (or ``kernel(state, item)`` with ``state =
        setup(shared)`` made once per worker) for each item, in the order of ``items``. An
        exception a kernel raises is raised here, with its type and message."""
        raise NotImplementedError

    def put(self, value: Any) -> Handle:
        """Store ``value`` once for many kernels; they read it with ``handle.get()``."""
        return Handle(value)

    def describe(self) -> dict[str, Any]:
        """What the provenance records of this engine (kind, address, nodes, workers)."""
        return {"engine": self.name, "workers": self.workers}

    def close(self) -> None:
        """Release workers this engine started (never a cluster it was given)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unwrap(result: Any) -> Any:
    """A kernel's result, or its exception raised here."""
    if isinstance(result, KernelFailure):
        result.raise_()
    return result
