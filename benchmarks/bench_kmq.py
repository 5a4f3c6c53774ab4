"""kmq (Yu et al. 2024, "Diversify and Conquer") against its baselines on real labelled data.

1. Static (sklearn digits, 1,797 x 64): per seed a stratified 70/30 split; 20% of the training
   labels are flipped to a random other class; the quality q of a training row is the 5-fold
   cross-validated p(y_obs | x) of a logistic regression fitted on the noisy training rows (an
   informative score: flipped rows get low q). random, topk-by-q, kM-Random, kMQ (within=quality,
   T = 1), kMQ (softmax, T = 0.1) and kM-Closest pick 5% and 10% of the training rows; kmq's
   arms cluster with the same seeded k-means (k = 10 and 20). A logistic regression trained on
   the picks with their observed (noisy) labels is scored on the clean test rows. Also the
   coverage of the picks (mean distance from a training row to its nearest pick) and the share
   of flipped rows picked. 10 seeds, mean +- sd.
2. Iterative (digits): 10% in 3 rounds of kMQ. 20% of the training rows are a validation split
   (never selectable). After each round a model is trained on every row picked so far; its
   held-out log loss on the validation rows of each cluster is every picked row's feedback
   (``selectkit.kmq_weights``, eq. 6 with memory); the next round selects with
   ``--cluster-weights`` and excludes the earlier rounds. Compared with static kMQ at the same
   total budget on the same training rows. 10 seeds.
3. Cost: 1,000,000 x 64 synthetic float32 vectors (cost only), 1,000 clusters, a quality column;
   ``selectkit select --strategy kmq --budget 10%`` through the CLI in a child process (wall,
   peak RSS of the child), with and without --no-metrics, and one with --k 100 (its own k-means).

    nice -n 10 /work/main/.venv/bin/python benchmarks/bench_kmq.py            # 1 + 2 (~2 min)
    nice -n 10 /work/main/.venv/bin/python benchmarks/bench_kmq.py --cost     # 3 (~2 min)
    nice -n 10 /work/main/.venv/bin/python benchmarks/bench_kmq.py --noise 0 --static-only
    nice -n 10 /work/main/.venv/bin/python benchmarks/bench_kmq.py --rt   # Rotten Tomatoes, AUM
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict, train_test_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import selectkit as sk  # noqa: E402

SEEDS = range(10)
NOISE = float(sys.argv[sys.argv.index("--noise") + 1]) if "--noise" in sys.argv else 0.2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measured  # noqa: E402


def noisy_digits(seed):
    """(x_train, y_obs, flipped, x_test, y_test, q) for one seed."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.3, stratify=d.target,
                                          random_state=seed)  # fmt: skip
    rng = np.random.default_rng(seed)
    flip = rng.random(ytr.size) < NOISE
    y_obs = ytr.copy()
    y_obs[flip] = (ytr[flip] + rng.integers(1, 10, flip.sum())) % 10
    proba = cross_val_predict(LogisticRegression(max_iter=300), xtr, y_obs, cv=5,
                              method="predict_proba")  # fmt: skip
    q = proba[np.arange(y_obs.size), y_obs]
    return xtr, y_obs, flip, xte, yte, q


def noisy_rt(seed):
    """The same for the bundled Rotten Tomatoes snippets (3,000 rows, fresh / rotten / plot),
    selectkit's hashing embeddings; the quality is the AUM of `selectkit scores` (training
    dynamics on the noisy training labels: low = hard or mislabelled)."""
    corpus = pl.read_ndjson(REPO / "data_samples" / "rotten_tomatoes.jsonl")
    x = sk.embed_texts(corpus["text"].to_list())
    y = np.unique(corpus["label"].to_numpy(), return_inverse=True)[1]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    flip = rng.random(ytr.size) < NOISE
    y_obs = ytr.copy()
    y_obs[flip] = (ytr[flip] + rng.integers(1, 3, flip.sum())) % 3
    dyn = sk.scores_for_pool(sk.Pool.from_arrays(xtr, labels=y_obs), seed=seed)
    return xtr, y_obs, flip, xte, yte, dyn["aum"].to_numpy()


def rt_arms(k=20):
    return {
        "random": ("random", {}),
        "topk-aum": ("topk", {}),
        f"kM-Random k={k}": ("kmq", {"k": k, "within": "uniform"}),
        f"kMQ softmax T=1 k={k}": ("kmq", {"k": k, "within": "softmax"}),
        f"kMQ softmax T=0.3 k={k}": ("kmq", {"k": k, "within": "softmax", "temperature": 0.3}),
        f"kM-Closest k={k}": ("kmq", {"k": k, "within": "closest"}),
    }


def rt_table():
    out = {}
    for seed in SEEDS:
        xtr, y_obs, flip, xte, yte, q = noisy_rt(seed)
        pool = sk.Pool.from_arrays(xtr, score=q)
        for frac in (0.05, 0.10):
            for name, (strategy, params) in rt_arms().items():
                _, sel = sk.select(pool, strategy, round(frac * len(xtr)), seed=seed,
                                   params=params)  # fmt: skip
                idx = sel.indices
                row = out.setdefault((frac, name), {"acc": [], "cov": [], "noisy": []})
                row["acc"].append(fit_score(xtr[idx], y_obs[idx], xte, yte))
                row["cov"].append(sel.metrics["coverage_mean_distance"])
                row["noisy"].append(float(flip[idx].mean()))
    return {
        f"{int(frac * 100)}% {name}": {
            m: (float(np.mean(v)), float(np.std(v))) for m, v in r.items()
        }
        for (frac, name), r in out.items()
    }


def fit_score(x, y, xt, yt):
    if np.unique(y).size < 2:
        return float(np.mean(yt == y[0]))
    model = LogisticRegression(max_iter=500).fit(x, y)
    return float(model.score(xt, yt))


def arms(k):
    return {
        "random": ("random", {}),
        "topk-q": ("topk", {}),
        f"kM-Random k={k}": ("kmq", {"k": k, "within": "uniform"}),
        f"kMQ k={k}": ("kmq", {"k": k}),
        f"kMQ softmax T=0.1 k={k}": ("kmq", {"k": k, "within": "softmax", "temperature": 0.1}),
        f"kM-Closest k={k}": ("kmq", {"k": k, "within": "closest"}),
    }


def static_table():
    out = {}
    for seed in SEEDS:
        xtr, y_obs, flip, xte, yte, q = noisy_digits(seed)
        pool = sk.Pool.from_arrays(xtr, score=q)
        for frac in (0.05, 0.10):
            b = round(frac * len(xtr))
            for k in (10, 20):
                for name, (strategy, params) in arms(k).items():
                    if k == 20 and name in ("random", "topk-q"):
                        continue
                    _, sel = sk.select(pool, strategy, b, seed=seed, params=params)
                    idx = sel.indices
                    row = out.setdefault((frac, name), {"acc": [], "cov": [], "noisy": []})
                    row["acc"].append(fit_score(xtr[idx], y_obs[idx], xte, yte))
                    row["cov"].append(sel.metrics["coverage_mean_distance"])
                    row["noisy"].append(float(flip[idx].mean()))
    return {
        f"{int(frac * 100)}% {name}": {
            m: (float(np.mean(v)), float(np.std(v))) for m, v in r.items()
        }
        for (frac, name), r in out.items()
    }


def iterative_table(k=10, frac=0.10, rounds=3):
    res = {"static kMQ": [], "iterative kMQ (3 rounds)": [], "weight spread (max/min)": []}
    for seed in SEEDS:
        xtr, y_obs, _flip, xte, yte, q = noisy_digits(seed)
        rng = np.random.default_rng(1000 + seed)
        val = rng.random(len(xtr)) < 0.2
        pool_rows = np.flatnonzero(~val)
        b = round(frac * pool_rows.size)
        # one clustering (seeded k-means) shared by both arms and by the validation rows
        km = sk.kmeans(xtr, k, rng=np.random.default_rng(seed))
        clusters = km.labels.astype(np.int32)
        ids = np.arange(len(xtr))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            pl.DataFrame({"id": ids[pool_rows], "embedding": xtr[pool_rows],
                          "cluster": clusters[pool_rows], "score": q[pool_rows]}).write_parquet(
                tmp / "pool.parquet")  # fmt: skip
            sk.select_files([tmp / "pool.parquet"], tmp / "static.parquet", strategy="kmq",
                            budget=b, seed=seed, metrics=False)  # fmt: skip
            picked = pl.read_parquet(tmp / "static.parquet")["id"].to_numpy()
            res["static kMQ"].append(fit_score(xtr[picked], y_obs[picked], xte, yte))
            done, weights = [], None
            for r in range(rounds):
                part = b // rounds + (1 if r < b % rounds else 0)
                man = tmp / f"round{r}.parquet"
                params = {"cluster_weights": str(weights)} if weights else {}
                sk.select_files([tmp / "pool.parquet"], man, strategy="kmq", budget=part,
                                seed=seed, params=params, exclude=done or None,
                                metrics=False)  # fmt: skip
                done.append(man)
                sofar = np.concatenate([pl.read_parquet(m)["id"].to_numpy() for m in done])
                if r == rounds - 1:
                    break
                model = LogisticRegression(max_iter=500).fit(xtr[sofar], y_obs[sofar])
                p = model.predict_proba(xtr[val])
                cls = list(model.classes_)
                col = np.array([cls.index(v) if v in cls else -1 for v in y_obs[val]])
                loss = -np.log(np.where(col >= 0, p[np.arange(col.size), col], 1e-3) + 1e-9)
                per_cluster = np.bincount(clusters[val], weights=loss, minlength=k) / np.maximum(
                    np.bincount(clusters[val], minlength=k), 1)  # fmt: skip
                rows = pl.read_parquet(man)
                fb = tmp / f"fb{r}.parquet"
                pl.DataFrame({"id": rows["id"],
                              "feedback": per_cluster[rows["cluster"].to_numpy()]}).write_parquet(fb)  # fmt: skip
                new = tmp / f"w{r}.parquet"
                sk.kmq_weights(man, fb, new, prior=weights)
                weights = new
            w = pl.read_parquet(weights)["weight"].to_numpy()
            res["weight spread (max/min)"].append(float(w.max() / max(w.min(), 1e-12)))
            res["iterative kMQ (3 rounds)"].append(fit_score(xtr[sofar], y_obs[sofar], xte, yte))
            assert sofar.size == b and np.unique(sofar).size == b
    return {name: (float(np.mean(v)), float(np.std(v))) for name, v in res.items()}


def cost_table(n=1_000_000, d=64, k=1000):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    exe = [sys.executable, "-m", "selectkit", "-q"]
    out = {"rows": n, "dim": d, "clusters": k, "data_mib": n * d * 4 / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "emb.npy", x)
        pl.DataFrame({"id": np.arange(n), "cluster": rng.integers(0, k, n).astype(np.int32),
                      "quality": rng.random(n)}).write_parquet(tmp / "cq.parquet")  # fmt: skip
        del x
        out["import only"] = measured([sys.executable, "-c", "import selectkit.cli.app, faiss"])
        base = [*exe, "select", str(tmp / "emb.npy"), str(tmp / "cq.parquet"), "-s", "kmq",
                "--quality-col", "quality", "-b", "10%"]  # fmt: skip
        out["kmq 10%"] = measured([*base, "-o", str(tmp / "m1.parquet")])
        out["kmq 10% --no-metrics"] = measured(
            [*base, "--no-metrics", "-o", str(tmp / "m2.parquet")]
        )
        out["kmq 10% --within closest --no-metrics"] = measured(
            [*base, "--within", "closest", "--no-metrics", "-o", str(tmp / "m3.parquet")]
        )
        out["kmq 10% --exclude (100k rows) --no-metrics"] = measured(
            [*base, "--no-metrics", "--exclude", str(tmp / "m1.parquet"), "-o",
             str(tmp / "m4.parquet")]
        )  # fmt: skip
    return out


def show(title, rows):
    print(title)
    for name, stats in rows.items():
        if isinstance(stats, dict):
            cells = "  ".join(f"{m} {a:.3f} ± {s:.3f}" for m, (a, s) in stats.items())
        elif isinstance(stats, tuple) and len(stats) == 2:
            cells = f"{stats[0]:.3f} ± {stats[1]:.3f}"
        else:
            cells = str(stats)
        print(f"  {name:40s} {cells}")


def main():
    outdir = REPO / "benchmarks" / "out"
    outdir.mkdir(exist_ok=True)
    if "--cost" in sys.argv:
        cost = cost_table()
        for key, val in cost.items():
            if isinstance(val, tuple):
                print(f"  {key:45s} {val[0]:6.1f} s  peak RSS {val[1]:7.0f} MiB")
            else:
                print(f"  {key:45s} {val}")
        (outdir / "bench_kmq_cost.json").write_text(json.dumps(cost, indent=1))
        return
    if "--rt" in sys.argv:
        rt = rt_table()
        show(f"Rotten Tomatoes, {int(NOISE * 100)}% flipped training labels, quality = AUM, "
             f"{len(SEEDS)} seeds", rt)  # fmt: skip
        (outdir / "bench_kmq_rt.json").write_text(json.dumps(rt, indent=1))
        return
    static = static_table()
    show(f"digits, {int(NOISE * 100)}% flipped training labels, {len(SEEDS)} seeds "
         "(acc = clean test accuracy, cov = coverage distance, noisy = share of flipped picks)",
         static)  # fmt: skip
    if "--static-only" in sys.argv:
        return
    it = iterative_table()
    show("iterative kMQ vs static kMQ, digits, 10% in 3 rounds, k = 10", it)
    (outdir / "bench_kmq.json").write_text(
        json.dumps({"static": static, "iterative": it}, indent=1)
    )


if __name__ == "__main__":
    main()
