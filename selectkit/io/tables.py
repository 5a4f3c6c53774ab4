"""Read input tables: Parquet, JSON Lines, CSV, .npy and stdin, whole or as a stream of batches."""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from selectkit.errors import SelectkitError
from selectkit.io.formats import STDIO, detect_format, is_gzip
from selectkit.io.vectors import check_finite

_HASH_CHUNK = 1 << 23
_GLOB_CHARS = set("*?[")


@dataclass
class Source:
    """Where a table came from: path, format, row count and a content fingerprint."""

    path: str
    format: str
    rows: int = 0
    fingerprint: str | None = None

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
        }


@dataclass
class Table:
    """A table in memory: a polars frame plus vector columns kept as numpy arrays.

    ``.npy`` inputs keep their matrix memory-mapped in ``arrays`` instead of copying it into the
    frame; ``frame`` then holds only the row-number ids.
    """

    frame: pl.DataFrame
    source: Source
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.frame.height


def fingerprint_file(path: str | Path) -> str:
    """Content fingerprint of a file; one streamed pass, O(1) memory.

    Parquet files are fingerprinted by their data pages and schema, not their footer's key-value
    metadata, so two artefacts with the same data (whose provenance differs only in timings) get
    the same ``parquet-data-blake2b-128:<hex>``. Other files: ``blake2b-128:<hex>`` of all bytes.
    """
    h = hashlib.blake2b(digest_size=16)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data_end = _parquet_data_end(f, size)
        remaining = size if data_end is None else data_end
        while remaining > 0 and (chunk := f.read(min(_HASH_CHUNK, remaining))):
            h.update(chunk)
            remaining -= len(chunk)
    if data_end is None:
        return "blake2b-128:" + h.hexdigest()
    try:
        schema = pq.read_schema(str(path)).remove_metadata()
        h.update(schema.to_string(show_field_metadata=False).encode())
    except (pa.ArrowException, OSError):
        pass  # a corrupt footer fails later, where the file is read, with a clear message
    return "parquet-data-blake2b-128:" + h.hexdigest()


def _parquet_data_end(f: BinaryIO, size: int) -> int | None:
    """Offset where a Parquet file's footer starts, or None when the file is not Parquet."""
    if size < 12:
        return None
    head = f.read(4)
    f.seek(size - 8)
    tail = f.read(8)
    f.seek(0)
    if head != b"PAR1" or tail[4:] != b"PAR1":
        return None
    footer = int.from_bytes(tail[:4], "little")
    return size - 8 - footer if 0 < footer <= size - 12 else None


def fingerprint_bytes(data: bytes) -> str:
    """Return the fingerprint of bytes already in memory (stdin)."""
    return "blake2b-128:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def check_exists(path: str) -> None:
    if path == STDIO:
        return
    p = Path(path)
    if not p.exists():
        raise SelectkitError(f"input file '{path}' does not exist; check the path")
    if p.is_dir():
        raise SelectkitError(f"input '{path}' is a folder, not a file")
    if p.stat().st_size == 0:
        raise SelectkitError(f"input file '{path}' is empty (0 bytes)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_error(path: str, fmt: str, exc: BaseException) -> SelectkitError:
    what = {"parquet": "a readable Parquet file", "jsonl": "valid JSON Lines", "csv": "valid CSV"}
    return SelectkitError(
        f"'{path}' is not {what.get(fmt, fmt)} ({_first_line(exc)}); check or re-create the file"
    )


_READ_ERRORS = (pl.exceptions.PolarsError, pa.ArrowException, OSError, ValueError)


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open a Parquet file's footer (O(1) in rows) or raise one clear error naming the file."""
    try:
        return pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises several types for a corrupt footer
        raise _read_error(str(path), "parquet", exc) from None


def read_table(
    path: str | Path,
    *,
    input_format: str | None = None,
    id_col: str = "id",
    columns: list[str] | None = None,
    vector_col: str = "embedding",
    stdin: BinaryIO | None = None,
) -> Table:
    """Read a whole table, validate it and give it an id column.

    A table without ``id_col`` gets row numbers (int64) as ids. ``.npy`` inputs are memory-mapped
    and exposed as ``arrays[vector_col]``. Raises ``SelectkitError`` naming the file for a missing,
    empty, corrupt or duplicate-id input. Costs one read of the file plus one hashing pass.
    """
    path = str(path)
    check_exists(path)
    fmt = detect_format(path, input_format)
    arrays: dict[str, np.ndarray] = {}
    if path == STDIO:
        data = (stdin or sys.stdin.buffer).read()
        if not data.strip():
            raise SelectkitError("stdin is empty; pipe a JSON Lines table into the command")
        fingerprint = fingerprint_bytes(data)
        handle: str | io.BytesIO = io.BytesIO(data)
    elif is_gzip(path):
        fingerprint = fingerprint_file(path)
        handle = io.BytesIO(_gunzip(path))
    else:
        fingerprint = fingerprint_file(path)
        handle = path
    where = "stdin" if path == STDIO else f"'{path}'"
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(handle, columns=columns)
        elif fmt == "jsonl":
            frame = pl.read_ndjson(handle, infer_schema_length=None)
        elif fmt == "csv":
            # ids as text first: inference would turn '00048' into 48 and break joins
            frame = pl.read_csv(
                handle,
                infer_schema_length=10000,
                columns=columns,
                schema_overrides={id_col: pl.Utf8},
            )
            frame = integer_ids_if_canonical(frame, id_col)
        else:
            matrix = _load_npy(path if path != STDIO else handle, where)
            arrays[vector_col] = matrix
            frame = pl.DataFrame({id_col: np.arange(matrix.shape[0], dtype=np.int64)})
    except SelectkitError:
        raise
    except _READ_ERRORS as exc:
        raise _read_error(where.strip("'"), fmt, exc) from None
    if columns and fmt == "jsonl":
        frame = frame.select([c for c in columns if c in frame.columns])
    if frame.height == 0:
        raise SelectkitError(f"{where} has no rows; give a table with at least one row")
    frame = ensure_ids(frame, id_col, where)
    source = Source(path=path, format=fmt, rows=frame.height, fingerprint=fingerprint)
    return Table(frame=frame, source=source, arrays=arrays)


def integer_ids_if_canonical(frame: pl.DataFrame, id_col: str) -> pl.DataFrame:
    """Cast a text id column to Int64 when every id is written as a plain integer (no leading
    zeros, no sign but '-'), as a CSV of integer ids is; ids like '00048' stay text."""
    if id_col not in frame.columns or frame.schema[id_col] != pl.Utf8:
        return frame
    ids = frame.get_column(id_col)
    canonical = ids.str.contains(r"^-?(0|[1-9][0-9]{0,17})$").fill_null(False).all()
    return frame.with_columns(ids.cast(pl.Int64)) if canonical else frame


def _gunzip(path: str) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise SelectkitError(
            f"'{path}' is not a readable gzip file ({exc}); re-create it"
        ) from None


def _load_npy(path_or_buffer: str | io.BytesIO, where: str) -> np.ndarray:
    try:
        if isinstance(path_or_buffer, str):
            matrix = np.load(path_or_buffer, mmap_mode="r", allow_pickle=False)
        else:
            matrix = np.load(path_or_buffer, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SelectkitError(
            f"{where} is not a readable .npy array ({_first_line(exc)}); save it with numpy.save"
        ) from None
    if matrix.ndim != 2:
        raise SelectkitError(
            f"{where} holds a {matrix.ndim}-D array; a .npy input must be 2-D (rows x dimensions)"
        )
    if matrix.shape[0] == 0:
        raise SelectkitError(f"{where} has no rows; give a matrix with at least one row")
    check_finite(matrix, where, "vectors")
    if matrix.dtype != np.float32:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return matrix


def expand_inputs(paths: Sequence[str | Path]) -> list[str]:
    """Expand quoted globs (``'shards/*.jsonl.gz'``) that name no file, sorted; others unchanged."""
    out: list[str] = []
    for p in map(str, paths):
        if p != STDIO and _GLOB_CHARS & set(p) and not os.path.exists(p):
            matches = sorted(glob.glob(p))
            if not matches:
                raise SelectkitError(f"no file matches '{p}'; check the pattern")
            out.extend(matches)
        else:
            out.append(p)
    return out


DEFAULT_ID = "id"


def check_row_number_ids(id_col: str, where: str, columns: list[str] | None = None) -> None:
    """A table without the default id column gets row numbers; a named one must exist."""
    if id_col != DEFAULT_ID:
        raise SelectkitError(
            f"{where} has no id column '{id_col}'; name an existing column with --id-col, "
            "or drop --id-col to use row numbers"
        )


def ensure_ids(frame: pl.DataFrame, id_col: str, where: str) -> pl.DataFrame:
    """Return ``frame`` with a unique, non-null ``id_col``; row numbers (int64) when the table has
    no ``id`` column. A non-default ``id_col`` that is missing is an error."""
    if id_col not in frame.columns:
        check_row_number_ids(id_col, where, frame.columns)
        return frame.with_row_index(id_col).with_columns(pl.col(id_col).cast(pl.Int64))
    ids = frame.get_column(id_col)
    if ids.null_count():
        first = int(ids.is_null().arg_max())
        raise SelectkitError(
            f"{where}: column '{id_col}' is null in {ids.null_count()} rows (first at row {first}); "
            "every row needs an id"
        )
    if not (ids.dtype.is_integer() or ids.dtype == pl.String):
        raise SelectkitError(
            f"{where}: column '{id_col}' has type {ids.dtype}; ids must be integers or strings"
        )
    check_unique_ids(ids, where)
    return frame


def check_unique_ids(ids: pl.Series, where: str) -> None:
    """Raise naming one duplicated id and how often it occurs; O(n) hashing."""
    if ids.n_unique() == ids.len():
        return
    counts = ids.value_counts(sort=True)
    dup, times = counts.row(0)
    n_dup = int((counts.get_column(counts.columns[1]) > 1).sum())
    raise SelectkitError(
        f"{where}: column '{ids.name}' has duplicate ids ({n_dup} ids repeat; {dup!r} appears "
        f"{times} times); ids must be unique"
    )


def iter_batches(
    path: str | Path,
    *,
    columns: list[str] | None = None,
    input_format: str | None = None,
    batch_size: int = 8192,
    stdin: BinaryIO | None = None,
    schema_overrides: dict[str, pl.DataType] | None = None,
) -> tuple[Source, Iterator[pl.DataFrame]]:
    """Stream a table as polars frames of at most ``batch_size`` rows with only ``columns`` (all
    columns when None).

    Columns missing from the file are absent from the batches (the caller decides whether that is
    an error). Memory is O(batch_size) rows. The returned ``Source`` gets its row count and
    fingerprint filled in when the stream is exhausted.
    """
    path = str(path)
    check_exists(path)
    fmt = detect_format(path, input_format)
    if fmt == "npy":
        raise SelectkitError(f"'{path}' is a .npy matrix; this command needs a table with columns")
    source = Source(path=path, format=fmt)
    where = "stdin" if path == STDIO else path
    overrides = schema_overrides or {}

    def generate() -> Iterator[pl.DataFrame]:
        hasher = hashlib.blake2b(digest_size=16)
        rows = 0
        try:
            for batch in _raw_batches(path, fmt, columns, batch_size, stdin, hasher, overrides):
                rows += batch.height
                yield batch
        except SelectkitError:
            raise
        except _READ_ERRORS as exc:
            raise _read_error(where, fmt, exc) from None
        source.rows = rows
        if path == STDIO:
            source.fingerprint = "blake2b-128:" + hasher.hexdigest()
        else:
            source.fingerprint = fingerprint_file(path)

    return source, generate()


def _raw_batches(
    path: str,
    fmt: str,
    columns: list[str] | None,
    batch_size: int,
    stdin: BinaryIO | None,
    hasher: hashlib._Hash,
    overrides: dict[str, pl.DataType],
) -> Iterator[pl.DataFrame]:
    if fmt == "parquet":
        if path == STDIO:
            data = (stdin or sys.stdin.buffer).read()
            hasher.update(data)
            pf = pq.ParquetFile(io.BytesIO(data))
        else:
            pf = pq.ParquetFile(path)
        present = _present(columns, pf.schema_arrow.names)
        for rb in pf.iter_batches(batch_size=batch_size, columns=present):
            yield _cast(pl.from_arrow(rb), overrides)
        return
    if fmt == "csv" and path != STDIO:
        yield from _csv_batches(path, columns, batch_size, overrides)
        return
    if path == STDIO:
        stream = stdin or sys.stdin.buffer
    else:
        stream = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # noqa: SIM115
    try:
        if fmt == "csv":
            data = stream.read()
            hasher.update(data)
            frame = pl.read_csv(io.BytesIO(data), schema_overrides=overrides)
            frame = frame.select(_present(columns, frame.columns))
            yield from frame.iter_slices(batch_size)
            return
        lines = (line for line in stream if line.strip())
        while block := list(itertools.islice(lines, batch_size)):
            data = b"".join(block)
            hasher.update(data)
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
            yield _cast(frame.select(_present(columns, frame.columns)), overrides)
    finally:
        if stream is not (stdin or sys.stdin.buffer):
            stream.close()


def _csv_batches(
    path: str, columns: list[str] | None, batch_size: int, overrides: dict[str, pl.DataType]
) -> Iterator[pl.DataFrame]:
    """Stream a CSV file with pyarrow's incremental reader, re-cut to ``batch_size`` rows."""
    import pyarrow.csv as pacsv

    with gzip.open(path, "rb") if is_gzip(path) else open(path, "rb") as f:
        header = f.readline().decode("utf-8", "replace").rstrip("\r\n")
    names = pl.read_csv(io.StringIO(header + "\n"), n_rows=0).columns
    convert = pacsv.ConvertOptions(include_columns=_present(columns, names))
    stream = pa.input_stream(path, compression="gzip" if is_gzip(path) else None)
    reader = pacsv.open_csv(stream, convert_options=convert)
    pending: list[pl.DataFrame] = []
    held = 0
    for record_batch in reader:
        frame = _cast(pl.from_arrow(record_batch), overrides)
        pending.append(frame)
        held += frame.height
        while held >= batch_size:
            merged = pl.concat(pending, how="vertical_relaxed")
            yield merged.head(batch_size)
            rest = merged.slice(batch_size)
            pending, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(pending, how="vertical_relaxed")


def _present(wanted: list[str] | None, available: list[str]) -> list[str]:
    return list(available) if wanted is None else [c for c in wanted if c in available]


def _cast(frame: pl.DataFrame, overrides: dict[str, pl.DataType]) -> pl.DataFrame:
    casts = [pl.col(c).cast(t) for c, t in overrides.items() if c in frame.columns]
    return frame.with_columns(casts) if casts else frame
