"""Iterative kMQ's cluster weights from per-row feedback (Yu et al. 2024, Algorithm 1, eq. 5-6).

A round of iterative kMQ selects rows (``select --strategy kmq``), trains on them, and scores
each selected row, e.g. by the reward gap S = score(x + y_gold) - score(x + y_gen). Here
s_j = the mean feedback over the round's rows of cluster j (eq. 5), and the next round's
weights are

* ``rule="multiplicative"`` (eq. 6, the paper): w_j <- w_j * s_j / mean(s), with memory of the
  earlier weights (``prior``). Eq. 6 needs s > 0: when some s_j <= 0 the scores are shifted to
  s - min(s) + eps, eps = 1e-3 * (max(s) - min(s)) (recorded as ``shifted``), so the lowest
  cluster keeps a small weight instead of a negative one.
* ``rule="softmax"`` (the authors' code): w_j = exp(s_j / T) normalised; no memory.

Convention: higher feedback means more weight (the paper up-weights the clusters where the
model's answers fall furthest below gold). Clusters without feedback keep their prior weight
(1 without a prior). The weights are written normalised to mean 1 over the clusters listed;
``select --strategy kmq --cluster-weights`` reads them as multipliers of each cluster's
share of the budget, so only their ratios matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, option
from selectkit.io import Provenance, TableWriter, check_output_path, read_table, write_table
from selectkit.params import Param, check_arguments

KMQ_WEIGHTS_PARAMS = {
    "rule": Param(
        str,
        "multiplicative",
        "multiplicative: w_j * s_j / mean(s), the paper's eq. 6; softmax: exp(s_j / T), the "
        "authors' code (no memory of earlier weights)",
        ("multiplicative", "softmax"),
    ),
    "temperature": Param(float, 1.0, "T of rule=softmax", low=0.0, low_open=True),
}


def _numeric(frame: pl.DataFrame, name: str, where: str, what: str, flag: str) -> np.ndarray:
    """Float64 values of column ``name``; a missing, non-numeric, null or non-finite column is a
    data error naming the file, the column and the fix."""
    if name not in frame.columns:
        raise SelectkitDataError(
            f"{where} has no column '{name}' ({what}; columns: {', '.join(frame.columns)}); "
            f"name it with {option(flag)}"
        )
    col = frame.get_column(name)
    if not col.dtype.is_numeric():
        raise SelectkitDataError(f"column '{name}' of {where} holds {col.dtype}, not numbers")
    values = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        raise SelectkitDataError(
            f"column '{name}' of {where} has {int(bad.sum())} null, NaN or infinite values "
            f"(first at row {int(np.flatnonzero(bad)[0])}); fill or drop those rows first"
        )
    return values


def _same_kind(a: pl.Series, b: pl.Series, where_a: str, where_b: str) -> tuple[pl.Series, ...]:
    """The two id columns cast to one type (int64 or text); mixed kinds are a data error."""
    if a.dtype.is_integer() and b.dtype.is_integer():
        return a.cast(pl.Int64), b.cast(pl.Int64)
    if a.dtype == b.dtype:
        return a, b
    raise SelectkitDataError(
        f"the ids of {where_a} are {a.dtype} but those of {where_b} are {b.dtype}; give the "
        "feedback for the manifest's own ids"
    )


def update_weights(
    prior: np.ndarray,
    scores: np.ndarray,
    fed: np.ndarray,
    rule: str = "multiplicative",
    temperature: float = 1.0,
) -> tuple[np.ndarray, bool]:
    """New float64 weights (mean 1) for clusters with ``prior`` weights, given the mean feedback
    ``scores`` of the clusters where ``fed`` is True (others keep their prior), and whether the
    scores were shifted to be positive (multiplicative rule only). O(k)."""
    prior = np.asarray(prior, dtype=np.float64)
    w = prior.copy()
    s = np.asarray(scores, dtype=np.float64)[fed]
    shifted = False
    if s.size:
        if rule == "softmax":
            e = np.exp((s - s.max()) / temperature)
            w[fed] = e / e.mean()
        else:
            if s.min() <= 0:
                spread = float(s.max() - s.min())
                s = s - s.min() + (1e-3 * spread if spread > 0 else 1.0)
                shifted = True
            w[fed] = prior[fed] * s / s.mean()
    total = w.mean()
    return (w / total if total > 0 else np.ones_like(w)), shifted


def kmq_weights(
    manifest: str | Path,
    feedback: str | Path,
    output: str | Path,
    *,
    feedback_col: str = "feedback",
    rule: str = "multiplicative",
    temperature: float = 1.0,
    prior: str | Path | None = None,
    clusters: str | Path | None = None,
    cluster_col: str = "cluster",
    id_col: str = "id",
) -> dict[str, Any]:
    """Write ``output`` (columns ``cluster``, ``weight``, ``feedback_mean``, ``feedback_rows``;
    one row per cluster of the manifest or the prior, sorted by cluster) with the next round's
    cluster weights of iterative kMQ, and return the run summary.

    ``manifest``: a round's ``select`` manifest (ids and their ``cluster_col``; or give
    ``clusters``, a ``selectkit cluster`` table, to look the clusters up by id). ``feedback``:
    ``id`` and ``feedback_col`` per row (finite numbers; rows not in the manifest are ignored and
    counted). ``prior``: the previous round's weights file (default: every cluster 1). The
    update is ``rule`` (module doc). The write is atomic with provenance (inputs with
    fingerprints). Cost: O(m log m) for m manifest and feedback rows; memory O(m + k).
    """
    check_arguments(KMQ_WEIGHTS_PARAMS, rule=rule, temperature=temperature)
    manifest, feedback, output = str(manifest), str(feedback), str(output)
    given = [manifest, feedback] + [str(p) for p in (prior, clusters) if p is not None]
    check_output_path(output, given)
    TableWriter(output)  # refuses an unwritable format before any work
    prov = Provenance(
        command="kmq-weights",
        params={
            "rule": rule,
            "temperature": temperature,
            "feedback_col": feedback_col,
            "cluster_col": cluster_col,
            "id_col": id_col,
            "prior": None if prior is None else str(prior),
            "clusters": None if clusters is None else str(clusters),
        },
    )
    prov.start("read")
    man = read_table(manifest, id_col=id_col)
    inputs = [man.source.as_dict()]
    mframe = man.frame
    if clusters is not None:
        ctab = read_table(str(clusters), id_col=id_col)
        inputs.append(ctab.source.as_dict())
        if cluster_col not in ctab.frame.columns:
            raise SelectkitDataError(
                f"'{clusters}' has no column '{cluster_col}'; give the `selectkit cluster` "
                f"table the manifest was selected with, or name its column with "
                f"{option('cluster_col')}"
            )
        left, right = _same_kind(
            mframe.get_column(id_col), ctab.frame.get_column(id_col), f"'{manifest}'", clusters
        )
        mframe = pl.DataFrame({id_col: left}).join(
            pl.DataFrame({id_col: right, cluster_col: ctab.frame.get_column(cluster_col)}),
            on=id_col,
            how="left",
        )
    if cluster_col not in mframe.columns:
        raise SelectkitDataError(
            f"'{manifest}' has no column '{cluster_col}' (the cluster of each pick); select with "
            f"a clusters file among the inputs, or give that file with {option('clusters')}"
        )
    ccol = mframe.get_column(cluster_col)
    if not ccol.dtype.is_integer() or ccol.null_count():
        raise SelectkitDataError(
            f"column '{cluster_col}' of '{manifest}' must hold an integer cluster for every row "
            f"({ccol.null_count()} null, type {ccol.dtype}); give the clusters the round was "
            f"selected with ({option('clusters')})"
        )
    fb = read_table(feedback, id_col=id_col)
    inputs.append(fb.source.as_dict())
    values = _numeric(fb.frame, feedback_col, f"'{feedback}'", "the feedback", "feedback_col")
    man_ids, fb_ids = _same_kind(
        mframe.get_column(id_col), fb.frame.get_column(id_col), f"'{manifest}'", f"'{feedback}'"
    )
    joined = pl.DataFrame({id_col: man_ids, "_c": ccol.cast(pl.Int64)}).join(
        pl.DataFrame({id_col: fb_ids, "_s": values}), on=id_col, how="inner"
    )
    if joined.height == 0:
        raise SelectkitDataError(
            f"no id of '{feedback}' is in '{manifest}'; give the feedback on that round's rows"
        )
    prior_ids = np.empty(0, dtype=np.int64)
    prior_w = np.empty(0)
    if prior is not None:
        ptab = read_table(str(prior), id_col="cluster")
        inputs.append(ptab.source.as_dict())
        prior_w = _numeric(ptab.frame, "weight", f"'{prior}'", "the prior weights", "prior")
        if (prior_w < 0).any():
            raise SelectkitDataError(f"column 'weight' of '{prior}' has negative weights")
        prior_ids = ptab.frame.get_column("cluster").cast(pl.Int64).to_numpy()
    prov.stop("read")

    stats = joined.group_by("_c").agg(pl.col("_s").mean().alias("m"), pl.len().alias("n"))
    fed_ids = stats.get_column("_c").to_numpy()
    all_ids = np.union1d(np.union1d(fed_ids, prior_ids), ccol.cast(pl.Int64).to_numpy())
    w0 = np.ones(all_ids.size)
    w0[np.searchsorted(all_ids, prior_ids)] = prior_w
    pos = np.searchsorted(all_ids, fed_ids)
    means = np.full(all_ids.size, np.nan)
    means[pos] = stats.get_column("m").to_numpy()
    rows = np.zeros(all_ids.size, dtype=np.int64)
    rows[pos] = stats.get_column("n").to_numpy()
    fed = rows > 0
    w, shifted = update_weights(w0, np.nan_to_num(means), fed, rule, temperature)
    out = pl.DataFrame(
        {
            "cluster": pl.Series(all_ids, dtype=pl.Int32),
            "weight": pl.Series(w, dtype=pl.Float64),
            "feedback_mean": pl.Series(means, dtype=pl.Float64).fill_nan(None),
            "feedback_rows": pl.Series(rows, dtype=pl.Int64),
        }
    )
    prov.inputs = inputs
    prov.metrics = {
        "clusters": int(all_ids.size),
        "clusters_with_feedback": int(fed.sum()),
        "feedback_rows_used": int(joined.height),
        "feedback_rows_not_in_manifest": int(fb.frame.height - joined.height),
        "manifest_rows_without_feedback": int(mframe.height - joined.height),
        "shifted": shifted,
        "weight_min": float(w.min()),
        "weight_max": float(w.max()),
    }
    write_table(out, output, provenance=prov)
    return {"output": output, **prov.metrics}
