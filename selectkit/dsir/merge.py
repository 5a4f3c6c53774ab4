"""The driver's exact merge of the shards' pass-2 candidates, in shard order.

Top lists: every shard's top list is offered to a driver buffer of the same size; its rows become
driver handles ``shard index << 40 | row`` that sort as global row numbers do, so the tie-breaks
(key, then seeded id hash, then row) are those of one global ranking. Reservoirs (with
replacement): slot by slot Gumbel-max over the shards' log-masses (``Reservoir.merge``), noise
seeded from (seed, target, shard key). The side store keeps the ids and n-gram buckets of rows
still in some list. Memory: O(budget + the candidates of the shards in flight).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from selectkit.dsir.kernels import SelectSpec, ShardCandidates, live_rows
from selectkit.dsir.resample import Reservoir, TopKBuffer
from selectkit.dsir.sources import CHUNK_ROWS
from selectkit.dsir.store import CandidateStore, global_handles, split_handles
from selectkit.rng import derive_rng


class CandidateMerge:
    """Driver-side top lists, reservoirs and side store over the shards' candidates."""

    def __init__(self, spec: SelectSpec, seed: int) -> None:
        self.seed = seed
        self.buffers = None
        self.reservoirs = None
        if spec.buffers is not None:
            self.buffers = [TopKBuffer(count=c, need_tokens=t) for c, t in spec.buffers]
        else:
            self.reservoirs = [Reservoir(q) if q > 0 else None for q in spec.draws]
        self.baseline = TopKBuffer(count=spec.baseline[0], need_tokens=spec.baseline[1])
        self.store = CandidateStore()
        self.pool_rows = 0
        self.truncated = 0
        self.has_ids: list[bool | None] = []
        self.sources: list[dict[str, Any]] = []

    def add(self, part: ShardCandidates) -> None:
        """Fold in one shard's candidates (shards arrive in shard order)."""
        self.pool_rows += part.pool_rows
        self.truncated += part.truncated
        self.has_ids.append(part.has_ids)
        if part.source is not None:
            self.sources.append(part.source)
        if self.buffers is not None:
            for buf, (keys, rows, tokens, scores, ties) in zip(
                self.buffers, part.tops, strict=True
            ):
                buf.add(keys, global_handles(part.index, rows), tokens, scores, ties)
        else:
            for j, (res, slots) in enumerate(zip(self.reservoirs, part.reservoirs, strict=True)):
                if res is None or slots is None:
                    continue
                rows = slots[0]
                handles = np.where(rows >= 0, global_handles(part.index, rows), -1)
                gumbels = derive_rng(self.seed, "dsir", "merge", j, part.key).gumbel(size=res.k)
                res.merge(slots, handles, gumbels)
        keys, rows, tokens, scores, ties = part.baseline
        self.baseline.add(keys, global_handles(part.index, rows), tokens, scores, ties)
        self.store.add(global_handles(part.index, part.rows), part.ptr, part.buckets, part.ids)
        if len(self.store) > 4 * CHUNK_ROWS + 2 * self._live_size():
            self.store.compact(live_rows(self.buffers, self.reservoirs, self.baseline))

    def _live_size(self) -> int:
        size = self.baseline.rows.size + self.baseline._pending_rows
        if self.buffers is not None:
            return size + sum(b.rows.size + b._pending_rows for b in self.buffers)
        return size + sum(r.k for r in self.reservoirs if r is not None)

    def global_rows(self, handles: np.ndarray, shards: list) -> np.ndarray:
        """Global row numbers (input order) of driver handles; -1 where a shard's first row is
        unknown (inputs with ids, not counted: their ids name the rows)."""
        index, local = split_handles(handles)
        row0 = np.array([-1 if s.row0 is None else s.row0 for s in shards], dtype=np.int64)
        first = row0[index] if handles.size else np.empty(0, np.int64)
        return np.where(first >= 0, first + local, -1)
