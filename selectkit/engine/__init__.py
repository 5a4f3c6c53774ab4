"""The one place where work runs: the local engine (this process, or a process pool) and Ray.

Commands describe their work as *kernels* over *shards* fixed by the data
(:mod:`selectkit.engine.shards`) and reduce the kernels' partial results on the driver in shard
order; :func:`get_engine` decides where the kernels run. So a command's output is the same,
byte for byte, on any engine and any number of workers.
"""

from __future__ import annotations

from typing import Any

from selectkit import arguments
from selectkit.engine.base import Engine, Handle
from selectkit.engine.local import Executor, LocalEngine, default_workers
from selectkit.engine.threads import kernel_threads, thread_limits
from selectkit.errors import SelectkitUsageError, option
from selectkit.params import Param

ENGINES = ("local", "ray")

#: the one declaration of the engine arguments every scaled-out command takes
ENGINE_BOUNDS = {
    "engine": Param(str, "local", "where the work runs: local (this machine) or ray", ENGINES),
    "ray_address": Param(str, None, "Ray cluster address host:port (default: $RAY_ADDRESS)"),
    "resume": Param(bool, False, "reuse the finished parts of an interrupted folder output"),
}


def get_engine(
    engine: str | Engine = "local", *, ray_address: str | None = None, workers: int | None = None
) -> Engine:
    """An engine by name: ``"local"`` (``workers`` processes on this machine; 1 = this process)
    or ``"ray"`` (the cluster at ``ray_address`` / ``$RAY_ADDRESS``, else a Ray instance started
    here). An :class:`Engine` passes through. Ray not installed is a usage error (exit 2); an
    address that cannot be reached, a ``SelectkitError`` naming it (exit 1)."""
    if isinstance(engine, Engine):
        return engine
    name = arguments.text(engine, "engine", choices=list(ENGINES), what="engine")
    if ray_address is not None:
        arguments.text(ray_address, "ray_address")
    if name == "local":
        if ray_address is not None:
            raise SelectkitUsageError(
                f"{option('ray_address')} needs the Ray engine: add {option('engine', 'ray')}"
            )
        if workers is not None:
            arguments.integer(workers, "workers", min=1)
        return LocalEngine(workers or 1)
    from selectkit.engine.ray_engine import RayEngine

    return RayEngine(ray_address)


def engine_record(engine: Engine) -> dict[str, Any]:
    """What a provenance records under ``engine``: kind, address (no credentials), node and
    worker counts. The only part of a provenance, with the timings, that differs by engine."""
    return engine.describe()


__all__ = [
    "ENGINES",
    "ENGINE_BOUNDS",
    "Engine",
    "Executor",
    "Handle",
    "LocalEngine",
    "default_workers",
    "engine_record",
    "get_engine",
    "kernel_threads",
    "thread_limits",
]
