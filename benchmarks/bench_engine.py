"""The execution engines side by side: `selectkit embed`, `cluster`, `select --strategy dsir` and
`apply` with `--engine local`, Ray with one worker and Ray across two nodes, on the same sharded
real-text corpus, in one run; same output bytes checked, driver memory measured at two sizes.

Corpus: ``make_memory_corpus.py`` (Debian dictionaries and fortunes, ~460 characters a document;
the 1M file repeats the ~172k distinct documents with distinct ids), split into ``--shards``
contiguous ``.jsonl.gz`` files so that Ray has parallel work (a JSONL file is one shard). The
DSIR target is the Jargon File (``memory_target.jsonl``).

Engines:

* ``local``: ``--engine local`` (the default engine: in process; DSIR's own process pool with
  one worker per core; every core for BLAS);
* ``ray1``: a Ray cluster of one node with ``--num-cpus 1`` started by this script
  (``ray start --head``), the CLI connecting with ``--ray-address``;
* ``ray2``: a head and a worker node of one CPU each on this machine (two ``ray start``).

Each Ray cluster is started for one run and stopped after it, so no Ray process competes with
the local runs; it is stopped by signalling only the processes this script started (each
``ray start`` runs in its own session; every process of that session is ours), never by
``ray stop``, which would stop other people's clusters on the machine too. Starting a cluster is
not part of the measured time; connecting to it and starting its worker processes is (every new
driver gets fresh workers on a real cluster too).

Measured per run: wall time of the CLI process (start to exit), docs/s or rows/s, the driver's
peak RSS (``ru_maxrss`` of the CLI process via ``_launch.py``: with ``--engine ray`` the CLI *is*
the driver, the workers are the raylets' children; with the local engine's process pool the
figure is the largest of the CLI and its pool workers), a sampled RSS of the CLI process alone,
and, for Ray, the CPU seconds of each node's worker processes (sampled; shows that both nodes
worked). Outputs are compared across engines: the data of every Parquet file (schema and
columns, metadata dropped) and its provenance, and every JSON record, minus what may differ by
engine (``timings``, ``engine``, ``argv``, keys ending in ``_s``).

Inputs for the later commands are the local engine's outputs (cluster reads local's embeddings,
apply local's DSIR manifest), so each command is compared on the same input.

Usage: python benchmarks/bench_engine.py [--sizes 100000,1000000] [--shards 8]
       [--commands embed,cluster,dsir,apply] [--engines local,ray1,ray2] [--k 256]
       [--fit-sample 262144] [--iters 25] [--budget-tokens 10000000] [--pythonpath DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import REPO, env_report, fmt, print_env, table, write_json

HERE = Path(__file__).resolve().parent
COMMANDS = ("embed", "cluster", "dsir", "apply")
ENGINES = ("local", "ray1", "ray2")
# provenance keys that may differ between engines (ENGINE-SPEC / issue 13 item 7)
VOLATILE = frozenset({"timings", "engine", "argv"})
RAY_ENV = {
    "RAY_memory_usage_threshold": "0.98",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    # a ~/.ray/auth_token left by anyone turns token authentication on for `ray start`; these
    # throwaway clusters listen on this machine only and run without it
    "RAY_AUTH_MODE": "disabled",
}


# ---------------------------------------------------------------------------------------------
# inputs


def corpus(data: Path, rows: int) -> Path:
    """``memory_<rows>.jsonl``, built by make_memory_corpus.py when missing."""
    path = data / f"memory_{rows}.jsonl"
    if not path.exists() or not (data / "memory_target.jsonl").exists():
        script = str(HERE / "make_memory_corpus.py")
        subprocess.run(
            [sys.executable, script, "--out", str(data), "--sizes", str(rows)], check=True
        )
    return path


def sharded(data: Path, rows: int, shards: int) -> tuple[str, list[Path]]:
    """The corpus split into ``shards`` contiguous ``.jsonl.gz`` files; (quoted glob, files)."""
    src = corpus(data, rows)
    folder = data / f"shards_{rows}_{shards}"
    files = [folder / f"docs-{i:03d}.jsonl.gz" for i in range(shards)]
    if not all(f.exists() for f in files):
        folder.mkdir(parents=True, exist_ok=True)
        per = -(-rows // shards)
        with open(src, encoding="utf-8") as fh:
            for f in files:
                tmp = f.with_suffix(".tmp")
                with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as out:
                    for _ in range(per):
                        line = fh.readline()
                        if not line:
                            break
                        out.write(line)
                tmp.replace(f)
    return str(folder / "docs-*.jsonl.gz"), files


def tiled_vectors(data: Path, src: Path, rows: int, shards: int) -> str:
    """``rows`` vectors as ``shards`` Parquet files: the embeddings of the dataset folder ``src``
    (a smaller corpus's local embed output) repeated in order with distinct ids
    ``"<copy>/<id>"``, as make_memory_corpus.py repeats documents. For when embedding the big
    corpus itself does not fit the run's time: the vectors stay real. Returns the quoted glob."""
    import polars as pl

    folder = data / f"vectors_{rows}_{shards}"
    files = [folder / f"vec-{i:03d}.parquet" for i in range(shards)]
    if not all(f.exists() for f in files):
        folder.mkdir(parents=True, exist_ok=True)
        base = pl.concat(
            [
                pl.read_parquet(p, columns=["id", "embedding"])
                for p in sorted(src.glob("part-*.parquet"))
            ]
        )
        copies = -(-rows // base.height)
        tiled = pl.concat(
            [
                base.with_columns((pl.lit(f"{c}/") + pl.col("id").cast(pl.String)).alias("id"))
                for c in range(copies)
            ]
        ).head(rows)
        per = -(-rows // shards)
        for i, f in enumerate(files):
            tmp = f.with_suffix(".tmp")
            tiled.slice(i * per, per).write_parquet(tmp, row_group_size=16384)
            tmp.replace(f)
    return str(folder / "vec-*.parquet")


def cluster_input(
    data: Path, rows: int, smaller: list[int], results: list[dict[str, Any]], shards: int
) -> str:
    """What cluster reads at ``rows``: the local engine's embeddings of that size when embed ran
    before it, else the largest smaller size's, repeated to ``rows`` vectors."""

    def local_embed(n: int) -> Path | None:
        done = any(
            (r["rows"], r["command"], r["engine"], r.get("rc")) == (n, "embed", "local", 0)
            for r in results
        )
        return data / "runs" / str(n) / "local" / "embed" / "emb" if done else None

    own = local_embed(rows)
    if own is not None:
        return f"{own}/"
    for n in sorted(smaller, reverse=True):
        src = local_embed(n)
        if src is not None:
            glob = tiled_vectors(data, src, rows, shards)
            print(f"  cluster input at {rows:,}: {glob} ({src} repeated)", flush=True)
            return glob
    return f"{data / 'runs' / str(rows) / 'local' / 'embed' / 'emb'}/"  # missing: cluster says so


# ---------------------------------------------------------------------------------------------
# Ray clusters of our own


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (zombies excluded), from /proc."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] != b"Z" and int(fields[3]) == sid:
            out.append(int(entry.name))
    return out


class RayCluster:
    """``nodes`` Ray nodes of one CPU each on this machine, started by ``ray start``; every
    process of theirs is found by session id and stopped by pid."""

    def __init__(self, nodes: int, port: int, store_bytes: int, pythonpath: str, log: Path) -> None:
        self.nodes, self.port = nodes, port
        self.address = f"127.0.0.1:{port}"
        self.temp = Path(tempfile.mkdtemp(prefix=f"rb{port}-", dir="/tmp"))
        self.sids: list[int] = []
        self.log = log
        ray = str(Path(sys.executable).with_name("ray"))
        self.env = {**os.environ, **RAY_ENV, "PYTHONPATH": pythonpath}
        self.env.pop("RAY_ADDRESS", None)
        common = ["--num-cpus", "1", "--object-store-memory", str(store_bytes)]
        head = [
            ray,
            "start",
            "--head",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--temp-dir",
            str(self.temp),
            "--include-dashboard=false",
            "--disable-usage-stats",
            *common,
        ]
        t0 = time.perf_counter()
        try:
            self._start(head)
            for _ in range(nodes - 1):
                self._start(
                    [
                        ray,
                        "start",
                        "--address",
                        self.address,
                        "--node-ip-address",
                        "127.0.0.1",
                        *common,
                    ]
                )
            if nodes > 1:  # the head is up once `ray start --head` returns; the others join
                self._wait_nodes()
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - t0

    def _start(self, cmd: list[str]) -> None:
        with open(self.log, "a") as fh:
            proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
            self.sids.append(proc.pid)  # its own session: sid = its pid
            rc = proc.wait(timeout=180)
        if rc != 0:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({rc}); see {self.log}")

    def _wait_nodes(self, timeout: float = 120.0) -> None:
        """Until ``ray status`` (via a tiny driver) sees all nodes alive."""
        probe = (
            "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, "
            "include_dashboard=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(
                [sys.executable, "-c", probe, self.address],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
            ).stdout.strip()
            if out.isdigit() and int(out) >= self.nodes:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.nodes} nodes not alive after {timeout} s ({out!r})")
            time.sleep(1.0)

    def pids(self) -> list[int]:
        return sorted(p for sid in self.sids for p in _session_pids(sid))

    def raylets(self) -> list[int]:
        """Pids of the raylets (one per node): their children are the worker processes."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    found.append(pid)
        return found

    def stop(self, grace_s: float = 5.0) -> list[int]:
        """SIGTERM every process of our sessions, SIGKILL those alive ``grace_s`` later."""
        ours = self.pids()
        for pid in ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and self.pids():
            time.sleep(0.2)
        killed = self.pids()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)
        return killed


class ClusterCpu:
    """Samples, every ``every`` s, the CPU seconds that the cluster's processes spend during a
    run: each node's task workers (the raylet's ``ray::`` children, Ray Data's own actors
    included) and Ray's services (GCS, raylets, agents, monitors), as deltas from the run's
    start. A lower bound: a process's last ``every`` s before it exits are not seen."""

    def __init__(self, cluster: RayCluster | None, every: float = 0.5) -> None:
        self.cluster, self.every = cluster, every
        self.workers: dict[int, dict[int, float]] = {}  # raylet -> worker pid -> cpu s
        self.services: dict[int, float] = {}
        self.base: dict[int, float] = {}
        self._raylets: list[int] = []
        self.rss_peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _cpu(proc) -> float:
        times = proc.cpu_times()
        return times.user + times.system

    def __enter__(self) -> ClusterCpu:
        import psutil

        if self.cluster is None:
            return self
        self._raylets = self.cluster.raylets()
        for pid in self.cluster.pids():
            with contextlib.suppress(psutil.Error):
                self.base[pid] = self._cpu(psutil.Process(pid))
        self._thread.start()
        return self

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss, in_workers = 0, set()
            for raylet in self._raylets:
                try:
                    children = psutil.Process(raylet).children(recursive=True)
                except psutil.Error:
                    continue
                seen = self.workers.setdefault(raylet, {})
                for child in children:
                    try:
                        if not child.cmdline()[0].startswith("ray::") or "Agent" in child.name():
                            continue
                        in_workers.add(child.pid)
                        used = self._cpu(child) - self.base.get(child.pid, 0.0)
                        seen[child.pid] = max(seen.get(child.pid, 0.0), used)
                        rss += child.memory_info().rss
                    except (psutil.Error, IndexError):
                        continue
            for pid in self.cluster.pids():
                if pid in in_workers:
                    continue
                with contextlib.suppress(psutil.Error):
                    used = self._cpu(psutil.Process(pid)) - self.base.get(pid, 0.0)
                    self.services[pid] = max(self.services.get(pid, 0.0), used)
            self.rss_peak_mib = max(self.rss_peak_mib, rss / 2**20)
            self._stop.wait(self.every)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def per_node(self) -> list[float]:
        """CPU seconds of each node's task workers, head first."""
        return [round(sum(self.workers.get(r, {}).values()), 1) for r in self._raylets]

    def services_s(self) -> float:
        return round(sum(self.services.values()), 1)


# ---------------------------------------------------------------------------------------------
# one measured run


def launch(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path) -> dict[str, Any]:
    """``cmd`` under _launch.py (exact ru_maxrss of the CLI process), run in ``cwd`` (not the
    repository: ``python -m`` would import the checkout's selectkit from the current folder);
    also samples the RSS of the CLI process alone (psutil, 0.25 s)."""
    import psutil

    fd, res_path = tempfile.mkstemp(prefix="bench-rusage-", suffix=".json")
    os.close(fd)
    full = [sys.executable, str(HERE / "_launch.py"), res_path, "--", *cmd]
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out_f, stderr=err_f, env=env, cwd=cwd, start_new_session=True, text=True
        )
        driver_peak, timed_out = 0.0, False
        try:
            while proc.poll() is None:
                if time.perf_counter() - t0 > timeout:
                    timed_out = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    break
                try:
                    for child in psutil.Process(proc.pid).children():  # the CLI process
                        driver_peak = max(driver_peak, child.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
                time.sleep(0.25)
        except BaseException:  # stopped: the command (in its own session) goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        proc.wait()
        wall = time.perf_counter() - t0
        out_f.seek(0), err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    try:
        usage = json.loads(Path(res_path).read_text())
    except (OSError, ValueError):
        usage = {"rc": proc.returncode, "wall_s": wall, "peak_rss_mib": float("nan")}
    finally:
        with contextlib.suppress(OSError):
            os.unlink(res_path)
    return {
        "cmd": cmd,
        "rc": -9 if timed_out else usage["rc"],
        "timed_out": timed_out,
        "wall_s": wall if timed_out else usage["wall_s"],
        "peak_rss_mib": usage.get("peak_rss_mib"),
        "driver_sampled_peak_mib": round(driver_peak, 1),
        "user_s": usage.get("user_s"),
        "sys_s": usage.get("sys_s"),
        "stdout": stdout[-20000:],
        "stderr": stderr[-4000:],
    }


def command(name: str, inputs: dict[str, str], out: Path, args: argparse.Namespace) -> list[str]:
    """The CLI call for ``name``, writing under ``out`` (engine options added by the caller)."""
    cli = [sys.executable, "-m", "selectkit", "-q"]
    if name == "embed":
        return [*cli, "embed", inputs["glob"], "-o", f"{out}/emb/", "--json"]
    if name == "cluster":
        return [
            *cli,
            "cluster",
            inputs["emb"],
            "-k",
            str(args.k),
            "--fit-sample",
            str(args.fit_sample),
            "--iters",
            str(args.iters),
            "--tol",
            "0",  # exactly --iters Lloyd iterations
            "-o",
            f"{out}/clusters/",
            "--centroids",
            f"{out}/centroids.parquet",
            "--json",
        ]
    if name == "dsir":
        return [
            *cli,
            "select",
            inputs["glob"],
            "--strategy",
            "dsir",
            "--target",
            inputs["target"],
            "--budget-tokens",
            str(args.budget_tokens),
            "-o",
            f"{out}/manifest.parquet",
            "--json",
        ]
    return [*cli, "apply", inputs["manifest"], inputs["glob"], "-o", f"{out}/selected/", "--json"]


def output_paths(name: str, out: Path) -> list[Path]:
    return {
        "embed": [out / "emb"],
        "cluster": [out / "clusters", out / "centroids.parquet"],
        "dsir": [out / "manifest.parquet"],
        "apply": [out / "selected"],
    }[name]


def rows_of(name: str, summary: dict[str, Any], docs: int) -> int:
    """What the throughput counts: documents read (embed, dsir, apply) or rows assigned."""
    return docs


# ---------------------------------------------------------------------------------------------
# same bytes


def _strip(value: Any) -> Any:
    """``value`` without the keys that may differ between engines, recursively."""
    if isinstance(value, dict):
        return {
            k: _strip(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _parquet_digest(path: Path) -> tuple[str, str]:
    """(digest of the data: schema without metadata + every column, digest of the provenance
    minus what may differ by engine)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tbl = pq.read_table(path)
    meta = tbl.schema.metadata or {}
    prov = meta.get(b"selectkit")
    tbl = tbl.replace_schema_metadata(None).combine_chunks()
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, tbl.schema) as writer:
        writer.write_table(tbl)
    data = hashlib.blake2b(sink.getvalue(), digest_size=12).hexdigest()
    stripped = _strip(json.loads(prov)) if prov else None
    provd = hashlib.blake2b(
        json.dumps(stripped, sort_keys=True).encode(), digest_size=12
    ).hexdigest()
    return data, provd


def digest(paths: list[Path]) -> dict[str, Any]:
    """Per output file: data and provenance digests (Parquet) or a stripped-JSON digest."""
    files: dict[str, Any] = {}
    for root in paths:
        if not root.exists():
            files[root.name] = "missing"
            continue
        items = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in items:
            if not path.is_file():
                continue
            rel = str(path.relative_to(root.parent))
            if path.suffix == ".parquet":
                data, prov = _parquet_digest(path)
                files[rel] = {"data": data, "provenance": prov}
            elif path.suffix == ".json":
                try:
                    text = json.dumps(_strip(json.loads(path.read_text())), sort_keys=True)
                except ValueError:
                    text = path.read_text()
                files[rel] = {"json": hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}
            else:
                files[rel] = {
                    "bytes": hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
                }
    return files


def compare(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Whether ``other``'s outputs match ``ref``'s: data, provenance, records; what differs."""
    diffs = []
    for name in sorted(set(ref) | set(other)):
        a, b = ref.get(name), other.get(name)
        if a != b:
            diffs.append({"file": name, "ref": a, "other": b})
    data_same = not any(
        d["ref"] is None
        or d["other"] is None
        or not isinstance(d["ref"], dict)
        or d["ref"].get("data") != (d["other"] or {}).get("data")
        or "json" in d["ref"]
        or "bytes" in d["ref"]
        for d in diffs
    )
    return {"identical": not diffs, "data_identical": data_same, "diffs": diffs[:10]}


# ---------------------------------------------------------------------------------------------
# the run


def run_one(
    name: str,
    eng: str,
    rows: int,
    inputs: dict[str, str],
    args: argparse.Namespace,
    data: Path,
    port: int,
) -> dict[str, Any]:
    """One command on one engine at one size: start its cluster (Ray), run, stop, digest."""
    out = data / "runs" / str(rows) / eng / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pythonpath = args.code.get(name, args.pythonpath)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    env.pop("RAY_ADDRESS", None)
    cmd = command(name, inputs, out, args)
    cluster = None
    record: dict[str, Any] = {"command": name, "engine": eng, "rows": rows, "code": pythonpath}
    if eng != "local":
        nodes = 1 if eng == "ray1" else 2
        log = data / "runs" / f"ray-{rows}-{eng}-{name}.log"
        try:
            cluster = RayCluster(nodes, port, int(args.object_store), pythonpath, log)
        except Exception as exc:
            return {**record, "rc": None, "error": f"cluster did not start: {exc}"}
        record["cluster_start_s"] = round(cluster.start_s, 1)
        cmd = [*cmd, "--engine", "ray", "--ray-address", cluster.address]
    else:
        cmd = [*cmd, "--engine", "local"]
    load0 = os.getloadavg()[0]
    try:
        with ClusterCpu(cluster) as workers:
            res = launch(cmd, {**env, **RAY_ENV}, args.timeout, out)
    finally:
        if cluster is not None:
            record["killed_after_stop"] = cluster.stop()
    record.update({k: v for k, v in res.items() if k != "stdout"})
    record["load_avg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    if cluster is not None:
        record["worker_cpu_s_per_node"] = workers.per_node()
        record["ray_services_cpu_s"] = workers.services_s()
        record["workers_sampled_peak_mib"] = round(workers.rss_peak_mib, 1)
    try:
        record["summary"] = json.loads(res["stdout"]) if res["stdout"].strip() else None
    except ValueError:
        record["summary"] = None
    if res["rc"] == 0:
        record["digest"] = digest(output_paths(name, out))
        record["throughput"] = rows_of(name, record["summary"] or {}, rows) / res["wall_s"]
    else:
        record["error"] = (res["stderr"].strip().splitlines() or ["(no message)"])[-1][:400]
    status = (
        f"wall {res['wall_s']:.1f} s, driver peak {res['peak_rss_mib']:.0f} MiB"
        if res["rc"] == 0
        else f"FAILED rc={res['rc']}: {record['error']}"
    )
    print(f"  {rows:>9,} {name:<8} {eng:<5} {status} (load {record['load_avg_1min']})", flush=True)
    return record


def _cpu_all(r: dict[str, Any]) -> float:
    """CPU seconds of the whole run: the CLI (with its local pool workers, which it waits for),
    plus the Ray cluster's task workers and services (sampled)."""
    own = (r.get("user_s") or 0.0) + (r.get("sys_s") or 0.0)
    return round(
        own + sum(r.get("worker_cpu_s_per_node", [])) + r.get("ray_services_cpu_s", 0.0), 1
    )


def report(results: list[dict[str, Any]]) -> str:
    """One row per (size, command, engine): wall, throughput, Ray/local, driver peak, same bytes."""
    head = [
        "docs",
        "command",
        "engine",
        "wall s",
        "docs/s",
        "x local",
        "driver peak MiB",
        "driver CPU s",
        "worker CPU s/node",
        "all CPU s",
        "CPU x local",
        "same data",
        "same prov",
    ]
    rows = []
    order = sorted(
        results, key=lambda r: (r["rows"], COMMANDS.index(r["command"]), ENGINES.index(r["engine"]))
    )
    for r in order:
        local = next(
            (
                x
                for x in results
                if x["rows"] == r["rows"]
                and x["command"] == r["command"]
                and x["engine"] == "local"
            ),
            None,
        )
        ok = r.get("rc") == 0
        base_ok = local is not None and local.get("rc") == 0
        same = r.get("same") or {}
        rows.append(
            [
                r["rows"],
                r["command"],
                r["engine"],
                r["wall_s"] if ok else "failed",
                round(r["throughput"]) if ok else "-",
                fmt(r["wall_s"] / local["wall_s"], 2) if ok and base_ok else "-",
                r["peak_rss_mib"] if ok else "-",
                round((r.get("user_s") or 0) + (r.get("sys_s") or 0), 1) if ok else "-",
                "/".join(str(c) for c in r.get("worker_cpu_s_per_node", [])) or "-",
                _cpu_all(r) if ok else "-",
                fmt(_cpu_all(r) / _cpu_all(local), 2) if ok and base_ok else "-",
                ("yes" if same.get("data_identical") else "NO") if same else "-",
                ("yes" if same.get("identical") else "NO") if same else "-",
            ]
        )
    return table(head, rows)


def paper(results: list[dict[str, Any]], engine: str = "ray2") -> tuple[str, list[dict]]:
    """The inputs of docs/scale-out.md's scaling on paper, per command and size, from the
    ``engine`` runs: documents per worker-CPU-second (rows / the workers' CPU seconds), the
    driver's CPU seconds, its CPU per second of wall time (Ray Data's executor loop runs in the
    driver: its CPU grows with the run's duration, not with the documents) and its peak RSS."""
    out, rows = [], []
    runs = sorted(
        (r for r in results if r["engine"] == engine and r.get("rc") == 0),
        key=lambda r: (COMMANDS.index(r["command"]), r["rows"]),
    )
    for r in runs:
        workers = sum(r.get("worker_cpu_s_per_node", []))
        driver = (r.get("user_s") or 0.0) + (r.get("sys_s") or 0.0)
        entry = {
            "command": r["command"],
            "rows": r["rows"],
            "docs_per_worker_cpu_s": r["rows"] / workers if workers else None,
            "worker_cpu_s": workers,
            "driver_cpu_s": driver,
            "driver_cpu_per_wall_s": driver / r["wall_s"],
            "driver_peak_mib": r["peak_rss_mib"],
            "services_cpu_s": r.get("ray_services_cpu_s"),
        }
        out.append(entry)
        rows.append(
            [
                r["command"],
                r["rows"],
                round(entry["docs_per_worker_cpu_s"] or 0),
                round(workers, 1),
                round(driver, 1),
                f"{entry['driver_cpu_per_wall_s']:.3f}",
                round(r["peak_rss_mib"]),
            ]
        )
    head = [
        "command",
        "docs",
        "docs per worker-CPU-s",
        "worker CPU s",
        "driver CPU s",
        "driver CPU / wall s",
        "driver peak MiB",
    ]
    return table(head, rows), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument(
        "--runs",
        default="",
        help="[SIZE:]COMMAND/ENGINE,... in this order (at SIZE only, or at every size; default: "
        "every command on every engine, local first); the local runs of embed and dsir make "
        "cluster's and apply's inputs (without an embed at a size, cluster reads the smaller "
        "size's embeddings repeated)",
    )
    parser.add_argument("--k", type=int, default=256, help="cluster: k")
    parser.add_argument("--fit-sample", type=int, default=262144, help="cluster: --fit-sample")
    parser.add_argument("--iters", type=int, default=25, help="cluster: Lloyd iterations")
    parser.add_argument("--budget-tokens", default="10000000", help="dsir: --budget-tokens")
    parser.add_argument("--object-store", type=float, default=1e9, help="bytes per Ray node")
    parser.add_argument("--port", type=int, default=6480, help="Ray head port (ours)")
    parser.add_argument("--data", default="/tmp/selectkit-memory")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument(
        "--pythonpath",
        default=str(REPO),
        help="where the selectkit under test lives (a copy keeps a long run safe from edits)",
    )
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="COMMAND=DIR",
        help="another selectkit for one command (e.g. embed=/tmp/snap-embed); repeatable",
    )
    parser.add_argument("--name", default="bench_engine", help="JSON file name in benchmarks/out/")
    parser.add_argument(
        "--continue-from",
        metavar="JSON",
        help="keep the finished runs of an earlier run's JSON (same --data) and run the rest",
    )
    parser.add_argument(
        "--paper", metavar="JSON", help="only print the scaling on paper of an earlier run's JSON"
    )
    args = parser.parse_args()
    if args.paper:
        done = json.loads(Path(args.paper).read_text())["results"]
        print(report(done))
        print(paper(done)[0])
        return
    # a SIGTERM unwinds like Ctrl-C, so the Ray cluster of the run in progress is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.code = dict(c.split("=", 1) for c in args.code)
    names = [c for c in args.commands.split(",") if c]
    engines = [e for e in args.engines.split(",") if e]
    sizes = [int(s) for s in args.sizes.split(",")]
    items = [(None, n, e) for n in names for e in engines]
    if args.runs:
        items = []
        for run in (r for r in args.runs.split(",") if r):
            size, _, what = run.rpartition(":")
            name, _, eng = what.partition("/")
            if name not in COMMANDS or eng not in ENGINES:
                raise SystemExit(f"unknown run {run}: commands {COMMANDS}, engines {ENGINES}")
            items.append((int(size) if size else None, name, eng))
    plans = {n: [(c, e) for s, c, e in items if s in (None, n)] for n in sizes}
    data = Path(args.data).resolve()
    env = env_report()
    env["versions"]["ray"] = _ray_version()
    print_env(env)
    env["code_under_test"] = {
        name: code_state(Path(path))
        for name, path in {"default": args.pythonpath, **args.code}.items()
    }
    for name, state in env["code_under_test"].items():
        print(f"tested  : {name}: {state}")
    results: list[dict[str, Any]] = []
    if args.continue_from:
        # the finished runs of an earlier invocation (same data folder): kept, not run again,
        # and the local engine's outputs among them are the references of the new runs
        results = [
            {**r, "from": args.continue_from}
            for r in json.loads(Path(args.continue_from).read_text())["results"]
            if r.get("rc") == 0
        ]
        print(f"continuing {args.continue_from}: {len(results)} finished runs kept")
    t_all = time.perf_counter()
    for rows in sizes:
        plan = plans[rows]
        glob, _files = sharded(data, rows, args.shards)
        inputs = {"glob": glob, "target": str(data / "memory_target.jsonl")}
        local_out = data / "runs" / str(rows) / "local"
        inputs["manifest"] = str(local_out / "dsir" / "manifest.parquet")
        smaller = [s for s in sizes if s < rows]
        for name, eng in plan:
            if any((r["rows"], r["command"], r["engine"]) == (rows, name, eng) for r in results):
                continue
            if name == "cluster":
                inputs["emb"] = cluster_input(data, rows, smaller, results, args.shards)
            run = run_one(name, eng, rows, inputs, args, data, args.port)
            ref = next(
                (
                    r
                    for r in results
                    if (r["rows"], r["command"], r["engine"]) == (rows, name, "local")
                    and r.get("rc") == 0
                ),
                None,
            )
            if ref is not None and run.get("rc") == 0:
                run["same"] = compare(ref["digest"], run["digest"])
            results.append(run)
            write_json(args.name, _payload(env, args, results, t_all))
    text = report(results)
    print(text)
    paper_text, paper_rows = paper(results)
    print(paper_text)
    path = write_json(
        args.name,
        {
            **_payload(env, args, results, t_all),
            "table": text,
            "paper": paper_rows,
            "paper_table": paper_text,
        },
    )
    print(f"results: {path} ({time.perf_counter() - t_all:.0f} s in all)")


def _payload(env, args, results, t_all) -> dict[str, Any]:
    return {
        "env": env,
        "args": {k: v for k, v in vars(args).items()},
        "elapsed_s": round(time.perf_counter() - t_all, 1),
        "results": results,
    }


def code_state(root: Path) -> dict[str, str]:
    """The tree under test: its path, git commit (when it is a checkout) and a fingerprint of
    its selectkit/*.py (a copy of a work tree keeps a long run safe from edits)."""
    h = hashlib.blake2b(digest_size=8)
    for path in sorted((root / "selectkit").rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    head = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"path": str(root), "git": head[:120] or "n/a", "selectkit_source": h.hexdigest()}


def _ray_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("ray")
    except Exception:
        return "n/a"


if __name__ == "__main__":
    main()
