"""DSIR: selectkit against the reference `data-selection` package (p-lambda/dsir), same corpus,
same run, each in its own child process.

Measures documents per second end to end (fit + weigh + select, process start included) and
peak memory, and checks parity: with the reference's settings (sha256 buckets, unigrams +
bigrams, 10,000 buckets, no target smoothing, deterministic top-k, documents under 100 tokens
never picked) both must pick the same documents. Then selectkit's default configuration (poly64
hash, Gumbel top-k sampling) on the same corpus, and optionally on a 10x corpus of shards to show
flat memory. With ``--engines local,ray`` the default configuration also runs on Ray in the same
run (column "engine"): on a Ray instance the command starts itself, or with ``--ray-nodes N`` on
a cluster of N nodes started here (``ray.cluster_utils.Cluster``, the CPUs split between them),
or on ``--ray-address``; the manifests must be identical to the local engine's.

    python benchmarks/make_dsir_corpus.py --repeat 10      # real text, see benchmarks/README.md
    python benchmarks/bench_dsir.py                        # ~3 min on 2 cores
    python benchmarks/bench_dsir.py --memory-shards 'benchmarks/out/dsir_raw_x10_*.jsonl'
    python benchmarks/bench_dsir.py --skip-peer --engines local,ray --ray-nodes 2 \
        --memory-shards 'benchmarks/out/dsir_raw_x10_*.jsonl'

Requires `pip install data-selection nltk` (benchmark-only; never a selectkit dependency).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, REPO, env_report, fmt, print_env, run_child, table, write_json


def peer_child(raw: str, target: str, budget: int, workers: int, out: str) -> None:
    """Run the reference package end to end; write the selected ids and its stage timings."""
    from data_selection import HashedNgramDSIR

    cache = tempfile.mkdtemp(prefix="dsir-peer-")
    t0 = time.perf_counter()
    dsir = HashedNgramDSIR([raw], [target], cache_dir=cache, num_proc=workers)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    t1 = time.perf_counter()
    dsir.compute_importance_weights()
    t2 = time.perf_counter()
    dsir.resample(out_dir=os.path.join(cache, "out"), num_to_sample=budget, top_k=True)
    t3 = time.perf_counter()
    ids = []
    for path in sorted(Path(cache, "out").glob("*.jsonl")):
        with open(path) as f:
            ids.extend(json.loads(line)["id"] for line in f if line.strip())
    Path(out).write_text(
        json.dumps({"ids": ids, "fit_s": t1 - t0, "weigh_s": t2 - t1, "resample_s": t3 - t2})
    )


def start_cluster(nodes: int, cpus: int):
    """A Ray cluster of ``nodes`` nodes on this machine (``cpus`` split between them, 300 MB of
    object store each); returns (cluster, address)."""
    os.environ.setdefault("RAY_memory_usage_threshold", "0.98")
    from ray.cluster_utils import Cluster

    per_node = max(1, cpus // nodes)
    store = 300_000_000
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": per_node, "object_store_memory": store,
                        "include_dashboard": False},
    )  # fmt: skip
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=per_node, object_store_memory=store)
    cluster.wait_for_nodes()
    return cluster, cluster.address


def stop_cluster(cluster) -> None:
    cluster.shutdown()


def _same_manifest(a: dict, b: dict) -> bool:
    """The same manifest data (the provenance differs in timings and the engine record)."""
    import polars as pl

    return pl.read_parquet(a["manifest"]).equals(pl.read_parquet(b["manifest"]))


def count_lines(paths: list[str]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += sum(1 for line in f if line.strip())
    return n


def _share_of(path: str, prefix: str) -> float:
    hits = total = 0
    with open(path) as f:
        for line in f:
            total += 1
            hits += json.loads(line)["id"].startswith(prefix)
    return hits / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", default=str(OUT / "dsir_raw.jsonl"))
    parser.add_argument("--target", default=str(OUT / "dsir_target.jsonl"))
    parser.add_argument("--budget", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--memory-shards", default=None, help="glob of a 10x corpus (selectkit)")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--engines", default="local", help="comma-separated: local, ray")
    parser.add_argument("--ray-nodes", type=int, default=0, help="start a cluster of N nodes")
    parser.add_argument("--ray-address", default=None, help="run on this Ray cluster")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "peer":
        peer_child(args.raw, args.target, args.budget, args.workers, args.child_out)
        return

    rep = env_report()
    print_env(rep)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    n_docs = count_lines([args.raw])
    print(f"corpus: {args.raw} ({n_docs} documents), target: {args.target}, budget {args.budget}")
    work = Path(tempfile.mkdtemp(prefix="bench-dsir-", dir=OUT))
    sk = [sys.executable, "-m", "selectkit", "-q", "select"]
    common = ["--strategy", "dsir", "--target", args.target, "--budget", str(args.budget)]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    cluster = None
    address = args.ray_address
    if "ray" in engines and args.ray_nodes and not address:
        cluster, address = start_cluster(args.ray_nodes, args.workers)
    parity = ["--hash", "sha256", "--top-k", "--min-tokens", "100", "--smoothing", "0"]
    runs: dict[str, dict] = {}

    def selectkit_run(
        name: str, inputs: list[str], extra: list[str], docs: int, engine: str = "local"
    ) -> None:
        manifest = work / f"{len(runs)}.parquet"
        where = ["--workers", str(args.workers)]
        if engine == "ray":
            where = ["--engine", "ray", *(["--ray-address", address] if address else [])]
        res = run_child(
            [*sk, *inputs, *common, *where, *extra, "-o", str(manifest), "--json"],
            timeout=args.timeout,
            env=env,
        )
        if res["rc"] != 0:
            print(res["stderr"][-2000:])
            raise SystemExit(f"{name} failed")
        summary = json.loads(res["stdout"])
        import polars as pl

        res["ids"] = pl.read_parquet(manifest).get_column("id").to_list()
        res["summary"] = summary
        res["docs"] = docs
        res["engine"] = engine if engine == "local" else f"ray ({args.ray_nodes or 1} node(s))"
        res["manifest"] = manifest
        runs[name] = res

    if not args.skip_peer:
        ids_path = work / "peer.json"
        res = run_child(
            [
                sys.executable,
                __file__,
                "--child",
                "peer",
                "--child-out",
                str(ids_path),
                "--raw",
                args.raw,
                "--target",
                args.target,
                "--budget",
                str(args.budget),
                "--workers",
                str(args.workers),
            ],
            timeout=args.timeout,
            env=env,
        )
        if res["rc"] != 0:
            print(res["stderr"][-2000:])
            raise SystemExit("reference package failed")
        res.update(json.loads(ids_path.read_text()))
        res["docs"] = n_docs
        runs["reference (sha256, top-k)"] = res
    selectkit_run("selectkit (sha256, top-k)", [args.raw], parity, n_docs)
    selectkit_run("selectkit default (poly64, gumbel)", [args.raw], [], n_docs)
    if args.memory_shards:
        shards = sorted(glob.glob(args.memory_shards))
        selectkit_run(f"selectkit default, {len(shards)} shards", shards, [], count_lines(shards))
    same_bytes = {}
    try:
        if "ray" in engines:
            selectkit_run("selectkit default on ray", [args.raw], [], n_docs, engine="ray")
            same_bytes["default"] = _same_manifest(
                runs["selectkit default (poly64, gumbel)"], runs["selectkit default on ray"]
            )
            if args.memory_shards:
                name = f"selectkit default, {len(shards)} shards"
                selectkit_run(f"{name}, on ray", shards, [], count_lines(shards), engine="ray")
                same_bytes["shards"] = _same_manifest(runs[name], runs[f"{name}, on ray"])
    finally:
        if cluster is not None:
            stop_cluster(cluster)
    for what, same in same_bytes.items():
        print(f"ray vs local ({what}): {'identical manifests' if same else 'MANIFESTS DIFFER'}")

    peer = runs.get("reference (sha256, top-k)")
    rows = []
    for name, res in runs.items():
        rate = res["docs"] / res["wall_s"]
        ratio = rate / (peer["docs"] / peer["wall_s"]) if peer else float("nan")
        rows.append(
            [
                name,
                res.get("engine", "-"),
                res["docs"],
                fmt(res["wall_s"], 1),
                fmt(rate, 0),
                fmt(ratio, 1),
                fmt(res["peak_rss_mib"], 0),
                fmt(res["sampled_peak_rss_mib"], 0),
            ]
        )
    print(
        table(
            [
                "method",
                "engine",
                "docs",
                "wall s",
                "docs/s",
                "x reference",
                "peak RSS MiB (largest process)",
                "sampled RSS MiB (all processes)",
            ],
            rows,
        )
    )
    result = {
        "env": rep,
        "corpus": args.raw,
        "docs": n_docs,
        "budget": args.budget,
        "workers": args.workers,
        "engines": engines,
        "ray_nodes": args.ray_nodes,
        "ray_same_bytes": same_bytes,
        "runs": {},
    }
    if peer:
        ours = set(runs["selectkit (sha256, top-k)"]["ids"])
        theirs = set(peer["ids"])
        same = len(ours & theirs)
        print(
            f"parity: {same} of {len(theirs)} reference picks also picked by selectkit "
            f"({'identical sets' if ours == theirs else 'sets differ'})"
        )
        result["parity"] = {
            "same": same,
            "reference": len(theirs),
            "selectkit": len(ours),
            "identical": ours == theirs,
        }
        print(
            f"reference stages: fit {fmt(peer['fit_s'], 1)} s, weigh {fmt(peer['weigh_s'], 1)} s,"
            f" resample {fmt(peer['resample_s'], 1)} s"
        )
    # quality: FOLDOC (a computing dictionary) is the raw source closest to the Jargon File target
    pool_share = _share_of(args.raw, "foldoc:")
    print(f"share of FOLDOC paragraphs: pool {pool_share:.3f}")
    for name, res in runs.items():
        if "ids" in res and res["docs"] == n_docs:
            share = sum(str(i).startswith("foldoc:") for i in res["ids"]) / max(len(res["ids"]), 1)
            res["foldoc_share"] = share
            print(f"  {name}: selection {share:.3f} ({share / pool_share:.1f}x the pool)")
    for name, res in runs.items():
        res = {k: v for k, v in res.items() if k not in ("ids", "stdout", "stderr", "manifest")}
        result["runs"][name] = res
        if "summary" in res:
            s = res["summary"]
            print(
                f"{name}: KL reduction {s.get('kl_reduction')} (KL target||random "
                f"{s.get('kl_target_random')}, target||selected {s.get('kl_target_selected')})"
            )
    print("wrote", write_json("bench_dsir", result))


if __name__ == "__main__":
    main()
