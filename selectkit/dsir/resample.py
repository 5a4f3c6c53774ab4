"""Exact streaming selection from per-document log-weights.

- ``TopKBuffer``: the top documents by key (log-weight, plus Gumbel noise for sampling without
  replacement), kept over a stream of batches. Ties are broken by a seeded hash of the document's
  id (then by global row number, for equal hashes), so merging per-shard top lists gives exactly
  the global top list whatever the shards and their order.
  The budget is a document count or a token total (the shortest prefix of the ranking whose
  tokens reach it). Memory O(budget + one batch).
- ``Reservoir``: k draws *with* replacement, each document drawn with probability proportional to
  exp(log-weight), over a stream: k independent weighted reservoirs of size one, updated per batch
  (a batch holding mass M of the running total Z takes Binomial(k, M / Z) of the slots). Memory O(k).
  Its draws are sequential over the batches, so they depend on the batches' order (documented).
  Reservoirs of several shards merge exactly (``merge``): slot by slot, a shard's draw wins with
  probability (its mass) / (the total mass), by Gumbel-max over the shards' log-masses with noise
  seeded per shard key, so the merge does not depend on the order the shards arrive in.
"""

from __future__ import annotations

import numpy as np

_MIN_PRUNE = 8192


def gumbel_keys(logw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """logw + Gumbel(0, 1) noise: the top-k of these keys is a weighted sample without replacement
    (probabilities proportional to exp(logw)); O(n)."""
    return logw + rng.gumbel(size=logw.shape)


def prefix_length(tokens_sorted: np.ndarray, count: int | None, need_tokens: int | None) -> int:
    """How many ranked documents a budget takes: ``count`` of them, or the shortest prefix whose
    token total reaches ``need_tokens`` (all when it is never reached)."""
    if count is not None:
        return min(count, tokens_sorted.size)
    total = np.cumsum(tokens_sorted)
    return min(int(np.searchsorted(total, need_tokens, side="left")) + 1, tokens_sorted.size)


class TopKBuffer:
    """The best documents seen so far for one ranking; see the module doc.

    ``count`` (documents) or ``need_tokens`` (tokens) sizes the kept prefix; both None keeps all.
    ``payload`` per row is an int64 (the caller's handle, e.g. its row in a side store).
    """

    def __init__(self, count: int | None = None, need_tokens: int | None = None) -> None:
        self.count = count
        self.need_tokens = need_tokens
        self.keys = np.empty(0, np.float64)
        self.rows = np.empty(0, np.int64)
        self.tokens = np.empty(0, np.int64)
        self.scores = np.empty(0, np.float64)
        self.ties = np.empty(0, np.uint64)
        self._pending: list[tuple[np.ndarray, ...]] = []
        self._pending_rows = 0
        self.threshold = -np.inf

    def add(
        self,
        keys: np.ndarray,
        rows: np.ndarray,
        tokens: np.ndarray,
        scores: np.ndarray,
        ties: np.ndarray | None = None,
    ):
        """Offer documents (any order); keys below ``threshold`` may be dropped by the caller.
        ``ties``: uint64 per document ordering equal keys (smaller first; default all equal, so
        the row number decides)."""
        if keys.size == 0:
            return
        ties = np.zeros(keys.size, np.uint64) if ties is None else ties
        self._pending.append((keys, rows, tokens, scores, ties))
        self._pending_rows += keys.size
        if self._pending_rows >= max(self.keys.size, _MIN_PRUNE):
            self.prune()

    def prune(self) -> None:
        """Keep only the prefix the budget can still use; update ``threshold``."""
        if not self._pending:
            return
        parts = [(self.keys, self.rows, self.tokens, self.scores, self.ties), *self._pending]
        keys, rows, tokens, scores, ties = (np.concatenate(p) for p in zip(*parts, strict=True))
        self._pending, self._pending_rows = [], 0
        order = np.lexsort((rows, ties, -keys))
        tokens = tokens[order]
        if self.count is None and self.need_tokens is None:
            keep = order.size
        else:
            keep = prefix_length(tokens, self.count, self.need_tokens)
        order = order[:keep]
        self.keys, self.rows, self.scores = keys[order], rows[order], scores[order]
        self.ties = ties[order]
        self.tokens = tokens[:keep]
        full = (self.count is not None and keep >= self.count) or (
            self.need_tokens is not None and self.tokens.sum() >= self.need_tokens
        )
        self.threshold = float(self.keys[-1]) if full and keep else -np.inf

    def ranked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, rows, tokens, scores) of every kept document, best first."""
        self.prune()
        return self.keys, self.rows, self.tokens, self.scores

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(keys, rows, tokens, scores, ties) of every kept document, best first: what ``add``
        takes, so one buffer's top list can be offered to another (a per-shard top-k merged on
        the driver)."""
        self.prune()
        return self.keys, self.rows, self.tokens, self.scores, self.ties

    def live_rows(self) -> np.ndarray:
        """Rows still in the top list (after a prune)."""
        self.prune()
        return self.rows


class Reservoir:
    """k weighted draws with replacement over a stream; see the module doc."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.slot_row = np.full(k, -1, dtype=np.int64)
        self.slot_score = np.zeros(k, dtype=np.float64)
        self.slot_tokens = np.zeros(k, dtype=np.int64)
        self.log_total = -np.inf
        self._slot_key = np.full(k, -np.inf)  # merge's running Gumbel-max per slot

    def add(
        self,
        logw: np.ndarray,
        rows: np.ndarray,
        tokens: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Offer one batch; returns the rows it placed into slots (for the caller's side store)."""
        if logw.size == 0:
            return np.empty(0, np.int64)
        log_mass = float(np.logaddexp.reduce(logw))
        new_total = float(np.logaddexp(self.log_total, log_mass))
        share = float(np.exp(log_mass - new_total))
        self.log_total = new_total
        n = self.k if share >= 1.0 else int(rng.binomial(self.k, share))
        if n == 0:
            return np.empty(0, np.int64)
        slots = rng.choice(self.k, size=n, replace=False) if n < self.k else np.arange(self.k)
        probs = np.exp(logw - log_mass)
        picks = rng.choice(logw.size, size=n, p=probs / probs.sum())
        self.slot_row[slots] = rows[picks]
        self.slot_score[slots] = logw[picks]
        self.slot_tokens[slots] = tokens[picks]
        return rows[picks]

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, draws, tokens, scores) of the distinct drawn documents: most drawn first, then
        by log-weight, then by row."""
        filled = self.slot_row >= 0
        rows, first, draws = np.unique(self.slot_row[filled], return_index=True, return_counts=True)
        scores = self.slot_score[filled][first]
        tokens = self.slot_tokens[filled][first]
        order = np.lexsort((rows, -scores, -draws))
        return rows[order], draws[order], tokens[order], scores[order]

    def live_rows(self) -> np.ndarray:
        return np.unique(self.slot_row[self.slot_row >= 0])

    def slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(row, score, tokens per slot (row -1 = empty), log of the mass seen): what ``merge``
        takes from another reservoir."""
        return self.slot_row, self.slot_score, self.slot_tokens, self.log_total

    def merge(
        self,
        slots: tuple[np.ndarray, np.ndarray, np.ndarray, float],
        rows: np.ndarray,
        gumbels: np.ndarray,
    ) -> None:
        """Fold in a shard's reservoir (``slots``, of the same size, over other documents; its slot
        rows renumbered as ``rows``) into this one, which only merges (it starts empty). Slot s
        keeps the draw with the larger log-mass + ``gumbels[s]`` (k Gumbel(0, 1) variates seeded
        for that shard): the shard's draw is kept with probability its mass / the total mass, so
        the merged slots are an exact draw over the union, whatever the order of merging. O(k)."""
        _row, score, tokens, log_mass = slots
        if not np.isfinite(log_mass):  # the shard had no eligible document
            return
        key = log_mass + gumbels
        win = key > self._slot_key
        self._slot_key = np.where(win, key, self._slot_key)
        self.slot_row = np.where(win, rows, self.slot_row)
        self.slot_score = np.where(win, score, self.slot_score)
        self.slot_tokens = np.where(win, tokens, self.slot_tokens)
        self.log_total = float(np.logaddexp(self.log_total, log_mass))
