"""Seeding and k-means: selectkit against faiss-cpu and scikit-learn, same data, same process.

Data: Gaussian mixtures (n x 128 float32, k centres, per-centre scales 0.05-0.3) and the
real embeddings of data_samples/ (built-in embedder). For each case it reports, per seeder,
the median seeding time and the mean (+- s.e.m.) seed cost over several seeds, as a ratio to plain
k-means++'s mean cost, then full k-means (seeding + 25 Lloyd iterations) time and final cost.

Peers: scikit-learn ``kmeans_plusplus`` (greedy k-means++) and ``KMeans``; faiss ``Clustering``
with ``init_method`` 0 (random), 1 (k-means++), 2 (AFK-MC^2, chain 50 and 200).

    python benchmarks/bench_cluster.py --n 100000 --k 100 --seeds 10
    python benchmarks/bench_cluster.py --n 1000000 --k 1000 --seeds 3 --skip-sklearn-at 200000

Engines (issue 13): ``--engines VECTORS`` adds, in the same run, ``selectkit cluster`` (fit on
``--engine-fit-sample`` rows + 25 Lloyd iterations with tol 0 + assign every row to a folder) on
real vectors (a Parquet file, dataset folder or glob: e.g. ``selectkit embed`` of the memory
corpus) with the local engine, Ray with one worker and Ray across two nodes (head + one worker
node, 1 CPU each, on this machine). Each runs in its own child process; the table gives wall
time (Ray's start excluded, reported apart), rows/s, the driver's peak RSS, the overhead
against local, and whether the output is the same bytes as local's.

    python benchmarks/bench_cluster.py --seeds 1 --full-seeds 0 --n 20000 \
        --engines emb100k.parquet --engine-k 1000 --engine-fit-sample 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, env_report, print_env, table, write_json


def mixture(n: int, d: int, centres: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 1, (centres, d)).astype(np.float32)
    scale = rng.uniform(0.05, 0.3, centres).astype(np.float32)
    lab = rng.integers(0, centres, n)
    x = c[lab]
    x += rng.normal(0, 1, (n, d)).astype(np.float32) * scale[lab, None]
    return x


def real_embeddings() -> np.ndarray:
    import polars as pl

    from selectkit.embed import embed_texts

    repo = Path(__file__).resolve().parents[1]
    texts = pl.concat(
        [
            pl.read_ndjson(repo / "data_samples" / f).get_column("text")
            for f in ("rotten_tomatoes.jsonl", "fortunes.jsonl")
        ]
    )
    return embed_texts(texts)


def cost(x: np.ndarray, centres: np.ndarray) -> float:
    from selectkit.cluster.seeding import potential

    return potential(x, centres)


def faiss_seeds(x: np.ndarray, k: int, seed: int, init_method: int, chain: int = 50) -> np.ndarray:
    import faiss

    cp = faiss.ClusteringParameters()
    cp.niter = 0
    cp.init_method = init_method
    cp.afkmc2_chain_length = chain
    cp.max_points_per_centroid = 10**9  # no silent subsampling
    cp.seed = seed
    clus = faiss.Clustering(x.shape[1], k, cp)
    clus.train(x, faiss.IndexFlatL2(x.shape[1]))
    return faiss.vector_to_array(clus.centroids).reshape(k, x.shape[1])


def faiss_kmeans(x: np.ndarray, k: int, seed: int, iters: int, init_method: int) -> np.ndarray:
    import faiss

    cp = faiss.ClusteringParameters()
    cp.niter = iters
    cp.init_method = init_method
    cp.max_points_per_centroid = 10**9
    cp.seed = seed
    clus = faiss.Clustering(x.shape[1], k, cp)
    clus.train(x, faiss.IndexFlatL2(x.shape[1]))
    return faiss.vector_to_array(clus.centroids).reshape(k, x.shape[1])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_case(
    name: str,
    x: np.ndarray,
    k: int,
    seeds: int,
    sklearn_ok: bool,
    iters: int,
    skip: tuple[str, ...] = (),
    full_seeds: int = 3,
) -> dict:
    from sklearn.cluster import KMeans, kmeans_plusplus

    from selectkit.cluster import kmeans, seed
    from selectkit.rng import derive_rng

    seeders = {
        "selectkit rs": lambda s: x[seed(x, k, derive_rng(s, "b"), method="rs").indices],
        "selectkit rs-greedy": lambda s: x[
            seed(x, k, derive_rng(s, "b"), method="rs-greedy").indices
        ],
        "selectkit kmeans++": lambda s: x[
            seed(x, k, derive_rng(s, "b"), method="kmeans++").indices
        ],
        "selectkit afkmc2 (50)": lambda s: x[
            seed(x, k, derive_rng(s, "b"), method="afkmc2").indices
        ],
        "faiss random": lambda s: faiss_seeds(x, k, s + 1, 0),
        "faiss k-means++": lambda s: faiss_seeds(x, k, s + 1, 1),
        "faiss afkmc2 (50)": lambda s: faiss_seeds(x, k, s + 1, 2, 50),
        "faiss afkmc2 (200)": lambda s: faiss_seeds(x, k, s + 1, 2, 200),
    }
    if sklearn_ok:
        seeders["sklearn greedy k-means++"] = lambda s: kmeans_plusplus(x, k, random_state=s)[0]
    seeders = {label: fn for label, fn in seeders.items() if not any(w in label for w in skip)}
    seed_rows = {}
    for label, fn in seeders.items():
        times, costs = [], []
        for s in range(seeds):
            centres, dt = timed(lambda fn=fn, s=s: fn(s))
            times.append(dt)
            costs.append(cost(x, centres))
            print(f"  [{name}] {label} seed {s}: {dt:.3f} s, cost {costs[-1]:.6g}", flush=True)
        seed_rows[label] = {
            "time_median": float(np.median(times)),
            "cost_mean": float(np.mean(costs)),
            "cost_sem": float(np.std(costs) / np.sqrt(len(costs))),
        }
    ref = (seed_rows.get("selectkit kmeans++") or seed_rows["selectkit rs"])["cost_mean"]
    full = {}
    runs = {
        "selectkit rs-greedy + lloyd": lambda s: (
            kmeans(
                x, k, seeding="rs-greedy", iters=iters, tol=0.0, rng=derive_rng(s, "f")
            ).centroids
        ),
        "selectkit rs + lloyd": lambda s: (
            kmeans(x, k, seeding="rs", iters=iters, tol=0.0, rng=derive_rng(s, "f")).centroids
        ),
        "faiss Kmeans (random init)": lambda s: faiss_kmeans(x, k, s + 1, iters, 0),
        "faiss Kmeans (afkmc2 init)": lambda s: faiss_kmeans(x, k, s + 1, iters, 2),
    }
    if sklearn_ok:
        runs["sklearn KMeans (greedy k-means++)"] = lambda s: (
            KMeans(k, n_init=1, max_iter=iters, tol=0.0, random_state=s, algorithm="lloyd")
            .fit(x)
            .cluster_centers_
        )
    runs = {label: fn for label, fn in runs.items() if not any(w in label for w in skip)}
    if full_seeds <= 0:
        runs = {}
    for label, fn in runs.items():
        times, costs = [], []
        for s in range(full_seeds):
            centres, dt = timed(lambda fn=fn, s=s: fn(s))
            times.append(dt)
            costs.append(cost(x, centres))
            print(f"  [{name}] {label} seed {s}: {dt:.2f} s, cost {costs[-1]:.6g}", flush=True)
        full[label] = {"time_median": float(np.median(times)), "cost_mean": float(np.mean(costs))}
    return {
        "case": name,
        "n": x.shape[0],
        "d": x.shape[1],
        "k": k,
        "seeds": seeds,
        "iters": iters,
        "full_seeds": full_seeds,
        "seeding": seed_rows,
        "kmeans": full,
        "kmeanspp_cost": ref,
    }


def report(result: dict) -> None:
    ref = result["kmeanspp_cost"]
    rows = [
        [
            label,
            f"{r['time_median']:.3f}",
            f"{r['cost_mean'] / ref:.4f} +- {r['cost_sem'] / ref:.4f}",
        ]
        for label, r in result["seeding"].items()
    ]
    print(
        f"\n{result['case']}: n={result['n']:,} d={result['d']} k={result['k']}, {result['seeds']} seeds"
    )
    print(table(["seeder", "seconds (median)", "seed cost / k-means++ (mean +- sem)"], rows))
    rs = result["seeding"]["selectkit rs"]["time_median"]
    if "selectkit kmeans++" not in result["seeding"]:
        print("  (costs are relative to selectkit rs: kmeans++ was skipped)")
    for peer in ("faiss afkmc2 (50)", "faiss k-means++", "sklearn greedy k-means++"):
        if peer in result["seeding"]:
            print(f"  rs speed-up over {peer}: {result['seeding'][peer]['time_median'] / rs:.1f}x")
    if (
        "selectkit rs-greedy" in result["seeding"]
        and "sklearn greedy k-means++" in result["seeding"]
    ):
        rg = result["seeding"]["selectkit rs-greedy"]["time_median"]
        g = result["seeding"]["sklearn greedy k-means++"]
        print(
            f"  rs-greedy speed-up over sklearn greedy: {g['time_median'] / rg:.1f}x, seed cost ratio "
            f"{result['seeding']['selectkit rs-greedy']['cost_mean'] / g['cost_mean']:.4f}"
        )
    km = result["kmeans"]
    if not km:
        return
    base = (
        km.get("sklearn KMeans (greedy k-means++)")
        or km.get("faiss Kmeans (random init)")
        or next(iter(km.values()))
    )
    rows = [
        [label, f"{r['time_median']:.2f}", f"{r['cost_mean'] / base['cost_mean']:.4f}"]
        for label, r in result["kmeans"].items()
    ]
    print(
        table(
            [
                f"k-means, {result['iters']} iterations, {result['full_seeds']} seeds",
                "seconds (median)",
                "final cost / reference",
            ],
            rows,
        )
    )


ENGINE_MODES = ("local", "ray-1", "ray-2nodes")


def engine_child(mode: str, vectors: str, out: str, k: int, fit_sample: int, iters: int) -> None:
    """One engine run in this (child) process; prints a JSON line with its measurements."""
    import resource

    ray_start = 0.0
    cluster = None
    if mode != "local":
        os.environ.setdefault("RAY_memory_usage_threshold", "0.98")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t = time.perf_counter()
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "object_store_memory": 1 << 30,
                "include_dashboard": False,
            },
        )
        if mode == "ray-2nodes":
            cluster.add_node(num_cpus=1, object_store_memory=1 << 30)
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address
        ray_start = time.perf_counter() - t
    from selectkit.cluster import cluster_file

    try:
        t = time.perf_counter()
        prov = cluster_file(
            vectors,
            out + "/",
            k=k,
            fit_sample=fit_sample,
            iters=iters,
            tol=0.0,
            seed=0,
            centroids_out=out + ".centroids.parquet",
            engine="local" if mode == "local" else "ray",
        )
        wall = time.perf_counter() - t
    finally:
        if cluster is not None:
            import ray

            ray.shutdown()
            cluster.shutdown()
    print(
        json.dumps(
            {
                "mode": mode,
                "wall_s": wall,
                "ray_start_s": ray_start,
                "rows": prov.metrics["rows"],
                "fit_rows": prov.params["fit_rows"],
                "lloyd_iterations": prov.metrics["lloyd_iterations"],
                "timings": prov.timings,
                "engine": prov.engine,
                "driver_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def _same_output(a: str, b: str) -> bool:
    from selectkit.io.tables import fingerprint_file

    names = sorted(p.name for p in Path(a).glob("part-*.parquet"))
    if names != sorted(p.name for p in Path(b).glob("part-*.parquet")):
        return False
    files = [(Path(a) / n, Path(b) / n) for n in names]
    files.append((Path(a + ".centroids.parquet"), Path(b + ".centroids.parquet")))
    return all(fingerprint_file(x) == fingerprint_file(y) for x, y in files)


def run_engines(vectors: str, k: int, fit_sample: int, iters: int, timeout: float) -> dict:
    """Each engine mode in a child process, then their outputs compared with local's."""
    import tempfile

    from _common import run_child

    root = tempfile.mkdtemp(prefix="bench-cluster-engines-")
    rows = []
    for mode in ENGINE_MODES:
        out = f"{root}/{mode}"
        cmd = [sys.executable, __file__, "--engine-child", mode, "--engines", vectors,
               "--engine-k", str(k), "--engine-fit-sample", str(fit_sample),
               "--iters", str(iters), "--engine-out", out]  # fmt: skip
        res = run_child(cmd, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})
        line = [ln for ln in res["stdout"].splitlines() if ln.startswith("{")]
        if res["rc"] != 0 or not line:
            print(f"  [{mode}] failed (rc {res['rc']}): {res['stderr'][-2000:]}", flush=True)
            continue
        row = json.loads(line[-1])
        row["same_as_local"] = mode == "local" or _same_output(f"{root}/local", out)
        print(f"  [{mode}] {row}", flush=True)
        rows.append(row)
    return {"vectors": vectors, "k": k, "fit_sample": fit_sample, "iters": iters, "runs": rows}


def report_engines(result: dict) -> None:
    runs = result["runs"]
    if not runs:
        return
    local = next((r for r in runs if r["mode"] == "local"), None)
    table_rows = []
    for r in runs:
        t = r["timings"]
        table_rows.append(
            [
                r["mode"],
                f"{r['wall_s']:.1f}",
                f"{r['rows'] / r['wall_s']:,.0f}",
                f"{t.get('read_s', 0):.1f} / {t.get('fit_s', 0):.1f} / {t.get('assign_s', 0):.1f}",
                f"{r['ray_start_s']:.1f}",
                f"{r['driver_peak_rss_mib']:.0f}",
                f"{r['wall_s'] / local['wall_s']:.2f}x" if local else "-",
                "yes" if r["same_as_local"] else "NO",
            ]
        )
    print(
        f"\ncluster on engines: {runs[0]['rows']:,} rows, k={result['k']}, fit on "
        f"{runs[0]['fit_rows']:,} rows, {runs[0]['lloyd_iterations']} Lloyd iterations, assign all"
    )
    print(
        table(
            [
                "engine",
                "wall s",
                "rows/s",
                "read / fit / assign s",
                "Ray start s",
                "driver peak MiB",
                "vs local",
                "same bytes",
            ],
            table_rows,
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--iters", type=int, default=25)
    ap.add_argument(
        "--skip-sklearn-at",
        type=int,
        default=300_000,
        help="skip scikit-learn (minutes per run) at n*k above this times 100",
    )
    ap.add_argument("--real", action="store_true", help="also run the real data_samples embeddings")
    ap.add_argument(
        "--skip", default="", help="comma-separated words; runs whose label has one are skipped"
    )
    ap.add_argument(
        "--full-seeds", type=int, default=3, help="seeds for the full k-means runs (0: none)"
    )
    ap.add_argument("--engines", default="", help="vectors for the engine comparison (see above)")
    ap.add_argument("--engine-k", type=int, default=1000)
    ap.add_argument("--engine-fit-sample", type=int, default=100_000)
    ap.add_argument("--engine-timeout", type=float, default=3600.0)
    ap.add_argument("--engine-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--engine-out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine_child:
        engine_child(
            args.engine_child,
            args.engines,
            args.engine_out,
            args.engine_k,
            args.engine_fit_sample,
            args.iters,
        )
        return 0
    rep = env_report()
    print_env(rep)
    results = []
    x = mixture(args.n, args.d, args.k)
    sk_ok = args.n * args.k <= args.skip_sklearn_at * 100
    skip = tuple(w for w in args.skip.split(",") if w)
    results.append(
        run_case(
            "gaussian mixture", x, args.k, args.seeds, sk_ok, args.iters, skip, args.full_seeds
        )
    )
    report(results[-1])
    if args.real:
        xr = real_embeddings()
        results.append(
            run_case(
                "data_samples embeddings",
                xr,
                50,
                args.seeds,
                True,
                args.iters,
                skip,
                args.full_seeds,
            )
        )
        report(results[-1])
    engines = None
    if args.engines:
        engines = run_engines(
            args.engines, args.engine_k, args.engine_fit_sample, args.iters, args.engine_timeout
        )
        report_engines(engines)
    path = write_json(
        f"bench_cluster_n{args.n}_k{args.k}",
        {"env": rep, "results": results, "engines": engines},
    )
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
