"""The reproducible pool-based active-learning simulation (``selectkit al simulate``).

The rows are first put in id order (``Pool.in_id_order``, as ``select`` does), then for each
repeat r (all randomness from the master seed and the row ids, never a row's position):

1. split: a held-out test set (``test_size`` of the rows, stratified by class): per class, the
   rows with the smallest ``id_hashes`` under a salt keyed by r; the rest is the pool;
2. initial set: the ``init`` pool rows with the smallest id hashes under another salt keyed by
   r (a uniform draw), shared by every strategy of repeat r;
3. for each strategy and round t = 0..R: refit the model (a fresh one) on the labelled rows,
   score it on the test set (accuracy, macro-F1), log the round; then (t < R) run the strategy
   through the same ``select`` API as the CLI on an in-memory pool (embedding, labels revealed
   so far, the model's ``proba`` and, when needed, ``proba_mc``), and reveal the picks' labels.

So the same rows in any order give the same curves: the split and initial set depend on (seed,
r, id) alone, and every fit and selection sees the rows in id order. Model and query seeds are
keyed by (repeat, strategy, round), so a strategy's curve does not depend on which other
strategies ran or in which order. Cost per round: one model fit (times ``mc_members`` for BALD,
except with ``rf``) plus the strategy's cost on the pool; once per run, one sort of the ids
(and a copy of the vectors in id order when they were not).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from selectkit.al.curves import summarise
from selectkit.al.models import MODEL_PARAMS, FittedModel, check_model, model_label, model_param
from selectkit.console import progress_bar, warn
from selectkit.errors import SelectkitDataError, SelectkitError, SelectkitUsageError, option
from selectkit.io import Provenance, check_output_path, output_group, write_table
from selectkit.io.formats import detect_format
from selectkit.io.provenance import fingerprint_ids
from selectkit.params import Param, check_arguments
from selectkit.pool import Columns, Pool, load_pool
from selectkit.rng import DEFAULT_SEED, derive_rng, derive_salt, id_hashes, smallest_keys
from selectkit.select import modifiers_for, select
from selectkit.strategies import get_strategy
from selectkit.strategies.scored import STOCHASTIC, SUBPOOLS

# every bound of the simulation's parameters, once: ``simulate`` checks them before any work
SIMULATE_BOUNDS = {
    "init": Param(int, 20, "initial labelled rows (random, shared)", low=0),
    "batch": Param(int, 10, "rows labelled per round", low=1),
    "rounds": Param(int, 10, "labelling rounds", low=0),
    "repeats": Param(int, 5, "repeats (new test split and initial set)", low=1),
    "mc_members": Param(int, 8, "bald: ensemble members", low=1),
    "seed": Param(int, DEFAULT_SEED, "master seed (recorded)", low=0),
    "test_size": Param(
        float,
        0.25,
        "held-out test fraction (stratified)",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    ),
    "batch_cost": Param(
        float,
        None,
        "with costs: cost spent per round (default: batch x the median cost)",
        low=0,
        low_open=True,
    ),
}


def _run_params(values: dict[str, Any]) -> dict[str, Any]:
    """The bounded parameters among a call's arguments (``locals()``)."""
    return {name: values[name] for name in SIMULATE_BOUNDS}


@dataclass
class Simulation:
    """Learning curves (one row per repeat, strategy and round) and their summary."""

    curves: pl.DataFrame
    summary: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StrategySpec:
    """One entry of ``strategies``: a strategy name with optional modifiers, written
    ``entropy+power`` (coldness β = 1), ``bald+power=2`` (β = 2) or ``margin+anchoral`` (AnchorAL subpool
    with its defaults); the full text labels its curve. With costs, ``entropy+cost`` ranks by
    utility / cost (``cost_exponent`` 1), ``entropy+cost=0.5`` by utility / cost^0.5; a name
    without ``+cost`` spends the same cost budget cost-blind (exponent 0)."""

    label: str
    name: str
    needs: tuple[str, ...]
    stochastic: str | None = None
    coldness: float | None = None
    subpool: str | None = None
    cost_exponent: float | None = None

    @classmethod
    def parse(cls, text: str) -> StrategySpec:
        name, *mods = [part.strip() for part in text.split("+")]
        spec = get_strategy(name)
        stochastic, coldness, subpool, exponent = None, None, None, None
        for mod in mods:
            key, _, value = mod.partition("=")
            if key == "cost":
                try:
                    exponent = float(value) if value else 1.0
                except ValueError:
                    raise SelectkitUsageError(
                        f"{text!r}: cost exponent {value!r} is not a number"
                    ) from None
                if not np.isfinite(exponent) or exponent < 0:
                    raise SelectkitUsageError(f"{text!r}: the cost exponent must be >= 0")
            elif key in STOCHASTIC:
                stochastic = key
                try:
                    coldness = float(value) if value else None
                except ValueError:
                    raise SelectkitUsageError(
                        f"{text!r}: coldness {value!r} is not a number"
                    ) from None
            elif key in SUBPOOLS and not value:
                subpool = key
            else:
                raise SelectkitUsageError(
                    f"{text!r}: unknown modifier {mod!r}; use one of "
                    f"{', '.join(STOCHASTIC + SUBPOOLS)} or cost (e.g. entropy+power=2, "
                    "margin+anchoral, entropy+cost=0.5)"
                )
        modifiers_for(spec, stochastic, coldness, subpool, None)  # usage error if not scored
        return cls(text, spec.name, spec.needs, stochastic, coldness, subpool, exponent)


def _seed(seed: int, *keys: str | int) -> int:
    return int(derive_rng(seed, "al", *keys).integers(0, 2**31 - 1))


def split(
    y: np.ndarray, ids: pl.Series, test_size: float, salt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (pool rows, test rows), both ascending: each class gives round(test_size * its
    count) rows to the test set, at least one when it has two or more rows: its rows with the
    smallest ``id_hashes(ids, salt)``, so a row's side depends on the salt and the ids of its
    class, not on positions. O(n C) for the class masks plus O(n) per class."""
    keys = id_hashes(ids, salt)
    test = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        k = round(test_size * rows.size)
        k = min(max(k, 1 if rows.size > 1 else 0), rows.size - 1)
        test.append(rows[smallest_keys(keys[rows], k)])
    test_rows = np.sort(np.concatenate(test))
    mask = np.ones(y.size, dtype=bool)
    mask[test_rows] = False
    return np.flatnonzero(mask), test_rows


def initial_set(ids: pl.Series, pool_rows: np.ndarray, init: int, salt: int) -> np.ndarray:
    """Positions in ``pool_rows`` (ascending) of the ``init`` pool rows with the smallest
    ``id_hashes(ids, salt)``: a uniform draw that depends on the salt and the ids alone."""
    keys = id_hashes(ids.gather(pool_rows), salt)
    return np.sort(smallest_keys(keys, init))


# the provenance lists a repeat's test or initial ids when there are at most this many
LISTED_IDS = 1000


def id_record(ids: pl.Series) -> dict[str, Any]:
    """How the provenance records a set of ids: their count, ``sha256`` (hex) of the ids sorted
    ascending, each written as text and followed by a newline, and, when there are at most
    ``LISTED_IDS`` of them, the ids themselves (ascending). O(k log k)."""
    record: dict[str, Any] = {"count": ids.len(), "sha256": fingerprint_ids(ids)}
    if ids.len() <= LISTED_IDS:
        record["ids"] = ids.sort().to_list()
    return record


def simulate(
    x: np.ndarray,
    y: Sequence | np.ndarray,
    *,
    strategies: Sequence[str],
    model: str | Any = "logreg",
    init: int = 20,
    batch: int = 10,
    rounds: int = 10,
    repeats: int = 5,
    seed: int = DEFAULT_SEED,
    test_size: float = 0.25,
    ids: Sequence | np.ndarray | None = None,
    strategy_params: dict[str, dict[str, Any]] | None = None,
    mc_members: int = 8,
    model_params: dict[str, Any] | None = None,
    costs: Sequence | np.ndarray | None = None,
    batch_cost: float | None = None,
) -> Simulation:
    """Run the simulation on vectors ``x`` (n, d) with labels ``y`` (any values, no nulls).

    ``strategies``: names, optionally with modifiers (``entropy+power``, ``bald+power=2``,
    ``margin+anchoral``; see ``StrategySpec``). ``ids``: one unique integer or string id per
    row (default: the row numbers); the splits, initial sets and picks derive from them and the
    seed, so the same (id, vector, label) rows in any order give the same result.
    ``model``: a name of ``selectkit.al.models.MODELS`` with its main parameter in
    ``model_params`` (``{"C": 10}``; see ``MODEL_PARAMS``), or any scikit-learn classifier with
    ``fit`` and ``predict_proba``, cloned for every fit.
    Returns the learning curves (repeat, strategy, round, n_labelled, accuracy, macro_f1,
    fit_s, select_s, selected ids) and their summary (``curves.summarise``: AULC mean/std, gain
    over random); ``info["splits"]`` records each repeat's test and initial ids (``id_record``).
    Memory: O(n d) for the data (twice when the rows are not in id order) plus the strategies'
    own; time: repeats x strategies x rounds x (one fit + one selection).

    ``costs`` (one finite cost > 0 per row; docs/cost.md): every round spends at most
    ``batch_cost`` (default: ``batch`` x the median cost) through ``select(budget_cost=)``,
    cost-blind (exponent 0) unless the strategy is written ``name+cost[=λ]``; the curves gain
    ``cost`` (spent that round; the initial set's at round 0) and ``cumulative_cost``, and the
    summary the AULC over cumulative cost (``curves.summarise``).
    """
    check_arguments(SIMULATE_BOUNDS, **_run_params(locals()))
    param = model_param(model, model_params)
    specs = [StrategySpec.parse(s) for s in strategies]
    if len({s.label for s in specs}) != len(specs):
        raise SelectkitUsageError("each strategy may be given once")
    x = np.ascontiguousarray(x, dtype=np.float32)
    labels = np.asarray(y)
    classes, y_enc = np.unique(labels, return_inverse=True)
    n = x.shape[0]
    if y_enc.size != n:
        raise SelectkitError(f"{n} vectors but {y_enc.size} labels")
    # the canonical order: rows sorted by id, as ``select`` runs strategies (ids checked unique)
    if ids is not None and len(ids) != n:
        raise SelectkitError(f"{n} vectors but {len(ids)} ids")
    ordered, perm = Pool.from_arrays(ids=np.arange(n) if ids is None else ids).in_id_order()
    if perm is not None:
        x, y_enc = np.ascontiguousarray(x[perm]), y_enc[perm]
    id_series = ordered.ids
    ids_arr = id_series.to_numpy()
    params = strategy_params or {}
    cost_arr = None
    if costs is not None:
        cost_arr = np.asarray(costs, dtype=np.float64)
        if cost_arr.shape != (n,):
            raise SelectkitError(f"{n} vectors but {cost_arr.size} costs")
        bad = ~(np.isfinite(cost_arr) & (cost_arr > 0))
        if bad.any():
            raise SelectkitError(
                f"{int(bad.sum())} costs are missing, zero, negative or infinite (first at id "
                f"{(np.arange(n) if ids is None else np.asarray(ids))[np.flatnonzero(bad)[0]]!r}"
                f"); every cost must be a finite number > 0"
            )
        if perm is not None:
            cost_arr = cost_arr[perm]
        if batch_cost is None:
            batch_cost = float(batch * np.median(cost_arr))
        cheapest = float(cost_arr.min())
        if rounds > 0 and batch_cost < cheapest:
            raise SelectkitDataError(
                f"the per-round cost budget {batch_cost:g} ({option('batch_cost')}) is below the "
                f"cheapest row's cost {cheapest:g}: no round could buy a row; raise it"
            )
    else:
        if batch_cost is not None:
            raise SelectkitUsageError(
                f"{option('batch_cost')} is a per-round cost budget: give the costs "
                f"({option('cost_col', cli='--cost-col', python='costs=')}) too"
            )
        aware = [s.label for s in specs if s.cost_exponent is not None]
        if aware:
            raise SelectkitUsageError(
                f"{aware[0]!r} ranks by cost, but no costs are given: add "
                f"{option('cost_col', cli='--cost-col', python='costs=')}"
            )
    rows: list[dict[str, Any]] = []
    splits: list[dict[str, Any]] = []
    total = repeats * len(specs) * (rounds + 1)
    # small fits and selections: BLAS threads only add overhead (17x slower lbfgs on 2 busy
    # cores, measured), see DESIGN.md §5
    with progress_bar("simulate", total) as bar, threadpool_limits(limits=1):
        for r in range(repeats):
            pool_rows, test_rows = split(
                y_enc, id_series, test_size, derive_salt(seed, "al", "split", r)
            )
            need = init + batch * rounds
            if need > pool_rows.size and cost_arr is None:
                raise SelectkitError(
                    f"{option('init', init)} + {option('batch', batch)} x "
                    f"{option('rounds', rounds)} = {need} labels, more than the "
                    f"{pool_rows.size} pool rows; lower them or {option('test_size')}"
                )
            start = initial_set(id_series, pool_rows, init, derive_salt(seed, "al", "init", r))
            splits.append(
                {
                    "repeat": r,
                    "test": id_record(id_series.gather(test_rows)),
                    "init": id_record(id_series.gather(pool_rows[start])),
                }
            )
            for spec in specs:
                rows += _run_strategy(
                    spec,
                    x,
                    y_enc,
                    ids_arr,
                    pool_rows,
                    test_rows,
                    start,
                    len(classes),
                    model,
                    batch,
                    rounds,
                    seed,
                    r,
                    params.get(spec.label, params.get(spec.name, {})),
                    mc_members,
                    bar,
                    param,
                    cost_arr,
                    batch_cost,
                )
    curves = pl.DataFrame(rows, schema_overrides={"selected": pl.List(id_series.dtype)})
    info = {
        **({"batch_cost": batch_cost} if cost_arr is not None else {}),
        "classes": [str(c) for c in classes],
        "rows": n,
        "test_rows": int(test_rows.size),
        "splits": splits,
    }
    return Simulation(curves=curves, summary=summarise(curves), info=info)


def _run_strategy(
    spec: StrategySpec,
    x: np.ndarray,
    y: np.ndarray,
    ids: np.ndarray,
    pool_rows: np.ndarray,
    test_rows: np.ndarray,
    start: np.ndarray,
    n_classes: int,
    model: str,
    batch: int,
    rounds: int,
    seed: int,
    repeat: int,
    params: dict[str, Any],
    mc_members: int,
    bar: Any,
    model_value: Any = None,
    costs: np.ndarray | None = None,
    batch_cost: float | None = None,
) -> list[dict[str, Any]]:
    name, needs = spec.label, spec.needs
    x_pool, y_pool, x_test, y_test = x[pool_rows], y[pool_rows], x[test_rows], y[test_rows]
    ids_pool = ids[pool_rows]
    labelled = np.zeros(pool_rows.size, dtype=bool)
    labelled[start] = True
    cost_pool = None if costs is None else costs[pool_rows]
    spent = 0.0 if cost_pool is None else float(cost_pool[start].sum())
    last_spent = spent
    out = []
    for t in range(rounds + 1):
        t0 = time.perf_counter()
        fitted = FittedModel(
            model,
            x_pool[labelled],
            y_pool[labelled],
            n_classes,
            _seed(seed, "fit", repeat, name, t),
            model_value,
        )
        pred = fitted.predict(x_test)
        fit_s = time.perf_counter() - t0
        row = {
            "repeat": repeat,
            "strategy": name,
            "round": t,
            "n_labelled": int(labelled.sum()),
            "accuracy": float(accuracy_score(y_test, pred)),
            "macro_f1": float(
                f1_score(
                    y_test, pred, average="macro", labels=np.arange(n_classes), zero_division=0
                )
            ),
            "fit_s": fit_s,
            "select_s": 0.0,
            "selected": [],
        }
        if cost_pool is not None:
            row["cost"] = last_spent
            row["cumulative_cost"] = spent
        affordable = cost_pool is None or bool(
            (cost_pool[~labelled] <= batch_cost).any()  # type: ignore[operator]
        )
        if t < rounds and affordable:
            t1 = time.perf_counter()
            extra: dict[str, np.ndarray] = {}
            if "proba" in needs:
                extra["proba"] = fitted.proba(x_pool)
            if "proba_mc" in needs:
                extra["proba_mc"] = fitted.proba_mc(x_pool, mc_members)
            label_col = pl.Series("label", y_pool, dtype=pl.Int64).scatter(
                np.flatnonzero(~labelled), None
            )
            if cost_pool is not None:
                extra["cost"] = cost_pool
            pool = Pool.from_arrays(x_pool, ids=ids_pool, labels=label_col, **extra)
            cost_args: dict[str, Any] = {}
            if cost_pool is not None:  # every arm spends the same cost; +cost ranks by it
                cost_args = {  # at most what the rows left cost: the last rounds buy them all
                    "cost_col": "cost",
                    "budget_cost": min(batch_cost, float(cost_pool[~labelled].sum())),
                    "cost_exponent": spec.cost_exponent or 0.0,
                }
            _, sel = select(
                pool,
                spec.name,
                None if cost_pool is not None else batch,
                seed=_seed(seed, "query", repeat, name, t),
                params=params,
                labelled_col="label",  # the rows labelled so far, whatever the strategy's labels
                stochastic=spec.stochastic,
                coldness=spec.coldness,
                subpool=spec.subpool,
                **cost_args,
            )
            labelled[sel.indices] = True
            if cost_pool is not None:
                last_spent = float(cost_pool[sel.indices].sum())
                spent += last_spent
            row["select_s"] = time.perf_counter() - t1
            row["selected"] = ids_pool[sel.indices].tolist()
        else:  # nothing bought this round: the next point cost nothing
            last_spent = 0.0
        out.append(row)
        bar.advance()
    return out


def simulate_file(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    strategies: Sequence[str],
    model: str | Any = "logreg",
    init: int = 20,
    batch: int = 10,
    rounds: int = 10,
    repeats: int = 5,
    seed: int = DEFAULT_SEED,
    test_size: float = 0.25,
    strategy_params: dict[str, dict[str, Any]] | None = None,
    mc_members: int = 8,
    columns: Columns | None = None,
    input_format: str | None = None,
    plot: str | Path | None = None,
    summary_out: str | Path | None = None,
    model_params: dict[str, Any] | None = None,
    cost_col: str | None = None,
    batch_cost: float | None = None,
) -> tuple[Provenance, pl.DataFrame]:
    """Read labelled tables (an embedding and a label per row; several tables are joined on the
    id column, as every command joins them, e.g. embeddings + a labels table), simulate, write
    the curves (Parquet, or JSONL by extension) with provenance, and optionally a summary table
    and a PNG plot. Returns (provenance, summary). Usage problems (unknown model, model
    parameter or strategy, missing matplotlib for ``plot``) are refused before any work. The
    provenance records each repeat's test and initial ids (``metrics.splits``, ``id_record``).
    ``cost_col``: a column of per-row costs (> 0, on every row; from any input), spent at most
    ``batch_cost`` per round (``simulate(costs=)``; docs/cost.md)."""
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    # before reading anything (``simulate`` checks the same declaration for API callers)
    check_arguments(SIMULATE_BOUNDS, **_run_params(locals()))
    check_model(model)
    param = model_param(model, model_params)
    for name in strategies:
        StrategySpec.parse(name)
    check_outputs(output, summary_out, plot, paths, curves_hold_lists=True)
    prov = Provenance(command="al simulate", seed=seed)
    prov.start("read")
    pool, label_series = labelled_pool(paths, columns, input_format, "al simulate", "a simulation")
    x = pool.embeddings
    costs = None
    if cost_col is not None:
        from selectkit.cost import CostSpec, read_costs

        rows_all = np.arange(len(pool))
        costs = read_costs(
            pool.frame, CostSpec(column=cost_col), rows_all, pool.where, pool.columns.id
        )
    elif batch_cost is not None:
        raise SelectkitUsageError(
            f"{option('batch_cost')} is a per-round cost budget: add {option('cost_col')}"
        )
    prov.stop("read")
    prov.start("simulate")
    sim = simulate(
        x,
        label_series.to_numpy(),
        strategies=strategies,
        model=model,
        init=init,
        batch=batch,
        rounds=rounds,
        repeats=repeats,
        seed=seed,
        test_size=test_size,
        ids=pool.ids,
        strategy_params=strategy_params,
        mc_members=mc_members,
        model_params=model_params,
        costs=costs,
        batch_cost=batch_cost,
    )
    prov.stop("simulate")
    label = model_label(model)
    prov.params = {
        "strategies": list(strategies),
        "model": label,
        "model_params": {} if param is None else {MODEL_PARAMS[model].name: param},
        "init": init,
        "batch": batch,
        "rounds": rounds,
        "repeats": repeats,
        "test_size": test_size,
        "mc_members": mc_members,
        "strategy_params": strategy_params or {},
        "aulc": "normalised trapezoid area of accuracy over the labelled-set size",
    }
    if cost_col is not None:
        prov.params["cost"] = {
            "column": cost_col,
            "units": cost_col,
            "batch_cost": sim.info.get("batch_cost"),
            "aulc_cost": "normalised trapezoid area of accuracy over the cumulative cost, each "
            "curve held at its last accuracy up to the repeat's largest cumulative cost",
        }
    prov.inputs = [s.as_dict() for s in pool.sources]
    prov.metrics = {
        **sim.info,
        "summary": {
            r["strategy"]: {k: v for k, v in r.items() if k != "strategy"}
            for r in sim.summary.to_dicts()
        },
    }
    with output_group():  # curves, summary and plot commit together, or none
        write_table(sim.curves, output, provenance=prov)
        if summary_out:
            write_table(sim.summary, summary_out, provenance=prov)
        if plot:
            from selectkit.al.plot import plot_curves

            plot_curves(sim.curves, plot, title=f"{Path(str(paths[0])).name}: {label}")
    if sim.curves["n_labelled"].max() == sim.curves["n_labelled"].min():
        why = "--rounds 0" if rounds == 0 else "no round bought a row"
        warn(f"every curve has a single point ({why}): the AULC is the accuracy")
    return prov, sim.summary


def check_outputs(
    output: str | Path,
    summary_out: str | Path | None,
    plot: str | Path | None,
    inputs: Sequence[str | Path],
    *,
    curves_hold_lists: bool,
) -> None:
    """Refuse, before any work, outputs that would fail or clash: each is checked against the
    inputs, the curves, summary and plot must be different files with known formats (CSV
    refused for curves with a list column), the plot a .png with matplotlib installed."""
    outputs = [output, *(p for p in (plot, summary_out) if p)]
    for path in outputs:
        check_output_path(path, inputs)
    if len({str(Path(p).resolve()) for p in outputs}) != len(outputs):
        raise SelectkitUsageError("the curves, summary and plot outputs must be different files")
    if detect_format(output, output=True) == "csv" and curves_hold_lists:
        raise SelectkitUsageError(
            f"'{output}': the curves hold a list column (the selected ids); write them to "
            ".parquet or .jsonl"
        )
    if summary_out:
        detect_format(summary_out, output=True)
    if plot and Path(plot).suffix.lower() != ".png":
        raise SelectkitUsageError(f"{option('plot', str(plot))} must name a .png file")
    if plot:
        from selectkit.al.plot import require_matplotlib

        require_matplotlib()


def labelled_pool(
    paths: Sequence[str | Path], columns: Columns | None, input_format: str | None,
    command: str, what: str,
) -> tuple[Pool, pl.Series]:  # fmt: skip
    """The joined input tables as a pool with embeddings and a label on every row, and that
    label column; a null label is a data error naming the column and the first row."""
    pool = load_pool(paths, columns=columns, input_format=input_format, use_labels=False)
    pool.require(["embedding", "label"], command)
    labels = pool.frame.get_column(pool.columns.label)
    if labels.null_count():
        first = int(labels.is_null().arg_max())
        raise SelectkitError(
            f"{pool.where}: column '{pool.columns.label}' is null in {labels.null_count()} "
            f"rows (first at row {first}); {what} needs every row's label"
        )
    return pool, labels
