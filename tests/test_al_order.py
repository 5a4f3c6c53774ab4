"""`al simulate` is order-free: the test split and the initial set of each repeat derive from
(seed, repeat, row id), and every fit and selection sees the rows in id order, so a shuffled copy
of the same labelled table gives the same curves, summary and recorded splits. Through the real
CLI on real data: Rotten Tomatoes embedded with `selectkit embed --keep label` (string ids) and
scikit-learn's digits (integer ids)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from selectkit import read_provenance
from selectkit.al import simulate

TIMING = ["fit_s", "select_s"]  # wall-clock seconds: the only columns that may differ
SUMMARY_TIMING = ["select_s_per_repeat"]
ARGS = ["--init", "10", "--batch", "5", "--rounds", "3", "--repeats", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def rt_labelled(tmp_path_factory, rt_small):
    """400 Rotten Tomatoes reviews (labels fresh / rotten / plot) embedded through the CLI."""
    from typer.testing import CliRunner

    from selectkit.cli import app

    out = tmp_path_factory.mktemp("al_order") / "rt.parquet"
    res = CliRunner().invoke(app, ["-q", "embed", str(rt_small), "--keep", "label", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def digits_labelled(tmp_path_factory, digits):
    x, y = digits
    path = tmp_path_factory.mktemp("al_order") / "digits.parquet"
    # ids that are not the row numbers, so a shuffle cannot coincide with them
    ids = np.arange(len(x), dtype=np.int64) * 7 + 1000
    pl.DataFrame({"id": ids, "embedding": x, "label": y}).write_parquet(path)
    return path


def shuffled(path, tmp_path, seed: int):
    copy = tmp_path / f"shuffled_{seed}.parquet"
    table = pl.read_parquet(path)
    out = table.sample(fraction=1, shuffle=True, seed=seed)
    assert not out["id"].equals(table["id"])  # the rows really moved
    out.write_parquet(copy)
    return copy


def simulate_cli(cli, table, tmp_path, name: str, *extra: str):
    curves, summary = tmp_path / f"{name}.parquet", tmp_path / f"{name}_summary.parquet"
    res = cli("al", "simulate", table, "-s", "random,margin", *ARGS, *extra, "-o", curves,
              "--summary", summary)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    return pl.read_parquet(curves), pl.read_parquet(summary), read_provenance(curves)


@pytest.mark.parametrize("data", ["rt_labelled", "digits_labelled"])
def test_shuffled_table_gives_the_same_curves_summary_and_splits(cli, tmp_path, data, request):
    table = request.getfixturevalue(data)
    curves, summary, prov = simulate_cli(cli, table, tmp_path, "given")
    for seed in (1, 2):
        c, s, p = simulate_cli(cli, shuffled(table, tmp_path, seed), tmp_path, f"shuffled{seed}")
        assert c.drop(TIMING).equals(curves.drop(TIMING))
        assert s.drop(SUMMARY_TIMING).equals(summary.drop(SUMMARY_TIMING))
        assert p["metrics"]["splits"] == prov["metrics"]["splits"]
        assert p["metrics"]["summary"].keys() == prov["metrics"]["summary"].keys()
    assert curves["selected"].list.len().sum() == 2 * 2 * 3 * 5
    # the curves are real ones: the picks vary by strategy, the accuracy rises with labels
    assert curves.filter(pl.col("round") == 3)["accuracy"].mean() > (
        curves.filter(pl.col("round") == 0)["accuracy"].mean()
    )


def test_provenance_records_each_repeats_test_and_initial_ids(cli, tmp_path, rt_labelled):
    curves, _, prov = simulate_cli(cli, rt_labelled, tmp_path, "given")
    table = pl.read_parquet(rt_labelled)
    splits = prov["metrics"]["splits"]
    assert [s["repeat"] for s in splits] == [0, 1]
    for rec in splits:
        test, init = rec["test"], rec["init"]
        assert init["count"] == 10 == len(init["ids"]) and init["ids"] == sorted(init["ids"])
        assert test["count"] == len(test["ids"]) == prov["metrics"]["test_rows"]
        assert not set(test["ids"]) & set(init["ids"])
        # stratified: each label keeps about a quarter of its rows in the test set
        counts = table.filter(pl.col("id").is_in(test["ids"]))["label"].value_counts()
        totals = table["label"].value_counts()
        for label, n in zip(totals["label"], totals["count"], strict=True):
            k = counts.filter(pl.col("label") == label)["count"].item()
            assert k == max(1, round(0.25 * n))
        # the picks of that repeat come from the pool: neither the test nor the initial set
        part = curves.filter(pl.col("repeat") == rec["repeat"])
        picked = {i for ids in part["selected"].to_list() for i in ids}
        assert not picked & set(test["ids"]) and not picked & set(init["ids"])
    assert splits[0]["test"]["ids"] != splits[1]["test"]["ids"]  # a split per repeat
    assert splits[0]["init"]["ids"] != splits[1]["init"]["ids"]
    # the fingerprint is sha256 of the sorted ids, one per line
    import hashlib

    text = "".join(f"{i}\n" for i in sorted(splits[0]["test"]["ids"]))
    assert splits[0]["test"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_another_seed_gives_other_splits(cli, tmp_path, digits_labelled):
    _, _, a = simulate_cli(cli, digits_labelled, tmp_path, "seed3")
    _, _, b = simulate_cli(cli, digits_labelled, tmp_path, "seed4", "--seed", "4")
    for ra, rb in zip(a["metrics"]["splits"], b["metrics"]["splits"], strict=True):
        assert ra["test"]["sha256"] != rb["test"]["sha256"]
        assert ra["init"]["ids"] != rb["init"]["ids"]


def test_api_on_permuted_arrays_and_large_sets_as_fingerprints(digits, monkeypatch):
    """The Python API too: permuted (x, y, ids) give the same curves; a set larger than
    ``LISTED_IDS`` is recorded by count and fingerprint only."""
    import importlib

    simulate_module = importlib.import_module("selectkit.al.simulate")  # the function shadows it
    monkeypatch.setattr(simulate_module, "LISTED_IDS", 100)
    x, y = digits
    ids = np.array([f"img-{i}" for i in range(len(x))], dtype=object)
    kw = dict(strategies=["random", "margin", "badge"], init=10, batch=5, rounds=2, repeats=1)
    a = simulate(x, y, ids=ids, seed=5, **kw)
    perm = np.random.default_rng(0).permutation(len(x))
    b = simulate(x[perm], y[perm], ids=ids[perm], seed=5, **kw)
    assert a.curves.drop(TIMING).equals(b.curves.drop(TIMING))
    assert a.info["splits"] == b.info["splits"]
    test = a.info["splits"][0]["test"]
    assert test["count"] > 100 and "ids" not in test and len(test["sha256"]) == 64
    assert len(a.info["splits"][0]["init"]["ids"]) == 10


def test_duplicate_or_mismatched_ids_are_refused(digits):
    from selectkit.errors import SelectkitError

    x, y = digits
    kw = dict(strategies=["random"], init=5, batch=5, rounds=1, repeats=1)
    with pytest.raises(SelectkitError, match="ids"):
        simulate(x[:50], y[:50], ids=np.zeros(50, dtype=np.int64), **kw)
    with pytest.raises(SelectkitError, match="50 vectors but 49 ids"):
        simulate(x[:50], y[:50], ids=np.arange(49), **kw)
