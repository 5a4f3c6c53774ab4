"""Uncertainty sampling from a model's class probabilities: least confidence, margin, entropy,
and BALD from Monte-Carlo passes or ensemble members.

Each is a scored strategy (see ``scored``): the score is the acquisition score, higher = picked
first, so the manifest's ``score`` column reads the same way for all of them:

- ``least-confidence``: 1 - max_c p_c
- ``margin``: 1 - (p_(1) - p_(2)), one minus the gap between the two most likely classes
- ``entropy``: -sum_c p_c ln p_c (nats)
- ``bald``: H(mean_t p_t) - mean_t H(p_t), the mutual information between the label and the
  model (Houlsby et al. 2011; Gal et al. 2017), from ``proba_mc`` (n x T passes x C classes)

Scores are computed in float64 over chunks of rows, so memory stays O(chunk C) (O(chunk T C)
for BALD) beyond the probability table itself. Each row's score depends on its own
probabilities alone (``row_local=True``), so on an engine (``select --engine ray``) every shard
of the input scores its rows and the shards' top-k are merged on the driver
(``selectkit.strategies.sharded``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selectkit.pool import Pool
from selectkit.strategies.scored import register_scored_strategy

CHUNK_ROWS = 1 << 15


def _chunked(table: np.ndarray, rows: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]):
    out = np.empty(rows.size, dtype=np.float64)
    for start in range(0, rows.size, CHUNK_ROWS):
        block = np.asarray(table[rows[start : start + CHUNK_ROWS]], dtype=np.float64)
        out[start : start + block.shape[0]] = fn(block)
    return out


def _entropy(p: np.ndarray) -> np.ndarray:
    """-sum p ln p over the last axis, with 0 ln 0 = 0 (and tiny negatives from rounding as 0)."""
    q = np.clip(p, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q), 0.0)
    return -terms.sum(axis=-1)


def _margin(p: np.ndarray) -> np.ndarray:
    if p.shape[1] == 1:  # one class: the runner-up has probability 0
        return 1.0 - p[:, 0]
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def _bald(mc: np.ndarray) -> np.ndarray:
    return np.maximum(_entropy(mc.mean(axis=1)) - _entropy(mc).mean(axis=1), 0.0)


@register_scored_strategy(
    "least-confidence",
    summary="Uncertainty sampling: rows whose most likely class is least likely (1 - max p).",
    needs=("proba",),
    cost="O(n*C) time; O(chunk*C) extra memory.",
    row_local=True,
)
def least_confidence(pool: Pool, rows: np.ndarray) -> np.ndarray:
    """1 - max_c p_c per row of ``rows``; O(|rows| C)."""
    return _chunked(pool.proba, rows, lambda p: 1.0 - p.max(axis=1))


@register_scored_strategy(
    "margin",
    summary="Margin sampling: rows whose two most likely classes are closest; score = 1 - margin.",
    needs=("proba",),
    cost="O(n*C) time; O(chunk*C) extra memory.",
    row_local=True,
)
def margin(pool: Pool, rows: np.ndarray) -> np.ndarray:
    """1 - (p_(1) - p_(2)) per row of ``rows``; O(|rows| C)."""
    return _chunked(pool.proba, rows, _margin)


@register_scored_strategy(
    "entropy",
    summary="Entropy sampling: rows whose predicted class distribution has the highest entropy.",
    needs=("proba",),
    cost="O(n*C) time; O(chunk*C) extra memory.",
    row_local=True,
)
def entropy(pool: Pool, rows: np.ndarray) -> np.ndarray:
    """-sum_c p_c ln p_c per row of ``rows``; O(|rows| C)."""
    return _chunked(pool.proba, rows, _entropy)


@register_scored_strategy(
    "bald",
    summary="BALD: mutual information between label and model, from Monte-Carlo dropout passes "
    "or ensemble members (proba_mc).",
    needs=("proba_mc",),
    cost="O(n*T*C) time; O(chunk*T*C) extra memory.",
    row_local=True,
)
def bald(pool: Pool, rows: np.ndarray) -> np.ndarray:
    """H(mean_t p_t) - mean_t H(p_t) per row of ``rows``, clipped at 0; O(|rows| T C)."""
    return _chunked(pool.proba_mc, rows, _bald)
