"""coreset: the AL name of greedy k-center (same picks as kcenter), labelled rows as centres;
parameter metric (l2, cosine)."""

from __future__ import annotations

import numpy as np
import pytest

from selectkit import Pool, select
from selectkit.strategies.kcenter import greedy_kcenter


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_same_picks_as_greedy_kcenter(digits, metric):
    x, y = digits
    labels = np.where(np.arange(len(y)) < 30, y, None).astype(object)
    pool = Pool.from_arrays(x, labels=labels)
    _, sel = select(pool, "coreset", 20, seed=0, params={"metric": metric})
    xx = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    covered = np.arange(len(y)) < 30
    want, _, _ = greedy_kcenter(xx, 20, None, selectable=~covered, covered=covered)
    assert sel.indices.tolist() == want.tolist()
    assert (sel.indices >= 30).all()


def test_cold_start_first_pick_from_the_seed(digits):
    pool = Pool.from_arrays(digits[0])
    a = select(pool, "coreset", 5, seed=1)[1].indices
    b = select(pool, "coreset", 5, seed=2)[1].indices
    assert a[0] != b[0]
