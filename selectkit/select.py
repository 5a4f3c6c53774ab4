"""Run a strategy on a pool and turn its picks into a manifest (the output of ``select``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit.arguments import instance, integer, paths, text
from selectkit.arguments import path as path_argument
from selectkit.budget import parse_budget
from selectkit.cost import (
    CostBudget,
    CostSpec,
    adjusted_scores,
    affordable_count,
    cost_spec,
    fill_in_order,
    fill_in_order_ranged,
    knapsack_fill,
    no_row_fits,
    normalised_utility,
    read_costs,
    with_costs,
)
from selectkit.engine import engine_record
from selectkit.errors import (
    SelectkitDataError,
    SelectkitInternalError,
    SelectkitUsageError,
    option,
)
from selectkit.io import Provenance, check_output_path, output_group, write_table
from selectkit.metrics import selection_metrics
from selectkit.pool import Columns, Pool
from selectkit.ranges import GroupRanges, constrained_selection, parse_ranges, resolve_bounds
from selectkit.rng import DEFAULT_SEED, derive_rng
from selectkit.strategies import Selection, get_strategy, list_strategies
from selectkit.strategies.base import LABELS_AS_DATA, Strategy, check_selection
from selectkit.strategies.inputs import FileInputs, ShardedPick, ShardRequest, StreamingAdapter
from selectkit.strategies.scored import Acquisition, acquire

PERCENT_BUDGET = "budget='5%'"  # how Python writes the CLI's --budget 5%
MANIFEST_COLUMNS = ("id", "rank", "score", "weight", "cluster")


def select(
    pool: Pool,
    strategy: str,
    budget: int | float | str | None = None,
    *,
    seed: int = DEFAULT_SEED,
    params: dict[str, Any] | None = None,
    threads: int | None = None,
    metrics: bool = True,
    labelled_col: str | None = None,
    stochastic: str | None = None,
    coldness: float | None = None,
    subpool: str | None = None,
    subpool_options: dict[str, int] | None = None,
    group_min: dict[str, int] | str | None = None,
    group_max: dict[str, int] | str | None = None,
    group_ranges: str | Path | pl.DataFrame | GroupRanges | None = None,
    exclude: object = None,
    cost_col: str | None = None,
    budget_cost: float | str | None = None,
    cost_exponent: float = 1.0,
    cost_mode: str = "ratio",
    cost_lambda: float = 1.0,
    min_cost: float | None = None,
) -> tuple[pl.DataFrame, Selection]:
    """Select ``budget`` rows of ``pool`` with ``strategy``; return (manifest, raw selection).

    ``budget`` is a count, a fraction or a percentage string of the selectable rows (those not
    already labelled); self-sized strategies (semdedup) take none. The strategy's needed
    columns are checked before any work. The manifest has ``id``, ``rank`` (0 = picked first),
    ``score`` (null where the strategy has none), ``weight`` (1.0 where unweighted) and
    ``cluster`` when the pool has one.
    With ``metrics`` and embeddings, ``selection.metrics`` also gets the coverage of the pool by
    the selection (``coverage_mean_distance``: mean distance from a pool row to its nearest pick)
    and, for weighted picks, ``weighted_cost_ratio``. Cost: the strategy's (``selectkit
    strategies`` lists it) plus at most ~2e9 distance terms for the coverage.

    Already labelled rows (never picked): where ``labelled_col`` is non-null when it is given;
    otherwise, for strategies whose labels are the labelled set (``labels="labelled-set"``:
    kcenter, margin, ...), where the label is non-null; strategies whose labels are data (ccs,
    sensitivity, topk, stratified, disco, ...) may pick every row. Null = unlabelled; -1 and ""
    are labels.

    Modifiers of scored strategies (margin, entropy, ...; a usage error for the others):
    ``stochastic`` = softmax | power | softrank samples the batch with ``coldness`` β (default
    1; only with ``stochastic``) instead of taking the top-k; ``subpool='anchoral'`` scores only
    the AnchorAL subpool, tuned by ``subpool_options`` (anchors, neighbours, subpool_size).

    Group ranges (any strategy with a budget): ``group_min`` / ``group_max`` (``{'wiki': 100}``
    or ``'wiki=100,code=50'``) and/or ``group_ranges`` (a csv/parquet file or DataFrame with
    columns group, min, max) bound the picks per value of the group column; infeasible bounds
    fail before any work, naming the group; the strategy's picks are then walked in pick order
    under the bounds (``selectkit.ranges``; docs/strategies.md, "Group ranges").
    ``selection.metrics`` gets ``group_ranges`` ([min, max] enforced per group) and
    ``group_counts``.

    Order: the strategy runs on the rows sorted by id (``Pool.in_id_order``), so the same rows in
    any order give the same manifest (unless the strategy reads row order, e.g. semdedup
    ``--order input``); ``selection.indices`` index ``pool`` as given.

    ``exclude``: ids (a list, array or polars Series) of rows to leave out before the strategy
    runs, e.g. an earlier round's manifest ids (``select_files(exclude=[paths])``): they are
    removed from the pool, so they are neither picked nor seen (budget fractions count the rest).
    ``selection.metrics["excluded_rows"]`` says how many pool rows went. Cost: O(n) hash join.

    Cost (docs/cost.md): ``cost_col`` names a column of per-row costs (finite, > 0 on every
    selectable row; ``min_cost`` floors them) and ``budget_cost`` (or ``budget='cost:X'``,
    exclusive with a count budget) the cost to spend: scored strategies rank by the normalised
    utility per cost (``cost_mode='ratio'``: u / c**``cost_exponent``; ``'penalty'``: u -
    ``cost_lambda`` * c / median(c)) and fill the budget as a greedy knapsack with the best-single
    fix; strategies that spend cost themselves (kcenter, badge, typiclust) do; every other
    strategy's picks are taken in its pick order while they fit. The manifest gains ``cost`` and
    ``cumulative_cost`` (with a count budget too); the spent cost never exceeds the budget
    (``selection.metrics``: ``cost_budget``, ``cost_spent``). Cost: the strategy's, run for at
    most as many rows as the cheapest rows that fit (scored: every candidate), plus O(n log n).
    """
    _check_call_arguments(strategy, seed, params, labelled_col)
    instance(pool, Pool, "pool", "sk.load_pool('emb.parquet')", optional=False)
    spec = get_strategy(strategy)
    resolved = spec.resolve_params(params or {})
    mods = modifiers_for(spec, stochastic, coldness, subpool, subpool_options)
    cost, budget = cost_spec(
        cost_col,
        budget_cost,
        budget,
        cost_exponent=cost_exponent,
        cost_mode=cost_mode,
        cost_lambda=cost_lambda,
        min_cost=min_cost,
    )
    spending = cost is not None and cost.budget is not None
    if not spending:
        check_budget_given(spec, budget)
    ranges = parse_ranges(group_min, group_max, group_ranges)
    check_ranges_allowed(spec, ranges)
    pool = prepare_pool(pool, spec, resolved, labelled_col)
    kept, excluded = None, 0
    if exclude is not None:
        before = len(pool)
        pool, kept = without_ids(pool, exclude)
        excluded = before - len(pool)
    if mods.subpool:
        pool.require(["embedding"], option("subpool", mods.subpool))
    if pool.has("cluster"):
        pool.cluster_labels  # noqa: B018  (validates the column before any work)
    count = None if budget is None else parse_budget(budget, len(pool.candidates))
    # the same rows in any order or sharding give the same selection: run on the id order
    perm = None
    if not spec.keeps_input_order(resolved):
        pool, perm = pool.in_id_order()
    costs = None
    if cost is not None:
        costs = read_costs(pool.frame, cost, pool.candidates, pool.where, pool.columns.id)
    if spending:  # bounds for the cost walk: only the groups, mins and maxes are used
        bounds = None if ranges is None else resolve_bounds(pool, ranges, ranges_floor(ranges))
    else:
        bounds = None if ranges is None else resolve_bounds(pool, ranges, count)  # type: ignore[arg-type]

    def run(part: Pool, size: int | None, round_: int = 0) -> Selection:
        # round 0 draws exactly what an unconstrained run draws; later range rounds their own
        keys = ("select", spec.name) + (("ranges", round_) if round_ else ())
        # bounds index the whole pool: only round 0 runs on it (a later round, which a strategy
        # that meets ranges never needs, gets the walk's constraint alone)
        extra = {"bounds": bounds} if spec.meets_ranges and not round_ else {}
        if mods.active:
            sel = acquire(part, size, derive_rng(seed, *keys), spec.scorer, resolved, mods)
            sel.metrics.update(mods.describe())
        else:
            sel = spec(part, size, derive_rng(seed, *keys), **resolved, **extra)
        check_selection(sel, part, size, spec.name)
        return sel

    # threadpoolctl scans the loaded libraries on entry (~20 ms): only when a limit is asked for
    limit = nullcontext() if threads is None else threadpool_limits(limits=threads)
    with limit:
        if spending:
            selection = spend_cost(
                pool,
                spec,
                cost,
                costs,
                run,
                bounds,
                derive_rng(seed, "select", spec.name),
                resolved,
                mods,
            )
        elif bounds is None:
            selection = run(pool, count)
        else:
            selection = constrained_selection(pool, bounds, run)
        if metrics and pool.has("embedding"):
            selection.metrics.update(
                selection_metrics(
                    pool.embeddings,
                    pool.candidates,
                    selection.indices,
                    selection.weights,
                    pool.cluster_labels if pool.has("cluster") else None,
                    derive_rng(seed, "select", "metrics"),
                )
            )
    manifest = build_manifest(pool, selection)
    if costs is not None:
        manifest = with_costs(manifest, costs[selection.indices])
    if perm is not None:  # the returned selection indexes the pool as the caller gave it
        selection.indices = perm[selection.indices]
    if kept is not None:
        selection.indices = kept[selection.indices]
        selection.metrics["excluded_rows"] = excluded
        # what the budget was counted against: the rows --exclude left
        selection.metrics["selectable_rows"] = int(pool.candidates.size)
    return manifest, selection


def ranges_floor(ranges: GroupRanges) -> int:
    """A row count every feasible set of ranges admits (the mins' sum, at least 1): what the
    bounds of a cost budget are resolved against (the cost walk uses their mins and maxes)."""
    return max(1, sum(int(v) for v in ranges.mins.values()))


def spend_cost(
    pool: Pool,
    spec: Strategy,
    cost: CostSpec,
    costs: np.ndarray,
    run: Any,
    bounds: Any,
    rng: np.random.Generator,
    resolved: dict[str, Any],
    mods: Acquisition,
) -> Selection:
    """The picks of ``spec`` under a cost budget (``selectkit.cost``), in pick order.

    A scored strategy: every candidate is scored once, its score rank-normalised and adjusted by
    cost, the candidates ranked (or sampled, under ``stochastic``) by the adjusted score and the
    budget filled greedily with the best-single fix (not under ``stochastic``: the sample's order
    is kept). A strategy that ``spends_cost``: it spends the budget itself. Any other: ``run``
    asks it for as many rows as the cheapest rows that fit, taken in its order while they fit.
    Under group ranges the walk takes rows of groups below their min first (then the rest, each
    group up to its max); a strategy that is not scored has, after its own picks, the other rows
    of each group with a min appended, cheapest first (``_topped_up``); a min the budget still
    cannot meet is a data error. Records ``cost_budget``,
    ``cost_spent`` and ``cost_rows_max`` in the metrics. Cost: the strategy's plus O(n log n)."""
    from selectkit.strategies.scored import _checked

    cand = pool.candidates
    budget = float(cost.budget)  # type: ignore[arg-type]
    most = affordable_count(costs[cand], budget)
    if most == 0:
        raise no_row_fits(costs[cand], budget, cost)
    total = float(costs[cand].sum())
    if budget > total:
        raise SelectkitDataError(
            f"the cost budget {budget:g} ({cost.budget_flag}) is more than the {total:g} "
            f"that all {cand.size} selectable rows cost: every row would be picked; lower it to "
            f"at most {total:g}"
        )
    if cost.mode == "penalty" and spec.scorer is None:
        raise SelectkitUsageError(
            f"{option('cost_mode', 'penalty')} ranks a strategy's scores; '{spec.name}' has none "
            f"(it weighs costs by {option('cost_exponent')}): drop {option('cost_mode')}"
        )
    utility = None
    if spec.scorer is not None:
        raw = _checked(spec.scorer(pool, cand, **resolved), cand.size)
        u = normalised_utility(raw)
        adjusted = np.zeros(len(pool))
        adjusted[cand] = adjusted_scores(u, costs[cand], cost)
        utility = np.zeros(len(pool))
        utility[cand] = u
        sel = acquire(pool, cand.size, rng, lambda _p, rows, **_: adjusted[rows], {}, mods)
        sel.metrics.update(mods.describe())
    elif spec.spends_cost:
        spend = CostBudget(costs=costs, budget=budget, exponent=cost.exponent)
        sel = spec(pool, most, rng, spend=spend, **resolved)
        check_selection(sel, pool, None, spec.name)
    else:
        sel = run(pool, None if spec.self_sized else most)
    order = sel.indices
    if bounds is not None and utility is None:
        sel = _topped_up(pool, sel, bounds, costs)
        order = sel.indices
    if bounds is not None:
        kept = fill_in_order_ranged(costs[order], budget, bounds.codes[order], bounds.lo, bounds.hi)
        counts = bounds.counts(order[kept])
        short = np.flatnonzero(counts < bounds.lo)
        if short.size:
            g = int(short[0])
            raise SelectkitDataError(
                f"group {bounds.names[g]!r} gets {int(counts[g])} picks within the cost budget "
                f"{budget:g}, below its min {int(bounds.lo[g])}; raise "
                f"{cost.budget_flag} or lower the min ({option('group_min')})"
            )
        sel.metrics["group_counts"] = bounds.report(order[kept])
        sel.metrics["group_ranges"] = {
            n: [int(a), int(b)] for n, a, b in zip(bounds.names, bounds.lo, bounds.hi, strict=True)
        }
    elif utility is not None and mods.stochastic is None:
        kept = knapsack_fill(utility[order], costs[order], budget)
    else:
        kept = fill_in_order(costs[order], budget)
    spent = float(np.sum(costs[order[kept]]))
    if spent > budget:  # a strategy that spends cost itself overspent: a bug, never the user's
        raise SelectkitInternalError(f"strategy {spec.name!r} spent {spent:g} > {budget:g}")
    out = Selection(
        indices=order[kept],
        scores=None if sel.scores is None else sel.scores[kept],
        weights=None if sel.weights is None else sel.weights[kept],
        metrics=dict(sel.metrics),
        tables=sel.tables,
        params=sel.params,
    )
    out.metrics.update(cost_budget=budget, cost_spent=spent, cost_rows_max=most)
    return out


def _topped_up(pool: Pool, sel: Selection, bounds: Any, costs: np.ndarray) -> Selection:
    """``sel`` with, after its picks, the other candidates of every group with a min, cheapest
    first (ties by id): the cost walk under group ranges can then meet a min the strategy's
    own picks miss. The rows added have no score and weight 1. O(n log n)."""
    from selectkit.strategies.scored import id_ranks

    rest = np.ones(len(pool), dtype=bool)
    rest[sel.indices] = False
    cand = pool.candidates
    extra = cand[rest[cand] & (bounds.lo[bounds.codes[cand]] > 0)]
    if extra.size == 0:
        return sel
    extra = extra[np.lexsort((id_ranks(pool, extra), costs[extra]))]
    pad = np.full(extra.size, np.nan)
    return Selection(
        indices=np.concatenate([sel.indices, extra]),
        scores=None if sel.scores is None else np.concatenate([sel.scores, pad]),
        weights=None if sel.weights is None else np.concatenate([sel.weights, np.ones(extra.size)]),
        metrics=sel.metrics,
        tables=sel.tables,
        params=sel.params,
    )


def check_ranges_allowed(spec: Strategy, ranges: GroupRanges | None) -> None:
    """A usage error for group ranges on a strategy without a budget (semdedup, dsir), which
    decides itself what it keeps. O(1)."""
    if ranges is not None and (spec.self_sized or isinstance(spec.inputs, StreamingAdapter)):
        raise SelectkitUsageError(
            f"strategy '{spec.name}' decides itself which rows it keeps and takes no group "
            f"ranges; drop {option('group_min')}/{option('group_max')}/{option('group_ranges')}"
        )


def without_ids(pool: Pool, ids: object) -> tuple[Pool, np.ndarray]:
    """``pool`` without the rows whose id is in ``ids`` (``select(exclude=...)``) and the
    positions of the rows kept (``kept[i]`` is the given pool's row of the new pool's row i).
    Ids of another kind than the pool's (text vs integers) are a data error; ids not in the
    pool are ignored. Nothing left is a data error. O(n) time and one copy of the kept rows."""
    from dataclasses import replace

    from selectkit.pool import _GatheredRows

    drop = ids if isinstance(ids, pl.Series) else pl.Series("exclude", list(ids))
    pool_ids = pool.ids
    if drop.len() and (
        drop.dtype.is_integer() != pool_ids.dtype.is_integer()
        or (drop.dtype == pl.String) != (pool_ids.dtype == pl.String)
    ):
        raise SelectkitDataError(
            f"the excluded ids are {drop.dtype} but the ids of {pool.where} are "
            f"{pool_ids.dtype}; exclude a manifest made from the same rows"
        )
    if drop.dtype.is_integer():
        drop, pool_ids = drop.cast(pl.Int64), pool_ids.cast(pl.Int64)
    mask = pool_ids.is_in(drop.implode()).to_numpy()
    kept = np.flatnonzero(~mask).astype(np.int64)
    if kept.size == 0:
        raise SelectkitDataError(
            f"every one of the {len(pool)} rows of {pool.where} is excluded ("
            f"{option('exclude')}); nothing is left to select"
        )
    if kept.size == len(pool):
        return pool, kept
    gathered = replace(
        pool,
        frame=pool.frame[kept],
        arrays=_GatheredRows(pool.arrays, kept),  # type: ignore[arg-type]
    )
    return gathered, kept


def excluded_ids(paths: Sequence[str | Path], id_col: str) -> tuple[pl.Series | None, list[dict]]:
    """The ids of the earlier manifests at ``paths`` (``select --exclude``), concatenated, and
    each file's source record (path, rows, fingerprint, ``"role": "exclude"``). A file without
    the id column is a data error naming it. One streaming read of each id column."""
    from selectkit.io.tables import iter_batches

    parts: list[pl.Series] = []
    records: list[dict] = []
    for path in paths:
        source, batches = iter_batches(str(path), columns=[id_col], id_col=id_col)
        for batch in batches:
            if id_col not in batch.columns:
                _, whole = iter_batches(str(path), id_col=id_col)
                names = next(iter(whole), pl.DataFrame()).columns
                raise SelectkitDataError(
                    f"'{path}' (given to {option('exclude')}) has no id column '{id_col}' "
                    f"(columns: {', '.join(names) or 'none'}); exclude a manifest "
                    f"written by `selectkit select`, or name its id column with "
                    f"{option('id_col')}"
                )
            parts.append(batch.get_column(id_col))
        records.append({**source.as_dict(), "role": "exclude"})
    if not parts:
        return None, records
    kinds = {s.dtype.is_integer() for s in parts}
    if len(kinds) > 1:
        raise SelectkitDataError(
            f"the files given to {option('exclude')} mix integer and text ids; exclude "
            "manifests of the same pool"
        )
    return pl.concat([s.cast(pl.Int64) if s.dtype.is_integer() else s for s in parts]), records


def check_budget_given(spec: Strategy, budget: object) -> None:
    """A usage error when a self-sized strategy gets a budget or another strategy none. O(1)."""
    if spec.self_sized and budget is not None:
        raise SelectkitUsageError(
            f"strategy '{spec.name}' decides how many rows it keeps and takes no budget; "
            f"drop {option('budget', cli='--budget', python='budget=')}"
        )
    if not spec.self_sized and budget is None:
        raise SelectkitUsageError(
            f"strategy '{spec.name}' needs a budget: give {option('budget', 1000)}, "
            f"{option('budget', 0.05)} or {option('budget', '5%', python=PERCENT_BUDGET)}"
        )


def prepare_pool(
    pool: Pool, spec: Strategy, params: dict[str, Any], labelled_col: str | None = None
) -> Pool:
    """The pool ``spec`` runs on: its labelled set marked (``labelled_col``, else the label column
    unless the strategy's labels are data), then shaped by the strategy's input adapter (needed
    columns checked, DISCO's long table pivoted). Idempotent; cost: the adapter's."""
    as_data = spec.labels == LABELS_AS_DATA
    pool = pool.marking_labelled(labelled_col, labels_as_data=as_data)  # a pivot carries it
    pool = spec.inputs.prepare(pool, spec.needs, f"strategy '{spec.name}'", params)
    # and again: an adapter that builds a new Pool must not lose the labelled set
    return pool.marking_labelled(labelled_col, labels_as_data=as_data)


def _check_call_arguments(
    strategy: object, seed: object, params: object, labelled_col: object
) -> None:
    """The arguments ``select`` and ``select_files`` share, typed (a usage error naming the
    argument otherwise, never a bare TypeError). O(1)."""
    text(strategy, "strategy")
    integer(seed, "seed", min=0)
    instance(params, dict, "params", "params={'beta': 0.2}")
    if labelled_col is not None:
        text(labelled_col, "labelled_col")


def modifiers_for(
    spec: Strategy,
    stochastic: str | None,
    coldness: float | None,
    subpool: str | None,
    subpool_options: dict[str, int] | None,
) -> Acquisition:
    """The validated modifiers; a usage error (exit 2) when given to a strategy without scores,
    or a ``coldness`` without ``stochastic`` (it tunes nothing else)."""
    if coldness is not None and stochastic is None:
        raise SelectkitUsageError(
            f"the coldness ({option('coldness')}) tunes stochastic sampling only: add "
            f"{option('stochastic', 'softmax|power|softrank', python='stochastic=')}, or drop it"
        )
    options = dict(subpool_options or {})
    unknown = sorted(set(options) - {"anchors", "neighbours", "subpool_size"})
    if unknown:
        raise SelectkitUsageError(
            f"unknown subpool option {unknown[0]!r}; use anchors, neighbours or subpool_size"
        )
    mods = Acquisition(
        stochastic=stochastic,
        coldness=1.0 if coldness is None else coldness,
        subpool=subpool,
        **options,
    )
    if mods.active and spec.scorer is None:
        scored = ", ".join(s.name for s in list_strategies() if s.scorer is not None)
        flag = option("stochastic") if stochastic else option("subpool")
        raise SelectkitUsageError(
            f"{flag} works only with a scored strategy ({scored}), not '{spec.name}'"
        )
    return mods


def build_manifest(pool: Pool, selection: Selection) -> pl.DataFrame:
    """The manifest table for ``selection``: one row per pick, in pick order."""
    idx = selection.indices
    n = idx.size
    scores = selection.scores if selection.scores is not None else np.full(n, np.nan)
    weights = selection.weights if selection.weights is not None else np.ones(n)
    frame = pl.DataFrame(
        {
            "id": pool.ids.gather(idx),
            "rank": np.arange(n, dtype=np.int64),
            "score": pl.Series(scores, dtype=pl.Float64).fill_nan(None),
            "weight": pl.Series(weights, dtype=pl.Float64),
        }
    )
    if pool.columns.cluster in pool.frame.columns:
        clusters = pool.frame.get_column(pool.columns.cluster).gather(idx).cast(pl.Int32)
        frame = frame.with_columns(clusters.alias("cluster"))
    return frame


def select_files(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    strategy: str,
    budget: int | float | str | None = None,
    seed: int = DEFAULT_SEED,
    params: dict[str, Any] | None = None,
    columns: Columns | None = None,
    input_format: str | None = None,
    use_labels: bool = True,
    threads: int | None = None,
    emit: dict[str, str | Path] | None = None,
    metrics: bool = True,
    labelled_col: str | None = None,
    stochastic: str | None = None,
    coldness: float | None = None,
    subpool: str | None = None,
    subpool_options: dict[str, int] | None = None,
    engine: str | Any = "local",
    ray_address: str | None = None,
    group_min: dict[str, int] | str | None = None,
    group_max: dict[str, int] | str | None = None,
    group_ranges: str | Path | pl.DataFrame | GroupRanges | None = None,
    exclude: Sequence[str | Path] | None = None,
    cost_col: str | None = None,
    budget_cost: float | str | None = None,
    cost_exponent: float = 1.0,
    cost_mode: str = "ratio",
    cost_lambda: float = 1.0,
    min_cost: float | None = None,
) -> Provenance:
    """Read ``inputs``, select, and write the manifest with provenance to ``output``.

    ``exclude``: earlier manifests (any table with the id column) whose rows are removed from
    the pool before the strategy runs (``select(exclude=ids)``); each is recorded among the
    provenance's inputs with ``"role": "exclude"`` and its fingerprint, and the metric
    ``excluded_rows`` counts the pool rows removed. Not for streaming strategies (dsir).

    The strategy's input adapter reads the files (one row per id joined on the id column; DISCO:
    long tables; DSIR: a stream). ``labelled_col``, the modifiers and the other options are
    ``select``'s. ``emit`` maps a side table the strategy offers (e.g. ``dropped`` for semdedup) to a path; each
    is written atomically before the manifest. Returns the provenance written (parameters, seed,
    inputs, timings, metrics, engine).

    ``engine`` (``"local"``, the default, or ``"ray"``, or a ``selectkit.engine`` Engine) runs
    the strategy's per-shard work, where the strategy declares some (``Strategy.shards``: the
    row-local scored strategies score each shard and merge a top-k); every other strategy reads
    the pool on the driver, on either engine (docs/strategies.md, "What runs where").
    ``ray_address`` (else ``$RAY_ADDRESS``, else a local Ray instance) is Ray's. The manifest
    and its provenance, apart from timings and the engine record, are the same on every engine.
    Group ranges (``group_min``, ``group_max``, ``group_ranges``: see ``select``) are parsed
    before any file is read and recorded in the provenance (``params.group_ranges``; metrics
    ``group_ranges``, ``group_counts``); with them the pool is read on the driver.
    Cost (``cost_col``, ``budget_cost`` or ``budget='cost:X'``, ``cost_exponent``, ``cost_mode``,
    ``cost_lambda``, ``min_cost``: see ``select``; docs/cost.md): the cost column may come from
    any input (joined on the id); the pool is read on the driver; the provenance records
    ``params.cost`` (column = units, budget, mode) and the metrics ``cost_spent``.
    """
    _check_call_arguments(strategy, seed, params, labelled_col)
    inputs = paths(inputs, "inputs")
    exclude = paths(exclude, "exclude") if exclude is not None else []
    path_argument(output, "output")
    check_output_path(output, [*inputs, *exclude])
    spec = get_strategy(strategy)
    resolved = spec.resolve_params(params or {})
    mods = modifiers_for(spec, stochastic, coldness, subpool, subpool_options)
    ranges = parse_ranges(group_min, group_max, group_ranges)
    check_ranges_allowed(spec, ranges)
    cost_options = {
        "cost_col": cost_col,
        "budget_cost": budget_cost,
        "cost_exponent": cost_exponent,
        "cost_mode": cost_mode,
        "cost_lambda": cost_lambda,
        "min_cost": min_cost,
    }
    cost, count_budget = cost_spec(budget=budget, **cost_options)
    if cost is not None and isinstance(spec.inputs, StreamingAdapter):
        raise SelectkitUsageError(
            f"strategy '{spec.name}' streams its input files and takes no cost column; drop "
            f"{option('cost_col')}/{option('budget_cost')}"
        )
    emit = {k: v for k, v in (emit or {}).items() if v is not None}
    for name, path in emit.items():
        if name not in spec.emits:
            offers = ", ".join(
                option(f"emit_{e}", python=f"emit={{{e!r}: ...}}") for e in spec.emits
            )
            offers = f"it offers {offers}" if offers else "it writes none"
            raise SelectkitUsageError(
                f"strategy '{spec.name}' has no '{name}' table to write ({offers}); "
                f"drop {option(f'emit_{name}', python=f'emit={{{name!r}: ...}}')}"
            )
        check_output_path(path, [*inputs, output])
    adapter = spec.inputs
    if isinstance(adapter, StreamingAdapter) and labelled_col is not None:
        raise SelectkitUsageError(
            f"strategy '{spec.name}' streams its input files and cannot leave labelled rows "
            f"out; drop the labelled-set column ({option('labelled_col')}), or "
            "filter the files first"
        )
    if not isinstance(adapter, StreamingAdapter) and (cost is None or cost.budget is None):
        check_budget_given(spec, count_budget)
    elif exclude:
        raise SelectkitUsageError(
            f"strategy '{spec.name}' streams its input files and cannot leave rows out; drop "
            f"{option('exclude')}, or filter the files first"
        )
    dropped = excluded_ids(exclude, (columns or Columns()).id) if exclude else None
    with opened_engine(engine, ray_address) as eng:
        prov = Provenance(command="select", seed=seed)
        files = FileInputs(inputs, columns or Columns(), input_format, use_labels, engine=eng)
        if isinstance(adapter, StreamingAdapter):
            return _select_streamed(adapter, spec, files, output, prov, budget, resolved, eng)
        # group ranges and --exclude read the pool here, on the driver
        if spec.shards is not None and ranges is None and dropped is None and cost is None:
            request = ShardRequest(
                files=files,
                budget=budget,
                seed=seed,
                params=resolved,
                labelled_col=labelled_col,
                labels_as_data=spec.labels == LABELS_AS_DATA,
                metrics=metrics,
                modifiers=mods,
                strategy=spec.name,
            )
            prov.start("select")
            picked = spec.shards.run(request, eng)
            if picked is not None:
                prov.stop("select")
                return _write_sharded(picked, spec, request, output, prov, eng)
        return _select_on_driver(
            spec,
            files,
            output,
            prov,
            eng,
            budget=budget,
            resolved=resolved,
            mods=mods,
            emit=emit,
            threads=threads,
            metrics=metrics,
            labelled_col=labelled_col,
            stochastic=stochastic,
            coldness=coldness,
            subpool=subpool,
            subpool_options=subpool_options,
            ranges=ranges,
            exclude=dropped,
            cost_options=cost_options,
            cost=cost,
        )


def _select_on_driver(
    spec: Strategy,
    files: FileInputs,
    output: str | Path,
    prov: Provenance,
    eng: Any,
    *,
    budget: int | float | str | None,
    resolved: dict[str, Any],
    mods: Acquisition,
    emit: dict[str, str | Path],
    threads: int | None,
    metrics: bool,
    labelled_col: str | None,
    stochastic: str | None,
    coldness: float | None,
    subpool: str | None,
    subpool_options: dict[str, int] | None,
    ranges: GroupRanges | None = None,
    exclude: tuple[pl.Series | None, list[dict]] | None = None,
    cost_options: dict[str, Any] | None = None,
    cost: CostSpec | None = None,
) -> Provenance:
    """The pool read on the driver (the strategy's input adapter), the strategy run on it, the
    manifest and side tables written: what ``select_files`` does for a strategy without a
    shard plan, on either engine. Returns the provenance written."""
    adapter = spec.inputs
    seed = prov.seed if prov.seed is not None else DEFAULT_SEED
    use_labels = files.use_labels
    strategy = spec.name
    prov.start("read")
    pool = prepare_pool(adapter.load(files, resolved), spec, resolved, labelled_col)
    prov.stop("read")
    prov.start("select")
    manifest, selection = select(
        pool,
        strategy,
        budget,
        seed=seed,
        params=resolved,
        threads=threads,
        metrics=metrics,
        labelled_col=labelled_col,
        stochastic=stochastic,
        coldness=coldness,
        subpool=subpool,
        subpool_options=subpool_options,
        group_ranges=ranges,
        exclude=None if exclude is None else (exclude[0] if exclude[0] is not None else []),
        **(cost_options or {}),
    )
    prov.stop("select")
    prov.params = {
        "strategy": spec.name,
        "budget": None if budget is None else str(budget),
        "budget_rows": int(manifest.height),
        "strategy_params": {**resolved, **selection.params},
        "acquisition": mods.describe(),
        "columns": pool.columns.__dict__,
        "use_labels": use_labels,
        "labels": spec.labels,
        "labelled_col": pool.labelled_column,
    }
    if ranges is not None:
        prov.params["group_ranges"] = {"column": pool.columns.group, **ranges.describe()}
    if cost is not None:
        prov.params["cost"] = cost.describe()
        if "cost_spent" not in selection.metrics:  # a count budget: the cost is recorded
            selection.metrics["cost_spent"] = float(manifest.get_column("cost").sum())
    prov.engine = engine_record(eng)
    prov.inputs = [s.as_dict() for s in pool.sources] + (exclude[1] if exclude else [])
    if exclude is not None:
        prov.params["exclude"] = [r["path"] for r in exclude[1]]
    prov.metrics = {
        "pool_rows": len(pool),
        "selectable_rows": int(pool.candidates.size),  # after --exclude when given (below)
        "selected_rows": int(manifest.height),
        **selection.metrics,
    }
    with output_group():  # the manifest and its side tables commit together, or none
        for name, path in emit.items():
            write_table(selection.tables[name], path, provenance=prov)
        write_table(manifest, output, provenance=prov)
    return prov


def _select_streamed(
    adapter: StreamingAdapter,
    spec: Strategy,
    files: FileInputs,
    output: str | Path,
    prov: Provenance,
    budget: int | float | str | None,
    params: dict[str, Any],
    eng: Any,
) -> Provenance:
    """A streaming adapter reads the files and selects itself (on ``files.engine`` where it
    hands work to one); we write its manifest."""
    prov.start("select")
    result = adapter.stream(files, budget, prov.seed, params)
    prov.stop("select")
    prov.params = {
        "strategy": spec.name,
        "budget": None if budget is None else str(budget),
        "budget_rows": int(result.manifest.height),
        "strategy_params": {**params, **result.params},
        "columns": files.columns.__dict__,
        "labels": spec.labels,
    }
    prov.engine = engine_record(eng)
    if result.engine is not None:  # the strategy ran on an engine of its own
        prov.engine = result.engine
    prov.inputs = result.inputs
    prov.metrics = result.metrics
    prov.timings.update(result.timings)
    write_table(result.manifest, output, provenance=prov)
    return prov


def _write_sharded(
    picked: ShardedPick,
    spec: Strategy,
    request: ShardRequest,
    output: str | Path,
    prov: Provenance,
    eng: Any,
) -> Provenance:
    """Write a shard plan's manifest with the provenance the driver path records for the same
    selection (same parameters, inputs and metrics). Returns the provenance."""
    files = request.files
    prov.params = {
        "strategy": spec.name,
        "budget": None if request.budget is None else str(request.budget),
        "budget_rows": int(picked.manifest.height),
        "strategy_params": dict(request.params),
        "acquisition": request.modifiers.describe(),
        "columns": files.columns.__dict__,
        "use_labels": files.use_labels,
        "labels": spec.labels,
        "labelled_col": labelled_column(
            request.labelled_col, files.columns, request.labels_as_data, files.use_labels
        ),
    }
    prov.engine = engine_record(eng)
    prov.inputs = picked.inputs
    prov.metrics = {
        "pool_rows": picked.pool_rows,
        "selectable_rows": picked.selectable_rows,
        "selected_rows": int(picked.manifest.height),
        **picked.metrics,
    }
    write_table(picked.manifest, output, provenance=prov)
    return prov


def labelled_column(
    labelled_col: str | None, columns: Columns, labels_as_data: bool, use_labels: bool
) -> str | None:
    """The column whose non-null rows are the labelled set, as ``Pool.labelled_column`` says
    for a pool loaded with these settings. O(1)."""
    if labelled_col is not None:
        return labelled_col
    return None if labels_as_data or not use_labels else columns.label


@contextmanager
def opened_engine(engine: str | Any, ray_address: str | None) -> Iterator[Any]:
    """The engine ``engine`` names (``selectkit.engine.get_engine``: usage errors before any
    work), closed on exit when it was made here; an Engine given is passed through, left open."""
    from selectkit.engine import get_engine

    if ray_address is not None:
        text(ray_address, "ray_address")
    eng = get_engine(engine, ray_address=ray_address)
    try:
        yield eng
    finally:
        if eng is not engine:
            eng.close()
