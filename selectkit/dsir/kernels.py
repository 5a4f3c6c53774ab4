"""DSIR's two passes as shard kernels: module-level functions of (shard, spec), run by any engine.

- ``count_shard`` (pass 1): the shard's integer n-gram histogram and token statistics; the
  driver adds them up in shard order (integers: exact).
- ``select_shard`` (pass 2): weighs the shard's documents against every target and keeps its own
  top lists (Gumbel or plain keys; a count or a token budget with the driver's slack; one list per
  target quota, plus the uniform baseline) or, with replacement, its own reservoirs seeded from
  (seed, target, shard key). It returns only those candidates, with their ids and n-gram buckets
  (for the KL metrics). The global top list is a subset of the union of the shards' top lists,
  so the driver's merge is exact.

Each kernel holds one shard: memory O(budget + one batch), whatever the corpus size. A
document's noise derives from (seed, target, its id) and never from the shard's position or the
worker that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from selectkit.dsir.resample import Reservoir, TopKBuffer
from selectkit.dsir.sources import CHUNK_ROWS, Reading
from selectkit.dsir.store import CandidateStore, csr_take
from selectkit.dsir.weigh import FeatureConfig, fit_chunk, weigh_chunk
from selectkit.errors import SelectkitError
from selectkit.rng import derive_rng


@dataclass(frozen=True)
class CountSpec:
    """What pass 1 computes; ``ngrams=False`` only counts rows (and sees whether ids exist)."""

    features: FeatureConfig
    reading: Reading
    min_tokens: int = 0
    ngrams: bool = True


@dataclass
class ShardCounts:
    """Pass 1's result for one shard (``counts`` None when only rows were counted)."""

    counts: np.ndarray | None
    rows: int
    eligible: int
    eligible_tokens: int
    max_tokens: int
    has_ids: bool | None  # None: the shard has no rows
    truncated: int


def count_shard(shard: Any, spec: CountSpec) -> ShardCounts:
    """Pass 1 over one shard: n-gram counts per bucket (B,) int64 and token statistics of the
    eligible documents (>= ``min_tokens`` tokens). O(characters) time, O(B + batch) memory."""
    reader = shard.open(spec.reading)
    counts = np.zeros(spec.features.buckets, dtype=np.int64) if spec.ngrams else None
    rows = eligible = eligible_tokens = max_tokens = 0
    has_ids = None
    for chunk in reader.chunks():
        has_ids = chunk.ids is not None
        rows += chunk.texts.len()
        if not spec.ngrams:
            continue
        c, toks = fit_chunk(chunk.texts, spec.features)
        counts += c
        ok = toks >= spec.min_tokens
        eligible += int(ok.sum())
        eligible_tokens += int(toks[ok].sum())
        if ok.any():
            max_tokens = max(max_tokens, int(toks[ok].max()))
    return ShardCounts(
        counts, rows, eligible, eligible_tokens, max_tokens, has_ids, reader.cap.truncated
    )


@dataclass(frozen=True)
class SelectSpec:
    """What pass 2 computes, the same for every shard.

    ``buffers``: (count, need_tokens) per target's top list (None without them: with
    replacement); ``baseline``: the uniform sample's; ``draws``: the reservoir size per target
    (with replacement, else None). ``noise``: ``gumbel`` or ``none``.
    """

    features: FeatureConfig
    reading: Reading
    log_ratio: np.ndarray
    min_tokens: int
    noise: str
    seed: int
    buffers: tuple[tuple[int | None, int | None], ...] | None
    baseline: tuple[int | None, int | None]
    draws: tuple[int, ...] | None


@dataclass
class ShardCandidates:
    """Pass 2's result for one shard: its rows (within the shard) that may still be selected.

    ``tops``: per target the top list's (keys, rows, tokens, scores, ties), or None with
    replacement; ``reservoirs``: per target its slots (``Reservoir.slots``) or None;
    ``baseline``: the uniform sample's top list; ``rows``/``ptr``/``buckets``/``ids``: the
    candidates' n-gram buckets (CSR) and ids; ``pool_rows``: the shard's documents.
    """

    index: int
    key: str
    tops: list[tuple[np.ndarray, ...]] | None
    reservoirs: list[tuple[np.ndarray, np.ndarray, np.ndarray, float] | None] | None
    baseline: tuple[np.ndarray, ...]
    rows: np.ndarray
    ptr: np.ndarray
    buckets: np.ndarray
    ids: pl.Series | None
    pool_rows: int
    has_ids: bool | None
    truncated: int
    source: dict[str, Any] | None


def _buffer(size: tuple[int | None, int | None]) -> TopKBuffer:
    return TopKBuffer(count=size[0], need_tokens=size[1])


def select_shard(shard: Any, spec: SelectSpec) -> ShardCandidates:
    """Pass 2 over one shard; see the module doc. O(characters + n-grams x targets) time,
    O(budget + one batch) memory."""
    n_targets = spec.log_ratio.shape[0]
    buffers = None if spec.buffers is None else [_buffer(s) for s in spec.buffers]
    reservoirs = None
    rngs: list[np.random.Generator | None] = []
    if spec.draws is not None:
        reservoirs = [Reservoir(int(q)) if q > 0 else None for q in spec.draws]
        # one stream per target and shard, drawn batch by batch: seeded by the shard's key
        rngs = [derive_rng(spec.seed, "dsir", "draws", j, shard.key) for j in range(n_targets)]
    baseline = _buffer(spec.baseline)
    store = CandidateStore()
    reader = shard.open(spec.reading)
    pool_rows = 0
    has_ids = None
    for chunk in reader.chunks():
        has_ids = chunk.ids is not None
        n = chunk.texts.len()
        if chunk.ids is not None:
            doc_ids: object = chunk.ids
        elif shard.row0 is None:  # the driver counts id-less shards first: cannot happen
            raise SelectkitError(f"{shard.where}: its first row number is unknown")
        else:  # without ids a document's id is its global row number (its manifest id)
            doc_ids = np.arange(shard.row0 + chunk.row0, shard.row0 + chunk.row0 + n)
        ranked = [b.threshold for b in buffers] if buffers is not None else [-np.inf] * n_targets
        thresholds = np.array([*ranked, baseline.threshold])
        res = weigh_chunk(
            chunk.texts,
            spec.features,
            spec.log_ratio,
            spec.min_tokens,
            spec.noise,
            spec.seed,
            doc_ids,
            thresholds,
        )
        pool_rows += res.batch_rows
        rows = chunk.row0 + res.rows
        placed = []
        for j in range(n_targets):
            ok = np.isfinite(res.keys[j])
            if buffers is not None:
                buffers[j].add(
                    res.keys[j][ok], rows[ok], res.tokens[ok], res.logw[j][ok], res.ties[ok]
                )
            elif reservoirs[j] is not None:
                placed.append(reservoirs[j].add(res.logw[j][ok], rows[ok], res.tokens[ok], rngs[j]))
        ok = np.isfinite(res.keys[-1])
        baseline.add(res.keys[-1][ok], rows[ok], res.tokens[ok], res.logw[-1][ok], res.ties[ok])
        # keep ids and n-grams only of rows that can still end up selected
        keep = res.keys[-1] >= baseline.threshold
        if buffers is not None:
            for j, b in enumerate(buffers):
                keep |= res.keys[j] >= b.threshold
        elif placed:
            keep |= np.isin(rows, np.concatenate(placed))
        keep &= np.isfinite(res.keys).any(axis=0)
        if keep.any():
            at = np.flatnonzero(keep)
            ids = None if chunk.ids is None else chunk.ids.gather(res.rows[at])
            ptr = res.feat_ptr
            lengths = ptr[at + 1] - ptr[at]
            sub_ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
            _, pos = csr_take(ptr, at)
            store.add(rows[at], sub_ptr, res.feat_bucket[pos], ids)
        if len(store) > 4 * CHUNK_ROWS + 2 * _live_size(buffers, reservoirs, baseline):
            store.compact(live_rows(buffers, reservoirs, baseline))
    live = live_rows(buffers, reservoirs, baseline)
    rows, ptr, buckets, ids = store.take(live)
    return ShardCandidates(
        index=shard.index,
        key=shard.key,
        tops=None if buffers is None else [b.entries() for b in buffers],
        reservoirs=None
        if reservoirs is None
        else [None if r is None else r.slots() for r in reservoirs],
        baseline=baseline.entries(),
        rows=rows,
        ptr=ptr,
        buckets=buckets,
        ids=ids,
        pool_rows=pool_rows,
        has_ids=has_ids,
        truncated=reader.cap.truncated,
        source=reader.record(),
    )


def live_rows(buffers, reservoirs, baseline: TopKBuffer) -> np.ndarray:
    """Rows still in any top list or reservoir slot (sorted, unique)."""
    parts = [baseline.live_rows()]
    if buffers is not None:
        parts.extend(b.live_rows() for b in buffers)
    else:
        parts.extend(r.live_rows() for r in reservoirs if r is not None)
    return np.unique(np.concatenate(parts))


def _live_size(buffers, reservoirs, baseline: TopKBuffer) -> int:
    size = baseline.rows.size + baseline._pending_rows
    if buffers is not None:
        return size + sum(b.rows.size + b._pending_rows for b in buffers)
    return size + sum(r.k for r in reservoirs if r is not None)


__all__ = [
    "CountSpec",
    "SelectSpec",
    "ShardCandidates",
    "ShardCounts",
    "count_shard",
    "select_shard",
]
