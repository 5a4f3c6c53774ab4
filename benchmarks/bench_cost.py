"""Cost-aware selection (docs/cost.md): AULC over cumulative cost, cost-aware vs cost-blind.

Two datasets with real or per-class costs, each run through ``selectkit.al_simulate`` (the
function behind ``selectkit al simulate --cost-col``) with 5 repeats (new stratified test split
and initial set each), the same cost spent per round by every arm:

  digits  scikit-learn's digits (1,797 rows, 64 features / 16), cost 1 for classes 0-4 and 5
          for 5-9 (cost independent of difficulty within a class, but class-dependent).
  digits-iid  the same digits with cost 1 or 5 drawn per row (seed 0), independent of the
          class (the case the literature expects cost-aware selection to win).
  rt      data_samples/rotten_tomatoes.jsonl (3,000 real snippets, 3 classes fresh / rotten /
          plot), embedded with the built-in hashing embedder; cost = the text's word count
          (annotation time grows with length; long texts are mostly plot summaries).

Arms: random, entropy (cost-blind: exponent 0), entropy+cost (utility / cost),
entropy+cost=0.5, kcenter (blind) and kcenter+cost. Model: logistic regression.

    nice -n 10 .venv/bin/python benchmarks/bench_cost.py [--repeats 5] [--rounds 20]

Results: a table on stdout (AULC over cost mean ± std over repeats, paired gain over random,
final cost and accuracy) and benchmarks/out/bench_cost.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

ARMS = ["random", "entropy", "entropy+cost", "entropy+cost=0.5", "kcenter", "kcenter+cost"]


def digits_data():
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return x, d.target, np.where(d.target < 5, 1.0, 5.0), np.arange(len(x))


def digits_iid_data():
    """Digits with costs 1 or 5 drawn per row (seed 0), independent of the class."""
    import numpy as np

    x, y, _, ids = digits_data()
    return x, y, np.where(np.random.default_rng(0).random(len(y)) < 0.5, 1.0, 5.0), ids


def rt_data():
    import numpy as np
    import polars as pl

    import selectkit as sk

    src = C.REPO / "data_samples" / "rotten_tomatoes.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "emb.parquet"
        sk.embed_file(src, out)
        emb = pl.read_parquet(out)
    text = pl.read_ndjson(src)
    frame = emb.join(text, on="id", how="left", maintain_order="left")
    x = np.asarray(frame.get_column("embedding").to_numpy(), dtype=np.float32)
    cost = frame.get_column("text").str.split(" ").list.len().cast(pl.Float64).to_numpy()
    return x, frame.get_column("label").to_numpy(), cost, frame.get_column("id").to_numpy()


def run(name, data, repeats, rounds, init, batch):
    import numpy as np

    import selectkit as sk

    x, y, cost, ids = data
    batch_cost = float(batch * np.median(cost))
    t0 = time.perf_counter()
    sim = sk.al_simulate(
        x,
        y,
        strategies=ARMS,
        init=init,
        rounds=rounds,
        repeats=repeats,
        ids=ids,
        costs=cost,
        batch_cost=batch_cost,
        model="logreg",
        model_params={"C": 10},
    )
    wall = time.perf_counter() - t0
    rows = []
    for r in sim.summary.sort("strategy").to_dicts():
        rows.append(
            {
                "dataset": name,
                "strategy": r["strategy"],
                "aulc_cost": r["aulc_cost_mean"],
                "aulc_cost_std": r["aulc_cost_std"],
                "gain": r["cost_gain_vs_random"],
                "gain_std": r["cost_gain_vs_random_std"],
                "final_cost": r["final_cost_mean"],
                "final_acc": r["final_accuracy_mean"],
            }
        )
    final = sim.curves.filter(sim.curves["round"] == rounds)
    for row in rows:
        part = final.filter(final["strategy"] == row["strategy"])
        row["labels"] = float(part["n_labelled"].mean())
    return {"rows": rows, "wall_s": wall, "batch_cost": batch_cost, "n": len(y)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--init", type=int, default=20)
    ap.add_argument("--batch", type=int, default=10, help="batch cost = batch x median cost")
    ap.add_argument("--datasets", default="digits,digits-iid,rt")
    args = ap.parse_args()
    env = C.env_report()
    C.print_env(env)
    results = {}
    makers = {"digits": digits_data, "digits-iid": digits_iid_data, "rt": rt_data}
    for name in args.datasets.split(","):
        make = makers[name]
        results[name] = run(name, make(), args.repeats, args.rounds, args.init, args.batch)
        res = results[name]
        print(
            f"\n{name}: n={res['n']}, batch cost {res['batch_cost']:g} per round, "
            f"{args.rounds} rounds, {args.repeats} repeats, {res['wall_s']:.1f} s"
        )
        print(
            C.table(
                ["strategy", "AULC/cost", "± std", "gain vs random", "± std", "cost", "labels",
                 "final acc"],
                [
                    [r["strategy"], C.fmt(r["aulc_cost"], 4), C.fmt(r["aulc_cost_std"], 4),
                     f"{r['gain']:+.4f}", C.fmt(r["gain_std"], 4), C.fmt(r["final_cost"], 1),
                     C.fmt(r["labels"], 1), C.fmt(r["final_acc"], 4)]
                    for r in res["rows"]
                ],
            )
        )  # fmt: skip
    path = C.write_json("bench_cost", {"env": env, "args": vars(args), "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
