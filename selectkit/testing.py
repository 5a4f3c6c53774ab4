"""The contract every registered strategy keeps, as checks a plug-in runs from its own tests.

Like scikit-learn's ``parametrize_with_checks``: decorate one test with the strategies to check
and pytest runs every check on every strategy, each as its own test case::

    from selectkit.testing import parametrize_with_checks

    @parametrize_with_checks(["every_other"])
    def test_strategy_contract(strategy, check):
        check(strategy)

``check_strategy(name)`` runs them all in one call (no pytest needed). The checks run the
strategy through ``selectkit.select`` on example data built from real samples that ship with
selectkit's dependencies and the package itself, no network: scikit-learn's bundled digits
(1,797 rows x 64 features, BSD-3-Clause; the UCI optical digits, CC BY 4.0) as ``embedding``,
with real classifiers' probabilities, and Rotten Tomatoes snippets (``selectkit/_data``, see its
README.md for source and licence) as ``text``. A strategy that needs parameters to run at all
declares them as ``register_strategy(..., examples=...)``; invalid values are generated from
each ``Param``'s bounds and choices (``Param.invalid_values``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitError, SelectkitUsageError
from selectkit.pool import Columns, Pool
from selectkit.strategies import Strategy, get_strategy

__all__ = [
    "CHECKS",
    "check_strategy",
    "example_frame",
    "example_pool",
    "long_frame",
    "parametrize_with_checks",
    "wide_frame",
]

Check = Callable[[str], None]


# ---------------------------------------------------------------- example data (cached per process)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


@functools.cache
def wide_frame() -> pl.DataFrame:
    """One row per id with every conventional column, from real data: ``embedding`` (digits),
    ``label`` (all null: unlabelled), ``cluster`` (the true digit), ``proba`` and ``proba_mc``
    (a logistic regression fitted on a quarter of the rows; MC samples with noise), ``score``
    (its max probability), ``group``, ``model`` and ``text`` (Rotten Tomatoes). 1,797 rows;
    built once per process in about a second."""
    from sklearn.linear_model import LogisticRegression

    from selectkit.demo import bundled_corpus

    x, y = _digits()
    texts = pl.read_ndjson(bundled_corpus()).get_column("text").head(len(x))
    proba = LogisticRegression(max_iter=500).fit(x[::4], y[::4]).predict_proba(x)
    rng = np.random.default_rng(0)
    mc = np.clip(proba[:, None, :] + rng.normal(0, 0.05, (len(x), 4, proba.shape[1])), 1e-6, None)
    mc /= mc.sum(axis=2, keepdims=True)
    return pl.DataFrame(
        {
            "id": [f"d{i:04d}" for i in range(len(x))],
            "embedding": x,
            "label": pl.Series([None] * len(x), dtype=pl.Int64),
            "cluster": y.astype(np.int32),
            "proba": proba.astype(np.float64).tolist(),
            "proba_mc": mc.tolist(),
            "score": proba.max(axis=1),
            "group": [str(v) for v in y],
            "model": ["m0"] * len(x),
            "text": texts,
        }
    )


@functools.cache
def long_frame() -> pl.DataFrame:
    """One row per (model, id): six real classifiers of different families (fitted on
    different slices of digits) with their ``proba`` for every row, ``group`` (the digit) and
    ``label`` (all null), for strategies that read predictions of many models (DISCO)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = _digits()
    zoo = {
        "logreg_c0.01": (LogisticRegression(C=0.01, max_iter=300), slice(0, None, 5)),
        "logreg_c1": (LogisticRegression(C=1.0, max_iter=300), slice(1, None, 3)),
        "gaussnb": (GaussianNB(), slice(2, None, 4)),
        "tree_d4": (DecisionTreeClassifier(max_depth=4, random_state=0), slice(3, None, 3)),
        "knn_k5": (KNeighborsClassifier(5), slice(0, None, 7)),
        "knn_k25": (KNeighborsClassifier(25), slice(4, None, 6)),
    }
    ids = [f"d{i:04d}" for i in range(len(x))]
    frames = []
    for name, (model, rows) in zoo.items():
        proba = model.fit(x[rows], y[rows]).predict_proba(x).astype(np.float32)
        frames.append(
            pl.DataFrame(
                {
                    "model": name,
                    "id": ids,
                    "proba": pl.Series(proba.tolist(), dtype=pl.List(pl.Float32)),
                    "group": [str(v) for v in y],
                    "label": pl.Series([None] * len(x), dtype=pl.Int64),
                }
            )
        )
    return pl.concat(frames)


def _is_long(name: str) -> bool:
    return get_strategy(name).inputs.name == "long"


def example_frame(name: str) -> pl.DataFrame:
    """The example input for strategy ``name``: ``long_frame()`` for strategies that read one
    row per (model, id), else ``wide_frame()``."""
    return long_frame() if _is_long(name) else wide_frame()


def example_pool(name: str, frame: pl.DataFrame | None = None) -> Pool:
    """The pool strategy ``name`` sees for ``frame`` (default: its example frame), prepared by
    the strategy's input adapter as ``select`` does (DISCO's long tables: one row per id)."""
    spec = get_strategy(name)
    pool = Pool(frame=example_frame(name) if frame is None else frame, columns=Columns())
    params = spec.resolve_params(spec.example_params())
    return spec.inputs.prepare(pool, (), f"strategy '{name}'", params)


# ----------------------------------------------------------------------------- helpers of the checks


def _select(pool: Pool, name: str, budget: Any, **kwargs: Any) -> tuple[pl.DataFrame, Any]:
    """``selectkit.select`` with the registration's example parameters under any given ones."""
    from selectkit.select import select

    params = {**get_strategy(name).example_params(), **kwargs.pop("params", {})}
    return select(pool, name, budget, params=params, **kwargs)


def _budget(name: str, budget: Any) -> Any:
    """Self-sized strategies (semdedup) take no budget: they decide how many rows they keep."""
    return None if get_strategy(name).self_sized else budget


def _first_ids(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The rows of the first ``n`` ids (every model's rows of them in a long frame)."""
    ids = frame.get_column("id").unique(maintain_order=True).head(n)
    return frame.filter(pl.col("id").is_in(ids.implode()))


def _with_labels(frame: pl.DataFrame, label_of: Callable[[int], Any]) -> pl.DataFrame:
    """``label`` set per id: ``label_of(i)`` for the i-th id (the same on all its rows)."""
    ids = frame.get_column("id").unique(maintain_order=True)
    labels = pl.DataFrame(
        {"id": ids, "label": pl.Series([label_of(i) for i in range(ids.len())], dtype=pl.Int64)}
    )
    return frame.drop("label").join(labels, on="id", how="left", maintain_order="left")


def _expect(error: type[Exception], match: str, run: Callable[[], Any], what: str) -> None:
    """Run ``run`` and require ``error`` whose message contains ``match``."""
    try:
        run()
    except error as exc:
        if match not in str(exc):
            raise AssertionError(f"{what}: the error does not say {match!r}: {exc}") from None
        return
    raise AssertionError(f"{what}: no {error.__name__} was raised")


# ------------------------------------------------------------------------------------------ checks


def check_budget_exact(name: str) -> None:
    """A budget of 37 gives exactly 37 distinct rows ranked 0..36 (self-sized: some rows), with
    float score and positive float weight columns."""
    pool = example_pool(name)
    manifest, sel = _select(pool, name, _budget(name, 37), seed=1)
    size = manifest.height if get_strategy(name).self_sized else 37
    assert 0 < size <= len(pool), f"{name}: {size} rows kept of {len(pool)}"
    assert manifest.height == size and sel.indices.size == size
    assert manifest.get_column("id").n_unique() == size, f"{name}: a row was picked twice"
    assert manifest.get_column("rank").to_list() == list(range(size))
    assert set(manifest.columns) >= {"id", "rank", "score", "weight"}
    assert manifest.schema["score"] == pl.Float64 and manifest.schema["weight"] == pl.Float64
    assert (manifest.get_column("weight") > 0).all(), f"{name}: a weight is not positive"


def check_same_seed_same_manifest(name: str) -> None:
    """The same pool, budget and seed give the same manifest."""
    pool = example_pool(name)
    a, _ = _select(pool, name, _budget(name, "5%"), seed=11)
    b, _ = _select(pool, name, _budget(name, "5%"), seed=11)
    assert a.equals(b), f"{name}: the same seed gave another manifest"


def check_fraction_and_count_budgets_agree(name: str) -> None:
    """'10%' picks what the equivalent count picks; no budget is a usage error (self-sized
    strategies: any budget is)."""
    pool = example_pool(name)
    if get_strategy(name).self_sized:
        _expect(SelectkitUsageError, "takes no budget", lambda: _select(pool, name, "10%"), name)
        return
    _expect(SelectkitUsageError, "needs a budget", lambda: _select(pool, name, None), name)
    a, _ = _select(pool, name, "10%", seed=2)
    b, _ = _select(pool, name, round(0.1 * len(pool)), seed=2)
    assert a.equals(b), f"{name}: '10%' and its count picked differently"


def check_tiny_pools(name: str) -> None:
    """A one-row pool gives its row; a budget of 100% gives every row; one more is refused."""
    frame = example_frame(name)
    manifest, _ = _select(example_pool(name, _first_ids(frame, 1)), name, _budget(name, 1))
    assert manifest.get_column("id").to_list() == [frame.get_column("id")[0]]
    head = _first_ids(frame, 25)
    small = example_pool(name, head)
    manifest, _ = _select(small, name, _budget(name, "100%"))
    picked = set(manifest.get_column("id").to_list())
    if get_strategy(name).self_sized:
        assert picked and picked <= set(head["id"].to_list())
        return
    assert picked == set(head["id"].unique().to_list()), f"{name}: 100% missed rows"
    _expect(SelectkitError, "larger than the pool", lambda: _select(small, name, 26), name)


def check_labelled_rows_never_picked(name: str) -> None:
    """Rows of the labelled set are never picked; a budget above the other rows, and a pool
    with every row labelled, are refused with errors that say so. The labelled set is marked
    by ``labelled_col``, so strategies that use labels as data are checked too."""
    frame = example_frame(name)
    marked = {"labelled_col": "label"}
    pool = example_pool(name, _with_labels(frame, lambda i: 0 if i % 3 else None))
    _, sel = _select(pool, name, _budget(name, 40), **marked)
    assert not pool.labelled_mask[sel.indices].any(), f"{name}: picked a labelled row"
    if not get_strategy(name).self_sized:
        over = int((~pool.labelled_mask).sum()) + 1
        too_many = lambda: _select(pool, name, over, **marked)  # noqa: E731
        _expect(SelectkitError, "larger than the pool", too_many, name)
    full = example_pool(name, _with_labels(frame, lambda i: 1))
    all_marked = lambda: _select(full, name, _budget(name, 1), **marked)  # noqa: E731
    _expect(SelectkitError, "use_labels=False", all_marked, name)


def check_order_invariance(name: str) -> None:
    """The same rows in another order give the same manifest (with default parameters; a
    strategy whose defaults read row order declares ``reads_row_order``)."""
    spec = get_strategy(name)
    if spec.keeps_input_order(spec.resolve_params(spec.example_params())):
        return
    frame = example_frame(name)
    shuffled = frame[np.random.default_rng(5).permutation(frame.height)]
    a, _ = _select(example_pool(name, frame), name, _budget(name, "5%"), seed=7)
    b, _ = _select(example_pool(name, shuffled), name, _budget(name, "5%"), seed=7)
    assert a.equals(b), f"{name}: shuffled rows changed the manifest"


def check_missing_columns_refused(name: str) -> None:
    """An input without a column the strategy needs is refused, naming the column, before work."""
    for role in get_strategy(name).needs:
        column = Columns().name(role)
        pool = Pool(frame=example_frame(name).drop(column), columns=Columns())
        run = functools.partial(_select, pool, name, _budget(name, 5))
        _expect(SelectkitError, f"needs column '{column}'", run, f"{name} without {column}")


def check_every_choice_runs(name: str) -> None:
    """Every choice of every parameter (the default, or the example, where it has none) runs."""
    spec = get_strategy(name)
    pool = example_pool(name)
    examples = spec.example_params()
    for pname, param in spec.params.items():
        values = param.choices or ((examples[pname],) if pname in examples else (param.default,))
        for value in values:
            manifest, _ = _select(pool, name, _budget(name, 10), params={pname: value})
            assert manifest.height == 10 or (spec.self_sized and manifest.height > 0), (
                f"{name} {pname}={value!r}: {manifest.height} rows"
            )


def check_invalid_params_refused(name: str) -> None:
    """Each value outside a parameter's declared bounds or choices (``Param.invalid_values``)
    is a usage error naming the parameter; each closed bound itself is accepted."""
    spec = get_strategy(name)
    pool = example_pool(name)
    for pname, param in spec.params.items():
        for bad in param.invalid_values():
            run = functools.partial(_select, pool, name, _budget(name, 5), params={pname: bad})
            _expect(SelectkitUsageError, pname, run, f"{name} {pname}={bad!r}")


def check_declarations(name: str) -> None:
    """Each parameter's declaration accepts its own default, choices and closed bounds, and
    the registration's example parameters are declared ones."""
    spec = get_strategy(name)
    undeclared = sorted(set(spec.example_params()) - set(spec.params))
    assert not undeclared, f"example parameter {undeclared[0]!r} is not declared"
    for pname, param in spec.params.items():
        _accepts(param, pname, param.default, "its default")
        for choice in param.choices or ():
            _accepts(param, pname, choice, "its choice")
        for bound, is_open in ((param.low, param.low_open), (param.high, param.high_open)):
            if bound is not None and not is_open and param.type in (int, float):
                _accepts(param, pname, param.type(bound), "its closed bound")


def _accepts(param: Any, pname: str, value: Any, what: str) -> None:
    """A declaration must accept its own default and closed bounds."""
    try:
        param.parse(pname, value)
    except SelectkitUsageError as exc:
        raise AssertionError(f"{pname}: {what} {value!r} is refused by its Param: {exc}") from None


def check_unknown_param_refused(name: str) -> None:
    """A parameter the strategy does not declare is a usage error."""
    pool = example_pool(name)
    run = functools.partial(_select, pool, name, _budget(name, 5), params={"no_such_param": 1})
    _expect(SelectkitUsageError, "has no parameter", run, name)


def _with_costs(frame: pl.DataFrame, cost_of: Callable[[int], float]) -> pl.DataFrame:
    """``cost_s`` set per id: ``cost_of(i)`` for the i-th id (the same on all its rows)."""
    ids = frame.get_column("id").unique(maintain_order=True)
    costs = pl.DataFrame(
        {"id": ids, "cost_s": pl.Series([cost_of(i) for i in range(ids.len())], dtype=pl.Float64)}
    )
    return frame.join(costs, on="id", how="left", maintain_order="left")


def check_cost_budget(name: str) -> None:
    """With a cost column and a cost budget (``select(cost_col=, budget_cost=)``): some rows are
    picked, each once, the spent cost never exceeds the budget, the manifest's ``cost`` and
    ``cumulative_cost`` agree and rise with the rank, and a zero cost is a data error naming the
    column. Every strategy: those that spend cost themselves, scored ones and the rest (picks
    taken in pick order while they fit)."""
    frame = example_frame(name)
    pool = example_pool(name, _with_costs(frame, lambda i: 1.0 + (i * 7) % 5 * 0.75))
    budget = 40.0
    manifest, sel = _select(pool, name, None, cost_col="cost_s", budget_cost=budget, seed=3)
    assert manifest.height > 0, f"{name}: nothing picked under a cost budget"
    assert manifest.get_column("id").n_unique() == manifest.height, f"{name}: a row twice"
    cost = manifest.get_column("cost").to_numpy()
    cumulative = manifest.get_column("cumulative_cost").to_numpy()
    assert cumulative[-1] <= budget, f"{name}: spent {cumulative[-1]} > budget {budget}"
    assert np.allclose(cumulative, np.cumsum(cost)) and np.all(np.diff(cumulative) > 0)
    assert abs(sel.metrics["cost_spent"] - cumulative[-1]) < 1e-9 * budget
    bad = example_pool(name, _with_costs(frame, lambda i: 0.0 if i == 3 else 1.0))
    run = functools.partial(_select, bad, name, None, cost_col="cost_s", budget_cost=5.0)
    _expect(SelectkitError, "cost column 'cost_s'", run, name)


CHECKS: tuple[Check, ...] = (
    check_declarations,
    check_budget_exact,
    check_same_seed_same_manifest,
    check_fraction_and_count_budgets_agree,
    check_tiny_pools,
    check_labelled_rows_never_picked,
    check_order_invariance,
    check_missing_columns_refused,
    check_every_choice_runs,
    check_invalid_params_refused,
    check_unknown_param_refused,
    check_cost_budget,
)


def _names(strategies: Iterable[str | Strategy]) -> list[str]:
    names = [s.name if isinstance(s, Strategy) else str(s) for s in strategies]
    for name in names:
        get_strategy(name)  # an unknown name fails here, at collection, with the known ones
    return names


def parametrize_with_checks(strategies: Iterable[str | Strategy]) -> Any:
    """A ``pytest.mark.parametrize`` decorator over (strategy name, check) pairs, one test case
    per pair with the readable id ``<strategy>-<check>``; the test calls ``check(strategy)``.
    Needs pytest (imported here only). Cost: each check runs a few selections on 1,797 rows."""
    try:
        import pytest
    except ImportError:
        raise SelectkitUsageError(
            "parametrize_with_checks makes pytest cases and needs pytest: pip install pytest "
            "(or run the checks without it: selectkit.testing.check_strategy(name))"
        ) from None

    cases = [
        pytest.param(name, check, id=f"{name}-{check.__name__.removeprefix('check_')}")
        for name in _names(strategies)
        for check in CHECKS
    ]
    return pytest.mark.parametrize(("strategy", "check"), cases)


def check_strategy(name: str | Strategy) -> None:
    """Run every contract check on strategy ``name``; the first failure raises an
    ``AssertionError`` saying which check and what went wrong. Takes seconds."""
    (name,) = _names([name])
    for check in CHECKS:
        try:
            check(name)
        except Exception as exc:  # a selectkit error from the run is a failed check too
            raise AssertionError(f"{name}: {check.__name__}: {exc}") from exc
