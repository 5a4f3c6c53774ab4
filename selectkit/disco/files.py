"""File-level DISCO commands: fit a predictor, predict with it, evaluate; the CLI calls these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.disco.data import Predictions, load_predictions
from selectkit.disco.evaluate import (
    DEFAULT_BUDGETS,
    EVALUATE_BOUNDS,
    evaluate,
    split_notes,
    summarise,
)
from selectkit.disco.predictor import (
    DEFAULT_ALPHA,
    DEFAULT_PCA,
    FIT_BOUNDS,
    Predictor,
    anchor_rows_of,
    fit_predictor,
    load_predictor,
    predict_accuracy,
    save_predictor,
)
from selectkit.errors import SelectkitError
from selectkit.io import Provenance, check_output_path, read_provenance, read_table, write_table
from selectkit.params import check_arguments
from selectkit.pool import Columns
from selectkit.rng import DEFAULT_SEED, derive_rng


def model_accuracy(
    preds: Predictions, accuracy_path: str | Path | None, *, model_col: str = "model"
) -> tuple[np.ndarray, str]:
    """Each model's full-benchmark accuracy (fractions), in ``preds.models`` order, and where it
    came from: the table at ``accuracy_path`` (columns model, accuracy) or, when None, the
    predictions' own correctness. Refuses missing models, duplicates and values outside [0, 1]."""
    if accuracy_path is None:
        if preds.correct is None:
            raise SelectkitError(
                f"no accuracy table given and {preds.where} has no 'correct' or 'label' column to "
                "compute accuracies from; pass an accuracy table (columns model, accuracy)"
            )
        return preds.accuracy(), "computed from the predictions' correctness"
    table = read_table(accuracy_path)
    where = f"'{accuracy_path}'"
    frame = table.frame
    for col in (model_col, "accuracy"):
        if col not in frame.columns:
            raise SelectkitError(
                f"{where} has no column '{col}'; an accuracy table needs columns {model_col} and "
                "accuracy (one row per model)"
            )
    if not frame.schema["accuracy"].is_numeric():
        raise SelectkitError(f"{where}: column 'accuracy' holds {frame.schema['accuracy']}")
    frame = frame.select(pl.col(model_col).cast(pl.String).alias("model"), "accuracy")
    dup = frame.get_column("model").is_duplicated()
    if dup.any():
        raise SelectkitError(
            f"{where}: model {frame.get_column('model')[int(dup.arg_max())]!r} appears more than "
            "once; give one accuracy per model"
        )
    joined = pl.DataFrame({"model": preds.models}).join(
        frame, on="model", how="left", maintain_order="left"
    )
    acc = joined.get_column("accuracy").cast(pl.Float64)
    if acc.null_count():
        missing = joined.filter(acc.is_null()).get_column("model").to_list()
        raise SelectkitError(
            f"{where} has no accuracy for {len(missing)} model(s) of {preds.where} (e.g. "
            f"{missing[0]!r}); give every model's accuracy"
        )
    values = acc.to_numpy()
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        hint = " (they look like percentages: divide by 100)" if values.max() <= 100 else ""
        raise SelectkitError(
            f"{where}: accuracies must be fractions in [0, 1]; found {values.max():.4g}{hint}"
        )
    return values, f"read from {accuracy_path}"


def split_accuracy_table(
    paths: Sequence[str | Path], *, model_col: str = "model", id_col: str = "id"
) -> tuple[list[str | Path], str | Path | None]:
    """The CLI's inputs as (prediction and per-sample tables, accuracy table or None): the last of
    two or more inputs is the accuracy table when it has columns ``model_col`` and ``accuracy``
    and no id column (one row per model), so ``disco fit preds.parquet acc.parquet`` keeps
    working beside ``disco fit preds.parquet labels.csv``. Reads the last table's first batch."""
    paths = list(paths)
    if len(paths) < 2 or str(paths[-1]) == "-":
        return paths, None
    from selectkit.io import iter_batches

    _, batches = iter_batches(paths[-1], batch_size=1)
    first = next(iter(batches), None)
    names = [] if first is None else first.columns
    if model_col in names and "accuracy" in names and id_col not in names:
        return paths[:-1], paths[-1]
    return paths, None


def _anchor_ids(anchors_path: str | Path) -> tuple[list[Any], dict[str, Any]]:
    """Anchor ids in rank order from a manifest, and its provenance (may be empty)."""
    table = read_table(anchors_path)
    frame = table.frame
    if "rank" in frame.columns:
        frame = frame.sort("rank")
    prov = read_provenance(anchors_path) if table.source.format == "parquet" else None
    return frame.get_column("id").to_list(), prov or {}


def fit_files(
    predictions: Sequence[str | Path] | str | Path,
    accuracy: str | Path | None,
    anchors: str | Path,
    output: str | Path,
    *,
    regressor: str = "ridge",
    pca_dim: int = DEFAULT_PCA,
    alpha: float = DEFAULT_ALPHA,
    neighbors: int = 1,
    seed: int = DEFAULT_SEED,
    features: str = "signature",
    columns: Columns | None = None,
    drop_incomplete: bool = False,
) -> tuple[Predictor, Provenance]:
    """Fit a predictor on the source models' predictions and accuracies and save it to the folder
    ``output``. ``anchors``: a manifest from ``select --strategy disco`` (or any table of ids).
    ``seed`` seeds the forest regressor (unused by ridge and knn). Cost: reading the predictions
    plus O(M^2 k C)."""
    check_arguments(  # before reading anything
        FIT_BOUNDS,
        regressor=regressor,
        features=features,
        pca_dim=pca_dim,
        alpha=alpha,
        neighbors=neighbors,
    )
    prov = Provenance(command="disco fit", seed=seed)
    prov.start("read")
    preds = load_predictions(predictions, columns=columns, drop_incomplete=drop_incomplete)
    acc, acc_from = model_accuracy(preds, accuracy, model_col=(columns or Columns()).model)
    ids, anchor_prov = _anchor_ids(anchors)
    rows = anchor_rows_of(preds, ids, f"'{anchors}'")
    prov.stop("read")
    guides = (anchor_prov.get("metrics") or {}).get("guiding_models") or []
    prov.start("fit")
    predictor = fit_predictor(
        preds,
        acc,
        rows,
        regressor=regressor,
        pca_dim=pca_dim,
        alpha=alpha,
        neighbors=neighbors,
        random_state=int(derive_rng(seed, "disco-fit", "forest").integers(2**31 - 1)),
        features=features,
        meta={
            "accuracy_source": acc_from,
            "anchors": {"path": str(anchors), "strategy_params": anchor_prov.get("params")},
            "inputs": [s.as_dict() for s in preds.sources],
            "dropped_models": preds.dropped,
            # models that chose the anchors: `predict` warns when asked about one of them
            "guiding_models": guides,
        },
    )
    prov.stop("fit")
    save_predictor(predictor, output)
    anchor_acc = preds.correct[:, rows].mean(axis=1) if predictor.uses_accuracy else None
    train_pred = predictor.predict(preds.proba[:, rows, :], anchor_acc)
    prov.metrics = {
        "models": preds.n_models,
        "anchors": predictor.n_anchors,
        "classes": predictor.n_classes,
        "pca_dim": predictor.pca_dim,
        "regressor": regressor,
        "features": features,
        "train_mae": float(100 * np.abs(train_pred - acc).mean()),
    }
    return predictor, prov


def predict_files(
    predictor_dir: str | Path,
    predictions: Sequence[str | Path] | str | Path,
    output: str | Path,
    *,
    columns: Columns | None = None,
    drop_incomplete: bool = False,
    force: bool = False,
) -> tuple[pl.DataFrame, Provenance]:
    """Predict the full-benchmark accuracy of every model in ``predictions`` (which need rows for
    the predictor's anchors only) and write ``model, predicted_accuracy`` to ``output``.
    Predictions on another benchmark than the predictor's are refused unless ``force``
    (``selectkit.disco.predictor.check_benchmark``)."""
    paths = [predictions] if isinstance(predictions, (str, Path)) else list(predictions)
    check_output_path(output, paths)
    prov = Provenance(command="disco predict")
    predictor = load_predictor(predictor_dir)
    preds = load_predictions(paths, columns=columns, drop_incomplete=drop_incomplete)
    frame = predict_accuracy(predictor, preds, force=force)
    prov.params = {
        "predictor": str(predictor_dir),
        "force": force,
        "regressor": predictor.regressor,
        "features": predictor.features,
    }
    prov.inputs = [s.as_dict() for s in preds.sources]
    prov.metrics = {"models": preds.n_models, "anchors": predictor.n_anchors}
    write_table(frame, output, provenance=prov)
    return frame, prov


def evaluate_files(
    predictions: Sequence[str | Path] | str | Path,
    accuracy: str | Path | None,
    output: str | Path,
    *,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    seeds: int = 5,
    seed: int = DEFAULT_SEED,
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
    columns: Columns | None = None,
    drop_incomplete: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame, Provenance]:
    """Run ``evaluate`` on files; write its per-seed rows to ``output`` (with provenance) and
    return (rows, summary over seeds, provenance)."""
    paths = [predictions] if isinstance(predictions, (str, Path)) else list(predictions)
    check_output_path(output, [*paths, *([accuracy] if accuracy else [])])
    params = {
        "budgets": sorted(set(int(b) for b in budgets)),
        "seeds": seeds,
        "test_fraction": test_fraction,
        "split": split,
        "disagreement": disagreement,
        "stratify": stratify,
        "guiding_models": guiding_models,
        "regressor": regressor,
        "pca_dim": pca_dim,
        "alpha": alpha,
        "neighbors": neighbors,
        "features": features,
    }
    # before reading anything; `evaluate` checks the same declaration again for API callers
    check_arguments(
        EVALUATE_BOUNDS, seed=seed, **{k: params[k] for k in EVALUATE_BOUNDS if k in params}
    )
    prov = Provenance(command="disco evaluate", seed=seed)
    prov.start("read")
    preds = load_predictions(paths, columns=columns, drop_incomplete=drop_incomplete)
    acc, acc_from = model_accuracy(preds, accuracy, model_col=(columns or Columns()).model)
    prov.stop("read")
    prov.start("evaluate")
    rows = evaluate(preds, acc, seed=seed, **{**params, "budgets": tuple(params["budgets"])})
    prov.stop("evaluate")
    summary = summarise(rows)
    prov.params = {**params, "accuracy_source": acc_from}
    prov.inputs = [s.as_dict() for s in preds.sources]
    prov.metrics = {
        "models": preds.n_models,
        "samples": preds.n_samples,
        "classes": preds.n_classes,
        "dropped_models": preds.dropped,
        "distinct_splits": int(rows.get_column("split").n_unique()),
        "warnings": split_notes(rows),
        "summary": summary.to_dicts(),
    }
    write_table(rows, output, provenance=prov)
    return rows, summary, prov
