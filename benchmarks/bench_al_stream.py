"""al simulate --stream: prequential accuracy of the stream strategies on real labelled data.

Data: scikit-learn's digits (1,797 rows, 10 classes, pixels / 16) and data_samples/'s Rotten
Tomatoes (3,000 texts, fresh / rotten / plot) embedded with the built-in hashing embedder
(256 dims). Each is replayed as a stream (order: a seeded hash of the ids, new per seed) with
a stratified quarter held out; budgets 5 / 10 / 30 %, 5 seeds. Reported per (strategy, budget):
prequential accuracy mean ± sd over seeds, final held-out accuracy, the kept share, the kept
share of every window of 500 stream rows (min, max, share within ±20 % of the budget), select
and fit seconds. Models: logreg refit on the kept rows every 50 rows (the default), and SGD
(log loss) updated with partial_fit on the same schedule. Then an abrupt drift halfway
(every class relabelled) at 10 %.

    nice -n 10 python benchmarks/bench_al_stream.py            # ~4 min on 2 shared cores
    nice -n 10 python benchmarks/bench_al_stream.py --quick    # 3 seeds, digits only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, env_report, print_env, table, write_json

import selectkit as sk

STRATEGIES = ["random", "fixed-uncertainty", "var-uncertainty", "rand-var-uncertainty", "split"]
BUDGETS = [0.05, 0.1, 0.3]


def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y, np.array([f"d{i:04d}" for i in range(len(y))])


def rotten_tomatoes():
    rows = [json.loads(line) for line in (REPO / "data_samples/rotten_tomatoes.jsonl").open()]
    x = sk.embed_texts([r["text"] for r in rows])
    return x, np.array([r["label"] for r in rows]), np.array([r["id"] for r in rows])


def run(name, data, model, seeds, budgets, strategies, drift=None) -> list[dict]:
    x, y, ids = data
    t0 = time.perf_counter()
    sim = sk.al_simulate_stream(
        x,
        y,
        ids=ids,
        strategies=strategies,
        budgets=budgets,
        model=model,
        repeats=seeds,
        drift_at=drift,
    )
    wall = time.perf_counter() - t0
    rows = []
    for r in sim.summary.to_dicts():
        r.update(data=name, model=model, drift=drift, wall_s_all=wall)
        rows.append(r)
        after = r.get("after_drift_accuracy_mean")
        print(
            f"  {name:8s} {model:6s} b={r['budget']:.2f} {r['strategy']:22s} "
            f"preq {r['prequential_accuracy_mean']:.3f}±{r['prequential_accuracy_std']:.3f} "
            f"test {r['test_accuracy_mean']:.3f} kept {r['kept_fraction_mean']:.3f} "
            f"windows [{r['window_kept_min']:.3f}, {r['window_kept_max']:.3f}] "
            f"within±20% {100 * r['windows_within_20pct']:.0f}%"
            + (f" after-drift {after:.3f}±{r['after_drift_accuracy_std']:.3f}" if after else "")
            + f" select {r['select_s_per_repeat']:.2f}s fit {r['fit_s_per_repeat']:.2f}s",
            flush=True,
        )
    print(f"  ({wall:.1f} s wall)", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rep = env_report()
    print_env(rep)
    seeds = 3 if args.quick else 5
    out: dict = {"env": rep, "rows": []}
    d = digits()
    print("digits as a stream:")
    out["rows"] += run("digits", d, "logreg", seeds, BUDGETS, STRATEGIES)
    out["rows"] += run("digits", d, "sgd", seeds, BUDGETS, STRATEGIES)
    print("digits, abrupt drift halfway (every class relabelled), 10 %:")
    out["rows"] += run("digits", d, "logreg", seeds, [0.1], STRATEGIES, drift=0.5)
    if not args.quick:
        rt = rotten_tomatoes()
        print("Rotten Tomatoes (hashing embeddings) as a stream:")
        out["rows"] += run("rt", rt, "logreg", seeds, BUDGETS, STRATEGIES[:1] + STRATEGIES[2:])
        print("Rotten Tomatoes, abrupt drift halfway, 10 %:")
        out["rows"] += run(
            "rt", rt, "logreg", seeds, [0.1], STRATEGIES[:1] + STRATEGIES[2:], drift=0.5
        )
    path = write_json("bench_al_stream", out)
    print(f"wrote {path}")
    print(
        table(
            ["data", "model", "drift", "budget", "strategy", "preq acc", "test acc", "kept"],
            [
                [
                    r["data"],
                    r["model"],
                    r["drift"] or "-",
                    r["budget"],
                    r["strategy"],
                    f"{r['prequential_accuracy_mean']:.3f}±{r['prequential_accuracy_std']:.3f}",
                    f"{r['test_accuracy_mean']:.3f}±{r['test_accuracy_std']:.3f}",
                    f"{r['kept_fraction_mean']:.3f}",
                ]
                for r in out["rows"]
            ],
        )
    )


if __name__ == "__main__":
    main()
