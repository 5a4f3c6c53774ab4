"""A Ray worker process killed in the middle of a real command (issue 13 item 8): Ray restarts
it, the shard is run again, and the output is byte-identical to the local engine's."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from selectkit.embed import embed_file
from selectkit.io.dataset import staging_of

from ._ray_cluster import is_ray_process
from ._same_bytes import assert_same_output
from .conftest import RT

pytestmark = pytest.mark.ray

SHARDS = 8
COPIES = 4  # each shard holds the 3,000 real reviews 4 times (distinct ids): a few s of work


def _shards(folder: Path) -> Path:
    folder.mkdir()
    rt = pl.read_ndjson(RT).select("id", "text")
    for k in range(SHARDS):
        frame = pl.concat(
            [rt.with_columns(pl.format("s{}c{}-{}", pl.lit(k), pl.lit(c), "id").alias("id"))
             for c in range(COPIES)]
        )  # fmt: skip
        with gzip.open(folder / f"part-{k}.jsonl.gz", "wb") as fh:
            frame.write_ndjson(fh)
    return folder


def _map_workers(before: set[int]) -> list[int]:
    """Ray worker processes running a map of this job (Ray Data names them ray::Map...)."""
    found = []
    for entry in os.scandir("/proc"):
        if (
            entry.name.isdigit()
            and int(entry.name) not in before
            and is_ray_process(int(entry.name))
        ):
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmd = fh.read().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("ray::Map"):
                found.append(int(entry.name))
    return found


def test_a_worker_killed_mid_embed_is_retried_and_the_bytes_hold(tmp_path, ray_cluster):
    shards = _shards(tmp_path / "shards")
    glob = str(shards / "*.jsonl.gz")
    embed_file(glob, f"{tmp_path}/local/", fit_rows=2000)
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    cmd = [sys.executable, "-m", "selectkit", "embed", glob, "-o", f"{tmp_path}/ray/",
           "--fit-rows", "2000", "--engine", "ray"]  # fmt: skip
    run = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while run.poll() is None and time.monotonic() < deadline:
        busy = _map_workers(set())
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a map worker could be killed"
    assert run.returncode == 0, err
    assert_same_output(tmp_path / "local", tmp_path / "ray")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_mid_ray_run_exits_cleanly_and_touches_nothing(tmp_path, ray_cluster, signum):
    """ray.init replaces the driver's SIGTERM handler (sys.exit) and adds a C-level stack dump;
    selectkit's must win: exit 128 + signal, its one line, the existing output untouched."""
    shards = _shards(tmp_path / "shards")
    out = tmp_path / "emb"
    out.mkdir()
    (out / "_selectkit.json").write_text("{}")  # stands for an earlier run's folder
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    cmd = [sys.executable, "-m", "selectkit", "embed", str(shards / "*.jsonl.gz"), "-o",
           f"{out}/", "--fit-rows", "2000", "--engine", "ray"]  # fmt: skip
    idle = set(_map_workers(set()))  # earlier tests' workers: not this run's
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240

    def embedding() -> bool:  # connected (its staging folder is made after) and mapping shards
        return staging_of(out).is_dir() and bool(set(_map_workers(set())) - idle)

    while run.poll() is None and time.monotonic() < deadline and not embedding():
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before it could be stopped"
    run.send_signal(signum)
    stdout, err = run.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert run.returncode == 128 + signum, err
    lines = [line for line in err.splitlines() if not line.startswith("ray: ")]
    assert any(line.startswith(f"stopped by {name}") for line in lines), err
    assert "received at time" not in err and "Traceback" not in err, err
    assert stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
