"""omp (TAGCOS-style weighted coresets): matching error and downstream accuracy on digits, cost
at a million rows.

1. Quality: scikit-learn's digits, a stratified 70/30 split per seed. On the training rows,
   ``selectkit scores --gradients`` (sgd, 3 epochs: a warm-up model, as TAGCOS warms up briefly;
   512-d projection) gives per-row gradient features; k-means (selectkit's, k = 10) clusters them,
   and separately the raw 64-d features. At 1%, 5% and 10% of the training rows:
   - ``omp`` on the gradients (gradient clusters), ``omp`` on the raw features (feature clusters);
   - ``random``: uniform, weight n / b (Horvitz-Thompson);
   - ``cluster-random``: uniform within each gradient cluster, the same allocation as omp,
     weight n_c / b_c.
   Reported: the relative error of the weighted sum of the picks' gradients against the full
   training sum (mean-gradient matching; the sum and the mean differ by n), the same for the raw
   features (mean-embedding matching), and the test accuracy of a logistic regression trained on
   the picks with their weights (and without). 5 seeds (split, scores and selection): mean +- sd.
   The same on the bundled Rotten Tomatoes snippets (3,000 rows, 3 labels, selectkit's hashing
   embeddings made with ``selectkit embed``; k = 30), a stratified 70/30 split per seed.
2. Cost: 1,000,000 x 128 synthetic float32 vectors (a Gaussian mixture of 100 components; for
   the cost figure only), 100 clusters given (the mixture component), ``omp`` at 1% (and 5% with
   ``--five``) through the Python API in a child process: wall time and peak RSS next to a child
   that only builds the pool.

    .venv/bin/python benchmarks/bench_omp.py            # ~2 min on 2 shared cores
    .venv/bin/python benchmarks/bench_omp.py --cost     # + the 1M-row cost runs
Results on stdout and in benchmarks/out/bench_omp.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
SEEDS = range(5)
BUDGETS = (0.01, 0.05, 0.10)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import digits_split  # noqa: E402


def fit_score(x, y, xt, yt, weight=None):
    from sklearn.linear_model import LogisticRegression

    if np.unique(y).size < 2:
        return float(np.mean(yt == y[0]))
    if weight is not None:
        weight = weight * (len(weight) / weight.sum())  # same total weight as unweighted
    model = LogisticRegression(max_iter=3000)
    model.fit(x, y, sample_weight=weight)
    return float(model.score(xt, yt))


def rel_error(v, idx, w):
    v = v.astype(np.float64)
    total = v.sum(axis=0)
    return float(np.linalg.norm((w[:, None] * v[idx]).sum(axis=0) - total) / np.linalg.norm(total))


def cluster_random(groups, counts, rng):
    idx, w = [], []
    for c, b in enumerate(counts):
        rows = np.flatnonzero(groups == c)
        pick = rng.choice(rows, size=int(b), replace=False)
        idx.append(pick)
        w.append(np.full(int(b), rows.size / max(int(b), 1)))
    return np.concatenate(idx), np.concatenate(w)


def digits_data(seed):
    return digits_split(seed)


_RT: dict = {}


def rt_data(seed):
    import tempfile

    import polars as pl
    from sklearn.model_selection import train_test_split

    if "frame" not in _RT:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "emb.parquet"
            subprocess.run(
                [sys.executable, "-m", "selectkit", "-q", "embed",
                 str(REPO / "data_samples" / "rotten_tomatoes.jsonl"), "--keep", "label",
                 "-o", str(out)],
                check=True, cwd=REPO,
            )  # fmt: skip
            _RT["frame"] = pl.read_parquet(out)
    frame = _RT["frame"]
    x = frame["embedding"].to_numpy().astype(np.float32)
    y = np.unique(frame["label"].to_numpy(), return_inverse=True)[1]
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)


def quality(data=digits_data, k=10):
    import selectkit as sk
    from selectkit.strategies.allocation import proportional
    from selectkit.strategies.moderate import at_least_one_each

    rows = {}
    for seed in SEEDS:
        x, xt, y, yt = data(seed)
        pool = sk.Pool.from_arrays(x, labels=y)
        g = sk.scores_for_pool(pool, epochs=3, seed=seed, gradients=True, grad_dim=512)
        g = g["gradient"].to_numpy().astype(np.float32)
        gcl = sk.kmeans(g, k, seed=seed).labels
        xcl = sk.kmeans(x, k, seed=seed).labels
        n = len(x)
        for frac in BUDGETS:
            b = max(1, round(frac * n))
            picks = {}
            _, sel = sk.select(sk.Pool.from_arrays(g, cluster=gcl), "omp", b, seed=seed)
            picks["omp-gradients"] = (sel.indices, sel.weights)
            _, sel = sk.select(sk.Pool.from_arrays(x, cluster=xcl), "omp", b, seed=seed)
            picks["omp-features"] = (sel.indices, sel.weights)
            rng = np.random.default_rng(1000 + seed)
            idx = rng.choice(n, b, replace=False)
            picks["random"] = (idx, np.full(b, n / b))
            sizes = np.bincount(gcl, minlength=k)
            counts = proportional(sizes, b, rng)
            if b >= k:
                counts = at_least_one_each(counts)
            picks["cluster-random"] = cluster_random(gcl, counts, rng)
            for name, (idx, w) in picks.items():
                rec = rows.setdefault(
                    (frac, name), {k: [] for k in ("grad", "emb", "acc_w", "acc")}
                )
                rec["grad"].append(rel_error(g, idx, w))
                rec["emb"].append(rel_error(x, idx, w))
                rec["acc_w"].append(fit_score(x[idx], y[idx], xt, yt, w))
                rec["acc"].append(fit_score(x[idx], y[idx], xt, yt))
    out = []
    print(
        "| budget | method | grad-sum error | feature-sum error | acc weighted | acc unweighted |"
    )
    print("|---|---|---|---|---|---|")
    for (frac, name), rec in rows.items():
        ms = {k: (float(np.mean(v)), float(np.std(v))) for k, v in rec.items()}
        out.append({"budget": frac, "method": name, **{k: list(v) for k, v in ms.items()}})
        cells = [f"{ms[k][0]:.3f} ± {ms[k][1]:.3f}" for k in ("grad", "emb", "acc_w", "acc")]
        print(f"| {frac:.0%} | {name} | " + " | ".join(cells) + " |")
    return out


COST_CHILD = r"""
import json, resource, sys, time
import numpy as np
rows, frac, run = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "run"
rng = np.random.default_rng(0)
centres = rng.normal(size=(100, 128)).astype(np.float32) * 2
comp = rng.integers(0, 100, rows)
x = np.empty((rows, 128), dtype=np.float32)  # in chunks: the generation must not set the peak
for s in range(0, rows, 65536):
    x[s : s + 65536] = centres[comp[s : s + 65536]] + rng.standard_normal(
        (min(65536, rows - s), 128), dtype=np.float32
    )
import selectkit as sk
pool = sk.Pool.from_arrays(x, cluster=comp.astype(np.int32))
t = time.perf_counter()
metrics = {}
if run:
    _, sel = sk.select(pool, "omp", round(frac * rows), seed=0, metrics=False)
    metrics = {k: v for k, v in sel.metrics.items() if k != "omp_cluster_errors"}
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_mib": peak, **metrics}))
"""


def cost(fracs):
    out = []
    base = subprocess.run(
        [sys.executable, "-c", COST_CHILD, "1000000", "0", "base"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    base = json.loads(base.stdout)
    for frac in fracs:
        res = subprocess.run(
            [sys.executable, "-c", COST_CHILD, "1000000", str(frac), "run"],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        rec = json.loads(res.stdout)
        rec.update(budget=frac, pool_only_peak_mib=base["peak_mib"])
        print(json.dumps(rec))
        out.append(rec)
    return out


def main():
    warnings.filterwarnings("ignore")
    OUT.mkdir(parents=True, exist_ok=True)
    payload = {"quality": quality()}
    print("Rotten Tomatoes")
    payload["quality_rt"] = quality(rt_data, k=30)
    if "--cost" in sys.argv:
        payload["cost"] = cost([0.01, 0.05] if "--five" in sys.argv else [0.01])
    (OUT / "bench_omp.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
