"""The Ray engine: kernels as Ray Data tasks (or actors, for kernels with per-worker state) on a
Ray cluster, results handed back in the order of the items.

Each map becomes ``ray.data.from_items(indices, override_num_blocks=n).map_batches(...,
batch_size=1)``: one task per item, which Ray Data neither splits nor merges. The kernel, the
items and the shared value travel once through the object store; each task looks its item up by
index and returns its result pickled, with the index, and the driver puts the results back in
order (Ray Data does not keep it). A worker process that dies is retried by Ray
(``MAX_RETRIES``); an exception a kernel raises is not retried: it comes back and is raised on
the driver with its type and message. This is the only module that imports Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import socket
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from selectkit import interrupts
from selectkit.console import progress_bar
from selectkit.engine.base import Engine, Handle, KernelFailure, call, item_name, unwrap
from selectkit.engine.threads import mark_worker
from selectkit.errors import SelectkitError, SelectkitUsageError

#: retries of a task whose worker process died (not of a kernel that raised)
MAX_RETRIES = 3
#: seconds to reach a given cluster before giving up
CONNECT_TIMEOUT_S = 20.0
#: the object store of a Ray instance selectkit starts itself: this share of RAM, at most 4 GiB
OBJECT_STORE_SHARE = 0.2
OBJECT_STORE_MAX = 4 << 30
INSTALL_HINT = "pip install 'selectkit[ray]'"


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a usage error saying how to install it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise SelectkitUsageError(
            f"--engine ray needs Ray, which is not installed; {INSTALL_HINT}"
        ) from None
    return ray


def public_address(address: str) -> str:
    """``address`` without credentials (``ray://user:secret@host:port`` -> ``ray://host:port``)."""
    return re.sub(r"(?<=://)[^/@]*@", "", address)


def _host_port(address: str) -> tuple[str, int] | None:
    bare = re.sub(r"^[a-z]+://", "", public_address(address)).split("/")[0]
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within ``timeout`` seconds, an address that accepts no connection."""
    where = _host_port(address)
    if where is None or not 0 < where[1] < 65536:
        if address != "auto":
            raise SelectkitUsageError(
                f"Ray address '{public_address(address)}' is not host:port with a port from 1 "
                "to 65535 (e.g. head:6379)"
            )
        return
    started = time.monotonic()
    try:
        with socket.create_connection(where, timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise _unreachable(address, reason) from None
    if not address.startswith("ray://"):  # Ray Client addresses speak another protocol
        _probe_gcs(address, max(1.0, timeout - (time.monotonic() - started)))


def _unreachable(address: str, reason: str) -> SelectkitError:
    return SelectkitError(
        f"cannot reach the Ray cluster at '{public_address(address)}' ({reason}); check the "
        "address (--ray-address or RAY_ADDRESS) and that the head node is running"
    )


def _probe_gcs(address: str, timeout: float) -> None:
    """Ask the head's GCS for the cluster's id within ``timeout`` seconds: a port that accepts
    connections but is no Ray head (or a proxy) would otherwise keep ``ray.init`` retrying for a
    minute, logging a line a second. Ray's C++ client logs go to stderr: held back meanwhile."""
    from ray._raylet import GcsClient

    outcome: dict[str, BaseException | None] = {}

    def probe() -> None:
        try:
            GcsClient(address=address)
            outcome["error"] = None
        except Exception as exc:  # Ray raises its own RpcError
            outcome["error"] = exc

    with _stderr_held():
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(timeout)
    if "error" not in outcome:
        raise _unreachable(address, f"no answer within {timeout:.0f} s")
    error = outcome["error"]
    if error is not None and "auth" in str(error).lower():
        raise SelectkitError(
            f"the Ray cluster at '{public_address(address)}' refused this driver's "
            "authentication: it runs with token authentication, so run the command with "
            "RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    if error is not None:
        raise _unreachable(address, f"no Ray head answers there: {_first_line(error)}")


@contextlib.contextmanager
def _stderr_held() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block (C++ logging ignores Python's)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet(ray: Any) -> None:
    """Keep stdout clean and stderr short: no progress bars or info logs from Ray Data, no
    tracebacks of failed tasks (the command's one error line names the shard; Ray's own log
    files keep the details), and the raylet's notices (a worker died, a task is retried) as
    one short line each on stderr instead of paragraphs on stdout."""
    for name in ("ray", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    _route_raylet_notices()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.verbose_stats_logs = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def _route_raylet_notices() -> None:
    """Ray's driver prints the cluster's error notices to ``sys.stdout`` from a background
    thread; send them to stderr, one short line each."""
    from ray._private import worker  # ray 2.60: the listener looks the printer up per notice

    printer = getattr(worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, "_selectkit", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool = False) -> None:
        if data.get("is_err") or data.get("pid") != "raylet":
            printer(data, ignore_prefix)
            return
        for line in data.get("lines", []):
            text = str(line).strip().split(" Error:")[0]
            text = text if len(text) <= 120 else text.split(". ")[0]
            if text:
                print(f"ray: {text}", file=sys.stderr, flush=True)

    to_stderr._selectkit = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - not POSIX
        return 8 << 30


#: the address this process connected to (None: a Ray instance it started, or none yet)
_CONNECTED: str | None = None


def connect(address: str | None) -> tuple[Any, str, bool]:
    """Connect to ``address`` (or ``$RAY_ADDRESS``), or start a local instance; returns (ray,
    the address as recorded, whether this call started Ray). Reuses a live connection."""
    global _CONNECTED
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        if address and _CONNECTED not in (None, address):
            raise SelectkitUsageError(
                f"this process is already connected to the Ray cluster at "
                f"'{public_address(_CONNECTED)}'; run one process per cluster"
            )
        return ray, public_address(_CONNECTED or address or "local"), False
    common = dict(
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
        include_dashboard=False,
    )
    if address:
        check_reachable(address)
        try:
            with interrupts.handlers_kept(), interrupts.spawning():
                ray.init(address=address, **common)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ...
            raise SelectkitError(
                f"cannot connect to the Ray cluster at '{public_address(address)}': "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        _quiet(ray)
        _CONNECTED = address
        return ray, public_address(address), False
    store = min(int(_total_memory() * OBJECT_STORE_SHARE), OBJECT_STORE_MAX)
    os.environ.setdefault("RAY_memory_usage_threshold", "0.98")
    # address="local": a new instance, never a cluster some other process started here
    # its processes are born deaf to the terminal's Ctrl-C: this driver decides, then stops them
    with interrupts.handlers_kept(), interrupts.spawning():
        ray.init(address="local", object_store_memory=max(store, 100 << 20), **common)
    _quiet(ray)
    return ray, "local", True


#: per worker process: values fetched from the object store, by reference, most recent last
_FETCHED: OrderedDict[str, Any] = OrderedDict()
_FETCH_KEEP = 4


def fetch(ref: Any) -> Any:
    """``ray.get(ref)``, once per worker process for the last few references."""
    key = ref.hex()
    if key in _FETCHED:
        _FETCHED.move_to_end(key)
        return _FETCHED[key]
    import ray

    value = ray.get(ref)
    _FETCHED[key] = value
    while len(_FETCHED) > _FETCH_KEEP:
        _FETCHED.popitem(last=False)
    return value


def _payload(ref: Any) -> tuple:
    """(kernel, items, shared, setup) of a map, in the driver's working folder: relative input
    paths name the same files on every node (which see the driver's storage at the same paths)."""
    # Ray Data may hand over the value itself rather than its reference
    cwd, *payload = fetch(ref) if hasattr(ref, "hex") and not isinstance(ref, tuple) else ref
    with contextlib.suppress(OSError):  # a node without that folder: paths stay as given
        if os.getcwd() != cwd and os.path.isdir(cwd):
            os.chdir(cwd)
    return tuple(payload)


def _run_tasks(batch: dict[str, np.ndarray], payload: Any) -> dict[str, np.ndarray]:
    """A Ray Data task: run the kernel on the items whose indices are in ``batch``."""
    mark_worker(1)
    kernel, items, shared, _setup = _payload(payload)
    out = [pickle.dumps(call(kernel, items[int(i)], shared), protocol=5) for i in batch["i"]]
    return {"i": batch["i"], "result": np.array(out, dtype=object)}


class _StatefulTask:
    """A Ray Data actor: ``setup(shared)`` once (on its first batch), then the kernel on each
    batch of indices. The payload comes with each call, not to the constructor, so Ray can
    restart a dead actor without its constructor's arguments."""

    def __init__(self) -> None:
        mark_worker(1)
        self._token: str | None = None
        self._state: Any = None
        self._failure: KernelFailure | None = None

    def __call__(self, batch: dict[str, np.ndarray], payload: Any) -> dict[str, np.ndarray]:
        kernel, items, shared, setup = _payload(payload)
        token = payload.hex() if hasattr(payload, "hex") else str(id(payload))
        if token != self._token:
            self._token, self._failure = token, None
            try:
                self._state = setup(shared)
            except Exception as exc:
                self._state, self._failure = None, KernelFailure(exc)
        out = []
        for i in batch["i"]:
            result = self._failure or call(kernel, items[int(i)], None, self._state, True)
            out.append(pickle.dumps(result, protocol=5))
        return {"i": batch["i"], "result": np.array(out, dtype=object)}


class RayEngine(Engine):
    """Kernels on a Ray cluster: the one at ``address`` (or ``$RAY_ADDRESS``), else a Ray
    instance started on this machine for this process."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self._ray, self.address, self._started = connect(address)
        resources = self._ray.cluster_resources()
        self.workers = max(1, int(resources.get("CPU", 1)))

    def put(self, value: Any) -> Handle:
        return Handle(ref=self._ray.put(value))

    def close(self) -> None:
        """Stop the Ray instance this engine started (never a cluster it connected to), whole:
        a signal meanwhile is raised once it is down, so nothing is left for exit time."""
        if not self._started or not self._ray.is_initialized():
            return
        with interrupts.handlers_kept(), interrupts.deferred():
            self._ray.shutdown()

    def describe(self) -> dict[str, Any]:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return {
            "engine": "ray",
            "address": self.address,
            "nodes": len(nodes),
            "workers": self.workers,
        }

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
        ray = self._ray
        items = list(items)
        if not items:
            return
        payload = ray.put((os.getcwd(), kernel, items, shared, setup))
        ds = ray.data.from_items(
            [{"i": i} for i in range(len(items))], override_num_blocks=len(items)
        )
        if setup is None:
            with warnings.catch_warnings():  # Ray 2.60 has no undeprecated way to bound retries
                warnings.simplefilter("ignore")
                ds = ds.map_batches(
                    _run_tasks,
                    batch_size=1,
                    batch_format="numpy",
                    fn_kwargs={"payload": payload},
                    num_cpus=1,
                    max_retries=MAX_RETRIES,  # finite: a kernel that kills its worker fails
                )
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = ds.map_batches(
                    _StatefulTask,
                    fn_kwargs={"payload": payload},
                    batch_size=1,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(items))),
                    num_cpus=1,
                    max_restarts=MAX_RETRIES,
                    max_task_retries=MAX_RETRIES,
                )
        waiting: dict[int, Any] = {}
        next_i = 0
        try:
            with progress_bar(label or "ray", total or len(items)) as bar:
                for row in ds.iter_rows():
                    waiting[int(row["i"])] = row["result"]
                    while next_i in waiting:
                        result = pickle.loads(waiting.pop(next_i))
                        next_i += 1
                        if label:
                            bar.advance()
                        yield unwrap(result)
        except SelectkitError:
            raise
        except Exception as exc:
            if not _is_ray_error(ray, exc):
                raise
            missing = [i for i in range(next_i, len(items)) if i not in waiting]
            first = item_name(items[missing[0]]) if missing else "a task"
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            # a dead worker does not say which task it ran: name what did not finish
            raise SelectkitError(
                f"the Ray job failed after {MAX_RETRIES} retries, with {first}{more} "
                f"unfinished: {_first_line(exc)}"
            ) from None
        if next_i != len(items):
            raise SelectkitError(
                f"the Ray job lost {item_name(items[next_i])}: it returned no result"
            )


def _is_ray_error(ray: Any, exc: BaseException) -> bool:
    return isinstance(exc, ray.exceptions.RayError) or type(exc).__module__.startswith("ray")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__
