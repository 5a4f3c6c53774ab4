"""Read input tables: Parquet, JSON Lines, CSV, .npy, stdin and FIFOs, whole or as batches.

Every command reads through one path: ``read_table`` collects the same batches ``iter_batches``
streams, so every input gets the same checks (ids, one schema across batches, UTF-8 with the line
at fault, compression told by content, FIFOs read as streams, empty shards).
"""

from __future__ import annotations

import glob
import hashlib
import io
import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from selectkit.console import warn
from selectkit.errors import SelectkitDataError
from selectkit.io.formats import STDIO, detect_format, known_suffix
from selectkit.io.ids import (
    CANONICAL_INT,
    DEFAULT_ID,
    canonical_ints,
    check_id_values,
    check_json_id_kinds,
    check_row_number_ids,
    check_unique_ids,
    ensure_ids,
    integer_ids_if_canonical,
    raise_mixed_ids,
)
from selectkit.io.streams import Input, is_stream, sniff_format, where_of
from selectkit.io.vectors import check_finite

__all__ = [
    "DEFAULT_ID",
    "Source",
    "Table",
    "check_exists",
    "check_row_number_ids",
    "check_unique_ids",
    "ensure_ids",
    "expand_inputs",
    "fingerprint_bytes",
    "fingerprint_file",
    "input_files",
    "integer_ids_if_canonical",
    "iter_batches",
    "names_many_files",
    "open_parquet",
    "read_table",
]

_HASH_CHUNK = 1 << 23
_GLOB_CHARS = set("*?[")


@dataclass
class Source:
    """Where a table came from: path, format, row count and a content fingerprint.

    ``parts``: how many files a dataset folder or a quoted glob held (None for one file); its
    fingerprint then covers every part (:func:`~selectkit.io.dataset.combined_fingerprint`).
    """

    path: str
    format: str
    rows: int = 0
    fingerprint: str | None = None
    parts: int | None = None

    def as_dict(self) -> dict:
        out = {
            "path": self.path,
            "format": self.format,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
        }
        if self.parts is not None:
            out["parts"] = self.parts
        return out


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


def check_exists(path: str, *, allow_empty: bool = False) -> bool:
    """Raise for a missing input, a folder or an empty file; True when there is something to read.

    FIFOs, ``<(...)`` and devices are never sized (their size says nothing about their content).
    With ``allow_empty`` a 0-byte file (an empty shard) returns False instead of raising.
    """
    if path == STDIO:
        return True
    p = Path(path)
    if not p.exists():
        raise SelectkitDataError(f"input file '{path}' does not exist; check the path")
    if p.is_dir():
        raise SelectkitDataError(f"input '{path}' is a folder, not a file")
    if is_stream(path):
        return True
    if p.stat().st_size == 0:
        if allow_empty:
            return False
        raise SelectkitDataError(f"input file '{path}' is empty (0 bytes)")
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_error(path: str, fmt: str, exc: BaseException) -> SelectkitDataError:
    what = {"parquet": "a readable Parquet file", "jsonl": "valid JSON Lines", "csv": "valid CSV"}
    name = path if path == "stdin" or path.startswith("'") else f"'{path}'"
    return SelectkitDataError(
        f"{name} is not {what.get(fmt, fmt)} ({_first_line(exc)}); check or re-create the file"
    )


_READ_ERRORS = (pl.exceptions.PolarsError, pa.ArrowException, OSError, ValueError, EOFError)


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """Open a Parquet file's footer (O(1) in rows) or raise one clear error naming the file."""
    try:
        return pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises several types for a corrupt footer
        raise _read_error(str(path), "parquet", exc) from None


def input_format_of(path: str, override: str | None, head: bytes) -> str:
    """The format named by ``--input-format``, else by the extension, else by the content (for
    ``<(...)``, ``/dev/stdin`` and other names without one); stdin defaults to JSON Lines."""
    if override or (path != STDIO and known_suffix(path)):
        return detect_format(path, override)
    return sniff_format(head) or detect_format(path)


class _EmptyInput(SelectkitDataError):
    """An input of blank lines only: an empty shard among several is skipped, whereas any
    other read error (a truncated gzip) fails the run naming the file."""


def _open(path: str, input_format: str | None, stdin: BinaryIO | None) -> tuple[Input, str]:
    inp = Input(path, stdin)
    try:
        head = inp.head()
        if not head.strip():
            what = "stdin is empty" if path == STDIO else f"input '{path}' is empty"
            raise _EmptyInput(f"{what}; give a table with at least one row")
        return inp, input_format_of(path, input_format, head)
    except BaseException:
        inp.close()
        raise


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
    and exposed as ``arrays[vector_col]``. JSON Lines and CSV go through the same batch reader as
    ``iter_batches`` (same checks, same types). Raises ``SelectkitDataError`` naming the file for a
    missing, empty, corrupt or duplicate-id input. Costs one read of the file plus one hashing
    pass (streams: one read).
    """
    path = str(path)
    if names_many_files(path):
        return _read_many(path, input_files(path), input_format, id_col, columns, vector_col)
    frame, arrays, fmt, fingerprint = _read_frame(
        path, input_format, id_col, columns, vector_col, stdin
    )
    where = where_of(path)
    if fmt == "csv":
        frame = integer_ids_if_canonical(frame, id_col)
    if frame.height == 0:
        raise SelectkitDataError(f"{where} has no rows; give a table with at least one row")
    frame = ensure_ids(frame, id_col, where)
    source = Source(path=path, format=fmt, rows=frame.height, fingerprint=fingerprint)
    return Table(frame=frame, source=source, arrays=arrays)


def _read_frame(
    path: str,
    input_format: str | None,
    id_col: str,
    columns: list[str] | None,
    vector_col: str,
    stdin: BinaryIO | None,
) -> tuple[pl.DataFrame, dict[str, np.ndarray], str, str]:
    """One file's rows as read (no ids added yet), its arrays, format and fingerprint."""
    check_exists(path)
    where = where_of(path)
    arrays: dict[str, np.ndarray] = {}
    inp, fmt = _open(path, input_format, stdin)
    with inp:
        in_memory = is_stream(path) or inp.compression is not None
        try:
            if fmt == "parquet":
                frame = pl.read_parquet(
                    io.BytesIO(inp.stream.read()) if in_memory else path, columns=columns
                )
            elif fmt == "npy":
                matrix = _load_npy(io.BytesIO(inp.stream.read()) if in_memory else path, where)
                arrays[vector_col] = matrix
                frame = pl.DataFrame({id_col: np.arange(matrix.shape[0], dtype=np.int64)})
            else:
                # read whole anyway: a stream's bytes are held, so its types cover every row too
                data = inp.stream.read() if in_memory else None
                frames = list(
                    _table_batches(inp, path, fmt, columns, 65536, id_col, where, data=data)
                )
                frame = _concat(frames)
        except SelectkitDataError:
            raise
        except _READ_ERRORS as exc:
            raise _read_error(where, fmt, exc) from None
        fingerprint = inp.fingerprint() if is_stream(path) else fingerprint_file(path)
    return frame, arrays, fmt, fingerprint


def _read_many(
    path: str,
    files: list[str],
    input_format: str | None,
    id_col: str,
    columns: list[str] | None,
    vector_col: str,
) -> Table:
    """A dataset folder or a quoted glob read whole as one table: its parts in order, one
    schema across them, ids checked (and row-number ids given) over all the rows."""
    where = where_of(path)
    frames: list[pl.DataFrame] = []
    matrices: list[np.ndarray] = []
    formats: list[str] = []
    prints: list[str] = []
    locked: _Schema | None = None
    for file in files:
        frame, arrays, fmt, fingerprint = _read_frame(
            file, input_format, id_col, columns, vector_col, None
        )
        if vector_col in arrays:
            matrices.append(arrays[vector_col])
        elif frame.width:
            locked = locked or _Schema(fmt, id_col, where_of(file))
            locked.where = where_of(file)
            frames.append(locked.conform(frame, 0))
        formats.append(fmt)
        prints.append(fingerprint)
    if matrices and len(matrices) != len(files):
        raise SelectkitDataError(
            f"{where} mixes .npy matrices with tables; give parts of one format"
        )
    arrays: dict[str, np.ndarray] = {}
    if matrices:
        dims = {m.shape[1] for m in matrices}
        if len(dims) > 1:
            raise SelectkitDataError(
                f"{where}: its .npy parts have different widths {sorted(dims)}"
            )
        arrays[vector_col] = np.concatenate(matrices)  # a copy: parts are separate files
        frame = pl.DataFrame({id_col: np.arange(arrays[vector_col].shape[0], dtype=np.int64)})
    else:
        frame = _concat(frames)
    if formats and all(f == "csv" for f in formats):
        frame = integer_ids_if_canonical(frame, id_col)
    if frame.height == 0:
        raise SelectkitDataError(f"{where} has no rows; give a table with at least one row")
    frame = ensure_ids(frame, id_col, where)
    source = Source(
        path=path,
        format=formats[0] if len(set(formats)) == 1 else "mixed",
        rows=frame.height,
        fingerprint=_combined(files, prints),
        parts=len(files),
    )
    return Table(frame=frame, source=source, arrays=arrays)


def _combined(files: list[str], prints: list[str | None]) -> str:
    """The fingerprint of a multi-file input: its parts' names (relative to their common folder,
    so moving the folder keeps it) and fingerprints, in order."""
    from selectkit.io.dataset import combined_fingerprint

    folders = [os.path.dirname(os.path.abspath(f)) for f in files]
    common = os.path.commonpath(folders) if folders else ""
    names = [os.path.relpath(os.path.abspath(f), common) for f in files]
    return combined_fingerprint(zip(names, prints, strict=True))


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One frame of conformed batches; chunks are kept (no copy: peak memory stays ~1x)."""
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=False)


def _load_npy(path_or_buffer: str | io.BytesIO, where: str) -> np.ndarray:
    try:
        if isinstance(path_or_buffer, str):
            matrix = np.load(path_or_buffer, mmap_mode="r", allow_pickle=False)
        else:
            matrix = np.load(path_or_buffer, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SelectkitDataError(
            f"{where} is not a readable .npy array ({_first_line(exc)}); save it with numpy.save"
        ) from None
    if matrix.ndim != 2:
        raise SelectkitDataError(
            f"{where} holds a {matrix.ndim}-D array; a .npy input must be 2-D (rows x dimensions)"
        )
    if matrix.shape[0] == 0:
        raise SelectkitDataError(f"{where} has no rows; give a matrix with at least one row")
    if not np.issubdtype(matrix.dtype, np.number):
        raise SelectkitDataError(f"{where} holds {matrix.dtype}, not numbers; save a float array")
    if matrix.dtype != np.float32:
        # checked after the cast: 1e39 is finite in float64 but inf in float32
        with np.errstate(over="ignore", invalid="ignore"):
            matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    check_finite(matrix, where, "vectors")
    return matrix


def names_many_files(path: str | Path) -> bool:
    """Whether one input names several files: a folder, or a quoted glob that names no file."""
    p = str(path)
    if p == STDIO:
        return False
    return os.path.isdir(p) or bool(_GLOB_CHARS & set(p) and not os.path.exists(p))


def input_files(path: str | Path) -> list[str]:
    """The files one input names, in reading order: a dataset folder's parts (its record's
    order; a folder of ``part-*.parquet`` without one, sorted), a quoted glob's matches sorted
    (a matching folder gives its parts), else the path itself. The one place every reader
    expands inputs. O(files); reads a folder's record, never the data."""
    from selectkit.io.dataset import dataset_parts

    p = str(path)
    if not names_many_files(p):
        return [p]
    if os.path.isdir(p):
        return dataset_parts(p)
    matches = sorted(glob.glob(p))
    if not matches:
        raise SelectkitDataError(f"no file matches '{p}'; check the pattern")
    out: list[str] = []
    for match in matches:
        out.extend(dataset_parts(match) if os.path.isdir(match) else [match])
    return out


def expand_inputs(paths: Sequence[str | Path]) -> list[str]:
    """Every input's files (:func:`input_files`): quoted globs sorted, dataset folders as
    their parts in order; plain files unchanged."""
    return [f for p in paths for f in input_files(p)]


def iter_batches(
    path: str | Path,
    *,
    columns: list[str] | None = None,
    input_format: str | None = None,
    batch_size: int = 8192,
    stdin: BinaryIO | None = None,
    schema_overrides: dict[str, pl.DataType] | None = None,
    id_col: str | None = None,
    allow_empty: bool = False,
    row_groups: Sequence[int] | None = None,
    fingerprint: bool = True,
) -> tuple[Source, Iterator[pl.DataFrame]]:
    """Stream a table as polars frames of at most ``batch_size`` rows with only ``columns`` (all
    columns when None).

    Every batch has the same schema: a plain JSON Lines or CSV file has its types inferred over
    the whole file first; for streams and compressed files the first batch fixes them (a column
    null throughout it is read as text) and a later batch that cannot follow is a clear error
    naming its row. With ``id_col``, ids are checked batch by batch (null, type, mixed kinds);
    uniqueness needs all ids and is the caller's. With ``allow_empty`` an empty input (0 bytes,
    or no rows) yields no batches instead of failing. Columns missing from the file are absent
    from the batches. Memory is O(batch_size) rows. The returned ``Source`` gets its row count and
    fingerprint filled in when the stream is exhausted. ``row_groups``: read only these row
    groups of a Parquet file (a shard of it, :mod:`selectkit.engine.shards`).
    ``fingerprint=False`` leaves the fingerprint unset (a caller that drops the ``Source``, such
    as a shard's reader, then saves a pass over the whole file per shard).
    """
    path = str(path)
    if names_many_files(path):
        files = input_files(path)
        options = dict(
            columns=columns,
            input_format=input_format,
            batch_size=batch_size,
            schema_overrides=schema_overrides,
            id_col=id_col,
            allow_empty=allow_empty,
        )
        return _iter_many(path, files, options)
    where = where_of(path)
    if not check_exists(path, allow_empty=allow_empty):
        return _empty_shard(path, input_format), iter(())
    try:
        inp, fmt = _open(path, input_format, stdin)
    except _EmptyInput:
        if allow_empty and not is_stream(path):  # only blank lines
            return _empty_shard(path, input_format), iter(())
        raise
    if fmt == "npy":
        inp.close()
        raise SelectkitDataError(
            f"{where} is a .npy matrix; this command needs a table with columns"
        )
    source = Source(path=path, format=fmt)
    overrides = schema_overrides or {}

    def generate() -> Iterator[pl.DataFrame]:
        rows = 0
        with inp:
            try:
                batches = _table_batches(
                    inp, path, fmt, columns, batch_size, id_col, where, row_groups=row_groups
                )
                for batch in batches:
                    batch = _cast(batch, overrides, where, rows)
                    rows += batch.height
                    yield batch
            except SelectkitDataError:
                raise
            except _READ_ERRORS as exc:
                raise _read_error(where, fmt, exc) from None
            source.rows = rows
            if fingerprint:
                source.fingerprint = (
                    inp.fingerprint() if is_stream(path) else fingerprint_file(path)
                )
        if rows == 0 and allow_empty:
            _note_empty(where)

    return source, generate()


def _iter_many(path: str, files: list[str], options: dict) -> tuple[Source, Iterator[pl.DataFrame]]:
    """A dataset folder's or a quoted glob's batches: each part's, in order, under one schema
    (the first part's fixes it; a later part that cannot follow is named with its row),
    re-cut to ``batch_size`` rows across part boundaries, so a folder gives the same batches
    as the one file it was cut from (batch-shaped float work then gives the same bytes)."""
    first = files[0]
    guess = options["input_format"] or (detect_format(first) if known_suffix(first) else "jsonl")
    source = Source(path=path, format=guess, parts=len(files))

    def conformed() -> Iterator[pl.DataFrame]:
        rows = 0
        prints: list[str | None] = []
        formats: list[str] = []
        locked: _Schema | None = None
        for file in files:
            part, batches = iter_batches(file, **options)
            part_rows = 0
            for batch in batches:
                locked = locked or _Schema(part.format, options["id_col"], where_of(file))
                locked.where = where_of(file)
                batch = locked.conform(batch, part_rows)
                part_rows += batch.height
                yield batch
            rows += part.rows
            prints.append(part.fingerprint)
            formats.append(part.format)
        source.rows = rows
        source.format = formats[0] if len(set(formats)) == 1 else "mixed"
        source.fingerprint = _combined(files, prints)

    return source, recut(conformed(), options["batch_size"])


def recut(batches: Iterator[pl.DataFrame], batch_size: int) -> Iterator[pl.DataFrame]:
    """``batches`` (one schema) re-cut into frames of ``batch_size`` rows (the last one
    shorter); holds at most one batch plus one incoming. O(rows) copying at the seams only."""
    pending: list[pl.DataFrame] = []
    held = 0
    for batch in batches:
        if not pending and batch.height == batch_size:
            yield batch
            continue
        pending.append(batch)
        held += batch.height
        while held >= batch_size:
            merged = pl.concat(pending, how="vertical")
            yield merged.head(batch_size)
            rest = merged.slice(batch_size)
            pending, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(pending, how="vertical")


_noted_empty: set[str] = set()


def _note_empty(where: str) -> None:
    """Say once per input that an empty shard was skipped (DSIR reads its shards twice)."""
    if where not in _noted_empty:
        _noted_empty.add(where)
        warn(f"{where} is empty (no rows); skipped")


def _empty_shard(path: str, input_format: str | None) -> Source:
    """The source of an empty shard (Spark and friends write empty part files), noted once."""
    _note_empty(where_of(path))
    return empty_source(path, input_format)


def empty_source(path: str, input_format: str | None) -> Source:
    """The source of an input file with no rows: its format and fingerprint; O(its bytes)."""
    fmt = detect_format(path, input_format) if input_format or known_suffix(path) else "jsonl"
    return Source(path, fmt, 0, fingerprint_file(path))


def _table_batches(
    inp: Input,
    path: str,
    fmt: str,
    columns: list[str] | None,
    batch_size: int,
    id_col: str | None,
    where: str,
    *,
    data: bytes | None = None,
    row_groups: Sequence[int] | None = None,
) -> Iterator[pl.DataFrame]:
    """Batches of one opened input, conformed to one schema and id-checked. ``data``: the
    input's decompressed bytes when the caller already holds them all (``read_table``)."""
    whole = _Whole(path, inp, data)
    if fmt == "parquet":
        raw: Iterator[tuple[pl.DataFrame, bytes | None]] = _parquet_batches(
            inp, path, columns, batch_size, row_groups
        )
    elif fmt == "csv":
        raw = _csv_batches(whole, columns, batch_size, id_col)
    else:
        raw = _jsonl_batches(whole, columns, batch_size, where)
    locked = _Schema(fmt, id_col, where)
    rows = 0
    for frame, block in raw:
        if block is not None and id_col in frame.columns:  # before conform: it names both rows
            check_json_id_kinds(block, frame.get_column(id_col), where, rows)
        frame = locked.conform(frame, rows)
        if id_col is not None and id_col in frame.columns:
            check_id_values(frame.get_column(id_col), where, rows)
        rows += frame.height
        yield frame


#: row groups up to this many uncompressed bytes are decoded whole by polars (pyarrow's reader
#: of fixed-size lists, the embeddings' type, is 3-5x slower); larger ones stream through pyarrow
#: batch by batch, so one row never costs more than its group's share of this bound
POLARS_GROUP_BYTES = 256 << 20


def scan_parquet_file(source: str | io.BytesIO) -> pl.LazyFrame:
    """A lazy scan of one Parquet file (or its bytes) taken literally: no glob, no hive
    partitions read from the path. Reads nothing until collected."""
    return pl.scan_parquet(source, hive_partitioning=False, glob=False)


def _polars_rows(lazy: pl.LazyFrame, start: int, rows: int) -> pl.DataFrame | None:
    """Rows [start, start + rows) decoded by polars, or None where polars cannot read them
    (pyarrow then reads them, or names what is wrong with them)."""
    try:
        return lazy.slice(start, rows).collect()
    except pl.exceptions.PolarsError:
        return None


def _parquet_batches(
    inp: Input,
    path: str,
    columns: list[str] | None,
    batch_size: int,
    row_groups: Sequence[int] | None = None,
) -> Iterator[tuple[pl.DataFrame, None]]:
    """The file's rows group by group, in at most ``batch_size``-row frames. A group of at most
    POLARS_GROUP_BYTES is decoded by polars (slice pushdown reads that group alone); a larger
    one, or one polars cannot read, streams through pyarrow. Memory O(min(group, bound))."""
    in_memory = is_stream(path) or inp.compression is not None
    data = io.BytesIO(inp.stream.read()) if in_memory else None
    pf = pq.ParquetFile(data if data is not None else path)
    present = _present(columns, pf.schema_arrow.names)
    meta = pf.metadata
    starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    lazy = scan_parquet_file(io.BytesIO(data.getbuffer()) if data is not None else path)
    for g in row_groups if row_groups is not None else range(meta.num_row_groups):
        group = meta.row_group(g)
        if not group.num_rows:
            continue
        frame = None
        if present and group.total_byte_size <= POLARS_GROUP_BYTES:
            frame = _polars_rows(lazy.select(present), int(starts[g]), group.num_rows)
        if frame is not None:
            for s in range(0, frame.height, batch_size):
                yield frame.slice(s, batch_size), None
            continue
        for rb in pf.iter_batches(batch_size=batch_size, columns=present, row_groups=[g]):
            if rb.num_rows:
                yield pl.from_arrow(rb), None


@dataclass
class _Whole:
    """An input as polars can scan it whole (a plain file's path, or bytes already in memory) for
    a first pass that infers types over every row, plus the stream the batches come from."""

    path: str
    inp: Input
    data: bytes | None

    @property
    def scannable(self) -> str | io.BytesIO | None:
        """What a schema pass reads, or None for a stream (its first batch fixes the types)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        if not is_stream(self.path) and self.inp.compression is None:
            return self.path
        return None

    @property
    def stream(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else self.inp.stream


def _jsonl_schema(whole: _Whole) -> pl.Schema | None:
    """The types of a JSON Lines input inferred over all its rows (one fast native pass), so
    that a column null in the first batch and text later is text everywhere."""
    source = whole.scannable
    if source is None:
        return None
    try:
        return pl.scan_ndjson(source, infer_schema_length=None).collect_schema()
    except Exception:  # a bad line is found, with its number, by the batch reader
        return None


def _jsonl_batches(
    whole: _Whole, columns: list[str] | None, batch_size: int, where: str
) -> Iterator[tuple[pl.DataFrame, bytes]]:
    schema = _jsonl_schema(whole)
    lines = iter(whole.stream)
    line = 0
    while block := list(itertools.islice(lines, batch_size)):
        data = b"".join(block)
        try:
            if schema is not None:
                frame = pl.read_ndjson(io.BytesIO(data), schema=schema)
            else:
                frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
        except _READ_ERRORS as exc:
            raise _jsonl_error(block, line, where, exc) from None
        if frame.height:  # a block of blank lines has no rows
            yield frame.select(_present(columns, frame.columns)), data
        line += len(block)


def _jsonl_error(
    block: list[bytes], line0: int, where: str, exc: BaseException
) -> SelectkitDataError:
    """Name the first bad line of a block that polars refused (the error path only)."""
    for i, raw in enumerate(block):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as bad:
            return SelectkitDataError(
                f"{where} line {line0 + i + 1}: byte 0x{raw[bad.start]:02x} at column "
                f"{bad.start + 1} is not UTF-8; re-encode the file as UTF-8 (e.g. iconv -f latin1 "
                "-t utf-8)"
            )
        except json.JSONDecodeError as bad:
            return SelectkitDataError(
                f"{where} line {line0 + i + 1} is not valid JSON Lines ({bad.msg} at column "
                f"{bad.colno}); fix or drop that line"
            )
        if not isinstance(value, dict):
            return SelectkitDataError(
                f"{where} line {line0 + i + 1} is not valid JSON Lines: not a JSON object "
                f"({type(value).__name__}); "
                "every line must be one {...} row"
            )
    return _read_error(where, "jsonl", exc)


def _csv_plan(whole: _Whole, id_col: str | None) -> tuple[dict[str, pa.DataType], bool | None]:
    """Arrow types for a CSV's columns and whether its ids are integers.

    A plain file gets its types inferred over all its rows by polars (ids as text, integers only
    when every id is written as one); a stream gets pyarrow's inference on its first block, with
    ids as text decided on the first batch (None: not decided yet)."""
    types: dict[str, pa.DataType] = {id_col: pa.string()} if id_col else {}
    source = whole.scannable
    if source is None:
        return types, None
    try:
        lazy = pl.scan_csv(
            source, infer_schema_length=None, schema_overrides=types and {id_col: pl.String}
        )
        schema = lazy.collect_schema()
        int_ids = id_col in schema and canonical_ints(lazy.select(id_col).collect().to_series())
    except Exception:  # pyarrow reports the bad row when it reads the file
        return types, None
    arrow = pl.DataFrame(schema=schema).to_arrow().schema
    for fld in arrow:
        types.setdefault(fld.name, pa.string() if pa.types.is_null(fld.type) else fld.type)
    return types, bool(int_ids)


def _csv_batches(
    whole: _Whole, columns: list[str] | None, batch_size: int, id_col: str | None
) -> Iterator[tuple[pl.DataFrame, None]]:
    """Stream CSV with pyarrow's incremental reader, re-cut to ``batch_size`` rows."""
    import pyarrow.csv as pacsv

    types, decided = _csv_plan(whole, id_col)
    convert = pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True)
    reader = pacsv.open_csv(whole.stream, convert_options=convert)
    where = whole.inp.where
    names = reader.schema.names
    present = _present(columns, names)
    pending: list[pl.DataFrame] = []
    held = 0
    rows = 0
    for record_batch in reader:
        frame = pl.from_arrow(record_batch).select(present)
        _refuse_binary(frame, where, rows)
        rows += frame.height
        if id_col in frame.columns:
            ids = frame.get_column(id_col)
            decided = canonical_ints(ids) if decided is None else decided
            if decided:
                frame = frame.with_columns(_integer_ids(ids, where, rows - frame.height))
        pending.append(frame)
        held += frame.height
        while held >= batch_size:
            merged = pl.concat(pending, how="vertical_relaxed")
            yield merged.head(batch_size), None
            rest = merged.slice(batch_size)
            pending, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(pending, how="vertical_relaxed"), None


def _integer_ids(ids: pl.Series, where: str, row0: int) -> pl.Series:
    """A stream's text ids as integers, once its first batch had only integer ids."""
    bad = ~ids.str.contains(CANONICAL_INT).fill_null(True)  # null ids are named later
    if not bad.any():
        return ids.cast(pl.Int64)
    row = int(bad.arg_max())
    raise_mixed_ids(ids.name, where, row0 + row, ids[row], "text", "integers in earlier rows")


def _refuse_binary(frame: pl.DataFrame, where: str, row0: int) -> None:
    """pyarrow reads a CSV column that is not UTF-8 as bytes: name it and its first bad row."""
    for name, dtype in frame.schema.items():
        if dtype == pl.Binary:
            row = row0 + _first_not_utf8(frame.get_column(name).to_list())
            raise SelectkitDataError(
                f"{where}: column '{name}' is not UTF-8 text (first at row {row}); re-encode the "
                "file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
            )


def _first_not_utf8(values: list[bytes | None]) -> int:
    """Index of the first value that is not UTF-8 (the error path only, so a plain loop)."""
    for i, value in enumerate(values):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError:
            return i
    return 0


class _Schema:
    """The schema the first batch fixed; later batches are cast to it or refused by row."""

    def __init__(self, fmt: str, id_col: str | None, where: str) -> None:
        self.fmt = fmt
        self.id_col = id_col
        self.where = where
        self.types: dict[str, pl.DataType] | None = None

    def conform(self, frame: pl.DataFrame, row0: int) -> pl.DataFrame:
        """Return ``frame`` with the fixed schema's columns and types; ``row0`` names rows."""
        if self.types is None:
            # a column null throughout the first batch is read as text: the most general type
            nulls = [pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Null]
            frame = frame.with_columns(nulls) if nulls else frame
            self.types = dict(frame.schema)
            return frame
        if dict(frame.schema) == self.types:
            return frame
        for name in frame.columns:
            if name not in self.types:
                raise SelectkitDataError(
                    f"{self.where}: column '{name}' first appears at row "
                    f"{row0 + _first_value(frame, name)}, after the first batch; give the file "
                    "uncompressed (its schema is then read over every row) or put the column "
                    "in the first rows"
                )
        return frame.select([self._column(frame, n, t, row0) for n, t in self.types.items()])

    def _column(self, frame: pl.DataFrame, name: str, want: pl.DataType, row0: int) -> pl.Series:
        if name not in frame.columns:
            return pl.Series(name, [None] * frame.height, dtype=want)
        col = frame.get_column(name)
        have = col.dtype
        if have == want:
            return col
        if have == pl.Null or (have.is_integer() and want.is_integer()):
            return _strict_cast(col, want, self.where, row0)
        is_id = name == self.id_col
        if is_id and self.fmt == "csv" and want == pl.String:
            return col.cast(pl.String)
        if is_id:
            row = _first_value(frame, name)
            kind = "a string" if have == pl.String else f"{have}"
            was = "strings" if want == pl.String else f"{want}"
            raise_mixed_ids(name, self.where, row0 + row, col[row], kind, f"{was} in earlier rows")
        if want == pl.String and not have.is_nested():
            return col.cast(pl.String)
        row = _first_value(frame, name)
        raise SelectkitDataError(
            f"{self.where}: column '{name}' holds {want} in the first rows but {have} from row "
            f"{row0 + row} ({col[row]!r}); write every row's value with one type"
        )


def _first_value(frame: pl.DataFrame, name: str) -> int:
    col = frame.get_column(name)
    return int(col.is_not_null().arg_max()) if col.null_count() < col.len() else 0


def _strict_cast(col: pl.Series, want: pl.DataType, where: str, row0: int) -> pl.Series:
    try:
        return col.cast(want, strict=True)
    except pl.exceptions.PolarsError:
        raise SelectkitDataError(
            f"{where}: column '{col.name}' does not fit {want} after row {row0}; write every "
            "row's value with one type"
        ) from None


def _present(wanted: list[str] | None, available: list[str]) -> list[str]:
    return list(available) if wanted is None else [c for c in wanted if c in available]


def _cast(
    frame: pl.DataFrame, overrides: dict[str, pl.DataType], where: str, row0: int
) -> pl.DataFrame:
    """Cast the columns a caller needs as one type (embed's texts are text, whatever they hold)."""
    for name, want in overrides.items():
        if name in frame.columns and frame.schema[name] != want:
            col = frame.get_column(name)
            if col.dtype.is_nested():
                row = _first_value(frame, name)
                raise SelectkitDataError(
                    f"{where}: column '{name}' holds {col.dtype} (row {row0 + row}), not {want}"
                )
            frame = frame.with_columns(col.cast(want))
    return frame
