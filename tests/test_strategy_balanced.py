"""balanced: water-filling down the tree, leaves at random or closest, rare clusters lifted."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, SelectkitError, SelectkitUsageError, select
from selectkit.strategies.allocation import water_fill
from selectkit.strategies.balanced import balanced_counts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 80), min_size=1, max_size=25), st.integers(0, 1500))
def test_water_fill_caps_every_group_at_one_cut(sizes, budget):
    sizes = np.array(sizes)
    counts = water_fill(sizes, budget, np.random.default_rng(0))
    assert counts.sum() == min(budget, sizes.sum())
    assert np.all(counts <= sizes)
    # every group below its size sits at the cut t or t + 1, and no group exceeds t + 1
    short = counts < sizes
    if short.any():
        assert counts[short].max() - counts[short].min() <= 1
        assert counts.max() <= counts[short].min() + 1


def test_tree_allocation_by_hand():
    # leaves 0, 1 under top node 0 (100 rows each); leaf 2 alone under top node 1 (5 rows)
    leaf = np.repeat([0, 1, 2], [100, 100, 5])
    top = np.repeat([0, 0, 1], [100, 100, 5])
    counts = balanced_counts([leaf, top], 30, np.random.default_rng(0))
    assert counts[2] == 5 and sorted(counts[:2].tolist()) == [12, 13]


def test_non_nested_levels_are_refused():
    leaf = np.array([0, 0, 1, 1])
    top = np.array([0, 1, 1, 1])
    with pytest.raises(SelectkitError, match="not nested"):
        balanced_counts([leaf, top], 2, np.random.default_rng(0))


def test_rare_clusters_are_lifted_compared_to_random(digits):
    x, y = digits
    rng = np.random.default_rng(0)
    keep = (y >= 3) | (rng.random(len(y)) < 0.05)  # digits 0-2 become rare
    x, y = x[keep], y[keep]
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    _, sel = select(pool, "balanced", 200, seed=0)
    per_class = np.bincount(y[sel.indices], minlength=10)
    assert np.all(per_class[:3] == np.bincount(y)[:3])  # rare classes taken whole
    assert per_class[3:].max() - per_class[3:].min() <= 1
    shares = []
    for seed in range(5):
        _, rnd = select(pool, "random", 200, seed=seed)
        shares.append(np.isin(y[rnd.indices], [0, 1, 2]).mean())
    assert np.isin(y[sel.indices], [0, 1, 2]).mean() > 2 * max(shares)


def test_kmeans_tree_and_closest_leaves(digits):
    x, _ = digits
    pool = Pool.from_arrays(x)
    params = {"levels": "40,8", "resample_steps": 1, "sample_size": 10, "leaf": "closest"}
    _, sel = select(pool, "balanced", 80, seed=0, params=params)
    assert sel.metrics["balanced_levels"] == 2 and sel.metrics["balanced_leaves"] == 40
    assert sel.params == {"levels": "40,8"}
    assert np.all(np.isfinite(sel.scores))
    _, again = select(pool, "balanced", 80, seed=0, params=params)
    assert np.array_equal(sel.indices, again.indices)
    _, rnd = select(pool, "balanced", 80, seed=0, params={**params, "leaf": "random"})
    assert rnd.scores is None


def test_bad_levels_are_refused(digits):
    x, _ = digits
    with pytest.raises(SelectkitError, match="levels"):
        select(Pool.from_arrays(x[:50]), "balanced", 5, params={"levels": "100"})
    with pytest.raises(SelectkitError, match="decrease"):
        select(Pool.from_arrays(x), "balanced", 5, params={"levels": "10,20"})


def test_levels_is_a_declared_list_of_positive_counts(cli, tmp_path, digits):
    """levels: a comma list (or a repeated option, or a Python list) of counts >= 1, checked
    by its Param like every other bound; the same tree whichever way it is written."""
    x, _ = digits
    pool = Pool.from_arrays(x)
    _, a = select(pool, "balanced", 40, seed=0, params={"levels": "40,8"})
    _, b = select(pool, "balanced", 40, seed=0, params={"levels": [40, 8]})
    assert np.array_equal(a.indices, b.indices) and a.params == {"levels": "40,8"}
    for bad, message in (("40,0", "levels=0 must be at least 1"), (",", "at least 1 value")):
        with pytest.raises(SelectkitUsageError, match=message):
            select(pool, "balanced", 5, params={"levels": bad})
    emb = tmp_path / "emb.parquet"
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x}).write_parquet(emb)
    outs = []
    for form in (["--levels", "40,8"], ["--levels", "40", "--levels", "8"]):
        out = tmp_path / f"m{len(outs)}.parquet"
        r = cli("select", emb, "-s", "balanced", "-b", "40", *form, "-o", out)
        assert r.exit_code == 0, r.output
        outs.append(pl.read_parquet(out))
    assert outs[0].equals(outs[1])
    r = cli("select", emb, "-s", "balanced", "-b", "40", "--levels", "40,2.5", "-o", out)
    assert r.exit_code == 2 and "levels='2.5' is not a int" in r.output, r.output
