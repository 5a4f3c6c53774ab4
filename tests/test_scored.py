"""The scored-strategy mechanism: proba validation, the stochastic and AnchorAL modifiers, and
their usage errors, through the Python API and the CLI."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from selectkit import Pool, select
from selectkit.errors import SelectkitError, SelectkitUsageError
from tests._al_helpers import digits_proba


@pytest.fixture(scope="module")
def proba(digits):
    return digits_proba(digits)


@pytest.mark.parametrize(
    "rows, message",
    [
        ([[0.5, 0.5], [0.2, 0.3, 0.5]], "ragged"),
        ([[0.5, 0.5], [float("nan"), 1.0]], "NaN"),
        ([[0.5, 0.5], [2.0, 3.0]], "not a probability distribution"),
        ([[0.5, 0.5], [1.5, -0.5]], "not a probability distribution"),
    ],
)
def test_bad_proba_tables_exit_1_naming_the_column(cli, tmp_path, rows, message):
    pl.DataFrame({"id": [1, 2], "scores": rows}).write_parquet(tmp_path / "p.parquet")
    out = tmp_path / "m.parquet"
    res = cli("select", tmp_path / "p.parquet", "-s", "margin", "-b", "1", "-o", out)
    assert res.exit_code == 1
    assert "needs column 'proba'" in res.stderr  # named 'scores' here: not found
    pl.DataFrame({"id": [1, 2], "proba": rows}).write_parquet(tmp_path / "p.parquet")
    res = cli("select", tmp_path / "p.parquet", "-s", "margin", "-b", "1", "-o", out)
    assert res.exit_code == 1, res.stderr
    assert "'proba'" in res.stderr and message in res.stderr and "p.parquet" in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("mode", ["softmax", "power", "softrank"])
def test_stochastic_is_reproducible_and_differs_from_top_k(proba, mode):
    pool = Pool.from_arrays(proba=proba)
    a, sa = select(pool, "entropy", 40, seed=3, stochastic=mode, coldness=1.0)
    b, _ = select(pool, "entropy", 40, seed=3, stochastic=mode, coldness=1.0)
    c, _ = select(pool, "entropy", 40, seed=4, stochastic=mode, coldness=1.0)
    top, _ = select(pool, "entropy", 40, seed=3)
    assert a.equals(b) and not a.equals(c)
    assert set(a["id"]) != set(top["id"])
    assert sa.metrics["stochastic"] == mode
    # the manifest score is the acquisition score (entropy), not the perturbed key
    h = -(proba * np.log(np.clip(proba, 1e-30, None))).sum(1)
    assert np.allclose(a["score"].to_numpy(), h[sa.indices], rtol=1e-5)


@pytest.mark.parametrize("mode", ["softmax", "power", "softrank"])
def test_large_beta_gives_back_top_k(proba, mode):
    pool = Pool.from_arrays(proba=proba)
    top, _ = select(pool, "margin", 10, seed=0)
    cold, _ = select(pool, "margin", 10, seed=0, stochastic=mode, coldness=1e7)
    assert set(cold["id"]) == set(top["id"])


@pytest.mark.parametrize(
    "mode, beta, want",
    [
        ("power", 1.0, [0.5, 0.25, 0.1, 0.0]),  # p ∝ s^β
        ("power", 2.0, [0.25, 0.0625, 0.01, 0.0]),
        ("softmax", 3.0, np.exp(3.0 * np.array([0.5, 0.25, 0.1, 0.0]))),  # p ∝ exp(β s)
        ("softrank", 1.0, [1.0, 1 / 2, 1 / 3, 1 / 4]),  # p ∝ rank^-β
    ],
)
def test_stochastic_draws_follow_their_distribution(mode, beta, want):
    """One draw at a time, 3,000 times: the row frequencies match the stated distribution
    (chi-square at p = 0.001)."""
    from selectkit.strategies.scored import Acquisition, pick

    scores = np.array([0.5, 0.25, 0.1, 0.0])
    pool = Pool.from_arrays(proba=np.full((4, 2), 0.5))
    rows, mods, rng = (
        np.arange(4),
        Acquisition(stochastic=mode, coldness=beta),
        np.random.default_rng(0),
    )
    counts = np.zeros(4)
    for _ in range(3000):
        counts[pick(pool, rows, scores, 1, rng, mods)[0]] += 1
    expected = np.asarray(want, dtype=np.float64) / np.sum(want) * 3000
    live = expected > 0
    assert (counts[~live] == 0).all()
    chi2 = ((counts[live] - expected[live]) ** 2 / expected[live]).sum()
    assert chi2 < {2: 13.8, 3: 16.3}[int(live.sum()) - 1]


def test_modifier_on_an_unscored_strategy_is_a_usage_error(cli, digits, tmp_path):
    with pytest.raises(SelectkitUsageError, match=r"scored strategy \(.*margin"):
        select(Pool.from_arrays(digits[0]), "kcenter", 5, stochastic="power")
    np.save(tmp_path / "x.npy", digits[0])
    res = cli(
        "select",
        tmp_path / "x.npy",
        "-s",
        "kcenter",
        "-b",
        "5",
        "--subpool",
        "anchoral",
        "-o",
        tmp_path / "m.parquet",
    )
    assert res.exit_code == 2 and "--subpool works only with a scored strategy" in res.stderr
    res = cli(
        "select",
        tmp_path / "x.npy",
        "-s",
        "kcenter",
        "-b",
        "5",
        "--stochastic",
        "hot",
        "-o",
        tmp_path / "m.parquet",
    )
    assert res.exit_code == 2 and "softmax, power, softrank" in res.stderr


def test_power_needs_non_negative_scores(digits):
    from selectkit.strategies.scored import Acquisition, acquire

    pool = Pool.from_arrays(digits[0][:20])
    with pytest.raises(SelectkitUsageError, match="non-negative"):
        acquire(
            pool,
            3,
            np.random.default_rng(0),
            lambda pool, rows: -np.ones(rows.size),
            {},
            Acquisition(stochastic="power"),
        )
    with pytest.raises(SelectkitUsageError, match="coldness"):
        Acquisition(stochastic="softmax", coldness=0.0)


def anchoral_pool(digits, proba, labelled_classes=(3, 8), per_class=15):
    x, y = digits
    lab = np.full(len(y), None, dtype=object)
    for c in labelled_classes:
        lab[np.flatnonzero(y == c)[:per_class]] = c
    return Pool.from_arrays(x, labels=lab, proba=proba)


def test_anchoral_subpool_is_near_the_anchors_classes(digits, proba):
    y = digits[1]
    pool = anchoral_pool(digits, proba)
    _, sel = select(
        pool,
        "margin",
        30,
        seed=0,
        subpool="anchoral",
        subpool_options={"anchors": 5, "neighbours": 20, "subpool_size": 60},
    )
    assert sel.metrics["subpool_rows"] == 60
    # retrieved by 3s and 8s: the batch is mostly 3s and 8s (2 of 10 classes)
    assert np.isin(y[sel.indices], [3, 8]).mean() > 0.6
    full, _ = select(pool, "margin", 30, seed=0)
    assert np.isin(y[full["id"].to_numpy()], [3, 8]).mean() < 0.6


def test_anchoral_small_subpool_is_filled_from_the_rest(digits, proba):
    pool = anchoral_pool(digits, proba)
    _, sel = select(
        pool,
        "entropy",
        40,
        seed=0,
        subpool="anchoral",
        subpool_options={"anchors": 2, "neighbours": 5, "subpool_size": 10},
    )
    assert sel.indices.size == 40 and np.unique(sel.indices).size == 40
    assert sel.metrics["subpool_rows"] == 10


def test_anchoral_cold_start_scores_the_whole_pool(digits, proba):
    pool = Pool.from_arrays(digits[0], proba=proba)
    a, _ = select(pool, "margin", 10, subpool="anchoral")
    b, _ = select(pool, "margin", 10)
    assert a["id"].to_list() == b["id"].to_list()


def test_anchoral_needs_an_embedding(proba):
    with pytest.raises(SelectkitError, match="needs column 'embedding'"):
        select(Pool.from_arrays(proba=proba), "margin", 5, subpool="anchoral")


def test_cli_modifiers_end_to_end_with_provenance(cli, tmp_path, full_frame):
    path = tmp_path / "pool.parquet"
    labels = pl.Series("label", [i % 10 if i < 100 else None for i in range(full_frame.height)])
    full_frame.with_columns(labels).write_parquet(path)
    out = tmp_path / "m.parquet"
    res = cli(
        "select",
        path,
        "-s",
        "entropy",
        "-b",
        "25",
        "--stochastic",
        "softrank",
        "--coldness",
        "2",
        "--subpool",
        "anchoral",
        "--subpool-size",
        "300",
        "--anchors",
        "3",
        "--anchor-neighbours",
        "40",
        "-o",
        out,
    )
    assert res.exit_code == 0, res.stderr
    from selectkit import read_provenance

    prov = read_provenance(out)
    assert prov["params"]["acquisition"] == {
        "stochastic": "softrank",
        "coldness": 2.0,
        "subpool": "anchoral",
        "anchors": 3,
        "neighbours": 40,
        "subpool_size": 300,
    }
    assert prov["metrics"]["subpool_rows"] == 300
    assert pl.read_parquet(out).height == 25


def test_unknown_subpool_option_is_a_usage_error(proba, digits):
    with pytest.raises(SelectkitUsageError, match="unknown subpool option 'size'"):
        select(
            Pool.from_arrays(digits[0], proba=proba),
            "margin",
            5,
            subpool="anchoral",
            subpool_options={"size": 10},
        )


def test_anchoral_subpool_matches_brute_force(digits, proba, monkeypatch):
    """With at most A labelled rows per class every labelled row is an anchor, so the subpool is
    exactly: each anchor's K most cosine-similar unlabelled rows, scored by mean similarity over
    the anchors that retrieved them, top M. Small chunks exercise the merge across chunks."""
    from selectkit.strategies import scored
    from selectkit.strategies.scored import Acquisition, anchoral_subpool

    monkeypatch.setattr(scored, "CHUNK_ROWS", 97)
    x = digits[0]
    pool = anchoral_pool(digits, proba, labelled_classes=(1, 5, 7), per_class=4)
    mods = Acquisition(subpool="anchoral", anchors=4, neighbours=15, subpool_size=25)
    got = anchoral_subpool(pool, np.random.default_rng(0), mods)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    anchors = np.flatnonzero(pool.labelled_mask)
    cand = np.flatnonzero(~pool.labelled_mask)
    sims = unit[anchors] @ unit[cand].T
    hits: dict[int, list[float]] = {}
    for a in range(anchors.size):
        for j in np.argsort(-sims[a], kind="stable")[:15]:
            hits.setdefault(int(cand[j]), []).append(float(sims[a, j]))
    mean = {row: np.mean(v) for row, v in hits.items()}
    want = sorted(sorted(mean, key=lambda r: (-mean[r], r))[:25])
    assert got.tolist() == want
