"""The id checks every command applies to its inputs, whole tables and streamed batches alike.

Ids are integers or strings, never null, never repeated. JSON Lines ids of mixed kinds (``1`` and
``"a"``) are refused rather than all read as text, because a stream's first batch has already been
used when a later one turns out to differ, and ``1`` and ``"1"`` would silently become one id.
"""

from __future__ import annotations

import polars as pl

from selectkit.errors import SelectkitDataError, option

DEFAULT_ID = "id"
CANONICAL_INT = r"^-?(0|[1-9][0-9]{0,17})$"
_NUMERIC = r"^-?[0-9]"


def check_row_number_ids(id_col: str, where: str, columns: list[str] | None = None) -> None:
    """A table without the default id column gets row numbers; a named one must exist."""
    if id_col != DEFAULT_ID:
        flag = option("id_col", python="id_col= (a pool's: Columns(id=...))")
        raise SelectkitDataError(
            f"{where} has no id column '{id_col}'; name an existing column with {flag}, "
            f"or drop {flag} to use row numbers"
        )


def check_id_values(ids: pl.Series, where: str, row0: int = 0) -> None:
    """Refuse null ids and ids that are neither integers nor strings; ``row0`` is the input row
    of ``ids[0]``, so that a streamed batch names the row in the whole input. O(n)."""
    name = ids.name
    if ids.null_count():
        first = row0 + int(ids.is_null().arg_max())
        raise SelectkitDataError(
            f"{where}: column '{name}' is null in {ids.null_count()} rows (first at row {first}); "
            "every row needs an id"
        )
    if not (ids.dtype.is_integer() or ids.dtype == pl.String):
        raise SelectkitDataError(
            f"{where}: column '{name}' has type {ids.dtype} (first value {ids[0]!r}); ids must be "
            "integers or strings"
        )


def check_unique_ids(ids: pl.Series, where: str) -> None:
    """Raise naming one duplicated id and how often it occurs; O(n) hashing."""
    if ids.n_unique() == ids.len():
        return
    counts = ids.value_counts(sort=True)
    dup, times = counts.row(0)
    n_dup = int((counts.get_column(counts.columns[1]) > 1).sum())
    raise SelectkitDataError(
        f"{where}: column '{ids.name}' has duplicate ids ({n_dup} ids repeat; {dup!r} appears "
        f"{times} times); ids must be unique"
    )


def ensure_ids(frame: pl.DataFrame, id_col: str, where: str) -> pl.DataFrame:
    """Return ``frame`` with a unique, non-null ``id_col``; row numbers (int64) when the table has
    no ``id`` column. A non-default ``id_col`` that is missing is an error."""
    if id_col not in frame.columns:
        check_row_number_ids(id_col, where, frame.columns)
        return frame.with_row_index(id_col).with_columns(pl.col(id_col).cast(pl.Int64))
    ids = frame.get_column(id_col)
    check_id_values(ids, where)
    check_unique_ids(ids, where)
    return frame


def canonical_ints(ids: pl.Series) -> bool:
    """True when every text id is written as a plain integer (no leading zeros, no '+')."""
    return bool(ids.str.contains(CANONICAL_INT).fill_null(False).all())


def integer_ids_if_canonical(frame: pl.DataFrame, id_col: str) -> pl.DataFrame:
    """Cast a text id column to Int64 when every id is written as a plain integer (no leading
    zeros, no sign but '-'), as a CSV of integer ids is; ids like '00048' stay text."""
    if id_col not in frame.columns or frame.schema[id_col] != pl.Utf8:
        return frame
    ids = frame.get_column(id_col)
    return frame.with_columns(ids.cast(pl.Int64)) if canonical_ints(ids) else frame


def check_json_id_kinds(block: bytes, ids: pl.Series, where: str, row0: int) -> None:
    """Refuse a JSON Lines block whose ids mix numbers and strings (polars reads such a column as
    text). Only text ids that look like numbers need the second, id-only parse of the block."""
    if ids.dtype != pl.String or not ids.str.contains(_NUMERIC).fill_null(False).any():
        return
    import io

    numbers = pl.read_ndjson(
        io.BytesIO(block), schema={ids.name: pl.Float64}, ignore_errors=True
    ).get_column(ids.name)
    is_number = numbers.is_not_null()
    if not is_number.any():
        return
    is_text = ids.is_not_null() & ~is_number
    if not is_text.any():
        return  # every id is a number: the type check names the float ids
    num, text = int(is_number.arg_max()), int(is_text.arg_max())
    raise SelectkitDataError(
        f"{where}: column '{ids.name}' mixes id kinds: row {row0 + num} is {ids[num]} (a number) "
        f"but row {row0 + text} is {ids[text]!r} (a string); write every id the same way (all "
        "integers, or all quoted strings)"
    )


def raise_mixed_ids(name: str, where: str, row: int, value: object, kind: str, others: str):
    """The message for a batch whose ids are of another kind than earlier batches' ids."""
    raise SelectkitDataError(
        f"{where}: column '{name}' mixes id kinds: row {row} has {value!r} ({kind}) but other ids "
        f"are {others}; write every id the same way (all integers, or all quoted strings)"
    )
