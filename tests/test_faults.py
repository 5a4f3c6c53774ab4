"""Fault injection through the real CLI: a full disk (a real tmpfs), real signals, SIGKILL.

Every command that writes is run against an existing output; whatever happens, that output must
be byte-identical afterwards, no temporary file may be left, and the exit status and the one
stderr line must say what happened. Signals are sent to running processes at several points of
their run: to the whole process group for SIGINT and SIGHUP (what a terminal does) and to the
main process alone for SIGTERM (what a scheduler does).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import RT

pytestmark = pytest.mark.slow

OLD = b"an existing output that must survive\n"
COPIES = 8  # copies of the 3,000-row corpus in the long-running inputs
SELECTKIT = [sys.executable, "-m", "selectkit"]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of ours (or anything with .tmp) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".sk-tmp", ".tmp", ".old")))


def cli(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SELECTKIT, "-q", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------
# real inputs


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The bundled corpus, its embeddings (lab.parquet with labels), a manifest, a DSIR target."""
    root = tmp_path_factory.mktemp("faults")
    (root / "rt.jsonl").write_bytes(RT.read_bytes())
    lines = RT.read_text().splitlines()
    (root / "target.jsonl").write_text("\n".join(lines[:200]) + "\n")
    assert cli("embed", "rt.jsonl", "-o", "emb.parquet", cwd=root).returncode == 0
    assert (
        cli("embed", "rt.jsonl", "--keep", "label", "-o", "lab.parquet", cwd=root).returncode == 0
    )
    r = cli("select", "emb.parquet", "-s", "random", "-b", "300", "-o", "m.parquet", cwd=root)
    assert r.returncode == 0, r.stderr
    r = cli("cluster", "emb.parquet", "-k", "20", "-o", "cl.parquet", cwd=root)
    assert r.returncode == 0, r.stderr
    _model_zoo(root)
    r = cli("select", "zoo.parquet", "-s", "disco", "-b", "30", "-o", "anchors.parquet", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def _model_zoo(root: Path) -> None:
    """Eight real classifiers' predictions on held-out digits (DISCO's long layout)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    frames, acc = [], []
    for i, (c, n) in enumerate([(c, n) for c in (0.01, 0.1, 1.0, 10.0) for n in (60, 400)]):
        model = LogisticRegression(C=c, max_iter=300).fit(x[:n], y[:n])
        proba = model.predict_proba(x[900:]).astype("float32")
        correct = proba.argmax(axis=1) == y[900:]
        frames.append(
            pl.DataFrame(
                {
                    "model": f"m{i}",
                    "id": list(range(900, len(y))),
                    "proba": proba.tolist(),
                    "correct": correct,
                }
            )
        )
        acc.append({"model": f"m{i}", "accuracy": float(correct.mean())})
    pl.concat(frames).write_parquet(root / "zoo.parquet")
    pl.DataFrame(acc).write_parquet(root / "acc.parquet")


@pytest.fixture(scope="module")
def big(work) -> Path:
    """Long-running inputs from the real corpus: COPIES copies of it (distinct ids)."""
    rows = [json.loads(line) for line in RT.read_text().splitlines()]
    with open(work / "big.jsonl", "w") as f:
        for copy in range(COPIES):
            for row in rows:
                f.write(json.dumps({**row, "id": f"{row['id']}-{copy}"}) + "\n")
    emb = pl.read_parquet(work / "emb.parquet")
    pl.concat(
        [emb.with_columns(pl.col("id") + f"-{copy}") for copy in range(COPIES)]
    ).write_parquet(work / "big.parquet")
    r = cli("select", "big.parquet", "-s", "random", "-b", "40%", "-o", "bigm.parquet", cwd=work)
    assert r.returncode == 0, r.stderr
    return work


# ---------------------------------------------------------------------------------------------
# disk full: a real, small tmpfs


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """An 8 MiB tmpfs; the test puts its old outputs there, then fills it up."""
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


def _fill(mnt: Path, leave: int = 0) -> None:
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


# each case: the command (paths relative to `work`; OUT and OUT2 are outputs on the full disk)
DISK_FULL_CASES = {
    "embed-parquet": ["embed", "rt.jsonl", "-o", "OUT.parquet"],
    "embed-jsonl": ["embed", "rt.jsonl", "-o", "OUT.jsonl"],
    "embed-jsonl-gz": ["embed", "rt.jsonl", "-o", "OUT.jsonl.gz"],
    "cluster+centroids": [
        "cluster", "emb.parquet", "-k", "20", "-o", "OUT.parquet", "--centroids", "OUT2.parquet"
    ],
    "select": ["select", "emb.parquet", "-s", "kcenter", "-b", "2000", "-o", "OUT.parquet"],
    "select+emit-dropped": [
        "select", "emb.parquet", "cl.parquet", "-s", "semdedup", "--threshold", "0.5",
        "--emit-dropped", "OUT2.parquet", "-o", "OUT.parquet",
    ],
    "apply": ["apply", "m.parquet", "rt.jsonl", "-o", "OUT.jsonl"],
    "scores": ["scores", "lab.parquet", "--label-col", "label", "--epochs", "2", "-o", "OUT.csv"],
    "al-simulate+summary": [
        "al", "simulate", "lab.parquet", "-s", "random", "--rounds", "2", "--batch", "20",
        "-o", "OUT.parquet", "--summary", "OUT2.csv",
    ],
    "disco-fit (folder)": [
        "disco", "fit", "zoo.parquet", "acc.parquet", "--anchors", "anchors.parquet",
        "-o", "OUT.pred",
    ],
    "disco-predict": [
        "disco", "predict", "pred", "zoo.parquet", "-o", "OUT.csv",
    ],
    "dsir": [
        "select", "rt.jsonl", "-s", "dsir", "--target", "target.jsonl", "-b", "2900",
        "-o", "OUT.csv",
    ],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DISK_FULL_CASES))
def test_disk_full_leaves_existing_outputs_untouched(case, work, full_disk):
    args = DISK_FULL_CASES[case]
    outputs = [a for a in args if a.startswith(("OUT.", "OUT2."))]
    for name in outputs:
        _put_old(full_disk / name)
    if case == "disco-predict" and not (work / "pred").exists():
        fit = ["disco", "fit", "zoo.parquet", "acc.parquet", "--anchors", "anchors.parquet"]
        assert cli(*fit, "-o", "pred", cwd=work).returncode == 0
    _fill(full_disk)
    args = [str(full_disk / a) if a in outputs else a for a in args]
    r = cli(*args, cwd=work)
    assert r.returncode == 1, (case, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write"), r.stderr
    assert "No space left" in lines[0] and str(full_disk) in lines[0], lines[0]
    for name in outputs:
        assert _is_old(full_disk / name), f"{case}: {name} was changed"
    assert leftovers(full_disk) == []


def _put_old(path: Path) -> None:
    """An existing output: a file, or for a folder output (.pred) an earlier predictor's files."""
    if path.suffix == ".pred":
        path.mkdir()
        for name in ("predictor.json", "arrays.npz"):
            (path / name).write_bytes(OLD)
    else:
        path.write_bytes(OLD)


def _is_old(path: Path) -> bool:
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir())
        return files == ["arrays.npz", "predictor.json"] and all(
            (path / f).read_bytes() == OLD for f in files
        )
    return path.read_bytes() == OLD


def test_disk_full_then_room_writes_normally(work, full_disk):
    """The same command succeeds once space is freed: nothing of the failed run is in the way."""
    (full_disk / "OUT.parquet").write_bytes(OLD)
    _fill(full_disk)
    out = full_disk / "OUT.parquet"
    assert cli("embed", "rt.jsonl", "-o", out, cwd=work).returncode == 1
    (full_disk / "filler").unlink()
    r = cli("embed", "rt.jsonl", "-o", out, cwd=work)
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(out).height == 3000
    assert leftovers(full_disk) == []


# ---------------------------------------------------------------------------------------------
# signals


# long-running commands, each with its outputs (OUT, OUT2) replaced by the test
SIGNAL_CASES = {
    "embed": ["embed", "big.jsonl", "-o", "OUT.parquet"],
    "cluster": [
        "cluster", "big.parquet", "-k", "300", "--iters", "30", "-o", "OUT.parquet",
        "--centroids", "OUT2.parquet",
    ],
    "dsir": [
        "select", "big.jsonl", "-s", "dsir", "--target", "target.jsonl", "-b", "5000",
        "--workers", "2", "-o", "OUT.parquet",
    ],
    "apply": ["apply", "bigm.parquet", "big.jsonl", "-o", "OUT.jsonl.gz"],
    "al-simulate": [
        "al", "simulate", "lab.parquet", "-s", "random,margin,badge", "--rounds", "12",
        "--batch", "40", "-o", "OUT.parquet", "--summary", "OUT2.csv",
    ],
}  # fmt: skip
# SIGINT and SIGHUP go to the process group (a terminal); SIGTERM to the main process (a scheduler)
SIGNALS = {"SIGINT": (signal.SIGINT, True), "SIGTERM": (signal.SIGTERM, False)}
SIGNALS["SIGHUP"] = (signal.SIGHUP, True)
POINTS = (0.2, 0.6)  # fractions of the command's uninterrupted run time


def _outputs(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith(("OUT.", "OUT2."))]


@pytest.fixture(scope="module")
def durations(big) -> dict[str, float]:
    """Each command's uninterrupted wall time here (so the signals land mid-run)."""
    times = {}
    for case, args in SIGNAL_CASES.items():
        folder = big / f"full-{case}"
        folder.mkdir()
        args = [str(folder / a) if a in _outputs(args) else a for a in args]
        start = time.monotonic()
        r = cli(*args, cwd=big)
        times[case] = time.monotonic() - start
        assert r.returncode == 0, (case, r.stderr)
    return times


def _orphan_semaphores() -> set[str]:
    """POSIX semaphores in /dev/shm that no live process maps: leaked ones.

    Other test runs may hold live semaphores of their own at the same time; only those nobody
    uses any more are leaks.
    """
    try:
        names = {p for p in os.listdir("/dev/shm") if p.startswith(("sem.", "mp-"))}
    except OSError:
        return set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        with contextlib.suppress(OSError):
            text = maps.read_text()
            names = {n for n in names if f"/dev/shm/{n}" not in text}
    return names


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_handler(proc: subprocess.Popen, sig: int) -> None:
    """Wait until the process catches ``sig`` (its SigCgt mask in /proc), i.e. selectkit runs.

    Before that Python is still starting, and the default action would kill it before it did
    anything: safe, but not what this suite is about.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return
        caught = int(
            next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt")), 16
        )
        if caught >> (sig - 1) & 1:
            return
        time.sleep(0.01)


def _interrupt(args, folder, cwd, sig, to_group, delay):
    """Start the command, signal it after ``delay`` s; return (rc, stderr, seconds to exit)."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "selectkit", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started = time.monotonic()
    _wait_for_handler(proc, signal.SIGTERM)  # SIGINT is caught by any Python: not a sign
    time.sleep(max(0.0, delay - (time.monotonic() - started)))
    if proc.poll() is not None:
        return None
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints where it hangs
        _, err = proc.communicate()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"{args[0]} did not stop within 30 s of {sig.name}:\n{err[-4000:]}")
    took = time.monotonic() - sent
    deadline = time.monotonic() + 5
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _group_alive(proc.pid), f"worker processes outlived {args[0]} after {sig.name}"
    return proc.returncode, err, took


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("signame", sorted(SIGNALS))
@pytest.mark.parametrize("case", sorted(SIGNAL_CASES))
def test_signal_stops_cleanly(case, signame, point, big, durations, tmp_path):
    sig, to_group = SIGNALS[signame]
    names = _outputs(SIGNAL_CASES[case])
    args = [str(tmp_path / a) if a in names else a for a in SIGNAL_CASES[case]]
    outputs = [tmp_path / name for name in names]
    sems = _orphan_semaphores()
    delay = point * durations[case]
    for _attempt in range(3):  # a shared machine may run faster than when it was timed
        for path in outputs:
            path.write_bytes(OLD)
        result = _interrupt(args, tmp_path, big, sig, to_group, delay)
        if result is not None and not _ran_to_the_end(result, sig, outputs):
            break
        delay /= 3
    else:
        pytest.fail(f"{case} always finished before {signame} took effect")
    rc, err, took = result
    assert rc == 128 + sig, (case, signame, rc, err)
    assert took < 10, f"{case} took {took:.1f} s to stop after {signame}"
    lines = err.strip().splitlines()
    assert lines == [f"stopped by {signame}; no output was written or changed"], err
    for path in outputs:
        assert path.read_bytes() == OLD, f"{case}/{signame}: {path.name} changed"
    assert leftovers(tmp_path) == []
    leaked = _orphan_semaphores() - sems
    assert not leaked, f"{case}/{signame} leaked {leaked}"


def _ran_to_the_end(result, sig, outputs) -> bool:
    """Whether the signal only landed after the work was done; then every output must be new.

    Late signals: exit 0 (the run ended first), the signal's own status (it came while Python
    shut down, which restores the default handlers), or our line saying the outputs are complete.
    """
    rc, err, _ = result
    late = rc in (0, -sig) or "after the run wrote" in err
    if late:
        assert all(p.read_bytes() != OLD for p in outputs), (rc, err)
        assert leftovers(outputs[0].parent) == []
    return late


def test_sigkill_leftovers_are_cleaned_by_the_next_run(big, tmp_path):
    """SIGKILL cannot be caught: the temporary file stays; the next run removes it and succeeds."""
    out = tmp_path / "emb.parquet"
    out.write_bytes(OLD)
    proc = subprocess.Popen(
        [*SELECTKIT, "-q", "embed", "big.jsonl", "-o", str(out)],
        cwd=big,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = leftovers(tmp_path)
    assert stale, "the killed run should have left its temporary file"
    assert out.read_bytes() == OLD
    r = cli("embed", "rt.jsonl", "-o", out, cwd=big)
    assert r.returncode == 0, r.stderr
    assert leftovers(tmp_path) == [] and pl.read_parquet(out).height == 3000


def test_live_writers_temporaries_are_left_alone(work, tmp_path):
    """A temporary of a process that still runs is not stale, even for the same output."""
    out = tmp_path / "emb.parquet"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".emb.parquet.{sleeper.pid}-abcd.sk-tmp"
        live.write_bytes(b"partial")
        dead = tmp_path / ".emb.parquet.999999999-abcd.sk-tmp"
        dead.write_bytes(b"partial")
        assert cli("embed", "rt.jsonl", "-o", out, cwd=work).returncode == 0
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------------------
# exit codes


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([], 2),
        (["select", "-", "-", "-s", "random", "-b", "1", "-o", "x.parquet"], 2),
        (["select", "emb.parquet", "-s", "random", "-b", "0", "-o", "x.parquet"], 2),
        (["select", "emb.parquet", "-s", "random", "-b", "-5", "-o", "x.parquet"], 2),
        (["select", "emb.parquet", "-s", "random", "-b", "9999", "-o", "x.parquet"], 1),
        (["embed", "missing.jsonl", "-o", "x.parquet"], 1),
    ],
)
def test_exit_codes(args, code, work):
    r = subprocess.run([*SELECTKIT, *args], cwd=work, capture_output=True, text=True, timeout=120)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    assert not (work / "x.parquet").exists()


# the output on the full disk is written after the other one: the other is staged, then dropped
GROUP_CASES = {
    "cluster": ["cluster", "emb.parquet", "-k", "20", "-o", "ROOM", "--centroids", "FULL"],
    "select": [
        "select", "emb.parquet", "cl.parquet", "-s", "semdedup", "--threshold", "0.5",
        "--emit-dropped", "ROOM", "-o", "FULL",
    ],
    "al-simulate": [
        "al", "simulate", "lab.parquet", "-s", "random", "--rounds", "2", "--batch", "20",
        "-o", "ROOM", "--summary", "FULL",
    ],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GROUP_CASES))
def test_outputs_of_one_run_commit_together(case, work, full_disk, tmp_path):
    """One output fits (another disk), the next does not: neither is replaced."""
    room, full = tmp_path / "room.parquet", full_disk / "full.parquet"
    if case == "al-simulate":
        full = full_disk / "full.csv"
    for path in (room, full):
        path.write_bytes(OLD)
    _fill(full_disk)
    args = [
        str(room) if a == "ROOM" else str(full) if a == "FULL" else a for a in GROUP_CASES[case]
    ]
    r = cli(*args, cwd=work)
    assert r.returncode == 1 and f"cannot write '{full}'" in r.stderr, r.stderr
    assert room.read_bytes() == OLD and full.read_bytes() == OLD
    assert leftovers(tmp_path) == [] and leftovers(full_disk) == []
