"""least-confidence: score = 1 - max p, top scores first, ties broken by ascending id."""

from __future__ import annotations

import numpy as np
import polars as pl

from selectkit import Pool, select
from tests._al_helpers import digits_proba


def test_scores_and_order_match_a_direct_computation(digits):
    p = digits_proba(digits)
    manifest, sel = select(Pool.from_arrays(proba=p), "least-confidence", 50)
    expected = np.argsort(-(1 - p.max(axis=1)), kind="stable")[:50]
    assert sel.indices.tolist() == expected.tolist()
    assert np.allclose(manifest["score"].to_numpy(), 1 - p[expected].max(axis=1), atol=1e-6)


def test_ties_broken_by_id_not_by_row_order():
    p = np.tile([[0.5, 0.5], [0.9, 0.1]], (5, 1))  # rows 0, 2, 4, 6, 8 tie at the top
    ids = [f"r{9 - i}" for i in range(10)]  # ids descend as rows ascend
    manifest, _ = select(Pool.from_arrays(proba=p, ids=ids), "least-confidence", 3)
    assert manifest["id"].to_list() == ["r1", "r3", "r5"]


def test_cli_reads_proba_lists_from_parquet(cli, tmp_path, digits):
    p = digits_proba(digits)
    pl.DataFrame({"id": np.arange(len(p)), "proba": p.tolist()}).write_parquet(
        tmp_path / "p.parquet"
    )
    out = tmp_path / "m.parquet"
    res = cli("select", tmp_path / "p.parquet", "-s", "least-confidence", "-b", "20", "-o", out)
    assert res.exit_code == 0, res.stderr
    ids = pl.read_parquet(out)["id"].to_list()
    assert ids == np.argsort(-(1 - p.max(axis=1)), kind="stable")[:20].tolist()
