"""bald: H(mean p_t) - mean H(p_t) from proba_mc; zero when passes agree; read from Parquet."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.stats import entropy as H

from selectkit import Pool, select
from selectkit.strategies.uncertainty import bald


def mc_table(n=200, t=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(c), size=(n, t))


def test_matches_the_definition_and_picks_disagreement():
    mc = mc_table()
    agree = np.repeat(mc[:, :1], mc.shape[1], axis=1)  # every pass the same: no information
    both = np.concatenate([agree, mc])
    score = bald(Pool.from_arrays(proba_mc=both), np.arange(len(both)))
    assert np.allclose(score[: len(mc)], 0, atol=1e-6)
    want = H(mc.mean(axis=1), axis=1) - H(mc, axis=2).mean(axis=1)
    assert np.allclose(score[len(mc) :], want, atol=1e-5)
    _, sel = select(Pool.from_arrays(proba_mc=both), "bald", 50)
    assert (sel.indices >= len(mc)).all()


def test_cli_reads_nested_lists(cli, tmp_path):
    mc = mc_table(n=50)
    pl.DataFrame({"id": [f"x{i}" for i in range(50)], "proba_mc": mc.tolist()}).write_parquet(
        tmp_path / "mc.parquet"
    )
    res = cli(
        "select", tmp_path / "mc.parquet", "-s", "bald", "-b", "5", "-o", tmp_path / "m.parquet"
    )
    assert res.exit_code == 0, res.stderr
    want = H(mc.mean(axis=1), axis=1) - H(mc, axis=2).mean(axis=1)
    got = pl.read_parquet(tmp_path / "m.parquet")["id"].to_list()
    assert got == [f"x{i}" for i in np.argsort(-want, kind="stable")[:5]]


def test_ragged_passes_are_refused(cli, tmp_path):
    rows = [[[0.5, 0.5], [0.2, 0.8]], [[1.0, 0.0]]]
    pl.DataFrame({"proba_mc": rows}).write_parquet(tmp_path / "r.parquet")
    res = cli(
        "select", tmp_path / "r.parquet", "-s", "bald", "-b", "1", "-o", tmp_path / "m.parquet"
    )
    assert res.exit_code == 1
    assert "proba_mc" in res.stderr and "ragged" in res.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_fixed_size_array_columns_work_too(tmp_path):
    """A (n, T, C) numpy array written by polars is an Array(Array) column, not lists."""
    mc = mc_table(n=30).astype(np.float32)
    frame = pl.DataFrame({"id": np.arange(30), "proba_mc": mc})
    assert isinstance(frame.schema["proba_mc"], pl.Array)
    frame.write_parquet(tmp_path / "a.parquet")
    from selectkit import load_pool

    pool = load_pool([tmp_path / "a.parquet"])
    assert np.array_equal(pool.proba_mc, mc)
    _, sel = select(pool, "bald", 4)
    assert (
        sel.indices.tolist() == select(Pool.from_arrays(proba_mc=mc), "bald", 4)[1].indices.tolist()
    )
