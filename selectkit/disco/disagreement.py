"""How much models disagree on each sample: PDS and JSD over a (models x samples x classes) array.

* PDS (predictive diversity score): PDS(x) = sum over classes c of max over models m of p_m(c|x).
  It is 1 when every model gives the same distribution and at most min(M, C).
* JSD (generalised Jensen-Shannon divergence): (1/M) sum_m KL(p_m || p_bar) with p_bar the mean
  over models, computed as H(p_bar) - mean_m H(p_m) (the mutual information between the model
  index and the prediction). 0 when all models agree, at most log(min(M, C)) nats.

Both are vectorised over models and classes and chunked over samples, so the extra memory is one
chunk of float64 whatever N is; cost O(M N C).
"""

from __future__ import annotations

import numpy as np

from selectkit.errors import SelectkitUsageError

# float64 temporaries of at most about this many bytes per chunk
CHUNK_BYTES = 16 << 20
METHODS = ("pds", "jsd")


def _chunk(m: int, c: int) -> int:
    return max(1, CHUNK_BYTES // (8 * max(1, m) * max(1, c)))


def pds(proba: np.ndarray) -> np.ndarray:
    """PDS of every sample of ``proba`` (M, N, C); returns (N,) float64. O(M N C) time."""
    m, n, c = proba.shape
    out = np.empty(n, dtype=np.float64)
    step = _chunk(m, c)
    for start in range(0, n, step):
        block = proba[:, start : start + step, :]
        # max over models is exact in float32; sum the C maxima in float64
        out[start : start + block.shape[1]] = block.max(axis=0).sum(axis=1, dtype=np.float64)
    return out


def _entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """Shannon entropy in nats along ``axis``, with 0 log 0 = 0 (one temporary of p's size)."""
    plogp = np.zeros_like(p)
    np.log(p, out=plogp, where=p > 0)
    plogp *= p
    return -plogp.sum(axis=axis)


def jsd(proba: np.ndarray) -> np.ndarray:
    """Generalised JSD of every sample of ``proba`` (M, N, C) in nats; (N,) float64, >= 0.

    O(M N C) time with one log per entry; float64 per chunk.
    """
    m, n, c = proba.shape
    out = np.empty(n, dtype=np.float64)
    step = _chunk(m, c)
    for start in range(0, n, step):
        block = proba[:, start : start + step, :].astype(np.float64)
        mean = block.mean(axis=0)
        value = _entropy(mean, axis=1) - _entropy(block, axis=2).mean(axis=0)
        # concavity makes it >= 0; rounding can leave -1e-16 where all models agree
        out[start : start + block.shape[1]] = np.maximum(value, 0.0)
    return out


def disagreement(proba: np.ndarray, method: str = "pds") -> np.ndarray:
    """``pds`` or ``jsd`` of every sample; (N,) float64, higher = more disagreement."""
    if method == "pds":
        return pds(proba)
    if method == "jsd":
        return jsd(proba)
    raise SelectkitUsageError(f"unknown disagreement {method!r}; use one of {', '.join(METHODS)}")
