"""Cost-aware selection (issue 16 part 1; selectkit.cost, docs/cost.md): --cost-col and a cost
budget on every strategy, through the real CLI and the Python API on real files."""

from __future__ import annotations

import itertools
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import selectkit as sk
from selectkit import Pool, select
from selectkit.cost import fill_in_order, knapsack_fill
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io.provenance import read_provenance

SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def frame(full_frame) -> pl.DataFrame:
    """600 real rows (digits vectors and probabilities, Rotten Tomatoes text); cost = the
    text's token count (annotation time grows with length)."""
    head = full_frame.head(600).drop("proba_mc")
    tokens = head.get_column("text").str.split(" ").list.len().cast(pl.Float64)
    return head.with_columns(tokens.alias("seconds"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, frame):
    """The pool (no cost) and a separate cost table, joined on id by `select`."""
    folder = tmp_path_factory.mktemp("cost")
    pool, costs = folder / "pool.parquet", folder / "costs.parquet"
    frame.drop("seconds").write_parquet(pool)
    frame.select("id", "seconds").write_parquet(costs)
    return pool, costs


def spent(manifest: pl.DataFrame) -> float:
    return float(manifest.get_column("cost").sum())


def test_cli_entropy_spends_the_cost_budget_and_records_it(cli, files, tmp_path):
    pool, costs = files
    out = tmp_path / "batch.parquet"
    args = ["select", pool, costs, "-s", "entropy", "--cost-col", "seconds"]
    result = cli(*args, "--budget-cost", "300", "-o", out)
    assert result.exit_code == 0, result.output
    manifest = pl.read_parquet(out)
    assert {"cost", "cumulative_cost"} <= set(manifest.columns)
    cumulative = manifest.get_column("cumulative_cost").to_numpy()
    assert 0 < cumulative[-1] <= 300 and np.all(np.diff(cumulative) > 0)
    prov = read_provenance(out)
    assert prov["params"]["cost"] == {
        "column": "seconds",
        "units": "seconds",
        "budget": 300.0,
        "mode": "ratio",
        "exponent": 1.0,
    }
    assert prov["metrics"]["cost_spent"] == pytest.approx(cumulative[-1])
    # -b cost:X is the same budget
    again = tmp_path / "again.parquet"
    assert cli(*args, "-b", "cost:300", "-o", again).exit_code == 0
    assert pl.read_parquet(again).equals(manifest)
    # the Python call behind the command gives the same manifest
    api = tmp_path / "api.parquet"
    sk.select_files([pool, costs], api, strategy="entropy", cost_col="seconds", budget_cost=300)
    assert pl.read_parquet(api).equals(manifest)


def test_count_and_cost_budgets_exclude_each_other(cli, files, tmp_path):
    pool, costs = files
    result = cli(
        "select", pool, costs, "-s", "kcenter", "--cost-col", "seconds", "-b", "10",
        "--budget-cost", "50", "-o", tmp_path / "m.parquet",
    )  # fmt: skip
    assert result.exit_code == 2 and "exclude each other" in result.stderr
    result = cli("select", pool, "-s", "kcenter", "--budget-cost", "50", "-o", tmp_path / "m.pq")
    assert result.exit_code == 2 and "--cost-col" in result.stderr


@pytest.mark.parametrize(
    ("value", "shown"), [(0.0, "has 0"), (-2.0, "has -2"), (None, "has missing")]
)
def test_bad_costs_are_one_clear_line(cli, files, frame, tmp_path, value, shown):
    pool, _ = files
    bad = frame.select("id", "seconds").with_columns(
        pl.when(pl.col("id") == "d0007").then(value).otherwise(pl.col("seconds")).alias("seconds")
    )
    path = tmp_path / "bad.parquet"
    bad.write_parquet(path)
    out = tmp_path / "m.parquet"
    args = ["select", pool, path, "-s", "random", "--cost-col", "seconds", "--budget-cost", "50"]
    result = cli(*args, "-o", out)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and "'seconds'" in line and "'d0007'" in line and shown in line
    assert not out.exists()


def test_no_cost_column_and_a_budget_below_every_cost(cli, files, tmp_path):
    pool, costs = files
    out = tmp_path / "m.parquet"
    result = cli(
        "select", pool, "-s", "random", "--cost-col", "secs", "--budget-cost", "9", "-o", out
    )
    assert result.exit_code == 1 and "no cost column 'secs'" in result.stderr
    result = cli(
        "select", pool, costs, "-s", "random", "--cost-col", "seconds", "--budget-cost", "0.5",
        "-o", out,
    )  # fmt: skip
    assert result.exit_code == 1 and "below the cheapest" in result.stderr
    assert "(--budget-cost)" in result.stderr
    result = cli(
        "select", pool, costs, "-s", "random", "--cost-col", "seconds", "-b", "cost:0.5",
        "-o", out,
    )  # fmt: skip
    assert result.exit_code == 1 and "(--budget cost:0.5)" in result.stderr, result.stderr
    assert not out.exists()


@SETTINGS
@given(
    budget=st.floats(5, 400),
    exponent=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    name=st.sampled_from(["entropy", "margin", "kcenter", "random", "badge"]),
)
def test_spent_never_exceeds_the_budget(frame, budget, exponent, name):
    pool = Pool(frame=frame.head(300))
    manifest, sel = select(
        pool, name, cost_col="seconds", budget_cost=budget, cost_exponent=exponent, seed=4
    )
    assert spent(manifest) <= budget and sel.metrics["cost_spent"] <= budget
    assert manifest.get_column("id").n_unique() == manifest.height > 0


@SETTINGS
@given(budget=st.floats(20, 600), name=st.sampled_from(["entropy", "least-confidence"]))
def test_exponent_zero_is_the_cost_blind_ranking(frame, budget, name):
    """λ = 0: the cost-blind top-k order (ties by id), taken while it fits."""
    pool = Pool(frame=frame)
    blind, _ = select(pool, name, len(pool), seed=1)
    costs = dict(zip(frame["id"].to_list(), frame["seconds"].to_list(), strict=True))
    order = blind.get_column("id").to_list()
    keep = fill_in_order(np.array([costs[i] for i in order]), budget)
    aware, _ = select(pool, name, cost_col="seconds", budget_cost=budget, cost_exponent=0, seed=1)
    assert aware.get_column("id").to_list() == [order[i] for i in keep]


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0.01, 10), min_size=12, max_size=12),
    costs=st.lists(st.floats(0.1, 10), min_size=12, max_size=12),
    share=st.floats(0.05, 0.9),
)
def test_greedy_with_best_single_reaches_half_the_knapsack_optimum(values, costs, share):
    u, c = np.array(values), np.array(costs)
    budget = share * c.sum()
    order = np.lexsort((np.arange(12), -u / c))  # ratio order, ties by position (no ties here)
    kept = knapsack_fill(u[order], c[order], budget)
    assert c[order][kept].sum() <= budget
    masks = np.array(list(itertools.product([0, 1], repeat=12)), dtype=bool)  # 4096 subsets
    feasible = masks @ c <= budget
    best = float((masks[feasible] @ u).max()) if feasible.any() else 0.0
    assert u[order][kept].sum() >= 0.5 * best - 1e-9


def test_cost_aware_kcenter_buys_more_cheap_rows_than_blind(frame):
    """Per-class costs (1 for digits 0-4, 5 for 5-9): kcenter/cost spends on cheap rows."""
    digit = frame.get_column("cluster").cast(pl.Int64)  # the digit (wide_frame's cluster)
    pool = Pool(frame=frame.with_columns(pl.when(digit < 5).then(1.0).otherwise(5.0).alias("c")))
    blind, _ = select(pool, "kcenter", cost_col="c", budget_cost=120, cost_exponent=0)
    aware, _ = select(pool, "kcenter", cost_col="c", budget_cost=120)
    assert aware.height > blind.height
    assert spent(aware) <= 120 and spent(blind) <= 120


def test_penalty_mode_min_cost_and_count_budget(frame):
    pool = Pool(frame=frame)
    m, _ = select(pool, "margin", cost_col="seconds", budget_cost=200, cost_mode="penalty")
    assert spent(m) <= 200
    floored, _ = select(pool, "margin", cost_col="seconds", budget_cost=200, min_cost=15)
    assert floored.get_column("cost").min() >= 15 and spent(floored) <= 200
    counted, _ = select(pool, "margin", 25, cost_col="seconds")  # costs recorded only
    plain, _ = select(pool, "margin", 25)
    assert counted.get_column("id").equals(plain.get_column("id"))
    assert counted.get_column("cumulative_cost")[-1] == pytest.approx(spent(counted))
    with pytest.raises(SelectkitUsageError, match="cost_mode"):
        select(pool, "margin", cost_col="seconds", budget_cost=200, cost_mode="roi")


def test_group_ranges_and_stochastic_under_a_cost_budget(frame):
    pool = Pool(frame=frame)
    mins = {"3": 4, "7": 2}
    m, sel = select(pool, "entropy", cost_col="seconds", budget_cost=300, group_min=mins)
    groups = pool.frame.get_column("group").gather(sel.indices).to_list()
    assert groups.count("3") >= 4 and groups.count("7") >= 2 and spent(m) <= 300
    # a strategy whose own picks miss a min is topped up with the group's cheapest rows
    m, sel = select(pool, "typiclust", cost_col="seconds", budget_cost=300, group_min={"3": 6})
    groups = pool.frame.get_column("group").gather(sel.indices).to_list()
    assert groups.count("3") >= 6 and spent(m) <= 300
    with pytest.raises(SelectkitDataError, match="raise budget_cost"):
        select(pool, "entropy", cost_col="seconds", budget_cost=40, group_min={"3": 30})
    a, _ = select(pool, "margin", cost_col="seconds", budget_cost=300, stochastic="softmax", seed=3)
    b, _ = select(pool, "margin", cost_col="seconds", budget_cost=300, stochastic="softmax", seed=3)
    assert a.equals(b) and spent(a) <= 300


def test_al_simulate_over_cumulative_cost(cli, files, frame, tmp_path):
    """Curves over cumulative cost, AULC over cost, the plot's x axis; `+cost` ranks by cost."""
    labelled = tmp_path / "labelled.parquet"
    frame.select("id", "embedding", pl.col("cluster").alias("label")).write_parquet(labelled)
    _, costs = files
    out, png = tmp_path / "curves.parquet", tmp_path / "curves.png"
    result = cli(
        "al", "simulate", labelled, costs, "-s", "random,entropy,entropy+cost=0.5",
        "--cost-col", "seconds", "--rounds", "2", "--repeats", "1", "--init", "10",
        "-o", out, "--plot", png, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    curves = pl.read_parquet(out)
    assert {"cost", "cumulative_cost"} <= set(curves.columns)
    batch_cost = read_provenance(out)["params"]["cost"]["batch_cost"]
    assert batch_cost == pytest.approx(10 * float(frame["seconds"].median()))
    assert (curves.filter(pl.col("round") > 0)["cost"] <= batch_cost).all()
    summary = json.loads(result.stdout)["summary"]
    assert all(0 <= r["aulc_cost_mean"] <= 1 for r in summary)
    assert png.stat().st_size > 1000
    result = cli("al", "simulate", labelled, "-s", "entropy+cost", "-o", tmp_path / "c.parquet")
    assert result.exit_code == 2 and "--cost-col" in result.stderr


def test_al_simulate_cost_column_is_what_each_point_added(cli, files, frame, tmp_path):
    """Each curve point's cost is what its new labels cost (0 once nothing is affordable), and a
    batch cost no row fits is refused up front."""
    labelled = tmp_path / "labelled.parquet"
    frame.select("id", "embedding", pl.col("cluster").alias("label")).write_parquet(labelled)
    _, costs = files
    out = tmp_path / "curves.parquet"
    total = float(frame["seconds"].sum())
    result = cli(
        "al", "simulate", labelled, costs, "-s", "random", "--cost-col", "seconds",
        "--batch-cost", total, "--rounds", "3", "--repeats", "1", "--init", "10", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    curves = pl.read_parquet(out).sort("round")
    bought = curves["cost"].to_list()
    assert bought[2:] == [0.0, 0.0]  # round 1 bought the whole pool; nothing was left after
    assert curves["cumulative_cost"].to_list() == pytest.approx(list(np.cumsum(bought)), rel=1e-9)
    cheapest = float(frame["seconds"].min())
    result = cli(
        "al", "simulate", labelled, costs, "-s", "random", "--cost-col", "seconds",
        "--batch-cost", cheapest / 2, "-o", tmp_path / "none.parquet",
    )  # fmt: skip
    assert result.exit_code == 1 and "below the cheapest row's cost" in result.stderr
    assert not (tmp_path / "none.parquet").exists()
