"""Seeding and k-means: selectkit against faiss-cpu and scikit-learn, same data, same process.

Data: Gaussian mixtures (n x 128 float32, k centres, per-centre scales 0.05-0.3) and the
real embeddings of data_samples/ (built-in embedder). For each case it reports, per seeder,
the median seeding time and the mean (+- s.e.m.) seed cost over several seeds, as a ratio to plain
k-means++'s mean cost, then full k-means (seeding + 25 Lloyd iterations) time and final cost.

Peers: scikit-learn ``kmeans_plusplus`` (greedy k-means++) and ``KMeans``; faiss ``Clustering``
with ``init_method`` 0 (random), 1 (k-means++), 2 (AFK-MC^2, chain 50 and 200).

    python benchmarks/bench_cluster.py --n 100000 --k 100 --seeds 10
    python benchmarks/bench_cluster.py --n 1000000 --k 1000 --seeds 3 --skip-sklearn-at 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_report, print_env, table, write_json


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
    args = ap.parse_args()
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
    path = write_json(f"bench_cluster_n{args.n}_k{args.k}", {"env": rep, "results": results})
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
