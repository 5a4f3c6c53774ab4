"""Turn a column of embeddings (or any list-of-float column) into a validated float32 matrix."""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.errors import SelectkitError


def as_matrix(series: pl.Series, where: str, *, dtype: type = np.float32) -> np.ndarray:
    """Return ``series`` as a C-contiguous 2-D array, refusing nulls, NaN/inf and ragged rows.

    ``where`` names the file or table for the error message. Zero-copy when the column is a
    fixed-size float32 array without nulls; otherwise one copy, O(n*d) memory.
    """
    name = series.name
    n = series.len()
    if series.null_count():
        first = int(series.is_null().arg_max())
        raise SelectkitError(
            f"{where}: column '{name}' is null in {series.null_count()} rows (first at row {first}); "
            "drop those rows or re-run `selectkit embed` on them"
        )
    dt = series.dtype
    if isinstance(dt, pl.Array):
        if len(dt.shape) != 1:
            raise SelectkitError(f"{where}: column '{name}' must be a list of numbers per row")
        inner = series.explode() if series.len() else series
        if inner.null_count():
            raise SelectkitError(
                f"{where}: column '{name}' has null entries inside its vectors; re-create them"
            )
        mat = series.to_numpy()
    elif isinstance(dt, pl.List):
        lengths = series.list.len()
        lo, hi = lengths.min(), lengths.max()
        if lo != hi:
            bad = int((lengths != lengths[0]).arg_max())
            raise SelectkitError(
                f"{where}: column '{name}' is ragged: row 0 has {lengths[0]} values but row {bad} "
                f"has {lengths[bad]}; every vector must have the same length"
            )
        if lo == 0:
            raise SelectkitError(f"{where}: column '{name}' holds empty vectors")
        flat = series.explode()
        if flat.null_count():
            raise SelectkitError(
                f"{where}: column '{name}' has null entries inside its vectors; re-create them"
            )
        if not flat.dtype.is_numeric():
            raise SelectkitError(
                f"{where}: column '{name}' holds {flat.dtype}, not numbers; it must be a list of floats"
            )
        mat = flat.to_numpy().reshape(n, int(lo))
    else:
        raise SelectkitError(
            f"{where}: column '{name}' has type {dt}, not a list of floats per row; "
            "make it with `selectkit embed`"
        )
    mat = np.ascontiguousarray(mat, dtype=dtype)
    check_finite(mat, where, name)
    return mat


def check_finite(mat: np.ndarray, where: str, name: str, chunk_rows: int = 65536) -> None:
    """Raise if ``mat`` holds NaN or inf; scans in chunks so a memory-mapped file stays paged."""
    if mat.ndim != 2:
        raise SelectkitError(f"{where}: '{name}' must be a 2-D array, got {mat.ndim}-D")
    if mat.shape[1] == 0:
        raise SelectkitError(f"{where}: '{name}' has zero columns")
    if not np.issubdtype(mat.dtype, np.number):
        raise SelectkitError(f"{where}: '{name}' holds {mat.dtype}, not numbers")
    for start in range(0, mat.shape[0], chunk_rows):
        block = mat[start : start + chunk_rows]
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            row = start + int(np.argmin(ok))
            raise SelectkitError(
                f"{where}: '{name}' has NaN or infinite values (first at row {row}); "
                "drop or repair those rows"
            )
