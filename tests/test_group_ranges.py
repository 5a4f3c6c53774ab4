"""Group ranges (--group-min / --group-max / --group-ranges) on every strategy with a budget:
exact bounds, refusal before any work, provenance, order invariance (selectkit.ranges)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selectkit import Pool, select
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io.provenance import read_provenance
from selectkit.pool import Columns


@pytest.fixture(scope="module")
def frame(full_frame) -> pl.DataFrame:
    """600 digits rows (every conventional column; group = the digit as text)."""
    return full_frame.head(600)


def counts(pool: Pool, sel) -> dict[str, int]:
    names = pool.frame.get_column("group").gather(sel.indices).to_list()
    return {g: names.count(g) for g in set(names)}


def within(got: dict[str, int], mins: dict[str, int], maxs: dict[str, int]) -> bool:
    return all(got.get(g, 0) >= m for g, m in mins.items()) and all(
        got.get(g, 0) <= m for g, m in maxs.items()
    )


@st.composite
def feasible_ranges(draw, sizes: dict[str, int]):
    """Random bounds on some groups and a budget they allow."""
    names = sorted(sizes)
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=5, unique=True))
    mins, maxs = {}, {}
    for g in chosen:
        lo = draw(st.integers(0, min(12, sizes[g])))
        if draw(st.booleans()):
            mins[g] = lo
        if draw(st.booleans()):
            maxs[g] = draw(st.integers(lo, sizes[g]))
    lo_sum = sum(mins.values())
    hi_sum = sum(maxs.get(g, sizes[g]) for g in names)
    budget = draw(st.integers(max(lo_sum, 1), min(hi_sum, 80)))
    return mins, maxs, budget


@pytest.mark.parametrize("strategy", ["random", "kcenter", "topk", "margin", "entropy"])
def test_random_feasible_ranges_hold_exactly(frame, strategy):
    pool = Pool(frame=frame, columns=Columns())
    sizes = frame.get_column("group").value_counts().rows()
    sizes = {g: int(n) for g, n in sizes}

    @settings(
        max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(feasible_ranges(sizes))
    def check(case):
        mins, maxs, budget = case
        manifest, sel = select(pool, strategy, budget, seed=3, group_min=mins, group_max=maxs)
        assert manifest.height == budget == np.unique(sel.indices).size
        got = counts(pool, sel)
        assert within(got, mins, maxs), (mins, maxs, got)
        if not mins and not maxs:  # no bound at all: a plain run
            return
        recorded = sel.metrics["group_counts"]
        assert {g: c for g, c in recorded.items() if c} == got
        for g, (lo, hi) in sel.metrics["group_ranges"].items():
            assert lo == mins.get(g, 0) and hi == min(maxs.get(g, sizes[g]), sizes[g])

    check()


def test_loose_ranges_change_nothing(frame):
    pool = Pool(frame=frame, columns=Columns())
    plain, _ = select(pool, "kcenter", 40, seed=1)
    loose, sel = select(pool, "kcenter", 40, seed=1, group_max={"3": 40})
    assert plain.get_column("id").to_list() == loose.get_column("id").to_list()
    assert sel.metrics["group_ranges_rounds"] == 1 and sel.metrics["group_ranges_skipped"] == 0


def test_a_first_round_that_keeps_nothing_is_followed_by_one_that_fills():
    """budget 1, min 1 on a group the strategy's own pick misses (round 1 keeps nothing)."""
    from selectkit.testing import wide_frame

    pool = Pool(frame=wide_frame().head(600), columns=Columns())
    for strategy in ("random", "kcenter", "topk"):
        plain, _ = select(pool, strategy, 1, seed=3)
        first = pool.frame.get_column("group")[pool.ids.to_list().index(plain["id"][0])]
        other = "0" if first != "0" else "1"
        _, sel = select(pool, strategy, 1, seed=3, group_min={other: 1})
        assert sel.metrics["group_counts"][other] == 1
        assert sel.metrics["group_ranges_rounds"] == 2


def test_max_zero_excludes_a_group_and_mins_fill_in_pick_order(frame):
    pool = Pool(frame=frame, columns=Columns())
    _, sel = select(pool, "topk", 30, seed=0, group_min={"8": 10}, group_max={"1": 0, "2": 3})
    got = counts(pool, sel)
    assert got.get("1", 0) == 0 and got.get("2", 0) <= 3 and got["8"] >= 10
    # the kept picks of each group are that group's best-scored rows (topk's own order)
    scores = frame.get_column("score").to_numpy()
    groups = frame.get_column("group").to_numpy()
    for g in got:
        mine = np.flatnonzero(groups == g)
        picked = np.intersect1d(mine, sel.indices)
        rest = np.setdiff1d(mine, sel.indices)
        if rest.size:
            assert scores[picked].min() >= scores[rest].max()


def test_shuffled_rows_give_the_same_manifest(frame):
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=5)
    bounds = {"group_min": {"0": 9, "5": 7}, "group_max": {"7": 1}}
    for strategy in ("random", "kcenter"):
        a, _ = select(Pool(frame=frame, columns=Columns()), strategy, 50, seed=2, **bounds)
        b, _ = select(Pool(frame=shuffled, columns=Columns()), strategy, 50, seed=2, **bounds)
        assert a.equals(b)


def test_stochastic_modifier_goes_through_the_ranges(frame):
    pool = Pool(frame=frame, columns=Columns())
    _, sel = select(
        pool, "margin", 60, stochastic="softmax", group_min={"4": 20}, group_max={"9": 2}
    )
    got = counts(pool, sel)
    assert got["4"] >= 20 and got.get("9", 0) <= 2
    assert sel.metrics["stochastic"] == "softmax"


def test_labelled_rows_stay_out_in_every_round(frame):
    labelled = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 4 == 0).then(1).otherwise(None).alias("label")
    )
    pool = Pool(frame=labelled, columns=Columns())
    _, sel = select(pool, "kcenter", 50, group_min={"6": 25})
    assert not pool.labelled_mask[sel.indices].any()
    assert counts(pool, sel)["6"] >= 25


@pytest.mark.parametrize(
    ("bounds", "budget", "error", "message"),
    [
        ({"group_min": {"3": 1000}}, 50, SelectkitDataError, "group '3' has min 1000 but only"),
        ({"group_min": {"3": 30, "4": 30}}, 50, SelectkitDataError, "mins sum to 60"),
        (
            {"group_max": {g: 2 for g in "0123456789"}},
            50,
            SelectkitDataError,
            "allow at most 20 picks",
        ),
        ({"group_min": {"33": 1}}, 50, SelectkitUsageError, "names group '33'"),
        ({"group_min": "3=x"}, 50, SelectkitUsageError, "give a whole number"),
        ({"group_min": {"3": 5}, "group_max": {"3": 2}}, 50, SelectkitUsageError, "min 5 > max 2"),
    ],
)
def test_infeasible_ranges_refused_naming_the_group(frame, bounds, budget, error, message):
    pool = Pool(frame=frame, columns=Columns())
    with pytest.raises(error, match=message):
        select(pool, "kcenter", budget, **bounds)


def test_self_sized_strategy_refuses_ranges(frame):
    with pytest.raises(SelectkitUsageError, match="takes no group ranges"):
        select(Pool(frame=frame, columns=Columns()), "semdedup", None, group_min={"3": 1})


@pytest.fixture(scope="module")
def rt_tables(tmp_path_factory, rt_emb, rt_small):
    """Rotten Tomatoes (400 rows): embeddings from `selectkit embed`, and a metadata table whose
    ``source`` column is the review's genre label."""
    folder = tmp_path_factory.mktemp("rt")
    meta = folder / "meta.parquet"
    pl.read_ndjson(rt_small).select("id", pl.col("label").alias("source")).write_parquet(meta)
    return rt_emb, meta


def test_cli_kcenter_with_ranges_on_rotten_tomatoes(cli, rt_tables, tmp_path):
    emb, meta = rt_tables
    sizes = dict(pl.read_parquet(meta).get_column("source").value_counts().rows())
    small = min(sizes, key=sizes.get)
    big = max(sizes, key=sizes.get)
    out = tmp_path / "m.parquet"
    result = cli(
        "select", emb, meta, "--strategy", "kcenter", "--budget", "60", "--group-col", "source",
        "--group-min", f"{small}={sizes[small]}", "--group-max", f"{big}=5", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    picked = pl.read_parquet(out).join(pl.read_parquet(meta), on="id")
    got = dict(picked.get_column("source").value_counts().rows())
    assert picked.height == 60 and got[small] == sizes[small] and got.get(big, 0) <= 5
    prov = read_provenance(out)
    assert prov["params"]["group_ranges"] == {
        "column": "source",
        "min": {small: sizes[small]},
        "max": {big: 5},
    }
    assert {g: c for g, c in prov["metrics"]["group_counts"].items() if c} == got


def test_cli_ranges_file_and_refusal_before_output(cli, rt_tables, tmp_path):
    emb, meta = rt_tables
    sizes = dict(pl.read_parquet(meta).get_column("source").value_counts().rows())
    small = min(sizes, key=sizes.get)
    ranges = tmp_path / "ranges.csv"
    pl.DataFrame({"group": [small], "min": [3], "max": [4]}).write_csv(ranges)
    out = tmp_path / "m.parquet"
    args = ["select", emb, meta, "-s", "random", "-b", "30", "--group-col", "source", "-o", out]
    result = cli(*args, "--group-ranges", ranges)
    assert result.exit_code == 0, result.output
    picked = pl.read_parquet(out).join(pl.read_parquet(meta), on="id")
    assert 3 <= (picked.get_column("source") == small).sum() <= 4
    out.unlink()
    too_many = cli(*args, "--group-min", f"{small}={sizes[small] + 1}")
    assert too_many.exit_code == 1 and f"group '{small}' has min" in too_many.stderr
    assert "\n" not in too_many.stderr.strip() and not out.exists()
    typo = cli(*args, "--group-max", f"{small}x=1")
    assert typo.exit_code == 2 and f"'{small}x'" in typo.stderr and not out.exists()
    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("group,lo\nx,1\n")
    result = cli(*args, "--group-ranges", bad_file)
    assert result.exit_code == 2 and "lacks column 'min'" in result.stderr
    assert not out.exists()
    bad_file.write_text(f"group,min,max\n{small},x,\n")
    result = cli(*args, "--group-ranges", bad_file)
    assert result.exit_code == 2 and "is 'x'; give a whole number" in result.stderr


def test_cli_json_reports_group_counts(cli, rt_tables, tmp_path):
    emb, meta = rt_tables
    out = tmp_path / "m.parquet"
    payload = cli.json(
        "select", emb, meta, "-s", "random", "-b", "20", "--group-col", "source",
        "--group-max", "plot=0", "-o", out,
    )  # fmt: skip
    assert payload["group_counts"]["plot"] == 0
    assert json.dumps(payload["group_ranges"])


def test_select_files_with_a_shard_plan_strategy_reads_on_the_driver(frame, tmp_path):
    """margin has a per-shard plan; with ranges the pool is read on the driver and the bounds
    hold (a ranges DataFrame from Python)."""
    from selectkit import select_files

    path = tmp_path / "pool.parquet"
    frame.drop("label").write_parquet(path)
    ranges = pl.DataFrame({"group": ["2", "5"], "min": [15, None], "max": [None, 0]})
    out = tmp_path / "m.parquet"
    prov = select_files([path], out, strategy="margin", budget=40, group_ranges=ranges)
    assert prov.metrics["group_counts"]["2"] >= 15 and prov.metrics["group_counts"]["5"] == 0
    assert prov.params["group_ranges"] == {"column": "group", "min": {"2": 15}, "max": {"5": 0}}


def _budgeted():
    from selectkit import list_strategies
    from selectkit.strategies.inputs import StreamingAdapter

    return [
        s.name
        for s in list_strategies()
        if not s.self_sized and not isinstance(s.inputs, StreamingAdapter)
    ]


@pytest.mark.parametrize("strategy", _budgeted())
def test_every_strategy_with_a_budget_meets_ranges_on_its_example_pool(strategy):
    """Each registered strategy (DISCO's pivoted pool and moderate's classes included) through
    the same runner: later rounds run on a cut or marked pool and the bounds hold."""
    from selectkit import get_strategy
    from selectkit.testing import example_pool

    pool = example_pool(strategy)
    params = get_strategy(strategy).example_params()
    mins, maxs = {"3": 25, "4": 10}, {"0": 1, "1": 0}
    _, sel = select(pool, strategy, 60, seed=1, params=params, group_min=mins, group_max=maxs)
    assert sel.indices.size == 60 == np.unique(sel.indices).size
    assert within(sel.metrics["group_counts"], mins, maxs), sel.metrics["group_counts"]


def test_moderate_keeps_its_budget_when_a_whole_cluster_is_labelled(frame):
    """The bug later rounds exposed: moderate gave an empty class a pick of its own."""
    marked = frame.drop("label").with_columns(
        pl.when(pl.col("cluster") == 3).then(1).otherwise(None).alias("seen")
    )
    _, sel = select(Pool(frame=marked, columns=Columns()), "moderate", 45, labelled_col="seen")
    assert sel.indices.size == 45


def test_cli_exclude_and_ranges_together_count_only_the_rows_left(cli, rt_tables, tmp_path):
    emb, meta = rt_tables
    round1, round2 = tmp_path / "r1.parquet", tmp_path / "r2.parquet"
    first = ["select", emb, meta, "-s", "kcenter", "-b", "40", "--group-col", "source"]
    assert cli(*first, "-o", round1).exit_code == 0
    done = pl.read_parquet(round1).join(pl.read_parquet(meta), on="id")
    group = done.get_column("source").mode().item()
    sizes = dict(pl.read_parquet(meta).get_column("source").value_counts().rows())
    left = sizes[group] - int((done.get_column("source") == group).sum())
    second = [*first, "--exclude", round1, "-o", round2]
    # a min the whole group allows, but not what --exclude leaves of it: refused, naming both
    result = cli(*second, "--group-min", f"{group}={left + 1}")
    assert result.exit_code == 1 and f"'{group}'" in result.stderr and str(left) in result.stderr
    assert not round2.exists()
    result = cli(*second, "--group-min", f"{group}={min(left, 30)}")
    assert result.exit_code == 0, result.stderr
    picked = pl.read_parquet(round2).join(pl.read_parquet(meta), on="id")
    assert not set(picked["id"]) & set(done["id"])
    assert int((picked.get_column("source") == group).sum()) >= min(left, 30)
