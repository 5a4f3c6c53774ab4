"""kmq (Yu et al. 2024): cluster budgets by size (capped largest remainder), quality-weighted
draws inside clusters, kM-Random, kM-Closest, cluster weights, select --exclude, kmq-weights.
Parameters: within, quality_col, temperature, allocation, k, cluster_weights."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, kmq_weights, read_provenance, select
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.kmq import update_weights
from selectkit.strategies.allocation import capped_proportional, proportional
from selectkit.testing import wide_frame


def digits_pool(frame=None, **extra):
    f = wide_frame() if frame is None else frame
    return Pool(frame=f.select("id", "embedding", "cluster", "score", *extra))


def per_cluster(manifest):
    return dict(manifest.group_by("cluster").len().sort("cluster").iter_rows())


def one_line_error(result, code=1):
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2 and "error" in lines[0].lower(), result.stderr
    return result.stderr


# ------------------------------------------------------------------------------- allocation


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(0, 40), min_size=1, max_size=12),
    st.data(),
)
def test_capped_largest_remainder_is_exact(sizes, data):
    sizes = np.array(sizes)
    mass = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]),
                                        min_size=sizes.size, max_size=sizes.size)))  # fmt: skip
    mass = mass * sizes
    budget = data.draw(st.integers(0, int(sizes.sum()) + 5))
    tie = np.arange(sizes.size)[::-1].astype(np.uint64)
    counts = capped_proportional(mass, sizes, budget, tie)
    want = min(budget, int(sizes.sum()))
    assert counts.sum() == want and np.all(counts <= sizes) and np.all(counts >= 0)
    live = (mass > 0) & (sizes > 0)
    if sizes[live].sum() <= want:  # every weighted cluster is taken whole, the rest by size
        assert np.array_equal(counts[live], sizes[live])
        return
    assert counts[~live].sum() == 0
    # capped with redistribution: a cluster below its size got floor or ceil of its share of
    # what the full clusters left, shared by mass; a full cluster's share reached its size
    open_ = live & (counts < sizes)
    left = want - counts[live & ~open_].sum()
    share = left * mass[open_] / mass[open_].sum() if open_.any() else np.zeros(0)
    assert np.all(counts[open_] >= np.floor(share) - 1e-9)
    assert np.all(counts[open_] <= np.ceil(share) + 1e-9)
    full = live & ~open_
    if open_.any() and full.any():
        ratio = left / mass[open_].sum()  # rows per unit of mass among the open clusters
        assert np.all(mass[full] * ratio >= sizes[full] - 1 - 1e-9)


def test_proportional_without_caps_is_the_existing_largest_remainder():
    sizes = np.array([3, 50, 7, 120, 19])
    rng = np.random.default_rng(0)
    for budget in (0, 1, 13, 100, 199):
        a = capped_proportional(sizes.astype(float), sizes, budget, rng.permutation(5))
        b = proportional(sizes, budget, np.random.default_rng(1))
        assert a.sum() == b.sum() == budget
        assert np.all(np.abs(a - sizes * budget / sizes.sum()) < 1)
        assert np.all(np.abs(a - b) <= 1)


def test_equal_allocation_has_no_floor_b_over_k_shortfall():
    """The authors' code takes floor(b/K) per cluster: 30 over [2, 5, 100] would give 2+5+10."""
    frame = pl.DataFrame(
        {
            "id": np.arange(107),
            "cluster": np.repeat([0, 1, 2], [2, 5, 100]).astype(np.int32),
        }
    )
    manifest, _ = select(Pool(frame=frame), "kmq", 30, params={"allocation": "equal"})
    assert per_cluster(manifest) == {0: 2, 1: 5, 2: 23}


@settings(deadline=None, max_examples=15)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=8), st.integers(0, 3), st.data())
def test_manifest_counts_are_the_allocation(sizes, seed, data):
    n = sum(sizes)
    budget = data.draw(st.integers(1, n))
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "id": rng.permutation(10 * n)[:n],
            "cluster": np.repeat(np.arange(len(sizes)) * 7, sizes).astype(np.int32),
            "score": rng.random(n),
        }
    )
    manifest, _ = select(Pool(frame=frame), "kmq", budget, seed=seed)
    got = per_cluster(manifest)
    exact = np.array(sizes) * budget / n
    assert manifest.height == budget
    for j in range(len(sizes)):
        assert abs(got.get(7 * j, 0) - exact[j]) < 1
    # rank interleaves clusters: every prefix is close to proportional
    half = manifest.head(budget // 2)
    for j, c in per_cluster(half).items():
        assert abs(c - exact[j // 7] * half.height / budget) <= 1.5


# --------------------------------------------------------------------------- within-cluster


def test_quality_weighting_raises_the_quality_picked():
    pool = digits_pool()
    q = pool.values("score")
    means = {}
    for within, t in (("uniform", 1.0), ("quality", 1.0), ("softmax", 0.05), ("quality", 0.1)):
        vals = []
        for seed in range(5):
            _, sel = select(pool, "kmq", 150, seed=seed, metrics=False,
                            params={"within": within, "temperature": t})  # fmt: skip
            vals.append(q[sel.indices].mean())
        means[(within, t)] = np.mean(vals)
    assert means[("quality", 1.0)] > means[("uniform", 1.0)]
    assert means[("quality", 0.1)] > means[("quality", 1.0)]
    assert means[("softmax", 0.05)] > means[("uniform", 1.0)]


def test_tiny_temperature_takes_each_clusters_best_rows():
    pool = digits_pool()
    q = pool.values("score")
    y = pool.cluster_labels
    for within in ("quality", "softmax"):
        _, sel = select(pool, "kmq", 100, params={"within": within, "temperature": 1e-6})
        for c in range(10):
            picked = sel.indices[y[sel.indices] == c]
            best = np.sort(q[y == c])[::-1][: picked.size]
            assert np.allclose(np.sort(q[picked])[::-1], best)


def test_constant_quality_is_km_random():
    frame = wide_frame().with_columns(pl.lit(0.7).alias("score"))
    a, _ = select(digits_pool(frame), "kmq", 90, seed=3, params={"within": "quality"})
    b, _ = select(digits_pool(frame), "kmq", 90, seed=3, params={"within": "uniform"})
    c, _ = select(digits_pool(frame), "kmq", 90, seed=3, params={"quality_col": "none"})
    assert a["id"].to_list() == b["id"].to_list() == c["id"].to_list()
    assert b["score"].null_count() == 90 and a["score"].null_count() == 0


def test_km_closest_takes_the_rows_nearest_each_cluster_mean():
    pool = digits_pool()
    x, y = pool.embeddings.astype(np.float64), pool.cluster_labels
    manifest, sel = select(pool, "kmq", 60, params={"within": "closest"})
    for c in range(10):
        rows = np.flatnonzero(y == c)
        d = np.linalg.norm(x[rows] - x[rows].mean(axis=0), axis=1)
        picked = sel.indices[y[sel.indices] == c]
        assert np.allclose(np.sort(d)[: picked.size], np.sort(manifest["score"].to_numpy()[
            y[sel.indices] == c]), rtol=1e-4)  # fmt: skip
        assert set(picked) == set(rows[np.argsort(d)[: picked.size]])


def test_k_clusters_internally_when_no_cluster_column():
    frame = wide_frame().select("id", "embedding", "score")
    manifest, sel = select(Pool(frame=frame), "kmq", 80, seed=1, params={"k": 8})
    assert sel.metrics["kmq_cluster_source"] == "kmeans k=8"
    assert sel.metrics["kmq_clusters"] == 8 and manifest.height == 80
    _, auto = select(Pool(frame=frame), "kmq", 80, seed=1)
    assert auto.metrics["kmq_cluster_source"] == "kmeans k=8"  # auto: budget / 10
    again, _ = select(Pool(frame=frame), "kmq", 80, seed=1, params={"k": 8})
    assert again.equals(manifest)


def test_no_cluster_and_no_embedding_is_a_usage_error():
    frame = wide_frame().select("id", "score")
    with pytest.raises(SelectkitUsageError, match="'cluster'"):
        select(Pool(frame=frame), "kmq", 10)


@settings(deadline=None, max_examples=10)
@given(st.integers(0, 1000), st.sampled_from(["quality", "softmax", "uniform", "closest"]))
def test_shuffled_rows_give_the_same_manifest(seed, within):
    base = wide_frame().select("id", "embedding", "cluster", "score").head(300)
    # many ties in quality: the draws must not fall back on row position
    base = base.with_columns((pl.col("score") * 4).round(0).alias("score"))
    shuffled = base[np.random.default_rng(seed).permutation(base.height)]
    params = {"within": within, "temperature": 0.5}
    a, _ = select(Pool(frame=base), "kmq", 40, seed=seed, params=params)
    b, _ = select(Pool(frame=shuffled), "kmq", 40, seed=seed, params=params)
    assert a.equals(b)


# ---------------------------------------------------------------------------- bad quality


@pytest.mark.parametrize(
    "frame_change, params, match",
    [
        (None, {"quality_col": "quality"}, "quality column 'quality'"),
        (pl.col("score") - 0.9, {}, "negative"),
        (pl.when(pl.col("cluster") == 3).then(None).otherwise(pl.col("score")), {}, "null"),
        (pl.when(pl.col("cluster") == 3).then(float("nan")).otherwise(pl.col("score")), {}, "NaN"),
    ],
)
def test_bad_quality_is_a_data_error(frame_change, params, match):
    frame = wide_frame()
    if frame_change is not None:
        frame = frame.with_columns(frame_change.alias("score"))
    with pytest.raises(SelectkitDataError, match=match):
        select(digits_pool(frame), "kmq", 20, params=params)


def test_negative_quality_is_fine_for_softmax():
    frame = wide_frame().with_columns(pl.col("score") - 0.9)
    manifest, _ = select(digits_pool(frame), "kmq", 20, params={"within": "softmax"})
    assert manifest.height == 20


# ------------------------------------------------------------------ cluster weights, exclude


@pytest.fixture
def files(tmp_path):
    f = wide_frame()
    paths = {
        "emb": tmp_path / "emb.parquet",
        "clusters": tmp_path / "clusters.parquet",
        "quality": tmp_path / "quality.parquet",
    }
    f.select("id", "embedding").write_parquet(paths["emb"])
    f.select("id", "cluster").write_parquet(paths["clusters"])
    f.select("id", pl.col("score").alias("quality")).write_parquet(paths["quality"])
    return paths


def run_select(cli, files, out, *extra):
    return cli(
        "select", files["emb"], files["clusters"], files["quality"], "--strategy", "kmq",
        "--quality-col", "quality", "-o", out, *extra,
    )  # fmt: skip


def test_cluster_weights_multiply_the_allocation(cli, files, tmp_path):
    weights = tmp_path / "w.parquet"
    pl.DataFrame({"cluster": [0, 1], "weight": [4.0, 0.0]}).write_parquet(weights)
    out = tmp_path / "m.parquet"
    result = run_select(cli, files, out, "--budget", "200", "--cluster-weights", weights)
    assert result.exit_code == 0, result.output
    got = per_cluster(pl.read_parquet(out))
    sizes = wide_frame()["cluster"].value_counts().sort("cluster")["count"].to_numpy()
    w = np.ones(10)
    w[0], w[1] = 4.0, 0.0
    exact = 200 * w * sizes / (w * sizes).sum()
    assert 1 not in got and got[0] > 60
    assert all(abs(got.get(c, 0) - exact[c]) < 1 for c in range(10))
    prov = read_provenance(out)
    assert prov["metrics"]["kmq_cluster_weights"]["fingerprint"]


def test_unknown_cluster_in_the_weights_file_exits_1(cli, files, tmp_path):
    weights = tmp_path / "w.parquet"
    pl.DataFrame({"cluster": [0, 99], "weight": [1.0, 2.0]}).write_parquet(weights)
    result = run_select(
        cli, files, tmp_path / "m.parquet", "-b", "20", "--cluster-weights", weights
    )
    assert "99" in one_line_error(result)
    pl.DataFrame({"cluster": [0], "weight": [-1.0]}).write_parquet(weights)
    result = run_select(
        cli, files, tmp_path / "m.parquet", "-b", "20", "--cluster-weights", weights
    )
    assert "negative" in one_line_error(result)
    assert not (tmp_path / "m.parquet").exists()
    pl.DataFrame({"cluster": list(range(10)), "weight": [0.0] * 10}).write_parquet(weights)
    result = run_select(
        cli, files, tmp_path / "m.parquet", "-b", "20", "--cluster-weights", weights
    )
    assert "every cluster weight 0" in one_line_error(result)


def test_missing_quality_column_exits_1(cli, files, tmp_path):
    result = cli(
        "select", files["emb"], files["clusters"], "--strategy", "kmq", "--quality-col",
        "quality", "-b", "20", "-o", tmp_path / "m.parquet",
    )  # fmt: skip
    assert "'quality'" in one_line_error(result)


def test_bad_parameter_exits_2(cli, files, tmp_path):
    result = run_select(cli, files, tmp_path / "m.parquet", "-b", "20", "--temperature", "0")
    assert "temperature" in one_line_error(result, code=2)
    result = run_select(cli, files, tmp_path / "m.parquet", "-b", "20", "--within", "best")
    assert "within" in one_line_error(result, code=2)


@pytest.mark.parametrize("strategy", ["kmq", "random", "kcenter"])
def test_exclude_removes_earlier_rows_for_any_strategy(cli, files, tmp_path, strategy):
    first, second = tmp_path / "r1.parquet", tmp_path / "r2.parquet"
    base = ["select", files["emb"], files["clusters"], "--strategy", strategy, "-b", "10%"]
    assert cli(*base, "-o", first).exit_code == 0
    result = cli(*base, "--exclude", first, "-o", second)
    assert result.exit_code == 0, result.output
    a, b = pl.read_parquet(first), pl.read_parquet(second)
    assert a.join(b, on="id").height == 0
    assert b.height == round(0.1 * (1797 - a.height))  # fractions count what is left
    prov = read_provenance(second)
    assert prov["metrics"]["excluded_rows"] == a.height
    assert prov["metrics"]["selectable_rows"] == 1797 - a.height  # what the 10% counted
    assert prov["params"]["exclude"] == [str(first)]
    rec = [r for r in prov["inputs"] if r.get("role") == "exclude"]
    assert len(rec) == 1 and rec[0]["rows"] == a.height and rec[0]["fingerprint"]


def test_exclude_is_repeatable_and_python_takes_ids(cli, files, tmp_path):
    r1, r2, r3 = (tmp_path / f"r{i}.parquet" for i in (1, 2, 3))
    assert run_select(cli, files, r1, "-b", "50").exit_code == 0
    assert run_select(cli, files, r2, "-b", "50", "--exclude", r1).exit_code == 0
    assert run_select(cli, files, r3, "-b", "50", "--exclude", r1, "--exclude", r2).exit_code == 0
    ids = [set(pl.read_parquet(p)["id"]) for p in (r1, r2, r3)]
    assert not (ids[0] & ids[1]) and not (ids[2] & (ids[0] | ids[1]))
    pool = digits_pool()
    m, sel = select(pool, "kmq", 50, exclude=sorted(ids[0]))
    assert not set(m["id"]) & ids[0] and sel.metrics["excluded_rows"] == 50
    assert set(pool.ids.gather(sel.indices)) == set(m["id"])  # indices index the given pool


def test_exclude_manifest_without_id_column_exits_1(cli, files, tmp_path):
    bad = tmp_path / "bad.parquet"
    pl.DataFrame({"row": [1, 2]}).write_parquet(bad)
    result = run_select(cli, files, tmp_path / "m.parquet", "-b", "20", "--exclude", bad)
    err = one_line_error(result)
    assert "bad.parquet" in err and "'id'" in err and "(columns: row)" in err
    ints = tmp_path / "ints.parquet"
    pl.DataFrame({"id": [1, 2]}).write_parquet(ints)  # the pool's ids are text
    assert "ids" in one_line_error(
        run_select(cli, files, tmp_path / "m.parquet", "-b", "20", "--exclude", ints)
    )


def test_everything_excluded_exits_1(cli, files, tmp_path):
    everything = tmp_path / "all.parquet"
    wide_frame().select("id").write_parquet(everything)
    result = run_select(cli, files, tmp_path / "m.parquet", "-b", "1", "--exclude", everything)
    assert "excluded" in one_line_error(result)
    # the excluded manifest is an input: -o may not overwrite it; a missing one exits 1
    result = run_select(cli, files, everything, "-b", "1", "--exclude", everything)
    assert "also an input" in one_line_error(result, code=2)
    result = run_select(
        cli, files, tmp_path / "m.parquet", "-b", "1", "--exclude", tmp_path / "no.parquet"
    )
    assert "does not exist" in one_line_error(result)


# ------------------------------------------------------------------------------ kmq-weights


def test_update_rule_is_eq6_with_memory():
    prior = np.array([1.0, 2.0, 1.0, 1.0])
    s = np.array([1.0, 3.0, 2.0, 0.0])
    fed = np.array([True, True, True, False])
    w, shifted = update_weights(prior, s, fed)
    raw = np.array([1 * 1 / 2, 2 * 3 / 2, 1 * 2 / 2, 1.0])  # w_j s_j / mean(s); unfed keeps w
    assert not shifted and np.allclose(w, raw / raw.mean())
    same, _ = update_weights(prior, np.array([5.0, 5.0, 5.0, 0.0]), fed)
    assert np.allclose(same, prior / prior.mean())  # equal feedback leaves the weights alone
    neg, shifted = update_weights(np.ones(3), np.array([-1.0, 0.0, 1.0]), np.ones(3, bool))
    assert shifted and np.all(neg > 0) and neg[0] < neg[1] < neg[2]
    soft, _ = update_weights(prior, s, fed, rule="softmax", temperature=1.0)
    e = np.exp(s[:3])
    assert np.allclose(soft[:3] / soft[0], e / e[0])  # no memory of the prior


def test_iterative_kmq_through_the_cli(cli, files, tmp_path):
    r1, fb, w1, r2 = (
        tmp_path / n for n in ("r1.parquet", "fb.parquet", "w1.parquet", "r2.parquet")
    )
    assert run_select(cli, files, r1, "-b", "200").exit_code == 0
    m1 = pl.read_parquet(r1)
    # feedback: high on cluster 3, low elsewhere
    gap = np.where(m1["cluster"].to_numpy() == 3, 2.0, 0.5)
    pl.DataFrame({"id": m1["id"], "gap": gap}).write_parquet(fb)
    out = cli.json("kmq-weights", r1, fb, "--feedback-col", "gap", "-o", w1)
    assert out["clusters"] == 10 and out["feedback_rows_used"] == 200
    weights = pl.read_parquet(w1)
    assert weights.columns == ["cluster", "weight", "feedback_mean", "feedback_rows"]
    w = dict(zip(weights["cluster"], weights["weight"], strict=True))
    assert w[3] == pytest.approx(4 * w[0]) and np.mean(list(w.values())) == pytest.approx(1)
    prov = read_provenance(w1)
    assert [i["path"] for i in prov["inputs"]] == [str(r1), str(fb)]
    assert run_select(cli, files, r2, "-b", "200", "--cluster-weights", w1,
                      "--exclude", r1).exit_code == 0  # fmt: skip
    m2 = pl.read_parquet(r2)
    assert not set(m2["id"]) & set(m1["id"])
    assert per_cluster(m2)[3] > 2.5 * per_cluster(m1)[3]
    # round 3's update remembers round 2's weights (--prior)
    w2 = tmp_path / "w2.parquet"
    pl.DataFrame({"id": m2["id"], "gap": np.ones(m2.height)}).write_parquet(fb)
    cli.json("kmq-weights", r2, fb, "--feedback-col", "gap", "--prior", w1, "-o", w2)
    assert pl.read_parquet(w2)["weight"].to_list() == pytest.approx(weights["weight"].to_list())


def test_kmq_weights_looks_clusters_up_and_refuses_bad_feedback(cli, files, tmp_path):
    manifest = tmp_path / "m.jsonl"
    wide_frame().select("id").head(30).write_ndjson(manifest)  # no cluster column
    fb = tmp_path / "fb.parquet"
    pl.DataFrame({"id": wide_frame()["id"].head(30), "feedback": np.arange(30.0)}).write_parquet(fb)
    out = tmp_path / "w.parquet"
    assert "--clusters" in one_line_error(cli("kmq-weights", manifest, fb, "-o", out))
    summary = kmq_weights(manifest, fb, out, clusters=files["clusters"], rule="softmax",
                          temperature=10.0)  # fmt: skip
    assert summary["clusters_with_feedback"] == pl.read_parquet(out)["feedback_rows"].gt(0).sum()
    pl.DataFrame({"id": wide_frame()["id"].head(2), "feedback": [1.0, float("nan")]}).write_parquet(
        fb
    )
    err = one_line_error(
        cli("kmq-weights", manifest, fb, "--clusters", files["clusters"], "-o", out)
    )
    assert "NaN" in err and "'feedback'" in err
    result = cli("kmq-weights", manifest, fb, "--rule", "additive", "-o", out)
    assert "rule" in one_line_error(result, code=2)


def test_kmq_weights_json_summary_is_machine_readable(cli, files, tmp_path):
    r1, fb = tmp_path / "r1.parquet", tmp_path / "fb.parquet"
    assert run_select(cli, files, r1, "-b", "30").exit_code == 0
    m1 = pl.read_parquet(r1)
    pl.DataFrame({"id": m1["id"], "feedback": -np.arange(30.0)}).write_parquet(fb)
    result = cli("kmq-weights", r1, fb, "-o", tmp_path / "w.parquet", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["shifted"] is True


def test_exclude_with_a_sharded_strategy_and_refused_by_dsir(cli, tmp_path):
    pool = tmp_path / "pool.parquet"
    wide_frame().select("id", "proba", "text").write_parquet(pool)
    r1, r2 = tmp_path / "r1.parquet", tmp_path / "r2.parquet"
    assert cli("select", pool, "-s", "margin", "-b", "30", "-o", r1).exit_code == 0
    result = cli("select", pool, "-s", "margin", "-b", "30", "--exclude", r1, "-o", r2)
    assert result.exit_code == 0, result.output
    a, b = pl.read_parquet(r1), pl.read_parquet(r2)
    assert not set(a["id"]) & set(b["id"])
    # the next 30 by margin: the same as the top 60 without the first 30
    both = cli("select", pool, "-s", "margin", "-b", "60", "-o", tmp_path / "r60.parquet")
    assert both.exit_code == 0
    top60 = set(pl.read_parquet(tmp_path / "r60.parquet")["id"])
    assert set(b["id"]) == top60 - set(a["id"])
    result = cli("select", pool, "-s", "dsir", "--target", pool, "-b", "5", "--exclude", r1,
                 "-o", tmp_path / "d.parquet")  # fmt: skip
    assert "exclude" in one_line_error(result, code=2)
