"""Group ranges: at least / at most so many picks per group, on any strategy.

``select(..., group_min={'wiki': 100}, group_max={'web': 200})`` (``--group-min wiki=100
--group-max web=200``, or ``--group-ranges FILE`` with columns ``group,min,max``) bounds how
many picks each value of the group column (``--group-col``, default ``group``) gets. The bounds
are checked against the data before any work (:func:`resolve_bounds`); then
:func:`constrained_selection` runs the strategy and walks its picks in pick order, keeping a
pick unless its group is full or taking it would leave too little room for the groups still
below their minimum (the matroid greedy of docs/strategies.md, "Group ranges"). When the walk
runs out of picks before the budget, the strategy is asked again, on the rows of the groups
still open, with the picks so far marked as already labelled (acquisition strategies count them
as covered); each round closes a group or fills the budget, so at most ``groups + 2`` rounds run.

A strategy that meets ranges itself (``register_strategy(..., meets_ranges=True)``, e.g.
``fair-centers``) gets the bounds as ``bounds=`` and runs once; its picks go through the same
walk, which then keeps them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.pool import Pool, _GatheredRows, column_option

#: the column marking rows a later round must not pick (original labelled set + picks so far)
TAKEN = "__selectkit_range_taken"


@dataclass(frozen=True)
class GroupRanges:
    """Bounds per group name as the user gave them: ``mins`` and ``maxs`` (name -> count)."""

    mins: dict[str, int]
    maxs: dict[str, int]

    def describe(self) -> dict[str, Any]:
        """The bounds as recorded in provenance (``{'min': {...}, 'max': {...}}``)."""
        return {"min": dict(sorted(self.mins.items())), "max": dict(sorted(self.maxs.items()))}


@dataclass(frozen=True)
class GroupBounds:
    """Bounds resolved against a pool: ``codes`` (int64 per pool row, the group of each row,
    -1 for rows outside the candidates), ``names`` (code -> group name), ``lo`` and ``hi``
    (int64 per code; ``hi`` is capped at the group's candidate count), the ``budget`` and
    ``bounded`` (bool per code: the group has a min or max of the user's)."""

    codes: np.ndarray
    names: list[str]
    lo: np.ndarray
    hi: np.ndarray
    budget: int
    bounded: np.ndarray | None = None  # bool per code: the user gave this group a bound

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """Picks per group code among pool rows ``rows``. O(len(rows))."""
        return np.bincount(self.codes[rows], minlength=len(self.names))

    def report(self, rows: np.ndarray) -> dict[str, int]:
        """Picks per group name among pool rows ``rows`` (every group, zeros included)."""
        return {n: int(c) for n, c in zip(self.names, self.counts(rows), strict=True)}


def _parse_counts(value: object, flag: str) -> dict[str, int]:
    """``'wiki=100,code=50'`` (or a mapping, or a list of such strings) as {name: count}."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    else:
        texts = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        items = []
        for text in texts:
            for part in str(text).split(","):
                name, sep, count = part.strip().rpartition("=")
                if not sep or not name:
                    raise SelectkitUsageError(
                        f"{option(flag)} takes GROUP=COUNT items (e.g. wiki=100,code=50), "
                        f"not {part.strip()!r}"
                    )
                items.append((name.strip(), count.strip()))
    out: dict[str, int] = {}
    for name, count in items:
        try:
            number = int(str(count)) if not isinstance(count, bool) else None
        except ValueError:
            number = None
        if number is None or number < 0:
            raise SelectkitUsageError(
                f"{option(flag)}: the count for group {name!r} is {count!r}; give a whole "
                "number >= 0"
            )
        if name in out:
            raise SelectkitUsageError(f"{option(flag)} names group {name!r} twice; give it once")
        out[name] = number
    return out


def _read_ranges_file(path: str | Path | pl.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """A ranges table (csv or parquet, or a DataFrame) with columns group, min, max (nulls =
    no bound) as (mins, maxs)."""
    if isinstance(path, pl.DataFrame):
        frame, where = path, "the group_ranges table"
    else:
        where = f"'{path}'"
        p = Path(path)
        if not p.is_file():
            raise SelectkitUsageError(
                f"ranges file {where} ({option('group_ranges')}) does not exist; give a csv "
                "or parquet file with columns group,min,max"
            )
        try:
            frame = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
        except Exception as exc:  # polars' own message is long; one line naming the file
            raise SelectkitUsageError(
                f"cannot read ranges file {where}: {str(exc).splitlines()[0]}; give a csv or "
                "parquet file with columns group,min,max"
            ) from None
    missing = [c for c in ("group", "min", "max") if c not in frame.columns]
    if missing:
        raise SelectkitUsageError(
            f"ranges file {where} lacks column '{missing[0]}'; it needs columns group,min,max "
            "(min or max may be empty for no bound)"
        )
    mins: dict[str, int] = {}
    maxs: dict[str, int] = {}
    for row in frame.select("group", "min", "max").iter_rows():
        name = str(row[0])
        if name in mins or name in maxs:
            raise SelectkitUsageError(f"ranges file {where} names group {name!r} twice")
        for value, into, what in ((row[1], mins, "min"), (row[2], maxs, "max")):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            try:
                whole = float(value) == int(float(value)) and float(value) >= 0
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole:
                raise SelectkitUsageError(
                    f"ranges file {where}: the {what} of group {name!r} is {value!r}; give a "
                    "whole number >= 0 or leave it empty"
                )
            into[name] = int(float(value))
    return mins, maxs


def parse_ranges(
    group_min: object = None,
    group_max: object = None,
    group_ranges: str | Path | pl.DataFrame | GroupRanges | None = None,
) -> GroupRanges | None:
    """The bounds given as ``group_min`` / ``group_max`` (``'a=1,b=2'``, or a mapping) and/or a
    ranges file ``group_ranges``; None when none is given. A usage error (exit 2) for malformed
    bounds, a group in both the file and an option, or a min above its max. O(groups)."""
    mins = _parse_counts(group_min, "group_min")
    maxs = _parse_counts(group_max, "group_max")
    if isinstance(group_ranges, GroupRanges):  # already parsed (select_files hands it on)
        if mins or maxs:
            raise SelectkitUsageError(
                f"give the bounds once: {option('group_ranges')} already holds parsed ranges"
            )
        return group_ranges
    if group_ranges is not None:
        fmins, fmaxs = _read_ranges_file(group_ranges)
        both = sorted((set(fmins) | set(fmaxs)) & (set(mins) | set(maxs)))
        if both:
            raise SelectkitUsageError(
                f"group {both[0]!r} is bounded both in the ranges file and by "
                f"{option('group_min')}/{option('group_max')}; bound it in one place"
            )
        mins, maxs = {**mins, **fmins}, {**maxs, **fmaxs}
    if not mins and not maxs and group_ranges is None:
        return None
    for name in sorted(set(mins) & set(maxs)):
        if mins[name] > maxs[name]:
            raise SelectkitUsageError(
                f"group {name!r} has min {mins[name]} > max {maxs[name]}; give a min <= max"
            )
    return GroupRanges(mins=mins, maxs=maxs)


def group_names(pool: Pool) -> pl.Series:
    """The group column of ``pool`` as strings (the names bounds refer to); a data error for a
    missing column or nulls. O(n)."""
    pool.require(["group"], f"group ranges ({option('group_min')}/{option('group_max')})")
    name = pool.columns.group
    col = pool.frame.get_column(name)
    if col.null_count():
        first = int(col.is_null().arg_max() or 0)
        raise SelectkitDataError(
            f"column '{name}' (group) of {pool.where} has {col.null_count()} null values "
            f"(first at id {pool.ids[first]!r}); give every row a group, or name another column "
            f"with {column_option('group')}"
        )
    if col.dtype == pl.List or col.dtype == pl.Array or col.dtype == pl.Struct:
        raise SelectkitDataError(
            f"column '{name}' (group) of {pool.where} holds {col.dtype}; groups are one value "
            "per row (overlapping groups are refused: make a combined group key)"
        )
    return col.cast(pl.Utf8)


def resolve_bounds(pool: Pool, ranges: GroupRanges, budget: int) -> GroupBounds:
    """``ranges`` checked against the candidates of ``pool`` and ``budget``: one line naming
    the first infeasible group and the fix, before any work. A misspelled group is a usage
    error (exit 2); bounds the data cannot meet (a min above the group's selectable rows, mins
    summing above the budget, maxes summing below it) are data errors (exit 1). O(n log n)."""
    labels = group_names(pool)
    cand = pool.candidates
    uniq, inverse = np.unique(labels.gather(cand).to_numpy().astype(str), return_inverse=True)
    names = [str(u) for u in uniq]
    everywhere = set(labels.unique().to_list())
    for bound, given in (("group_min", ranges.mins), ("group_max", ranges.maxs)):
        for name in sorted(given):
            if name in everywhere:
                continue
            close = difflib.get_close_matches(name, sorted(everywhere), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            shown = ", ".join(sorted(everywhere)[:8]) + (", ..." if len(everywhere) > 8 else "")
            raise SelectkitUsageError(
                f"{option(bound)} names group {name!r}, which column '{pool.columns.group}' of "
                f"{pool.where} does not hold; {hint}groups there: {shown}"
            )
    sizes = np.bincount(inverse, minlength=len(names))
    index = {n: i for i, n in enumerate(names)}
    lo = np.zeros(len(names), dtype=np.int64)
    hi = sizes.astype(np.int64).copy()
    for name, count in ranges.mins.items():
        size = int(sizes[index[name]]) if name in index else 0
        if count > size:
            raise SelectkitDataError(
                f"group {name!r} has min {count} but only {size} selectable rows; lower its "
                f"min to at most {size} ({option('group_min')})"
            )
        lo[index[name]] = count
    for name, count in ranges.maxs.items():
        if name in index:
            hi[index[name]] = min(count, int(sizes[index[name]]))
    if int(lo.sum()) > budget:
        raise SelectkitDataError(
            f"the group mins sum to {int(lo.sum())}, more than the budget {budget}; raise the "
            f"budget or lower a min ({_shown(names, lo, lo > 0)})"
        )
    if int(hi.sum()) < budget:
        capped = np.isin(names, list(ranges.maxs))
        raise SelectkitDataError(
            f"the group maxes (capped at each group's selectable rows) allow at most "
            f"{int(hi.sum())} picks, fewer than the budget {budget}; lower the budget or raise "
            f"a max ({_shown(names, hi, capped, smallest=True)})"
        )
    codes = np.full(len(pool), -1, dtype=np.int64)
    codes[cand] = inverse
    bounded = np.isin(names, list(set(ranges.mins) | set(ranges.maxs)))
    return GroupBounds(codes=codes, names=names, lo=lo, hi=hi, budget=budget, bounded=bounded)


def _shown(names: list[str], values: np.ndarray, among: np.ndarray, smallest: bool = False) -> str:
    """Up to three ``name=value`` of the groups ``among``, largest (or smallest) first."""
    rows = np.flatnonzero(among)
    rows = rows[np.argsort(values[rows] if smallest else -values[rows], kind="stable")][:3]
    more = ", ..." if np.count_nonzero(among) > 3 else ""
    return ", ".join(f"{names[i]}={int(values[i])}" for i in rows) + more


def walk(
    order: np.ndarray, bounds: GroupBounds, counts: np.ndarray, taken: int
) -> tuple[np.ndarray, int, int]:
    """Walk pool rows ``order`` (pick order), keeping a row iff its group is below its max and,
    unless it is below its min, keeping it leaves room for every min. Updates ``counts`` (picks
    per group) in place; returns (positions kept in ``order``, picks taken, rows walked).
    O(len(order)) Python steps over the picks (never over the pool)."""
    kept = []
    walked = 0
    need = int(np.maximum(bounds.lo - counts, 0).sum())
    k = bounds.budget
    for pos, g in enumerate(bounds.codes[order].tolist()):
        if taken == k:
            break
        walked = pos + 1
        c = counts[g]
        if c >= bounds.hi[g]:
            continue
        if c < bounds.lo[g]:
            need -= 1
        elif taken + need >= k:
            continue
        counts[g] = c + 1
        taken += 1
        kept.append(pos)
    return np.asarray(kept, dtype=np.int64), taken, walked


def open_groups(bounds: GroupBounds, counts: np.ndarray, taken: int) -> np.ndarray:
    """Boolean per group code: a pick of this group could still be kept. O(groups)."""
    need = int(np.maximum(bounds.lo - counts, 0).sum())
    below_max = counts < bounds.hi
    if taken + need >= bounds.budget:
        return below_max & (counts < bounds.lo)
    return below_max


def remaining_pool(
    pool: Pool, bounds: GroupBounds, picked: np.ndarray, open_: np.ndarray
) -> tuple[Pool, np.ndarray | None]:
    """The pool a later round runs on: the labelled set, the picks so far (both marked taken)
    and the unpicked candidates of the ``open_`` groups, in the pool's (id) order; and the
    pool rows it keeps. O(n) plus a copy of the kept rows.

    A pool subclass with row-aligned state of its own (DISCO's pivoted ``ModelPool``) cannot be
    cut by rows here: it keeps every row, the closed groups' rows marked taken too, and the
    rows returned are None (its indices are the pool's)."""
    taken = pool.labelled_mask.copy()
    taken[picked] = True
    codes = bounds.codes
    keep = taken | ((codes >= 0) & open_[np.maximum(codes, 0)])
    if type(pool) is not Pool:
        flag = pl.Series(TAKEN, np.where(keep & ~taken, None, True))
        marked = replace(pool, frame=pool.frame.with_columns(flag))
        return marked.marking_labelled(TAKEN, labels_as_data=pool.labels_as_data), None
    rows = np.flatnonzero(keep).astype(np.int64)
    frame = pool.frame[rows].with_columns(pl.Series(TAKEN, np.where(taken[rows], True, None)))
    sub = Pool(
        frame=frame,
        columns=pool.columns,
        arrays=_GatheredRows(pool.arrays, rows),  # type: ignore[arg-type]
        sources=pool.sources,
        use_labels=pool.use_labels,
    )
    return sub.marking_labelled(TAKEN, labels_as_data=pool.labels_as_data), rows


def constrained_selection(
    pool: Pool,
    bounds: GroupBounds,
    run: Callable[[Pool, int, int], Any],
) -> Any:
    """Picks of ``run(pool, count, round)`` (a Selection) constrained to ``bounds``, in pick
    order: round 0 runs the strategy on the whole pool with the whole budget, later rounds on
    :func:`remaining_pool` with what is left of it. Scores and weights of kept picks are the
    ones the strategy gave them in the round that picked them. Records ``group_counts`` (picks
    per group), ``group_ranges_rounds`` and ``group_ranges_skipped`` (strategy picks the walk
    skipped) and ``group_ranges`` in the returned selection's metrics; the strategy's own
    metrics, tables and chosen parameters are round 0's. Cost: the strategy's, once per round
    (at most ``groups + 2`` rounds; one for a strategy that ``meets_ranges``)."""
    from selectkit.strategies.base import Selection

    counts = np.zeros(len(bounds.names), dtype=np.int64)
    taken = 0
    parts: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    first = None
    skipped = 0
    rounds = 0
    picked = np.empty(0, dtype=np.int64)
    while taken < bounds.budget:
        if rounds == 0:
            sub, rows = pool, None
        else:  # rows None: the sub-pool's indices are the pool's
            sub, rows = remaining_pool(pool, bounds, picked, open_groups(bounds, counts, taken))
        sel = run(sub, bounds.budget - taken, rounds)
        if first is None:
            first = sel
        order = sel.indices if rows is None else rows[sel.indices]
        kept, taken, walked = walk(order, bounds, counts, taken)
        skipped += walked - int(kept.size)
        parts.append(
            (
                order[kept],
                None if sel.scores is None else sel.scores[kept],
                None if sel.weights is None else sel.weights[kept],
            )
        )
        picked = np.concatenate([p[0] for p in parts])
        rounds += 1
        # round 1 may keep nothing (all its picks in closed groups); a later round runs on the
        # open groups only, so its first pick is always kept: never loop
        if kept.size == 0 and rounds > 1 and taken < bounds.budget:
            from selectkit.errors import SelectkitInternalError

            raise SelectkitInternalError("group ranges: a round kept no pick")
    has_scores = any(p[1] is not None for p in parts)
    has_weights = any(p[2] is not None for p in parts)

    def joined(i: int, fill: float) -> np.ndarray:
        return np.concatenate(
            [p[i] if p[i] is not None else np.full(p[0].size, fill) for p in parts]
        )

    out = Selection(
        indices=picked,
        scores=joined(1, np.nan) if has_scores else None,
        weights=joined(2, 1.0) if has_weights else None,
        metrics=dict(first.metrics),
        tables=dict(first.tables),
        params=dict(first.params),
    )
    out.metrics.update(
        {
            "group_ranges": effective_ranges(bounds),
            "group_counts": bounds.report(picked),
            "group_ranges_rounds": rounds,
            "group_ranges_skipped": skipped,
        }
    )
    return out


def effective_ranges(bounds: GroupBounds) -> dict[str, list[int]]:
    """[min, max] as enforced (max capped at the group's selectable rows) for each group the
    user bounded; the others are [0, size]."""
    rows = range(len(bounds.names)) if bounds.bounded is None else np.flatnonzero(bounds.bounded)
    return {bounds.names[i]: [int(bounds.lo[i]), int(bounds.hi[i])] for i in rows}


__all__ = [
    "GroupBounds",
    "GroupRanges",
    "constrained_selection",
    "parse_ranges",
    "resolve_bounds",
]
