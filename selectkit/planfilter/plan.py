"""The plan: for each compute budget, the predicted error of training on the top-m buckets for
every m, and the m (keep fraction) that minimises it."""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.planfilter.law import mixture_error

#: beyond this many times the largest measured samples seen a prediction is an extrapolation
EXTRAPOLATION_LIMIT = 5.0


def plan_table(
    names: list[str],
    pools: np.ndarray,
    b: np.ndarray,
    tau: np.ndarray,
    a: float,
    d: float,
    computes: list[int],
    *,
    d_form: str = "floor",
    tau_scale_m: bool = False,
    total_rows: float | None = None,
    measured_max: float | None = None,
) -> pl.DataFrame:
    """One row per (compute, m): the top-m buckets by utility b (most negative first; ties in
    the given quality order), their rows, keep fraction (rows / ``total_rows``, default the sum
    of the buckets), repetitions (compute / rows), predicted error, ``best`` (the lowest error
    per compute; ties go to the smaller m) and ``extrapolated`` (compute above 5x
    ``measured_max``). Cost: O(C * B * (B + K)) for C budgets, B buckets, K epochs that matter.
    """
    order = np.lexsort((np.arange(len(b)), b))
    pools = np.asarray(pools, dtype=np.float64)[order]
    b = np.asarray(b, dtype=np.float64)[order]
    tau = np.asarray(tau, dtype=np.float64)[order]
    ordered = [names[i] for i in order]
    total = float(total_rows) if total_rows else float(pools.sum())
    n = np.asarray(computes, dtype=np.float64)
    nb = len(ordered)
    pred = np.empty((n.size, nb))
    for m in range(1, nb + 1):  # over buckets, never rows
        pred[:, m - 1] = mixture_error(
            n, pools[:m], b[:m], tau[:m], a, d, d_form=d_form, tau_scale_m=tau_scale_m
        )
    best = np.argmin(pred, axis=1)  # first minimum: the smaller m on ties
    rows = np.cumsum(pools)
    comp = np.repeat(np.asarray(computes, dtype=np.int64), nb)
    ms = np.tile(np.arange(1, nb + 1), n.size)
    keep_rows = np.tile(rows, n.size)
    extrap = (
        comp > EXTRAPOLATION_LIMIT * measured_max
        if measured_max
        else np.zeros(comp.size, dtype=bool)
    )
    return pl.DataFrame(
        {
            "compute": pl.Series(comp, dtype=pl.Int64),
            "m": pl.Series(ms, dtype=pl.Int32),
            "buckets": [",".join(ordered[:m]) for m in ms],
            "keep_rows": pl.Series(keep_rows.astype(np.int64), dtype=pl.Int64),
            "keep_fraction": pl.Series(keep_rows / total, dtype=pl.Float64),
            "repetitions": pl.Series(comp / keep_rows, dtype=pl.Float64),
            "predicted_error": pl.Series(pred.ravel(), dtype=pl.Float64),
            "best": pl.Series((ms - 1) == np.repeat(best, nb), dtype=pl.Boolean),
            "extrapolated": pl.Series(extrap, dtype=pl.Boolean),
            "method": ["law"] * comp.size,
        }
    )
