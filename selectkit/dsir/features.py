"""DSIR features: lower-cased word/punctuation tokens, their n-grams, hashed into buckets.

Tokens are what nltk's ``WordPunctTokenizer`` yields (the reference package's default): maximal
runs of word characters (``\\w``, Unicode) or of other non-space characters, after lower-casing.
Tokenisation runs in polars (Rust regex) over a whole batch; hashing is vectorised with numpy.

Two hashes:

- ``poly64`` (default): a 64-bit polynomial hash of each token's UTF-8 bytes (the same hash as the
  built-in embedder, ``selectkit.embed.hashing``), finalised by splitmix64; an n-gram's hash chains
  its tokens' hashes. Stable across library versions and platforms; no Python loop per token.
- ``sha256``: ``int(sha256(ngram).hexdigest(), 16) % buckets`` where an n-gram is its tokens joined
  by single spaces, exactly as the reference ``data-selection`` package ('alice' -> 6720 and
  'alice went' -> 114 with 10,000 buckets). It hashes each distinct n-gram of a batch in Python,
  so it is several times slower; use it to reproduce the reference's selections.

Cost per batch: O(total characters) time, O(batch n-grams) memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from selectkit.embed.hashing import _BIGRAM, _Batch, _mix

TOKEN_PATTERN = r"\w+|[^\w\s]+"
HASHES = ("poly64", "sha256")


@dataclass
class Features:
    """Hashed n-grams of one batch: ``doc`` (int64 row in the batch) and ``bucket`` (int64) per
    n-gram occurrence, and ``tokens`` (int64 token count per row)."""

    doc: np.ndarray
    bucket: np.ndarray
    tokens: np.ndarray

    @property
    def n_docs(self) -> int:
        return self.tokens.size


def tokenize(texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """All tokens of ``texts`` in order (one String series) and each text's token count."""
    lists = texts.cast(pl.String).fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)
    counts = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
    return lists.explode().drop_nulls(), counts


def _token_bytes(tokens: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of all tokens back to back, and each token's start offset (plus the end)."""
    arr = tokens.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    raw = raw[offsets[0] : offsets[-1]]
    return raw, offsets - offsets[0]


def _poly_hashes(tokens: pl.Series) -> np.ndarray:
    """64-bit hash of every token (vectorised over the batch's bytes)."""
    raw, offsets = _token_bytes(tokens)
    if raw.size == 0:
        return np.zeros(offsets.size - 1, dtype=np.uint64)
    span = _Batch(data=raw, doc=np.empty(0, np.int64), n_docs=0)
    starts, stops = offsets[:-1], offsets[1:]
    out = np.zeros(starts.size, dtype=np.uint64)
    ok = stops > starts  # an empty token cannot come out of the regex, but stay safe
    out[ok] = span.span_hash(starts[ok], stops[ok])
    return _mix(out)


_SHA_CACHE: dict[int, dict[str, int]] = {}
_SHA_CACHE_MAX = 1 << 18  # n-grams per process (~40 MiB); cleared when full


def _sha256_bucket(text: str, buckets: int) -> int:
    # the same integer as the reference's int(hexdigest, 16), without the hex round trip
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big") % buckets


def _sha256_buckets(strings: pl.Series, buckets: int) -> np.ndarray:
    """Reference-compatible buckets, hashing each distinct string once per process (cached)."""
    cache = _SHA_CACHE.setdefault(buckets, {})
    if len(cache) > _SHA_CACHE_MAX:
        cache.clear()
    uniq = strings.unique()
    get = cache.get
    ids = []
    for text in uniq:
        bucket = get(text)
        if bucket is None:
            bucket = cache[text] = _sha256_bucket(text, buckets)
        ids.append(bucket)
    mapped = strings.replace_strict(uniq, pl.Series(ids, dtype=pl.Int64), return_dtype=pl.Int64)
    return mapped.to_numpy()


def hash_features(texts: pl.Series, *, ngrams: int, buckets: int, hash_name: str) -> Features:
    """Tokenise ``texts`` and hash their 1..``ngrams``-grams into ``buckets``; see the module doc."""
    tokens, counts = tokenize(texts)
    doc = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    docs, bucket_parts = [doc], []
    if hash_name == "sha256":
        bucket_parts.append(_sha256_buckets(tokens, buckets))
        joined = tokens
        for n in range(2, ngrams + 1):
            same = doc[: doc.size - n + 1] == doc[n - 1 :]
            joined = _join_next(joined, tokens, n)
            keep = pl.Series(same)
            docs.append(doc[: doc.size - n + 1][same])
            bucket_parts.append(_sha256_buckets(joined.filter(keep), buckets))
    else:
        uni = _poly_hashes(tokens)
        bucket_parts.append((uni % np.uint64(buckets)).astype(np.int64))
        chain = uni
        with np.errstate(over="ignore"):
            for n in range(2, ngrams + 1):
                chain = _mix(chain[:-1] * _BIGRAM + uni[n - 1 :])
                same = doc[: doc.size - n + 1] == doc[n - 1 :]
                docs.append(doc[: doc.size - n + 1][same])
                bucket_parts.append((chain[same] % np.uint64(buckets)).astype(np.int64))
    return Features(doc=np.concatenate(docs), bucket=np.concatenate(bucket_parts), tokens=counts)


def _join_next(prev: pl.Series, tokens: pl.Series, n: int) -> pl.Series:
    """n-gram strings at every start position, from the (n-1)-grams: prev[i] + ' ' + token[i+n-1]."""
    m = tokens.len() - n + 1
    return prev.head(m) + " " + tokens.slice(n - 1, m)
