import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, select


def test_random_is_uniform_over_unlabelled_rows():
    """Over many seeds each of 20 rows is picked about budget/n of the time (chi-square)."""
    pool = Pool.from_arrays(np.zeros((20, 2)), labels=[None] * 20)
    counts = np.zeros(20)
    for seed in range(1000):
        _, sel = select(pool, "random", 5, seed=seed)
        counts[sel.indices] += 1
    expected = 1000 * 5 / 20
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 43.8  # 99.9th percentile of chi-square with 19 degrees of freedom


def test_random_seeds_differ():
    pool = Pool.from_arrays(np.zeros((1000, 2)))
    a = select(pool, "random", 10, seed=1)[1].indices
    b = select(pool, "random", 10, seed=2)[1].indices
    assert not np.array_equal(a, b)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_random_budget_and_uniqueness(n, data):
    budget = data.draw(st.integers(1, n))
    seed = data.draw(st.integers(0, 2**32))
    _, sel = select(Pool.from_arrays(np.zeros((n, 1))), "random", budget, seed=seed)
    assert sel.indices.size == budget == np.unique(sel.indices).size
    assert sel.indices.min() >= 0 and sel.indices.max() < n
