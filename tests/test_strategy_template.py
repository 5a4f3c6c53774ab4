"""The shared checks every registered strategy must pass (like scikit-learn's estimator checks).

A new strategy gets these for free by registering; it also needs its own test module
``tests/test_strategy_<name>.py`` that mentions every one of its parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selectkit import Pool, SelectkitError, get_strategy, list_strategies
from selectkit import select as _select
from selectkit.disco.data import pivot_pool
from selectkit.errors import SelectkitUsageError
from selectkit.pool import Columns

STRATEGIES = [s.name for s in list_strategies()]
SELF_SIZED = {s.name for s in list_strategies() if s.self_sized}
TESTS = Path(__file__).parent


# Parameters a strategy cannot run without (dsir needs a target corpus); every shared check
# runs with them, so such strategies take part instead of being skipped.
REQUIRED_PARAMS = {"dsir": {"target": [str(TESTS.parent / "data_samples" / "fortunes.jsonl")]}}


def select(pool, name, budget, *, params=None, **kwargs):
    """``selectkit.select`` with the strategy's required parameters filled in where empty."""
    merged = dict(params or {})
    for key, value in REQUIRED_PARAMS.get(name, {}).items():
        if not merged.get(key):
            merged[key] = value
    return _select(pool, name, budget, params=merged, **kwargs)


def budget_for(name: str, budget):
    """Self-sized strategies (semdedup) take no budget: they decide how many rows they keep."""
    return None if name in SELF_SIZED else budget


def pool_of(frame: pl.DataFrame, name: str | None = None) -> Pool:
    """The pool a strategy sees: long-layout strategies (one row per model and id) get it
    pivoted to one row per sample id, as ``select`` does."""
    pool = Pool(frame=frame, columns=Columns())
    if name is not None and get_strategy(name).inputs.name == "long":
        pool = pivot_pool(pool)
    return pool


@pytest.fixture(scope="module")
def frame_for(full_frame, long_frame):
    """The template's input for a strategy: ``full_frame`` (one row per id), or for strategies
    with ``layout="long"`` the same digits as real models' long-format predictions."""
    return lambda name: long_frame if get_strategy(name).inputs.name == "long" else full_frame


@pytest.fixture(scope="module")
def pools(frame_for):
    cache: dict[str, Pool] = {}

    def get(name: str) -> Pool:
        if name not in cache:
            cache[name] = pool_of(frame_for(name), name)
        return cache[name]

    return get


def first_ids(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The rows of the first ``n`` sample ids (all their models' rows in a long frame)."""
    ids = frame.get_column("id").unique(maintain_order=True).head(n)
    return frame.filter(pl.col("id").is_in(ids.implode()))


def with_sample_labels(frame: pl.DataFrame, label_of) -> pl.DataFrame:
    """Set ``label`` per sample id: ``label_of(i)`` for the i-th id (same for all its rows)."""
    ids = frame.get_column("id").unique(maintain_order=True)
    labels = pl.DataFrame(
        {"id": ids, "label": pl.Series([label_of(i) for i in range(ids.len())], dtype=pl.Int64)}
    )
    return frame.drop("label").join(labels, on="id", how="left", maintain_order="left")


@pytest.mark.parametrize("name", STRATEGIES)
def test_budget_respected_no_duplicates(pools, name):
    pool = pools(name)
    manifest, sel = select(pool, name, budget_for(name, 37), seed=1)
    size = manifest.height if name in SELF_SIZED else 37
    assert 0 < size <= len(pool)
    assert manifest.height == size and sel.indices.size == size
    assert manifest.get_column("id").n_unique() == size
    assert manifest.get_column("rank").to_list() == list(range(size))
    assert set(manifest.columns) >= {"id", "rank", "score", "weight"}
    assert manifest.schema["score"] == pl.Float64 and manifest.schema["weight"] == pl.Float64
    assert (manifest.get_column("weight") > 0).all()


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_manifest(pools, name):
    pool = pools(name)
    a, _ = select(pool, name, budget_for(name, "5%"), seed=11)
    b, _ = select(pool, name, budget_for(name, "5%"), seed=11)
    assert a.equals(b)


@pytest.mark.parametrize("name", STRATEGIES)
def test_fraction_and_count_budgets_agree(pools, name):
    pool = pools(name)
    if name in SELF_SIZED:
        with pytest.raises(SelectkitUsageError, match="takes no budget"):
            select(pool, name, "10%", seed=2)
        return
    with pytest.raises(SelectkitUsageError, match="needs a budget"):
        select(pool, name, None, seed=2)
    a, _ = select(pool, name, "10%", seed=2)
    b, _ = select(pool, name, round(0.1 * len(pool)), seed=2)
    assert a.equals(b)


@pytest.mark.parametrize("name", STRATEGIES)
def test_one_row_pool_and_budget_equal_to_pool(frame_for, name):
    frame = frame_for(name)
    one = pool_of(first_ids(frame, 1), name)
    manifest, _ = select(one, name, budget_for(name, 1), seed=0)
    assert manifest.get_column("id").to_list() == [frame.get_column("id")[0]]
    head = first_ids(frame, 25)
    small = pool_of(head, name)
    manifest, _ = select(small, name, budget_for(name, "100%"), seed=0)
    picked = set(manifest.get_column("id").to_list())
    if name in SELF_SIZED:
        assert picked and picked <= set(head["id"].to_list())
        return
    assert picked == set(head["id"].unique().to_list())
    with pytest.raises(SelectkitError, match="larger than the pool"):
        select(small, name, 26, seed=0)


@pytest.mark.parametrize("name", STRATEGIES)
def test_labelled_rows_are_never_picked(frame_for, name):
    frame = frame_for(name)
    pool = pool_of(with_sample_labels(frame, lambda i: 0 if i % 3 else None), name)
    marked = {"labelled_col": "label"}  # the labelled set, also for strategies with labels as data
    _manifest, sel = select(pool, name, budget_for(name, 40), seed=0, **marked)
    assert not pool.labelled_mask[sel.indices].any()
    if name not in SELF_SIZED:
        with pytest.raises(SelectkitError, match="larger than the pool"):
            select(pool, name, int((~pool.labelled_mask).sum()) + 1, seed=0, **marked)
    all_labelled = pool_of(with_sample_labels(frame, lambda i: 1), name)
    with pytest.raises(SelectkitError, match="use_labels=False"):  # the CLI: --label-col none
        select(all_labelled, name, budget_for(name, 1), seed=0, **marked)


@pytest.mark.parametrize("name", STRATEGIES)
def test_missing_needed_column_is_refused_before_work(frame_for, name):
    spec = next(s for s in list_strategies() if s.name == name)
    for role in spec.needs:
        pool = pool_of(frame_for(name).drop(Columns().name(role)))
        with pytest.raises(SelectkitError, match=f"needs column '{Columns().name(role)}'"):
            select(pool, name, budget_for(name, 5), seed=0)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_parameter_choice_runs(pools, name):
    pool = pools(name)
    spec = next(s for s in list_strategies() if s.name == name)
    for pname, param in spec.params.items():
        for value in param.choices or (param.default,):
            manifest, _ = select(pool, name, budget_for(name, 10), seed=0, params={pname: value})
            assert manifest.height == 10 or (name in SELF_SIZED and manifest.height > 0)


BUILTINS = [s.name for s in list_strategies() if s.fn.__module__.startswith("selectkit.")]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_parameter_has_a_test(name):
    """Built-in strategies only: a plug-in keeps its own tests in its own package."""
    spec = next(s for s in list_strategies() if s.name == name)
    own = TESTS / f"test_strategy_{name}.py"
    assert own.exists(), f"strategy {name!r} needs its own tests in {own.name}"
    text = own.read_text()
    for pname in spec.params:
        assert pname in text, f"parameter {pname!r} of {name!r} is not exercised in {own.name}"


@pytest.mark.parametrize("name", STRATEGIES)
def test_unknown_parameter_is_usage_error(pools, name):
    pool = pools(name)
    with pytest.raises(SelectkitUsageError, match="has no parameter"):
        select(pool, name, 5, params={"no_such_param": 1})


def test_registry_lists_builtins():
    assert {"random", "kcenter", "disco"} <= set(STRATEGIES)


def test_numpy_pool_api(digits):
    x, _ = digits
    manifest, sel = select(Pool.from_arrays(x), "kcenter", 10, seed=0)
    assert manifest.get_column("id").to_list() == sel.indices.tolist()
    assert np.isfinite(manifest.get_column("score").drop_nulls().to_numpy()).all()
