"""The shared checks every registered strategy must pass (like scikit-learn's estimator checks).

The checks live in ``selectkit.testing`` (a plug-in runs the same ones from its own tests);
here they run on every registered strategy. A built-in strategy also needs its own test module
``tests/test_strategy_<name>.py`` that mentions every one of its parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selectkit import Pool, SelectkitUsageError, get_strategy, list_strategies, select
from selectkit.testing import CHECKS, check_strategy, parametrize_with_checks

STRATEGIES = [s.name for s in list_strategies()]
BUILTINS = [s.name for s in list_strategies() if s.fn.__module__.startswith("selectkit.")]
TESTS = Path(__file__).parent


@parametrize_with_checks(STRATEGIES)
def test_strategy_contract(strategy, check):
    check(strategy)


@pytest.mark.parametrize("name", BUILTINS)
def test_every_parameter_has_a_test(name):
    """Built-in strategies only: a plug-in keeps its own tests in its own package."""
    own = TESTS / f"test_strategy_{name}.py"
    assert own.exists(), f"strategy {name!r} needs its own tests in {own.name}"
    text = own.read_text()
    for pname in get_strategy(name).params:
        assert pname in text, f"parameter {pname!r} of {name!r} is not exercised in {own.name}"


def test_registry_lists_builtins():
    assert {"random", "kcenter", "disco"} <= set(STRATEGIES)


def test_checks_are_named_and_ids_readable():
    mark = parametrize_with_checks(["random"]).mark
    ids = [case.id for case in mark.args[1]]
    assert ids == [f"random-{c.__name__.removeprefix('check_')}" for c in CHECKS]
    assert "random-budget_exact" in ids and "random-invalid_params_refused" in ids
    with pytest.raises(SelectkitUsageError, match="did you mean 'random'"):
        parametrize_with_checks(["randm"])


def test_dsir_runs_the_checks_with_its_registered_example_target():
    """No special case for dsir in the checks: its registration names an example target."""
    target = get_strategy("dsir").example_params()["target"]
    assert len(target) == 1 and Path(target[0]).name == "fortunes.jsonl"
    assert Path(target[0]).is_file()


@pytest.fixture
def wrongly_declared():
    """A plug-in whose default lies outside its own declared bounds (a real declaration bug
    the checks must catch); unregistered afterwards so no other test lists it."""
    from selectkit import Param, Selection, register_strategy
    from selectkit.strategies.base import _REGISTRY

    @register_strategy(
        "test_wrong_default",
        summary="test only",
        params={"skip": Param(int, 0, "rows to skip first", low=1)},
    )
    def wrong(pool, budget, rng, skip=0):
        return Selection(indices=pool.candidates[skip : skip + budget])

    yield "test_wrong_default"
    _REGISTRY.pop("test_wrong_default")


def test_check_strategy_runs_every_check_and_names_the_failing_one(wrongly_declared):
    check_strategy("random")  # passes every check
    with pytest.raises(AssertionError, match="check_declarations: skip: its default 0 is refused"):
        check_strategy(wrongly_declared)


def test_numpy_pool_api(digits):
    x, _ = digits
    manifest, sel = select(Pool.from_arrays(x), "kcenter", 10, seed=0)
    assert manifest.get_column("id").to_list() == sel.indices.tolist()
    assert np.isfinite(manifest.get_column("score").drop_nulls().to_numpy()).all()


@pytest.mark.parametrize("name", [s.name for s in list_strategies() if s.meets_ranges])
def test_a_strategy_that_meets_ranges_meets_them_alone(name):
    """``meets_ranges=True`` (fair-centers): one round, no pick skipped by the runner's walk."""
    from selectkit.testing import example_pool

    params = get_strategy(name).example_params()
    mins, maxs = {"3": 12, "7": 5}, {"0": 0, "1": 2}
    _, sel = select(example_pool(name), name, 40, params=params, group_min=mins, group_max=maxs)
    counts = sel.metrics["group_counts"]
    assert counts["3"] >= 12 and counts["7"] >= 5 and counts["0"] == 0 and counts["1"] <= 2
    assert sel.metrics["group_ranges_rounds"] == 1 and sel.metrics["group_ranges_skipped"] == 0
