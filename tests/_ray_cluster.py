"""One real two-node Ray cluster on this machine, shared by every Ray test of a test run.

The head and one worker node (1 CPU and a 300 MB object store each, no dashboard, usage stats
off) run as real Ray processes started by ``ray.cluster_utils.Cluster``; ``RAY_ADDRESS`` points at
the head, so in-process CLI calls, the Python API and ``selectkit`` subprocesses with
``--engine ray`` all connect to it. Start-up costs ~5 s and the stop ~1-2 s on 2 cores, so it is
started once, lazily, by the first test that needs it (the ``ray_cluster`` fixture in
``tests/conftest.py``), and stopped when the session ends: every process it started is then
checked by pid and killed if it outlived Ray's own shutdown.

With pytest-xdist (``make test`` runs ``-n 2 --dist loadfile``) every Ray test, whatever file it
is in, is sent to the same xdist worker (see ``make_scheduler``), so one cluster serves
the run and no two drivers compete for its two CPUs (tests that check that tasks ran on both
nodes rely on that). Were Ray tests spread anyway (another ``--dist`` mode), each xdist worker
that runs one starts at most one cluster of its own.

Tests need Ray only when marked ``ray`` or using ``ray_cluster``: without Ray installed they skip,
unless ``SELECTKIT_REQUIRE_RAY=1`` (``make test``, so CI) turns that into a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HEAD_CPUS = 1
NODE_CPUS = 1
OBJECT_STORE_BYTES = 300_000_000
REQUIRE_ENV = "SELECTKIT_REQUIRE_RAY"
GROUP = "ray"  # the xdist group (and nodeid suffix) that keeps all Ray tests on one worker
INSTALL_HINT = "pip install -e '.[test,ray]' (the selectkit[ray] extra)"

# Set before the nodes start: raylets pass their environment on to the worker processes.
# Ray's default memory threshold (0.95) kills workers on a busy CI machine.
RAY_ENV = {
    "RAY_memory_usage_threshold": "0.98",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
}


def ray_required() -> bool:
    """Whether a missing Ray must fail the run instead of skipping the Ray tests."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def ray_installed() -> bool:
    """Whether ``ray`` can be found, without importing it (cheap: every pytest process asks)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def check_required() -> None:
    """Refuse to start a run that must test Ray when Ray is not installed."""
    if ray_required() and not ray_installed():
        raise pytest.UsageError(
            f"{REQUIRE_ENV}=1 but Ray is not importable by {sys.executable}: {INSTALL_HINT}"
        )


#: for a test that needs Ray installed but not the cluster (it runs Ray in a subprocess)
installed = pytest.mark.skipif(
    not ray_installed() and not ray_required(), reason=f"Ray is not installed: {INSTALL_HINT}"
)


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every live process (from /proc; Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] == b"Z":  # a zombie holds nothing; its parent reaps it
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    """Live (non-zombie) descendants of ``pid``."""
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_ray_process(pid: int) -> bool:
    cmd = _cmdline(pid)
    return cmd.startswith("ray::") or f"{os.sep}ray{os.sep}" in cmd


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def _pythonpath_with(repo: Path) -> str:
    """PYTHONPATH with the checkout first: Ray workers import selectkit (and the tests' kernels
    from ``tests.*``) from this checkout, not from wherever the venv's editable install points."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join([str(repo), *[p for p in parts if Path(p) != repo]])


@dataclass
class RayTestCluster:
    """A running two-node test cluster. ``address`` is what ``RAY_ADDRESS`` holds."""

    address: str
    node_ids: tuple[str, ...]
    start_s: float
    _cluster: object = field(repr=False)
    _saved_env: dict[str, str | None] = field(repr=False)
    stop_s: float | None = None

    @property
    def nodes(self) -> int:
        return len(self.node_ids)

    @property
    def cpus(self) -> int:
        return HEAD_CPUS + NODE_CPUS

    def ray_pids(self) -> set[int]:
        """Ray's processes (head and worker node services, task workers) this process started."""
        return {pid for pid in descendants(os.getpid()) if is_ray_process(pid)}

    def stop(self, grace_s: float = 10.0) -> list[int]:
        """Disconnect this process's driver, stop both nodes and kill, by pid, any Ray process
        of ours still alive ``grace_s`` later. Returns the pids that had to be killed."""
        import ray

        t0 = time.perf_counter()
        ours = self.ray_pids()
        try:
            if ray.is_initialized():
                ray.shutdown()
            self._cluster.shutdown()
        finally:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(alive(p) for p in ours):
                time.sleep(0.1)
            killed = [p for p in sorted(ours) if alive(p)]
            for pid in killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self.stop_s = time.perf_counter() - t0
        return killed


def _forget_address_file(address: str) -> None:
    """Cluster() writes its address to /tmp/ray/ray_current_cluster, where any ``ray.init()``
    without an address on this machine would find and join it: remove it (we export
    RAY_ADDRESS instead), so tests of "no address starts a local instance" and other people's
    Ray processes on this machine are not joined to the test cluster."""
    try:
        from ray._common.utils import get_ray_address_file

        path = Path(get_ray_address_file(None))
        if path.read_text().strip() == address:
            path.unlink()
    except (ImportError, OSError):
        pass


def start(repo: Path) -> RayTestCluster:
    """Start head (1 CPU) + one worker node (1 CPU), 300 MB object store each, and export
    RAY_ADDRESS. Costs ~5 s on 2 cores. The caller must ``stop()`` it."""
    env = {**RAY_ENV, "PYTHONPATH": _pythonpath_with(repo)}
    saved = {key: os.environ.get(key) for key in [*env, "RAY_ADDRESS"]}
    os.environ.update(env)
    # a RAY_ADDRESS left in the environment would make the nodes join another cluster
    os.environ.pop("RAY_ADDRESS", None)
    t0 = time.perf_counter()
    try:
        from ray.cluster_utils import Cluster

        node_args = {"num_cpus": NODE_CPUS, "object_store_memory": OBJECT_STORE_BYTES}
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": HEAD_CPUS,
                "object_store_memory": OBJECT_STORE_BYTES,
                "include_dashboard": False,
            },
        )
        try:
            cluster.add_node(**node_args)
            cluster.wait_for_nodes()
        except BaseException:
            cluster.shutdown()
            raise
    except BaseException:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        raise
    _forget_address_file(cluster.address)
    node_ids = tuple(node.node_id for node in [cluster.head_node, *cluster.worker_nodes])
    os.environ["RAY_ADDRESS"] = cluster.address
    return RayTestCluster(
        address=cluster.address,
        node_ids=node_ids,
        start_s=time.perf_counter() - t0,
        _cluster=cluster,
        _saved_env=saved,
    )


# ---------------------------------------------------------------------------------------------
# collection and xdist scheduling
#
# xdist's controller schedules by nodeid alone and cannot see markers or fixtures, so each xdist
# worker writes the nodeids of its Ray tests, at collection, to a folder the controller made
# (RAY_TESTS_ENV); the controller's scheduler reads them once all workers have collected.

RAY_TESTS_ENV = "SELECTKIT_RAY_TESTS_DIR"


def uses_ray(item: pytest.Item) -> bool:
    return item.get_closest_marker("ray") is not None or "ray_cluster" in getattr(
        item, "fixturenames", ()
    )


def configure_controller(config: pytest.Config) -> None:
    """In xdist's controller with --dist loadfile: make the folder the workers report to."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if getattr(config.option, "dist", None) != "loadfile":
        return
    folder = tempfile.mkdtemp(prefix="selectkit-ray-tests-")
    config.stash[_FOLDER] = folder
    os.environ[RAY_TESTS_ENV] = folder  # the workers, spawned after this, inherit it


def unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_FOLDER, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(RAY_TESTS_ENV, None)


_FOLDER = pytest.StashKey[str]()


def mark_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the cluster ``ray`` (so ``-m 'not ray'`` works), skip them
    when Ray is missing (unless required), and tell xdist's controller which they are."""
    missing = None if ray_installed() else f"Ray is not installed: {INSTALL_HINT}"
    ray_ids = []
    for item in items:
        if not uses_ray(item):
            continue
        ray_ids.append(item.nodeid)
        if item.get_closest_marker("ray") is None:
            item.add_marker(pytest.mark.ray)
        if missing and not ray_required():
            item.add_marker(pytest.mark.skip(reason=missing))
    folder, worker = os.environ.get(RAY_TESTS_ENV), os.environ.get("PYTEST_XDIST_WORKER")
    if folder and worker and os.path.isdir(folder):
        tmp = Path(folder) / f"{worker}.json.tmp"
        tmp.write_text(json.dumps(ray_ids))
        tmp.replace(Path(folder) / f"{worker}.json")


def _reported_ray_ids(folder: str) -> set[str]:
    ids: set[str] = set()
    for path in Path(folder).glob("*.json"):
        ids.update(json.loads(path.read_text()))
    return ids


def make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` with all Ray tests as one work unit (so one xdist worker, one
    cluster); None (xdist's own choice) for every other mode."""
    folder = config.stash.get(_FOLDER, None)
    if folder is None:
        return None
    from xdist.scheduler import LoadFileScheduling

    class RayGroupedFileScheduling(LoadFileScheduling):
        _ray_ids: set[str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._ray_ids is None:  # first called once every worker has collected
                self._ray_ids = _reported_ray_ids(folder)
            if nodeid in self._ray_ids:
                return "@" + GROUP
            return super()._split_scope(nodeid)

    return RayGroupedFileScheduling(config, log)


# ---------------------------------------------------------------------------------------------
# what the cluster cost, in the run's summary (from an xdist worker: through its workeroutput)

SUMMARY_KEY = "selectkit_ray_cluster"
#: this process's cluster, once stopped: {"start_s", "stop_s", "tests", "killed"}
TIMINGS: dict[str, float] = {}


def record(cluster: RayTestCluster, tests: int, killed: list[int]) -> None:
    TIMINGS.update(
        start_s=cluster.start_s, stop_s=cluster.stop_s or 0.0, tests=tests, killed=len(killed)
    )


def summary_lines(reports: dict[str, dict]) -> list[str]:
    """One line per process that ran a cluster: where, start and stop seconds, Ray tests."""
    lines = []
    for where, t in sorted(reports.items()):
        killed = int(t.get("killed", 0))
        lines.append(
            f"Ray test cluster ({where}): 2 nodes started in {t['start_s']:.1f} s, stopped in "
            f"{t['stop_s']:.1f} s; {int(t['tests'])} tests used it"
            + (f"; {killed} Ray processes outlived its shutdown and were killed" if killed else "")
        )
    return lines
