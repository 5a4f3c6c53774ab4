"""margin: score = 1 - (p1 - p2), so the smallest margins come first; ties broken by id."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selectkit import Pool, select
from tests._al_helpers import digits_proba


def test_smallest_margins_first(digits):
    p = digits_proba(digits)
    manifest, sel = select(Pool.from_arrays(proba=p), "margin", 40)
    s = np.sort(p, axis=1)
    gap = s[:, -1] - s[:, -2]
    assert sel.indices.tolist() == np.argsort(gap, kind="stable")[:40].tolist()
    assert np.allclose(manifest["score"].to_numpy(), 1 - gap[sel.indices], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    raw=arrays(
        np.float64, st.tuples(st.integers(1, 40), st.integers(2, 6)), elements=st.floats(0, 1)
    ),
    data=st.data(),
)
def test_matches_a_stable_sort_on_any_table(raw, data):
    """Ties included (the elements repeat often): the order is (score desc, id asc), exactly."""
    p = (raw + 1e-3) / (raw + 1e-3).sum(axis=1, keepdims=True)
    p = p.astype(np.float32)
    k = data.draw(st.integers(1, p.shape[0]))
    _, sel = select(Pool.from_arrays(proba=p), "margin", k)
    q = np.sort(p.astype(np.float64), axis=1)
    score = 1 - (q[:, -1] - q[:, -2])
    assert sel.indices.tolist() == np.lexsort((np.arange(p.shape[0]), -score))[:k].tolist()


def test_one_class_tables_work():
    p = np.ones((5, 1))
    manifest, _ = select(Pool.from_arrays(proba=p), "margin", 2)
    assert manifest["id"].to_list() == [0, 1]
