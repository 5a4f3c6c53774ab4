"""The side store of the documents still in some top list: their ids and n-gram buckets.

Rows are int64 handles (a shard kernel's local rows, or the driver's ``shard << ROW_BITS | row``);
the n-gram buckets are kept as CSR rows (``ptr``, ``buckets``) so that adding, pruning and
gathering are numpy operations, never a Python loop per document. Memory: about 2-4 bytes per
n-gram of a kept document, plus its id.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError

ROW_BITS = 40  # rows per shard < 2**40; the driver's handle orders as (shard index, row)


def global_handles(shard_index: int, rows: np.ndarray) -> np.ndarray:
    """Driver handles of a shard's local ``rows``: they sort as the rows do in shard order."""
    return (np.int64(shard_index) << np.int64(ROW_BITS)) | rows.astype(np.int64)


def split_handles(handles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, local row) of driver handles."""
    return handles >> np.int64(ROW_BITS), handles & np.int64((1 << ROW_BITS) - 1)


def csr_take(ptr: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths of rows ``at``, the positions of their entries in CSR order); O(entries)."""
    starts, lengths = ptr[at], ptr[at + 1] - ptr[at]
    total = int(lengths.sum())
    shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return lengths, np.arange(total, dtype=np.int64) + shift


class CandidateStore:
    """Ids and n-gram buckets of candidate rows; see the module doc."""

    def __init__(self) -> None:
        self.rows = np.empty(0, np.int64)  # sorted after ``compact``
        self.ptr = np.zeros(1, np.int64)
        self.buckets = np.empty(0, np.uint32)
        self.ids: pl.Series | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, pl.Series | None]] = []
        self._pending_rows = 0

    def __len__(self) -> int:
        return self.rows.size + self._pending_rows

    def add(
        self, rows: np.ndarray, ptr: np.ndarray, buckets: np.ndarray, ids: pl.Series | None
    ) -> None:
        """Keep ``rows`` (new ones) whose n-grams are the CSR rows (``ptr``, ``buckets``)."""
        if rows.size:
            self._pending.append((rows, ptr, buckets, ids))
            self._pending_rows += rows.size

    def compact(self, live: np.ndarray | None = None) -> None:
        """Merge what was added; with ``live``, keep only those rows. O(kept n-grams)."""
        parts = [(self.rows, self.ptr, self.buckets, self.ids), *self._pending]
        self._pending, self._pending_rows = [], 0
        rows = np.concatenate([p[0] for p in parts])
        lengths = np.concatenate([np.diff(p[1]) for p in parts])
        buckets = np.concatenate([p[2].astype(np.uint32, copy=False) for p in parts])
        id_parts = [p[3] for p in parts if p[3] is not None and p[3].len()]
        ids = _concat_ids(id_parts) if id_parts else None
        order = np.argsort(rows, kind="stable")
        if live is not None:
            order = order[np.isin(rows[order], live)]
        ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        lengths, at = csr_take(ptr, order)
        self.rows = rows[order]
        self.buckets = buckets[at]
        self.ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        self.ids = None if ids is None else ids.gather(order)

    def find(self, rows: np.ndarray) -> np.ndarray:
        """Positions of ``rows`` (all kept) in the store."""
        self.compact()
        return np.searchsorted(self.rows, rows)

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """n-grams per row of ``rows``."""
        at = self.find(rows)
        return self.ptr[at + 1] - self.ptr[at]

    def counts(self, rows: np.ndarray, weights: np.ndarray, buckets: int) -> np.ndarray:
        """Summed n-gram counts (B,) of ``rows``, each counted ``weights`` times; float64."""
        if rows.size == 0:
            return np.zeros(buckets)
        pos = self.find(rows)  # compacts first: self.ptr is read after it
        lengths, at = csr_take(self.ptr, pos)
        return np.bincount(
            self.buckets[at].astype(np.int64),
            weights=np.repeat(np.asarray(weights, dtype=np.float64), lengths),
            minlength=buckets,
        ).astype(np.float64)

    def ids_of(self, rows: np.ndarray) -> pl.Series | None:
        """The ids of ``rows`` (None when the input has none)."""
        pos = self.find(rows)  # compacts first
        return None if self.ids is None else self.ids.gather(pos)

    def take(self, live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, pl.Series | None]:
        """(rows, ptr, buckets, ids) of the kept ``live`` rows: what a kernel returns."""
        self.compact(live)
        return self.rows, self.ptr, self.buckets, self.ids


def _concat_ids(parts: list[pl.Series]) -> pl.Series:
    try:
        frames = [pl.DataFrame({"id": p}) for p in parts]
        return pl.concat(frames, how="vertical_relaxed").get_column("id")
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, TypeError) as exc:
        kinds = sorted({str(p.dtype) for p in parts})
        raise SelectkitDataError(
            f"the inputs' id columns have different types ({', '.join(kinds)}); give every shard "
            f"ids of one type ({exc.__class__.__name__})"
        ) from None
