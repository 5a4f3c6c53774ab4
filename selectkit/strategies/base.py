"""The strategy interface and the one registry of strategies.

A strategy is a function ``fn(pool, budget, rng, **params) -> Selection`` registered with
``@register_strategy``. It declares the columns it needs and its parameters, so ``select`` can
refuse an input before any work and the CLI can parse ``--param key=value`` by type.
Third-party strategies register through the entry-point group ``selectkit.strategies``: each entry
point names a module (or callable) whose import registers them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitInternalError, SelectkitUsageError
from selectkit.params import AUTO as AUTO  # re-exported: strategies import it from here
from selectkit.params import Param as Param
from selectkit.params import check_params
from selectkit.pool import Pool
from selectkit.strategies.inputs import WIDE, InputAdapter, ShardPlan

ENTRY_POINT_GROUP = "selectkit.strategies"

# What a strategy makes of the label column (null = unlabelled; -1 and "" are labels). Shown by
# `selectkit strategies`; docs/strategies.md says why each strategy is which.
LABELLED_SET = "labelled-set"  # acquisition: labelled rows are never picked, count as covered
LABELS_AS_DATA = "data"  # pruning/weighing labelled data: every row may be picked
LABEL_USES = {
    LABELLED_SET: "labelled rows are the labelled set: never picked (AL strategies count them "
    "as covered)",
    LABELS_AS_DATA: "labels are data: every row may be picked, unless --labelled-col marks the "
    "rows already labelled",
}


@dataclass
class Selection:
    """What a strategy picked: pool row indices in pick order, with optional scores and weights.

    ``scores``: float64 per pick (None when the strategy has none); ``weights``: importance
    weights per pick (None = 1.0 each); ``metrics``: summary numbers recorded in provenance;
    ``tables``: side outputs by name (e.g. semdedup's ``dropped`` rows), written on request;
    ``params``: the values a strategy chose for parameters left on ``auto`` (recorded).
    """

    indices: np.ndarray
    scores: np.ndarray | None = None
    weights: np.ndarray | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        for name in ("scores", "weights"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != self.indices.shape:
                    raise ValueError(f"{name} must have one value per selected row")
                setattr(self, name, value)


@dataclass
class StreamedSelection:
    """What a streaming strategy returns to ``select_files``: the finished manifest (id, rank,
    score, weight, ...), summary metrics, the values it chose for parameters, the inputs it read
    (``Source.as_dict()``), stage timings in seconds and, when it ran on an engine of its own
    (DSIR's process pool), that engine's record (``selectkit.engine.engine_record``; None: the
    engine ``select`` gave it)."""

    manifest: pl.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] | None = None


StrategyFn = Callable[..., Selection]


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: name, summary, needed and optional column roles, parameters."""

    name: str
    fn: StrategyFn
    summary: str
    needs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    params: dict[str, Param] = field(default_factory=dict)
    cost: str = ""
    self_sized: bool = False
    emits: tuple[str, ...] = ()
    # reads the input files and shapes the pool (selectkit.strategies.inputs): WIDE by default,
    # DISCO's LONG (pivoted to one row per id), DSIR's STREAMED (files read as a stream)
    inputs: InputAdapter = WIDE
    # LABELLED_SET or LABELS_AS_DATA: whether rows with a label are the labelled set by default
    labels: str = LABELLED_SET
    # Scored strategies (selectkit.strategies.scored) also expose their per-row scorer, which
    # the acquisition modifiers (stochastic sampling, AnchorAL subpools) work on.
    scorer: Callable[..., np.ndarray] | None = None
    # Row order is data for some strategies under some parameters (semdedup --order input): for
    # those params this returns True and ``select`` hands the rows over as given; otherwise it
    # hands them over sorted by id, so the selection does not depend on the input's order.
    reads_row_order: Callable[[dict[str, Any]], bool] | None = None
    # Parameters the strategy can run with on example data (a dict, or a function returning
    # one when building it costs, e.g. a path to a bundled corpus); see ``example_params``.
    examples: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None
    # How it runs on an engine (selectkit.strategies.inputs.ShardPlan): per shard of the input
    # with a driver-side reduction; None = the pool is read on the driver (either engine).
    shards: ShardPlan | None = None
    # Meets group ranges itself (fair-centers): ``select`` passes the resolved bounds as
    # ``bounds=`` (a ``selectkit.ranges.GroupBounds``) instead of re-running it per round.
    meets_ranges: bool = False
    # Spends a cost budget itself (kcenter, badge, typiclust): with ``select(budget_cost=)``,
    # ``select`` passes ``spend=`` (a ``selectkit.cost.CostBudget``) and a row-count upper bound.
    spends_cost: bool = False

    def keeps_input_order(self, params: dict[str, Any]) -> bool:
        """Whether, under the resolved ``params``, this strategy reads the input's row order."""
        return self.reads_row_order is not None and bool(self.reads_row_order(params))

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Return every parameter's value: defaults overlaid with ``given``, typed and checked
        against the declarations (``selectkit.params.check_params``)."""
        return check_params(given, self.params, owner=f"strategy '{self.name}'")

    def example_params(self) -> dict[str, Any]:
        """The registration's example parameters (what the contract checks in
        ``selectkit.testing`` run the strategy with; e.g. dsir's target corpus)."""
        examples = self.examples() if callable(self.examples) else self.examples
        return dict(examples or {})

    def __call__(
        self, pool: Pool, budget: int | None, rng: np.random.Generator, **params: Any
    ) -> Selection:
        return self.fn(pool, budget, rng, **params)


_REGISTRY: dict[str, Strategy] = {}
_loaded_entry_points = {"done": False}


def register_strategy(
    name: str,
    *,
    summary: str,
    needs: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    params: dict[str, Param] | None = None,
    cost: str = "",
    self_sized: bool = False,
    emits: tuple[str, ...] = (),
    inputs: InputAdapter = WIDE,
    labels: str = LABELLED_SET,
    scorer: Callable[..., np.ndarray] | None = None,
    reads_row_order: Callable[[dict[str, Any]], bool] | None = None,
    examples: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    shards: ShardPlan | None = None,
    meets_ranges: bool = False,
    spends_cost: bool = False,
) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator registering ``fn`` as strategy ``name``; a second registration of a name fails.

    ``self_sized`` strategies (such as semdedup) decide how many rows they keep: they take no
    budget and ``fn`` receives ``budget=None``. ``emits`` names the side tables the strategy can
    write (``Selection.tables``), e.g. ``("dropped",)`` for ``--emit-dropped``.
    ``inputs`` is the strategy's input adapter (``selectkit.strategies.inputs``): how files are
    read and a pool shaped for it (``WIDE``, one row per id, by default). ``labels`` says what
    the label column means to it: ``"labelled-set"`` (the default; acquisition: rows with a
    non-null label are already labelled, never picked) or ``"data"`` (labels are data, every
    row may be picked); ``select(..., labelled_col=)`` marks the labelled set for either.
    ``scorer`` marks a scored
    strategy (use ``register_scored_strategy`` rather than this). ``reads_row_order(params)``
    is True where the strategy's result is meant to depend on the input's row order (semdedup
    ``--order input``); everywhere else ``select`` runs strategies on the rows sorted by id.
    ``examples``: parameters the strategy needs to run at all on example data (a dict, or a
    function returning one), used by ``selectkit.testing``'s contract checks.
    ``shards`` declares how the strategy runs on an engine (``select --engine``): a ``ShardPlan``
    whose per-shard kernels and driver reduction give the same selection as ``fn`` on the whole
    pool; without one (the default) the pool is read on the driver and ``fn`` runs there.
    ``meets_ranges``: ``fn`` meets group ranges itself and takes them as ``bounds=`` (a
    ``selectkit.ranges.GroupBounds``; None without ranges); every other strategy gets group
    ranges from ``select``'s constrained walk over its picks (``selectkit.ranges``).
    ``spends_cost``: ``fn`` spends a cost budget itself (``select(cost_col=, budget_cost=)``):
    it takes ``spend=`` (a ``selectkit.cost.CostBudget``; None without one), ``budget`` is then
    an upper bound on the rows, and it returns the rows that fit, in pick order; every other
    strategy's picks are taken in pick order while they fit (``selectkit.cost``).
    """
    if labels not in LABEL_USES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_USES)}, not {labels!r}")
    if not isinstance(inputs, InputAdapter):
        raise ValueError(f"inputs must be an input adapter (load, prepare), not {inputs!r}")
    if shards is not None and not isinstance(shards, ShardPlan):
        raise ValueError(f"shards must be a shard plan (name, run), not {shards!r}")

    def decorate(fn: StrategyFn) -> StrategyFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"strategy {name!r} is already registered")
        _REGISTRY[name] = Strategy(
            name,
            fn,
            summary,
            needs,
            optional,
            dict(params or {}),
            cost,
            self_sized=self_sized,
            emits=emits,
            inputs=inputs,
            labels=labels,
            scorer=scorer,
            reads_row_order=reads_row_order,
            examples=examples,
            shards=shards,
            meets_ranges=meets_ranges,
            spends_cost=spends_cost,
        )
        return fn

    return decorate


def _load_entry_points() -> None:
    if _loaded_entry_points["done"]:
        return
    _loaded_entry_points["done"] = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not break the built-in strategies
            from selectkit.console import warn

            warn(f"strategy plugin {ep.name!r} failed to load: {exc}")
            continue
        if callable(obj) and not isinstance(obj, type):
            obj()


def get_strategy(name: str) -> Strategy:
    """Return the registered strategy ``name`` or raise a usage error listing the known ones."""
    _load_entry_points()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SelectkitUsageError(f"unknown strategy {name!r}; {hint}choose one of: {known}")
    return _REGISTRY[name]


def list_strategies() -> list[Strategy]:
    """Every registered strategy, built-in and plug-in, sorted by name."""
    _load_entry_points()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def check_selection(selection: Selection, pool: Pool, budget: int | None, name: str) -> None:
    """Guard against a strategy bug: right count, in range, no repeats, never a labelled row."""
    idx = selection.indices
    if budget is not None and idx.shape != (budget,):
        raise SelectkitInternalError(
            f"strategy {name!r} returned {idx.size} rows, not the budget {budget}"
        )
    if idx.size and (idx.min() < 0 or idx.max() >= len(pool)):
        raise SelectkitInternalError(f"strategy {name!r} returned a row outside the pool")
    if np.unique(idx).size != idx.size:
        raise SelectkitInternalError(f"strategy {name!r} returned the same row twice")
    if pool.labelled_mask[idx].any():
        raise SelectkitInternalError(f"strategy {name!r} returned an already labelled row")
    if selection.weights is not None and not np.all(np.isfinite(selection.weights)):
        raise SelectkitInternalError(f"strategy {name!r} returned non-finite weights")
