"""Vectors too large for memory: row count, random access to a sample, and a stream of batches.

``.npy`` is memory-mapped; Parquet is read row group by row group (a dataset folder or a quoted
glob of Parquet files part by part, as one matrix); JSONL, CSV and stdin are read whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from selectkit.errors import SelectkitDataError, option
from selectkit.io.dataset import RECORD_NAME, dataset_fingerprint
from selectkit.io.formats import detect_format, known_suffix
from selectkit.io.streams import is_stream
from selectkit.io.tables import (
    _READ_ERRORS,
    DEFAULT_ID,
    Source,
    _combined,
    _read_error,
    check_exists,
    check_row_number_ids,
    ensure_ids,
    fingerprint_file,
    input_files,
    names_many_files,
    open_parquet,
    read_table,
    scan_parquet_file,
)
from selectkit.io.vectors import as_matrix, check_finite


@dataclass
class VectorSource:
    """A matrix of ``n`` rows of ``dim`` floats with ids, readable in batches or by row numbers."""

    path: str
    n: int
    dim: int
    id_col: str
    embedding_col: str
    _matrix: np.ndarray | None = None  # in memory or memory-mapped
    _ids: pl.Series | None = None
    #: the Parquet file(s) read lazily: one, or a dataset folder's / a glob's parts in order
    _parts: list[tuple[str, pq.ParquetFile]] = field(default_factory=list)
    _source: Source | None = None

    @property
    def source(self) -> Source:
        """Path, format, rows and content fingerprint (hashed on first use; a dataset folder
        with a completion record takes its parts' fingerprints from the record)."""
        if self._source is None:
            if not names_many_files(self.path):
                fingerprint = fingerprint_file(self.path)
                parts = None
            elif os.path.isdir(self.path) and os.path.isfile(os.path.join(self.path, RECORD_NAME)):
                fingerprint, parts = dataset_fingerprint(self.path), len(self._parts)
            else:
                files = [p for p, _ in self._parts]
                fingerprint = _combined(files, [fingerprint_file(p) for p in files])
                parts = len(files)
            self._source = Source(
                path=self.path, format="parquet", rows=self.n, fingerprint=fingerprint, parts=parts
            )
        return self._source

    @property
    def _has_parquet_ids(self) -> bool:
        return bool(self._parts) and self.id_col in self._parts[0][1].schema_arrow.names

    def batches(self, batch_size: int = 65536) -> Iterator[tuple[pl.Series, np.ndarray]]:
        """Yield (ids, float32 matrix) batches in row order; memory O(batch_size * dim).

        Row-number ids (a file without an id column) continue across a folder's parts."""
        if self._matrix is not None:
            for s in range(0, self.n, batch_size):
                block = np.asarray(self._matrix[s : s + batch_size], dtype=np.float32)
                yield self._ids.slice(s, block.shape[0]), block
            return
        if len(self._parts) == 1:
            yield from self._part_batches(batch_size)
            return
        # re-cut across parts: the same batches as the one file the parts were cut from
        pending: list[tuple[pl.Series, np.ndarray]] = []
        held = 0
        for ids, block in self._part_batches(batch_size):
            pending.append((ids, block))
            held += block.shape[0]
            while held >= batch_size:
                all_ids = pl.concat([i for i, _ in pending])
                matrix = np.concatenate([b for _, b in pending])
                yield all_ids.head(batch_size), matrix[:batch_size]
                pending = [(all_ids.slice(batch_size), matrix[batch_size:])]
                held = matrix.shape[0] - batch_size
                if not held:
                    pending = []
        if held:
            yield pl.concat([i for i, _ in pending]), np.concatenate([b for _, b in pending])

    def _part_batches(self, batch_size: int) -> Iterator[tuple[pl.Series, np.ndarray]]:
        cols = [self.embedding_col] + ([self.id_col] if self._has_parquet_ids else [])
        offset = 0
        for path, pf in self._parts:
            try:
                for rb in pf.iter_batches(batch_size=batch_size, columns=cols):
                    frame = pl.from_arrow(rb)
                    block = as_matrix(frame.get_column(self.embedding_col), f"'{path}'")
                    if block.shape[1] != self.dim:
                        raise _other_width(path, block.shape[1], self.dim)
                    if self._has_parquet_ids:
                        ids = frame.get_column(self.id_col)
                    else:
                        rows = np.arange(offset, offset + block.shape[0], dtype=np.int64)
                        ids = pl.Series(self.id_col, rows)
                    offset += block.shape[0]
                    yield ids, block
            except _READ_ERRORS as exc:
                raise _read_error(path, "parquet", exc) from None

    def ids(self) -> pl.Series:
        """Every row's id, in row order (row numbers when the file has none); O(n) memory."""
        if self._ids is not None:
            return self._ids
        if not self._has_parquet_ids:
            return pl.Series(self.id_col, np.arange(self.n, dtype=np.int64))
        return _parquet_ids(self._parts, self.id_col)

    def take(self, rows: np.ndarray, batch_size: int = 65536) -> np.ndarray:
        """The float32 rows at sorted positions ``rows``; one pass over the file for Parquet."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._matrix is not None:
            return np.asarray(self._matrix[rows], dtype=np.float32)
        out = np.empty((rows.size, self.dim), dtype=np.float32)
        offset = filled = 0
        for _, block in self.batches(batch_size):
            lo, hi = np.searchsorted(rows, [offset, offset + block.shape[0]])
            out[filled : filled + hi - lo] = block[rows[lo:hi] - offset]
            filled += hi - lo
            offset += block.shape[0]
        return out

    def load(self) -> np.ndarray:
        """The whole matrix (memory-mapped for .npy)."""
        if self._matrix is not None:
            return self._matrix
        return self.take(np.arange(self.n))


def _first_width(file: str, pf: pq.ParquetFile, embedding_col: str) -> int:
    """The width of a Parquet file's vectors: its type's for a fixed-size list (the footer
    alone), else its first row's (read by polars, which decodes one page, not the group)."""
    kind = pf.schema_arrow.field(embedding_col).type
    if isinstance(kind, pa.FixedSizeListType) and pa.types.is_floating(kind.value_type):
        return int(kind.list_size)
    try:
        first = scan_parquet_file(file).select(embedding_col).head(1).collect()
    except _READ_ERRORS as exc:
        raise _read_error(file, "parquet", exc) from None
    return as_matrix(first.get_column(embedding_col), f"'{file}'").shape[1]


def _parquet_ids(parts: list[tuple[str, pq.ParquetFile]], id_col: str) -> pl.Series:
    chunks = []
    for path, pf in parts:
        try:  # polars decodes text ids several times faster than pyarrow's reader
            chunks.append(scan_parquet_file(path).select(id_col).collect().get_column(id_col))
            continue
        except pl.exceptions.PolarsError:
            pass  # pyarrow reads it, or names what is wrong with it
        try:
            chunks.append(pl.from_arrow(pf.read(columns=[id_col])).get_column(id_col))
        except _READ_ERRORS as exc:
            raise _read_error(path, "parquet", exc) from None
    return chunks[0] if len(chunks) == 1 else pl.concat(chunks, how="vertical")


def _other_width(path: str, got: int, want: int) -> SelectkitDataError:
    return SelectkitDataError(
        f"'{path}' holds vectors of {got} dimensions, the parts before it {want}; every part "
        "of one input needs the same width"
    )


def _no_column(where: str, embedding_col: str) -> SelectkitDataError:
    return SelectkitDataError(
        f"{where} has no column '{embedding_col}'; make it with `selectkit embed`, "
        f"or name another column with {option('embedding_col')}"
    )


def open_vectors(
    path: str | Path,
    *,
    embedding_col: str = "embedding",
    id_col: str = DEFAULT_ID,
    input_format: str | None = None,
) -> VectorSource:
    """Open the vectors of a table without reading them: O(1) in the vectors for .npy and
    Parquet files (a Parquet file's ids are read and checked up front: unique, non-null, integer
    or string). Other formats and stdin are read whole."""
    path = str(path)
    files = input_files(path)
    if not names_many_files(path):
        check_exists(path)
    # names without a known extension (``<(...)``) and streams are read whole, format by content
    formats = {
        detect_format(f, input_format) if input_format or known_suffix(f) else None for f in files
    }
    where = f"'{path}'"
    if formats == {"parquet"} and not is_stream(path):
        return _open_parquet_vectors(path, files, embedding_col, id_col)
    table = read_table(path, id_col=id_col, vector_col=embedding_col, input_format=input_format)
    if embedding_col in table.arrays:
        matrix = table.arrays[embedding_col]
    elif embedding_col in table.frame.columns:
        matrix = as_matrix(table.frame.get_column(embedding_col), where)
    else:
        raise _no_column(where, embedding_col)
    if table.source.format != "npy":
        check_finite(matrix, where, embedding_col)
    ids = table.frame.get_column(id_col)
    return VectorSource(
        path,
        matrix.shape[0],
        matrix.shape[1],
        id_col,
        embedding_col,
        _matrix=matrix,
        _ids=ids,
        _source=table.source,
    )


def _open_parquet_vectors(
    path: str, files: list[str], embedding_col: str, id_col: str
) -> VectorSource:
    """Parquet file(s) as vectors, reading footers, the first row and the ids only."""
    where = f"'{path}'"
    parts = []
    n = 0
    dim = None
    with_ids = None
    for file in files:
        check_exists(file)
        pf = open_parquet(file)
        names = pf.schema_arrow.names
        if embedding_col not in names:
            raise _no_column(f"'{file}'", embedding_col)
        has_ids = id_col in names
        if with_ids is not None and has_ids != with_ids:
            raise SelectkitDataError(
                f"'{file}' {'has' if has_ids else 'has no'} column '{id_col}' but '{files[0]}' "
                f"{'has' if with_ids else 'has none'}; give every part of {where} the same columns"
            )
        with_ids = has_ids
        parts.append((file, pf))
        rows = pf.metadata.num_rows
        n += rows
        if dim is None and rows:
            dim = _first_width(file, pf, embedding_col)
    if not with_ids:
        check_row_number_ids(id_col, where)
    if n == 0:
        raise SelectkitDataError(f"{where} has no rows")
    if with_ids:  # bad ids fail before any work, not after the fit; uniqueness across parts
        ensure_ids(_parquet_ids(parts, id_col).to_frame(), id_col, where)
    return VectorSource(path, n, dim, id_col, embedding_col, _parts=parts)
