"""Moderate-DS coreset and weight broadcast (The Power of Few): quality on digits, cost at 100k.

1. Accuracy: scikit-learn's digits, a stratified 70/30 split per seed; moderate (labels as the
   classes), random, kcenter and typiclust pick 1%, 5% and 10% of the training rows; a logistic
   regression trained on the picks is scored on the test rows. 5 seeds: mean +- sd.
2. Broadcast: 30% of the training labels flipped to another class (uniformly); a 5% moderate
   coreset on the noisy labels; coreset weight = cross-validated p(y_obs | x) on the coreset
   (3-fold logistic regression); weights broadcast to every training row by 1-NN and 5-NN
   (``--kernel distance``) with ``selectkit weights broadcast``; logistic regression on all
   (noisy) training rows, weighted vs unweighted, clean test accuracy. 5 seeds.
3. Cost: 100,000 synthetic rows (Gaussian mixture, 64-d float32, 100 classes; synthetic data for
   the cost figure only): ``selectkit select --strategy moderate --budget 10%`` and
   ``selectkit weights broadcast`` of that 10% coreset to all rows, each in its own child
   process; wall time and peak RSS (``ru_maxrss`` of the child) next to a child that only
   imports selectkit.

    .venv/bin/python benchmarks/bench_moderate.py          # ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_moderate.py --rows 1000000 --coreset 1%   # + ~1 min
Results on stdout and in benchmarks/out/bench_moderate.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SEEDS = range(5)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import digits_split, measured  # noqa: E402


def fit_score(x, y, xt, yt, weight=None):
    from sklearn.linear_model import LogisticRegression

    if np.unique(y).size < 2:
        return float(np.mean(yt == y[0]))
    model = LogisticRegression(max_iter=2000)
    model.fit(x, y, sample_weight=weight)
    return float(model.score(xt, yt))


def accuracy_table():
    import selectkit as sk

    out = {}
    for frac in (0.01, 0.05, 0.10):
        for strategy in ("moderate", "random", "kcenter", "typiclust"):
            accs = []
            for seed in SEEDS:
                x, xt, y, yt = digits_split(seed)
                # moderate reads the labels as its classes; random/kcenter see none
                pool = sk.Pool.from_arrays(x, labels=y if strategy == "moderate" else None)
                budget = max(1, round(frac * len(x)))
                _, sel = sk.select(pool, strategy, budget, seed=seed, metrics=False)
                accs.append(fit_score(x[sel.indices], y[sel.indices], xt, yt))
            out[f"{strategy}@{frac:.0%}"] = (float(np.mean(accs)), float(np.std(accs)))
    return out


def rt_table():
    """The same comparison on the bundled Rotten Tomatoes snippets (3,000 rows, labels fresh /
    rotten / plot), embedded by selectkit's built-in hashing embedder; 5% and 10%."""
    from sklearn.model_selection import train_test_split

    import selectkit as sk

    corpus = pl.read_ndjson(REPO / "data_samples" / "rotten_tomatoes.jsonl")
    x = sk.embed_texts(corpus["text"].to_list())
    y = np.unique(corpus["label"].to_numpy(), return_inverse=True)[1]
    out = {}
    for frac in (0.05, 0.10):
        for strategy in ("moderate", "random", "kcenter", "typiclust"):
            accs = []
            for seed in SEEDS:
                xa, xt, ya, yt = train_test_split(
                    x, y, test_size=0.3, stratify=y, random_state=seed
                )
                pool = sk.Pool.from_arrays(xa, labels=ya if strategy == "moderate" else None)
                _, sel = sk.select(pool, strategy, round(frac * len(xa)), seed=seed, metrics=False)
                accs.append(fit_score(xa[sel.indices], ya[sel.indices], xt, yt))
            out[f"{strategy}@{frac:.0%}"] = (float(np.mean(accs)), float(np.std(accs)))
    return out


def broadcast_table():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    import selectkit as sk

    rows = {"unweighted": [], "1-NN": [], "5-NN": [], "oracle (clean mask)": []}
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x, xt, y, yt = digits_split(seed)
        noisy = y.copy()
        flip = rng.random(y.size) < 0.3
        noisy[flip] = (y[flip] + rng.integers(1, 10, size=int(flip.sum()))) % 10
        ids = np.arange(len(x))
        _, sel = sk.select(
            sk.Pool.from_arrays(x, ids=ids, labels=noisy),
            "moderate",
            "5%",
            seed=seed,
            metrics=False,
        )
        core = sel.indices
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proba = cross_val_predict(
                LogisticRegression(max_iter=2000),
                x[core],
                noisy[core],
                cv=3,
                method="predict_proba",
            )
        classes = np.unique(noisy[core])
        col = np.searchsorted(classes, noisy[core])
        w_core = proba[np.arange(core.size), col]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            pl.DataFrame({"id": ids, "embedding": x}).write_parquet(tmp / "pool.parquet")
            pl.DataFrame({"id": ids[core], "weight": w_core}).write_parquet(tmp / "core.parquet")
            for name, k in (("1-NN", 1), ("5-NN", 5)):
                sk.broadcast_weights(
                    tmp / "core.parquet", tmp / "pool.parquet", tmp / "w.parquet", k=k,
                    kernel="distance",
                )  # fmt: skip
                w = pl.read_parquet(tmp / "w.parquet").sort("id")["weight"].to_numpy()
                rows[name].append(fit_score(x, noisy, xt, yt, weight=w + 1e-6))
        rows["unweighted"].append(fit_score(x, noisy, xt, yt))
        rows["oracle (clean mask)"].append(fit_score(x[~flip], noisy[~flip], xt, yt))
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in rows.items()}


def cost_table(n=100_000, d=64, classes=100, coreset="10%"):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, d)).astype(np.float32) * 3
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(size=(n, d)).astype(np.float32)
    exe = [sys.executable, "-m", "selectkit", "-q"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pl.DataFrame({"id": np.arange(n), "embedding": x, "label": y}).write_parquet(
            tmp / "emb.parquet"
        )
        base = measured([sys.executable, "-c", "import selectkit, selectkit.cli.app, faiss"])
        sel = measured(
            [*exe, "select", str(tmp / "emb.parquet"), "--strategy", "moderate", "--budget",
             coreset, "-o", str(tmp / "core.parquet")]
        )  # fmt: skip
        bc = measured(
            [*exe, "weights", "broadcast", str(tmp / "core.parquet"), str(tmp / "emb.parquet"),
             "-o", str(tmp / "w.parquet")]
        )  # fmt: skip
    return {
        "rows": n,
        "dim": d,
        "data_mib": n * d * 4 / 2**20,
        "import_only": base,
        "select moderate": sel,
        "weights broadcast": bc,
        "coreset": coreset,
    }


def main():
    rows = int(sys.argv[sys.argv.index("--rows") + 1]) if "--rows" in sys.argv else 100_000
    coreset = sys.argv[sys.argv.index("--coreset") + 1] if "--coreset" in sys.argv else "10%"
    results = {
        "accuracy": accuracy_table(),
        "rotten_tomatoes": rt_table(),
        "broadcast": broadcast_table(),
        "cost": cost_table(n=rows, coreset=coreset),
    }
    print("digits, logistic regression test accuracy, 5 seeds (mean +- sd)")
    for key, (m, s) in results["accuracy"].items():
        print(f"  {key:16s} {m:.3f} +- {s:.3f}")
    print("rotten tomatoes (hashing embeddings), logistic regression, 5 seeds")
    for key, (m, s) in results["rotten_tomatoes"].items():
        print(f"  {key:16s} {m:.3f} +- {s:.3f}")
    print("30% label noise, 5% moderate coreset, weights = CV p(y_obs|x), broadcast")
    for key, (m, s) in results["broadcast"].items():
        print(f"  {key:22s} {m:.3f} +- {s:.3f}")
    cost = results["cost"]
    print(
        f"cost at {cost['rows']} x {cost['dim']} synthetic rows ({cost['data_mib']:.0f} MiB), "
        f"coreset {cost['coreset']}:"
    )
    for key in ("import_only", "select moderate", "weights broadcast"):
        secs, mib = cost[key]
        print(f"  {key:32s} {secs:6.2f} s  peak RSS {mib:7.0f} MiB")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_moderate.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
