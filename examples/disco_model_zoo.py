"""DISCO on a real model zoo: predict a classifier's accuracy from 10-100 evaluation samples.

Builds a dense zoo of 315 scikit-learn classifiers: 10 families (logistic regression, kNN,
decision trees, random forests, extra trees, gradient boosting, Gaussian naive Bayes, shrunk LDA,
RBF SVMs, MLPs), each a grid of 2-6 settings (C, k, depth, trees, stages, smoothing, shrinkage,
hidden units) x 3 training-set sizes (150, 250, 400 digits) x 3 seeds (different training
subsets and random states), so every model has close relatives: the analogue of the paper's
leaderboard of hundreds of related LLMs. All are trained on subsets of 600 of scikit-learn's
bundled digits and evaluated on the other 1,197, written in DISCO's long format (one row per
model and sample id, with `proba`, `group` = the true digit and `correct`).

Then the leave-models-out evaluation, over 5 seeds, for both splits (`iid`: the paper's, every
7th model by accuracy, about 45 test models; `random`: a random fifth) and the paper's three
simplest predictors (1-NN by cosine similarity, ridge with alpha 10, random forest of 100
trees), each on the signature alone and with the model's accuracy on the anchors as a feature
(``--features signature+accuracy``). DISCO picks anchors from the source models' disagreement;
the test models' accuracies are predicted from their outputs on those anchors only, and compared
with the naive estimate (mean correctness on random anchors).

    PYTHONPATH=. python examples/disco_model_zoo.py            # about 4 minutes on 2 cores
    PYTHONPATH=. python examples/disco_model_zoo.py --out zoo  # keep the Parquet files

The same evaluation from the shell, on the files this writes:

    selectkit disco evaluate zoo/preds.parquet zoo/acc.parquet --split iid --regressor forest \
        --features signature+accuracy --budgets 10,30,100 --seeds 5 -o zoo/eval.parquet
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.datasets import load_digits
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

import selectkit.disco as disco

SIZES = (150, 250, 400)  # training digits per model
REPLICAS = 3  # seeds per (setting, size): another training subset and random state
TRAIN_POOL = 600  # digits the models may train on; the other 1,197 are the benchmark
REGRESSORS = ("knn", "ridge", "forest")
SPLITS = ("iid", "random")
FEATURES = ("signature", "signature+accuracy")


def zoo() -> dict[str, list[tuple[str, Callable[[int], object]]]]:
    """Per family, (setting name, seed -> unfitted classifier). Settings avoid degenerate
    models (near-uniform probabilities from extreme regularisation) whose signatures say
    nothing about their accuracy."""

    def scaled(clf: object) -> object:
        return make_pipeline(StandardScaler(), clf)

    return {
        "logreg": [
            (f"C{c:g}", lambda s, c=c: LogisticRegression(C=c, max_iter=300))
            for c in (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0)
        ],
        "knn": [(f"k{k}", lambda s, k=k: KNeighborsClassifier(k)) for k in (1, 3, 5, 9, 15)],
        "tree": [
            (f"d{d}", lambda s, d=d: DecisionTreeClassifier(max_depth=d, random_state=s))
            for d in (4, 5, 6, 8, 12)
        ],
        "forest": [
            (
                f"t{t}d{d}",
                lambda s, t=t, d=d: RandomForestClassifier(t, max_depth=d, random_state=s),
            )
            for t, d in ((10, 5), (10, 8), (30, 8), (30, None))
        ],
        "extratrees": [
            (f"t{t}d{d}", lambda s, t=t, d=d: ExtraTreesClassifier(t, max_depth=d, random_state=s))
            for t, d in ((10, 6), (30, 8), (30, None))
        ],
        "gboost": [
            (
                f"it{i}",
                lambda s, i=i: GradientBoostingClassifier(
                    n_estimators=i, max_depth=2, random_state=s
                ),
            )
            for i in (10, 30)
        ],
        "gaussnb": [
            (f"vs{v:g}", lambda s, v=v: GaussianNB(var_smoothing=v)) for v in (1e-2, 3e-2, 0.1)
        ],
        "lda": [
            (f"sh{v:g}", lambda s, v=v: LinearDiscriminantAnalysis(solver="lsqr", shrinkage=v))
            for v in (0.1, 0.3, 0.6)
        ],
        "svc": [
            (f"C{c:g}", lambda s, c=c: scaled(SVC(C=c, probability=True, random_state=s)))
            for c in (1, 10)
        ],
        "mlp": [
            (f"h{h}", lambda s, h=h: scaled(MLPClassifier((h,), max_iter=200, random_state=s)))
            for h in (16, 64)
        ],
    }


def build(out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Train the zoo and write ``preds.parquet`` (long format) and ``acc.parquet``."""
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    train, held = perm[:TRAIN_POOL], perm[TRAIN_POOL:]
    ids = held.astype(np.int64)  # the digit's row in load_digits: a stable sample id
    groups = [f"digit{d}" for d in y[held]]
    frames, accs = [], []
    # one BLAS/OpenMP thread: hundreds of tiny fits, on shared cores
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and few-samples-per-class warnings
        for family, settings in zoo().items():
            for setting, make in settings:
                for n in SIZES:
                    for r in range(REPLICAS):
                        name = f"{family}_{setting}_n{n}_s{r}"
                        rows = np.random.default_rng([seed, len(accs)]).choice(
                            train, size=n, replace=False
                        )
                        clf = make(r).fit(x[rows], y[rows])
                        proba = np.zeros((len(held), 10), dtype=np.float32)
                        # a model may have seen only some classes
                        proba[:, clf.classes_] = clf.predict_proba(x[held])
                        proba /= proba.sum(axis=1, keepdims=True)
                        correct = proba.argmax(axis=1) == y[held]
                        frames.append(
                            pl.DataFrame(
                                {
                                    "model": name,
                                    "id": ids,
                                    "proba": pl.Series(proba.tolist(), dtype=pl.List(pl.Float32)),
                                    "group": groups,
                                    "correct": correct,
                                }
                            )
                        )
                        accs.append({"model": name, "accuracy": float(correct.mean())})
    preds_path, acc_path = out / "preds.parquet", out / "acc.parquet"
    pl.concat(frames).write_parquet(preds_path)
    pl.DataFrame(accs).write_parquet(acc_path)
    return preds_path, acc_path


def verdict(summary: pl.DataFrame, split: str, regressor: str, features: str) -> list[dict]:
    """Per budget: MAE, median AE and Spearman (means over seeds) of DISCO + predictor, random
    + predictor, naive on random anchors and naive on DISCO anchors; and whether
    DISCO + predictor < random + predictor < naive holds for the MAE."""
    rows = []
    for budget in sorted(set(summary.get_column("budget"))):
        at = {r["method"]: r for r in summary.filter(pl.col("budget") == budget).to_dicts()}
        d, r = at[f"disco+{regressor}"], at[f"random+{regressor}"]
        n, nd = at["random+naive"], at["disco+naive"]
        rows.append(
            {
                "split": split,
                "regressor": regressor,
                "features": features,
                "budget": budget,
                **{f"{k}_mae": v["mae_mean"] for k, v in (("disco", d), ("random", r))},
                "naive_mae": n["mae_mean"],
                "naive_disco_mae": nd["mae_mean"],
                **{f"{k}_med": v["median_ae_mean"] for k, v in (("disco", d), ("random", r))},
                "naive_med": n["median_ae_mean"],
                **{f"{k}_rho": v["spearman_mean"] for k, v in (("disco", d), ("random", r))},
                "naive_rho": n["spearman_mean"],
                "holds": d["mae_mean"] < r["mae_mean"] < n["mae_mean"],
            }
        )
    return rows


def print_verdicts(verdicts: list[dict], seeds: int) -> None:
    print(
        f"\nMean over {seeds} seeds. MAE and median absolute error in accuracy points; rho ="
        " Spearman across test models.\nnaive = mean correctness on random anchors; naive@disco"
        " = on DISCO anchors (biased, never use).\nholds = MAE(disco+pred) < MAE(random+pred)"
        " < MAE(naive)"
    )
    head = (
        f"{'split':6} {'pred':6} {'feat':4} {'k':>3} | {'MAE disco':>9} {'random':>6} {'naive':>6} "
        f"{'@disco':>6} | {'median disco':>12} {'random':>6} {'naive':>6} | "
        f"{'rho disco':>9} {'random':>6} {'naive':>6} | holds"
    )
    print(head)
    print("-" * len(head))
    for v in verdicts:
        print(
            f"{v['split']:6} {v['regressor']:6} {'+acc' if v['features'] != 'signature' else 'sig':4} "
            f"{v['budget']:3d} | {v['disco_mae']:9.2f} "
            f"{v['random_mae']:6.2f} {v['naive_mae']:6.2f} {v['naive_disco_mae']:6.2f} | "
            f"{v['disco_med']:12.2f} {v['random_med']:6.2f} {v['naive_med']:6.2f} | "
            f"{v['disco_rho']:9.3f} {v['random_rho']:6.3f} {v['naive_rho']:6.3f} | "
            f"{'yes' if v['holds'] else 'no'}"
        )
    held = [
        f"{v['split']}/{v['regressor']}{'+acc' if v['features'] != 'signature' else ''}@{v['budget']}"
        for v in verdicts
        if v["holds"]
    ]
    print(f"\nordering holds in {len(held)} of {len(verdicts)} cases: {', '.join(held) or 'none'}")


def per_family(preds_path: Path, budget: int, seeds: int) -> pl.DataFrame:
    """Where the predictor's error comes from: per model family, the mean absolute error
    (accuracy points) of random anchors + forest, on the signature and on signature+accuracy,
    and of naive averaging on the same anchors,
    pooled over the iid split's test models of ``seeds`` seeds (anchors drawn here, so the
    figures differ slightly from the table's)."""
    from selectkit.disco.evaluate import iid_split

    preds = disco.load_predictions(preds_path)
    acc = preds.correct.mean(axis=1)
    family = np.array([m.split("_")[0] for m in preds.models])
    rows = []
    for s in range(seeds):
        src, test = iid_split(acc, preds.models, s)
        anchors = np.sort(
            np.random.default_rng([s, budget]).choice(preds.n_samples, budget, replace=False)
        )
        naive = preds.correct[test][:, anchors].mean(axis=1)
        guesses = [
            disco.fit_predictor(
                preds.subset_models(src),
                acc[src],
                anchors,
                regressor="forest",
                random_state=s,
                features=features,
            ).predict(disco.signatures(preds.subset_models(test), anchors), naive)
            for features in FEATURES
        ]
        rows.append(
            pl.DataFrame(
                {
                    "family": family[test],
                    "accuracy": acc[test],
                    "forest_ae": 100 * np.abs(guesses[0] - acc[test]),
                    "forest_acc_ae": 100 * np.abs(guesses[1] - acc[test]),
                    "naive_ae": 100 * np.abs(naive - acc[test]),
                }
            )
        )
    return (
        pl.concat(rows)
        .group_by("family")
        .agg(
            pl.len().alias("test_models"),
            pl.col("accuracy").min().alias("acc_min"),
            pl.col("accuracy").max().alias("acc_max"),
            pl.col("forest_ae").mean().alias("mae_random+forest"),
            pl.col("forest_acc_ae").mean().alias("mae_random+forest+acc"),
            pl.col("naive_ae").mean().alias("mae_naive"),
        )
        .sort("mae_random+forest", descending=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="folder for preds/acc/eval Parquet files")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budgets", default="10,30,100")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--regressors", default=",".join(REGRESSORS))
    parser.add_argument("--features", default=",".join(FEATURES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        preds_path, acc_path = build(out)
        acc = pl.read_parquet(acc_path).get_column("accuracy")
        print(
            f"zoo: {acc.len()} models trained in {time.perf_counter() - t0:.1f} s; accuracy on "
            f"1,197 held-out digits from {acc.min():.3f} to {acc.max():.3f} (median "
            f"{acc.median():.3f})"
        )
        verdicts = []
        cases = [
            (split, regressor, features)
            for split in args.splits.split(",")
            for regressor in args.regressors.split(",")
            for features in args.features.split(",")
        ]
        for split, regressor, features in cases:
            t0 = time.perf_counter()
            tag = "acc" if features == "signature+accuracy" else "sig"
            _rows, summary, _prov = disco.evaluate_files(
                preds_path,
                acc_path,
                out / f"eval_{split}_{regressor}_{tag}.parquet",
                budgets=[int(b) for b in args.budgets.split(",")],
                seeds=args.seeds,
                split=split,
                regressor=regressor,
                features=features,
            )
            n_test = int(_rows.get_column("n_test").median())
            print(
                f"{split} split (~{n_test} test models) + {regressor} on {features}: "
                f"{args.seeds} seeds in {time.perf_counter() - t0:.1f} s"
            )
            verdicts += verdict(summary, split, regressor, features)
        print_verdicts(verdicts, args.seeds)
        budget = max(int(b) for b in args.budgets.split(","))
        print(f"\nper family, iid split, {budget} random anchors, {args.seeds} seeds pooled:")
        with pl.Config(
            tbl_rows=20, float_precision=2, tbl_hide_dataframe_shape=True, tbl_width_chars=120
        ):
            print(per_family(preds_path, budget, args.seeds))


if __name__ == "__main__":
    main()
