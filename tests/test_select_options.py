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


# --- one parameter vocabulary: every bound lives in its Param (issue 12, item 13) ---


@pytest.mark.parametrize(
    ("strategy", "args", "message"),
    [
        ("typiclust", ["--neighbours", "0"], "parameter neighbours=0 must be at least 1"),
        ("typiclust", ["--max-clusters", "0"], "parameter max_clusters=0 must be at least 1"),
        ("typiclust", ["--iters", "-1"], "parameter iters=-1 must be at least 0"),
        ("typiclust", ["--fit-rows", "0"], "parameter fit_rows=0 must be at least 1"),
        ("ccs", ["--beta", "1"], r"parameter beta=1.0 must lie in \[0, 1\)"),
        ("ccs", ["--strata", "0"], r"parameter strata=0 must lie in \[1, 1000000\]"),
        ("kcenter", ["--metric", "manhattan"], "metric='manhattan' must be one of l2, cosine"),
    ],
)
def test_declared_bounds_refuse_through_the_cli(cli, files, strategy, args, message):
    folder, emb, scores = files
    out = folder / "bad.parquet"
    extra = [scores, "--score-col", "aum"] if strategy == "ccs" else []
    r = cli("select", emb, *extra, "-s", strategy, "-b", "10", *args, "-o", out)
    assert r.exit_code == 2, r.output
    assert re.search(message, r.output), r.output
    assert "Traceback" not in r.output and not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ngrams", "0"], "parameter ngrams=0 must be at least 1"),
        (["--buckets", "0"], "parameter buckets=0 must be at least 1"),
        (["--smoothing", "-1"], "parameter smoothing=-1.0 must be at least 0"),
        (["--min-tokens", "-3"], "parameter min_tokens=-3 must be at least 0"),
        (["--workers", "0"], "parameter workers=0 must be at least 1"),
    ],
)
def test_dsir_bounds_are_declared_not_rechecked(cli, rt_small, tmp_path, args, message):
    from tests.conftest import FORTUNES

    out = tmp_path / "m.parquet"
    r = cli("select", rt_small, "-s", "dsir", "-b", "5", "--target", FORTUNES, *args, "-o", out)
    assert r.exit_code == 2, r.output
    assert message in r.output and not out.exists()


def test_python_api_gets_the_same_declared_refusals(digits, long_frame):
    x, _ = digits
    pool = Pool.from_arrays(x[:200])
    with pytest.raises(SelectkitUsageError, match="neighbours=0 must be at least 1"):
        select(pool, "typiclust", 5, params={"neighbours": 0})
    disco_pool = Pool(frame=long_frame)
    with pytest.raises(SelectkitUsageError, match="guiding_models=-1 must be at least 0"):
        select(disco_pool, "disco", 5, params={"guiding_models": -1})
    _, sel = select(disco_pool, "disco", 5, params={"guiding_models": 0})
    assert sel.indices.size == 5  # the bound itself is allowed


def test_acquisition_modifiers_are_declared_params(digits):
    from selectkit.strategies.scored import ACQUISITION_PARAMS, Acquisition

    x, y = digits
    proba = np.eye(10)[y] * 0.5 + 0.05
    pool = Pool.from_arrays(x, proba=proba)
    with pytest.raises(SelectkitUsageError, match=r"modifier coldness=0\.0 must be greater than 0"):
        select(pool, "margin", 5, stochastic="softmax", coldness=0.0)
    with pytest.raises(SelectkitUsageError, match="stochastic='hot' must be one of softmax"):
        select(pool, "margin", 5, stochastic="hot")
    with pytest.raises(SelectkitUsageError, match="subpool='near' must be one of anchoral"):
        select(pool, "margin", 5, subpool="near")
    for option in ("anchors", "neighbours", "subpool_size"):
        with pytest.raises(SelectkitUsageError, match=f"modifier {option}=0 must be at least 1"):
            select(pool, "margin", 5, subpool="anchoral", subpool_options={option: 0})
    # typed like any parameter: strings convert, bools and fractions are no counts
    assert Acquisition(subpool="anchoral", anchors="3").anchors == 3
    for bad in (True, 2.5):
        with pytest.raises(SelectkitUsageError, match="is not a int"):
            Acquisition(subpool="anchoral", anchors=bad)
    assert set(ACQUISITION_PARAMS) == {
        "stochastic", "coldness", "subpool", "anchors", "neighbours", "subpool_size"
    }  # fmt: skip
    _, sel = select(pool, "margin", 5, stochastic="softmax", coldness=1e-9, seed=0)
    assert sel.indices.size == 5  # just above the open bound is allowed


def test_stochastic_coldness_zero_is_refused_through_the_cli(cli, tmp_path, digits):
    x, y = digits
    table = tmp_path / "p.parquet"
    proba = (np.eye(10)[y] * 0.5 + 0.05).tolist()
    pl.DataFrame({"id": np.arange(len(x)), "embedding": x, "proba": proba}).write_parquet(table)
    out = tmp_path / "m.parquet"
    r = cli("select", table, "-s", "margin", "-b", "5", "--stochastic", "softmax", "--coldness",
            "0", "-o", out)  # fmt: skip
    assert r.exit_code == 2 and "coldness=0.0 must be greater than 0" in r.output, r.output
    assert not out.exists()


def test_param_vocabulary_bounds_none_lists_and_names():
    from selectkit.params import Param, check_params

    fraction = Param(float, 0.5, "a fraction", low=0, high=1, low_open=True, high_open=True)
    assert fraction.parse("f", "0.25") == 0.25
    for bad in ("0", "1", 1.5):
        with pytest.raises(SelectkitUsageError, match=r"f=.* must lie in \(0, 1\)"):
            fraction.parse("f", bad)
    assert sorted(map(float, fraction.invalid_values()[:2])) == [0.0, 1.0]
    optional = Param(str, None, "unset by default", choices=("a", "b"))
    assert optional.parse("o", None) is None and optional.parse("o", "a") == "a"
    files = Param(str, [], "one or more files", multiple=True, min_items=1)
    assert files.parse("file", "x.jsonl") == ["x.jsonl"]
    with pytest.raises(SelectkitUsageError, match="file needs at least 1 value, got 0"):
        files.parse("file", [])
    assert [] in files.invalid_values()
    declared = {"rows": Param(int, 10, "rows", low=1), "mode": Param(str, "a", "m", ("a", "b"))}
    assert check_params({"rows": "3"}, declared, owner="command 'x'") == {"rows": 3, "mode": "a"}
    with pytest.raises(SelectkitUsageError, match="command 'x' has no option 'rosw'; did you mean"):
        check_params({"rosw": 3}, declared, owner="command 'x'", what="option")
    with pytest.raises(SelectkitUsageError, match="option rows=0 must be at least 1"):
        check_params({"rows": 0}, declared, owner="command 'x'", what="option")
    assert declared["rows"].describe() == {"type": "int", "default": 10, "bounds": "be at least 1"}


def test_strategies_json_shows_each_declared_bound(cli):
    import json

    r = cli("strategies", "--json")
    assert r.exit_code == 0, r.output
    params = {s["name"]: s["params"] for s in json.loads(r.stdout)}
    assert params["typiclust"]["neighbours"] == {
        "type": "int",
        "default": 20,
        "bounds": "be at least 1",
        "help": "nearest neighbours in the typicality estimate",
    }
    assert params["ccs"]["beta"]["bounds"] == "lie in [0, 1)"
    assert params["kcenter"]["metric"]["choices"] == ["l2", "cosine"]
