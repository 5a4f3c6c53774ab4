"""Shards: the units of work, fixed by the data, never by the number of workers.

A shard is one input file, or a fixed range of row groups of a big Parquet file (or of rows of a
``.npy`` matrix). Its ``key`` is its path relative to the inputs' common folder (plus the row
range), so it names the same data wherever the files are mounted; seeds and part names derive
from it and from ``index``, never from which worker ran it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError
from selectkit.io.formats import STDIO, detect_format, known_suffix
from selectkit.io.streams import is_stream, where_of
from selectkit.io.tables import (
    _READ_ERRORS,
    _read_error,
    check_exists,
    expand_inputs,
    fingerprint_file,
    iter_batches,
    open_parquet,
)
from selectkit.io.vectors import as_matrix, check_finite

#: rows per shard of a big Parquet or .npy input (split at row-group boundaries for Parquet)
SHARD_ROWS = 1 << 17


@dataclass(frozen=True)
class Shard:
    """One unit of work: ``path``'s rows ``rows`` = [start, stop) (None: the whole file).

    ``groups`` = [first, end) row groups of a Parquet shard; ``row0`` the shard's first row
    number across all the inputs when known without reading (Parquet, .npy; else None)."""

    index: int
    key: str
    path: str
    rows: tuple[int, int] | None = None
    groups: tuple[int, int] | None = None
    row0: int | None = None

    @property
    def where(self) -> str:
        """How messages name the shard's file."""
        return where_of(self.path)


def _keys(files: list[str]) -> list[str]:
    real = [f for f in files if f != STDIO]
    if not real:
        return list(files)
    dirs = [os.path.dirname(os.path.abspath(f)) for f in real]
    common = os.path.commonpath(dirs)
    return [f if f == STDIO else os.path.relpath(os.path.abspath(f), common) for f in files]


def _format(path: str, input_format: str | None) -> str | None:
    if path == STDIO:
        return input_format or "jsonl"
    if input_format or known_suffix(path):
        return detect_format(path, input_format)
    return None


def plan_shards(
    paths: Sequence[str | Path], *, shard_rows: int = SHARD_ROWS, input_format: str | None = None
) -> list[Shard]:
    """The shards of ``paths`` (files, quoted globs, dataset folders), in input order.

    A Parquet file of more than ``shard_rows`` rows is cut at row-group boundaries into ranges
    of at least ``shard_rows`` rows, a ``.npy`` matrix into ranges of exactly ``shard_rows``
    rows; any other file is one shard. Cost: each Parquet footer and ``.npy`` header is read;
    no data. A missing file is a ``SelectkitDataError`` naming it."""
    files = expand_inputs(paths)  # globs sorted, dataset folders as their parts
    shards: list[Shard] = []
    row0: int | None = 0
    for path, key in zip(files, _keys(files), strict=True):
        if is_stream(path):  # read once, from the front: one shard, its size unknown
            shards.append(Shard(len(shards), key, path, None, None, row0))
            row0 = None
            continue
        check_exists(path, allow_empty=True)
        fmt = _format(path, input_format)
        if fmt == "parquet" and os.path.getsize(path) > 0:
            for rows, groups in _parquet_ranges(path, shard_rows):
                whole = rows[0] == 0 and groups[1] == _row_groups(path)
                shards.append(
                    Shard(
                        len(shards),
                        key if whole else f"{key}:{rows[0]}-{rows[1]}",
                        path,
                        None if whole else rows,
                        None if whole else groups,
                        None if row0 is None else row0 + rows[0],
                    )
                )
            row0 = None if row0 is None else row0 + _parquet_rows(path)
        elif fmt == "npy":
            n = int(np.load(path, mmap_mode="r").shape[0])
            starts = range(0, max(n, 1), shard_rows)
            for start in starts:
                rows = (start, min(n, start + shard_rows))
                whole = len(starts) == 1
                shards.append(
                    Shard(
                        len(shards),
                        key if whole else f"{key}:{rows[0]}-{rows[1]}",
                        path,
                        None if whole else rows,
                        None,
                        None if row0 is None else row0 + start,
                    )
                )
            row0 = None if row0 is None else row0 + n
        else:
            shards.append(Shard(len(shards), key, path, None, None, row0))
            row0 = None  # its row count is known only once read
    return shards


def _row_groups(path: str) -> int:
    return open_parquet(path).metadata.num_row_groups


def _parquet_rows(path: str) -> int:
    return open_parquet(path).metadata.num_rows


def _parquet_ranges(path: str, shard_rows: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Consecutive row-group ranges of at least ``shard_rows`` rows (the last may be smaller)."""
    meta = open_parquet(path).metadata
    ranges, start_row, start_group, rows = [], 0, 0, 0
    for g in range(meta.num_row_groups):
        rows += meta.row_group(g).num_rows
        if rows - start_row >= shard_rows:
            ranges.append(((start_row, rows), (start_group, g + 1)))
            start_row, start_group = rows, g + 1
    if start_group < meta.num_row_groups or not ranges:
        ranges.append(((start_row, rows), (start_group, meta.num_row_groups)))
    return ranges


def shard_batches(
    shard: Shard,
    *,
    columns: list[str] | None = None,
    batch_size: int = 8192,
    input_format: str | None = None,
    schema_overrides: dict[str, pl.DataType] | None = None,
    id_col: str | None = None,
    allow_empty: bool = False,
) -> Iterator[pl.DataFrame]:
    """The shard's rows as polars frames of at most ``batch_size`` rows, checked as
    :func:`~selectkit.io.tables.iter_batches` checks a whole file. Memory O(batch_size)."""
    groups = range(*shard.groups) if shard.groups is not None else None
    _source, batches = iter_batches(
        shard.path,
        columns=columns,
        input_format=input_format,
        batch_size=batch_size,
        schema_overrides=schema_overrides,
        id_col=id_col,
        allow_empty=allow_empty,
        row_groups=groups,
        fingerprint=False,  # the source is dropped: no pass over the whole file per shard
    )
    return batches


def shard_vectors(
    shard: Shard,
    *,
    embedding_col: str = "embedding",
    id_col: str = "id",
    batch_size: int = 65536,
    input_format: str | None = None,
) -> Iterator[tuple[pl.Series, np.ndarray]]:
    """(ids, float32 block) batches of the shard's vectors; a file without ids gets row numbers
    from the shard's ``row0`` (which must then be known). Memory O(batch_size x dim)."""
    fmt = _format(shard.path, input_format)
    where = shard.where
    if fmt == "npy":
        matrix = np.load(shard.path, mmap_mode="r")
        start, stop = shard.rows or (0, matrix.shape[0])
        base = (shard.row0 or 0) - start
        for s in range(start, stop, batch_size):
            block = np.ascontiguousarray(matrix[s : min(stop, s + batch_size)], dtype=np.float32)
            check_finite(block, where, "vectors")
            ids = pl.Series(id_col, np.arange(base + s, base + s + block.shape[0], dtype=np.int64))
            yield ids, block
        return
    offset = shard.row0
    try:
        for frame in shard_batches(
            shard,
            columns=[id_col, embedding_col],
            batch_size=batch_size,
            input_format=input_format,
            id_col=id_col,
        ):
            if embedding_col not in frame.columns:
                raise SelectkitDataError(f"{where} has no column '{embedding_col}'")
            block = as_matrix(frame.get_column(embedding_col), where)
            check_finite(block, where, embedding_col)
            if id_col in frame.columns:
                ids = frame.get_column(id_col)
            else:
                if offset is None:
                    raise SelectkitDataError(
                        f"{where} has no id column '{id_col}' and follows inputs whose row "
                        "counts are unknown; add ids, or give Parquet or .npy inputs"
                    )
                ids = pl.Series(id_col, np.arange(offset, offset + block.shape[0], dtype=np.int64))
                offset += block.shape[0]
            yield ids, block
    except _READ_ERRORS as exc:
        raise _read_error(where, fmt or "parquet", exc) from None


def input_fingerprints(engine: Any, shards: Sequence[Shard]) -> list[dict[str, Any]]:
    """Each input file's path (as its shard key names it) and content fingerprint, in shard
    order, computed on ``engine``: what ``--resume`` must find unchanged. O(the inputs' bytes)."""
    files: dict[str, Shard] = {}
    for shard in shards:
        files.setdefault(shard.path, shard)
    firsts = list(files.values())
    prints = list(engine.map(_fingerprint, [s.path for s in firsts], label="fingerprint"))
    return [
        {"path": s.key.split(":")[0], "fingerprint": fp}
        for s, fp in zip(firsts, prints, strict=True)
    ]


def _fingerprint(path: str, _shared: Any) -> str:
    return fingerprint_file(path)
