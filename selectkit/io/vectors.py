"""Turn a column of embeddings (or any list-of-float column) into a validated float32 matrix."""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError


def as_matrix(series: pl.Series, where: str, *, dtype: type = np.float32) -> np.ndarray:
    """Return ``series`` as a C-contiguous 2-D array, refusing nulls, NaN/inf and ragged rows.

    ``where`` names the file or table for the error message. Zero-copy when the column is a
    fixed-size float32 array without nulls; otherwise one copy, O(n*d) memory.
    """
    name = series.name
    n = series.len()
    if series.null_count():
        first = int(series.is_null().arg_max())
        raise SelectkitDataError(
            f"{where}: column '{name}' is null in {series.null_count()} rows (first at row {first}); "
            "drop those rows or re-run `selectkit embed` on them"
        )
    dt = series.dtype
    if isinstance(dt, pl.Array):
        if len(dt.shape) != 1:
            raise SelectkitDataError(f"{where}: column '{name}' must be a list of numbers per row")
        inner = series.explode() if series.len() else series
        if inner.null_count():
            raise SelectkitDataError(
                f"{where}: column '{name}' has null entries inside its vectors; re-create them"
            )
        mat = series.to_numpy()
    elif isinstance(dt, pl.List):
        lengths = series.list.len()
        lo, hi = lengths.min(), lengths.max()
        if lo != hi:
            bad = int((lengths != lengths[0]).arg_max())
            raise SelectkitDataError(
                f"{where}: column '{name}' is ragged: row 0 has {lengths[0]} values but row {bad} "
                f"has {lengths[bad]}; every vector must have the same length"
            )
        if lo == 0:
            raise SelectkitDataError(f"{where}: column '{name}' holds empty vectors")
        flat = series.explode()
        if flat.null_count():
            raise SelectkitDataError(
                f"{where}: column '{name}' has null entries inside its vectors; re-create them"
            )
        if not flat.dtype.is_numeric():
            raise SelectkitDataError(
                f"{where}: column '{name}' holds {flat.dtype}, not numbers; it must be a list of floats"
            )
        mat = flat.to_numpy().reshape(n, int(lo))
    else:
        raise SelectkitDataError(
            f"{where}: column '{name}' has type {dt}, not a list of floats per row; "
            "make it with `selectkit embed`"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported just below
        mat = np.ascontiguousarray(mat, dtype=dtype)
    check_finite(mat, where, name)
    return mat


def check_finite(mat: np.ndarray, where: str, name: str, chunk_rows: int = 65536) -> None:
    """Raise if ``mat`` holds NaN or inf; scans in chunks so a memory-mapped file stays paged."""
    if mat.ndim != 2:
        raise SelectkitDataError(f"{where}: '{name}' must be a 2-D array, got {mat.ndim}-D")
    if mat.shape[1] == 0:
        raise SelectkitDataError(f"{where}: '{name}' has zero columns")
    if not np.issubdtype(mat.dtype, np.number):
        raise SelectkitDataError(f"{where}: '{name}' holds {mat.dtype}, not numbers")
    for start in range(0, mat.shape[0], chunk_rows):
        block = mat[start : start + chunk_rows]
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            row = start + int(np.argmin(ok))
            raise SelectkitDataError(
                f"{where}: '{name}' has NaN or infinite values (first at row {row}); drop or "
                "repair those rows (float32 vectors hold at most ±3.4e38)"
            )


def as_tensor3(series: pl.Series, where: str) -> np.ndarray:
    """Return a list-of-lists column (e.g. ``proba_mc``: passes x classes per row) as a C-contiguous
    (n, T, C) float32 array, refusing nulls and ragged rows. One copy, O(n T C) memory."""
    name = series.name
    dt = series.dtype
    if isinstance(dt, pl.Array) and len(dt.shape) == 2:
        if series.null_count():
            raise SelectkitDataError(
                f"{where}: column '{name}' is null in {series.null_count()} rows"
            )
        mat = np.ascontiguousarray(series.to_numpy(), dtype=np.float32)
    elif isinstance(dt, (pl.List, pl.Array)) and isinstance(dt.inner, (pl.List, pl.Array)):
        passes = series.cast(pl.List(pl.List(pl.Float32)))
        if passes.null_count():
            first = int(passes.is_null().arg_max())
            raise SelectkitDataError(
                f"{where}: column '{name}' is null in {passes.null_count()} rows (first at row "
                f"{first}); give every row its passes"
            )
        lengths = passes.list.len()
        if lengths.min() != lengths.max() or lengths.min() == 0:
            bad = int((lengths != lengths[0]).arg_max())
            raise SelectkitDataError(
                f"{where}: column '{name}' is ragged: row 0 has {lengths[0]} passes but row {bad} "
                f"has {lengths[bad]}; every row needs the same number of passes"
            )
        inner = passes.explode()
        mat2 = as_matrix(inner.alias(name), where)  # checks ragged class counts, nulls, NaN
        mat = mat2.reshape(series.len(), int(lengths[0]), mat2.shape[1])
    else:
        raise SelectkitDataError(
            f"{where}: column '{name}' has type {dt}, not a list of lists of floats per row "
            "(passes x classes)"
        )
    check_finite(mat.reshape(mat.shape[0], -1), where, name)
    return mat


PROBA_TOLERANCE = 1e-3


def check_probabilities(
    mat: np.ndarray, where: str, name: str, chunk_rows: int = 65536, per_row: int = 1
) -> None:
    """Raise unless every row of ``mat`` is a probability distribution: finite, within [0, 1],
    summing to 1 within ``PROBA_TOLERANCE`` (catches logits and unnormalised scores). O(n C).
    ``per_row``: distributions per table row (T passes of a flattened (n, T, C) tensor), so the
    error names the table row."""
    check_finite(mat, where, name, chunk_rows)
    for start in range(0, mat.shape[0], chunk_rows):
        block = np.asarray(mat[start : start + chunk_rows], dtype=np.float64)
        low = block.min(axis=1) < -PROBA_TOLERANCE
        sums = block.sum(axis=1)
        bad = low | (np.abs(sums - 1.0) > PROBA_TOLERANCE)
        if bad.any():
            row = int(np.argmax(bad))
            at = f"row {(start + row) // per_row}" + (
                f" pass {(start + row) % per_row}" if per_row > 1 else ""
            )
            raise SelectkitDataError(
                f"{where}: column '{name}' {at} is not a probability distribution "
                f"(min {block[row].min():.4g}, sum {sums[row]:.4g}); give softmax outputs, not "
                "logits or scores"
            )
