"""Leave-models-out evaluation of DISCO: how well do a few anchors predict a model's accuracy?

For each seed the models are split into source models (which choose the anchors and train the
predictor) and test models (whose accuracy is predicted and compared with the truth), by one of:

* ``random``: a random ``test_fraction`` of the models, drawn anew for each seed;
* ``iid`` (the paper's): the models are ordered by true accuracy (ties by name) and every k-th
  one is a test model, k = max(2, floor(M / 40)), so about 40 test models spread evenly over the
  accuracy range. Seed s starts at position s mod k (seed 0 is the paper's split: positions 0,
  k, 2k, ...), so different seeds test different models while keeping the spread.

Nothing about the test models enters the disagreement, the PCA or the regressor. Per budget:

* ``disco+<regressor>``: DISCO anchors (top disagreement among the source models) + predictor;
* ``random+<regressor>``: uniformly random anchors + the same predictor;
* ``random+naive``: the mean correctness of each test model on the random anchors (the usual
  "evaluate on a random subset");
* ``disco+naive``: the same on the DISCO anchors. It is biased (high-disagreement samples are the
  hard ones) and is reported to show why a DISCO subset's raw accuracy must never be used.

Metrics per (seed, budget, method): MAE in accuracy points (100 x |predicted - true|, mean over
test models; ``median_ae`` is the median, which one badly predicted model cannot move) and the
Spearman rank correlation between predicted and true accuracies.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from selectkit.console import progress_bar, warn
from selectkit.disco.anchors import STRATIFY, choose_anchors, stratified_top_k
from selectkit.disco.data import Predictions
from selectkit.disco.disagreement import METHODS
from selectkit.disco.predictor import (
    DEFAULT_ALPHA,
    DEFAULT_PCA,
    FIT_BOUNDS,
    fit_predictor,
    signatures,
)
from selectkit.errors import SelectkitError, option
from selectkit.params import Param, check_arguments
from selectkit.rng import derive_rng

DEFAULT_BUDGETS = (10, 30, 60, 100)
SPLITS = ("random", "iid")
IID_TEST_MODELS = 40
# every bound of `evaluate`'s parameters, once (the predictor's own come from FIT_BOUNDS)
EVALUATE_BOUNDS = {
    **FIT_BOUNDS,
    "disagreement": Param(str, "pds", "how anchors are scored: pds or jsd", choices=METHODS),
    "stratify": Param(str, "auto", "anchors by group: auto, group or none", choices=STRATIFY),
    "split": Param(str, "random", "how test models are held out", choices=SPLITS),
    "seeds": Param(int, 5, "seeds: model splits and random anchors", low=1),
    "seed": Param(int, 0, "base seed (recorded)", low=0),
    "test_fraction": Param(
        float,
        0.2,
        "share of models held out per seed",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    ),
    "guiding_models": Param(int, 0, "score over this many source models (0: all)", low=0),
}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata  # scipy.stats is slow to import; only evaluate needs it

    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def split_models(m: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(source rows, test rows), both sorted; at least 2 of each."""
    n_test = round(test_fraction * m)
    if n_test < 2 or m - n_test < 2:
        raise SelectkitError(
            f"test fraction {test_fraction} of {m} models leaves {n_test} test and {m - n_test} "
            "source models; evaluation needs at least 2 of each (give more models or another "
            f"{option('test_fraction')})"
        )
    perm = rng.permutation(m)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def iid_split(accuracy: np.ndarray, names: list[str], offset: int) -> tuple[np.ndarray, ...]:
    """The paper's ``iid`` split: (source rows, test rows), both sorted. Models are ordered by
    accuracy (ties by name); every k-th from position ``offset mod k`` is a test model, with
    k = max(2, floor(M / 40)). O(M log M)."""
    m = len(names)
    if m < 4:
        raise SelectkitError(
            f"the iid split needs at least 4 models (2 source, 2 test); there are {m}"
        )
    step = max(2, m // IID_TEST_MODELS)
    order = np.array(sorted(range(m), key=lambda i: (float(accuracy[i]), names[i])), dtype=np.int64)
    is_test = np.zeros(m, dtype=bool)
    is_test[order[offset % step :: step]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def evaluate(
    preds: Predictions,
    accuracy: np.ndarray,
    *,
    budgets: tuple[int, ...] = DEFAULT_BUDGETS,
    seeds: int = 5,
    seed: int = 0,
    test_fraction: float = 0.2,
    split: str = "random",
    disagreement: str = "pds",
    stratify: str = "auto",
    guiding_models: int = 0,
    regressor: str = "ridge",
    pca_dim: int = DEFAULT_PCA,
    alpha: float = DEFAULT_ALPHA,
    neighbors: int = 1,
    features: str = "signature",
) -> pl.DataFrame:
    """Run the leave-models-out evaluation; one row per (seed, budget, method) with ``mae``
    and ``median_ae`` (accuracy points), ``spearman``, ``n_source``, ``n_test`` and ``split``
    (a fingerprint of the seed's test models: seeds with equal ones held out the same models).

    Statistics over seeds mislead when seeds repeat a split (a small zoo under ``iid`` has only
    k distinct splits) or when test models outnumber source models: both are warned about on
    stderr (``split_notes`` gives the same lines, which ``evaluate_files`` records).

    ``accuracy``: every model's true full-benchmark accuracy (fractions). ``split``: ``random``
    (``test_fraction`` of the models, per seed) or ``iid`` (every k-th model by accuracy; see the
    module docstring; ``test_fraction`` is then unused). ``features``: the predictor's inputs
    (``signature`` or ``signature+accuracy``, see ``selectkit.disco.predictor``). Needs
    correctness (a ``correct`` or ``label`` column) for the naive baselines.
    Cost per seed: one disagreement pass O(M N C) plus, per budget, two predictor fits
    O(M^2 k C) (a forest: 100 trees each).
    """
    check_arguments(  # before any work
        EVALUATE_BOUNDS,
        regressor=regressor,
        features=features,
        pca_dim=pca_dim,
        alpha=alpha,
        neighbors=neighbors,
        disagreement=disagreement,
        stratify=stratify,
        split=split,
        seeds=seeds,
        seed=seed,
        test_fraction=test_fraction,
        guiding_models=guiding_models,
    )
    correct = preds.require_correct("the naive baseline of `disco evaluate`")
    y = np.asarray(accuracy, dtype=np.float64)
    budgets = tuple(sorted(set(int(b) for b in budgets)))
    if not budgets or budgets[0] < 1 or budgets[-1] > preds.n_samples:
        raise SelectkitError(
            f"budgets {list(budgets)} must lie between 1 and the {preds.n_samples} samples"
        )
    fit_opts = {
        "regressor": regressor,
        "pca_dim": pca_dim,
        "alpha": alpha,
        "neighbors": neighbors,
        "features": features,
    }
    rows: list[dict] = []
    with progress_bar("disco evaluate", seeds * len(budgets)) as bar:
        for s in range(seeds):
            if split == "iid":
                src, test = iid_split(y, list(preds.models), s)
            else:
                src, test = split_models(
                    preds.n_models, test_fraction, derive_rng(seed, "disco-evaluate", "split", s)
                )
            split_key = _split_key([preds.models[i] for i in test])
            source = preds.subset_models(src)
            test_preds = preds.subset_models(test)
            # scores depend on the seed's source models only; top-k per budget reuses them
            guide_rng = derive_rng(seed, "disco-evaluate", "guiding", s)
            chosen = choose_anchors(
                source,
                budgets[-1],
                guide_rng,
                method=disagreement,
                stratify=stratify,
                guiding_models=guiding_models,
            )
            every = np.arange(preds.n_samples)
            for b in budgets:
                if chosen.stratified:
                    disco_rows = stratified_top_k(chosen.all_scores, every, source.groups, b)
                else:
                    disco_rows = chosen.indices[:b]
                rand_rows = np.sort(
                    derive_rng(seed, "disco-evaluate", "random", s, b).choice(
                        preds.n_samples, size=b, replace=False
                    )
                )
                estimates = {}
                for name, anchors in (("disco", disco_rows), ("random", rand_rows)):
                    state = derive_rng(seed, "disco-evaluate", "forest", s, b, name)
                    predictor = fit_predictor(
                        source,
                        y[src],
                        anchors,
                        random_state=int(state.integers(2**31 - 1)),
                        meta={"benchmark": None},  # never saved: nothing to check it against
                        **fit_opts,
                    )
                    # a test model's anchor accuracy is what evaluating it on the anchors gives
                    estimates[f"{name}+{regressor}"] = predictor.predict(
                        signatures(test_preds, anchors), correct[test][:, anchors].mean(axis=1)
                    )
                estimates["random+naive"] = correct[test][:, rand_rows].mean(axis=1)
                estimates["disco+naive"] = correct[test][:, disco_rows].mean(axis=1)
                for method, pred in estimates.items():
                    rows.append(
                        {
                            "seed": s,
                            "budget": b,
                            "method": method,
                            "mae": float(100.0 * np.abs(pred - y[test]).mean()),
                            "median_ae": float(100.0 * np.median(np.abs(pred - y[test]))),
                            "spearman": spearman(pred, y[test]),
                            "n_source": int(src.size),
                            "n_test": int(test.size),
                            "split": split_key,
                        }
                    )
                bar.advance()
    frame = pl.DataFrame(
        rows,
        schema={
            "seed": pl.Int64,
            "budget": pl.Int64,
            "method": pl.String,
            "mae": pl.Float64,
            "median_ae": pl.Float64,
            "spearman": pl.Float64,
            "n_source": pl.Int64,
            "n_test": pl.Int64,
            "split": pl.String,
        },
    )
    for note in split_notes(frame):
        warn(note)
    return frame


def _split_key(test_models: list[str]) -> str:
    """A short fingerprint of a set of test models (their sorted names)."""
    digest = hashlib.sha256("".join(f"{m}\n" for m in sorted(test_models)).encode())
    return digest.hexdigest()[:16]


def split_notes(results: pl.DataFrame) -> list[str]:
    """Warnings about how far the spread over seeds can be trusted: seeds that repeat a model
    split, and seeds whose test models outnumber their source models. O(rows)."""
    per_seed = results.unique("seed", keep="first", maintain_order=True)
    notes = []
    seeds, distinct = per_seed.height, per_seed.get_column("split").n_unique()
    if distinct < seeds:
        notes.append(
            f"the {seeds} seeds held out only {distinct} distinct sets of test models, so the "
            "± over seeds counts repeats and understates the spread; give more models, fewer "
            f"{option('seeds')}, or {option('split', 'random')}"
        )
    over = per_seed.filter(pl.col("n_test") > pl.col("n_source"))
    if over.height:
        first = over.row(0, named=True)
        notes.append(
            f"{over.height} of the {seeds} seeds test more models than they learn from (e.g. "
            f"seed {first['seed']}: {first['n_test']} test, {first['n_source']} source): the "
            "predictor is fitted on too few models; give more models or a smaller "
            + option("test_fraction")
        )
    return notes


def summarise(results: pl.DataFrame) -> pl.DataFrame:
    """Mean and standard deviation over seeds of MAE and Spearman per (budget, method), sorted by
    budget then MAE. A seed whose Spearman is undefined (e.g. constant predictions) is left out
    of the Spearman mean; ``spearman_seeds`` counts the seeds that have one."""
    return (
        results.group_by("budget", "method")
        .agg(
            pl.col("mae").mean().alias("mae_mean"),
            pl.col("mae").std().alias("mae_std"),
            pl.col("median_ae").mean().alias("median_ae_mean"),
            pl.col("spearman").fill_nan(None).mean().alias("spearman_mean"),
            pl.col("spearman").fill_nan(None).std().alias("spearman_std"),
            pl.col("spearman").fill_nan(None).count().alias("spearman_seeds"),
            pl.len().alias("seeds"),
        )
        .sort("budget", "mae_mean", "method")
    )
