"""Scored strategies: a per-row acquisition score, then top-k, and the modifiers that apply to any.

A scored strategy is a scorer ``fn(pool, rows, **params) -> scores``: one float per row of
``rows`` (pool row indices), higher = acquire first. ``register_scored_strategy`` turns it into a
registered strategy whose default pick is the top ``budget`` scores, ties broken by id (ascending,
stable), so that two tools given the same probabilities pick the same batch.

Two modifiers work on every scored strategy (``Acquisition``):

- ``stochastic`` (Kirsch et al., TMLR 2023): instead of the top-k, sample k rows without
  replacement with p_i ∝ exp(β s_i) (``softmax``), s_i^β (``power``; needs s ≥ 0) or r_i^(-β)
  (``softrank``; r = 1 for the best row). Each is exact Gumbel-top-k on β s, β log s or
  -β log r, one O(n) draw plus a partial sort. β → ∞ gives back the top-k.
- ``subpool='anchoral'`` (Lesci & Vlachos, NAACL 2024): score only a subpool of the unlabelled
  rows near per-class anchors (see ``anchoral_subpool``); when the subpool holds fewer rows than
  the budget, the rest come from the remaining rows in score order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from selectkit.console import warn
from selectkit.errors import SelectkitError, SelectkitUsageError, option
from selectkit.linalg import unit_rows
from selectkit.params import check_params
from selectkit.pool import Pool
from selectkit.strategies.base import Param, Selection, register_strategy

STOCHASTIC = ("softmax", "power", "softrank")
SUBPOOLS = ("anchoral",)
CHUNK_ROWS = 1 << 16

Scorer = Callable[..., np.ndarray]


# The modifiers' declarations: the same vocabulary (and checks) as a strategy's parameters.
ACQUISITION_PARAMS = {
    "stochastic": Param(
        str, None, "sample the batch instead of the top-k: softmax, power or softrank", STOCHASTIC
    ),
    "coldness": Param(
        float,
        1.0,
        "coldness of the stochastic sampling (larger: closer to top-k)",
        low=0.0,
        low_open=True,
    ),
    "subpool": Param(str, None, "score only a subpool near labelled anchors: anchoral", SUBPOOLS),
    "anchors": Param(int, 10, "AnchorAL: anchors per class (A)", low=1),
    "neighbours": Param(int, 50, "AnchorAL: unlabelled neighbours retrieved per anchor (K)", low=1),
    "subpool_size": Param(int, 10_000, "AnchorAL: rows kept in the subpool (M)", low=1),
}


@dataclass(frozen=True)
class Acquisition:
    """Modifiers of a scored strategy's pick (defaults: plain top-k on the whole pool).

    Each field is declared in ``ACQUISITION_PARAMS`` and checked there (a usage error otherwise).
    ``stochastic``: None, softmax, power or softrank; ``coldness``: its coldness β (> 0; larger
    is closer to top-k; recorded as ``coldness``). ``subpool``: None or anchoral; ``anchors``:
    anchors per class (A, default 10 as in the official AnchorAL code); ``neighbours``:
    unlabelled neighbours retrieved per anchor (K, 50); ``subpool_size``: rows kept in the
    subpool (M, 10,000).
    """

    stochastic: str | None = None
    coldness: float = 1.0
    subpool: str | None = None
    anchors: int = 10
    neighbours: int = 50
    subpool_size: int = 10_000

    def __post_init__(self) -> None:
        given = {name: getattr(self, name) for name in ACQUISITION_PARAMS}
        checked = check_params(given, ACQUISITION_PARAMS, owner="the acquisition", what="modifier")
        for name, value in checked.items():  # typed values ("3" -> 3) on a frozen dataclass
            object.__setattr__(self, name, value)

    @property
    def active(self) -> bool:
        return self.stochastic is not None or self.subpool is not None

    def describe(self) -> dict[str, Any]:
        """The modifiers in effect, for provenance."""
        out: dict[str, Any] = {}
        if self.stochastic:
            out.update(stochastic=self.stochastic, coldness=self.coldness)
        if self.subpool:
            out.update(
                subpool=self.subpool,
                anchors=self.anchors,
                neighbours=self.neighbours,
                subpool_size=self.subpool_size,
            )
        return out


def register_scored_strategy(
    name: str,
    *,
    summary: str,
    needs: tuple[str, ...],
    optional: tuple[str, ...] = (),
    params: dict[str, Param] | None = None,
    cost: str = "",
    row_local: bool = False,
) -> Callable[[Scorer], Scorer]:
    """Decorator registering scorer ``fn(pool, rows, **params) -> scores`` (higher = acquire
    first) as strategy ``name``; the modifiers of ``Acquisition`` then apply to it.

    ``row_local=True`` declares that each row's score depends on that row's columns alone (not
    on the other rows): the strategy then runs per shard on an engine (``ShardedTopK``: each
    shard's top-k merged on the driver). Leave it False for a scorer that looks across rows."""

    def decorate(scorer: Scorer) -> Scorer:
        def run(pool: Pool, budget: int, rng: np.random.Generator, **kw: Any) -> Selection:
            return acquire(pool, budget, rng, scorer, kw, Acquisition())

        run.__module__ = scorer.__module__  # a plug-in's scorer stays a plug-in strategy
        run.__doc__ = scorer.__doc__
        register_strategy(
            name,
            summary=summary,
            needs=needs,
            optional=optional,
            params=params,
            cost=cost,
            scorer=scorer,
            shards=sharded_top_k(scorer, tuple(needs)) if row_local else None,
        )(run)
        return scorer

    return decorate


def sharded_top_k(scorer: Scorer, needs: tuple[str, ...]) -> Any:
    """The shard plan of a row-local scorer (``selectkit.strategies.sharded.ShardedTopK``)."""
    from selectkit.strategies.sharded import ShardedTopK  # it builds on this module

    return ShardedTopK(scorer, needs)


def acquire(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    scorer: Scorer,
    params: dict[str, Any],
    mods: Acquisition,
) -> Selection:
    """Score the candidates (or the AnchorAL subpool) and pick ``budget`` rows: top-k with ties
    broken by id, or the stochastic sample. Scores in the selection are the acquisition scores.
    Cost: the scorer's plus O(n) for the pick (O(n log n) for softrank)."""
    candidates = pool.candidates
    metrics: dict[str, Any] = {}
    first = candidates
    if mods.subpool == "anchoral":
        sub = anchoral_subpool(pool, rng, mods)
        if sub is not None:
            first = sub
            metrics["subpool_rows"] = int(sub.size)
    scores = _checked(scorer(pool, first, **params), first.size)
    take = min(budget, first.size)
    picks = pick(pool, first, scores, take, rng, mods)
    idx, sc = [first[picks]], [scores[picks]]
    if take < budget:  # the subpool was too small: the rest of the pool, in score order
        rest = np.setdiff1d(candidates, first, assume_unique=True)
        rest_scores = _checked(scorer(pool, rest, **params), rest.size)
        more = pick(pool, rest, rest_scores, budget - take, rng, mods)
        idx.append(rest[more])
        sc.append(rest_scores[more])
    return Selection(indices=np.concatenate(idx), scores=np.concatenate(sc), metrics=metrics)


def _checked(scores: np.ndarray, size: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (size,):
        raise SelectkitError(f"a scorer returned {scores.shape} scores for {size} rows")
    if not np.isfinite(scores).all():
        raise SelectkitError("a scorer returned NaN or infinite scores; check its input columns")
    return scores


def id_ranks(pool: Pool, rows: np.ndarray) -> np.ndarray:
    """Rank (0 = smallest) of each row's id among ``rows``: the tie-breaker; O(m log m)."""
    order = pool.ids.gather(rows).arg_sort().to_numpy()
    ranks = np.empty(rows.size, dtype=np.int64)
    ranks[order] = np.arange(rows.size)
    return ranks


def top_k(pool: Pool, rows: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Positions (into ``rows``) of the ``k`` largest ``keys``, largest first, ties by ascending
    id. O(m) selection plus a sort of the k (and any rows tied with the k-th)."""
    if k >= keys.size:
        cut = np.arange(keys.size)
    else:
        kth = np.partition(-keys, k - 1)[k - 1]
        cut = np.flatnonzero(-keys <= kth)  # every row tied with the k-th competes on id
    order = np.lexsort((id_ranks(pool, rows[cut]), -keys[cut]))
    return cut[order[:k]]


def pick(
    pool: Pool,
    rows: np.ndarray,
    scores: np.ndarray,
    k: int,
    rng: np.random.Generator,
    mods: Acquisition,
) -> np.ndarray:
    """Positions of the ``k`` rows picked from ``rows`` by ``scores`` under the modifiers."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if mods.stochastic is None:
        return top_k(pool, rows, scores, k)
    if mods.stochastic == "softmax":
        keys = mods.coldness * scores
    elif mods.stochastic == "power":
        if (scores < 0).any():
            raise SelectkitUsageError(
                f"{option('stochastic', 'power')} needs non-negative scores; use softmax or "
                "softrank"
            )
        with np.errstate(divide="ignore"):
            keys = mods.coldness * np.log(scores)  # a zero score gets -inf: drawn only when needed
    else:  # softrank: rank 1 = the best row in the deterministic order
        order = top_k(pool, rows, scores, scores.size)
        rank = np.empty(scores.size, dtype=np.float64)
        rank[order] = np.arange(1, scores.size + 1)
        keys = -mods.coldness * np.log(rank)
    keys = keys + rng.gumbel(size=keys.size)  # Gumbel-top-k = sampling without replacement
    return top_k(pool, rows, keys, k)


def anchoral_subpool(pool: Pool, rng: np.random.Generator, mods: Acquisition) -> np.ndarray | None:
    """AnchorAL's subpool (ascending row indices), or None when no row is labelled (no anchors).

    Per class, up to ``anchors`` labelled rows are chosen as anchors (all of them when fewer, else
    k-means++ D² sampling among the class's rows, cosine geometry); each anchor retrieves its
    ``neighbours`` most cosine-similar unlabelled rows (exact faiss search, chunked over the
    pool); a retrieved row scores the mean similarity over the anchors that retrieved it; the
    ``subpool_size`` best rows (ties by id) form the subpool. Cost O(n d A C) for the search with
    O(chunk A C) extra memory, never a normalised copy of the pool.
    """
    from selectkit.cluster.seeding import seed_kmeanspp

    pool.require(["embedding"], option("subpool", "anchoral"))
    labelled = np.flatnonzero(pool.labelled_mask)
    if labelled.size == 0:
        warn(
            f"{option('subpool', 'anchoral')}: no labelled rows to anchor on; scoring the whole pool"
        )
        return None
    x = pool.embeddings
    labels = pool.frame.get_column(pool.columns.label).gather(labelled)
    anchors = []
    for value in labels.unique().sort().to_list():
        rows = labelled[(labels == value).to_numpy()]
        if rows.size > mods.anchors:
            chosen = seed_kmeanspp(unit_rows(x[rows]), mods.anchors, rng).indices
            rows = np.sort(rows[chosen])
        anchors.append(rows)
    queries = unit_rows(x[np.concatenate(anchors)])
    candidates = pool.candidates
    k = min(mods.neighbours, candidates.size)
    best_sim = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_row = np.empty((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, candidates.size, CHUNK_ROWS):
        rows = candidates[start : start + CHUNK_ROWS]
        block = unit_rows(x[rows])
        sim, pos = faiss.knn(queries, block, min(k, rows.size), metric=faiss.METRIC_INNER_PRODUCT)
        best_sim = np.concatenate([best_sim, sim], axis=1)
        best_row = np.concatenate([best_row, rows[pos]], axis=1)
        if best_sim.shape[1] > k:  # keep each anchor's k best so far (ties: lower row first)
            keep = np.lexsort((best_row, -best_sim), axis=1)[:, :k]
            best_sim = np.take_along_axis(best_sim, keep, axis=1)
            best_row = np.take_along_axis(best_row, keep, axis=1)
    hit_rows, inverse = np.unique(best_row.ravel(), return_inverse=True)
    mean_sim = np.bincount(inverse, weights=best_sim.ravel().astype(np.float64)) / np.bincount(
        inverse
    )
    keep = top_k(pool, hit_rows, mean_sim, min(mods.subpool_size, hit_rows.size))
    return np.sort(hit_rows[keep])
