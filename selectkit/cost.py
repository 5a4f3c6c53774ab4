"""Cost-aware selection: a per-row cost column and a budget in cost units (seconds, money, tokens).

``select(..., cost_col="seconds", budget_cost=3600)`` spends at most 3600 of the column's units:

- scored strategies (entropy, margin, ...) rank by the normalised utility per cost: the score is
  rank-normalised to (0, 1] (u), then ``u / c**exponent`` (``cost_mode="ratio"``, exponent 0 =
  cost-blind) or ``u - cost_lambda * c / median(c)`` (``"penalty"``); the rows are then taken
  greedily in that order while they fit (a second pass over the leftovers is built in: a row that
  does not fit is skipped, not the end), and the batch is replaced by the best single affordable
  row when that row alone has more utility (the ½-approximation of the knapsack);
- strategies registered with ``spends_cost=True`` (kcenter, badge, typiclust) spend the budget
  themselves (``CostBudget``);
- every other strategy is asked for as many rows as could fit (the cheapest rows' count) and its
  picks are taken in its own pick order while they fit (``fill_in_order``).

Costs must be finite and > 0 on every selectable row (a data error naming the file, the column and
the row id otherwise); ``min_cost`` floors them. The manifest gains ``cost`` and
``cumulative_cost``; the spent cost never exceeds the budget. See docs/cost.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.params import Param, check_params

COST_MODES = ("ratio", "penalty")

# The cost options, declared once (the CLI takes its bounds from here, the API checks them here).
COST_PARAMS = {
    "cost_col": Param(str, None, "column of per-row costs (> 0) in your unit: seconds, tokens"),
    "budget_cost": Param(
        float,
        None,
        "spend at most this much cost (exclusive with a count budget)",
        low=0.0,
        low_open=True,
    ),
    "cost_exponent": Param(
        float, 1.0, "ratio mode: rank by utility / cost**exponent (0 = cost-blind)", low=0.0
    ),
    "cost_mode": Param(
        str,
        "ratio",
        "utility per cost (ratio) or utility - lambda*cost/median (penalty)",
        COST_MODES,
    ),
    "cost_lambda": Param(float, 1.0, "penalty mode: weight of the median-normalised cost", low=0.0),
    "min_cost": Param(
        float,
        None,
        "floor on each cost (keeps very cheap rows from crowding out the rest)",
        low=0.0,
        low_open=True,
    ),
}


@dataclass(frozen=True)
class CostSpec:
    """Validated cost options: ``column`` (the cost column), ``budget`` (cost units to spend; None
    = a count budget, costs only recorded), ``exponent``, ``mode``, ``lam`` and ``min_cost``."""

    column: str
    budget: float | None = None
    exponent: float = 1.0
    mode: str = "ratio"
    lam: float = 1.0
    min_cost: float | None = None
    given_as: str | None = None  # how the user wrote the budget, for messages

    @property
    def budget_flag(self) -> str:
        """The budget as the user gave it (``--budget cost:X`` or ``--budget-cost``)."""
        return self.given_as or option("budget_cost")

    def describe(self) -> dict[str, Any]:
        """The cost options for provenance (``params.cost``)."""
        out: dict[str, Any] = {"column": self.column, "units": self.column}
        if self.budget is not None:
            out.update(budget=self.budget, mode=self.mode)
            if self.mode == "ratio":
                out["exponent"] = self.exponent
            else:
                out["lam"] = self.lam
        if self.min_cost is not None:
            out["min_cost"] = self.min_cost
        return out


@dataclass(frozen=True)
class CostBudget:
    """What a strategy with ``spends_cost=True`` receives as ``spend=``: ``costs`` (float64 per
    pool row, floored by ``min_cost``; inf outside the candidates), the ``budget`` in
    cost units and the ``exponent`` λ of its cost-adjusted rule (utility / cost**λ)."""

    costs: np.ndarray
    budget: float
    exponent: float = 1.0

    def divisor(self) -> np.ndarray:
        """cost**exponent per pool row (1 where the exponent is 0). O(n)."""
        return np.ones_like(self.costs) if self.exponent == 0 else self.costs**self.exponent

    def unaffordable(self, spent: float) -> np.ndarray:
        """Boolean per pool row: its cost no longer fits in what ``spent`` leaves. O(n)."""
        return self.costs > (self.budget - spent)


def cost_spec(
    cost_col: str | None,
    budget_cost: float | str | None,
    budget: object,
    *,
    cost_exponent: float = 1.0,
    cost_mode: str = "ratio",
    cost_lambda: float = 1.0,
    min_cost: float | None = None,
) -> tuple[CostSpec | None, object]:
    """The cost options checked (usage errors, exit 2) and the count budget left: returns
    (spec or None, ``budget``). ``budget`` may be ``"cost:X"`` (the same as ``budget_cost=X``);
    a count budget together with a cost budget, a cost budget without a cost column, or cost
    modifiers without a cost budget are usage errors. O(1)."""
    given_as = None
    if isinstance(budget, str) and budget.strip().lower().startswith("cost:"):
        if budget_cost is not None:
            raise SelectkitUsageError(
                f"the cost budget is given twice ({option('budget', budget)} and "
                f"{option('budget_cost', budget_cost)}); give one"
            )
        given_as = option("budget", budget.strip())
        budget_cost, budget = budget.strip()[5:], None
    given = {
        "cost_col": cost_col,
        "budget_cost": budget_cost,
        "cost_exponent": cost_exponent,
        "cost_mode": cost_mode,
        "cost_lambda": cost_lambda,
        "min_cost": min_cost,
    }
    checked = check_params(given, COST_PARAMS, owner="the cost options", what="option")
    if checked["budget_cost"] is not None and budget is not None:
        raise SelectkitUsageError(
            f"{option('budget')} and {option('budget_cost')} exclude each other: give a count "
            "budget or a cost budget"
        )
    if checked["cost_col"] is None:
        if checked["budget_cost"] is not None:
            raise SelectkitUsageError(
                f"a cost budget ({option('budget_cost')}) needs the cost column: add "
                f"{option('cost_col', 'NAME')} (the column of per-row costs)"
            )
        if checked["min_cost"] is not None:
            raise SelectkitUsageError(
                f"{option('min_cost')} floors the costs of {option('cost_col')}; add it or drop it"
            )
        unused = [name for name, default in (("cost_exponent", 1.0), ("cost_mode", "ratio"),
                                             ("cost_lambda", 1.0)) if checked[name] != default]  # fmt: skip
        if unused:
            raise SelectkitUsageError(
                f"{option(unused[0])} weighs the costs of {option('cost_col')}; add it or drop "
                f"{option(unused[0])}"
            )
        return None, budget
    if checked["cost_mode"] == "ratio" and checked["cost_lambda"] != 1.0:
        raise SelectkitUsageError(
            f"{option('cost_lambda')} weighs the cost in {option('cost_mode', 'penalty')}; add "
            f"that or drop {option('cost_lambda')} (the ratio mode uses {option('cost_exponent')})"
        )
    if checked["cost_mode"] == "penalty" and checked["cost_exponent"] != 1.0:
        raise SelectkitUsageError(
            f"{option('cost_exponent')} is the ratio mode's; {option('cost_mode', 'penalty')} "
            f"uses {option('cost_lambda')}: drop one"
        )
    spec = CostSpec(
        column=checked["cost_col"],
        budget=checked["budget_cost"],
        exponent=checked["cost_exponent"],
        mode=checked["cost_mode"],
        lam=checked["cost_lambda"],
        min_cost=checked["min_cost"],
        given_as=given_as,
    )
    return spec, budget


def read_costs(frame: pl.DataFrame, spec: CostSpec, rows: np.ndarray, where: str, id_col: str):
    """Float64 cost per row of ``frame`` (inf outside ``rows``: never affordable), floored at
    ``spec.min_cost``.

    Every row of ``rows`` (the selectable ones) must have a finite cost > 0: otherwise a data
    error naming ``where``, the column, the first bad row's id and the fix. O(n)."""
    name = spec.column
    if name not in frame.columns:
        shown = ", ".join(frame.columns[:12])
        raise SelectkitDataError(
            f"{where} has no cost column '{name}' (columns: {shown}); add it as another input "
            f"joined on the id, or name the cost column with {option('cost_col')}"
        )
    col = frame.get_column(name)
    if not (col.dtype.is_numeric() and col.dtype != pl.Boolean):
        raise SelectkitDataError(
            f"cost column '{name}' of {where} holds {col.dtype}, not numbers; give costs as "
            "numbers (seconds, tokens, money)"
        )
    values = col.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=True)
    picked = values[rows]
    bad = ~(np.isfinite(picked) & (picked > 0))
    if bad.any():
        first = int(rows[np.flatnonzero(bad)[0]])
        value = values[first]
        kind = "missing" if np.isnan(value) else f"{value:g}"
        raise SelectkitDataError(
            f"cost column '{name}' of {where} has {int(bad.sum())} missing, zero, negative or "
            f"infinite costs among the selectable rows (first: id {frame.get_column(id_col)[first]!r}"
            f" has {kind}); every cost must be a finite number > 0: fill or drop those rows, or "
            "clip predicted costs to a positive floor"
        )
    out = np.full(values.size, np.inf)
    out[rows] = values[rows]
    if spec.min_cost is not None:
        out[rows] = np.maximum(out[rows], spec.min_cost)
    return out


def affordable_count(costs: np.ndarray, budget: float) -> int:
    """How many rows at most fit in ``budget``: the count of the cheapest ones. O(n log n)."""
    if costs.size == 0:
        return 0
    return int(np.searchsorted(np.cumsum(np.sort(costs)), budget, side="right"))


def normalised_utility(scores: np.ndarray) -> np.ndarray:
    """Scores rank-normalised to (0, 1]: average rank / n (ties share a value, the best row gets
    1), so entropy and margin, which live on different scales, divide the same way. O(n log n)."""
    from scipy.stats import rankdata

    n = scores.size
    if n == 0:
        return np.empty(0)
    return rankdata(scores, method="average") / n


def adjusted_scores(utility: np.ndarray, costs: np.ndarray, spec: CostSpec) -> np.ndarray:
    """The cost-adjusted score of each row: ``u / c**exponent`` (ratio) or ``u - lam * c /
    median(c)`` (penalty), ``u`` the normalised utility. O(n)."""
    if spec.mode == "ratio":
        return utility if spec.exponent == 0 else utility / costs**spec.exponent
    return utility - spec.lam * costs / float(np.median(costs))


def fill_in_order(costs: np.ndarray, budget: float) -> np.ndarray:
    """Positions of ``costs`` (rows in pick order) taken while they fit: each row is kept when its
    cost fits in what is left, skipped otherwise (so cheaper later rows still fill the rest).
    The kept costs sum to at most ``budget``. Vectorised: each step keeps a prefix by a cumulative
    sum, drops the first row that does not fit and every row dearer than what is left; O(n) per
    step, and the steps end when nothing fits."""
    pos = np.arange(costs.size)
    c = np.asarray(costs, dtype=np.float64)
    left = float(budget)
    kept: list[np.ndarray] = []
    while c.size:
        fits = c <= left
        pos, c = pos[fits], c[fits]
        if not c.size:
            break
        total = np.cumsum(c)
        m = int(np.searchsorted(total, left, side="right"))  # >= 1: the first row fits
        kept.append(pos[:m])
        left = float(budget) - float(np.sum(costs[np.concatenate(kept)]))
        pos, c = pos[m + 1 :], c[m + 1 :]
    out = np.concatenate(kept) if kept else np.empty(0, dtype=np.int64)
    while out.size and float(np.cumsum(costs[out])[-1]) > budget:  # rounding guard, never hit
        out = out[:-1]
    return out.astype(np.int64)


def fill_in_order_ranged(
    costs: np.ndarray, budget: float, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """``fill_in_order`` under group ranges: a first walk over the pick order takes rows of groups
    still below their min (while they fit), a second one the rest, each group up to its max.
    Returns the kept positions in pick order. O(len(costs)) Python steps over the picks."""
    counts = np.zeros(lo.size, dtype=np.int64)
    taken = np.zeros(costs.size, dtype=bool)
    left = float(budget)
    cs, gs = costs.tolist(), groups.tolist()
    for first_pass in (True, False):
        for i, (c, g) in enumerate(zip(cs, gs, strict=True)):
            if taken[i] or c > left or counts[g] >= hi[g]:
                continue
            if first_pass and counts[g] >= lo[g]:
                continue
            taken[i] = True
            counts[g] += 1
            left -= c
    out = np.flatnonzero(taken)
    while out.size and float(np.cumsum(costs[out])[-1]) > budget:
        out = out[:-1]
    return out


def knapsack_fill(utility: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """The greedy knapsack over rows already in rank order: ``fill_in_order``, then the best
    single affordable row (most utility; the earliest on ties) instead when it alone beats the
    batch. With rows ranked by utility / cost this is the ½-approximation of the 0/1 knapsack
    max Σu s.t. Σc ≤ budget. Returns the kept positions. O(n) per fill step."""
    kept = fill_in_order(costs, budget)
    fits = np.flatnonzero(costs <= budget)
    if fits.size:
        best = int(fits[np.argmax(utility[fits])])
        if utility[best] > float(utility[kept].sum()):
            return np.array([best], dtype=np.int64)
    return kept


def no_row_fits(costs: np.ndarray, budget: float, spec: CostSpec) -> SelectkitDataError:
    """The error for a cost budget below every selectable row's cost."""
    return SelectkitDataError(
        f"the cost budget {budget:g} ({spec.budget_flag}) is below the cheapest selectable "
        f"row's cost {float(np.min(costs)):g} (column '{spec.column}'); raise the budget"
    )


def with_costs(manifest: pl.DataFrame, costs: np.ndarray) -> pl.DataFrame:
    """``manifest`` with ``cost`` (each pick's, in pick order) and ``cumulative_cost``. O(k)."""
    return manifest.with_columns(
        pl.Series("cost", costs, dtype=pl.Float64),
        pl.Series("cumulative_cost", np.cumsum(costs), dtype=pl.Float64),
    )
