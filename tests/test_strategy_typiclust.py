"""typiclust: one pick per uncovered cluster, the most typical row of it; works with no labels.
Parameters: max_clusters, neighbours, min_cluster_size, fit_rows, iters, cluster_rows."""

from __future__ import annotations

import numpy as np
import pytest

from selectkit import Pool, select
from selectkit.cluster.kmeans import assign
from selectkit.errors import SelectkitUsageError
from selectkit.strategies.typiclust import typicality


def test_typicality_matches_brute_force(digits):
    x = digits[0][:200]
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    want = 1 / (np.sort(d, axis=1)[:, 1:21].mean(1) + 1e-5)
    assert np.allclose(typicality(x, 20), want, rtol=1e-3)


def test_picks_are_typical_and_spread_over_digit_classes(digits):
    x, y = digits
    _, sel = select(Pool.from_arrays(x), "typiclust", 10, seed=0, params={"iters": 20})
    # cold start: ten clusters, ten picks, nearly every digit class covered
    assert np.unique(y[sel.indices]).size >= 8
    # each pick is denser than the median row: typical, not an outlier
    typ = typicality(x, 20)
    assert (typ[sel.indices] > np.median(typ)).mean() >= 0.8


def test_labelled_clusters_are_skipped(digits):
    x, y = digits
    labels = np.where(y == 0, 0, None).astype(object)  # every 0 labelled
    pool = Pool.from_arrays(x, labels=labels)
    _, sel = select(pool, "typiclust", 9, seed=0, params={"max_clusters": 10})
    assert (y[sel.indices] != 0).all()


def test_more_picks_than_clusters_cycle_through_them(digits):
    x = digits[0]
    _, sel = select(
        Pool.from_arrays(x), "typiclust", 12, seed=0, params={"max_clusters": 4, "neighbours": 5}
    )
    assert np.unique(sel.indices).size == 12


def test_fit_rows_and_min_cluster_size(digits):
    x = digits[0]
    a = select(Pool.from_arrays(x), "typiclust", 5, seed=0, params={"fit_rows": 300})[1]
    assert a.metrics["clusters"] == 5
    tiny = np.concatenate([x[:200], x[:1] + 50.0]).astype(np.float32)  # one far outlier
    _, sel = select(Pool.from_arrays(tiny), "typiclust", 2, seed=0, params={"min_cluster_size": 5})
    assert 200 not in sel.indices.tolist()  # its singleton cluster is used last
    labels, _ = assign(tiny, tiny[[0, 200]])
    assert labels[200] != labels[0]


def test_bad_parameters_are_usage_errors(digits):
    with pytest.raises(SelectkitUsageError):
        select(Pool.from_arrays(digits[0]), "typiclust", 5, params={"neighbours": 0})


def test_cluster_rows_samples_large_clusters(digits):
    x = digits[0]
    params = {"max_clusters": 2, "cluster_rows": 30}
    _, sel = select(Pool.from_arrays(x), "typiclust", 70, seed=0, params=params)
    assert np.unique(sel.indices).size == 70  # more picks than one cluster's sample: next one
    a = select(Pool.from_arrays(x), "typiclust", 5, seed=0, params=params)[1].indices
    b = select(Pool.from_arrays(x), "typiclust", 5, seed=0)[1].indices
    assert a.tolist() != b.tolist()
