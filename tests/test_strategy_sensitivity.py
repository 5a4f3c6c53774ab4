"""sensitivity: representatives, the loss bound, unbiased weights in both sampling modes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, SelectkitError, read_provenance, select
from selectkit.cluster.kmeans import assign, kmeans
from selectkit.strategies.sensitivity import inclusion_probabilities, systematic_pps


@pytest.fixture(scope="module")
def loss_pool(digits):
    """Digits with the real log loss of a model trained on a tenth of them, and 12 clusters."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    clf = LogisticRegression(max_iter=1000).fit(x[::10], y[::10])
    loss = -np.log(clf.predict_proba(x)[np.arange(len(y)), y])
    fit = kmeans(x, 12, rng=np.random.default_rng(0))
    cluster, _ = assign(x, fit.centroids)
    return x, cluster.astype(np.int32), loss


def test_representatives_come_first_with_weight_one(loss_pool):
    x, cluster, loss = loss_pool
    pool = Pool.from_arrays(x, cluster=cluster, loss=loss)
    _, sel = select(pool, "sensitivity", 60, seed=0)
    reps = sel.indices[:12]
    assert np.all(sel.weights[:12] == 1.0)
    assert sorted(cluster[reps].tolist()) == list(range(12))
    for c, r in zip(cluster[reps], reps, strict=True):  # nearest member to its cluster's mean
        members = np.flatnonzero(cluster == c)
        mean = x[members].astype(np.float64).mean(axis=0)
        d = ((x[members] - mean) ** 2).sum(axis=1)
        assert d[members == r][0] <= d.min() + 1e-5
    assert sel.metrics["sensitivity_loss_column"] == "loss"
    assert sel.params["lam"] > 0


@pytest.mark.parametrize("sampling", ["replacement", "pps"])
def test_weighted_sum_of_losses_is_unbiased(loss_pool, sampling):
    x, cluster, loss = loss_pool
    pool = Pool.from_arrays(x, cluster=cluster, loss=loss)
    estimates = []
    for seed in range(300):
        _, sel = select(
            pool, "sensitivity", 50, seed=seed, params={"sampling": sampling}, metrics=False
        )
        estimates.append(sel.weights @ loss[sel.indices])
    estimates = np.array(estimates)
    se = estimates.std() / np.sqrt(estimates.size)
    assert abs(estimates.mean() - loss.sum()) < 4 * se + 1e-9


def test_classic_bound_without_a_loss_column_and_explicit_params(loss_pool):
    x, cluster, loss = loss_pool
    pool = Pool.from_arrays(x, cluster=cluster, loss=loss)
    _, sel = select(pool, "sensitivity", 40, seed=1, params={"loss_col": "none"})
    assert sel.metrics["sensitivity_loss_column"] is None and "lam" not in sel.params
    _, sel = select(pool, "sensitivity", 40, seed=1, params={"lam": 2.0, "floor": 1.0})
    assert sel.params["lam"] == 2.0
    # floor = 1 is uniform sampling over the non-representatives: weights are equal
    w = sel.weights[12:]
    assert np.allclose(w / w.min(), np.round(w / w.min()))  # draw counts x the same unit


def test_missing_loss_of_a_representative_is_named(loss_pool):
    x, cluster, loss = loss_pool
    gappy = np.where(np.arange(len(loss)) % 2 == 0, np.nan, loss)
    pool = Pool.from_arrays(x, cluster=cluster, loss=gappy)
    with pytest.raises(SelectkitError, match=r"no loss for .* representatives"):
        select(pool, "sensitivity", 40, seed=0)
    with pytest.raises(SelectkitError, match="no loss column 'nope'"):
        select(pool, "sensitivity", 40, seed=0, params={"loss_col": "nope"})


def test_budget_below_the_representatives_is_refused(loss_pool):
    x, cluster, _ = loss_pool
    with pytest.raises(SelectkitError, match="smaller than the 12 cluster representatives"):
        select(Pool.from_arrays(x, cluster=cluster), "sensitivity", 5)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.001, 100.0), min_size=2, max_size=60), st.data())
def test_inclusion_probabilities_and_pps_size(raw, data):
    p = np.array(raw) / np.sum(raw)
    size = data.draw(st.integers(1, p.size))
    pi = inclusion_probabilities(p, size)
    assert np.isclose(pi.sum(), size) and np.all(pi <= 1.0 + 1e-12) and np.all(pi > 0)
    picked, pi_picked = systematic_pps(p, size, np.random.default_rng(0))
    assert picked.size == size and np.unique(picked).size == size
    assert np.allclose(pi_picked, pi[picked])


def test_cli_with_a_losses_file(cli, tmp_path, loss_pool):
    x, cluster, loss = loss_pool
    ids = np.arange(len(x))
    emb, clu, los = tmp_path / "emb.parquet", tmp_path / "c.parquet", tmp_path / "l.parquet"
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(emb)
    pl.DataFrame({"id": ids, "cluster": cluster}).write_parquet(clu)
    pl.DataFrame({"id": ids, "loss": loss}).write_parquet(los)
    out = tmp_path / "m.parquet"
    r = cli("select", emb, clu, los, "--strategy", "sensitivity", "--budget", "100", "-o", out)
    assert r.exit_code == 0, r.output
    m = pl.read_parquet(out)
    assert m.height == 100 and (m.get_column("weight") > 0).all()
    prov = read_provenance(out)
    assert prov["params"]["strategy_params"]["lam"] > 0
    assert 0.5 < prov["metrics"]["weighted_cost_ratio"] < 1.5
