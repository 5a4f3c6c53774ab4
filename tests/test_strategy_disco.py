"""The `disco` strategy: PDS and JSD exactly on hand-made cases and as properties, stratified
quotas, determinism, guiding models, the long-format checks and the CLI.
Parameters: disagreement (pds, jsd), stratify (auto, group, none), guiding_models,
drop_incomplete."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, SelectkitError, read_provenance, select
from selectkit.disco import disagreement as dis
from selectkit.disco.anchors import even_quotas, stratified_top_k, top_k
from selectkit.disco.data import pivot_predictions

# three models, three classes, four samples: agree, split three ways, mixed, two-vs-one
HAND = np.array(
    [
        [[1, 0, 0], [1, 0, 0], [0.5, 0.5, 0.0], [0.9, 0.1, 0.0]],
        [[1, 0, 0], [0, 1, 0], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0]],
        [[1, 0, 0], [0, 0, 1], [0.6, 0.2, 0.2], [0.1, 0.9, 0.0]],
    ],
    dtype=np.float32,
)


def long_of(proba: np.ndarray, groups=None, ids=None) -> pl.DataFrame:
    """Long table (model-major) of an (M, N, C) array."""
    m, n, c = proba.shape
    ids = list(range(n)) if ids is None else ids
    data = {
        "model": np.repeat([f"m{i}" for i in range(m)], n),
        "id": ids * m,
        "proba": pl.Series(proba.reshape(-1, c).tolist(), dtype=pl.List(pl.Float32)),
    }
    if groups is not None:
        data["group"] = list(groups) * m
    return pl.DataFrame(data)


def kl_mean(p: np.ndarray) -> np.ndarray:
    """(1/M) sum_m KL(p_m || p_bar), straight from the definition (the JSD reference)."""
    p = p.astype(np.float64)
    mean = p.mean(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / mean), 0.0)
    return terms.sum(axis=2).mean(axis=0)


def test_pds_hand_made():
    # class maxima: (1,0,0) -> 1; (1,1,1) -> 3; (0.6,0.8,0.2) -> 1.6; (0.9,0.9,0) -> 1.8
    np.testing.assert_allclose(dis.pds(HAND), [1.0, 3.0, 1.6, 1.8], rtol=1e-6)


def test_jsd_hand_made():
    got = dis.jsd(HAND)
    assert got[0] == 0.0
    assert got[1] == pytest.approx(math.log(3))  # three one-hot models on three classes
    np.testing.assert_allclose(got, kl_mean(HAND), rtol=1e-9, atol=1e-12)
    # two models say (0.9, 0.1), one (0.1, 0.9): by hand
    pbar = np.array([1.9, 1.1]) / 3
    h = lambda q: -(q * np.log(q)).sum()  # noqa: E731
    expected = h(pbar) - (2 * h(np.array([0.9, 0.1])) + h(np.array([0.1, 0.9]))) / 3
    assert got[3] == pytest.approx(expected)


def test_strategy_scores_are_the_disagreement():
    frame = long_of(HAND)
    manifest, _ = select(Pool(frame=frame), "disco", 4, seed=0)
    assert manifest.get_column("id").to_list() == [1, 3, 2, 0]
    np.testing.assert_allclose(manifest.get_column("score").to_numpy(), [3.0, 1.8, 1.6, 1.0])
    # JSD ranks differently: the confident two-vs-one split (0.332 nats) beats the mixed
    # sample (0.175), which PDS ranked higher
    manifest, _ = select(Pool(frame=frame), "disco", 3, seed=0, params={"disagreement": "jsd"})
    assert manifest.get_column("id").to_list() == [1, 3, 2]
    np.testing.assert_allclose(
        manifest.get_column("score").to_numpy(), [math.log(3), 0.33207477, 0.1748777], rtol=1e-6
    )


probas = st.integers(1, 6).flatmap(
    lambda m: st.integers(1, 30).flatmap(
        lambda n: st.integers(2, 5).flatmap(
            lambda c: st.lists(
                st.lists(st.floats(0, 1, allow_nan=False), min_size=c, max_size=c),
                min_size=m * n,
                max_size=m * n,
            ).map(lambda rows: _normalise(np.array(rows), m, n, c))
        )
    )
)


def _normalise(raw: np.ndarray, m: int, n: int, c: int) -> np.ndarray:
    raw = raw + 1e-3  # no all-zero rows
    return (raw / raw.sum(axis=1, keepdims=True)).reshape(m, n, c).astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(p=probas, data=st.data())
def test_disagreement_properties(p, data):
    """Bounds, agreement with the definitions, invariance to model order and to chunking."""
    m, _, c = p.shape
    pds, jsd = dis.pds(p), dis.jsd(p)
    assert np.all(pds >= 1 - 1e-5) and np.all(pds <= min(m, c) + 1e-5)
    np.testing.assert_allclose(pds, p.max(axis=0).sum(axis=1), rtol=1e-6)
    assert np.all(jsd >= 0) and np.all(jsd <= math.log(min(m, c)) + 1e-6)
    np.testing.assert_allclose(jsd, kl_mean(p), atol=1e-6)
    perm = data.draw(st.permutations(range(m)))
    np.testing.assert_allclose(dis.pds(p[list(perm)]), pds, rtol=1e-6)
    np.testing.assert_allclose(dis.jsd(p[list(perm)]), jsd, atol=1e-9)
    old = dis.CHUNK_BYTES
    dis.CHUNK_BYTES = 1  # one sample per chunk
    try:
        np.testing.assert_array_equal(dis.pds(p), pds)
        np.testing.assert_allclose(dis.jsd(p), jsd, atol=1e-12)
    finally:
        dis.CHUNK_BYTES = old


def test_identical_models_have_no_disagreement(digits):
    x, _ = digits
    p = np.repeat(np.abs(x[:50, :10])[None] + 1e-3, 4, axis=0)
    p /= p.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(dis.pds(p), 1.0, rtol=1e-5)
    np.testing.assert_allclose(dis.jsd(p), 0.0, atol=1e-7)


def test_even_quotas_exact():
    assert even_quotas(np.array([10, 10, 10]), 10).tolist() == [4, 3, 3]  # remainder to the first
    assert even_quotas(np.array([2, 5, 100]), 30).tolist() == [2, 5, 23]  # surplus flows on
    assert even_quotas(np.array([0, 5, 1]), 4).tolist() == [0, 3, 1]
    assert even_quotas(np.array([3, 4]), 100).tolist() == [3, 4]


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8), budget=st.integers(0, 200))
def test_even_quotas_properties(sizes, budget):
    sizes = np.array(sizes)
    q = even_quotas(sizes, budget)
    assert q.sum() == min(budget, sizes.sum())
    assert np.all(q >= 0) and np.all(q <= sizes)
    # as even as the sizes allow: a stratum below another's quota is full
    for i in range(q.size):
        for j in range(q.size):
            if q[i] + 1 < q[j]:
                assert q[i] == sizes[i]


def test_stratified_top_k_per_group():
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], dtype=float)
    groups = np.array(["a"] * 6 + ["b"] * 3 + ["c"])
    cand = np.arange(10)
    # quotas over (a, b, c) for 6 picks: 2, 2, 2 -> c has 1, its surplus goes to a
    picks = stratified_top_k(scores, cand, groups, 6)
    assert picks.tolist() == [0, 1, 2, 6, 7, 9]
    assert top_k(scores, cand, 3).tolist() == [0, 1, 2]
    # ties go to the lower index
    assert top_k(np.zeros(5), np.arange(5), 2).tolist() == [0, 1]


def test_stratified_selection_through_select():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), (5, 60)).astype(np.float32)
    groups = ["big"] * 40 + ["mid"] * 15 + ["tiny"] * 5
    frame = long_of(p, groups)
    pds = dis.pds(p)
    manifest, sel = select(Pool(frame=frame), "disco", 21, seed=0)
    assert sel.metrics["stratified"] is True
    got = np.array(groups)[sel.indices]
    # 21 over (big, mid, tiny): 7 each, but tiny has 5, so its 2 spare go one each to the others
    assert {g: int((got == g).sum()) for g in ("big", "mid", "tiny")} == {
        "big": 8,
        "mid": 8,
        "tiny": 5,
    }
    for g in ("big", "mid"):
        rows = np.flatnonzero(np.array(groups) == g)
        k = int((got == g).sum())
        assert set(sel.indices[got == g]) == set(rows[np.argsort(-pds[rows], kind="stable")][:k])
    # the manifest is in score order
    scores = manifest.get_column("score").to_numpy()
    assert np.all(np.diff(scores) <= 0)
    _, gsel = select(Pool(frame=frame), "disco", 21, seed=0, params={"stratify": "none"})
    assert gsel.metrics["stratified"] is False
    assert set(gsel.indices) == set(np.argsort(-pds, kind="stable")[:21])
    with pytest.raises(SelectkitError, match="needs a 'group' column"):
        select(Pool(frame=frame.drop("group")), "disco", 3, seed=0, params={"stratify": "group"})


def test_stratify_auto_follows_the_group_column():
    p = np.random.default_rng(1).dirichlet(np.ones(3), (3, 20)).astype(np.float32)
    _, a = select(Pool(frame=long_of(p, ["x"] * 10 + ["y"] * 10)), "disco", 4, seed=0)
    _, b = select(Pool(frame=long_of(p)), "disco", 4, seed=0, params={"stratify": "auto"})
    assert a.metrics["stratified"] and not b.metrics["stratified"]


def test_guiding_models_are_drawn_and_recorded(long_frame):
    pool = Pool(frame=long_frame)
    _, a = select(pool, "disco", 20, seed=0, params={"guiding_models": 3})
    _, b = select(pool, "disco", 20, seed=0, params={"guiding_models": 3})
    assert a.metrics["guiding_models"] == b.metrics["guiding_models"]
    assert np.array_equal(a.indices, b.indices)
    drawn = {tuple(select(pool, "disco", 5, seed=s, params={"guiding_models": 3})[1].metrics[
        "guiding_models"]) for s in range(8)}  # fmt: skip
    assert len(drawn) > 1 and all(len(d) == 3 for d in drawn)
    _, full = select(pool, "disco", 20, seed=0, params={"guiding_models": 6})
    _, every = select(pool, "disco", 20, seed=0)
    assert np.array_equal(full.indices, every.indices)
    assert every.metrics["n_models"] == 6 and len(every.metrics["guiding_models"]) == 6
    with pytest.raises(SelectkitError, match="guiding_models=7 is more than the 6 models"):
        select(pool, "disco", 5, seed=0, params={"guiding_models": 7})


def test_high_disagreement_samples_are_hard(long_frame, digits):
    """The bias pitfall on real models: accuracy on DISCO's picks is far below accuracy overall."""
    _, y = digits
    preds = pivot_predictions(long_frame)
    correct = preds.proba.argmax(axis=2) == y[None, :]
    _, sel = select(Pool(frame=long_frame), "disco", 100, seed=0)
    assert correct[:, sel.indices].mean() < correct.mean() - 0.2
    assert sel.metrics["mean_score_selected"] > sel.metrics["mean_score_pool"]


# ---------------------------------------------------------------------- long-format checks


def test_rows_not_summing_to_one_are_rescaled_with_a_warning(capsys, monkeypatch):
    from selectkit import console

    monkeypatch.setitem(console._state, "quiet", False)  # CLI tests run with -q
    frame = long_of(HAND).with_columns(
        pl.when(pl.col("id") == 3).then(pl.col("proba").list.eval(pl.element() * 0.5))
        .otherwise(pl.col("proba")).alias("proba")
    )  # fmt: skip
    preds = pivot_predictions(frame, where="'t.parquet'")
    np.testing.assert_allclose(preds.proba, HAND, rtol=1e-6)
    assert (
        "3 rows of 'proba' do not sum to 1 (e.g. model 'm0', id 3: 0.5)" in capsys.readouterr().err
    )


def test_missing_rows_are_reported_or_dropped(long_frame):
    cut = long_frame.filter(~((pl.col("model") == "gaussnb") & (pl.col("id") < "d0010")))
    with pytest.raises(SelectkitError, match=r"1 of 6 models lack rows.*'gaussnb' lacks 10"):
        select(Pool(frame=cut), "disco", 5, seed=0)
    manifest, sel = select(Pool(frame=cut), "disco", 5, seed=0, params={"drop_incomplete": True})
    assert sel.metrics["dropped_models"] == {"gaussnb": 10}
    assert sel.metrics["n_models"] == 5 and "gaussnb" not in sel.metrics["guiding_models"]
    assert manifest.height == 5


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: pl.concat([f, f.head(1)]), "duplicate rows .*id 0 appears twice"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("id") == 2)
                .then(pl.lit([0.5, 0.5], dtype=pl.List(pl.Float32)))
                .otherwise(pl.col("proba"))
                .alias("proba")
            ),
            "has 3 classes in row 0 but 2 for model 'm0', id 2",
        ),
        (
            lambda f: f.with_columns(
                pl.when((pl.col("id") == 1) & (pl.col("model") == "m1"))
                .then(pl.lit([float("nan"), 0.5, 0.5], dtype=pl.List(pl.Float32)))
                .otherwise(pl.col("proba"))
                .alias("proba")
            ),
            "NaN or infinite values for model 'm1', id 1",
        ),
        (
            lambda f: f.with_columns(pl.col("proba").list.eval(pl.element() * 3 - 1)),
            "not a probability vector .* not logits",
        ),
        (lambda f: f.with_columns(pl.lit(None, pl.String).alias("model")), "'model' .* is null"),
        (
            lambda f: f.with_columns(pl.concat_str(pl.col("model"), pl.lit("g")).alias("group")),
            "'group' .* differs between the rows of id 0",
        ),
        (lambda f: f.with_columns(pl.lit("x").alias("proba")), "not a list of class"),
    ],
)
def test_bad_long_tables_are_refused(mutate, message):
    with pytest.raises(SelectkitError, match=message):
        select(Pool(frame=mutate(long_of(HAND))), "disco", 2, seed=0)


def test_cli_select_parquet_and_jsonl(cli, tmp_path, long_frame):
    src = tmp_path / "preds.parquet"
    long_frame.write_parquet(src)
    out = tmp_path / "anchors.parquet"
    result = cli("select", src, "-s", "disco", "-b", "50", "-p", "disagreement=jsd", "-o", out)
    assert result.exit_code == 0, result.stderr
    manifest = pl.read_parquet(out)
    assert manifest.height == 50 and manifest.get_column("id").n_unique() == 50
    assert manifest.get_column("id").is_in(long_frame.get_column("id").implode()).all()
    prov = read_provenance(out)
    assert prov["params"]["strategy_params"]["disagreement"] == "jsd"
    # select sorts the models by name, so the input's model order does not matter
    assert prov["metrics"]["guiding_models"] == sorted(long_frame["model"].unique().to_list())
    assert prov["metrics"]["pool_rows"] == 1797  # samples, not (model, id) rows
    # the same table as JSON Lines, split in one file per model, gives the same manifest
    parts = []
    for name, part in long_frame.group_by("model", maintain_order=True):
        path = tmp_path / f"{name[0]}.jsonl"
        part.write_ndjson(path)
        parts.append(path)
    out2 = tmp_path / "anchors2.parquet"
    result = cli("select", *parts, "-s", "disco", "-b", "50", "-p", "disagreement=jsd", "-o", out2)
    assert result.exit_code == 0, result.stderr
    assert pl.read_parquet(out2).equals(manifest)


def test_cli_reports_incomplete_models(cli, tmp_path, long_frame):
    src = tmp_path / "preds.parquet"
    long_frame.filter(~((pl.col("model") == "knn_k5") & (pl.col("id") == "d0003"))).write_parquet(
        src
    )
    out = tmp_path / "a.parquet"
    result = cli("select", src, "-s", "disco", "-b", "5", "-o", out)
    assert result.exit_code == 1
    assert "'knn_k5' lacks 1" in result.stderr and "--drop-incomplete" in result.stderr
    assert not out.exists()
    result = cli("select", src, "-s", "disco", "-b", "5", "-p", "drop_incomplete=true", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert read_provenance(out)["metrics"]["dropped_models"] == {"knn_k5": 1}


def test_any_row_order_pivots_to_the_same_predictions(long_frame):
    """A model-major table takes the fast grid path; shuffled rows take the general scatter. Both
    give the same probabilities for every (model, id)."""
    grid = pivot_predictions(long_frame)
    shuffled = long_frame.sample(fraction=1.0, shuffle=True, seed=3)
    general = pivot_predictions(shuffled)
    m_order = [general.models.index(name) for name in grid.models]
    lookup = {v: i for i, v in enumerate(general.ids.to_list())}
    s_order = [lookup[v] for v in grid.ids.to_list()]
    np.testing.assert_array_equal(general.proba[m_order][:, s_order], grid.proba)
    np.testing.assert_array_equal(general.groups[s_order], grid.groups)
    # both paths score the samples alike
    np.testing.assert_allclose(dis.pds(general.proba)[s_order], dis.pds(grid.proba), rtol=1e-6)


def test_cli_select_from_stdin(cli, long_frame):
    small = long_frame.filter(pl.col("id") < "d0100").drop("label")
    result = cli("select", "-", "-s", "disco", "-b", "7", "-o", "-", input=small.write_ndjson())
    assert result.exit_code == 0, result.stderr
    manifest = pl.read_ndjson(result.stdout.encode())
    expected, _ = select(Pool(frame=small), "disco", 7, seed=0)
    assert manifest.get_column("id").to_list() == expected.get_column("id").to_list()
