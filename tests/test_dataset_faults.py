"""Dataset folders under real faults (issue 13 item 8, the io side): real signals sent to a real
writer process, SIGKILL, and a real, small tmpfs that fills up in the middle of a part.

A small driver (below) writes a dataset folder from the real corpus the way a command does:
plan, ``todo``, one ``write_part`` per shard, ``done``, ``commit``. Whatever stops it, the old
folder must be byte-identical afterwards, the staging folder must hold only whole parts and a
progress record, and ``--resume`` must finish the run to the bytes of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from selectkit.io.dataset import PROGRESS_NAME, DatasetRecord, staging_of
from selectkit.io.tables import fingerprint_file
from tests.conftest import REPO, RT

pytestmark = pytest.mark.slow

DRIVER = r'''
"""Write a dataset folder from the corpus, as a command would: python driver.py OUT [--resume]
[--slow S] (sleep S seconds per batch of a part, so that a signal lands inside a part)."""
import sys, time
import polars as pl
from selectkit import interrupts
from selectkit.errors import SelectkitError, cli_messages
from selectkit.io import DatasetWriter, Provenance, write_part
from selectkit.io.tables import fingerprint_file

class Shard:
    def __init__(self, index, key, lo, hi):
        self.index, self.key, self.lo, self.hi = index, key, lo, hi

args = sys.argv[1:]
out, resume = args[0], "--resume" in args
slow = float(args[args.index("--slow") + 1]) if "--slow" in args else 0.0
rows = pl.read_ndjson(sys.argv[0].replace("driver.py", "corpus.jsonl"))
step = 1000
shards = [Shard(i, f"corpus.jsonl:{lo}-{lo + step}", lo, lo + step)
          for i, lo in enumerate(range(0, rows.height, step))]
identity = {"inputs": [fingerprint_file(sys.argv[0].replace("driver.py", "corpus.jsonl"))],
            "params": {"step": step}}

def frames(shard):
    part = rows.slice(shard.lo, shard.hi - shard.lo).with_columns(
        n_chars=pl.col("text").str.len_chars())
    for batch in part.iter_slices(100):
        if slow:
            time.sleep(slow)
        yield batch

interrupts.install()
try:
    with cli_messages(), DatasetWriter(out, command="driver", identity=identity,
                                       resume=resume) as w:
        todo = w.todo(shards)
        print(f"todo {len(todo)}", flush=True)
        for shard in todo:
            prov = Provenance("driver", params={"shard": shard.key}, seed=0)
            w.done(write_part(w.staging, shard, frames(shard), prov))
            print(f"done {shard.index}", flush=True)
        w.commit(Provenance("driver", params=identity["params"], seed=0))
except interrupts.Interrupted as exc:
    sys.exit(exc.exit_code)
except SelectkitError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
'''

COPIES = 4  # the corpus four times over (distinct ids): 12 parts of 1,000 rows


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dsfaults")
    lines = RT.read_text().splitlines()
    with open(root / "corpus.jsonl", "w") as f:
        for copy in range(COPIES):
            for line in lines:
                row = json.loads(line)
                f.write(json.dumps({**row, "id": f"{row['id']}-{copy}"}) + "\n")
    (root / "driver.py").write_text(DRIVER)
    return root / "driver.py"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def drive(driver: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(driver), str(out), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )


@pytest.fixture(scope="module")
def reference(driver, tmp_path_factory) -> dict[str, bytes]:
    """The bytes of an uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    r = drive(driver, out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "todo 12"
    return snapshot(out)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


OLD = {"part-00000.parquet": b"an old part that must survive\n", "_selectkit.json": b"{}\n"}


def put_old(folder: Path) -> None:
    folder.mkdir()
    for name, data in OLD.items():
        (folder / name).write_bytes(data)


def check_staging(out: Path) -> DatasetRecord:
    """The staging folder after a fault: a progress record, and only whole parts; return the
    progress record. Temporaries of a SIGKILLed writer may remain (the next run removes them)."""
    staging = staging_of(out)
    progress = DatasetRecord.from_json((staging / PROGRESS_NAME).read_text())
    assert not progress.complete
    for part in progress.parts:  # every recorded part is there, whole and the same
        assert fingerprint_file(staging / part.name) == part.fingerprint
        assert pq.ParquetFile(staging / part.name).metadata.num_rows == part.rows == 1000
    for path in staging.glob("part-*.parquet"):  # recorded or not: never a partial part
        assert pq.ParquetFile(path).metadata.num_rows == 1000
    return progress


def start(driver: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(driver), str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )


def wait_for_parts(proc: subprocess.Popen, out: Path, n: int) -> None:
    """Read the driver's progress until ``n`` parts are done and the next one is being written
    (its temporary file is in the staging folder)."""
    deadline = time.monotonic() + 120
    done = 0
    while done < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"the driver ended early: {proc.wait()} {proc.stderr.read()}"
        done += line.startswith("done ")
    while not staged_temporaries(out) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # a few batches into the part


def staged_temporaries(out: Path) -> list[str]:
    return sorted(p.name for p in staging_of(out).iterdir() if p.name.endswith(".sk-tmp"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_part_keeps_the_old_folder_and_resume_finishes_it(
    sig, driver, reference, tmp_path
):
    out = tmp_path / "ds"
    put_old(out)
    proc = start(driver, out, "--slow", "0.05")
    wait_for_parts(proc, out, 3)
    assert staged_temporaries(out), "the signal should land while a part is being written"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert snapshot(out) == OLD
    progress = check_staging(out)
    assert len(progress.parts) >= 3
    assert staged_temporaries(out) == []  # the part being written was removed, not left half
    r = drive(driver, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"todo {12 - len(progress.parts)}"
    assert snapshot(out) == reference
    assert not staging_of(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_sigkill_mid_part_then_resume(driver, reference, tmp_path):
    out = tmp_path / "ds"
    put_old(out)
    proc = start(driver, out, "--slow", "0.05")
    wait_for_parts(proc, out, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == OLD
    progress = check_staging(out)
    assert staged_temporaries(out), "SIGKILL cannot clean up: the part's temporary stays"
    r = drive(driver, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"todo {12 - len(progress.parts)}"
    assert snapshot(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_sigkill_then_a_run_without_resume_starts_over(driver, reference, tmp_path):
    out = tmp_path / "ds"
    proc = start(driver, out, "--slow", "0.05")
    wait_for_parts(proc, out, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    r = drive(driver, out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "todo 12"
    assert r.stderr.strip().splitlines() == [
        "warning: discarding an unfinished run in '.ds.sk-partial'; use --resume to continue it"
    ]
    assert snapshot(out) == reference


def test_resume_with_other_inputs_is_refused(driver, tmp_path):
    out = tmp_path / "ds"
    proc = start(driver, out, "--slow", "0.05")
    wait_for_parts(proc, out, 1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    corpus = driver.with_name("corpus.jsonl")
    original = corpus.read_bytes()
    try:
        corpus.write_bytes(original.replace(b'"id": "rt-00000-0"', b'"id": "rt-x"', 1))
        r = drive(driver, out, "--resume")
    finally:
        corpus.write_bytes(original)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot resume '{out}' from "), r.stderr
    assert "input #1 changed (fingerprint" in lines[0]
    assert "drop --resume to start over, or restore that run's inputs" in lines[0]


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A real 8 MiB tmpfs (needs root, as tests/test_faults.py's)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> None:
    st = os.statvfs(mnt)
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def test_a_full_disk_mid_run_then_resume(driver, reference, small_disk):
    out = small_disk / "ds"
    put_old(out)
    part = len(reference["part-00000.parquet"])
    _fill(small_disk, leave=int(2.5 * part))  # room for two parts and a half
    r = drive(driver, out)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: cannot write '{out}' ("), lines[0]
    assert "No space left on device" in lines[0] and ", writing part-000" in lines[0], lines[0]
    assert lines[0].endswith(
        f"free some space or write elsewhere. The existing '{out}' is unchanged; the finished "
        "parts are kept for --resume"
    )
    assert snapshot(out) == OLD
    progress = check_staging(out)
    assert 1 <= len(progress.parts) <= 3
    assert staged_temporaries(out) == []  # the part that did not fit is gone
    (small_disk / "filler").unlink()
    r = drive(driver, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"todo {12 - len(progress.parts)}"
    assert snapshot(out) == reference
    assert sorted(p.name for p in small_disk.iterdir()) == ["ds"]
