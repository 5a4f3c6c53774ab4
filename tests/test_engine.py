"""The execution engines (selectkit.engine) against their contract (ENGINE-SPEC): the local
engine inline and as a process pool, and the Ray engine on the real two-node test cluster
(tests/_ray_cluster.py). Kernels are module-level functions here, as the contract requires:
Ray workers and pool processes import them from this checkout (``tests.test_engine``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import typer

from selectkit.cli._run import run
from selectkit.engine import Handle, engine_record, get_engine
from selectkit.errors import SelectkitDataError, SelectkitError, SelectkitUsageError
from tests import _ray_cluster
from tests._ray_cluster import alive

REPO = Path(__file__).resolve().parents[1]
ITEMS = list(range(8))


@dataclass(frozen=True)
class Item:
    """A stand-in for a shard: errors name it by its ``key``."""

    key: str
    value: int


# ---------------------------------------------------------------------------------------------
# kernels (module level: they are pickled by reference)


def slow_square(item: int, shared) -> tuple[int, int, int]:
    """(item, item**2 + shared, pid); early items sleep longest, so they finish last."""
    time.sleep(0.05 * (len(ITEMS) - item))
    return item, item * item + (shared or 0), os.getpid()


def on_node(item: int, shared) -> tuple[int, str, int, str]:
    """(item, Ray node id, pid, the selectkit package this worker imported)."""
    import ray

    import selectkit

    time.sleep(0.3)  # long enough that both 1-CPU nodes get work
    return item, ray.get_runtime_context().get_node_id(), os.getpid(), selectkit.__file__


def read_handle(item: int, shared: Handle) -> float:
    """Reads the stored array through its handle: one row of it."""
    return float(shared.get()[item].sum())


def make_state(shared) -> dict:
    """Setup: a per-worker state, named uniquely, made once per worker process."""
    return {"id": uuid.uuid4().hex, "pid": os.getpid(), "base": shared}


def use_state(state: dict, item: int) -> tuple[int, str, int]:
    return item * 10 + state["base"], state["id"], state["pid"]


def raise_on_three(item, shared):
    value = getattr(item, "value", item)
    if value == 3:
        exc = shared["cls"](f"{getattr(item, 'key', item)}: row 7 has a null text")
        raise exc
    return value


def _stateful_raise(state, item):
    return raise_on_three(item, state)


def _as_state(shared):
    return shared


# ---------------------------------------------------------------------------------------------
# engines under test


ENGINES = [
    pytest.param(("local", 1), id="local-inline"),
    pytest.param(("local", 2), id="local-pool"),
    pytest.param(("ray", None), id="ray", marks=pytest.mark.ray),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    """Each engine once per module (a pool costs seconds to spawn on 2 busy cores)."""
    name, workers = request.param
    if name == "ray":
        request.getfixturevalue("ray_cluster")  # before connecting: it exports RAY_ADDRESS
    eng = get_engine(name, workers=workers)
    yield eng
    eng.close()


# ---------------------------------------------------------------------------------------------
# the contract on every engine


def test_map_yields_in_item_order_whatever_order_workers_finish(engine):
    results = list(engine.map(slow_square, ITEMS, shared=5))
    assert [r[:2] for r in results] == [(i, i * i + 5) for i in ITEMS]
    pids = {r[2] for r in results}
    if engine.describe()["engine"] == "local" and engine.workers == 1:
        assert pids == {os.getpid()}  # inline: in this process
    else:
        assert os.getpid() not in pids  # in worker processes


def test_map_of_no_items_yields_nothing(engine):
    assert list(engine.map(slow_square, [], shared=0)) == []


def test_put_stores_once_and_kernels_read_the_handle(engine):
    block = np.arange(40_000, dtype=np.float64).reshape(8, 5_000)
    handle = engine.put(block)
    assert isinstance(handle, Handle)
    assert handle.get().shape == block.shape  # readable on the driver too
    assert list(engine.map(read_handle, ITEMS, shared=handle)) == [
        float(row.sum()) for row in block
    ]


def test_setup_runs_once_per_worker_and_its_state_reaches_the_kernel(engine):
    results = list(engine.map(use_state, ITEMS, shared=7, setup=make_state))
    assert [r[0] for r in results] == [i * 10 + 7 for i in ITEMS]
    state_of_pid: dict[int, set[str]] = {}
    for _, state_id, pid in results:
        state_of_pid.setdefault(pid, set()).add(state_id)
    # one state per worker process, never more workers' states than the engine has workers
    assert all(len(ids) == 1 for ids in state_of_pid.values()), state_of_pid
    assert len(state_of_pid) <= engine.workers


@pytest.mark.parametrize(
    ("cls", "stateful"),
    [(SelectkitDataError, False), (ValueError, False), (SelectkitDataError, True)],
    ids=["data-error", "value-error", "data-error-in-setup-kernel"],
)
def test_a_kernel_exception_keeps_its_type_and_message(engine, cls, stateful):
    items = [Item(f"part-{i:05d}.jsonl", i) for i in ITEMS]
    if stateful:
        results = engine.map(_stateful_raise, items, shared={"cls": cls}, setup=_as_state)
    else:
        results = engine.map(raise_on_three, items, shared={"cls": cls})
    with pytest.raises(cls) as info:
        list(results)
    assert type(info.value) is cls
    assert str(info.value) == "part-00003.jsonl: row 7 has a null text"


def test_a_data_error_in_a_kernel_is_exit_1_with_its_one_line(engine, capsys):
    items = [Item(f"part-{i:05d}.jsonl", i) for i in ITEMS]

    def job():
        return list(engine.map(raise_on_three, items, shared={"cls": SelectkitDataError}))

    with pytest.raises(typer.Exit) as info:
        run(job)
    assert info.value.exit_code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: part-00003.jsonl: row 7 has a null text"]


def test_describe_is_the_provenance_record(engine):
    record = engine_record(engine)
    assert record == engine.describe()
    json.dumps(record)  # provenance is JSON
    assert record["workers"] == engine.workers


def test_local_describes_itself():
    assert get_engine("local").describe() == {"engine": "local", "workers": 1}
    with get_engine("local", workers=2) as pool:
        assert pool.describe() == {"engine": "local", "workers": 2}


def test_an_engine_passes_through_get_engine():
    eng = get_engine("local", workers=2)
    assert get_engine(eng) is eng


# ---------------------------------------------------------------------------------------------
# Ray on the two-node cluster


@pytest.mark.ray
def test_the_test_cluster_has_two_nodes_and_its_workers_import_this_checkout(ray_cluster):
    import ray

    assert os.environ["RAY_ADDRESS"] == ray_cluster.address
    eng = get_engine("ray")  # connects this process through RAY_ADDRESS
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert sorted(n["NodeID"] for n in alive) == sorted(ray_cluster.node_ids)
    assert [n["Resources"]["CPU"] for n in alive] == [1.0, 1.0]
    results = list(eng.map(on_node, ITEMS))
    assert [r[0] for r in results] == ITEMS
    assert {r[1] for r in results} == set(ray_cluster.node_ids), "tasks ran on one node only"
    assert {Path(r[3]).resolve() for r in results} == {REPO / "selectkit" / "__init__.py"}


@pytest.mark.ray
def test_ray_describes_the_cluster_it_was_given(ray_cluster):
    eng = get_engine("ray")
    assert eng.describe() == {
        "engine": "ray",
        "address": ray_cluster.address,
        "nodes": 2,
        "workers": 2,
    }
    assert eng.workers == 2
    eng.close()  # never stops a cluster it was given
    again = get_engine("ray", ray_address=ray_cluster.address)
    assert [r[:2] for r in again.map(slow_square, [1, 2], shared=0)] == [(1, 1), (2, 4)]
    assert again.describe()["nodes"] == 2


@pytest.mark.ray
def test_ray_and_local_give_the_same_results(ray_cluster):
    with get_engine("local", workers=2) as pool:
        local = [r[:2] for r in pool.map(slow_square, ITEMS, shared=3)]
    ray_results = [r[:2] for r in get_engine("ray").map(slow_square, ITEMS, shared=3)]
    inline = [r[:2] for r in get_engine("local").map(slow_square, ITEMS, shared=3)]
    assert ray_results == local == inline


# ---------------------------------------------------------------------------------------------
# Ray's errors, in fresh processes (this one stays connected to the test cluster)

NO_RAY = """
import sys
class _NoRay:
    # ray stays unimportable, as if it were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoRay())
"""

DESCRIBE = """
import json, sys, time
from selectkit.engine import get_engine
from selectkit.errors import SelectkitError
t0 = time.perf_counter()
try:
    eng = get_engine("ray", ray_address=(sys.argv[1] or None) if len(sys.argv) > 1 else None)
except SelectkitError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                      "exit": exc.exit_code, "s": time.perf_counter() - t0}))
    sys.exit(exc.exit_code)
print(json.dumps({"describe": eng.describe(), "s": time.perf_counter() - t0}))
eng.close()
"""


def _python(code: str, *args: str, env: dict | None = None, timeout: float = 120):
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        cwd=REPO,
    )


def test_ray_engine_without_ray_installed_is_a_usage_error_naming_the_extra():
    proc = _python(NO_RAY + DESCRIBE, env={"RAY_ADDRESS": None})
    assert proc.returncode == 2, proc.stderr
    out = json.loads(proc.stdout)
    assert out["error"] == SelectkitUsageError.__name__
    assert "pip install 'selectkit[ray]'" in out["message"]
    assert "\n" not in out["message"]
    # and the blocker really blocks: the same process cannot import ray
    check = _python(NO_RAY + "import ray", env={"RAY_ADDRESS": None})
    assert check.returncode == 1 and "No module named 'ray'" in check.stderr


UNREACHABLE = {"refused": "127.0.0.1:1", "blackholed": "10.255.255.1:6379"}


@_ray_cluster.installed
@pytest.mark.parametrize("case", ["refused", "blackholed"])
def test_an_unreachable_address_fails_within_30s_naming_it(case):
    """Given as the argument or through RAY_ADDRESS (both at once: a blackholed address may
    take most of the 30 s)."""
    runs = {}
    for address in [UNREACHABLE[case]]:
        for via in ("argument", "RAY_ADDRESS"):
            args, env = ([address], {"RAY_ADDRESS": None}) if via == "argument" else ([], {})
            env = env or {"RAY_ADDRESS": address}
            full = {**os.environ, "PYTHONPATH": str(REPO), **env}
            runs[case, via, address] = subprocess.Popen(
                [sys.executable, "-c", DESCRIBE, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={k: v for k, v in full.items() if v is not None},
                cwd=REPO,
            )
    failures = []
    for (case, via, address), proc in runs.items():
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            failures.append(f"{case} via {via}: still running after 90 s")
            continue
        where = f"{case} {address} via {via}"
        if proc.returncode != 1:
            failures.append(f"{where}: exit {proc.returncode}, {err.strip()[-300:]}")
            continue
        result = json.loads(out)
        if result["error"] != SelectkitError.__name__ or f"'{address}'" not in result["message"]:
            failures.append(f"{where}: {result}")
        elif result["s"] >= 30:
            failures.append(f"{where}: gave up after {result['s']:.1f} s (limit 30 s)")
    assert not failures, "\n".join(failures)


@pytest.mark.ray
def test_ray_address_from_the_environment_is_honoured(ray_cluster):
    proc = _python(DESCRIBE, env={"RAY_ADDRESS": ray_cluster.address})
    assert proc.returncode == 0, proc.stderr
    described = json.loads(proc.stdout)["describe"]
    assert described == {
        "engine": "ray",
        "address": ray_cluster.address,
        "nodes": 2,
        "workers": 2,
    }


LOCAL_INSTANCE = (
    DESCRIBE.replace("eng.close()", "")
    + """
from tests._ray_cluster import descendants, is_ray_process
print(json.dumps(sorted(p for p in descendants(__import__("os").getpid()) if is_ray_process(p))))
eng.close()
"""
)


@pytest.mark.ray
def test_without_an_address_ray_starts_its_own_instance_and_leaves_no_process(ray_cluster):
    # another cluster (the test cluster) runs on this machine: it must not be joined
    proc = _python(LOCAL_INSTANCE, env={"RAY_ADDRESS": None})
    assert proc.returncode == 0, proc.stderr
    described, pids = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    described = described["describe"]
    assert described["address"] == "local"
    assert described["nodes"] == 1
    assert pids, "no Ray process was started"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], "Ray processes outlived the run"


@pytest.mark.ray
def test_an_address_differing_from_the_live_connection_is_refused(ray_cluster):
    get_engine("ray")  # this process is now a driver on the test cluster
    # never silently run on the connected cluster while recording another address
    with pytest.raises(SelectkitUsageError, match=rf"'{ray_cluster.address}'"):
        get_engine("ray", ray_address="127.0.0.1:1")
    assert get_engine("ray", ray_address=ray_cluster.address).describe()["nodes"] == 2


# ---------------------------------------------------------------------------------------------
# the test infrastructure itself: without Ray, Ray tests skip, unless SELECTKIT_REQUIRE_RAY=1


def _nested_pytest(tmp_path: Path, require: str) -> subprocess.CompletedProcess:
    """pytest on one Ray test, in a process where ray cannot be imported (a -p plugin that
    installs the blocker before conftest.py is read)."""
    (tmp_path / "noray_plugin.py").write_text(NO_RAY)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "RAY_")) and k != "SELECTKIT_RAY_TESTS_DIR"
    }
    env.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", SELECTKIT_REQUIRE_RAY=require)
    test = "tests/test_engine.py::test_ray_describes_the_cluster_it_was_given"
    plugins = ["-p", "noray_plugin", "-p", "no:xdist", "-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", *plugins, test],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_without_ray_the_ray_tests_skip_naming_the_extra(tmp_path):
    proc = _nested_pytest(tmp_path, "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout
    assert "Ray is not installed: pip install -e '.[test,ray]'" in proc.stdout


def test_without_ray_a_run_that_requires_it_fails_before_any_test(tmp_path):
    proc = _nested_pytest(tmp_path, "1")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "SELECTKIT_REQUIRE_RAY=1 but Ray is not importable" in proc.stderr
    assert "passed" not in proc.stdout and "skipped" not in proc.stdout
