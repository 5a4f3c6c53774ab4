"""Greedy k-center: selectkit against plain numpy, faiss and scikit-activeml's CoreSet.

Selects ``--k`` (1,000) of ``--n`` (1,000,000) x ``--d`` (128) float32 rows drawn from a Gaussian
mixture (fixed seed, saved once as .npy under benchmarks/out/data/ so selectkit can memory-map it).
Every method runs in its own child process, so its peak resident memory (kernel high-water mark,
``ru_maxrss``) is its own, and all run in the same environment (same BLAS, same env vars):

  baseline       imports numpy, faiss and selectkit's kcenter module and memory-maps the file:
                 the fixed RSS every Python method pays before any work
  selectkit      ``greedy_kcenter(np.load(path, mmap_mode="r"), k, np.random.default_rng(seed))``
  selectkit_cli  ``selectkit select data.npy --strategy kcenter --budget k -o m.parquet``
  numpy_naive    textbook loop: ``min_dist = np.minimum(min_dist, ((X - X[i])**2).sum(1))``
  numpy_norms    precomputed norms: ``d = sq - 2 X @ x + ||x||^2`` (float32)
  numpy_norms_1t the same with one BLAS thread (selectkit's loop runs with one BLAS thread)
  faiss          a fresh ``faiss.IndexFlatL2`` holding the new centre, searched by all rows per step
  skactiveml     ``skactiveml.pool.CoreSet().query(X, y_all_missing, batch_size=k)``

The numpy and faiss references start from the same first row as ``selectkit`` (the generator's
``choice`` over all rows), so their picks should match selectkit's; CoreSet and the CLI draw their
own first row. Quality: the covering radius, max over rows of the distance to the nearest pick,
recomputed here exactly with faiss for every method.

A loop method measures its first steps and gives up (reported as "projected") if the whole run
would exceed ``--max-seconds``; such a method is then re-run at ``--fallback-n`` rows and the
table says so. Timings: median of ``--repeats`` runs for every method whose first run took less
than ``--repeat-under`` seconds (rounds are interleaved across methods).

    .venv/bin/python benchmarks/bench_kcenter.py               # 1M x 128, k = 1000 (~30-40 min)
    .venv/bin/python benchmarks/bench_kcenter.py --n 100000    # quick check (~2 min)

Results: a table on stdout and benchmarks/out/bench_kcenter.json (or --name).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

METHODS = (
    "baseline",
    "selectkit",
    "selectkit_cli",
    "numpy_naive",
    "numpy_norms",
    "faiss",
    "skactiveml",
)
EXTRA_METHODS = ("selectkit_ram", "numpy_norms_1t", "faiss_pairwise")
NOT_TIMED = ("baseline",)
PEERS = ("numpy_naive", "numpy_norms", "numpy_norms_1t", "faiss", "faiss_pairwise", "skactiveml")


# --------------------------------------------------------------------------- data


def make_data(n: int, d: int, seed: int, folder: Path, components: int = 64) -> Path:
    """A Gaussian mixture (``components`` clusters of different spread and size), as float32 .npy.

    ``components=1`` gives one isotropic Gaussian: no cluster structure, distances concentrate.
    """
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    suffix = "" if components == 64 else f"_c{components}"
    path = folder / f"gmm_{n}x{d}_seed{seed}{suffix}.npy"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(components, d)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, size=components).astype(np.float32)
    weights = rng.dirichlet(np.full(components, 2.0))
    tmp = path.with_name(path.stem + ".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    chunk = 100_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        comp = rng.choice(components, size=m, p=weights)
        block = rng.standard_normal((m, d), dtype=np.float32)
        block *= scales[comp, None]
        block += means[comp]
        out[start : start + m] = block
    out.flush()
    del out
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- workers


def _first_pick(n: int, seed: int) -> int:
    """The first row selectkit's greedy_kcenter picks with ``np.random.default_rng(seed)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return int(rng.choice(np.flatnonzero(np.ones(n, dtype=bool))))


class TooSlow(Exception):
    pass


def _loop(step, n: int, k: int, first: int, max_seconds: float, probe: int = 10):
    """Generic greedy loop: ``step(i, min_dist)`` updates ``min_dist`` in place or returns it."""
    import numpy as np

    min_dist = np.full(n, np.inf, dtype=np.float32)
    picks = np.empty(k, dtype=np.int64)
    i = first
    t0 = time.perf_counter()
    for j in range(k):
        picks[j] = i
        new = step(i, min_dist)
        if new is not None:
            min_dist = new
        if j + 1 == probe and k > 2 * probe:
            projected = (time.perf_counter() - t0) / probe * k
            if projected > max_seconds:
                raise TooSlow(projected)
        i = int(np.argmax(min_dist))
    return picks


def worker(args: argparse.Namespace) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    method, path, k, seed = args.worker, args.data, args.k, args.seed
    info: dict = {"method": method}
    t_load = time.perf_counter()
    if method in ("selectkit", "baseline"):
        X = np.load(path, mmap_mode="r")
    else:
        X = np.load(path)
    info["load_s"] = time.perf_counter() - t_load
    n = X.shape[0]
    first = _first_pick(n, seed)
    # Imports happen before the clock starts.
    import faiss

    if method.startswith("selectkit") or method == "baseline":
        from selectkit.strategies.kcenter import greedy_kcenter
    if method == "skactiveml":
        from skactiveml.pool import CoreSet
        from skactiveml.utils import MISSING_LABEL
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    t = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        try:
            if method == "baseline":
                picks = np.array([first])
            elif method in ("selectkit", "selectkit_ram"):
                picks, _gains, r2 = greedy_kcenter(X, k, np.random.default_rng(seed))
                info["reported_radius"] = float(np.sqrt(r2))
            elif method == "numpy_naive":

                def step(i, md):
                    return np.minimum(md, ((X - X[i]) ** 2).sum(1))

                picks = _loop(step, n, k, first, args.max_seconds)
            elif method in ("numpy_norms", "numpy_norms_1t"):
                if method == "numpy_norms_1t":
                    threadpool_limits(limits=1)
                sq = np.einsum("ij,ij->i", X, X)

                def step(i, md):
                    x = X[i]
                    dist = X @ x
                    dist *= -2.0
                    dist += sq
                    dist += x @ x
                    np.minimum(md, dist, out=md)

                picks = _loop(step, n, k, first, args.max_seconds)
            elif method == "faiss":

                def step(i, md):
                    index = faiss.IndexFlatL2(X.shape[1])
                    index.add(X[i : i + 1])
                    dist, _ = index.search(X, 1)
                    np.minimum(md, dist[:, 0], out=md)

                picks = _loop(step, n, k, first, args.max_seconds)
            elif method == "faiss_pairwise":

                def step(i, md):
                    dist = faiss.pairwise_distances(X, X[i : i + 1])
                    np.minimum(md, dist[:, 0], out=md)

                picks = _loop(step, n, k, first, args.max_seconds)
            elif method == "skactiveml":
                y = np.full(n, MISSING_LABEL)
                need = k * n * 8  # CoreSet keeps a (batch_size, n) float64 utilities matrix
                info["utilities_matrix_gib"] = need / 2**30
                if need > args.max_gib * 2**30:
                    raise TooSlow(float("nan"))
                probe = 10
                tp = time.perf_counter()
                CoreSet(random_state=seed).query(X, y, batch_size=probe)
                projected = (time.perf_counter() - tp) / probe * k
                info["probe_projected_s"] = projected
                if projected > args.max_seconds:
                    raise TooSlow(projected)
                t = time.perf_counter()  # time the real query only
                picks = CoreSet(random_state=seed).query(X, y, batch_size=k)
            else:
                raise SystemExit(f"unknown method {method}")
        except TooSlow as exc:
            info["status"] = "projected"
            info["projected_s"] = exc.args[0]
            return info
    info["select_s"] = time.perf_counter() - t
    info["status"] = "ok"
    info["picks"] = np.asarray(picks, dtype=np.int64).tolist()
    info["blas"] = C.blas_info()
    return info


# --------------------------------------------------------------------------- parent


def covering_radius(path: Path, picks: list[int], chunk: int = 65536) -> float:
    """Exact max over rows of the L2 distance to the nearest pick (faiss, chunked over a memmap)."""
    import faiss
    import numpy as np

    X = np.load(path, mmap_mode="r")
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(X[np.sort(np.asarray(picks))], dtype=np.float32))
    worst = 0.0
    for start in range(0, X.shape[0], chunk):
        block = np.ascontiguousarray(X[start : start + chunk], dtype=np.float32)
        dist, _ = index.search(block, 1)
        worst = max(worst, float(dist.max()))
    return float(np.sqrt(max(worst, 0.0)))


def run_method(method: str, data: Path, args: argparse.Namespace, tmp: Path) -> dict:
    if method == "selectkit_cli":
        out = tmp / "m.parquet"
        if out.exists():
            out.unlink()
        cmd = [
            *C.selectkit_exe(),
            "-q",
            "select",
            str(data),
            "--strategy",
            "kcenter",
            "--budget",
            str(args.k),
            "--seed",
            str(args.seed),
            "-o",
            str(out),
            "--json",
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        res = C.run_child(cmd, timeout=args.timeout)
        info: dict = {"method": method}
        if res["rc"] == 0:
            import polars as pl

            info["summary"] = json.loads(res["stdout"])
            manifest = pl.read_parquet(out)
            info["picks"] = manifest.sort("rank").get_column("id").cast(pl.Int64).to_list()
            info["select_s"] = res["wall_s"]  # the whole command
            info["status"] = "ok"
            out.unlink()
        else:
            info["status"] = "timeout" if res["timed_out"] else f"failed rc={res['rc']}"
            info["stderr"] = res["stderr"][-3000:]
    else:
        result = tmp / f"{method}.json"
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            method,
            "--data",
            str(data),
            "--k",
            str(args.k),
            "--seed",
            str(args.seed),
            "--max-seconds",
            str(args.max_seconds),
            "--max-gib",
            str(args.max_gib),
            "--result",
            str(result),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        res = C.run_child(cmd, timeout=args.timeout)
        if res["rc"] == 0 and result.exists():
            info = json.loads(result.read_text())
            result.unlink()
        else:
            info = {
                "method": method,
                "status": "timeout" if res["timed_out"] else f"failed rc={res['rc']}",
                "stderr": res["stderr"][-3000:],
            }
    info.update(
        wall_s=res["wall_s"],
        peak_rss_mib=res["peak_rss_mib"],
        sampled_peak_rss_mib=res["sampled_peak_rss_mib"],
        loadavg=os.getloadavg()[0],
        selectkit_source=C.source_fingerprint(),
    )
    return info


def summarise(method: str, runs: list[dict], n: int) -> dict:
    ok = [r for r in runs if r.get("status") == "ok"]
    row: dict = {
        "method": method,
        "n": n,
        "status": runs[0].get("status") if runs else "not run",
        "runs": len(ok),
    }
    if not ok:
        for key in ("projected_s", "utilities_matrix_gib", "stderr", "peak_rss_mib"):
            if key in runs[0]:
                row[key] = runs[0][key]
        return row
    row.update(
        status="ok",
        select_s=C.median([r["select_s"] for r in ok]),
        select_s_runs=[r["select_s"] for r in ok],
        wall_s=C.median([r["wall_s"] for r in ok]),
        peak_rss_mib=max(r["peak_rss_mib"] for r in ok),
        load_s=C.median([r.get("load_s", 0.0) for r in ok]),
        picks=ok[0]["picks"],
        same_picks_every_run=all(r["picks"] == ok[0]["picks"] for r in ok),
        reported_radius=ok[0].get("reported_radius")
        or (ok[0].get("summary", {}).get("covering_radius") if "summary" in ok[0] else None),
        blas=ok[0].get("blas"),
        summary=(
            {
                key: C.median([r["summary"].get(key, float("nan")) for r in ok])
                for key in ("read_s", "select_s", "write_s")
            }
            | {"covering_radius": ok[0]["summary"].get("covering_radius")}
            if "summary" in ok[0]
            else None
        ),
        selectkit_source=sorted({r.get("selectkit_source") for r in ok}),
        loadavg=[r["loadavg"] for r in ok],
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--components",
        type=int,
        default=64,
        help="Gaussian mixture components (1 = one isotropic Gaussian, no clusters)",
    )
    ap.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma list from {METHODS + EXTRA_METHODS}"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--repeat-under",
        type=float,
        default=150.0,
        help="repeat a method only if its first run took less (s)",
    )
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=540.0,
        help="a loop method projected to take longer gives up (then runs at --fallback-n)",
    )
    ap.add_argument("--max-gib", type=float, default=20.0, help="memory a peer may plan to use")
    ap.add_argument("--fallback-n", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=600.0, help="hard limit per child run (s)")
    ap.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: all)")
    ap.add_argument("--data-dir", type=Path, default=C.OUT / "data")
    ap.add_argument("--name", default=None, help="JSON name under benchmarks/out/")
    # worker-only
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        info = worker(args)
        args.result.write_text(json.dumps(info))
        return 0

    name = args.name or ("bench_kcenter" if args.n == 1_000_000 else f"bench_kcenter_n{args.n}")
    if args.components != 64 and not args.name:
        name += f"_c{args.components}"
    methods = [m for m in args.methods.split(",") if m]
    rep = C.env_report()
    print(
        f"== bench_kcenter: greedy k-center, k={args.k} of n={args.n:,} x d={args.d} float32, "
        f"Gaussian mixture of {args.components} components =="
    )
    C.print_env(rep)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    t = time.perf_counter()
    data = make_data(args.n, args.d, args.seed, args.data_dir, args.components)
    input_mib = args.n * args.d * 4 / 2**20
    print(
        f"data: {data} ({input_mib:.0f} MiB, ready in {time.perf_counter() - t:.1f} s)", flush=True
    )
    tmp = C.OUT / f".tmp-{name}"
    tmp.mkdir(parents=True, exist_ok=True)
    payload: dict = {
        "env": rep,
        "args": {k: str(v) for k, v in vars(args).items()},
        "input_mib": input_mib,
        "results": {},
    }

    runs: dict[str, list[dict]] = {m: [] for m in methods}
    fallback: dict[str, list[dict]] = {}
    for rnd in range(args.repeats):
        for m in methods:
            prev = runs[m]
            if rnd > 0 and (
                not prev or prev[0].get("status") != "ok" or prev[0]["wall_s"] > args.repeat_under
            ):
                continue
            info = run_method(m, data, args, tmp)
            runs[m].append(info)
            C.write_json(name + ".runs", {"env": rep, "runs": runs})  # raw, with picks
            msg = info.get("status")
            if msg == "ok":
                msg = f"select {info['select_s']:.1f} s, wall {info['wall_s']:.1f} s"
            elif msg == "projected":
                msg = f"gave up: projected {info.get('projected_s', float('nan')):.0f} s"
            print(
                f"  round {rnd + 1}: {m:<14} {msg}, peak RSS {info['peak_rss_mib']:.0f} MiB, "
                f"load {info['loadavg']:.1f}",
                flush=True,
            )

    results = {m: summarise(m, r, args.n) for m, r in runs.items()}
    # Fallback: methods that could not run at n run at --fallback-n, with selectkit for reference.
    small = [m for m, r in results.items() if r["status"] != "ok"]
    if small and args.fallback_n < args.n:
        fb_args = argparse.Namespace(**{**vars(args), "n": args.fallback_n})
        fb_data = make_data(args.fallback_n, args.d, args.seed, args.data_dir, args.components)
        print(
            f"\n-- fallback at n={args.fallback_n:,} for {small} (+ selectkit for reference) --",
            flush=True,
        )
        for m in ["selectkit", *small]:
            fallback[m] = []
            for rnd in range(args.repeats):
                if rnd > 0 and (
                    fallback[m][0].get("status") != "ok"
                    or fallback[m][0]["wall_s"] > args.repeat_under
                ):
                    break
                info = run_method(m, fb_data, fb_args, tmp)
                fallback[m].append(info)
                C.write_json(name + ".runs", {"env": rep, "runs": runs, "fallback": fallback})
                print(
                    f"  n={args.fallback_n:,} {m:<14} {info.get('status')} "
                    f"select {info.get('select_s', float('nan')):.1f} s, peak RSS {info['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        fb_results = {m: summarise(m, r, args.fallback_n) for m, r in fallback.items()}
    else:
        fb_results, fb_data = {}, None

    # Quality: exact covering radius of every method's picks.
    for res, path in ((results, data), (fb_results, fb_data)):
        for r in res.values():
            if r["status"] == "ok" and r["method"] not in NOT_TIMED:
                r["covering_radius"] = covering_radius(path, r["picks"])
                ref = res.get("selectkit", {}).get("picks")
                if ref is not None and r["method"] not in NOT_TIMED:
                    r["pick_overlap_with_selectkit"] = len(set(ref) & set(r["picks"])) / len(ref)
    for res in (results, fb_results):
        for r in res.values():
            r.pop("picks", None)
    payload["results"] = results
    payload["fallback"] = fb_results
    payload["loadavg_end"] = os.getloadavg()
    path = C.write_json(name, payload)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()

    # ------------------------------------------------------------------ report
    print("\n== results ==")
    C.print_env(rep)
    limit_mib = 2 * input_mib

    def report(res: dict, n: int) -> None:
        sk = res.get("selectkit")
        b = results.get("baseline", {})
        base_mib = b.get("peak_rss_mib") if b.get("status") == "ok" else None
        print(f"\nn = {n:,} x {args.d} float32 ({n * args.d * 4 / 2**20:.0f} MiB), k = {args.k}:")
        rows = []
        for m, r in res.items():
            if r["status"] != "ok":
                extra = ""
                if r.get("projected_s") == r.get("projected_s") and r.get("projected_s"):
                    extra = f" (projected {r['projected_s']:.0f} s)"
                if r.get("utilities_matrix_gib"):
                    extra += f" (needs {r['utilities_matrix_gib']:.1f} GiB)"
                rows.append(
                    [m, r["status"] + extra, None, None, None, None, None, None, None, None]
                )
                continue
            ratio_t = sk["select_s"] / r["select_s"] if sk and sk["status"] == "ok" else None
            ratio_m = (
                sk["peak_rss_mib"] / r["peak_rss_mib"] if sk and sk["status"] == "ok" else None
            )
            over = r["peak_rss_mib"] - base_mib if base_mib and m.startswith("selectkit") else None
            rows.append(
                [
                    m,
                    r["runs"],
                    r["select_s"],
                    r["wall_s"],
                    r["peak_rss_mib"],
                    over,
                    r.get("covering_radius"),
                    r.get("pick_overlap_with_selectkit"),
                    ratio_t if m in PEERS else None,
                    ratio_m if m in PEERS else None,
                ]
            )
        print(
            C.table(
                [
                    "method",
                    "runs",
                    "select s (median)",
                    "process wall s",
                    "peak RSS MiB",
                    "RSS over baseline",
                    "covering radius",
                    "pick overlap w/ selectkit",
                    "time selectkit/peer",
                    "mem selectkit/peer",
                ],
                rows,
            )
        )

    report(results, args.n)
    cli = results.get("selectkit_cli")
    if cli and cli["status"] == "ok" and cli.get("summary"):
        sm = cli["summary"]
        phases = ", ".join(
            f"{key[:-2]} {sm[key]:.2f} s"
            for key in ("read_s", "select_s", "write_s")
            if sm.get(key) == sm.get(key) and sm.get(key) is not None  # skip NaN / missing
        )
        print(
            f"selectkit_cli internal timings (from --json, medians): {phases}; "
            f"reported covering radius {sm.get('covering_radius', float('nan')):.3f}"
        )
    base = results.get("baseline")
    if base and base["status"] == "ok":
        print(f"baseline (imports + memory-map, no work): peak RSS {base['peak_rss_mib']:.0f} MiB")
    if fb_results:
        print(
            f"\n(methods that could not run at n={args.n:,} in {args.max_seconds:.0f} s / "
            f"{args.max_gib:.0f} GiB, run at n={args.fallback_n:,}):"
        )
        report(fb_results, args.fallback_n)

    sk = results.get("selectkit")
    if sk and sk["status"] == "ok":
        print(f"\ntargets (n={args.n:,}):")
        for m in ("selectkit", "selectkit_cli"):
            r = results.get(m)
            if r and r["status"] == "ok":
                ok = r["peak_rss_mib"] < limit_mib
                print(
                    f"  {m}: peak RSS {r['peak_rss_mib']:.0f} MiB vs 2x input {limit_mib:.0f} MiB -> "
                    f"{'MET' if ok else 'NOT MET'}"
                )
        for ref in (
            "numpy_norms",
            "numpy_norms_1t",
            "numpy_naive",
            "faiss",
            "faiss_pairwise",
            "skactiveml",
        ):
            r = results.get(ref)
            if r and r["status"] == "ok":
                ok = sk["select_s"] <= r["select_s"]
                print(
                    f"  time: selectkit {sk['select_s']:.1f} s vs {ref} {r['select_s']:.1f} s "
                    f"(x{sk['select_s'] / r['select_s']:.2f}) -> {'MET' if ok else 'NOT MET'}"
                )
    sources = {r.get("selectkit_source") for rs in (runs, fallback) for v in rs.values() for r in v}
    sources.add(rep["selectkit_source"])
    if len(sources) > 1:
        print(
            f"\nWARNING: selectkit/ source changed during this run ({sorted(sources)}); "
            "the per-method 'selectkit_source' in the JSON says which run used which"
        )
    print(f"\nload average at end: {payload['loadavg_end']}")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
