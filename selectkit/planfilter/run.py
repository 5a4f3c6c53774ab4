"""``sk.plan_filter``: read curves (or fitted parameters, or only a pool), fit, plan, write."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    TableWriter,
    check_output_path,
    output_group,
    read_table,
    write_table,
)
from selectkit.params import Param, check_arguments
from selectkit.planfilter.fit import B_BOUNDS, Curves, FitResult, fit_curves
from selectkit.planfilter.law import D_FORMS
from selectkit.planfilter.plan import EXTRAPOLATION_LIMIT, plan_table
from selectkit.planfilter.rule import format_fraction, label, rule_table

CURVE_COLUMNS = ("bucket", "pool_size", "samples_seen", "error")
FITTED_COLUMNS = ("bucket", "pool_size", "b", "tau", "a", "d")

PLAN_FILTER_PARAMS: dict[str, Param] = {
    "d_form": Param(
        str,
        "floor",
        "floor: error = d + R(n), d an irreducible floor; inside: error = (d + first-epoch "
        "term) x repetition product, the authors' code",
        D_FORMS,
    ),
    "d": Param(
        float,
        None,
        "hold the shared d at this value instead of fitting it",
        low=0.0,
        high=1.0,
        high_open=True,
    ),
    "tau_scale_m": Param(
        bool,
        False,
        "multiply every bucket's half-life by m in the top-m mixture (the authors' "
        "estimate_best_pool.py)",
    ),
    "monotone": Param(bool, True, "force b not to decrease from the best bucket to the worst"),
    "r_max": Param(float, 4.0, "rule of thumb: most repetitions of the kept fraction", low=1.0),
    "starts": Param(
        int, 6, "least-squares starts (the coarse grid's best and seeded points)", low=1, high=100
    ),
    "seed": Param(int, 0, "seed of the random least-squares starts", low=0),
    "pool_size": Param(
        int, None, "rows of the whole pool (the keep fraction's denominator)", low=1
    ),
}

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_COMPUTE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(?:[eE]\+?(\d+))?\s*([kKmMbBgGtT]?)$")


def parse_compute(values: str | int | float | list[Any] | tuple[Any, ...]) -> list[int]:
    """Samples-seen budgets from '32M,128M', '1.5B', 640000, '1e6' (K, M, B/G, T suffixes), each a
    positive whole number of samples; a usage error naming the bad item otherwise. O(items)."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    out: list[int] = []
    for item in items:
        parts = item.split(",") if isinstance(item, str) else [item]
        for part in parts:
            if isinstance(part, bool):
                raise SelectkitUsageError(f"{option('compute')} got {part!r}; give e.g. 32M")
            if isinstance(part, (int, float)):
                value = float(part)
            else:
                text = part.strip()
                match = _COMPUTE.match(text)
                if not match:
                    raise SelectkitUsageError(
                        f"{option('compute')} item {text!r} is not a number of samples; write "
                        "e.g. 32M, 1.5B, 640000 or 1e6"
                    )
                mant, exp, suffix = match.groups()
                value = float(mant) * 10 ** int(exp or 0) * _SUFFIX[suffix.upper()]
            if not math.isfinite(value) or value < 1:
                raise SelectkitUsageError(
                    f"{option('compute')} item {part!r} must be at least 1 sample seen"
                )
            out.append(round(value))
    if not out:
        raise SelectkitUsageError(f"{option('compute')} is empty; give e.g. 32M,128M")
    return out


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _ordered_names(col: pl.Series) -> list[Any]:
    """The distinct buckets, best first: numbers ascending, text in natural order (top10 <
    top20 < top100)."""
    uniq = col.unique().to_list()
    if col.dtype.is_numeric():
        return sorted(uniq)
    return sorted(uniq, key=lambda v: _natural(str(v)))


def _numeric(frame: pl.DataFrame, name: str, where: str) -> np.ndarray:
    col = frame.get_column(name)
    if not col.dtype.is_numeric():
        raise SelectkitDataError(
            f"column '{name}' of {where} holds {col.dtype}, not numbers; write it as numbers"
        )
    values = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        raise SelectkitDataError(
            f"column '{name}' of {where} has {int(bad.sum())} null, NaN or infinite values "
            f"(first at data row {int(np.flatnonzero(bad)[0]) + 1}); fill or drop those rows"
        )
    return values


def _require(frame: pl.DataFrame, needed: tuple[str, ...], where: str, what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SelectkitDataError(
            f"{where} has no column {', '.join(repr(m) for m in missing)} (a {what} needs "
            f"{', '.join(needed)}; it has {', '.join(frame.columns)}); rename the columns"
        )


def _per_bucket(frame: pl.DataFrame, where: str) -> tuple[list[Any], np.ndarray]:
    """Distinct buckets (best first) and each row's bucket index."""
    col = frame.get_column("bucket")
    if col.null_count():
        raise SelectkitDataError(f"column 'bucket' of {where} has null buckets; name every one")
    names = _ordered_names(col)
    idx = col.replace_strict(names, list(range(len(names))), return_dtype=pl.Int64).to_numpy()
    return names, idx


def _constant_pool(pool: np.ndarray, idx: np.ndarray, names: list, where: str) -> np.ndarray:
    pools = np.zeros(len(names))
    for i, name in enumerate(names):  # over buckets
        values = np.unique(pool[idx == i])
        if values.size != 1:
            raise SelectkitDataError(
                f"bucket {name!r} of {where} has {values.size} different pool_size values; a "
                "bucket has one size (give each size its own bucket name)"
            )
        pools[i] = values[0]
    return pools


def read_curves(path: str) -> tuple[Curves, dict[str, Any]]:
    """The measured curves of ``path`` (columns bucket, pool_size, samples_seen, error), checked:
    sizes and samples seen positive, error in (0, 1), at least 3 points per bucket, one pool size
    per bucket; a one-line ``SelectkitDataError`` naming the file, column or bucket otherwise.
    Returns the curves (buckets best first) and the file's source record. Cost: one read,
    O(rows log rows)."""
    table = read_table(path)
    frame, where = table.frame, f"'{path}'"
    _require(frame, CURVE_COLUMNS, where, "curves table")
    pool = _numeric(frame, "pool_size", where)
    seen = _numeric(frame, "samples_seen", where)
    err = _numeric(frame, "error", where)
    for name, values in (("pool_size", pool), ("samples_seen", seen)):
        if (values <= 0).any():
            row = int(np.flatnonzero(values <= 0)[0])
            raise SelectkitDataError(
                f"column '{name}' of {where} must be positive (data row {row + 1} has {values[row]:g}); "
                "drop or fix that row"
            )
    bad = (err <= 0) | (err >= 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SelectkitDataError(
            f"column 'error' of {where} must lie in (0, 1) (data row {row + 1} has {err[row]:g}); give "
            "error = 1 - accuracy as a fraction, not a percentage"
        )
    names, idx = _per_bucket(frame, where)
    pools = _constant_pool(pool, idx, names, where)
    ns, es = [], []
    for i, name in enumerate(names):
        rows = idx == i
        if rows.sum() < 3:
            raise SelectkitDataError(
                f"bucket {name!r} of {where} has {int(rows.sum())} points; the law has 3 "
                "parameters per bucket, so measure at least 3 samples-seen values"
            )
        order = np.argsort(seen[rows], kind="stable")
        ns.append(seen[rows][order])
        es.append(err[rows][order])
    return Curves([str(v) for v in names], pools, ns, es), table.source.as_dict()


def read_fitted(path: str, d_form: str) -> tuple[FitResult, dict[str, Any]]:
    """Fitted parameters (columns bucket, pool_size, b, tau, a, d; optional d_form, else
    ``d_form``) as a :class:`FitResult` without residuals, and the file's source record; each
    bad value is a one-line ``SelectkitDataError``. Cost: one read of a small table."""
    table = read_table(path)
    frame, where = table.frame, f"'{path}'"
    _require(frame, FITTED_COLUMNS, where, "fitted parameters table")
    values = {c: _numeric(frame, c, where) for c in FITTED_COLUMNS[1:]}
    checks = [
        ("pool_size", values["pool_size"] <= 0, "positive"),
        ("b", (values["b"] < B_BOUNDS[0]) | (values["b"] >= 0), "in [-1, 0)"),
        ("tau", values["tau"] <= 0, "positive"),
        ("a", values["a"] <= 0, "positive"),
        ("d", values["d"] < 0, "at least 0"),
    ]
    for name, bad, words in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SelectkitDataError(
                f"column '{name}' of {where} must be {words} (data row {row + 1} has "
                f"{values[name][row]:g}); fix that row"
            )
    for shared in ("a", "d"):
        if np.unique(values[shared]).size != 1:
            raise SelectkitDataError(
                f"column '{shared}' of {where} must hold one value shared by every bucket"
            )
    if "d_form" in frame.columns:
        forms = frame.get_column("d_form").unique().to_list()
        if len(forms) != 1 or forms[0] not in D_FORMS:
            raise SelectkitDataError(
                f"column 'd_form' of {where} must hold one of {', '.join(D_FORMS)} for every row"
            )
        d_form = forms[0]
    names, idx = _per_bucket(frame, where)
    if np.bincount(idx).max() > 1:
        raise SelectkitDataError(f"{where} lists a bucket twice; give one row per bucket")
    order = np.argsort(idx)
    fit = FitResult(
        names=[str(v) for v in names],
        pools=values["pool_size"][order],
        b=values["b"][order],
        tau=values["tau"][order],
        a=float(values["a"][0]),
        d=float(values["d"][0]),
        d_form=d_form,
        b_raw=values["b"][order],
    )
    return fit, table.source.as_dict()


def pool_buckets(
    path: str, score_col: str, edges: list[float] | None, id_col: str
) -> tuple[pl.DataFrame | None, int, dict[str, Any]]:
    """The pool's rows assigned to score-quantile buckets (0 = highest scores) when ``edges``
    (increasing fractions in (0, 1)) are given, its row count and its source record. Ties in
    score are ordered by id, never by position. Cost: one sort, O(N log N)."""
    table = read_table(path, id_col=id_col)
    frame, where = table.frame, f"'{path}'"
    n = frame.height
    if edges is None:
        return None, n, table.source.as_dict()
    if score_col not in frame.columns:
        raise SelectkitDataError(
            f"{where} has no column '{score_col}' (the quality score; columns: "
            f"{', '.join(frame.columns)}); name it with {option('score_col')}"
        )
    score = _numeric(frame, score_col, where)
    ranked = pl.DataFrame({id_col: frame.get_column(id_col), "_s": score})
    ranked = ranked.sort(["_s", id_col], descending=[True, False])
    cuts = np.floor(np.asarray(edges) * n + 0.5).astype(np.int64)
    rank = np.arange(n)
    bucket = np.searchsorted(cuts, rank, side="right").astype(np.int32)
    out = pl.DataFrame(
        {
            id_col: ranked.get_column(id_col),
            score_col: ranked.get_column("_s"),
            "bucket": pl.Series(bucket, dtype=pl.Int32),
        }
    )
    return out, n, table.source.as_dict()


def check_edges(edges: str | list[float] | None) -> list[float] | None:
    """Bucket edges from '0.1,0.2,0.3' (or a list): increasing fractions in (0, 1)."""
    if edges is None:
        return None
    items = edges.split(",") if isinstance(edges, str) else list(edges)
    try:
        values = [float(e) for e in items if str(e).strip()]
    except ValueError:
        raise SelectkitUsageError(
            f"{option('bucket_edges')} {edges!r} must be fractions, e.g. 0.1,0.2,0.3"
        ) from None
    if not values or any(not 0 < v < 1 for v in values) or np.any(np.diff(values) <= 0):
        raise SelectkitUsageError(
            f"{option('bucket_edges')} {edges!r} must be increasing fractions in (0, 1), "
            "e.g. 0.1,0.2,0.3"
        )
    return values


def _fit_rows(fit: FitResult) -> pl.DataFrame:
    data: dict[str, Any] = {
        "bucket": fit.names,
        "pool_size": pl.Series(fit.pools.astype(np.int64), dtype=pl.Int64),
        "b": fit.b,
        "tau": fit.tau,
        "a": [fit.a] * len(fit.names),
        "d": [fit.d] * len(fit.names),
        "d_form": [fit.d_form] * len(fit.names),
        "b_unconstrained": fit.b_raw,
    }
    if fit.rmse.size:
        data |= {
            "points": pl.Series(fit.points, dtype=pl.Int64),
            "max_samples_seen": fit.n_max,
            "rmse": fit.rmse,
            "rmse_log": fit.rmse_log,
            "max_rel_error": fit.max_rel,
        }
    return pl.DataFrame(data)


def plan_filter(
    curves: str | Path | None = None,
    output: str | Path | None = None,
    *,
    compute: str | int | list[Any],
    fitted: str | Path | None = None,
    pool: str | Path | None = None,
    score_col: str = "score",
    bucket_edges: str | list[float] | None = None,
    buckets_out: str | Path | None = None,
    pool_size: int | None = None,
    params_out: str | Path | None = None,
    plot: str | Path | None = None,
    keep_out: str | Path | None = None,
    d_form: str = "floor",
    d: float | None = None,
    tau_scale_m: bool = False,
    monotone: bool = True,
    r_max: float = 4.0,
    starts: int = 6,
    seed: int = 0,
    id_col: str = "id",
) -> dict[str, Any]:
    """Plan compute-aware filtering (Goyal et al. 2024) and return the run summary.

    From ``curves`` (bucket, pool_size, samples_seen, error: the user's short runs; buckets sort
    best first) fit each bucket's utility b and half-life tau with a shared a and d
    (:mod:`selectkit.planfilter.fit`), or take them from ``fitted``; then, for each ``compute``
    (samples seen: '32M,128M', 1.5e9, ...), predict the error of the top-m buckets for every m
    and recommend the best m and its keep fraction (rows / ``pool_size``, the ``pool``'s rows,
    or the buckets' total). Without either, only the labelled rule of thumb
    f = min(1, compute / (r_max N)) is offered (N from ``pool_size`` or ``pool``). ``pool`` with
    ``bucket_edges`` also assigns its rows to score-quantile buckets (``buckets_out``).
    ``output`` gets the plan table, ``params_out`` the fitted parameters with residuals,
    ``plot`` a PNG, and ``keep_out`` (one compute, with ``pool``) the selection itself: the
    ``select --strategy topk`` manifest of the recommended fraction by ``score_col``. All are
    written together or not at all, with provenance. Cost: the fit is
    a few thousand evaluations of the law over the curves' points (under a second); a pool
    costs one read and one sort.
    """
    checked = check_arguments(
        PLAN_FILTER_PARAMS,
        d_form=d_form,
        d=d,
        tau_scale_m=tau_scale_m,
        monotone=monotone,
        r_max=r_max,
        starts=starts,
        seed=seed,
        pool_size=pool_size,
    )
    computes = parse_compute(compute)
    edges = check_edges(bucket_edges)
    if curves is not None and fitted is not None:
        raise SelectkitUsageError(
            f"give curves or {option('fitted')}, not both (the fitted table replaces the fit)"
        )
    if curves is None and fitted is None and pool is None and pool_size is None:
        raise SelectkitUsageError(
            f"give a curves table, {option('fitted')} parameters, or (for the rule of thumb "
            f"only) {option('pool_size')} N or {option('pool')}"
        )
    if buckets_out is not None and (pool is None or edges is None):
        raise SelectkitUsageError(
            f"{option('buckets_out')} needs {option('pool')} and {option('bucket_edges')}"
        )
    if params_out is not None and curves is None and fitted is None:
        raise SelectkitUsageError(
            f"{option('params_out', cli='--params')} needs curves to fit (the rule of thumb has no parameters)"
        )
    if keep_out is not None and (pool is None or len(computes) != 1):
        raise SelectkitUsageError(
            f"{option('keep_out')} selects from {option('pool')} at one {option('compute')}; "
            "give both, with one budget"
        )
    if edges is not None and pool is None:
        raise SelectkitUsageError(f"{option('bucket_edges')} needs {option('pool')}")
    if plot is not None:
        from selectkit.al.plot import require_matplotlib

        require_matplotlib()
    given = [str(p) for p in (curves, fitted, pool) if p is not None]
    outs = [str(p) for p in (output, params_out, buckets_out, keep_out) if p is not None]
    for out in outs:
        check_output_path(out, given)
        TableWriter(out)
    if plot is not None:
        check_output_path(str(plot), given)
    if len(set(outs + ([str(plot)] if plot else []))) < len(outs) + (1 if plot else 0):
        raise SelectkitUsageError("the outputs must be different files")

    prov = Provenance(
        command="plan-filter",
        params={
            "compute": computes,
            "fitted": None if fitted is None else str(fitted),
            "pool": None if pool is None else str(pool),
            "score_col": score_col,
            "bucket_edges": edges,
            **{k: v for k, v in checked.items() if k != "seed"},
        },
        seed=seed,
    )
    prov.start("read")
    inputs: list[dict[str, Any]] = []
    buckets = None
    total = pool_size
    if pool is not None:
        buckets, pool_rows, source = pool_buckets(str(pool), score_col, edges, id_col)
        inputs.append(source)
        if pool_size is not None and pool_size != pool_rows:
            raise SelectkitDataError(
                f"{option('pool_size')} {pool_size} disagrees with the {pool_rows} rows of "
                f"'{pool}'; drop {option('pool_size')}: the pool's rows are counted"
            )
        total = pool_rows
    fit = None
    if curves is not None:
        data, source = read_curves(str(curves))
        inputs.append(source)
    elif fitted is not None:
        fit, source = read_fitted(str(fitted), d_form)
        inputs.append(source)
    prov.stop("read")

    warnings: list[str] = []
    summary: dict[str, Any] = {"output": None if output is None else str(output)}
    if curves is None and fitted is None:
        sizes = None
        if buckets is not None:
            sizes = buckets.group_by("bucket").len().sort("bucket").get_column("len").to_numpy()
        table = rule_table(computes, int(total), r_max, sizes)
        params_frame = None
        summary |= {"method": "rule-of-thumb", "label": label(r_max), "pool_rows": int(total)}
        warnings.append(label(r_max))
    else:
        prov.start("fit")
        if fit is None:
            fit = fit_curves(data, d_form=d_form, d=d, monotone=monotone, starts=starts, seed=seed)
        prov.stop("fit")
        measured = float(fit.n_max.max()) if fit.n_max.size else None
        if total is not None and total < fit.pools.sum():
            fix = (
                f"the curves were measured on another pool: give curves of '{pool}' (their "
                "pool_size values are its buckets' rows)"
                if pool is not None
                else f"give the whole pool's rows with {option('pool_size')}"
            )
            raise SelectkitDataError(
                f"the pool has {int(total)} rows but the buckets hold {int(fit.pools.sum())}; "
                + fix
            )
        table = plan_table(
            fit.names,
            fit.pools,
            fit.b,
            fit.tau,
            fit.a,
            fit.d,
            computes,
            d_form=fit.d_form,
            tau_scale_m=tau_scale_m,
            total_rows=total,
            measured_max=measured,
        )
        params_frame = _fit_rows(fit)
        summary |= {
            "method": "law",
            "a": fit.a,
            "d": fit.d,
            "d_form": fit.d_form,
            "tau_scale_m": tau_scale_m,
            "fit": {
                "source": "fitted table" if curves is None else "least squares",
                "cost": fit.cost,
                "monotone_adjusted": fit.monotone_adjusted,
                "rmse_max": float(fit.rmse.max()) if fit.rmse.size else None,
            },
            "params": params_frame.to_dicts(),
        }
        if curves is not None:
            warnings.extend(fit.at_bounds())
        if fit.monotone_adjusted:
            warnings.append(
                "the fitted utilities b were not monotone over the bucket order; an isotonic "
                "fit made them so (b_unconstrained keeps the raw values)"
            )
        if measured is not None and max(computes) > EXTRAPOLATION_LIMIT * measured:
            warnings.append(
                f"compute {max(computes):,} is more than {EXTRAPOLATION_LIMIT:g}x the largest "
                f"measured samples seen ({int(measured):,}): an unreliable extrapolation"
            )
    best = table.filter(pl.col("best")).sort("compute")
    summary["plan"] = best.drop("best").to_dicts()
    if len(computes) == 1:
        summary["recommended_fraction"] = float(best.get_column("keep_fraction")[0])
        summary["budget"] = format_fraction(summary["recommended_fraction"])
    summary["warnings"] = warnings
    prov.inputs = inputs
    prov.metrics = {k: v for k, v in summary.items() if k in ("method", "plan", "a", "d")}
    with output_group():
        if output is not None:
            write_table(table, str(output), provenance=prov)
        if params_out is not None and params_frame is not None:
            write_table(params_frame, str(params_out), provenance=prov)
        if buckets_out is not None and buckets is not None:
            write_table(buckets, str(buckets_out), provenance=prov)
        if keep_out is not None:
            from selectkit.pool import Columns
            from selectkit.select import select_files

            kept = select_files(
                [str(pool)],
                str(keep_out),
                strategy="topk",
                budget=summary["budget"],
                seed=seed,
                columns=Columns(id=id_col, score=score_col),
            )
            summary["kept_rows"] = kept.metrics.get("selected_rows")
        if plot is not None:
            from selectkit.planfilter.figure import plot_plan

            plot_plan(table, fit, computes, plot, tau_scale_m=tau_scale_m)
    return summary
