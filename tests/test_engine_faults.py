"""A Ray worker process killed (SIGKILL) mid-map, on the real two-node test cluster: Ray retries
its task and the map completes with the same results; a task whose worker always dies fails
the run with an error naming the shard (exit 1), after Ray's retries. On the local pool (no
retries) a dying worker fails the map naming the shard, never hangs it."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from selectkit.cli._run import run
from selectkit.engine import get_engine
from selectkit.errors import SelectkitError
from tests._ray_cluster import alive

VICTIM = 3


@dataclass(frozen=True)
class Item:
    """A stand-in for a shard: errors name it by its ``key``."""

    key: str
    value: int


ITEMS = [Item(f"part-{i:05d}.jsonl", i) for i in range(6)]
EXPECTED = [i * 2 for i in range(6)]


def die_once(item: Item, folder: str) -> int:
    """Kernel: the first attempt at the victim item finds no marker file, writes its pid there
    and kills its own worker process; the retry finds the marker and computes."""
    marker = Path(folder) / f"{item.key}.died"
    if item.value == VICTIM and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return item.value * 2


def always_die(item: Item, folder: str) -> int:
    """Kernel: every attempt at the victim item kills its worker, counting the attempts."""
    if item.value == VICTIM:
        with open(Path(folder) / "attempts", "a") as fh:
            fh.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return item.value * 2


def folder_state(folder: str) -> str:
    """Setup: the state of a stateful map is the marker folder."""
    return folder


def die_once_stateful(folder: str, item: Item) -> int:
    return die_once(item, folder)


@pytest.fixture(scope="module")
def ray_engine(ray_cluster):
    eng = get_engine("ray")
    assert eng.describe()["nodes"] == 2
    yield eng
    eng.close()


def _victim_pid(folder: Path) -> int:
    return int((folder / f"{ITEMS[VICTIM].key}.died").read_text())


@pytest.mark.ray
def test_a_killed_ray_worker_is_retried_and_the_map_completes(ray_engine, tmp_path):
    results = list(ray_engine.map(die_once, ITEMS, shared=str(tmp_path)))
    # what the local engine computes when nothing dies (its marker made beforehand)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / f"{ITEMS[VICTIM].key}.died").write_text("0")
    local = list(get_engine("local").map(die_once, ITEMS, shared=str(tmp_path / "local")))
    assert results == local == EXPECTED
    pid = _victim_pid(tmp_path)
    assert pid != os.getpid() and not alive(pid), "the victim's worker did not die"
    # the same map again on the same cluster: the engine is still usable after a death
    assert list(ray_engine.map(die_once, ITEMS, shared=str(tmp_path))) == EXPECTED


@pytest.mark.ray
def test_a_killed_actor_is_restarted_and_the_stateful_map_completes(ray_engine, tmp_path):
    results = list(
        ray_engine.map(die_once_stateful, ITEMS, shared=str(tmp_path), setup=folder_state)
    )
    assert results == EXPECTED
    assert not alive(_victim_pid(tmp_path))


@pytest.mark.ray
def test_a_task_whose_worker_always_dies_fails_naming_its_shard(ray_engine, tmp_path, capsys):
    def job():
        return list(ray_engine.map(always_die, ITEMS, shared=str(tmp_path)))

    with pytest.raises(SelectkitError, match=r"shard 'part-00003\.jsonl'") as info:
        job()
    assert type(info.value) is SelectkitError  # exit 1, not a usage or internal error
    attempts = (tmp_path / "attempts").read_text().split()
    assert len(attempts) >= 2, "Ray did not retry the task"
    # through the CLI's runner: exit 1 and one line naming the shard
    with pytest.raises(typer.Exit) as exit_info:
        run(job)
    assert exit_info.value.exit_code == 1
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if not line.startswith("ray: ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), err  # Ray's notices: 'ray: ...'
    assert "part-00003.jsonl" in errors[0] and "unfinished" in errors[0]
    assert "Traceback" not in err and "raylet" not in out, (out, err)  # stdout stays clean


def test_a_local_pool_worker_that_dies_fails_the_map_naming_its_shard(tmp_path):
    """No retry on the local engine, but no hang either: an error naming the shard."""
    with (
        get_engine("local", workers=2) as pool,
        pytest.raises(SelectkitError, match=r"part-00003\.jsonl"),
    ):
        list(pool.map(always_die, ITEMS, shared=str(tmp_path)))
    assert (tmp_path / "attempts").exists()
