"""Per-batch DSIR work, run in worker processes: count n-grams (fit) and weigh documents.

Both functions take only plain arrays and settings, so they pickle cheaply and give the same
result in any process. Cost per batch: O(characters) for the features plus O(n-grams x targets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from selectkit.dsir.features import hash_features
from selectkit.rng import derive_salt, id_gumbels, id_hashes


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
    ``tokens``; ``ties``: uint64 seeded hashes of their ids, which break ties of the keys (so a
    tie goes the same way whatever the shard order); ``feat_ptr``/``feat_bucket``: their n-gram
    buckets as CSR rows (for the KL of the final selection); ``batch_rows``: the batch's size.
    """

    rows: np.ndarray
    logw: np.ndarray
    keys: np.ndarray
    tokens: np.ndarray
    ties: np.ndarray
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
    ids: pl.Series | np.ndarray,
    thresholds: np.ndarray,
    baseline: bool = True,
) -> Weighed:
    """Weigh one batch against every target and keep the rows that can still be picked.

    ``ids``: each document's id (the input's ids, or its global row number when there are none).
    ``noise``: ``gumbel`` adds Gumbel(0, 1) noise per target and document derived from (``seed``,
    target, document id) by hashing (``selectkit.rng.id_gumbels``), so a document's key depends
    neither on the process that runs its batch nor on where its shard or batch falls in the
    input; ``none`` ranks by the log-weight itself. Rows with fewer than
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
            keys[j] += id_gumbels(ids, derive_salt(seed, "dsir", "noise", j))
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
        ties=id_hashes(ids, derive_salt(seed, "dsir", "ties"))[rows],
        feat_ptr=np.concatenate(([0], np.cumsum(per_doc))).astype(np.int64),
        feat_bucket=bucket[order].astype(dtype),
        batch_rows=n,
    )
