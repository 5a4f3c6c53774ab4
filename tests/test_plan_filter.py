"""plan-filter (issue 16 part 3): the law, the fit, the plan, the rule of thumb, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import selectkit as sk
from selectkit.cli import app
from selectkit.errors import SelectkitDataError
from selectkit.planfilter import Curves, fit_curves, mixture_error, parse_compute, plan_table
from selectkit.planfilter.rule import format_fraction
from tests.conftest import leftovers

P = 1_000_000
TRUTH = {"a": 0.5, "d": 0.1, "b": [-0.3, -0.2, -0.12], "tau": [2.0, 4.0, 8.0]}
NS = np.array([1, 2, 4, 8, 16]) * P


def _rows(truth=TRUTH, ns=NS, d_form="floor") -> list[dict]:
    rows = []
    for i, (b, tau) in enumerate(zip(truth["b"], truth["tau"], strict=True)):
        err = mixture_error(ns, [P], [b], [tau], truth["a"], truth["d"], d_form=d_form)
        rows += [
            {"bucket": i, "pool_size": P, "samples_seen": int(n), "error": float(e)}
            for n, e in zip(ns, err, strict=True)
        ]
    return rows


@pytest.fixture(scope="module")
def curves_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pf") / "curves.csv"
    pl.DataFrame(_rows()).write_csv(path)
    return path


def _curves(rows: list[dict]) -> Curves:
    frame = pl.DataFrame(rows).sort(["bucket", "samples_seen"])
    names = sorted(set(frame["bucket"].to_list()))
    parts = [frame.filter(pl.col("bucket") == b) for b in names]
    return Curves(
        [str(b) for b in names],
        np.array([p["pool_size"][0] for p in parts], dtype=float),
        [p["samples_seen"].to_numpy().astype(float) for p in parts],
        [p["error"].to_numpy() for p in parts],
    )


@pytest.mark.parametrize("d_form", ["floor", "inside"])
def test_synthetic_curves_give_back_their_parameters_and_m_grows_with_compute(d_form):
    fit = fit_curves(_curves(_rows(d_form=d_form)), d_form=d_form)
    assert fit.a == pytest.approx(TRUTH["a"], rel=0.1)
    assert fit.d == pytest.approx(TRUTH["d"], rel=0.1)
    np.testing.assert_allclose(fit.b, TRUTH["b"], rtol=0.1)
    np.testing.assert_allclose(fit.tau, TRUTH["tau"], rtol=0.1)
    assert fit.rmse.max() < 1e-4 and not fit.monotone_adjusted
    computes = [P, 4 * P, 32 * P, 128 * P]
    plan = plan_table(fit.names, fit.pools, fit.b, fit.tau, fit.a, fit.d, computes, d_form=d_form)
    best = plan.filter(pl.col("best")).sort("compute")["m"].to_list()
    assert best == sorted(best) and best[-1] > best[0], best


def test_noisy_curves_still_recover_within_ten_percent():
    rows = _rows(ns=np.array([1, 1.5, 2, 3, 4, 6, 8, 12, 16]) * P)
    rng = np.random.default_rng(0)
    for r in rows:
        r["error"] *= float(np.exp(rng.normal(0, 0.002)))
    fit = fit_curves(_curves(rows))
    np.testing.assert_allclose(fit.b, TRUTH["b"], rtol=0.1)
    np.testing.assert_allclose(fit.tau, TRUTH["tau"], rtol=0.1)
    assert fit.a == pytest.approx(TRUTH["a"], rel=0.1)


def test_non_monotone_utilities_are_made_monotone():
    truth = {**TRUTH, "b": [-0.15, -0.3, -0.1]}  # bucket 1 looks better than the "best"
    fit = fit_curves(_curves(_rows(truth)), starts=3)
    assert fit.monotone_adjusted
    assert np.all(np.diff(fit.b) >= -1e-12)
    assert fit.b_raw[1] < fit.b_raw[0]
    free = fit_curves(_curves(_rows(truth)), monotone=False, starts=3)
    assert not free.monotone_adjusted and free.b[1] < free.b[0]


@settings(max_examples=25, deadline=None)
@given(
    b=st.floats(-1.0, -0.001),
    tau=st.floats(0.5, 100.0),
    d=st.floats(0.0, 0.5),
    pool=st.integers(10, 10**6),
    d_form=st.sampled_from(["floor", "inside"]),
)
def test_error_never_rises_with_samples_seen(b, tau, d, pool, d_form):
    n = np.unique(np.geomspace(1, 200 * pool, 300).round())
    err = mixture_error(n, [pool], [b], [tau], 0.3, d, d_form=d_form)
    assert np.all(np.isfinite(err))
    assert np.all(np.diff(err) <= 1e-12 * err[:-1])


def test_plan_does_not_depend_on_the_curves_row_order(tmp_path, curves_csv):
    frame = pl.read_csv(curves_csv)
    shuffled = tmp_path / "shuffled.parquet"
    frame.sample(fraction=1.0, shuffle=True, seed=3).write_parquet(shuffled)
    a = sk.plan_filter(curves_csv, tmp_path / "a.parquet", compute="1M,32M", starts=2)
    b = sk.plan_filter(shuffled, tmp_path / "b.parquet", compute="1M,32M", starts=2)
    assert a["plan"] == b["plan"]
    assert pl.read_parquet(tmp_path / "a.parquet").equals(pl.read_parquet(tmp_path / "b.parquet"))


def test_compute_is_read_with_suffixes_and_refused_otherwise():
    assert parse_compute("32M,1.5B, 640000,1e6") == [32 * 10**6, 1_500_000_000, 640_000, 10**6]
    assert parse_compute(["128k", 2e6]) == [128_000, 2_000_000]
    for bad in ("lots", "-5M", "0", "1.5Q", ""):
        with pytest.raises(sk.SelectkitUsageError, match="compute"):
            parse_compute(bad)
    assert format_fraction(0.125) == "12.5%" and format_fraction(1.0) == "100%"
    assert format_fraction(1 / 3) == "33.334%"  # rounded up: never fewer rows than planned


def test_cli_writes_plan_params_and_summary(tmp_path, curves_csv):
    plan, params, png = tmp_path / "plan.parquet", tmp_path / "params.csv", tmp_path / "plan.png"
    args = [
        "plan-filter",
        str(curves_csv),
        "--compute",
        "1M,4M,32M",
        "-o",
        str(plan),
        "--starts",
        "2",
    ]
    r = CliRunner().invoke(app, [*args, "--params", str(params), "--plot", str(png), "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["method"] == "law" and len(summary["params"]) == 3
    assert [row["m"] for row in summary["plan"]] == [1, 1, 2]
    assert {"rmse", "rmse_log", "b", "tau"} <= set(summary["params"][0])
    table = pl.read_parquet(plan)
    assert table.height == 9 and table["best"].sum() == 3
    assert set(table.columns) >= {"compute", "m", "keep_fraction", "predicted_error", "best"}
    assert sk.read_provenance(plan)["command"] == "plan-filter"
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the parameters file replaces the fit and gives the same plan
    again = CliRunner().invoke(
        app, ["plan-filter", "--fitted", str(params), "--compute", "1M,4M,32M", "--json"]
    )
    assert again.exit_code == 0, again.stderr
    replan = json.loads(again.stdout)["plan"]
    for x, y in zip(replan, summary["plan"], strict=True):
        assert x["m"] == y["m"] and x["predicted_error"] == pytest.approx(y["predicted_error"])


def test_without_curves_only_the_labelled_rule_of_thumb(tmp_path):
    out = tmp_path / "rule.csv"
    r = CliRunner().invoke(
        app, ["plan-filter", "--pool-size", "1000000", "--compute", "1M,8M", "-o", str(out)]
    )
    assert r.exit_code == 0, r.stderr
    assert "rule of thumb (no curves fitted)" in r.stderr
    table = pl.read_csv(out)
    assert table["keep_fraction"].to_list() == [0.25, 1.0]
    assert set(table["method"]) == {"rule-of-thumb"}
    r = CliRunner().invoke(
        app, ["plan-filter", "--pool-size", "1000", "--compute", "1000", "--r-max", "2", "--json"]
    )
    summary = json.loads(r.stdout)
    assert summary["method"] == "rule-of-thumb" and summary["budget"] == "50%"
    assert "rule of thumb" in summary["label"]
    r = CliRunner().invoke(app, ["plan-filter", "--compute", "1M"])
    assert r.exit_code == 2 and "--pool-size" in r.stderr


def test_a_scored_pool_is_cut_into_quantile_buckets(tmp_path):
    pool = tmp_path / "pool.parquet"
    score = np.r_[np.linspace(1, 0, 90), np.full(10, 0.5)]  # ties broken by id
    pl.DataFrame({"id": np.arange(100)[::-1], "quality": score}).write_parquet(pool)
    out = tmp_path / "buckets.parquet"
    summary = sk.plan_filter(
        pool=pool, score_col="quality", bucket_edges="0.1,0.3", buckets_out=out, compute="50"
    )
    buckets = pl.read_parquet(out)
    assert buckets.group_by("bucket").len().sort("bucket")["len"].to_list() == [10, 20, 70]
    top = buckets.filter(pl.col("bucket") == 0)["quality"]
    assert top.min() >= buckets.filter(pl.col("bucket") == 1)["quality"].max()
    assert summary["plan"][0]["keep_fraction"] == pytest.approx(50 / 400)
    assert summary["plan"][0]["m"] == 2  # 13 rows need the top two buckets


def test_a_pool_size_that_disagrees_with_the_pool_is_refused(tmp_path):
    pool = tmp_path / "pool.parquet"
    pl.DataFrame({"id": np.arange(100), "quality": np.linspace(1, 0, 100)}).write_parquet(pool)
    with pytest.raises(SelectkitDataError, match="disagrees with the 100 rows of"):
        sk.plan_filter(pool=pool, score_col="quality", pool_size=5000, compute="50")


def test_print_fraction_feeds_select_topk(tmp_path, curves_csv):
    runner = CliRunner()
    fraction = runner.invoke(
        app, ["plan-filter", str(curves_csv), "--compute", "32M", "--print-fraction"]
    )
    assert fraction.exit_code == 0, fraction.stderr
    assert fraction.stdout == "66.667%\n"  # the whole of stdout: ready for $(...)
    pool = tmp_path / "pool.parquet"
    rng = np.random.default_rng(0)
    pl.DataFrame({"id": np.arange(300), "quality": rng.random(300)}).write_parquet(pool)
    keep = tmp_path / "keep.parquet"
    r = runner.invoke(
        app,
        [
            "-q",
            "select",
            str(pool),
            "--strategy",
            "topk",
            "--score-col",
            "quality",
            "--budget",
            fraction.stdout.strip(),
            "-o",
            str(keep),
        ],
    )
    assert r.exit_code == 0, r.stderr
    kept = pl.read_parquet(keep)
    assert kept.height == 200  # 66.667% of 300 rows
    top = pl.read_parquet(pool).sort("quality", descending=True).head(200)["id"].sort()
    assert kept["id"].sort().equals(top)
    several = runner.invoke(
        app, ["plan-filter", str(curves_csv), "--compute", "1M,32M", "--print-fraction"]
    )
    assert several.exit_code == 2 and several.stdout == ""
    assert "--print-fraction prints one fraction" in several.stderr


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda f: f.drop("error"), "has no column 'error'"),
        (lambda f: f.with_columns(pool_size=pl.lit(0)), "column 'pool_size' of"),
        (lambda f: f.with_columns(samples_seen=-pl.col("samples_seen")), "'samples_seen'"),
        (lambda f: f.with_columns(error=pl.col("error") * 100), "column 'error' of"),
        (
            lambda f: f.filter(~((pl.col("bucket") == 2) & (pl.col("samples_seen") > 2 * P))),
            "bucket 2 of",
        ),
    ],
)
def test_bad_curves_are_one_line_errors_and_write_nothing(tmp_path, curves_csv, change, fragment):
    bad = tmp_path / "bad.csv"
    change(pl.read_csv(curves_csv)).write_csv(bad)
    out = tmp_path / "plan.parquet"
    r = CliRunner().invoke(
        app,
        [
            "plan-filter",
            str(bad),
            "--compute",
            "1M",
            "-o",
            str(out),
            "--params",
            str(tmp_path / "p.csv"),
        ],
    )
    assert r.exit_code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "bad.csv" in lines[0]
    assert not out.exists() and leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_usage_errors_exit_2(tmp_path, curves_csv):
    for args in (
        [str(curves_csv), "--compute", "lots"],
        [str(curves_csv), "--compute", "1M", "--d-form", "outside"],
        [str(curves_csv), "--compute", "1M", "--starts", "0"],
        [str(curves_csv), "--fitted", str(curves_csv), "--compute", "1M"],
        ["--pool-size", "10", "--compute", "1M", "--params", str(tmp_path / "p.csv")],
    ):
        r = CliRunner().invoke(app, ["plan-filter", *args])
        assert r.exit_code == 2, (args, r.stderr)
    with pytest.raises(sk.SelectkitUsageError, match="starts=0 must"):
        sk.plan_filter(curves_csv, compute="1M", starts=0)


def test_tau_scale_m_only_changes_unions():
    n = np.array([1, 10, 100]) * float(P)
    args = ([P, P], TRUTH["b"][:2], TRUTH["tau"][:2], TRUTH["a"], TRUTH["d"])
    plain = mixture_error(n, *args)
    scaled = mixture_error(n, *args, tau_scale_m=True)
    assert np.all(scaled[1:] < plain[1:])  # longer half-lives: repetition hurts less
    one = ([P], TRUTH["b"][:1], TRUTH["tau"][:1], TRUTH["a"], TRUTH["d"])
    np.testing.assert_array_equal(mixture_error(n, *one), mixture_error(n, *one, tau_scale_m=True))


def test_a_half_life_the_curves_cannot_pin_is_flagged(tmp_path):
    truth = {**TRUTH, "tau": [100.0, 100.0, 100.0]}  # no repetition effect within 16 epochs
    path = tmp_path / "flat.csv"
    pl.DataFrame(_rows(truth)).write_csv(path)
    summary = sk.plan_filter(path, compute="4M")
    assert any("on its bound 100" in w for w in summary["warnings"]), summary["warnings"]


def test_keep_out_writes_the_selection_with_the_plan(tmp_path):
    # the same curves at a thousandth of the scale: 3 buckets of 1,000 rows (a scaled to match)
    small = [{**r, "pool_size": 1000, "samples_seen": r["samples_seen"] // 1000} for r in _rows()]
    curves = tmp_path / "small.csv"
    pl.DataFrame(small).write_csv(curves)
    pool = tmp_path / "pool.parquet"
    rng = np.random.default_rng(1)
    pl.DataFrame({"id": np.arange(3000), "quality": rng.random(3000)}).write_parquet(pool)
    keep, plan = tmp_path / "keep.parquet", tmp_path / "plan.parquet"
    summary = sk.plan_filter(
        curves, plan, compute="32k", pool=pool, score_col="quality", keep_out=keep, starts=2
    )
    assert summary["plan"][0]["m"] == 2 and summary["budget"] == "66.667%"
    assert summary["kept_rows"] == 2000 and pl.read_parquet(keep).height == 2000
    kept = pl.read_parquet(keep)["id"].sort()
    top = pl.read_parquet(pool).sort("quality", descending=True).head(2000)["id"].sort()
    assert kept.equals(top)
    with pytest.raises(sk.SelectkitUsageError, match="keep_out="):
        sk.plan_filter(curves, compute="1k,32k", pool=pool, keep_out=tmp_path / "k.parquet")
    with pytest.raises(sk.SelectkitDataError, match="the pool has 100 rows"):
        pl.DataFrame({"id": np.arange(100), "quality": rng.random(100)}).write_parquet(pool)
        sk.plan_filter(curves, compute="32k", pool=pool, score_col="quality")
