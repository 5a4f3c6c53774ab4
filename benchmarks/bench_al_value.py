"""Does active learning pay? Every selectkit AL strategy against random on real labelled data.

Two datasets, both bundled (no download):

  digits   scikit-learn's 8x8 digits (1,797 rows, 64 pixel features scaled to [0, 1], 10 classes)
  rt       data_samples/rotten_tomatoes.jsonl (3,000 texts, labels fresh / rotten / plot),
           embedded with ``selectkit embed`` (the built-in hashing embedder, 256 dims)

Each runs ``selectkit al simulate`` (the Python API behind the CLI) with logistic regression,
--init 20, --batch 10, --rounds 30, --repeats 5 (master seed 0): a stratified 25 % test split
and an initial set per repeat, shared by all strategies. Reported per strategy: the area under
the learning curve (normalised trapezoid of test accuracy over labelled rows) mean ± std over
the repeats, and its paired gain over random (same split and initial set) mean ± std.

    nice .venv/bin/python benchmarks/bench_al_value.py            # both datasets (~10 min)
    nice .venv/bin/python benchmarks/bench_al_value.py --repeats 2 --rounds 5   # smoke run

Results: tables on stdout, curves and PNG plots under benchmarks/out/al_value/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

STRATEGIES = (
    "random",
    "least-confidence",
    "margin",
    "entropy",
    "bald",
    "badge",
    "coreset",
    "pcoreset",
    "typiclust",
)


def digits_table(folder: Path) -> Path:
    import numpy as np
    import polars as pl
    from sklearn.datasets import load_digits

    path = folder / "digits.parquet"
    bunch = load_digits()
    pl.DataFrame(
        {
            "id": np.arange(len(bunch.target)),
            "embedding": (bunch.data / 16.0).astype(np.float32),
            "label": bunch.target,
        }
    ).write_parquet(path)
    return path


def rt_table(folder: Path) -> Path:
    from selectkit import embed_file

    path = folder / "rt_emb.parquet"
    embed_file(C.REPO / "data_samples" / "rotten_tomatoes.jsonl", path, keep_columns=("label",))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,rt")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--model", default="logreg")
    ap.add_argument("--init", type=int, default=20)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the output names (several configurations)")
    args = ap.parse_args()

    from selectkit.al import simulate_file

    env = C.env_report()
    C.print_env(env)
    folder = C.OUT / "al_value"
    folder.mkdir(parents=True, exist_ok=True)
    makers = {"digits": digits_table, "rt": rt_table}
    results = {"env": env, "args": vars(args), "datasets": {}}
    for name in args.datasets.split(","):
        table = makers[name](folder)
        t0 = time.perf_counter()
        _, summary = simulate_file(
            table,
            folder / f"{name}{args.tag}_curves.parquet",
            strategies=args.strategies.split(","),
            model=args.model,
            init=args.init,
            batch=args.batch,
            rounds=args.rounds,
            repeats=args.repeats,
            seed=args.seed,
            plot=folder / f"{name}{args.tag}_curves.png",
        )
        wall = time.perf_counter() - t0
        rows = []
        for r in summary.to_dicts():
            gain, sd = r.get("gain_vs_random"), r.get("gain_vs_random_std")
            beats = "yes" if gain is not None and gain > 0 and gain > sd else "no"
            if r["strategy"] == "random":
                beats = "-"
            rows.append(
                [
                    r["strategy"],
                    f"{r['aulc_mean']:.4f} ± {r['aulc_std']:.4f}",
                    "-" if gain is None else f"{gain:+.4f} ± {sd:.4f}",
                    beats,
                    f"{r['final_accuracy_mean']:.4f} ± {r['final_accuracy_std']:.4f}",
                    r["select_s_per_repeat"],
                ]
            )
        print(
            f"\n{name}: {args.model}, init {args.init}, batch {args.batch}, rounds {args.rounds}, "
            f"repeats {args.repeats}, seed {args.seed} ({wall:.0f} s)"
        )
        headers = [
            "strategy",
            "AULC mean ± std",
            "gain vs random ± std",
            "gain > std",
            "final acc",
            "select s/repeat",
        ]
        print(C.table(headers, rows))
        results["datasets"][name] = {"summary": summary.to_dicts(), "wall_s": wall}
    print(f"\nwrote {C.write_json('bench_al_value' + args.tag, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
