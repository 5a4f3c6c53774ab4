"""DISCO on a real model zoo: predict a classifier's accuracy from 10-100 evaluation samples.

Builds dozens of scikit-learn classifiers of different families and capacities (logistic
regression, kNN, trees, forests, boosting, naive Bayes, LDA/QDA, SVMs, MLPs), each trained on a
different subset of scikit-learn's bundled digits, and writes their class probabilities on a
held-out evaluation set of 897 digits in DISCO's long format (one row per model and sample id,
with `proba`, `group` = the true digit and `correct`). Then runs the leave-models-out evaluation:
over several seeds, a fifth of the models are held out, DISCO picks anchors from the other
models' disagreement, and the held-out models' accuracies are predicted from their outputs on
those anchors only.

    PYTHONPATH=. python examples/disco_model_zoo.py            # about a minute on 2 cores
    PYTHONPATH=. python examples/disco_model_zoo.py --out zoo  # keep the Parquet files

The same evaluation from the shell, on the files this writes:

    selectkit disco evaluate zoo/preds.parquet zoo/acc.parquet --budgets 10,30,100 --seeds 5 \
        -o zoo/eval.parquet
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.datasets import load_digits
from sklearn.discriminant_analysis import (
    LinearDiscriminantAnalysis,
    QuadraticDiscriminantAnalysis,
)
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import selectkit.disco as disco


def zoo() -> list[tuple[str, object, int]]:
    """(name, unfitted classifier, number of training digits) for every model of the zoo."""
    models: list[tuple[str, object, int]] = []
    for c in (0.0003, 0.003, 0.03, 0.3, 3.0):
        for n in (60, 200, 800):
            models.append((f"logreg_C{c}_n{n}", LogisticRegression(C=c, max_iter=300), n))
    for k in (1, 5, 15, 40):
        for n in (100, 800):
            models.append((f"knn_k{k}_n{n}", KNeighborsClassifier(n_neighbors=k), n))
    for depth in (2, 3, 4, 6, 10):
        for n in (150, 800):
            models.append(
                (f"tree_d{depth}_n{n}", DecisionTreeClassifier(max_depth=depth, random_state=0), n)
            )
    for trees, depth in ((5, 3), (10, 5), (30, None), (100, None)):
        models.append(
            (
                f"forest_{trees}x{depth}",
                RandomForestClassifier(trees, max_depth=depth, random_state=0),
                800,
            )
        )
    models.append(("extratrees_50", ExtraTreesClassifier(50, random_state=0), 800))
    models.append(("extratrees_10_n150", ExtraTreesClassifier(10, random_state=0), 150))
    models.append(("histgb_10", HistGradientBoostingClassifier(max_iter=10, random_state=0), 800))
    models.append(("histgb_40", HistGradientBoostingClassifier(max_iter=40, random_state=0), 800))
    for vs in (1e-9, 1e-2, 1e-1):
        models.append((f"gaussnb_{vs}", GaussianNB(var_smoothing=vs), 800))
    models.append(("bernoullinb", BernoulliNB(binarize=4.0), 800))
    models.append(("multinomialnb", MultinomialNB(), 800))
    models.append(("multinomialnb_n60", MultinomialNB(), 60))
    models.append(("lda", LinearDiscriminantAnalysis(), 800))
    models.append(
        ("lda_shrunk_n100", LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.5), 100)
    )
    models.append(("qda_reg", QuadraticDiscriminantAnalysis(reg_param=0.5), 800))
    for c in (0.1, 1.0, 10.0):
        svc = make_pipeline(StandardScaler(), SVC(C=c, probability=True, random_state=0))
        models.append((f"svc_rbf_C{c}", svc, 400))
    for hidden, iters in (((8,), 30), ((32,), 100), ((64, 64), 300), ((16,), 300)):
        mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden, max_iter=iters, random_state=0))
        models.append((f"mlp_{'x'.join(map(str, hidden))}_it{iters}", mlp, 800))
    return models


def build(out: Path, seed: int = 0, replicas: int = 1) -> tuple[Path, Path]:
    """Train the zoo and write ``preds.parquet`` (long format) and ``acc.parquet``."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    train, held = perm[:900], perm[900:]
    ids = held.astype(np.int64)  # the digit's row in load_digits: a stable sample id
    frames, accs = [], []
    from sklearn.base import clone

    specs = [
        (f"{name}_r{r}" if replicas > 1 else name, clone(clf), n)
        for r in range(replicas)
        for name, clf, n in zoo()
    ]
    for name, clf, n in specs:
        rows = rng.choice(train, size=n, replace=False)
        with warnings.catch_warnings():
            for cat in (ConvergenceWarning, UserWarning, RuntimeWarning, FutureWarning):
                warnings.simplefilter("ignore", cat)
            clf.fit(x[rows], y[rows])
            proba = np.zeros((len(held), 10), dtype=np.float32)
            # a model trained on few digits may have seen only some classes
            proba[:, clf.classes_] = clf.predict_proba(x[held])
        proba /= proba.sum(axis=1, keepdims=True)
        correct = proba.argmax(axis=1) == y[held]
        frames.append(
            pl.DataFrame(
                {
                    "model": name,
                    "id": ids,
                    "proba": pl.Series(proba.tolist(), dtype=pl.List(pl.Float32)),
                    "group": [f"digit{d}" for d in y[held]],
                    "correct": correct,
                }
            )
        )
        accs.append({"model": name, "accuracy": float(correct.mean())})
    preds_path, acc_path = out / "preds.parquet", out / "acc.parquet"
    pl.concat(frames).write_parquet(preds_path)
    pl.DataFrame(accs).write_parquet(acc_path)
    return preds_path, acc_path


def verdict(summary: pl.DataFrame, regressor: str) -> list[dict]:
    """Per budget: mean MAE of DISCO + predictor, random + predictor and naive averaging on
    random anchors, and whether DISCO + predictor < random + predictor < naive holds."""
    rows = []
    for budget in sorted(set(summary.get_column("budget"))):
        at = summary.filter(pl.col("budget") == budget)
        mae = dict(zip(at["method"], at["mae_mean"], strict=True))
        rho = dict(zip(at["method"], at["spearman_mean"], strict=True))
        d, r, n = mae[f"disco+{regressor}"], mae[f"random+{regressor}"], mae["random+naive"]
        rows.append(
            {
                "regressor": regressor,
                "budget": budget,
                "disco+pred": d,
                "random+pred": r,
                "naive": n,
                "disco<random": d < r,
                "random<naive": r < n,
                "spearman disco+pred": rho[f"disco+{regressor}"],
                "spearman naive": rho["random+naive"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="folder for preds/acc/eval Parquet files")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=3, help="train each model this many times")
    parser.add_argument("--budgets", default="10,30,60,100")
    parser.add_argument("--stratify", default="auto", choices=("auto", "group", "none"))
    parser.add_argument("--disagreement", default="pds", choices=("pds", "jsd"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        preds_path, acc_path = build(out, replicas=args.replicas)
        acc = pl.read_parquet(acc_path).get_column("accuracy")
        print(
            f"zoo: {acc.len()} models trained in {time.perf_counter() - t0:.1f} s; accuracy on "
            f"897 held-out digits from {acc.min():.3f} to {acc.max():.3f} (median "
            f"{acc.median():.3f})"
        )
        verdicts = []
        # the paper's two simplest regressors with its settings: ridge (alpha 10), 1-NN
        for regressor in ("ridge", "knn"):
            t0 = time.perf_counter()
            _rows, summary, _prov = disco.evaluate_files(
                preds_path,
                acc_path,
                out / f"eval_{regressor}.parquet",
                budgets=[int(b) for b in args.budgets.split(",")],
                seeds=args.seeds,
                regressor=regressor,
                stratify=args.stratify,
                disagreement=args.disagreement,
            )
            print(f"\n{regressor}: {args.seeds} seeds in {time.perf_counter() - t0:.1f} s")
            with pl.Config(tbl_rows=100, float_precision=2, tbl_hide_dataframe_shape=True):
                print(summary.drop("seeds"))
            verdicts += verdict(summary, regressor)
        print(
            "\nMAE in accuracy points (mean over seeds); naive = mean correctness on random anchors"
        )
        print(
            f"{'regressor':9} {'budget':>6} {'disco+pred':>10} {'random+pred':>11} {'naive':>6}  "
            f"{'disco<random':12} {'random<naive':12} {'rho disco+pred':>14} {'rho naive':>9}"
        )
        for v in verdicts:
            print(
                f"{v['regressor']:9} {v['budget']:6d} {v['disco+pred']:10.2f} "
                f"{v['random+pred']:11.2f} {v['naive']:6.2f}  {v['disco<random']!s:12} "
                f"{v['random<naive']!s:12} {v['spearman disco+pred']:14.3f} "
                f"{v['spearman naive']:9.3f}"
            )


if __name__ == "__main__":
    main()
