"""Per-batch DSIR work, run in worker processes: count n-grams (fit) and weigh documents.

Both functions take only plain arrays and settings, so they pickle cheaply and give the same
result in any process. Cost per batch: O(characters) for the features plus O(n-grams x targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from selectkit.dsir.features import hash_features
from selectkit.dsir.resample import gumbel_keys
from selectkit.rng import derive_rng


@dataclass(frozen=True)
class FeatureConfig:
    """How documents become n-gram bucket counts (recorded in provenance and saved models)."""

    ngrams: int = 2
    buckets: int = 10_000
    hash_name: str = "poly64"


def fit_chunk(texts: pl.Series, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(n-gram counts per bucket (B,) int64, tokens per document int64) of one batch."""
    f = hash_features(texts, ngrams=cfg.ngrams, buckets=cfg.buckets, hash_name=cfg.hash_name)
    return np.bincount(f.bucket, minlength=cfg.buckets), f.tokens


@dataclass
class Weighed:
    """The documents of one batch that may still be selected, with what selection needs.

    ``rows``: their positions in the batch; ``logw`` and ``keys``: (J, n) log-importance weights
    and ranking keys per target (keys are -inf where a row is below that target's threshold);
    ``tokens``; ``feat_ptr``/``feat_bucket``: their n-gram buckets as CSR rows (for the KL of the
    final selection); ``batch_rows`` and ``batch_tokens``: the whole batch's size and token total.
    """

    rows: np.ndarray
    logw: np.ndarray
    keys: np.ndarray
    tokens: np.ndarray
    feat_ptr: np.ndarray
    feat_bucket: np.ndarray
    batch_rows: int


def weigh_chunk(
    texts: pl.Series,
    cfg: FeatureConfig,
    log_ratio: np.ndarray,
    min_tokens: int,
    noise: str,
    seed: int,
    shard: tuple[int, int],
    thresholds: np.ndarray,
    baseline: bool = True,
) -> Weighed:
    """Weigh one batch against every target and keep the rows that can still be picked.

    ``noise``: ``gumbel`` adds Gumbel(0, 1) noise per target drawn from ``derive_rng(seed, 'dsir',
    'noise', target, file, batch)`` (``shard`` = (file, batch)), so keys never depend on which
    process runs the batch; ``none`` ranks by the log-weight itself. Rows with fewer than
    ``min_tokens`` tokens, or whose key is below the caller's current threshold for every target,
    are dropped here (they cannot enter the top list); ``thresholds`` of -inf keep everything.
    With ``baseline`` a last row ranks by noise alone (a uniform random sample of the same size,
    the reference point of the KL reduction); ``thresholds`` then has J + 1 entries.
    """
    f = hash_features(texts, ngrams=cfg.ngrams, buckets=cfg.buckets, hash_name=cfg.hash_name)
    n = f.n_docs
    logw = np.stack(
        [np.bincount(f.doc, weights=w[f.bucket], minlength=n) for w in log_ratio]
    ).reshape(log_ratio.shape[0], n)
    if baseline:
        # a last ranking with zero weights and noise: a uniform sample, for comparison
        logw = np.concatenate((logw, np.zeros((1, n))))
    keys = logw.copy()
    for j in range(keys.shape[0]):
        if noise == "gumbel" or (baseline and j == keys.shape[0] - 1):
            keys[j] = gumbel_keys(logw[j], derive_rng(seed, "dsir", "noise", j, *shard))
    eligible = f.tokens >= min_tokens
    alive = (keys >= thresholds[:, None]) & eligible[None, :]
    keys[~alive] = -np.inf
    rows = np.flatnonzero(alive.any(axis=0))
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    sel = keep[f.doc]
    doc, bucket = f.doc[sel], f.bucket[sel]
    order = np.argsort(doc, kind="stable")
    per_doc = np.bincount(doc, minlength=n)[rows]
    dtype = np.uint16 if cfg.buckets <= 1 << 16 else np.uint32
    return Weighed(
        rows=rows,
        logw=logw[:, rows],
        keys=keys[:, rows],
        tokens=f.tokens[rows],
        feat_ptr=np.concatenate(([0], np.cumsum(per_doc))).astype(np.int64),
        feat_bucket=bucket[order].astype(dtype),
        batch_rows=n,
    )
