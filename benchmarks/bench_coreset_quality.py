"""Quality evidence for the coreset strategies on real data, over several seeds.

1. CCS at a 90% pruning rate: accuracy of a model trained on the subset (CCS vs random vs top-k
   by difficulty), and the coverage metric (mean distance from a pool row to its nearest pick).
2. Sensitivity sampling: error of the weighted estimate of the pool's mean loss against uniform
   sampling at the same sample size.
3. Balanced sampling: share of the rarest natural groups before and after.

    python benchmarks/bench_coreset_quality.py [--seeds 10] [--data digits|rt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import selectkit as sk
from selectkit.cluster.kmeans import assign, kmeans
from selectkit.dynamics import training_dynamics
from selectkit.metrics import coverage


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return (x / 16.0).astype(np.float32), y
    from selectkit.embed.pipeline import embed_texts

    rows = pl.read_ndjson(Path(__file__).parents[1] / "data_samples" / "rotten_tomatoes.jsonl")
    x = embed_texts(rows.get_column("text").to_list(), embedder="hashing")
    return x, rows.get_column("label").to_numpy()


def ccs_vs_baselines(x, y, seeds: int, keep: float, noise: float = 0.0) -> pl.DataFrame:
    """Train on each subset, test on a clean held-out quarter; ``noise`` flips that share of the
    training labels to another class (real data often carries some label noise)."""
    out = []
    classes = np.unique(y)
    for seed in range(seeds):
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
        rng = np.random.default_rng(1000 + seed)
        flip = rng.random(len(ytr)) < noise
        shift = rng.integers(1, classes.size, size=len(ytr))
        ytr = np.where(flip, classes[(np.searchsorted(classes, ytr) + shift) % classes.size], ytr)
        dyn = training_dynamics(xtr, ytr, epochs=10, rng=np.random.default_rng(seed))
        pool = sk.Pool.from_arrays(xtr, score=dyn["aum"])
        budget = round(keep * len(xtr))
        runs = {
            "ccs": ("ccs", {}),
            "random": ("random", {}),
            "topk-hardest": ("topk", {"order": "low"}),
            "topk-easiest": ("topk", {"order": "high"}),
        }
        for name, (strategy, params) in runs.items():
            _, sel = sk.select(pool, strategy, budget, seed=seed, params=params, metrics=False)
            idx = sel.indices
            if np.unique(ytr[idx]).size < 2:
                acc = float(np.mean(yte == ytr[idx][0]))
            else:
                clf = LogisticRegression(max_iter=2000).fit(xtr[idx], ytr[idx])
                acc = float(clf.score(xte, yte))
            cov = coverage(xtr, idx)["mean_distance"]
            out.append({"seed": seed, "method": name, "accuracy": acc, "coverage": cov})
    return pl.DataFrame(out)


def sensitivity_vs_uniform(x, y, seeds: int, m: int, k: int) -> pl.DataFrame:
    """Loss of a model trained on 10% of the data, on the other 90%: estimate its mean."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        train = rng.random(len(x)) < 0.1
        clf = LogisticRegression(max_iter=2000).fit(x[train], y[train])
        pool_x, pool_y = x[~train], y[~train]
        proba = clf.predict_proba(pool_x)
        col = np.searchsorted(clf.classes_, pool_y)
        loss = -np.log(np.clip(proba[np.arange(len(pool_y)), col], 1e-12, None))
        truth = loss.mean()
        fit = kmeans(pool_x, k, rng=np.random.default_rng(seed))
        clusters, _ = assign(pool_x, fit.centroids)
        pool = sk.Pool.from_arrays(pool_x, cluster=clusters, loss=loss)
        for lam, sampling in (("auto", "replacement"), ("auto", "pps"), (0.0, "replacement")):
            params = {"lam": lam, "sampling": sampling}
            _, sel = sk.select(pool, "sensitivity", m, seed=seed, params=params, metrics=False)
            est = float(sel.weights @ loss[sel.indices]) / len(loss)
            method = f"sensitivity lam={lam} {sampling}"
            out.append({"seed": seed, "method": method, "abs_error": abs(est - truth)})
        uniform = rng.choice(len(loss), size=m, replace=False)
        out.append(
            {"seed": seed, "method": "uniform", "abs_error": abs(loss[uniform].mean() - truth)}
        )
    return pl.DataFrame(out)


def balanced_shares(x, y, seeds: int, budget: int, k: int, thin: bool) -> pl.DataFrame:
    """Share of the rarest groups in the picks: the rarest class(es), and the third of the k
    k-means clusters with the fewest rows (the clusters balanced sampling walks down). ``thin``:
    make three classes rare first (keep 5% of them; digits is balanced); otherwise the least
    frequent class as it is (Rotten Tomatoes' plot synopses, 7.8%)."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        values, counts = np.unique(y, return_counts=True)
        rare = values[:3] if thin else values[np.argsort(counts)[:1]]
        keep = ~np.isin(y, rare) | (rng.random(len(y)) < 0.05) if thin else np.ones(len(y), bool)
        xs, ys = x[keep], y[keep]
        fit = kmeans(xs, k, rng=np.random.default_rng(seed))
        clusters, _ = assign(xs, fit.centroids)
        small = np.argsort(np.bincount(clusters, minlength=k), kind="stable")[: k // 3]
        pool = sk.Pool.from_arrays(xs, cluster=clusters)
        runs = {
            "balanced (input clusters)": ("balanced", {}),
            "balanced (own k-means, resampled)": ("balanced", {"levels": str(k)}),
            "random": ("random", {}),
        }
        for name, (strategy, params) in runs.items():
            _, sel = sk.select(pool, strategy, budget, seed=seed, params=params, metrics=False)
            out.append(
                {
                    "seed": seed,
                    "method": name,
                    "rare_class_share": float(np.isin(ys[sel.indices], rare).mean()),
                    "small_cluster_share": float(np.isin(clusters[sel.indices], small).mean()),
                }
            )
        out.append(
            {
                "seed": seed,
                "method": "pool",
                "rare_class_share": float(np.isin(ys, rare).mean()),
                "small_cluster_share": float(np.isin(clusters, small).mean()),
            }
        )
    return pl.DataFrame(out)


def summary(frame: pl.DataFrame, *cols: str) -> pl.DataFrame:
    aggs = [pl.col(c).mean().alias(f"{c}_mean") for c in cols]
    aggs += [pl.col(c).std().alias(f"{c}_std") for c in cols]
    return frame.group_by("method", maintain_order=True).agg(aggs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--data", default="digits", choices=("digits", "rt"))
    args = parser.parse_args()
    x, y = load(args.data)
    pl.Config.set_tbl_rows(20)
    pl.Config.set_tbl_width_chars(200)
    pl.Config.set_fmt_str_lengths(40)
    print(f"data={args.data} n={len(x)} d={x.shape[1]} seeds={args.seeds}")
    for noise in (0.0, 0.2):
        print(f"\n== CCS at 90% pruning (keep 10%), {noise:.0%} of training labels flipped ==")
        print(summary(ccs_vs_baselines(x, y, args.seeds, 0.10, noise), "accuracy", "coverage"))
    print("\n== sensitivity: |weighted mean-loss estimate - truth|, m = 300, k = 20 ==")
    print(summary(sensitivity_vs_uniform(x, y, 3 * args.seeds, 300, 20), "abs_error"))
    thin = args.data == "digits"
    what = "three classes thinned to 5%" if thin else "the rarest class"
    print(f"\n== balanced over 30 k-means clusters: share of {what} in 200 picks ==")
    shares = balanced_shares(x, y, args.seeds, 200, 30, thin)
    print(summary(shares, "rare_class_share", "small_cluster_share"))


if __name__ == "__main__":
    main()
