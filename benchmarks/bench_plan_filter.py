"""plan-filter on real data: does the best fraction to keep grow with compute? (issue 16 part 3)

Data: scikit-learn's digits (1,797 8x8 images, 10 classes), features / 16. Per seed: 400 test
rows (clean labels), the other 1,397 rows are the pool, cut in three random thirds whose labels
are flipped to another class (uniformly) with probability 0, 20% and 40%: tiers of known quality
(default), with the tier as the quality score. `--tiers knn`: 30% of the pool's labels flipped,
quality score = the share of a row's 10 nearest pool neighbours (Euclidean) with the same
observed label (k-NN agreement). Either way `sk.plan_filter(pool=..., bucket_edges=
"0.3333,0.6667")` cuts the pool into three score tiers (tier 0 = best), the paper's buckets
(`--buckets 5`: five, knn tiers only).

Training: SGDClassifier(loss="log_loss", alpha=1e-4, default "optimal" step size), partial_fit
over epochs of a fresh seeded permutation of the training rows, stopped after exactly n sample
presentations (the last epoch partial), so repetition = n / rows. Error = 1 - test accuracy.
n in {250, 500, 1000, 2000, 4000, 8000, 16000, 32000}.

1. Curves of each tier alone -> fit the law (shared a and d, b and tau per tier) -> plan for
   every n -> the planned best m (top-m tiers) per n.
2. Measured: the error of the top-1 (tier 0), top-2 and top-3 unions at every n -> the measured
   best m per n; the fit's predictions of the top-2/top-3 union curves (held out: never fitted)
   with tau scaled by m or not, and with d as a floor or inside the product.
5 seeds (noise draw, split, SGD order). Results on stdout and in benchmarks/out/bench_plan_filter_{noise,knn}.json.

    nice -n 10 .venv/bin/python benchmarks/bench_plan_filter.py     # 95-260 s on 2 shared cores
    nice -n 10 .venv/bin/python benchmarks/bench_plan_filter.py --tiers knn --buckets 5 --max-n 16000
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"
SEEDS = range(5)
NS = [100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000]
K = 3  # tiers (--buckets K, knn tiers only)
NOISE = 0.3
TIERS = "noise"  # --tiers knn: k-NN agreement tiers of a 30%-noisy pool
REPEATS = 2  # training orders averaged per point


def _train_error(x, y, xt, yt, rows, n, rng) -> float:
    return float(np.mean([_train_once(x, y, xt, yt, rows, n, rng) for _ in range(REPEATS)]))


def _train_once(x, y, xt, yt, rows, n, rng) -> float:
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(loss="log_loss", alpha=1e-4, shuffle=False, random_state=0)
    classes = np.arange(10)
    left = n
    while left > 0:
        perm = rng.permutation(rows)[: min(left, rows.size)]
        model.partial_fit(x[perm], y[perm], classes=classes)
        left -= perm.size
    return float(1.0 - (model.predict(xt) == yt).mean())


def _one_seed(seed: int, tmp: Path) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.neighbors import NearestNeighbors

    import selectkit as sk
    from selectkit.planfilter.law import mixture_error

    rng = np.random.default_rng(seed)
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    order = rng.permutation(len(y))
    test, train = order[:400], order[400:]
    xt, yt = x[test], y[test]
    xp, yp = x[train], y[train].copy()
    if TIERS == "knn":
        flip = rng.random(yp.size) < NOISE
    else:  # a random third clean, a third 20% flipped, a third 40% flipped
        third = rng.permutation(yp.size) % 3
        flip = rng.random(yp.size) < np.array([0.0, 0.2, 0.4])[third]
    yp[flip] = (yp[flip] + rng.integers(1, 10, flip.sum())) % 10
    if TIERS == "knn":
        nn = NearestNeighbors(n_neighbors=11).fit(xp)
        idx = nn.kneighbors(xp, return_distance=False)[:, 1:]
        agree = (yp[idx] == yp[:, None]).mean(axis=1)
    else:  # the quality score is the tier itself (plus a tie-free jitter)
        agree = 2.0 - third + rng.random(yp.size) * 0.5
    pool = tmp / f"pool{seed}.parquet"
    pl.DataFrame({"id": np.arange(yp.size), "quality": agree}).write_parquet(pool)
    buckets = tmp / f"buckets{seed}.parquet"
    sk.plan_filter(
        pool=pool,
        score_col="quality",
        bucket_edges=[round(i / K, 4) for i in range(1, K)],
        buckets_out=buckets,
        compute="1k",
    )
    tiers = pl.read_parquet(buckets).sort("bucket")
    tier_rows = [tiers.filter(pl.col("bucket") == t).get_column("id").to_numpy() for t in range(K)]
    clean_share = [float(1 - flip[r].mean()) for r in tier_rows]
    train_rng = np.random.default_rng(1000 + seed)
    single = {
        t: [_train_error(xp, yp, xt, yt, tier_rows[t], n, train_rng) for n in NS] for t in range(K)
    }
    unions = {
        m: [_train_error(xp, yp, xt, yt, np.concatenate(tier_rows[:m]), n, train_rng) for n in NS]
        for m in range(2, K + 1)
    }
    measured = np.array([single[0]] + [unions[m] for m in range(2, K + 1)])  # m x n
    curves = tmp / f"curves{seed}.csv"
    pl.DataFrame(
        [
            {"bucket": t, "pool_size": int(tier_rows[t].size), "samples_seen": n, "error": e}
            for t in range(K)
            for n, e in zip(NS, single[t], strict=True)
        ]
    ).write_csv(curves)
    out: dict = {
        "seed": seed,
        "tier_clean_share": clean_share,
        "tier_rows": [int(r.size) for r in tier_rows],
        "measured_error": measured.tolist(),
        "measured_best_m": (measured.argmin(axis=0) + 1).tolist(),
    }
    for d_form in ("floor", "inside"):
        for scale in (False, True):
            key = f"{d_form}{'_taum' if scale else ''}"
            params = tmp / f"params{seed}{key}.csv"
            summary = sk.plan_filter(
                curves,
                tmp / f"plan{seed}{key}.parquet",
                compute=NS,
                params_out=params,
                d_form=d_form,
                tau_scale_m=scale,
                seed=seed,
            )
            p = pl.read_csv(params).sort("bucket")
            pools = p["pool_size"].to_numpy()
            pred = np.array(
                [
                    mixture_error(
                        np.array(NS, float),
                        pools[:m],
                        p["b"].to_numpy()[:m],
                        p["tau"].to_numpy()[:m],
                        summary["a"],
                        summary["d"],
                        d_form=d_form,
                        tau_scale_m=scale,
                    )
                    for m in range(2, K + 1)
                ]
            )
            held = measured[1:]
            out[key] = {
                "a": summary["a"],
                "d": summary["d"],
                "b": p["b"].to_list(),
                "tau": p["tau"].to_list(),
                "b_unconstrained": p["b_unconstrained"].to_list(),
                "rmse_fit": p["rmse"].to_list(),
                "monotone_adjusted": summary["fit"]["monotone_adjusted"],
                "rmse_heldout_unions": float(np.sqrt(np.mean((pred - held) ** 2))),
                "planned_best_m": [r["m"] for r in summary["plan"]],
                "planned_keep_fraction": [r["keep_fraction"] for r in summary["plan"]],
            }
    return out


def _mean_sd(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4g} ± {v.std(ddof=1):.2g}"


def main() -> None:
    global TIERS, K, NS
    if "--tiers" in sys.argv:
        TIERS = sys.argv[sys.argv.index("--tiers") + 1]
    if "--buckets" in sys.argv:
        K = int(sys.argv[sys.argv.index("--buckets") + 1])
    if "--max-n" in sys.argv:
        NS = [n for n in NS if n <= int(sys.argv[sys.argv.index("--max-n") + 1])]
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_one_seed(s, Path(tmp)) for s in SEEDS]
    wall = time.perf_counter() - started
    what = (
        f"{NOISE:.0%} labels flipped, {K} k-NN agreement tiers"
        if TIERS == "knn"
        else "3 random tiers with 0% / 20% / 40% of labels flipped"
    )
    print(
        f"digits, pool 1,397 rows, {what}, SGD log-loss, {REPEATS} training orders per point; "
        f"{len(runs)} seeds; {wall:.0f} s"
    )
    print(
        "tier clean-label share:",
        [_mean_sd([r["tier_clean_share"][t] for r in runs]) for t in range(K)],
    )
    meas = np.array([r["measured_error"] for r in runs])  # seeds x m x n
    print("\nmeasured test error (mean ± sd over seeds); rows m = top-m tiers")
    print("n:      " + " ".join(f"{n:>13}" for n in NS))
    for m in range(K):
        print(
            f"top-{m + 1}:  " + " ".join(f"{_mean_sd(meas[:, m, j]):>13}" for j in range(len(NS)))
        )
    print("measured best m per seed:", [r["measured_best_m"] for r in runs])
    print("measured best m of the mean curves:", (meas.mean(0).argmin(0) + 1).tolist())
    for key in ("floor", "floor_taum", "inside", "inside_taum"):
        rows = [r[key] for r in runs]
        print(
            f"\n[{key}] a={_mean_sd([r['a'] for r in rows])} d={_mean_sd([r['d'] for r in rows])}"
        )
        for t in range(K):
            print(
                f"  tier {t}: b={_mean_sd([r['b'][t] for r in rows])} "
                f"tau={_mean_sd([r['tau'][t] for r in rows])} "
                f"fit rmse={_mean_sd([r['rmse_fit'][t] for r in rows])}"
            )
        print(
            f"  held-out union rmse={_mean_sd([r['rmse_heldout_unions'] for r in rows])}; "
            f"monotone adjusted in {sum(r['monotone_adjusted'] for r in rows)} of {len(rows)}"
        )
        print("  planned best m per seed:", [r["planned_best_m"] for r in rows])
        grows = [
            all(np.diff(r["planned_best_m"]) >= 0)
            and r["planned_best_m"][-1] > r["planned_best_m"][0]
            for r in rows
        ]
        agree = np.mean(
            [
                np.mean(np.array(r["planned_best_m"]) == np.array(m["measured_best_m"]))
                for r, m in zip(rows, runs, strict=True)
            ]
        )
        print(
            f"  planned m grows with compute in {sum(grows)} of {len(rows)} seeds; "
            f"planned = measured best m at {agree:.0%} of (seed, n)"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"bench_plan_filter_{TIERS}{K}.json").write_text(
        json.dumps({"ns": NS, "runs": runs, "wall_s": wall}, indent=1)
    )


if __name__ == "__main__":
    main()
