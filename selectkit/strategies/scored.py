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
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import polars as pl

from selectkit.console import warn
from selectkit.errors import SelectkitDataError, SelectkitError, SelectkitUsageError, option
from selectkit.linalg import unit_rows
from selectkit.params import check_params
from selectkit.pool import Columns, Pool
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
            shards=ShardedTopK(scorer, tuple(needs)) if row_local else None,
        )(run)
        return scorer

    return decorate


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


# ---------------------------------------------------------------------------------------------
# Per-shard scoring (``select --engine``): each shard scores its own unlabelled rows and keeps
# its top ``budget`` by (score desc, id asc); the driver merges the shards' candidates with the
# same order. That order is total (ids are unique), so the global top-k is always among the
# shards' top-k and the merge is exact: the same picks, scores and ranks as ``acquire`` on the
# whole pool, whatever the engine or the sharding.


@dataclass(frozen=True)
class _ScoreJob:
    """What every shard kernel is told (picklable: it travels to the workers)."""

    strategy: str
    scorer: Scorer
    params: dict[str, Any]
    needs: tuple[str, ...]
    columns: Columns
    read: tuple[str, ...]  # the column names each shard reads (those it lacks are skipped)
    k: int | None  # candidates each shard keeps; None = only count the selectable rows
    labelled_col: str | None
    use_labels: bool
    labels_as_data: bool
    input_format: str | None
    fingerprint: bool  # hash the shard's file in the kernel (it is the whole file)


@dataclass
class _ShardTop:
    """One shard's part of the reduction: its row counts and its top-k candidates."""

    path: str
    format: str
    rows: int
    selectable: int
    picks: pl.DataFrame  # id, score[, cluster]
    fingerprint: str | None = None


def _shard_frame(shard: Any, job: _ScoreJob) -> tuple[pl.DataFrame, str]:
    """The shard's rows (only ``job.read`` columns) with checked ids, and its format: the
    checks ``read_table`` makes, on the shard. Row-number ids count from ``shard.row0``."""
    from selectkit.engine.shards import shard_batches
    from selectkit.io.ids import check_row_number_ids, ensure_ids, integer_ids_if_canonical
    from selectkit.io.streams import where_of

    where = where_of(shard.path)
    id_col = job.columns.id
    frames = list(
        shard_batches(shard, columns=list(job.read), input_format=job.input_format, id_col=id_col)
    )
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=True)
    if frame.height == 0:
        raise SelectkitDataError(f"{where} has no rows; give a table with at least one row")
    fmt = _format_of(shard.path, job.input_format)
    if fmt == "csv":
        frame = integer_ids_if_canonical(frame, id_col)
    if id_col not in frame.columns:
        check_row_number_ids(id_col, where, frame.columns)
        start = shard.row0 or 0
        ids = pl.Series(id_col, np.arange(start, start + frame.height, dtype=np.int64))
        frame = frame.with_columns(ids).select([id_col, *frame.columns])
    frame = ensure_ids(frame, id_col, where)
    return frame, fmt


def _format_of(path: str, input_format: str | None) -> str:
    """The table format of ``path``: its extension, else the bytes it starts with."""
    from selectkit.io.formats import detect_format, known_suffix
    from selectkit.io.streams import Input, sniff_format

    if input_format is not None or known_suffix(path):
        return detect_format(path, input_format)
    with Input(path) as inp:
        return sniff_format(inp.head()) or "jsonl"


def score_shard(shard: Any, job: _ScoreJob) -> _ShardTop:
    """Kernel: one shard's selectable-row count and (unless ``job.k`` is None) its ``k`` best
    rows by (score desc, id asc). Cost: reading the shard's ``job.read`` columns plus the
    scorer's on its rows; memory O(shard rows x those columns)."""
    from selectkit.io.tables import Source, fingerprint_file

    frame, fmt = _shard_frame(shard, job)
    pool = Pool(
        frame=frame,
        columns=job.columns,
        sources=[Source(shard.path, fmt, frame.height)],
        use_labels=job.use_labels,
    ).marking_labelled(job.labelled_col, labels_as_data=job.labels_as_data)
    pool.require(job.needs, f"strategy '{job.strategy}'")
    cluster = job.columns.cluster
    if cluster in frame.columns:
        pool.cluster_codes(cluster)  # validated as ``select`` does, before any work
    candidates = np.flatnonzero(~pool.labelled_mask).astype(np.int64)
    picks = pl.DataFrame()
    if job.k is not None and candidates.size:
        scores = _checked(job.scorer(pool, candidates, **job.params), candidates.size)
        keep = top_k(pool, candidates, scores, min(job.k, candidates.size))
        rows = candidates[keep]
        picks = pl.DataFrame({"id": pool.ids.gather(rows), "score": scores[keep]})
        if cluster in frame.columns:
            picks = picks.with_columns(frame.get_column(cluster).gather(rows).alias("cluster"))
    return _ShardTop(
        path=shard.path,
        format=fmt,
        rows=frame.height,
        selectable=int(candidates.size),
        picks=picks,
        fingerprint=fingerprint_file(shard.path) if job.fingerprint else None,
    )


def _count_budget(budget: int | float | str | None) -> int | None:
    """The budget's row count when it is a count (then each shard keeps that many candidates
    in one pass); None for a fraction or percentage, whose count needs the pool's size first."""
    if isinstance(budget, int) and not isinstance(budget, bool):
        return budget
    if isinstance(budget, str) and budget.strip().isdigit():
        return int(budget.strip())
    return None


def _columns_of(path: str, input_format: str | None) -> list[str] | None:
    """The column names of a table from its schema or first record (cheap: no full read), or
    None for inputs without named columns (.npy) or that cannot be peeked at."""
    import csv
    import io as _io
    import json

    import pyarrow.parquet as pq

    from selectkit.io.streams import Input

    try:
        fmt = _format_of(path, input_format)
        if fmt == "parquet":
            return list(pq.read_schema(path).names)
        if fmt not in ("jsonl", "csv"):
            return None
        with Input(path) as inp:
            line = inp.stream.readline(1 << 24).decode("utf-8", errors="replace")
        if fmt == "csv":
            return next(csv.reader(_io.StringIO(line)), None)
        first = json.loads(line)
        return list(first) if isinstance(first, dict) else None
    except (OSError, ValueError, StopIteration):
        return None  # the driver path reads it and names what is wrong


class ShardedTopK:
    """The shard plan of a row-local scored strategy: per-shard scores and top-k, merged on the
    driver (ties by id). Declines (the pool is read on the driver) when a call needs the whole
    pool: the stochastic or AnchorAL modifiers, the coverage metrics (embeddings in the input
    and ``metrics`` on), several inputs joined on id, stdin, or .npy input."""

    name = "per-shard scores, top-k merged on the driver"

    def __init__(self, scorer: Scorer, needs: tuple[str, ...]) -> None:
        self.scorer = scorer
        self.needs = needs

    def run(self, request: Any, engine: Any) -> Any:
        """The selection of ``request`` from per-shard kernels on ``engine``, or None when it
        needs the whole pool. Cost: one pass over the shards (two for a fractional budget:
        the first counts the selectable rows), the scorer's work, and O(budget x shards)
        candidates on the driver."""
        from selectkit.budget import parse_budget
        from selectkit.engine.shards import plan_shards
        from selectkit.pool import check_named_columns
        from selectkit.strategies.inputs import ShardedPick

        files = request.files
        if request.modifiers.active or len(files.paths) != 1 or str(files.paths[0]) == "-":
            return None
        given = str(files.paths[0])
        plan = plan_shards([given], input_format=files.input_format)
        present = _columns_of(plan[0].path, files.input_format) if plan else None
        cols = files.columns
        if present is None or (request.metrics and cols.embedding in present):
            return None
        if cols.id not in present and len(plan) > 1 and any(s.row0 is None for s in plan):
            return None  # row-number ids need every shard's first row number
        check_named_columns(present, cols, [s.path for s in plan])
        roles = {*self.needs, "id", "label", "cluster"}
        read = tuple(dict.fromkeys([cols.name(r) for r in Columns.roles() if r in roles]))
        if request.labelled_col is not None:
            read = (*read, request.labelled_col)
        whole_files = all(s.rows is None for s in plan)
        job = _ScoreJob(
            strategy=request.strategy,
            scorer=self.scorer,
            params=dict(request.params),
            needs=self.needs,
            columns=cols,
            read=read,
            k=None,
            labelled_col=request.labelled_col,
            use_labels=files.use_labels,
            labels_as_data=request.labels_as_data,
            input_format=files.input_format,
            fingerprint=whole_files,
        )
        count = _count_budget(request.budget)
        if count is None:  # a fraction of the selectable rows: count them first
            counted = list(engine.map(score_shard, plan, shared=job, label="count"))
            count = parse_budget(request.budget, _selectable(counted, given, job))
        tops = list(
            engine.map(
                score_shard,
                plan,
                shared=_replace(job, k=count),
                label=f"score ({request.strategy})",
                total=len(plan),
            )
        )
        selectable = _selectable(tops, given, job)
        count = parse_budget(request.budget, selectable)
        manifest = _merge_top(tops, count)
        return ShardedPick(
            manifest=manifest,
            pool_rows=sum(t.rows for t in tops),
            selectable_rows=selectable,
            inputs=_sources(tops, given, plan),
        )


def _replace(job: _ScoreJob, **changes: Any) -> _ScoreJob:
    from dataclasses import replace

    return replace(job, **changes)


def _selectable(tops: list[_ShardTop], given: str, job: _ScoreJob) -> int:
    """The pool's selectable rows; the all-labelled error of ``Pool.candidates`` when none."""
    selectable = sum(t.selectable for t in tops)
    if selectable == 0:
        rows = sum(t.rows for t in tops)
        name = job.labelled_col or job.columns.label
        raise SelectkitDataError(
            f"every row of '{given}' is already labelled: column '{name}' is non-null in all "
            f'{rows} rows (null = unlabelled; -1 and "" are labels), so nothing is left to '
            f"select; name the column that marks the rows already labelled "
            f"({option('labelled_col')}), or ignore labels ("
            + option(
                "label_col",
                "none",
                python="use_labels=False when loading: load_pool(..., use_labels=False)",
            )
            + ")"
        )
    return selectable


def _merge_top(tops: list[_ShardTop], count: int) -> pl.DataFrame:
    """The manifest of the ``count`` best candidates over all shards (score desc, id asc): the
    order ``top_k`` uses, so the same rows and ranks as on the whole pool. O(c log c) for the
    c = budget x shards candidates."""
    frames = [t.picks for t in tops if t.picks.height]
    cands = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    dup = cands.get_column("id").is_duplicated()
    if dup.any():
        first = cands.get_column("id").filter(dup)[0]
        where = ", ".join(f"'{t.path}'" for t in tops if (t.picks.get_column("id") == first).any())
        raise SelectkitDataError(
            f"id {first!r} occurs in more than one shard ({where}); give each row a unique id"
        )
    id_rank = cands.get_column("id").arg_sort().to_numpy()
    ranks = np.empty(cands.height, dtype=np.int64)
    ranks[id_rank] = np.arange(cands.height)
    scores = cands.get_column("score").to_numpy()
    order = np.lexsort((ranks, -scores))[:count]
    best = cands[order]
    manifest = pl.DataFrame(
        {
            "id": best.get_column("id"),
            "rank": np.arange(count, dtype=np.int64),
            "score": best.get_column("score").cast(pl.Float64).fill_nan(None),
            "weight": pl.Series(np.ones(count), dtype=pl.Float64),
        }
    )
    if "cluster" in best.columns:
        manifest = manifest.with_columns(best.get_column("cluster").cast(pl.Int32))
    return manifest


def _sources(tops: list[_ShardTop], given: str, plan: list[Any]) -> list[dict[str, Any]]:
    """The inputs record: one ``Source`` per file read (rows summed over its shards), as
    ``read_table`` records it; the path as given when it named one file."""
    from selectkit.io.tables import Source, fingerprint_file

    by_path: dict[str, Source] = {}
    for top in tops:
        src = by_path.setdefault(top.path, Source(top.path, top.format, 0, top.fingerprint))
        src.rows += top.rows
    for src in by_path.values():
        if src.fingerprint is None:
            src.fingerprint = fingerprint_file(src.path)
    out = [s.as_dict() for s in by_path.values()]
    if len(out) == 1 and len(plan) >= 1 and plan[0].path != given and Path(given).is_file():
        out[0]["path"] = given
    return out
