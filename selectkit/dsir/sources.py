"""Where DSIR's documents come from: the corpus's shards, or an in-memory column (a Pool).

A shard is fixed by the data (one input file, or a row range of a large Parquet file: the
engine's ``plan_shards``), never by the number of workers. Each shard is read in batches of
``CHUNK_ROWS`` rows (the last one of a shard may be shorter), whatever the file's own batch or
row-group layout. ``FileShard`` and ``FrameShard`` are picklable: a kernel on any worker reads its
own shard. Standard input, a FIFO or ``<(...)`` is spooled to a temporary file on the driver first,
because DSIR reads its input twice (so with a remote Ray cluster, a stream works only when the
driver's temporary folder is shared; give files instead). Texts longer than the ``cap``
(``--max-chars``) are cut before anything hashes them; a reader holds one batch at a time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from selectkit.engine.shards import Shard, plan_shards
from selectkit.errors import SelectkitError
from selectkit.io.formats import STDIO, detect_format, known_suffix
from selectkit.io.streams import is_stream, where_of
from selectkit.io.tables import iter_batches
from selectkit.pool import column_option
from selectkit.textcap import TextCap

CHUNK_ROWS = 8192


@dataclass
class Chunk:
    """``CHUNK_ROWS`` (or fewer) documents of one shard: their first row within the shard, their
    texts (already capped) and ids (None when the input has no id column)."""

    row0: int
    texts: pl.Series
    ids: pl.Series | None


@dataclass(frozen=True)
class Reading:
    """How a kernel reads documents: the columns, and the ``--max-chars`` cap's settings."""

    text_col: str = "text"
    id_col: str = "id"
    max_chars: int = 100_000
    on_long: str = "truncate"

    def cap(self) -> TextCap:
        return TextCap(self.max_chars, self.on_long)


def _rechunk(frames: Iterator[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        while held >= rows:
            merged = pl.concat(pending, how="vertical_relaxed") if len(pending) > 1 else pending[0]
            yield merged.head(rows)
            rest = merged.slice(rows)
            pending, held = ([rest], rest.height) if rest.height else ([], 0)
    if held:
        yield pl.concat(pending, how="vertical_relaxed")


@dataclass(frozen=True)
class FileShard:
    """One shard of the corpus as DSIR reads it: the engine's ``shard``, the file to open (stdin's
    spooled copy for '-'), its format, and ``row0``: the global row number of its first row once
    known (the plan knows it for Parquet, pass 1 counts it otherwise). ``key`` names it (errors,
    random streams); ``index`` is its place in shard order."""

    shard: Shard
    readable: str
    input_format: str | None
    allow_empty: bool
    row0: int | None = None

    @property
    def key(self) -> str:
        return self.shard.key

    @property
    def index(self) -> int:
        return self.shard.index

    @property
    def path(self) -> str:
        return self.shard.path

    @property
    def where(self) -> str:
        return self.shard.where

    def open(self, reading: Reading) -> ShardReader:
        """A reader of this shard's batches (one streamed read)."""
        first = self.shard.rows[0] if self.shard.rows else 0
        groups = range(*self.shard.groups) if self.shard.groups is not None else None
        source, frames = iter_batches(
            self.readable,
            columns=[reading.text_col, reading.id_col],
            input_format=self.input_format,
            batch_size=CHUNK_ROWS,
            allow_empty=self.allow_empty,  # an empty part file among shards is skipped
            row_groups=groups,  # a row range of a large Parquet file
        )
        source.path = self.shard.path
        frames = _rechunk(_checked(frames, reading.text_col, self.where), CHUNK_ROWS)
        ranged = self.shard.rows is not None
        return ShardReader(self.where, frames, reading, reading.cap(), first, source, ranged)


@dataclass
class ShardReader:
    """One shard's documents in ``Chunk``s (``chunks``); ``cap`` counts what it truncated and
    ``source`` (a file's provenance record, None for a pool) is complete once read through."""

    where: str
    frames: Iterator[pl.DataFrame]
    reading: Reading
    cap: TextCap
    first: int = 0  # the shard's first row within its file (row ranges of a Parquet file)
    source: Any = None
    ranged: bool = False  # a row range: its record's rows are the range's

    def chunks(self) -> Iterator[Chunk]:
        row = 0
        id_col = self.reading.id_col
        for frame in self.frames:
            ids = frame.get_column(id_col) if id_col in frame.columns else None
            _check_null_ids(ids, id_col, self.where)
            texts = frame.get_column(self.reading.text_col)
            texts = self.cap.apply(texts, where=self.where, row0=self.first + row, ids=ids)
            yield Chunk(row, texts, ids)
            row += frame.height

    def record(self) -> dict[str, Any] | None:
        """The file's provenance record (rows, fingerprint), once read through; a row range's
        says so (``_range``), so ``merged_inputs`` adds the ranges of one file up."""
        if self.source is None:
            return None
        return {**self.source.as_dict(), **({"_range": True} if self.ranged else {})}


def _checked(frames: Iterator[pl.DataFrame], text_col: str, where: str) -> Iterator[pl.DataFrame]:
    for frame in frames:
        if text_col not in frame.columns:
            raise SelectkitError(
                f"{where} has no text column '{text_col}'; name it with " + column_option("text")
            )
        yield frame


def _check_null_ids(ids: pl.Series | None, id_col: str, where: str) -> None:
    if ids is not None and ids.null_count():
        raise SelectkitError(f"{where}: column '{id_col}' has null ids; every row needs one")


def check_ids_agree(has_ids: list[bool | None], shards: list[FileShard], id_col: str) -> None:
    """Every shard has an id column, or none does (empty shards, None, do not count); the first
    that differs from the ones before it is named."""
    seen = None
    for has, shard in zip(has_ids, shards, strict=True):
        if has is None:
            continue
        if seen is None:
            seen = has
        elif has != seen:
            raise SelectkitError(
                f"{shard.where} {'has' if has else 'lacks'} an id column '{id_col}' but an "
                "earlier input does not match; give every input ids, or none (row numbers are "
                "then used)"
            )


@dataclass
class Corpus:
    """The raw corpus's shards in shard order (``plan``), with stdin spooled; ``close`` removes
    the spooled copy."""

    paths: list[str]
    input_format: str | None = None
    stdin: BinaryIO | None = None
    _spool: dict[str, tuple[str, str]] = field(default_factory=dict)

    def plan(self) -> list[FileShard]:
        """The shards of every input, in input order; O(inputs)."""
        shards = plan_shards(self.paths, input_format=self.input_format)
        many = len(shards) > 1
        out = []
        for shard in shards:
            readable, fmt = self._readable(shard.path)
            out.append(FileShard(shard, readable, fmt, many, shard.row0))
        return out

    def total_bytes(self, shards: list[FileShard]) -> int:
        """Bytes of all inputs on disk (stdin is spooled first, so it counts too)."""
        seen = {s.readable for s in shards}
        return sum(os.path.getsize(p) for p in seen)

    def _readable(self, path: str) -> tuple[str, str | None]:
        if not is_stream(path):
            # absolute: a Ray worker's current folder is its raylet's, not the driver's
            return os.path.abspath(path), self.input_format
        if path not in self._spool:  # stdin, a FIFO or <(...): read twice, so spooled once
            named = path != STDIO and (self.input_format or known_suffix(path))
            fmt = detect_format(path if named else STDIO, self.input_format)
            fd, tmp = tempfile.mkstemp(prefix="selectkit-dsir-", suffix=".stdin")
            with os.fdopen(fd, "wb") as out:
                if path == STDIO:
                    shutil.copyfileobj(self.stdin or sys.stdin.buffer, out, 1 << 20)
                else:
                    with open(path, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)
            if os.path.getsize(tmp) == 0:
                os.unlink(tmp)
                raise SelectkitError(
                    f"{where_of(path)} is empty; pipe a JSON Lines table into the command"
                )
            self._spool[path] = (tmp, fmt)
        return self._spool[path]

    def close(self) -> None:
        for tmp, _fmt in self._spool.values():
            Path(tmp).unlink(missing_ok=True)
        self._spool.clear()


def merged_inputs(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One provenance record per input file from the shards' records (row ranges of one file
    add up), in shard order."""
    out: list[dict[str, Any]] = []
    for rec in sources:
        if out and out[-1]["path"] == rec["path"] and rec.get("_range"):
            out[-1]["rows"] += rec["rows"]
            continue
        out.append({k: v for k, v in rec.items() if k != "_range"})
    return out


@dataclass(frozen=True)
class FrameShard:
    """An in-memory text column (the Python API's Pool) as one shard. ``ids``: their ids (noise
    and tie-breaks derive from them, as from files' ids); None = positions are the ids."""

    texts: pl.Series
    ids: pl.Series | None = None
    key: str = "pool"
    index: int = 0
    row0: int = 0
    where: str = "the pool"

    def open(self, reading: Reading) -> ShardReader:
        """A reader of the column in ``CHUNK_ROWS`` slices."""
        return ShardReader(self.where, self._frames(reading), reading, reading.cap())

    def _frames(self, reading: Reading) -> Iterator[pl.DataFrame]:
        for start in range(0, self.texts.len(), CHUNK_ROWS):
            cols = {reading.text_col: self.texts.slice(start, CHUNK_ROWS)}
            if self.ids is not None:
                cols[reading.id_col] = self.ids.slice(start, CHUNK_ROWS)
            yield pl.DataFrame(cols)
