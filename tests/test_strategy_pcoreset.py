"""pcoreset: greedy k-center on probability vectors (Kang et al. 2025)."""

from __future__ import annotations

import numpy as np

from selectkit import Pool, select
from tests._al_helpers import digits_proba


def test_matches_brute_force_k_center_in_probability_space(digits):
    p = digits_proba(digits)[:500]
    labels = np.where(np.arange(500) < 10, 0, None).astype(object)
    _, sel = select(Pool.from_arrays(proba=p, labels=labels), "pcoreset", 15, seed=0)
    q = p.astype(np.float32).astype(np.float64)
    d = ((q[:, None, :] - q[None, :10, :]) ** 2).sum(-1).min(1)
    d[:10] = -1
    picks = []
    for _ in range(15):
        best = int(np.argmax(d))
        picks.append(best)
        d = np.minimum(d, ((q - q[best]) ** 2).sum(1))
        d[picks] = -1
    assert sel.indices.tolist() == picks


def test_spreads_over_predicted_classes(digits):
    p = digits_proba(digits)
    _, sel = select(Pool.from_arrays(proba=p), "pcoreset", 10, seed=0)
    assert np.unique(p[sel.indices].argmax(1)).size >= 8
