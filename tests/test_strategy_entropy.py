"""entropy: -sum p ln p, in [0, ln C]; the most uncertain rows first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import entropy as scipy_entropy

from selectkit import Pool, select
from selectkit.strategies.uncertainty import entropy
from tests._al_helpers import digits_proba


def test_matches_scipy_on_real_probabilities(digits):
    p = digits_proba(digits)
    manifest, sel = select(Pool.from_arrays(proba=p), "entropy", 30)
    h = scipy_entropy(p.astype(np.float32).astype(np.float64), axis=1)
    assert sel.indices.tolist() == np.argsort(-h, kind="stable")[:30].tolist()
    assert np.allclose(manifest["score"].to_numpy(), h[sel.indices], rtol=1e-6)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 8)), elements=st.floats(0, 1))
)
def test_bounds_and_zero_probabilities(raw):
    raw[:, 0] += 1e-3  # every row has some mass; other entries may be exactly 0
    p = raw / raw.sum(axis=1, keepdims=True)
    h = entropy(Pool.from_arrays(proba=p), np.arange(p.shape[0]))
    assert np.all(h >= 0) and np.all(h <= np.log(p.shape[1]) + 1e-6)
    one_hot = np.eye(p.shape[1])[: min(3, p.shape[1])]
    assert np.allclose(entropy(Pool.from_arrays(proba=one_hot), np.arange(len(one_hot))), 0)
