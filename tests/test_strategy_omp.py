"""omp: positive orthogonal matching pursuit per cluster, a weighted coreset of the cluster means.
Parameters: tol, ridge, normalize_rows, weighting, min_weight."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, select
from selectkit.strategies.omp import omp_cluster


def weighted_error(x, groups, idx, w):
    """||sum of weighted picks - pool sum|| / ||pool sum||, the slow obvious way."""
    x = x.astype(np.float64)
    total = x.sum(axis=0)
    return np.linalg.norm((w[:, None] * x[idx]).sum(axis=0) - total) / np.linalg.norm(total)


def random_error(x, groups, budget, seed):
    """The same error for a uniform sample with weight n / budget (Horvitz-Thompson)."""
    idx = np.random.default_rng(seed).choice(len(x), budget, replace=False)
    return weighted_error(x, groups, idx, np.full(budget, len(x) / budget))


def test_digits_error_falls_with_budget_and_beats_random(digits):
    x, y = digits
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    errors = []
    for budget in (18, 90, 180):  # 1%, 5%, 10%
        manifest, sel = select(pool, "omp", budget, seed=0)
        w = manifest["weight"].to_numpy()
        assert (w > 0).all() and manifest.height == budget
        err = weighted_error(x, y, sel.indices, w)
        assert err == pytest.approx(sel.metrics["omp_error"], rel=1e-4)
        assert len(sel.metrics["omp_cluster_errors"]) == 10
        rand = np.mean([random_error(x, y, budget, s) for s in range(5)])
        assert err < rand / 2, (budget, err, rand)
        errors.append(err)
    assert errors[0] > errors[1] > errors[2]
    # every cluster gets its share: 9 picks from each digit (sizes 174..183) at 5%
    _, sel = select(pool, "omp", 90, seed=0)
    assert np.bincount(y[sel.indices]).min() >= 8


def test_exact_recovery_of_a_constructed_mean():
    """Three basis rows carry the mean; the rest cancel in pairs and are orthogonal to it."""
    rng = np.random.default_rng(0)
    noise = np.zeros((20, 6), dtype=np.float32)
    noise[:, 3:] = rng.normal(size=(20, 3))
    rows = np.vstack([np.eye(6, dtype=np.float32)[:3], noise, -noise])
    ids = rng.permutation(rows.shape[0])
    manifest, sel = select(Pool.from_arrays(rows, ids=ids), "omp", 3, seed=4)
    assert sorted(manifest["id"].to_list()) == sorted(ids[:3].tolist())
    assert np.allclose(manifest["weight"].to_numpy(), 1.0, atol=1e-6)  # each stands for itself
    assert sel.metrics["omp_error"] < 1e-6 and sel.metrics["omp_clusters"] == 1


def test_full_budget_reproduces_the_sum_and_every_weight_is_positive(digits):
    x, y = digits
    pool = Pool.from_arrays(x[:60], cluster=(y[:60] % 3).astype(np.int32))
    manifest, sel = select(pool, "omp", 60, seed=0)
    assert manifest.height == 60 and (manifest["weight"] > 0).all()
    assert sel.metrics["omp_error"] < 1e-3


def test_weighting_choices(digits):
    x, y = digits
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    sizes = np.bincount(y)
    mass, sel = select(pool, "omp", 50, seed=0, params={"weighting": "mass"})
    per = np.bincount(y[sel.indices], weights=mass["weight"].to_numpy(), minlength=10)
    assert np.allclose(per, sizes)  # each cluster's weights sum to its size
    none, _ = select(pool, "omp", 50, seed=0, params={"weighting": "none"})
    assert (none["weight"] == 1.0).all()
    plain, _ = select(pool, "omp", 50, seed=0)
    assert none["id"].to_list() == plain["id"].to_list() == mass["id"].to_list()


def test_ridge_shrinks_and_min_weight_floors_and_tol_stops_rounds(digits):
    x, y = digits
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    plain, p_sel = select(pool, "omp", 100, seed=0)
    shrunk, _ = select(pool, "omp", 100, seed=0, params={"ridge": 1.0})
    assert shrunk["weight"].sum() < plain["weight"].sum()
    shrunk, _ = select(pool, "omp", 100, seed=0, params={"ridge": 50.0})
    assert shrunk["weight"].sum() < 0.8 * plain["weight"].sum()
    floor, _ = select(pool, "omp", 100, seed=0, params={"min_weight": 2.0})
    assert floor["weight"].min() >= 2.0 - 1e-9
    # a loose tol ends each round after a few picks: more rounds, the budget is still met
    loose, l_sel = select(pool, "omp", 100, seed=0, params={"tol": 0.5})
    assert loose.height == 100 and l_sel.metrics["omp_error"] > p_sel.metrics["omp_error"]


def test_normalize_rows_matches_unit_rows(digits):
    x, _ = digits
    scaled = x * np.random.default_rng(1).uniform(0.5, 3.0, size=(len(x), 1)).astype(np.float32)
    unit = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    _, a = select(Pool.from_arrays(scaled), "omp", 40, seed=0, params={"normalize_rows": True})
    _, b = select(Pool.from_arrays(unit), "omp", 40, seed=0)
    assert a.indices.tolist() == b.indices.tolist()
    assert a.metrics["omp_error"] == pytest.approx(b.metrics["omp_error"], rel=1e-3)


def test_omp_cluster_kernel_zero_mean_and_rounds():
    a = np.vstack([np.eye(3), -np.eye(3)]).astype(np.float32)  # mean exactly 0
    pos, w, err = omp_cluster(a, 2)
    assert pos.tolist() == [0, 1] and np.allclose(w, 3.0) and err == 0.0
    b = np.vstack([np.eye(3), np.eye(3)]).astype(np.float32)
    pos, w, err = omp_cluster(b, 6)  # exact after 3: a second round takes the copies
    assert sorted(pos.tolist()) == list(range(6)) and err < 1e-6 and (w > 0).all()


def tied_pool(n, seed):
    """Rows with many duplicate vectors (ties in every correlation) and shuffled string ids."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(4, 5)).astype(np.float32) + 1.0
    x = base[rng.integers(0, 4, n)]
    ids = [f"r{i}" for i in rng.permutation(n)]
    return x, ids, rng.integers(0, 3, n).astype(np.int32)


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(4, 60),
    seed=st.integers(0, 10_000),
    frac=st.floats(0.05, 1.0),
    weighting=st.sampled_from(["sum", "mass", "none"]),
    data=st.data(),
)
def test_shuffled_rows_give_the_same_manifest(n, seed, frac, weighting, data):
    x, ids, cl = tied_pool(n, seed)
    budget = max(1, int(frac * n))
    perm = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(n)
    params = {"weighting": weighting}
    a, _ = select(Pool.from_arrays(x, ids=ids, cluster=cl), "omp", budget, seed=3, params=params)
    b, _ = select(
        Pool.from_arrays(x[perm], ids=[ids[i] for i in perm], cluster=cl[perm]),
        "omp",
        budget,
        seed=3,
        params=params,
    )
    assert a.equals(b)
    assert a.height == budget and (a["weight"] > 0).all()


def test_cli_on_real_embeddings_with_clusters_and_vector_col(cli, tmp_path, rt_emb):
    clusters = tmp_path / "clusters.parquet"
    r = cli("cluster", rt_emb, "-k", "8", "--vector-col", "embedding", "-o", clusters)
    assert r.exit_code == 0, r.output
    renamed = tmp_path / "vec.parquet"
    pl.read_parquet(rt_emb).rename({"embedding": "vec"}).write_parquet(renamed)
    out = tmp_path / "m.parquet"
    r = cli(
        "select", renamed, clusters, "--strategy", "omp", "--vector-col", "vec",
        "--budget", "10%", "-o", out, "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    manifest = pl.read_parquet(out)
    assert manifest.height == 40 and (manifest["weight"] > 0).all()
    assert manifest["cluster"].n_unique() == 8
    summary = json.loads(r.stdout)
    # unit rows nearly orthogonal, pool mean near 0: the relative error is large, but a uniform
    # sample of the same size (weight n / budget) misses the pool sum by far more
    x = pl.read_parquet(rt_emb)["embedding"].to_numpy()
    rand = np.mean([random_error(x, None, 40, s) for s in range(5)])
    assert 0 <= summary["omp_error"] < rand / 2
    assert summary["omp_cluster_error_max"] < 1.0


def test_cli_bad_vectors_are_one_line_errors(cli, tmp_path, rt_emb):
    out = tmp_path / "m.parquet"
    r = cli("select", rt_emb, "-s", "omp", "-b", "5", "--vector-col", "gradient", "-o", out)
    assert r.exit_code == 1 and "'gradient'" in r.stderr and "Traceback" not in r.stderr
    x = pl.read_parquet(rt_emb)["embedding"].to_numpy().copy()
    x[3, 2] = np.nan
    bad = tmp_path / "nan.parquet"
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x}).write_parquet(bad)
    r = cli("select", bad, "-s", "omp", "-b", "5", "-o", out)
    assert r.exit_code == 1 and "NaN" in r.stderr and len(r.stderr.strip().splitlines()) <= 2
    assert not out.exists()
