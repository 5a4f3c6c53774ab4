"""Learning curves: the area under them (AULC) and per-strategy summaries.

AULC definition used everywhere in selectkit: the **normalised trapezoid area** of accuracy
against the number of labelled rows,

    AULC = (1 / (n_R - n_0)) * integral_{n_0}^{n_R} acc(n) dn     (trapezoid rule),

i.e. the mean accuracy over the labelling budget, in [0, 1]. With a constant batch size it
differs from scikit-activeml's plain mean over cycles, (1/R) sum_t acc_t, only by giving the
first and last rounds half weight. A single-point curve has AULC = its accuracy.

With costs (``al simulate --cost-col``), the **AULC over cost** is the same normalised area
against ``cumulative_cost`` instead, on a common axis per repeat: from the initial set's cost to
the largest cumulative cost any strategy of that repeat reached, a curve that spent less held at
its last accuracy (it bought nothing more). So it is the mean accuracy over the cost spent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl


def aulc(n_labelled: np.ndarray, metric: np.ndarray) -> float:
    """Normalised trapezoid area under ``metric`` against ``n_labelled`` (see module doc); O(R)."""
    n = np.asarray(n_labelled, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if n.size == 1 or n[-1] == n[0]:
        return float(m.mean())
    area = float(np.sum((m[1:] + m[:-1]) * np.diff(n)) / 2.0)
    return area / float(n[-1] - n[0])


def aulc_to(cost: np.ndarray, metric: np.ndarray, end: float) -> float:
    """``aulc`` of ``metric`` against ``cost`` extended flat (the last value) up to ``end``."""
    c = np.asarray(cost, dtype=np.float64)
    m = np.asarray(metric, dtype=np.float64)
    if end > c[-1]:
        c, m = np.append(c, end), np.append(m, m[-1])
    return aulc(c, m)


def per_repeat(curves: pl.DataFrame) -> pl.DataFrame:
    """One row per (strategy, repeat): AULC of accuracy and of macro-F1, final accuracy; with a
    ``cumulative_cost`` column also ``aulc_cost`` (module doc) and ``final_cost``."""
    with_cost = "cumulative_cost" in curves.columns
    ends: dict[Any, float] = {}
    if with_cost:
        for (repeat,), part in curves.group_by(["repeat"]):
            ends[repeat] = float(part["cumulative_cost"].max())
    rows = []
    for (strategy, repeat), part in curves.sort("round").group_by(
        ["strategy", "repeat"], maintain_order=True
    ):
        n = part["n_labelled"].to_numpy()
        rows.append(
            {
                "strategy": strategy,
                "repeat": repeat,
                "aulc": aulc(n, part["accuracy"].to_numpy()),
                "aulc_macro_f1": aulc(n, part["macro_f1"].to_numpy()),
                "final_accuracy": float(part["accuracy"][-1]),
                "select_s": float(part["select_s"].sum()),
            }
        )
        if with_cost:
            c = part["cumulative_cost"].to_numpy()
            rows[-1]["aulc_cost"] = aulc_to(c, part["accuracy"].to_numpy(), ends[repeat])
            rows[-1]["final_cost"] = float(c[-1])
    return pl.DataFrame(rows)


def sd(col: str) -> pl.Expr:
    """The standard deviation (ddof=1) of ``col`` in a group, 0 for a group of one."""
    return pl.when(pl.len() > 1).then(pl.col(col).std(ddof=1)).otherwise(0.0)


def summarise(curves: pl.DataFrame, baseline: str = "random") -> pl.DataFrame:
    """Per strategy: mean and standard deviation (ddof=1; 0 for one repeat) over repeats of the
    AULC (accuracy and macro-F1) and the final accuracy, the mean selection seconds per repeat,
    and, when ``baseline`` ran, the paired AULC gain over it (same split and initial set) with
    its standard deviation. Sorted by mean AULC, best first."""
    reps = per_repeat(curves)
    out = reps.group_by("strategy").agg(
        pl.len().alias("repeats"),
        pl.col("aulc").mean().alias("aulc_mean"),
        sd("aulc").alias("aulc_std"),
        pl.col("aulc_macro_f1").mean().alias("aulc_macro_f1_mean"),
        sd("aulc_macro_f1").alias("aulc_macro_f1_std"),
        pl.col("final_accuracy").mean().alias("final_accuracy_mean"),
        sd("final_accuracy").alias("final_accuracy_std"),
        pl.col("select_s").mean().alias("select_s_per_repeat"),
        *(
            [
                pl.col("aulc_cost").mean().alias("aulc_cost_mean"),
                sd("aulc_cost").alias("aulc_cost_std"),
                pl.col("final_cost").mean().alias("final_cost_mean"),
            ]
            if "aulc_cost" in reps.columns
            else []
        ),
    )
    if baseline in reps["strategy"].to_list():
        out = out.join(paired_gain(reps, "aulc", f"gain_vs_{baseline}", baseline), on="strategy",
                       how="left")  # fmt: skip
        if "aulc_cost" in reps.columns:
            gain = paired_gain(reps, "aulc_cost", f"cost_gain_vs_{baseline}", baseline)
            out = out.join(gain, on="strategy", how="left")
    key = "aulc_cost_mean" if "aulc_cost" in reps.columns else "aulc_mean"
    return out.sort([key, "strategy"], descending=[True, False])


def paired_gain(
    runs: pl.DataFrame,
    column: str,
    name: str,
    baseline: str,
    pair: tuple[str, ...] = ("repeat",),
    group: tuple[str, ...] = ("strategy",),
) -> pl.DataFrame:
    """Per ``group``, the mean and sd of ``column`` minus the baseline's in the same ``pair``
    (same repeat: same split and initial set), as columns ``name`` and ``name_std``.
    O(rows)."""
    base = runs.filter(pl.col("strategy") == baseline).select(*pair, pl.col(column).alias("base"))
    return (
        runs.join(base, on=list(pair))
        .with_columns((pl.col(column) - pl.col("base")).alias("gain"))
        .group_by(list(group))
        .agg(pl.col("gain").mean().alias(name), sd("gain").alias(f"{name}_std"))
    )
