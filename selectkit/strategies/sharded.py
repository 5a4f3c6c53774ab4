"""Per-shard scoring on an engine (``select --engine``): the shard plan of row-local scored
strategies (least-confidence, margin, entropy, bald).

Each shard scores its own unlabelled rows and keeps its top ``budget`` by (score desc, id asc);
the driver merges the shards' candidates in the same order. That order is total (ids are
unique), so the pool's top ``budget`` is always among the shards' and the merge is exact: the
same picks, scores and ranks as ``acquire`` on the whole pool, whatever the engine or sharding.

Several inputs joined on id are joined shard by shard when they are sharded alike (shard i of
every input holds the ids of shard i of the first, as ``cluster``'s assignments of ``emb/``
do); when any shard pair does not line up, the whole pool is read on the driver instead, which
joins across shards (or names the ids that are missing).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, option
from selectkit.pool import Columns
from selectkit.rng import id_hashes
from selectkit.strategies.scored import Scorer, _checked, top_k


@dataclass(frozen=True)
class JoinedShard:
    """Shard ``index`` of every input (``shards``, the first one's rows fix the pool's rows);
    ``key`` is the first one's, so an engine error names it."""

    index: int
    key: str
    shards: tuple[Any, ...]


@dataclass(frozen=True)
class _ScoreJob:
    """What every shard kernel is told (picklable: it travels to the workers)."""

    strategy: str
    scorer: Scorer
    params: dict[str, Any]
    needs: tuple[str, ...]
    columns: Columns
    reads: tuple[tuple[str, ...], ...]  # per input: the columns its shards are read for
    k: int | None  # candidates each shard keeps; None = only count the selectable rows
    labelled_col: str | None
    use_labels: bool
    labels_as_data: bool
    input_format: str | None
    fingerprint: bool  # hash the shards' files in the kernel (each is a whole file)


@dataclass
class _ShardTop:
    """One shard's part of the reduction: what it read, its row counts, its candidates;
    ``aligned`` is False when its inputs' shards do not hold the same ids."""

    files: list[tuple[str, str, int, str | None]]  # (path, format, rows, fingerprint)
    rows: int
    selectable: int
    picks: pl.DataFrame = field(default_factory=pl.DataFrame)  # id, score[, cluster]
    aligned: bool = True
    #: id_hashes of every row: an id repeated across shards is refused, as on the whole pool
    hashes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))


def _format_of(path: str, input_format: str | None) -> str:
    """The table format of ``path``: its extension, else the bytes it starts with."""
    from selectkit.io.formats import detect_format, known_suffix
    from selectkit.io.streams import Input, sniff_format

    if input_format is not None or known_suffix(path):
        return detect_format(path, input_format)
    with Input(path) as inp:
        return sniff_format(inp.head()) or "jsonl"


def _shard_table(shard: Any, columns: tuple[str, ...], job: _ScoreJob) -> Any:
    """The shard's rows (only ``columns``) as a ``Table`` with checked ids: the checks
    ``read_table`` makes, on the shard. Row-number ids count from ``shard.row0``."""
    from selectkit.engine.shards import shard_batches
    from selectkit.io.ids import check_row_number_ids, ensure_ids, integer_ids_if_canonical
    from selectkit.io.streams import where_of
    from selectkit.io.tables import Source, Table, fingerprint_file

    where = where_of(shard.path)
    id_col = job.columns.id
    batches = shard_batches(
        shard, columns=list(columns), input_format=job.input_format, id_col=id_col
    )
    frames = list(batches)
    if not frames or sum(f.height for f in frames) == 0:
        raise SelectkitDataError(f"{where} has no rows; give a table with at least one row")
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical", rechunk=True)
    fmt = _format_of(shard.path, job.input_format)
    if fmt == "csv":
        frame = integer_ids_if_canonical(frame, id_col)
    if id_col not in frame.columns:
        check_row_number_ids(id_col, where, frame.columns)
        start = shard.row0 or 0
        ids = pl.Series(id_col, np.arange(start, start + frame.height, dtype=np.int64))
        frame = frame.with_columns(ids).select([id_col, *frame.columns])
    frame = ensure_ids(frame, id_col, where)
    fingerprint = fingerprint_file(shard.path) if job.fingerprint else None
    return Table(frame=frame, source=Source(shard.path, fmt, frame.height, fingerprint))


def score_shard(item: JoinedShard, job: _ScoreJob) -> _ShardTop:
    """Kernel: one shard's selectable-row count and (unless ``job.k`` is None) its ``k`` best
    rows by (score desc, id asc). Cost: reading the shard's needed columns (of every input)
    plus the scorer's work on its rows; memory O(shard rows x those columns)."""
    from selectkit.pool import join_tables

    tables = [_shard_table(s, cols, job) for s, cols in zip(item.shards, job.reads, strict=True)]
    files = [(t.source.path, t.source.format, t.height, t.source.fingerprint) for t in tables]
    try:
        pool = join_tables(tables, job.columns, use_labels=job.use_labels)
    except SelectkitDataError:
        if len(tables) == 1:
            raise
        return _ShardTop(files, tables[0].height, 0, aligned=False)  # the driver joins
    pool = pool.marking_labelled(job.labelled_col, labels_as_data=job.labels_as_data)
    pool.require(job.needs, f"strategy '{job.strategy}'")
    cluster = job.columns.cluster
    if cluster in pool.frame.columns:
        pool.cluster_codes(cluster)  # validated as ``select`` does, before any work
    candidates = np.flatnonzero(~pool.labelled_mask).astype(np.int64)
    top = _ShardTop(files, len(pool), int(candidates.size), hashes=id_hashes(pool.ids, 0))
    if job.k is not None and candidates.size:
        scores = _checked(job.scorer(pool, candidates, **job.params), candidates.size)
        keep = top_k(pool, candidates, scores, min(job.k, candidates.size))
        rows = candidates[keep]
        top.picks = pl.DataFrame({"id": pool.ids.gather(rows), "score": scores[keep]})
        if cluster in pool.frame.columns:
            values = pool.frame.get_column(cluster).gather(rows)
            top.picks = top.picks.with_columns(values.alias("cluster"))
    return top


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
    import io
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
            return next(csv.reader(io.StringIO(line)), None)
        first = json.loads(line)
        return list(first) if isinstance(first, dict) else None
    except (OSError, ValueError, StopIteration):
        return None  # the driver path reads it and names what is wrong


class ShardedTopK:
    """The shard plan of a row-local scored strategy: per-shard scores and top-k, merged on the
    driver (ties by id). Declines (the pool is read on the driver) when a call needs the whole
    pool: the stochastic or AnchorAL modifiers, the coverage metrics (embeddings in the input
    and ``metrics`` on), stdin or .npy input, inputs joined on id that are not sharded alike,
    or row-number ids whose shards' first row numbers are unknown."""

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
        from selectkit.strategies.inputs import ShardedPick

        planned = self._plan(request)
        if planned is None:
            return None
        parse_budget(request.budget, 1 << 53)  # a bad budget (0, -3, "lots"): before work
        items, job = planned
        count = _count_budget(request.budget)
        if count is None:  # a fraction of the selectable rows: count them first
            counted = list(engine.map(score_shard, items, shared=job, label="count"))
            if not all(t.aligned for t in counted):
                return None
            count = parse_budget(request.budget, _selectable(counted, request, job))
        tops = list(
            engine.map(
                score_shard,
                items,
                shared=replace(job, k=count),
                label=f"score ({request.strategy})",
                total=len(items),
            )
        )
        if not all(t.aligned for t in tops):
            return None
        _check_unique(tops, items, job, engine)
        selectable = _selectable(tops, request, job)
        count = parse_budget(request.budget, selectable)
        return ShardedPick(
            manifest=_merge_top(tops, count),
            pool_rows=sum(t.rows for t in tops),
            selectable_rows=selectable,
            inputs=_sources(tops, [str(p) for p in request.files.paths]),
        )

    def _plan(self, request: Any) -> tuple[list[JoinedShard], _ScoreJob] | None:
        """The joined shards and the kernels' job, or None when this call must read the pool
        on the driver. Cost: each input's shard plan (Parquet footers) and one peek at the
        first shard's columns."""
        from selectkit.console import warn
        from selectkit.engine.shards import plan_shards
        from selectkit.pool import check_named_columns

        files = request.files
        given = [str(p) for p in files.paths]
        if request.modifiers.active or "-" in given:
            return None
        plans = [plan_shards([p], input_format=files.input_format) for p in given]
        if not plans[0] or any(len(p) != len(plans[0]) for p in plans):
            return None
        peeks = [_columns_of(p[0].path, files.input_format) for p in plans]
        if any(cols is None for cols in peeks):
            return None
        cols = files.columns
        present = [c for cols_ in peeks for c in cols_]  # type: ignore[union-attr]
        if request.metrics and cols.embedding in present:
            return None  # the coverage metrics need every row's embedding in id order
        ids_everywhere = all(cols.id in p for p in peeks)  # type: ignore[operator]
        if len(plans) > 1 and not ids_everywhere:
            return None  # row-number ids of several tables: joined on the driver
        if not ids_everywhere and len(plans[0]) > 1 and any(s.row0 is None for s in plans[0]):
            return None  # row-number ids need every shard's first row number
        check_named_columns(list(dict.fromkeys(present)), cols, given)
        roles = {*self.needs, "id", "label", "cluster"}
        wanted = [cols.name(r) for r in Columns.roles() if r in roles and r != "id"]
        # the kernels read only these roles' columns: the others keep their default names, so
        # the kernel's join does not look for a renamed column it never read (checked above)
        default = Columns()
        kernel_cols = Columns(
            **{r: cols.name(r) if r in roles else default.name(r) for r in Columns.roles()}
        )
        if request.labelled_col is not None:
            wanted.append(request.labelled_col)
        reads, seen = [], set()
        for path, peek in zip(given, peeks, strict=True):
            mine = [c for c in dict.fromkeys(wanted) if c in peek and c not in seen]  # type: ignore[operator]
            dupes = [c for c in peek if c != cols.id and c in seen]  # type: ignore[union-attr]
            if dupes:  # what load_pool says when it joins these tables
                warn(f"column(s) {dupes} of '{path}' ignored; taken from an earlier input")
            seen.update(peek)  # type: ignore[arg-type]
            reads.append((cols.id, *mine))
        items = [
            JoinedShard(i, shards[0].key, tuple(shards))
            for i, shards in enumerate(zip(*plans, strict=True))
        ]
        job = _ScoreJob(
            strategy=request.strategy,
            scorer=self.scorer,
            params=dict(request.params),
            needs=self.needs,
            columns=kernel_cols,
            reads=tuple(reads),
            k=None,
            labelled_col=request.labelled_col,
            use_labels=files.use_labels,
            labels_as_data=request.labels_as_data,
            input_format=files.input_format,
            fingerprint=all(s.rows is None for p in plans for s in p),
        )
        return items, job


def _selectable(tops: list[_ShardTop], request: Any, job: _ScoreJob) -> int:
    """The pool's selectable rows; the all-labelled error of ``Pool.candidates`` when none."""
    selectable = sum(t.selectable for t in tops)
    if selectable == 0:
        rows = sum(t.rows for t in tops)
        name = job.labelled_col or job.columns.label
        where = "' + '".join(str(p) for p in request.files.paths)
        raise SelectkitDataError(
            f"every row of '{where}' is already labelled: column '{name}' is non-null in all "
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


def ids_hashed(item: JoinedShard, wanted: tuple[np.ndarray, _ScoreJob]) -> list[Any]:
    """Kernel: the ids of the shard whose hash is in ``wanted`` (to name a repeated id)."""
    hashes, job = wanted
    table = _shard_table(item.shards[0], (job.columns.id,), job)
    ids = table.frame.get_column(job.columns.id)
    return ids.filter(pl.Series(np.isin(id_hashes(ids, 0), hashes))).to_list()


def _check_unique(tops: list[_ShardTop], items: list, job: _ScoreJob, engine: Any) -> None:
    """Refuse an id that two shards hold (each shard checked its own): the driver keeps 8
    bytes per row and sorts them once; only a repeated hash sends the kernels back to find
    the id itself, so a hash collision is never reported as a duplicate."""
    if len(tops) < 2:
        return
    hashes = np.sort(np.concatenate([t.hashes for t in tops]))
    repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
    if not repeated.size:
        return
    seen: dict[Any, str] = {}
    for item, found in zip(
        items, engine.map(ids_hashed, items, shared=(repeated, job)), strict=True
    ):
        for value in found:
            if value in seen:
                raise SelectkitDataError(
                    f"id {value!r} occurs in more than one shard ('{seen[value]}', "
                    f"'{item.shards[0].path}'); give each row a unique id"
                )
            seen[value] = item.shards[0].path


def _merge_top(tops: list[_ShardTop], count: int) -> pl.DataFrame:
    """The manifest of the ``count`` best candidates over all shards (score desc, id asc): the
    order ``top_k`` uses, so the same rows and ranks as on the whole pool. O(c log c) for the
    c = budget x shards candidates."""
    frames = [t.picks for t in tops if t.picks.height]
    cands = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    ids = cands.get_column("id")
    dup = ids.is_duplicated()
    if dup.any():
        first = ids.filter(dup)[0]
        where = ", ".join(
            f"'{t.files[0][0]}'" for t in tops if t.picks.height and (t.picks["id"] == first).any()
        )
        raise SelectkitDataError(
            f"id {first!r} occurs in more than one shard ({where}); give each row a unique id"
        )
    ranks = np.empty(cands.height, dtype=np.int64)
    ranks[ids.arg_sort().to_numpy()] = np.arange(cands.height)
    order = np.lexsort((ranks, -cands.get_column("score").to_numpy()))[:count]
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


def _sources(tops: list[_ShardTop], given: list[str]) -> list[dict[str, Any]]:
    """The inputs record: one ``Source`` per file read (rows summed over its shards), input by
    input, as ``read_table`` records a file; a file given by name keeps the name given."""
    from selectkit.io.tables import Source, fingerprint_file

    by_path: dict[str, Source] = {}
    for j in range(len(given)):
        for top in tops:
            path, fmt, rows, fingerprint = top.files[j]
            src = by_path.setdefault(path, Source(path, fmt, 0, fingerprint))
            src.rows += rows
    for src in by_path.values():
        if src.fingerprint is None:
            src.fingerprint = fingerprint_file(src.path)
    out = [s.as_dict() for s in by_path.values()]
    if len(out) == len(given) and all(Path(g).is_file() for g in given):
        for record, name in zip(out, given, strict=True):
            record["path"] = name  # one file per input: the path as the user wrote it
    return out
