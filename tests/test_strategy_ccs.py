"""ccs: the budget allocation, the strata, the hard cutoff and its auto beta, end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, SelectkitError, read_provenance, select
from selectkit.strategies.allocation import fill_smallest_first
from selectkit.strategies.ccs import default_beta, equal_width_strata


def test_allocation_example_from_the_paper():
    assert fill_smallest_first(np.array([2, 5, 100]), 30).tolist() == [2, 5, 23]
    assert fill_smallest_first(np.array([100, 2, 5]), 30).tolist() == [23, 2, 5]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=30), st.integers(0, 2000))
def test_allocation_is_max_min_fair(sizes, budget):
    sizes = np.array(sizes)
    counts = fill_smallest_first(sizes, budget)
    assert counts.sum() == min(budget, sizes.sum())
    assert np.all(counts <= sizes) and np.all(counts >= 0)
    # a stratum that did not get all its rows has at least as many as any other minus one
    short = counts < sizes
    if short.any():
        assert counts.max() - counts[short].min() <= 1


def test_equal_width_strata_include_the_maximum_even_when_negative():
    s = np.array([-3.0, -2.0, -1.0, -0.5])
    strata = equal_width_strata(s, 5)
    assert strata.min() == 0 and strata.max() == 4 and strata[-1] == 4
    assert equal_width_strata(np.ones(4), 50).tolist() == [0, 0, 0, 0]


def test_default_beta_follows_the_pruning_rate():
    assert [default_beta(r) for r in (0.3, 0.5, 0.6, 0.75, 0.9)] == [0.0, 0.0, 0.1, 0.2, 0.3]


def pool_with_scores(scores, name="score"):
    n = len(scores)
    return Pool.from_arrays(np.zeros((n, 2), np.float32), **{name: np.asarray(scores, float)})


def test_hard_cutoff_drops_the_hardest_by_aum_then_spreads_over_strata():
    scores = np.linspace(-1, 1, 1000)  # AUM-like: low is hard
    pool = pool_with_scores(scores)
    _, sel = select(pool, "ccs", 100, seed=0, params={"beta": 0.3, "strata": 10})
    picked = scores[sel.indices]
    assert picked.min() >= scores[300]  # the 300 lowest were cut
    assert sel.params == {"beta": 0.3, "hard": "low"}
    # 10 equal-width strata over the 700 kept, each with 70 rows: 10 picks per stratum
    strata_of_kept = equal_width_strata(scores[300:], 10)
    assert np.bincount(strata_of_kept[np.searchsorted(scores[300:], picked)]).tolist() == [10] * 10


def test_hard_high_for_forgetting_like_scores():
    scores = np.arange(1000, dtype=float)  # high is hard (forgetting, el2n, loss)
    pool = pool_with_scores(scores, "forgetting")
    pool.columns = pool.columns.with_overrides(score="forgetting")
    _, sel = select(pool, "ccs", 100, seed=0, params={"beta": 0.2})
    assert sel.params["hard"] == "high"
    assert scores[sel.indices].max() < 800
    _, sel = select(pool, "ccs", 100, seed=0, params={"beta": 0.2, "hard": "low"})
    assert scores[sel.indices].min() >= 200


def test_auto_beta_never_cuts_below_the_budget():
    pool = pool_with_scores(np.arange(100.0))
    _, sel = select(pool, "ccs", 90, seed=0, params={"beta": 0.5})
    assert sel.indices.size == 90 and sel.metrics["ccs_cut_rows"] == 10


def test_small_strata_are_taken_whole():
    # three clumps of scores: 2, 5 and 100 rows; 2 strata span the range, budget 30
    scores = np.r_[np.zeros(2), np.full(5, 10.0), np.full(100, 5.0)]
    pool = pool_with_scores(scores)
    _, sel = select(pool, "ccs", 30, seed=3, params={"beta": 0.0, "strata": 3})
    picked = scores[sel.indices]
    assert (picked == 0).sum() == 2 and (picked == 10).sum() == 5 and (picked == 5).sum() == 23


def test_bad_scores_and_params_are_refused():
    with pytest.raises(SelectkitError, match="null, NaN"):
        select(pool_with_scores([1.0, np.nan, 2.0]), "ccs", 1)
    with pytest.raises(SelectkitError, match="strata"):
        select(pool_with_scores([1.0, 2.0]), "ccs", 1, params={"strata": 0})
    with pytest.raises(SelectkitError, match="beta"):
        select(pool_with_scores([1.0, 2.0]), "ccs", 1, params={"beta": 1.5})


def test_cli_scores_then_ccs_records_beta(cli, tmp_path, digits):
    x, y = digits
    vec = tmp_path / "vectors.parquet"
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x, "label": y}).write_parquet(vec)
    emb = tmp_path / "emb.parquet"
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x}).write_parquet(emb)
    dyn = tmp_path / "dyn.parquet"
    assert cli("scores", vec, "-o", dyn, "--epochs", "5").exit_code == 0
    out = tmp_path / "m.parquet"
    r = cli(
        "select", emb, dyn, "--strategy", "ccs", "--score-col", "aum", "--budget", "10%",
        "--strata", "20", "-o", out,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    assert manifest.height == round(0.1 * len(x))
    prov = read_provenance(out)
    assert prov["params"]["strategy_params"] == {"beta": 0.3, "hard": "low", "strata": 20}
    assert prov["metrics"]["coverage_rows"] == len(x)
    aum = pl.read_parquet(dyn).get_column("aum").to_numpy()
    assert manifest.get_column("score").min() >= np.sort(aum)[int(0.3 * len(x))]
