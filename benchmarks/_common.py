"""Shared helpers for the benchmark scripts: environment report, measured child runs, tables.

Not part of selectkit. Every heavy measurement runs in its own child process so that its peak
resident memory (``ru_maxrss`` from ``os.wait4``, i.e. the kernel's own high-water mark for that
one child, not a sampled value) is not polluted by the parent or by other runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"

# Environment variables that change which BLAS kernel runs or how many threads it uses.
ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "POLARS_MAX_THREADS",
)


def _lscpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS / OpenMP libraries (kernel = 'architecture')."""
    from threadpoolctl import threadpool_info

    rows = []
    for lib in threadpool_info():
        rows.append(
            {
                "lib": Path(lib.get("filepath", "?")).name,
                "api": lib.get("internal_api"),
                "version": lib.get("version"),
                "kernel": lib.get("architecture"),
                "threads": lib.get("num_threads"),
                "threading_layer": lib.get("threading_layer"),
            }
        )
    return rows


def source_fingerprint() -> str:
    """blake2b of every selectkit/*.py in the work tree: shows whether the code changed mid-run."""
    import hashlib

    h = hashlib.blake2b(digest_size=8)
    for path in sorted((REPO / "selectkit").rglob("*.py")):
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "selectkit"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + (" (selectkit/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def env_report() -> dict[str, Any]:
    """Machine, library versions, BLAS kernels and the env vars that steer BLAS."""
    import numpy

    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions: dict[str, str] = {"python": platform.python_version(), "numpy": numpy.__version__}
    for mod in ("selectkit", "polars", "sklearn", "faiss", "skactiveml", "threadpoolctl"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # not installed or no __version__
            versions[mod] = "n/a"
    # Import faiss + sklearn so their BLAS / OpenMP show up too.
    for mod in ("faiss", "sklearn.metrics"):
        with contextlib.suppress(Exception):
            __import__(mod)
    return {
        "cpu": _lscpu_model(),
        "cores": os.cpu_count(),
        "mem_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "versions": versions,
        "env": {k: os.environ.get(k, "<unset>") for k in ENV_VARS},
        "blas": blas_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "git": git_state(),
        "selectkit_source": source_fingerprint(),
    }


def print_env(rep: dict[str, Any]) -> None:
    print(
        f"machine : {rep['cpu']}, {rep['cores']} cores, {rep['mem_gib']} GiB RAM, linux {rep['kernel']}"
    )
    print(
        f"code    : git {rep.get('git')}, selectkit source fingerprint {rep.get('selectkit_source')}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in rep["versions"].items()))
    print("env     : " + ", ".join(f"{k}={v}" for k, v in rep["env"].items()))
    for b in rep["blas"]:
        print(
            f"blas    : {b['lib']} ({b['api']} {b['version']}, kernel={b['kernel']}, "
            f"threads={b['threads']}, layer={b['threading_layer']})"
        )


def run_child(
    cmd: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    sample_every: float = 0.25,
) -> dict[str, Any]:
    """Run ``cmd``; return wall time, exact peak RSS, a sampled RSS trace, output and rc.

    The command runs under ``_launch.py`` (see there why), in its own process group, and is
    killed (SIGKILL to the group) after ``timeout`` seconds. ``peak_rss_mib`` is the kernel's
    high-water mark of the command's resident memory (``ru_maxrss`` via ``os.wait4``).
    """
    import tempfile

    import psutil

    fd, res_path = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    full = [sys.executable, str(HERE / "_launch.py"), res_path, "--", *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
    )
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    t_out = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    t_out.start()
    t_err.start()

    trace: list[tuple[float, float]] = []  # (seconds since start, RSS MiB of the command)
    timed_out = False
    try:
        launcher = psutil.Process(proc.pid)
    except psutil.Error:
        launcher = None
    while proc.poll() is None:
        elapsed = time.perf_counter() - t0
        if elapsed > timeout:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            break
        if launcher is not None:
            try:
                rss = sum(c.memory_info().rss for c in launcher.children(recursive=True))
                if rss:
                    trace.append((round(elapsed, 2), round(rss / 2**20, 1)))
            except psutil.Error:
                pass
        time.sleep(sample_every)
    proc.wait()
    wall = time.perf_counter() - t0
    t_out.join()
    t_err.join()
    try:
        with open(res_path) as fh:
            usage = json.load(fh)
    except (OSError, ValueError):
        usage = {
            "rc": proc.returncode,
            "wall_s": wall,
            "peak_rss_mib": float("nan"),
            "user_s": float("nan"),
            "sys_s": float("nan"),
        }
    finally:
        with contextlib.suppress(OSError):
            os.unlink(res_path)
    return {
        "cmd": cmd,
        "rc": -9 if timed_out else usage["rc"],
        "timed_out": timed_out,
        "wall_s": usage["wall_s"] if not timed_out else wall,
        "peak_rss_mib": usage["peak_rss_mib"],
        "sampled_peak_rss_mib": max((r for _, r in trace), default=float("nan")),
        "user_s": usage["user_s"],
        "sys_s": usage["sys_s"],
        "rss_trace": trace,
        "stdout": "".join(out_chunks),
        "stderr": "".join(err_chunks),
    }


def children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def fmt(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:
            return "-"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text (also valid Markdown) table."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=False)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def write_json(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path


def python_exe() -> str:
    return sys.executable


def selectkit_exe() -> list[str]:
    """The selectkit console script next to this interpreter (the CLI users run)."""
    cand = Path(sys.executable).with_name("selectkit")
    if cand.exists():
        return [str(cand)]
    return [sys.executable, "-m", "selectkit"]


def digits_split(seed: int):
    """scikit-learn's digits scaled to [0, 1], split 70/30 stratified by class with ``seed``:
    (x_train, x_test, y_train, y_test)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.3, stratify=d.target, random_state=seed)


def measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` under the small launcher (``_launch.py``: a big parent would inflate the
    child's ru_maxrss) with the repository on PYTHONPATH; return (wall seconds, peak RSS MiB)
    of that child alone. A failed command ends the benchmark."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "r.json"
        launcher = [sys.executable, str(HERE / "_launch.py"), str(result), "--"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([*launcher, *cmd], env=env, check=True)
        got = json.loads(result.read_text())
    if got["rc"] != 0:
        raise SystemExit(f"{cmd} failed: {got}")
    return got["wall_s"], got["peak_rss_mib"]
