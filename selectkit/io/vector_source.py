"""Vectors too large for memory: row count, random access to a sample, and a stream of batches.

``.npy`` is memory-mapped; Parquet is read row group by row group; JSONL, CSV and stdin are
read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from selectkit.errors import SelectkitDataError, option
from selectkit.io.formats import detect_format, known_suffix
from selectkit.io.streams import is_stream
from selectkit.io.tables import (
    _READ_ERRORS,
    DEFAULT_ID,
    Source,
    _read_error,
    check_exists,
    check_row_number_ids,
    ensure_ids,
    fingerprint_file,
    open_parquet,
    read_table,
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
    _parquet: pq.ParquetFile | None = None
    _source: Source | None = None

    @property
    def source(self) -> Source:
        """Path, format, rows and content fingerprint (hashed on first use)."""
        if self._source is None:
            fingerprint = fingerprint_file(self.path)
            self._source = Source(
                path=self.path, format="parquet", rows=self.n, fingerprint=fingerprint
            )
        return self._source

    @property
    def _has_parquet_ids(self) -> bool:
        return self._parquet is not None and self.id_col in self._parquet.schema_arrow.names

    def batches(self, batch_size: int = 65536) -> Iterator[tuple[pl.Series, np.ndarray]]:
        """Yield (ids, float32 matrix) batches in row order; memory O(batch_size * dim)."""
        if self._matrix is not None:
            for s in range(0, self.n, batch_size):
                block = np.asarray(self._matrix[s : s + batch_size], dtype=np.float32)
                yield self._ids.slice(s, block.shape[0]), block
            return
        cols = [self.embedding_col] + ([self.id_col] if self._has_parquet_ids else [])
        offset = 0
        try:
            for rb in self._parquet.iter_batches(batch_size=batch_size, columns=cols):
                frame = pl.from_arrow(rb)
                block = as_matrix(frame.get_column(self.embedding_col), f"'{self.path}'")
                if self._has_parquet_ids:
                    ids = frame.get_column(self.id_col)
                else:
                    rows = np.arange(offset, offset + block.shape[0], dtype=np.int64)
                    ids = pl.Series(self.id_col, rows)
                offset += block.shape[0]
                yield ids, block
        except _READ_ERRORS as exc:
            raise _read_error(self.path, "parquet", exc) from None

    def ids(self) -> pl.Series:
        """Every row's id, in row order (row numbers when the file has none); O(n) memory."""
        if self._ids is not None:
            return self._ids
        if not self._has_parquet_ids:
            return pl.Series(self.id_col, np.arange(self.n, dtype=np.int64))
        try:
            return pl.from_arrow(self._parquet.read(columns=[self.id_col])).get_column(self.id_col)
        except _READ_ERRORS as exc:
            raise _read_error(self.path, "parquet", exc) from None

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
    check_exists(path)
    # names without a known extension (``<(...)``) and streams are read whole, format by content
    fmt = detect_format(path, input_format) if input_format or known_suffix(path) else None
    where = f"'{path}'"
    if fmt == "parquet" and not is_stream(path):
        pf = open_parquet(path)
        names = pf.schema_arrow.names
        if embedding_col not in names:
            raise _no_column(where, embedding_col)
        if id_col not in names:
            check_row_number_ids(id_col, where)
        n = pf.metadata.num_rows
        if n == 0:
            raise SelectkitDataError(f"{where} has no rows")
        try:
            first = pl.from_arrow(next(pf.iter_batches(batch_size=1, columns=[embedding_col])))
            if id_col in names:  # bad ids fail before any work, not after the fit
                ensure_ids(pl.from_arrow(pf.read(columns=[id_col])), id_col, where)
        except _READ_ERRORS as exc:
            raise _read_error(path, "parquet", exc) from None
        dim = as_matrix(first.get_column(embedding_col), where).shape[1]
        return VectorSource(path, n, dim, id_col, embedding_col, _parquet=pf)
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
