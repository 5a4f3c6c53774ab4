"""select's option handling and parameter validation: what a newcomer gets wrong first."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from selectkit import Pool, SelectkitUsageError, read_provenance, select


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    x, _ = digits
    folder = tmp_path_factory.mktemp("opts")
    ids = [f"{i:05d}" for i in range(len(x))]  # string ids with leading zeros
    emb = folder / "emb.parquet"
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(emb)
    scores = folder / "dyn.parquet"
    pl.DataFrame({"id": ids, "aum": np.linspace(-1, 1, len(x)), "gloss": 1.0}).write_parquet(scores)
    return folder, emb, scores


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strata", "0"], "strata=.* must lie in"),
        (["--strata", "10000000"], "strata=.* must lie in"),
        (["--beta", "1.5"], "beta=.* must lie in"),
        (["--hard", "medium"], "must be one of"),
        (["--strata", "2.5"], "is not a int"),
        (["-x"], "no such option .-x. for `select`"),
        (["--stratta", "3"], "no such option '--stratta': did you mean --strata"),
    ],
)
def test_bad_strategy_options_are_usage_errors(cli, files, args, message):
    folder, emb, scores = files
    out = folder / "m.parquet"
    r = cli("select", emb, scores, "-s", "ccs", "--score-col", "aum", "-b", "10", *args, "-o", out)
    assert r.exit_code == 2, r.output
    assert re.search(message, r.output), r.output
    assert not out.exists()


def test_python_api_refuses_bools_and_fractions_for_integers(digits):
    pool = Pool.from_arrays(digits[0], score=np.arange(len(digits[0]), dtype=float))
    for bad in (True, 2.7, float("nan")):
        with pytest.raises(SelectkitUsageError):
            select(pool, "ccs", 10, params={"strata": bad})
    with pytest.raises(SelectkitUsageError, match="finite"):
        select(pool, "ccs", 10, params={"beta": float("inf")})


def test_beta_clamped_by_the_budget_is_recorded_as_used(cli, files):
    folder, emb, scores = files
    out = folder / "all.parquet"
    r = cli("select", emb, scores, "-s", "ccs", "--score-col", "aum", "-b", "90%", "--beta",
            "0.5", "-o", out)  # fmt: skip
    assert r.exit_code == 0, r.output
    beta = read_provenance(out)["params"]["strategy_params"]["beta"]
    assert beta == pytest.approx(0.1, abs=1e-3)


def test_hard_auto_reads_whole_words(digits):
    x = digits[0][:100]
    for name, hard in (("gloss", "low"), ("train_loss", "high"), ("el2n", "high"), ("aum", "low")):
        pool = Pool.from_arrays(x, **{name: np.arange(100.0)})
        pool.columns = pool.columns.with_overrides(score=name)
        _, sel = select(pool, "ccs", 10, params={"beta": 0.1})
        assert sel.params["hard"] == hard, name


def test_string_ids_survive_a_csv_manifest(cli, files):
    folder, emb, _ = files
    manifest = folder / "m.csv"
    assert cli("select", emb, "-s", "random", "-b", "5", "-o", manifest).exit_code == 0
    subset = folder / "subset.jsonl"
    r = cli("apply", manifest, emb, "-o", subset)
    assert r.exit_code == 0, r.output
    ids = pl.read_ndjson(subset).get_column("id").to_list()
    assert len(ids) == 5 and all(isinstance(i, str) and len(i) == 5 for i in ids)


def test_emit_dropped_checks(cli, files, tmp_path):
    _, emb, _ = files
    out = tmp_path / "m.parquet"
    r = cli("select", emb, "-s", "random", "-b", "5", "-o", out, "--emit-dropped", out)
    assert r.exit_code == 2 and "other than -o" in r.output
    r = cli("select", emb, "-s", "random", "-b", "5", "-o", out, "--emit-dropped", tmp_path / "d")
    assert r.exit_code == 2 and "drop --emit-dropped" in r.output


def test_sensitivity_budget_equal_to_the_clusters_weights_by_cluster_size(digits):
    x, y = digits
    pool = Pool.from_arrays(x, cluster=y.astype(np.int32))
    _, sel = select(pool, "sensitivity", 10, seed=0)
    assert sorted(y[sel.indices].tolist()) == list(range(10))
    assert sel.weights.sum() == len(x)
    _, census = select(pool, "sensitivity", len(x), seed=0)
    assert np.all(census.weights == 1.0)
    with pytest.raises(SelectkitUsageError, match="lam"):
        select(pool, "sensitivity", 20, params={"lam": -1.0})


def test_unknown_strategy_suggests_the_nearest(cli, files):
    _, emb, _ = files
    r = cli("select", emb, "-s", "kcentre", "-b", "5", "-o", files[0] / "k.parquet")
    assert r.exit_code == 2 and "did you mean 'kcenter'" in r.output


def test_from_arrays_nan_labels_are_unlabelled_and_lengths_are_checked():
    from selectkit import SelectkitError

    pool = Pool.from_arrays(np.zeros((3, 2), np.float32), labels=np.array([1.0, np.nan, 2.0]))
    assert pool.labelled_mask.tolist() == [True, False, True]
    with pytest.raises(SelectkitError, match="score has 2 rows but the first array has 3"):
        Pool.from_arrays(np.zeros((3, 2), np.float32), score=np.arange(2.0))
