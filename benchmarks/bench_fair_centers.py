"""Group ranges on every strategy and ``fair-centers`` (fair range clustering, Hotegni et al. 2023).

1. Exact bounds on real corpora with real groups: scikit-learn's digits (group = digit, k = 50,
   every range [3, 8]) and Rotten Tomatoes (hashing embeddings, group = its label: plot 235,
   rotten 1,167, fresh 1,598 rows; k = 100, plot >= 40, rotten >= 30, fresh <= 20), for random, kcenter, margin
   (digits only: a logistic regression's proba), topk (digits: max proba as score) and
   fair-centers. Reports the counts' violations (must be 0), the rounds and the skipped picks.
2. Cost of fair-centers vs the unconstrained solution (the same algorithm without ranges, the
   ``fair_centers_cost_ratio`` metric) and vs range-constrained random picks (random with the
   same ranges), k-median cost on all digits rows; 5 seeds, mean +- sd.
3. vs brute force: 40 random digits rows projected to 8 dimensions (PCA), groups = digit mod 3,
   k = 4, four range settings, three objectives, 5 seeds (other rows each): the heuristic cost
   over the optimum over every feasible 4-subset.
4. Cost at 1M rows: synthetic Gaussian-mixture vectors (1,000,000 x 32 float32, 20 groups;
   synthetic data for the cost figure only), fair-centers k = 100 with ranges on 5 groups (it
   also runs the unconstrained solution for the ratio), in a child process: wall time and peak
   RSS (``ru_maxrss``), next to a child that only builds the data.

    nice -n 10 .venv/bin/python benchmarks/bench_fair_centers.py            # ~3 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/bench_fair_centers.py --no-1m    # parts 1-3 only
Results on stdout and in benchmarks/out/bench_fair_centers.json.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_report, run_child, write_json

SEEDS = range(5)


def digits_frame(rows=None, dims=None, groups=None):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target
    proba = LogisticRegression(max_iter=500).fit(x[::4], y[::4]).predict_proba(x)
    if rows is not None:
        x, y, proba = x[rows], y[rows], proba[rows]
    if dims is not None:
        xc = x - x.mean(axis=0)
        x = (xc @ np.linalg.svd(xc, full_matrices=False)[2][:dims].T).astype(np.float32)
    g = y if groups is None else groups(y)
    return pl.DataFrame(
        {
            "id": [f"d{i:04d}" for i in range(len(x))],
            "embedding": x,
            "proba": proba.tolist(),
            "score": proba.max(axis=1),
            "group": [str(v) for v in g],
        }
    )


def kmedian_cost(x, picks):
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(x[picks]))
    dist, _ = index.search(x, 1)
    return float(np.sqrt(np.maximum(dist[:, 0], 0)).sum())


def violations(counts, mins, maxs):
    bad = sum(counts.get(g, 0) < m for g, m in mins.items())
    return bad + sum(counts.get(g, 0) > m for g, m in maxs.items())


def part_exact_bounds():
    import selectkit as sk
    from selectkit import Pool, select
    from selectkit.pool import Columns

    rows = []
    digits = Pool(frame=digits_frame(), columns=Columns())
    classes = [str(c) for c in range(10)]
    mins, maxs = {g: 3 for g in classes}, {g: 8 for g in classes}
    for strategy in ("random", "kcenter", "margin", "topk", "fair-centers"):
        for seed in SEEDS:
            t = time.perf_counter()
            _, sel = select(digits, strategy, 50, seed=seed, group_min=mins, group_max=maxs)
            m = sel.metrics
            rows.append(
                {
                    "corpus": "digits",
                    "strategy": strategy,
                    "seed": seed,
                    "violations": violations(m["group_counts"], mins, maxs),
                    "rounds": m["group_ranges_rounds"],
                    "skipped": m["group_ranges_skipped"],
                    "seconds": round(time.perf_counter() - t, 3),
                }
            )
    # Rotten Tomatoes: hashing embeddings of the bundled corpus, group = its genre label
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        emb = Path(tmp) / "emb.parquet"
        sk.embed_file("data_samples/rotten_tomatoes.jsonl", emb)
        meta = pl.read_ndjson("data_samples/rotten_tomatoes.jsonl").select(
            "id", pl.col("label").alias("source")
        )
        pool = Pool(frame=pl.read_parquet(emb).join(meta, on="id"), columns=Columns(group="source"))
    sizes = dict(meta.get_column("source").value_counts().rows())
    by_size = sorted(sizes, key=sizes.get)
    mins = {by_size[0]: 40, by_size[1]: 30}  # plot (235 rows) >= 40, rotten >= 30
    maxs = {by_size[-1]: 20}  # fresh (1,598 rows) <= 20
    for strategy in ("random", "kcenter", "fair-centers"):
        for seed in SEEDS:
            t = time.perf_counter()
            _, sel = select(pool, strategy, 100, seed=seed, group_min=mins, group_max=maxs)
            m = sel.metrics
            rows.append(
                {
                    "corpus": "rotten_tomatoes",
                    "strategy": strategy,
                    "seed": seed,
                    "violations": violations(m["group_counts"], mins, maxs),
                    "rounds": m["group_ranges_rounds"],
                    "skipped": m["group_ranges_skipped"],
                    "seconds": round(time.perf_counter() - t, 3),
                }
            )
    return {"rows": rows, "rt_groups": sizes, "rt_mins": mins, "rt_maxs": maxs}


def part_cost_vs_unconstrained():
    from selectkit import Pool, select
    from selectkit.pool import Columns

    frame = digits_frame()
    pool = Pool(frame=frame, columns=Columns())
    x = pool.embeddings
    out = {}
    for label, lo, hi in (("[3, 8] every digit", 3, 8), ("[5, 5] every digit", 5, 5)):
        mins = {str(c): lo for c in range(10)}
        maxs = {str(c): hi for c in range(10)}
        ratio, fair, free, rand = [], [], [], []
        for seed in SEEDS:
            _, sel = select(pool, "fair-centers", 50, seed=seed, group_min=mins, group_max=maxs)
            ratio.append(sel.metrics["fair_centers_cost_ratio"])
            fair.append(sel.metrics["fair_centers_cost"])
            free.append(sel.metrics["fair_centers_unconstrained_cost"])
            _, rs = select(pool, "random", 50, seed=seed, group_min=mins, group_max=maxs)
            rand.append(kmedian_cost(x, rs.indices))
        out[label] = {
            "ratio_to_unconstrained": [float(np.mean(ratio)), float(np.std(ratio))],
            "fair_cost": [float(np.mean(fair)), float(np.std(fair))],
            "unconstrained_cost": [float(np.mean(free)), float(np.std(free))],
            "random_with_ranges_cost": [float(np.mean(rand)), float(np.std(rand))],
        }
    # a tight min on a tiny outlier group: 10 centres forced out of the 30 rows of digit 0
    # farthest from the mean of the pool (the pitfall the brief names)
    far = np.argsort(-((x - x.mean(0)) ** 2).sum(1))[:30]
    frame2 = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(far.tolist()))
        .then(pl.lit("outlier"))
        .otherwise(pl.lit("rest"))
        .alias("group")
    )
    pool2 = Pool(frame=frame2, columns=Columns())
    ratios = []
    for seed in SEEDS:
        _, sel = select(pool2, "fair-centers", 50, seed=seed, group_min={"outlier": 10})
        ratios.append(sel.metrics["fair_centers_cost_ratio"])
    out["min 10 of 30 outliers"] = {
        "ratio_to_unconstrained": [float(np.mean(ratios)), float(np.std(ratios))]
    }
    return out


RANGES = [
    ((1, 1, 1), (1, 2, 4)),
    ((2, 0, 0), (2, 1, 4)),
    ((0, 0, 2), (0, 4, 4)),
    ((1, 1, 0), (4, 4, 0)),
]


def brute_force(x, groups, k, lo, hi, p):
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1).astype(np.float64)
    subsets = np.array(list(itertools.combinations(range(len(x)), k)))
    per = np.stack([np.bincount(g, minlength=len(lo)) for g in groups[subsets]])
    ok = ((per >= lo) & (per <= hi)).all(axis=1)
    nearest = sq[subsets[ok]].min(axis=1)
    if p == 1:
        return float(np.sqrt(nearest).sum(1).min())
    if p == 2:
        return float(nearest.sum(1).min())
    return float(np.sqrt(nearest.max(1)).min())


def part_brute_force():
    from selectkit import Pool, select
    from selectkit.pool import Columns

    out = {}
    for objective, p in (("kmedian", 1), ("kmeans", 2), ("kcenter", np.inf)):
        ratios = []
        for seed in SEEDS:
            rows = np.random.default_rng(seed).choice(1797, 40, replace=False)
            frame = digits_frame(rows, dims=8, groups=lambda y: y % 3)
            pool = Pool(frame=frame, columns=Columns())
            x = pool.embeddings
            groups = np.array([int(v) for v in frame.get_column("group")])
            for lo, hi in RANGES:
                _, sel = select(
                    pool, "fair-centers", 4, seed=seed, params={"objective": objective},
                    group_min={str(g): v for g, v in enumerate(lo)},
                    group_max={str(g): v for g, v in enumerate(hi)},
                )  # fmt: skip
                best = brute_force(x, groups, 4, np.array(lo), np.array(hi), p)
                ratios.append(sel.metrics["fair_centers_cost"] / best)
        r = np.array(ratios)
        out[objective] = {
            "instances": int(r.size),
            "mean": float(r.mean()),
            "max": float(r.max()),
            "optimal_share": float(np.mean(r < 1 + 1e-6)),
        }
    return out


CHILD = """
import sys, time
import numpy as np, polars as pl
n, d, k = 1_000_000, 32, 100
rng = np.random.default_rng(0)
centres = rng.normal(0, 4, (20, d)).astype(np.float32)
g = rng.integers(0, 20, n)
x = np.empty((n, d), dtype=np.float32)  # in chunks: the data's own peak stays near 128 MB
for s in range(0, n, 100_000):
    x[s : s + 100_000] = centres[g[s : s + 100_000]] + rng.normal(0, 1, (min(100_000, n - s), d))
names = pl.Series([f"g{v:02d}" for v in range(20)])
frame = pl.DataFrame({"id": np.arange(n), "group": names.gather(g)})
if sys.argv[1] == "select":
    from selectkit import Pool, select
    pool = Pool(frame=frame, arrays={"embedding": x})
    t = time.perf_counter()
    _, sel = select(pool, "fair-centers", k, group_min={"g00": 20, "g01": 10},
                    group_max={"g02": 0, "g03": 1, "g04": 2}, metrics=False)
    m = sel.metrics
    print(time.perf_counter() - t, m["fair_centers_cost_ratio"], m["fair_centers_swaps"],
          m["group_counts"]["g00"], m["group_counts"]["g02"])
"""


def part_1m():
    base = run_child([sys.executable, "-c", CHILD, "data"], timeout=600)
    run = run_child([sys.executable, "-c", CHILD, "select"], timeout=900)
    fields = run["stdout"].split()
    return {
        "rows": 1_000_000,
        "dims": 32,
        "k": 100,
        "rc": run["rc"],
        "select_s": float(fields[0]) if fields else None,
        "cost_ratio": float(fields[1]) if fields else None,
        "swaps": int(fields[2]) if fields else None,
        "child_wall_s": run["wall_s"],
        "peak_rss_mib": run["peak_rss_mib"],
        "data_only_peak_rss_mib": base["peak_rss_mib"],
        "data_only_wall_s": base["wall_s"],
        "stderr_tail": run["stderr"][-500:],
    }


def main():
    payload = {"env": env_report()}
    t = time.perf_counter()
    payload["exact_bounds"] = part_exact_bounds()
    rows = payload["exact_bounds"]["rows"]
    print("1. exact bounds (violations must be 0)")
    for (corpus, strategy), grp in itertools.groupby(
        rows, key=lambda r: (r["corpus"], r["strategy"])
    ):
        grp = list(grp)
        print(
            f"  {corpus:16s} {strategy:13s} violations={sum(r['violations'] for r in grp)} "
            f"rounds={[r['rounds'] for r in grp]} skipped={[r['skipped'] for r in grp]} "
            f"s={np.median([r['seconds'] for r in grp]):.2f}"
        )
    payload["cost_vs_unconstrained"] = part_cost_vs_unconstrained()
    print("2. fair-centers k-median cost on digits (k=50, 5 seeds, mean +- sd)")
    for label, res in payload["cost_vs_unconstrained"].items():
        print(f"  {label}: " + ", ".join(f"{k}={v[0]:.3f}+-{v[1]:.3f}" for k, v in res.items()))
    payload["brute_force"] = part_brute_force()
    print("3. vs brute force (n=40, k=4, 3 groups; 4 ranges x 5 seeds)")
    for objective, res in payload["brute_force"].items():
        print(f"  {objective}: {res}")
    if "--no-1m" not in sys.argv:
        payload["cost_1m"] = part_1m()
        print("4. 1M rows:", {k: v for k, v in payload["cost_1m"].items() if k != "stderr_tail"})
    payload["total_s"] = time.perf_counter() - t
    print("written", write_json("bench_fair_centers", payload))


if __name__ == "__main__":
    main()
