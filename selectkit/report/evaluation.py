"""Pages for evaluations: ``al simulate`` learning curves and ``disco evaluate`` results."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError
from selectkit.report import svg
from selectkit.report.inputs import CURVES_COLUMNS, DISCO_COLUMNS, Artefact
from selectkit.report.sections import provenance_rows


def _band(frame: pl.DataFrame, x: str, y: str) -> tuple[np.ndarray, ...]:
    """Per ``x``: mean of ``y`` and mean ± one standard deviation over the other rows (repeats
    or seeds; the band is the line itself for one). Rows where ``y`` is not finite (the
    Spearman of a seed whose predictions are all equal) are left out, as ``disco evaluate``'s
    summary leaves them out."""
    agg = (
        frame.filter(pl.col(y).is_finite())
        .group_by(x)
        .agg(
            pl.col(y).mean().alias("mean"),
            pl.when(pl.len() > 1).then(pl.col(y).std(ddof=1)).otherwise(0.0).alias("sd"),
        )
        .sort(x)
    )
    mean, sd = agg["mean"].to_numpy(), agg["sd"].fill_null(0.0).to_numpy()
    return agg[x].to_numpy().astype(np.float64), mean, mean - sd, mean + sd


def _table(frame: pl.DataFrame) -> dict[str, Any]:
    """A frame as a header and rows of strings (floats to 4 decimals, nulls blank) and which
    columns are numeric (right-aligned)."""
    rows = []
    for rec in frame.iter_rows():
        rows.append(
            ["" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in rec]
        )
    num = [dtype.is_numeric() for dtype in frame.dtypes]
    return {"header": frame.columns, "rows": rows, "num": num}


def _require(art: Artefact, needed: tuple[str, ...], what: str) -> None:
    if art.frame.height == 0:
        raise SelectkitDataError(f"'{art.path}' has no rows; give the output of {what}")
    nulls = [c for c in needed if art.frame.get_column(c).null_count()]
    if nulls:
        raise SelectkitDataError(
            f"'{art.path}': column '{nulls[0]}' has nulls; give the output of {what} unchanged"
        )


def curves_page(art: Artefact) -> dict[str, Any]:
    """Learning curves (accuracy and macro-F1, mean ± sd over repeats) and the AULC table."""
    from selectkit.al.curves import summarise

    _require(art, CURVES_COLUMNS, "`selectkit al simulate`")
    curves = art.frame
    strategies = sorted(curves.get_column("strategy").unique().to_list())
    charts = []
    for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        if metric not in curves.columns:
            continue
        lines = {
            s: _band(curves.filter(pl.col("strategy") == s), "n_labelled", metric)
            for s in strategies
        }
        charts.append(
            svg.line_chart(
                f"Learning curves: {label} (mean ± sd over repeats)",
                lines,
                [svg.colour(i) for i in range(len(lines))],
                x_label="labelled rows",
                y_label=label,
            )
        )
    summary = None
    if {"macro_f1", "select_s"} <= set(curves.columns):
        summary = _table(summarise(curves))
    repeats = curves.get_column("repeat").n_unique()
    return {
        "kind": "curves",
        "charts": charts,
        "summary": summary,
        "facts": [
            f"{len(strategies)} strategies ({', '.join(strategies)}), {repeats} repeats, "
            f"{curves.get_column('round').n_unique()} rounds, "
            f"{int(curves['n_labelled'].min())} to {int(curves['n_labelled'].max())} labelled rows"
        ],
        "provenance": [
            {"name": "curves", "path": art.path, "rows": provenance_rows(art.provenance)}
        ],
    }


def disco_page(art: Artefact) -> dict[str, Any]:
    """MAE and Spearman per budget and method (mean ± sd over seeds) and the summary table."""
    from selectkit.disco.evaluate import summarise

    _require(art, DISCO_COLUMNS, "`selectkit disco evaluate`")
    results = art.frame
    methods = sorted(results.get_column("method").unique().to_list())
    charts = []
    for metric, label in (("mae", "MAE (accuracy points)"), ("spearman", "Spearman ρ")):
        lines = {m: _band(results.filter(pl.col("method") == m), "budget", metric) for m in methods}
        if metric == "spearman":  # a correlation: the band stays within [-1, 1]
            lines = {
                m: (x, mean, np.clip(lo, -1, 1), np.clip(hi, -1, 1))
                for m, (x, mean, lo, hi) in lines.items()
            }
        charts.append(
            svg.line_chart(
                f"{label} per anchor budget (mean ± sd over seeds)",
                lines,
                [svg.colour(i) for i in range(len(lines))],
                x_label="anchors (budget)",
                y_label=label,
            )
        )
    summary = _table(summarise(results)) if "median_ae" in results.columns else None
    return {
        "kind": "disco",
        "charts": charts,
        "summary": summary,
        "facts": [
            f"{len(methods)} methods ({', '.join(methods)}), "
            f"{results.get_column('seed').n_unique()} seeds, budgets "
            f"{', '.join(str(b) for b in sorted(results.get_column('budget').unique().to_list()))}"
        ],
        "provenance": [
            {"name": "evaluation", "path": art.path, "rows": provenance_rows(art.provenance)}
        ],
    }


def predicted_page(art: Artefact, truth: Artefact | None) -> dict[str, Any]:
    """`disco predict`'s accuracy per model; with true accuracies, predicted vs true (scatter
    with the diagonal), the error per model, MAE in points and Spearman."""
    from selectkit.disco.evaluate import spearman

    pred = art.frame.select("model", "predicted_accuracy")
    if pred.height == 0:
        raise SelectkitDataError(f"'{art.path}' has no rows; give the output of `disco predict`")
    provenance = [{"name": "prediction", "path": art.path, "rows": provenance_rows(art.provenance)}]
    if truth is None:
        pred = pred.sort(["predicted_accuracy", "model"], descending=[True, False])
        chart = svg.bar_chart(
            "Predicted accuracy per model",
            [str(m) for m in pred["model"]],
            {"predicted": pred["predicted_accuracy"].to_list()},
            [svg.colour(0)],
            y_label="accuracy",
        )
        return {
            "kind": "predicted",
            "charts": [chart],
            "summary": _table(pred),
            "facts": [
                f"{pred.height} models; give a table of their true accuracies (model, accuracy) "
                "to see the error"
            ],
            "provenance": provenance,
        }
    both = pred.join(truth.frame.select("model", "accuracy"), on="model", how="inner")
    missing = pred.height - both.height
    if both.height == 0:
        raise SelectkitDataError(
            f"no model of '{art.path}' is in '{truth.path}'; give the true accuracies of the "
            "predicted models"
        )
    both = both.with_columns(
        error_points=100 * (pl.col("predicted_accuracy") - pl.col("accuracy"))
    ).sort(["model"])
    x, y = both["accuracy"].to_numpy(), both["predicted_accuracy"].to_numpy()
    mae = float(np.abs(x - y).mean() * 100)
    rho = spearman(y, x) if both.height > 1 else float("nan")
    chart = svg.scatter(
        "Predicted vs true accuracy per model",
        x,
        y,
        [str(m) for m in both["model"]],
        x_label="true accuracy",
        y_label="predicted accuracy",
    )
    facts = [f"{both.height} models: MAE {mae:.2f} accuracy points, Spearman {rho:.3f}"]
    if missing:
        facts.append(f"{missing} predicted models have no true accuracy in '{truth.path}'")
    provenance.append(
        {"name": "true accuracy", "path": truth.path, "rows": provenance_rows(truth.provenance)}
    )
    return {
        "kind": "predicted",
        "charts": [chart],
        "summary": _table(both),
        "facts": facts,
        "provenance": provenance,
    }
