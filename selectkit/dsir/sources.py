"""Where DSIR's documents come from: files streamed in fixed batches, or an in-memory column.

Both yield ``Chunk``s of exactly ``CHUNK_ROWS`` rows (the last of each file may be shorter),
whatever the files' own batch or row-group layout: batches are the unit of the seeded noise, so
fixed batches make a selection independent of the file layout and of the number of workers.
Standard input is spooled to a temporary file first, because DSIR reads its input twice.
Texts longer than the ``cap`` (``--max-chars``) are cut before anything hashes them; a source
holds one batch at a time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from selectkit.errors import SelectkitError
from selectkit.io.formats import STDIO, detect_format
from selectkit.io.tables import Source, expand_inputs, iter_batches
from selectkit.pool import column_option
from selectkit.textcap import TextCap

CHUNK_ROWS = 8192


@dataclass
class Chunk:
    """``CHUNK_ROWS`` (or fewer) documents: which file and batch, their texts and ids (None when
    the input has no id column: the global row number is then the id)."""

    file: int
    index: int
    row0: int
    texts: pl.Series
    ids: pl.Series | None


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


@dataclass
class FileChunks:
    """Documents of input files (Parquet, JSONL, CSV, .gz, or '-'), in input order."""

    paths: list[str]
    text_col: str = "text"
    id_col: str = "id"
    input_format: str | None = None
    stdin: BinaryIO | None = None
    sources: list[Source] = field(default_factory=list)
    _spool: dict[str, str] = field(default_factory=dict)
    _spool_format: str | None = None
    _has_ids: bool | None = None
    cap: TextCap | None = None  # the --max-chars cap; its count restarts with every pass

    def __post_init__(self) -> None:
        self.paths = expand_inputs(self.paths)

    def _readable(self, path: str) -> tuple[str, str | None]:
        if path != STDIO:
            return path, self.input_format
        if path not in self._spool:
            fmt = detect_format(STDIO, self.input_format)
            fd, tmp = tempfile.mkstemp(prefix="selectkit-dsir-", suffix=".stdin")
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(self.stdin or sys.stdin.buffer, out, 1 << 20)
            if os.path.getsize(tmp) == 0:
                os.unlink(tmp)
                raise SelectkitError("stdin is empty; pipe a JSON Lines table into the command")
            self._spool[path] = tmp
            self._spool_format = fmt
        return self._spool[path], self._spool_format

    def total_bytes(self) -> int:
        """Bytes of all inputs on disk (stdin is spooled first, so it counts too)."""
        return sum(os.path.getsize(self._readable(p)[0]) for p in self.paths)

    def chunks(self) -> Iterator[Chunk]:
        """Yield every document in fixed batches; one streamed read of every file."""
        row = 0
        sources = []
        if self.cap is not None:
            self.cap.truncated = 0
        for fi, path in enumerate(self.paths):
            readable, fmt = self._readable(path)
            source, batches = iter_batches(
                readable,
                columns=[self.text_col, self.id_col],
                input_format=fmt,
                batch_size=CHUNK_ROWS,
                allow_empty=len(self.paths) > 1,  # an empty part file among shards is skipped
            )
            where = "stdin" if path == STDIO else f"'{path}'"
            file_row = 0
            for ci, frame in enumerate(_rechunk(self._checked(batches, where), CHUNK_ROWS)):
                ids = frame.get_column(self.id_col) if self.id_col in frame.columns else None
                self._check_ids(ids, where)
                texts = _capped(self.cap, frame.get_column(self.text_col), where, file_row, ids)
                yield Chunk(fi, ci, row, texts, ids)
                row += frame.height
                file_row += frame.height
            source.path = path
            sources.append(source)
        self.sources = sources

    def _checked(self, batches: Iterator[pl.DataFrame], where: str) -> Iterator[pl.DataFrame]:
        for frame in batches:
            if self.text_col not in frame.columns:
                raise SelectkitError(
                    f"{where} has no text column '{self.text_col}'; name it with "
                    + column_option("text")
                )
            yield frame

    def _check_ids(self, ids: pl.Series | None, where: str) -> None:
        has = ids is not None
        if self._has_ids is None:
            self._has_ids = has
        elif self._has_ids != has:
            raise SelectkitError(
                f"{where} {'has' if has else 'lacks'} an id column '{self.id_col}' but an earlier "
                "input does not match; give every input ids, or none (row numbers are then used)"
            )
        if has and ids.null_count():
            raise SelectkitError(
                f"{where}: column '{self.id_col}' has null ids; every row needs one"
            )

    def close(self) -> None:
        for tmp in self._spool.values():
            Path(tmp).unlink(missing_ok=True)
        self._spool.clear()


@dataclass
class FrameChunks:
    """Documents of an in-memory text column (the Python API's Pool). ``ids``: their ids (noise
    and tie-breaks derive from them, as from files' ids); None = positions are the ids."""

    texts: pl.Series
    sources: list[Source] = field(default_factory=list)
    ids: pl.Series | None = None
    cap: TextCap | None = None

    def chunks(self) -> Iterator[Chunk]:
        if self.cap is not None:
            self.cap.truncated = 0
        for ci, start in enumerate(range(0, self.texts.len(), CHUNK_ROWS)):
            ids = None if self.ids is None else self.ids.slice(start, CHUNK_ROWS)
            texts = _capped(self.cap, self.texts.slice(start, CHUNK_ROWS), "the pool", start, ids)
            yield Chunk(0, ci, start, texts, ids)

    def close(self) -> None:
        pass


def _capped(
    cap: TextCap | None, texts: pl.Series, where: str, row0: int, ids: pl.Series | None
) -> pl.Series:
    return texts if cap is None else cap.apply(texts, where=where, row0=row0, ids=ids)
