"""Long-format model predictions: read, validate and pivot into a dense models x samples x classes
array.

The input has one row per (model, sample id) with ``proba`` (a list of class probabilities) and
optional columns ``group`` (the sub-benchmark of a sample), ``correct`` (whether that model got that
sample right) and ``label`` (the true class of a sample). ``Predictions`` holds them densely:
``proba`` is an (M, N, C) float32 array, ``correct`` an (M, N) bool array. The pivot is a scatter by
integer codes (no Python loop over rows), and every defect is refused with the model or id at fault:
duplicate (model, id) pairs, ragged, null, NaN or negative ``proba`` (rows are rescaled to sum to
1, with a warning when one was off by more than 1e-3), and models that lack
some ids (reported with how many rows they lack; ``drop_incomplete`` drops them with a warning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from selectkit.console import warn
from selectkit.errors import SelectkitError, SelectkitUsageError, option
from selectkit.io.formats import STDIO, detect_format
from selectkit.io.tables import (
    Source,
    check_exists,
    iter_batches,
    read_table,
)
from selectkit.pool import Columns, Pool, check_named_columns, column_option

if TYPE_CHECKING:  # the adapter protocol lives beside the strategies, which import this module
    from selectkit.strategies.inputs import FileInputs

# rows are rescaled to sum to 1; a warning names rows further than this from 1
SUM_TOLERANCE = 1e-3


@dataclass
class Predictions:
    """Dense predictions of M models on N samples over C classes.

    ``models``: model names (M, first-seen order); ``ids``: sample ids (N, first-seen order);
    ``proba``: (M, N, C) float32; ``groups``: (N,) group names or None; ``labels``: (N,) true
    classes or None; ``correct``: (M, N) bool or None (from the ``correct`` column, else from
    ``labels``); ``dropped``: incomplete models left out, with how many rows each lacked.
    """

    models: list[str]
    ids: pl.Series
    proba: np.ndarray
    groups: np.ndarray | None = None
    labels: np.ndarray | None = None
    correct: np.ndarray | None = None
    sources: list[Source] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    where: str = "the predictions"

    @property
    def n_models(self) -> int:
        return self.proba.shape[0]

    @property
    def n_samples(self) -> int:
        return self.proba.shape[1]

    @property
    def n_classes(self) -> int:
        return self.proba.shape[2]

    def subset_models(self, rows: np.ndarray) -> Predictions:
        """The same samples for the models at positions ``rows`` (copies the selected slices)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Predictions(
            models=[self.models[i] for i in rows],
            ids=self.ids,
            proba=self.proba[rows],
            groups=self.groups,
            labels=self.labels,
            correct=None if self.correct is None else self.correct[rows],
            sources=self.sources,
            where=self.where,
        )

    def require_correct(self, purpose: str) -> np.ndarray:
        """The (M, N) correctness matrix, or an error saying which column would provide it."""
        if self.correct is None:
            raise SelectkitError(
                f"{purpose} needs to know which answers are right, but {self.where} has neither a "
                "'correct' column (per model and id) nor a 'label' column (true class per id); "
                "add one of them"
            )
        return self.correct

    def accuracy(self) -> np.ndarray:
        """Each model's accuracy over all samples (float64, fractions in [0, 1]); O(M N)."""
        return self.require_correct("computing accuracies").mean(axis=1, dtype=np.float64)


@dataclass
class ModelPool(Pool):
    """A pool with one row per sample id, pivoted from a long table; ``predictions`` holds the
    (models x samples x classes) probabilities aligned with ``frame``'s rows."""

    predictions: Predictions | None = None

    def in_id_order(self) -> tuple[Pool, np.ndarray | None]:
        """``Pool.in_id_order`` for the samples, with the models sorted by name too: guiding
        models are drawn by position, so their order must not follow the input's either."""
        pool, perm = super().in_id_order()
        preds = self.predictions
        if preds is None:
            return pool, perm
        by_name = np.argsort(np.array(preds.models, dtype=object), kind="stable")
        if perm is None and np.array_equal(by_name, np.arange(by_name.size)):
            return self, None
        samples = np.arange(preds.n_samples) if perm is None else perm
        canonical = replace(
            preds,
            models=[preds.models[i] for i in by_name],
            ids=preds.ids.gather(samples),
            proba=np.ascontiguousarray(preds.proba[by_name][:, samples]),
            groups=None if preds.groups is None else preds.groups[samples],
            labels=None if preds.labels is None else preds.labels[samples],
            correct=None if preds.correct is None else preds.correct[by_name][:, samples],
        )
        sorted_pool = ModelPool(
            frame=pool.frame,
            columns=pool.columns,
            arrays=pool.arrays,
            sources=pool.sources,
            use_labels=pool.use_labels,
            labelled_col=pool.labelled_col,
            labels_as_data=pool.labels_as_data,
            predictions=canonical,
        )
        return sorted_pool, perm


def read_long_table(
    paths: Sequence[str | Path],
    *,
    input_format: str | None = None,
    columns: list[str] | None = None,
) -> tuple[pl.DataFrame, list[Source]]:
    """Read and stack long-format tables (one row per model and id; e.g. one file per model).

    Parquet or JSON Lines; ids may repeat across rows, so unlike ``read_table`` there is no
    uniqueness check here (``pivot_predictions`` checks (model, id) pairs). One read per file.
    """
    if not paths:
        raise SelectkitUsageError("give at least one predictions table")
    frames, sources = [], []
    for raw in paths:
        path = str(raw)
        check_exists(path)
        fmt = detect_format(path, input_format)
        where = "stdin" if path == STDIO else path
        if fmt not in ("parquet", "jsonl"):
            raise SelectkitError(
                f"'{where}' is {fmt}; predictions need a list column 'proba', so give Parquet or "
                "JSON Lines"
            )
        # the shared reader: compression by content, BOM, FIFOs, bad lines named by number
        source, batches = iter_batches(path, input_format=fmt, batch_size=65536)
        parts = list(batches)
        frame = pl.concat(parts, how="vertical") if parts else pl.DataFrame()
        if columns:
            frame = frame.select([c for c in columns if c in frame.columns])
        if frame.height == 0:
            raise SelectkitError(f"'{where}' has no rows; give a table with at least one row")
        frames.append(frame)
        sources.append(source)
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    return frame, sources


def _codes(values: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """(unique values in first-seen order, int64 code of every row); one hash pass."""
    uniques = values.unique(maintain_order=True)
    lookup = pl.DataFrame({"v": uniques, "code": np.arange(uniques.len(), dtype=np.int64)})
    codes = (
        pl.DataFrame({"v": values})
        .join(lookup, on="v", how="left", maintain_order="left")
        .get_column("code")
        .to_numpy()
    )
    return uniques, codes


class _Layout:
    """Where each row of the long table goes in the dense (M, N) grid.

    ``grid``: the table is complete and model-major (row r is model r // N, sample r % N), so
    nothing needs scattering; otherwise ``mcode``/``scode`` give every row's model and sample.
    """

    def __init__(self, m: int, n: int, mcode: np.ndarray | None, scode: np.ndarray | None):
        self.m, self.n, self.mcode, self.scode = m, n, mcode, scode
        self.grid = mcode is None

    def model_of(self, row: int) -> int:
        return row // self.n if self.grid else int(self.mcode[row])

    def sample_of(self, row: int) -> int:
        return row % self.n if self.grid else int(self.scode[row])

    def dense(self, values: np.ndarray, fill: float | bool = 0) -> np.ndarray:
        """``values`` (one entry or row per table row) laid out as (M, N, ...)."""
        if self.grid:
            return values.reshape(self.m, self.n, *values.shape[1:])
        out = np.full((self.m, self.n, *values.shape[1:]), fill, dtype=values.dtype)
        out[self.mcode, self.scode] = values
        return out


def _grid(models: pl.Series, ids: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """(model names, sample ids) when the table is a complete model-major grid: each model's rows
    are one contiguous block of N rows and every block lists the same N distinct ids in the same
    order (how leaderboard dumps are usually written). None otherwise. Vectorised per block;
    no per-row codes, so no O(rows) int64 arrays."""
    h = models.len()
    starts = np.flatnonzero(models.ne_missing(models.shift(1)).fill_null(True).to_numpy())
    m = starts.size
    if h % m or not np.array_equal(starts, np.arange(0, h, h // m)):
        return None
    n = h // m
    names, first = models.gather(starts), ids.head(n)
    if names.n_unique() != m or first.n_unique() != n:
        return None
    if not all(ids.slice(b * n, n).equals(first) for b in range(1, m)):
        return None
    return names, first


def _per_sample(
    values: pl.Series, layout: _Layout, where: str, what: str, ids: pl.Series
) -> np.ndarray:
    """The one value each sample carries in ``values`` (a per-id column such as group or label);
    refuses an id whose rows disagree."""
    if layout.grid:
        n = layout.n
        first = values.head(n)
        for b in range(1, layout.m):
            block = values.slice(b * n, n)
            if not block.equals(first):
                bad = int((block.ne_missing(first)).arg_max())
                raise SelectkitError(
                    f"{where}: column '{values.name}' ({what}) differs between the rows of id "
                    f"{ids[bad]!r}; it must be the same for every model"
                )
        return first.to_numpy()
    uniq, vcode = _codes(values)
    per = np.empty(layout.n, dtype=np.int64)
    per[layout.scode] = vcode
    bad = per[layout.scode] != vcode
    if bad.any():
        row = int(np.argmax(bad))
        raise SelectkitError(
            f"{where}: column '{values.name}' ({what}) differs between the rows of id "
            f"{ids[layout.sample_of(row)]!r}; it must be the same for every model"
        )
    return uniq.gather(per).to_numpy()


def pivot_predictions(
    frame: pl.DataFrame,
    *,
    columns: Columns | None = None,
    where: str = "the predictions",
    drop_incomplete: bool = False,
    sources: list[Source] | None = None,
) -> Predictions:
    """Pivot a long table (one row per model and id) into dense ``Predictions``.

    Refuses, with the model, id or row at fault: null model or id, duplicate (model, id) pairs,
    null, ragged, NaN or non-probability ``proba``, a per-id column (group, label) that differs
    between models, and models lacking some ids (unless ``drop_incomplete``, which drops them with
    a warning and records them in ``dropped``). O(rows * C) time; memory about twice the dense
    (M, N, C) float32 array.
    """
    cols = columns or Columns()
    for role in ("model", "id", "proba"):
        name = cols.name(role)
        if name not in frame.columns:
            flag = f"--{role}-col"
            raise SelectkitError(
                f"{where} has no column '{name}' ({role}); long-format predictions need one row "
                f"per (model, id) with columns model, id and proba, or name another column with "
                f"{flag}"
            )
    for role in ("model", "id"):
        col = frame.get_column(cols.name(role))
        if col.null_count():
            first = int(col.is_null().arg_max())
            raise SelectkitError(
                f"{where}: column '{col.name}' ({role}) is null in {col.null_count()} rows (first "
                f"at row {first}); every row needs a {role}"
            )
    model_col = frame.get_column(cols.model).cast(pl.String)
    grid = _grid(model_col, frame.get_column(cols.id))
    if grid is not None:  # a complete model-major table: nothing to scatter
        models_s, ids = grid
        layout = _Layout(models_s.len(), ids.len(), None, None)
    else:
        models_s, mcode = _codes(model_col)
        ids, scode = _codes(frame.get_column(cols.id))
        layout = _Layout(models_s.len(), ids.len(), mcode, scode)
    m, n = layout.m, layout.n
    models = models_s.to_list()

    if layout.grid:
        filled = np.ones((m, n), dtype=bool)
    else:
        filled = np.zeros((m, n), dtype=bool)
        filled[mcode, scode] = True
    if int(filled.sum()) != frame.height:
        key = mcode * n + scode
        order = np.argsort(key, kind="stable")
        dup = order[1:][key[order[1:]] == key[order[:-1]]]
        row = int(dup[0])
        raise SelectkitError(
            f"{where}: model {models[mcode[row]]!r} has {frame.height - int(filled.sum())} "
            f"duplicate rows (e.g. id {ids[int(scode[row])]!r} appears twice); give one row per "
            "(model, id)"
        )

    proba_col = frame.get_column(cols.proba)
    if not isinstance(proba_col.dtype, (pl.List, pl.Array)):
        raise SelectkitError(
            f"{where}: column '{cols.proba}' has type {proba_col.dtype}, not a list of class "
            "probabilities per row"
        )
    flat = _proba_matrix(proba_col, where, models, layout, ids)
    c = flat.shape[1]
    proba = layout.dense(flat)
    del flat

    lacking = n - filled.sum(axis=1)
    keep = np.flatnonzero(lacking == 0)
    dropped: dict[str, int] = {}
    if keep.size < m:
        bad = np.flatnonzero(lacking)
        listed = ", ".join(f"{models[i]!r} lacks {int(lacking[i])}" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        if not drop_incomplete:
            raise SelectkitError(
                f"{where}: {bad.size} of {m} models lack rows for some of the {n} ids ({listed}"
                f"{more}); give every model a row for every id, or drop those models with "
                + option("drop_incomplete", python="drop_incomplete=True")
            )
        if keep.size == 0:
            raise SelectkitError(
                f"{where}: no model has a row for all {n} ids ({listed}{more}); nothing is left"
            )
        warn(f"{where}: dropped {bad.size} incomplete model(s): {listed}{more}")
        dropped = {models[i]: int(lacking[i]) for i in bad}
        proba = proba[keep]
        models = [models[i] for i in keep]

    groups = labels = correct = None
    if cols.group in frame.columns:
        groups = _per_sample(
            frame.get_column(cols.group).cast(pl.String).fill_null("(none)"),
            layout, where, "group", ids,
        )  # fmt: skip
    if cols.label in frame.columns and frame.get_column(cols.label).null_count() < frame.height:
        labels = _labels(frame.get_column(cols.label), layout, c, where, ids)
    if "correct" in frame.columns:
        correct = _correct(frame.get_column("correct"), layout, where)
        if keep.size < m:
            correct = correct[keep]
    elif labels is not None and not np.any(labels < 0):
        correct = proba.argmax(axis=2) == labels[None, :]
    return Predictions(
        models=models,
        ids=ids.rename("id"),
        proba=proba,
        groups=groups,
        labels=labels,
        correct=correct,
        sources=list(sources or []),
        dropped=dropped,
        where=where,
    )


def _proba_matrix(
    col: pl.Series,
    where: str,
    models: list[str],
    layout: _Layout,
    ids: pl.Series,
) -> np.ndarray:
    """The (rows, C) float32 probabilities; refuses nulls, ragged rows, NaN and non-probabilities
    naming the model and id of the first bad row."""

    def at(row: int) -> str:
        return f"model {models[layout.model_of(row)]!r}, id {ids[layout.sample_of(row)]!r}"

    if col.null_count():
        row = int(col.is_null().arg_max())
        raise SelectkitError(
            f"{where}: column '{col.name}' is null in {col.null_count()} rows (first: {at(row)}); "
            "every row needs its class probabilities"
        )
    lengths = col.list.len() if isinstance(col.dtype, pl.List) else None
    if lengths is not None and lengths.min() != lengths.max():
        row = int((lengths != lengths[0]).arg_max())
        raise SelectkitError(
            f"{where}: column '{col.name}' has {lengths[0]} classes in row 0 but {lengths[row]} "
            f"for {at(row)}; every row needs the same number of classes"
        )
    flat = col.explode() if lengths is not None else col.reshape((-1,))
    if flat.null_count():
        row = int(np.flatnonzero(col.list.eval(pl.element().is_null().any()).to_numpy())[0])
        raise SelectkitError(
            f"{where}: column '{col.name}' has a null probability for {at(row)}; re-create it"
        )
    c = int(lengths[0]) if lengths is not None else col.dtype.size
    if c < 2:
        raise SelectkitError(f"{where}: column '{col.name}' needs at least 2 classes, has {c}")
    mat = np.ascontiguousarray(flat.to_numpy(), dtype=np.float32).reshape(col.len(), c)
    # whole-array checks first: per-row reductions over a tiny class axis are slow
    if not np.isfinite(mat).all():
        row = int(np.argmin(np.isfinite(mat).all(axis=1)))
        raise SelectkitError(
            f"{where}: column '{col.name}' has NaN or infinite values for {at(row)}; re-create it"
        )
    sums = mat @ np.ones(c, dtype=np.float32)
    if mat.min() < 0 or sums.min() <= 0:
        row = int(np.argmax((mat.min(axis=1) < 0) | (sums <= 0)))
        raise SelectkitError(
            f"{where}: column '{col.name}' is not a probability vector for {at(row)} (sum "
            f"{sums[row]:.4g}, min {mat[row].min():.4g}); pass softmax probabilities, not logits"
        )
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        # e.g. probabilities of the answer options read off a larger softmax: rescaling keeps
        # their ratios, which is what disagreement and signatures compare
        row = int(np.argmax(off))
        warn(
            f"{where}: {int(off.sum())} rows of '{col.name}' do not sum to 1 (e.g. {at(row)}: "
            f"{sums[row]:.4g}); rescaled them to sum to 1"
        )
    if np.abs(sums - 1.0).max() > 1e-6:  # the input may be a read-only view: copy only if needed
        mat = (mat / sums[:, None]).astype(np.float32)
    return mat


def _labels(col: pl.Series, layout: _Layout, c: int, where: str, ids: pl.Series) -> np.ndarray:
    """Per-sample true class as int64 in [0, C); -1 where the label is null."""
    if not col.dtype.is_integer():
        raise SelectkitError(
            f"{where}: column '{col.name}' (label) holds {col.dtype}; DISCO needs the true class "
            "as an integer index into proba"
        )
    negative = col.fill_null(0) < 0
    if negative.any():  # -1 is a label, never a stand-in for null: refuse, do not drop it
        row = int(negative.arg_max())
        raise SelectkitError(
            f"{where}: label {col[row]} is not a class index in [0, {c}) (the length of proba); "
            "leave the label null where a sample has none"
        )
    values = _per_sample(col.fill_null(-1).cast(pl.Int64), layout, where, "label", ids)
    values = values.astype(np.int64)
    bad = values >= c
    if bad.any():
        i = int(np.argmax(bad))
        raise SelectkitError(
            f"{where}: label {values[i]} of id {ids[i]!r} is not a class index below {c} (the "
            "length of proba)"
        )
    return values


def _correct(col: pl.Series, layout: _Layout, where: str) -> np.ndarray:
    if col.null_count():
        raise SelectkitError(
            f"{where}: column 'correct' is null in {col.null_count()} rows; give 0/1 or true/false "
            "for every row"
        )
    if not (col.dtype == pl.Boolean or col.dtype.is_numeric()):
        raise SelectkitError(
            f"{where}: column 'correct' holds {col.dtype}; give 0/1 or true/false per row"
        )
    values = col.cast(pl.Float64).to_numpy()
    if not np.isin(values, (0.0, 1.0)).all():
        raise SelectkitError(f"{where}: column 'correct' must be 0/1 or true/false")
    return layout.dense(values.astype(bool), False)


def join_per_sample(
    long: pl.DataFrame, table: pl.DataFrame, id_col: str, where: str
) -> pl.DataFrame:
    """Join a per-sample table (one row per id, no model column: e.g. id, label) onto every
    (model, id) row of ``long``, as other commands join their inputs on the id column.

    Its ids must be unique and cover every id of ``long`` (extra ids are ignored); a column
    already in ``long`` is kept from ``long`` with a warning. O(rows) hash join."""
    if id_col not in table.columns:
        raise SelectkitError(
            f"{where} has neither a model column nor an id column '{id_col}'; a per-sample table "
            "(e.g. id, label) is joined on the id, so it needs one"
        )
    ids = table.get_column(id_col)
    if ids.is_duplicated().any():
        raise SelectkitError(
            f"{where}: id {ids.filter(ids.is_duplicated())[0]!r} appears more than once; a "
            "per-sample table has one row per id"
        )
    dupes = [c for c in table.columns if c != id_col and c in long.columns]
    if dupes:
        warn(f"column(s) {dupes} of {where} ignored; taken from the predictions")
    left_t, right_t = long.schema[id_col], table.schema[id_col]
    if left_t != right_t and not (left_t.is_integer() and right_t.is_integer()):
        raise SelectkitError(
            f"{where}: ids in column '{id_col}' are {right_t} but the predictions' are {left_t}; "
            "give both tables ids of one type"
        )
    right = table.drop(dupes).with_columns(pl.col(id_col).cast(left_t), pl.lit(True).alias("__hit"))
    joined = long.join(right, on=id_col, how="left", maintain_order="left")
    missing = (
        joined.filter(pl.col("__hit").is_null()).get_column(id_col).unique(maintain_order=True)
    )
    if missing.len():
        raise SelectkitError(
            f"{where} lacks {missing.len()} of the predictions' sample ids (e.g. {missing[0]!r}); "
            "give a per-sample table that covers every id"
        )
    return joined.drop("__hit")


def load_predictions(
    paths: Sequence[str | Path] | str | Path,
    *,
    columns: Columns | None = None,
    input_format: str | None = None,
    drop_incomplete: bool = False,
) -> Predictions:
    """Read long-format prediction tables (Parquet or JSONL; several are stacked) and pivot them
    into ``Predictions``. Tables without the model column are per-sample tables (e.g. ``id,
    label`` or ``id, group``), joined on the id column (``join_per_sample``), the input contract
    of every command. See ``pivot_predictions`` for the checks and the cost."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    cols = columns or Columns()
    longs, per_sample, sources = [], [], []
    for path in paths:  # one read per file, as read_long_table does
        if detect_format(str(path), input_format) == "csv":  # a per-sample table (id, label)
            table = read_table(path, id_col=cols.id)
            frame, source = table.frame, table.source
        else:
            frame, (source,) = read_long_table([path], input_format=input_format)
        (longs if cols.model in frame.columns else per_sample).append((frame, source))
        sources.append(source)
    if not longs:
        raise SelectkitError(
            f"none of {', '.join(repr(s.path) for s in sources)} has a model column "
            f"'{cols.model}'; give at least one long table of predictions (one row per model "
            f"and id), or name the column with {column_option('model')}"
        )
    frame = (
        pl.concat([f for f, _ in longs], how="diagonal_relaxed") if len(longs) > 1 else longs[0][0]
    )
    for table, source in per_sample:
        frame = join_per_sample(frame, table, cols.id, f"'{source.path}'")
    check_named_columns(frame.columns, cols, [s.path for s in sources])
    where = "'" + "' + '".join(s.path for s in sources) + "'"
    return pivot_predictions(
        frame, columns=columns, where=where, drop_incomplete=drop_incomplete, sources=sources
    )


def pivot_pool(
    pool: Pool,
    *,
    drop_incomplete: bool = False,
    needs: Sequence[str] = ("model", "proba"),
    purpose: str = "DISCO",
) -> ModelPool:
    """Turn a pool holding a long table into a ``ModelPool`` with one row per sample id.

    The long table must have the column roles ``needs`` (checked first, before any work). The
    frame keeps ``id``, and ``group`` and ``label`` where present, any other numeric column
    (e.g. a cost column; each id's first value), and the pool's labelled-set
    column (``labelled_col``: non-null on a sample's row of any model marks the sample labelled).
    Already pivoted pools come back unchanged.
    """
    if isinstance(pool, ModelPool):
        return pool
    pool.require(needs, purpose)
    # --label-col none: the label column is neither checked nor used
    long = pool.frame if pool.use_labels else pool.frame.drop(pool.columns.label, strict=False)
    preds = pivot_predictions(
        long,
        columns=pool.columns,
        where=pool.where,
        drop_incomplete=drop_incomplete,
        sources=pool.sources,
    )
    cols = pool.columns
    data: dict[str, object] = {cols.id: preds.ids}
    if preds.groups is not None:
        data[cols.group] = preds.groups
    if pool.use_labels and cols.label in pool.frame.columns:
        labels = preds.labels if preds.labels is not None else np.full(preds.n_samples, -1)
        data[cols.label] = pl.Series(labels, dtype=pl.Int64).replace(-1, None)
    # other numeric per-sample columns (a cost column, ...) travel too: each id's first value
    roles = {cols.name(r) for r in cols.roles()} | {mark for mark in [pool.labelled_col] if mark}
    extra = [
        c for c in long.columns if c not in roles and c not in data and long.schema[c].is_numeric()
    ]
    if extra:
        firsts = long.group_by(cols.id, maintain_order=True).agg(pl.col(extra).first())
        per_id = pl.DataFrame({cols.id: preds.ids}).join(
            firsts, on=cols.id, how="left", maintain_order="left"
        )
        data.update({c: per_id.get_column(c) for c in extra})
    mark = pool.labelled_col
    if mark is not None and mark not in data:
        marked = pool.frame.filter(pl.col(mark).is_not_null()).get_column(cols.id)
        data[mark] = preds.ids.is_in(marked.unique().implode()).cast(pl.Int8).replace(0, None)
    return ModelPool(
        frame=pl.DataFrame(data),
        columns=cols,
        sources=pool.sources,
        use_labels=pool.use_labels,
        labelled_col=pool.labelled_col,
        labels_as_data=pool.labels_as_data,
        predictions=preds,
    )


class LongInput:
    """DISCO's input adapter (``selectkit.strategies.inputs.InputAdapter``): one row per (model,
    id) with ``proba``, stacked from every file, pivoted to one row per sample id before the
    strategy runs, so the budget counts samples. The strategy's ``drop_incomplete`` parameter
    tunes the pivot."""

    name = "long"

    def load(self, files: FileInputs, params: dict[str, Any]) -> Pool:
        """The stacked long table as a pool (not yet pivoted); cost: reading the files."""
        frame, sources = read_long_table(files.paths, input_format=files.input_format)
        check_named_columns(frame.columns, files.columns, [s.path for s in sources])
        return Pool(
            frame=frame, columns=files.columns, sources=sources, use_labels=files.use_labels
        )

    def prepare(
        self, pool: Pool, needs: Sequence[str], purpose: str, params: dict[str, Any]
    ) -> ModelPool:
        """The pool pivoted to one row per sample (``pivot_pool``); a ModelPool unchanged."""
        return pivot_pool(
            pool,
            drop_incomplete=bool(params.get("drop_incomplete", False)),
            needs=needs,
            purpose=purpose,
        )


LONG = LongInput()
