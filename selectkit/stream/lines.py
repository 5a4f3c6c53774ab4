"""Lines in, fields out: the reading half of ``selectkit stream``.

Input is read in whatever chunks the producer has written (``read1``), cut at the last newline,
so a slow producer's line is decided as soon as it arrives and a fast one's lines are parsed
in batches. Only the fields a policy reads are parsed (polars' JSON and CSV readers on the
batch's bytes); the line's bytes are kept to pass through unchanged.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io.vectors import PROBA_TOLERANCE

READ_BYTES = 1 << 16
#: one line may cost at most this much memory; a longer one is an error, not an OOM
MAX_LINE_BYTES = 64 << 20


class _BadRecord(ValueError):
    """What is wrong with one line (the message), found by the slow path."""


def _shown(value: object) -> str:
    if value is None:
        return "missing (or null)"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class MalformedLine(SelectkitDataError):
    """A line that cannot be read; ``index``: its position in the batch given to ``parse``."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass
class Fields:
    """The parsed fields of a batch; ``bad``: lines that could not be read (skipped)."""

    lines: list[bytes]
    ids: pl.Series  # String, null where the line has no id
    proba: np.ndarray | None  # (n, C) float64
    score: np.ndarray | None  # (n,) float64
    embedding: np.ndarray | None  # (n, d) float32
    bad: np.ndarray  # bool (n,)
    reasons: list[str]
    cost: np.ndarray | None = None  # (n,) float64, > 0 (NaN on a bad line)


@contextmanager
def open_input(path: str | BinaryIO) -> Iterator[BinaryIO]:
    """A binary reader for ``path`` ('-' = stdin, or an open binary reader, used as is); gzip
    by magic bytes. Errors name the file."""
    if not isinstance(path, str):
        yield path
        return
    if path == "-":
        stdin = sys.stdin.buffer
        if not hasattr(stdin, "peek"):  # a test runner's or an embedding app's stdin
            stdin = io.BufferedReader(stdin)  # type: ignore[arg-type]
        head = stdin.peek(4)[:4]
        _refuse_binary(head, "stdin")
        if head[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=stdin) as gz:
                yield gz  # type: ignore[misc]
        else:
            yield stdin
        return
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise SelectkitUsageError(f"input '{path}' does not exist") from None
    except IsADirectoryError:
        raise SelectkitUsageError(
            f"input '{path}' is a folder; give JSON Lines or CSV files"
        ) from None
    with raw:
        head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
        _refuse_binary(head, f"'{path}'")
        if head[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw) as gz:
                yield gz  # type: ignore[misc]
        else:
            yield raw


def _refuse_binary(head: bytes, where: str) -> None:
    if head == b"PAR1":
        raise SelectkitUsageError(
            f"{where} is a Parquet file, not a stream of lines; give JSON Lines or CSV (e.g. "
            "`selectkit apply ... -o -` or polars' write_ndjson)"
        )


def check_inputs_exist(inputs: list) -> None:
    """A usage error for a missing input file or a folder, before any line is read. O(inputs)."""
    import os

    for path in inputs:
        if isinstance(path, str) and path != "-":
            if os.path.isdir(path):
                raise SelectkitUsageError(
                    f"input '{path}' is a folder; give JSON Lines or CSV files"
                )
            if not os.path.exists(path):
                raise SelectkitUsageError(f"input '{path}' does not exist")


def csv_columns(header: bytes) -> list[str]:
    """The column names of a CSV header line."""
    import csv

    return next(csv.reader([header.decode("utf-8", errors="replace").rstrip("\r\n")]), [])


def line_batches(reader: BinaryIO, where: str, digest: Any = None) -> Iterator[list[bytes]]:
    """Yield lists of complete lines (each with its newline; a last line without one gets
    one) as they become available; ``digest`` (a hashlib object) is updated with every byte
    yielded. Memory: one read plus the longest line, capped."""
    pending: list[bytes] = []
    pending_size = 0
    read1 = getattr(reader, "read1", None) or reader.read
    while True:
        chunk = read1(READ_BYTES)
        if not chunk:
            break
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size > MAX_LINE_BYTES:
                raise SelectkitDataError(
                    f"{where}: a line is longer than {MAX_LINE_BYTES >> 20} MiB; "
                    "is this JSON Lines (one record per line)?"
                )
            continue
        head = b"".join([*pending, chunk[: cut + 1]])
        pending = [chunk[cut + 1 :]] if cut + 1 < len(chunk) else []
        pending_size = len(pending[0]) if pending else 0
        if digest is not None:
            digest.update(head)
        yield head.splitlines(keepends=True)
    tail = b"".join(pending)
    if tail.strip():
        last = tail + b"\n"
        if digest is not None:
            digest.update(last)
        yield [last]


def _list_matrix(col: pl.Series, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """(rows, width) matrix of a List column and a mask of rows whose length is off (or null)."""
    lengths = col.list.len().fill_null(0).to_numpy()
    width = int(np.bincount(lengths).argmax()) if lengths.size else 0
    ok = (lengths == width) & (width > 0)
    mat = np.full((col.len(), max(width, 1)), np.nan, dtype=dtype)
    if ok.any():
        good = col.filter(pl.Series(ok))
        mat[ok] = np.asarray(good.list.to_array(width).to_numpy(), dtype=dtype)
    return mat, ~ok


class FieldReader:
    """Parses the fields a policy reads from batches of JSON Lines or CSV lines."""

    def __init__(
        self,
        fmt: str,
        *,
        id_col: str,
        proba_col: str | None,
        score_col: str | None,
        embedding_col: str | None,
        cost_col: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.cost_col = cost_col
        self.id_col = id_col
        self.proba_col = proba_col
        self.score_col = score_col
        self.embedding_col = embedding_col
        self.header: bytes | None = None
        self.raw_index = np.arange(0)
        self.classes: int | None = None
        self.dim: int | None = None
        schema: dict[str, pl.DataType] = {id_col: pl.String()}
        if proba_col:
            schema[proba_col] = pl.List(pl.Float64())
        if score_col:
            schema[score_col] = pl.Float64()
        if embedding_col:
            schema[embedding_col] = pl.List(pl.Float32())
        if cost_col:
            schema[cost_col] = pl.Float64()
        self.schema = schema

    def _frame(self, lines: list[bytes]) -> pl.DataFrame:
        data = b"".join(lines)
        if self.fmt == "csv":
            assert self.header is not None
            frame = pl.read_csv(
                io.BytesIO(self.header + data),
                has_header=True,
                infer_schema=False,
            )
            cols = {}
            for name in self.schema:
                if name not in frame.columns:
                    cols[name] = pl.lit(None, dtype=pl.String()).alias(name)
                else:
                    cols[name] = pl.col(name)
            frame = frame.select(list(cols.values()))
            numeric = [c for c in (self.score_col, self.cost_col) if c]
            if numeric:
                frame = frame.with_columns(pl.col(numeric).cast(pl.Float64, strict=False))
            return frame
        return pl.read_ndjson(io.BytesIO(data), schema=self.schema)

    def parse(self, lines: list[bytes], first_line: int, where: str, skip: bool) -> Fields:
        """Parse ``lines`` (numbered from ``first_line``; blank lines are dropped, not
        records). A malformed line raises, naming its number and the fix, unless ``skip`` (then
        it is marked bad)."""
        numbers = np.arange(first_line, first_line + len(lines))
        self.raw_index = np.arange(len(lines))  # position of each parsed line in ``lines``
        blank = np.array([not ln.strip() for ln in lines], dtype=bool)
        if blank.any():
            lines = [ln for ln, b in zip(lines, blank, strict=True) if not b]
            numbers = numbers[~blank]
            self.raw_index = self.raw_index[~blank]
        first_line = numbers  # type: ignore[assignment]  # per-line numbers from here on
        n = len(lines)
        bad = np.zeros(n, dtype=bool)
        reasons = [""] * n
        try:
            frame = self._frame(lines)
            if frame.height != n:
                raise ValueError("row count")
        except Exception:
            frame, bad, reasons = self._one_by_one(lines, first_line, where, skip)
        fields = Fields(lines, frame.get_column(self.id_col), None, None, None, bad, reasons)
        if self.proba_col:
            fields.proba = self._proba(
                frame.get_column(self.proba_col), fields, first_line, where, skip
            )
        if self.score_col:
            col = frame.get_column(self.score_col)
            fields.score = col.to_numpy().astype(np.float64)
            self._flag(
                col.is_null().to_numpy() & ~fields.bad,
                fields,
                first_line,
                where,
                skip,
                f"'{self.score_col}' is missing (or null, or not a number)",
            )
        if self.cost_col:
            column = frame.get_column(self.cost_col)
            absent = column.is_null().to_numpy()
            self._flag(
                absent & ~fields.bad,
                fields,
                first_line,
                where,
                skip,
                f"has no cost field '{self.cost_col}' (or it is null); each line needs a positive "
                "cost: check the name given to --cost-col",
            )
            cost = column.to_numpy().astype(np.float64)
            with np.errstate(invalid="ignore"):
                off = ~(np.isfinite(cost) & (cost > 0.0))
            self._flag(
                off & ~fields.bad,
                fields,
                first_line,
                where,
                skip,
                f"cost '{self.cost_col}' is zero, negative or not a number (each line needs a "
                "positive cost)",
            )
            fields.cost = np.where(off | fields.bad, np.nan, cost)
        if self.embedding_col:
            emb, off = _list_matrix(frame.get_column(self.embedding_col), np.float32)
            if self.dim is None and (~off & ~bad).any():
                self.dim = emb.shape[1]
            if self.dim is not None and emb.shape[1] != self.dim:
                off[:] = True
                emb = np.full((n, self.dim), np.nan, dtype=np.float32)
            emb = (
                np.nan_to_num(emb, nan=0.0)
                if emb.size
                else np.zeros((n, self.dim or 1), np.float32)
            )
            self._flag(
                off & ~bad,
                fields,
                first_line,
                where,
                skip,
                f"no '{self.embedding_col}' list of {self.dim} numbers",
            )
            fields.embedding = emb
        return fields

    def _flag(
        self, mask: np.ndarray, fields: Fields, first: int, where: str, skip: bool, why: str
    ) -> None:
        if not mask.any():
            return
        if not skip:
            at = int(np.argmax(mask))
            raise MalformedLine(
                f"{where} line {int(first[at])}: {why}; fix the producer, or pass --on-error "
                "skip to skip such lines (they are counted)",
                int(self.raw_index[at]),
            )
        fields.bad |= mask
        for i in np.flatnonzero(mask):
            fields.reasons[i] = fields.reasons[i] or why

    def _proba(
        self, col: pl.Series, fields: Fields, first: int, where: str, skip: bool
    ) -> np.ndarray:
        mat, off = _list_matrix(col, np.float64)
        if self.classes is None and (~off & ~fields.bad).any():
            self.classes = mat.shape[1]
        if self.classes is not None and mat.shape[1] != self.classes:
            off[:] = True
            mat = np.full((len(fields.lines), self.classes), np.nan)
        name = self.proba_col
        self._flag(
            off & ~fields.bad,
            fields,
            first,
            where,
            skip,
            f"'{name}' is missing or not a list of {self.classes or 'class'} probabilities",
        )
        good = ~fields.bad
        with np.errstate(invalid="ignore"):
            notdist = good & (
                ~np.isfinite(mat).all(axis=1)
                | (mat.min(axis=1, initial=0.0) < -PROBA_TOLERANCE)
                | (np.abs(mat.sum(axis=1) - 1.0) > PROBA_TOLERANCE)
            )
        self._flag(
            notdist,
            fields,
            first,
            where,
            skip,
            f"'{name}' is not a probability distribution; give softmax outputs, not logits or scores",
        )
        return mat

    def _check_record(self, line: bytes) -> None:
        """Raise :class:`_BadRecord` saying what is wrong with one JSON line, field by field."""

        def no_constant(name: str) -> None:
            raise _BadRecord(f"not valid JSON ({name} is not JSON; write null or a number)")

        try:
            record = json.loads(line, parse_constant=no_constant)
        except _BadRecord:
            raise
        except ValueError as exc:
            raise _BadRecord(f"not valid JSON ({str(exc).splitlines()[0][:100]})") from None
        if not isinstance(record, dict):
            raise _BadRecord(f"not a JSON object (it is a {type(record).__name__})")
        number = (int, float)
        for name, what in ((self.score_col, "a number"), (self.cost_col, "a positive number")):
            value = record.get(name) if name else 0
            if name and (isinstance(value, bool) or not isinstance(value, number)):
                raise _BadRecord(f"'{name}' is {_shown(value)}, not {what}")
        for name in (self.proba_col, self.embedding_col):
            value = record.get(name) if name else []
            if name and not (
                isinstance(value, list)
                and all(isinstance(v, number) and not isinstance(v, bool) for v in value)
            ):
                raise _BadRecord(f"'{name}' is {_shown(value)}, not a list of numbers")

    def _one_by_one(self, lines: list[bytes], first: int, where: str, skip: bool):
        """The slow path after a batch failed to parse: find the bad lines, one by one."""
        empty = pl.DataFrame(schema=self.schema).clear(1)  # a bad line's row: all null
        rows, bad, reasons = [], np.zeros(len(lines), dtype=bool), [""] * len(lines)
        for i, line in enumerate(lines):
            try:
                if self.fmt != "csv":
                    self._check_record(line)
                rows.append(self._frame([line]))
            except Exception as exc:  # any parse failure is this line's fault
                why = (
                    str(exc)
                    if isinstance(exc, _BadRecord)
                    else ("not valid JSON" if self.fmt != "csv" else "not a CSV record")
                )
                if not skip:
                    detail = (
                        ""
                        if isinstance(exc, _BadRecord)
                        else (
                            f" ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
                        )
                    )
                    raise MalformedLine(
                        f"{where} line {int(first[i])}: {why}{detail}; fix the producer, or "
                        "pass --on-error skip to skip such lines (they are counted)",
                        int(self.raw_index[i]),
                    ) from None
                bad[i] = True
                reasons[i] = why
                rows.append(empty)
        return pl.concat(rows, how="vertical_relaxed"), bad, reasons
