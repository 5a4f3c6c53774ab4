"""Materialise a manifest: the rows of any input table whose ids the manifest lists.

What runs where: the driver reads the manifest and stores its ids once on the engine; each shard
of the table is filtered by :func:`apply_shard` (its picked rows come back, or are written as
its part of a dataset folder); every check that needs the whole table (row counts, shard order,
repeated and missing ids) is made on the driver from the shards' counts, before anything is
written."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit.arguments import instance
from selectkit.engine import ENGINE_BOUNDS, Engine, Handle, engine_record, get_engine
from selectkit.engine.shards import Shard, input_fingerprints, plan_shards
from selectkit.errors import SelectkitError, SelectkitMismatchError, SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    check_output_path,
    iter_batches,
    read_provenance,
    read_table,
    write_table,
)
from selectkit.io.dataset import (
    DatasetWriter,
    PartRecord,
    is_folder_output,
    part_name,
    write_part,
)
from selectkit.io.formats import STDIO
from selectkit.io.tables import (
    Source,
    check_row_number_ids,
    check_unique_ids,
    empty_source,
    expand_inputs,
)
from selectkit.params import check_arguments

ORDERS = ("rank", "original")
MANIFEST_EXTRAS = ("rank", "score", "weight")


def apply_manifest(
    manifest_path: str | Path,
    table_path: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    order: str = "rank",
    id_col: str = "id",
    with_manifest_columns: bool = True,
    input_format: str | None = None,
    batch_size: int = 65536,
    force: bool = False,
    engine: str | Engine = "local",
    ray_address: str | None = None,
    resume: bool = False,
) -> Provenance:
    """Write the rows of ``table_path`` listed in the manifest to ``output``.

    ``table_path`` may be several tables (shards, a quoted glob, a dataset folder) read in order
    as one table: without an id column their rows are numbered on across the shards, as
    ``select`` numbers them. Each shard is filtered by ``engine`` (``"local"``, or ``"ray"`` at
    ``ray_address`` / ``$RAY_ADDRESS``; the manifest's ids are sent once); the checks below are
    made on the driver from the shards' counts. ``output`` is one file, or a dataset folder
    (``"selected/"``: one part per shard with that shard's picked rows; ``resume`` reuses the
    parts of an interrupted run with the same inputs and parameters).

    ``order``: ``rank`` (pick order; in a folder, within each part) or ``original`` (the table's
    order). With ``with_manifest_columns`` the manifest's rank, score and weight are appended
    (unless the table has columns of those names). The table is streamed: memory is O(batch +
    selected rows). Every manifest id must be found, or the run fails with no output.

    Row-number ids are checked against the manifest's provenance (``check_row_numbers``): a
    table without an id column must have as many rows as the pool the manifest was selected
    from, and when the pool's ids were row numbers (a ``.npy`` input) the table's own ids must
    be its row numbers; a mismatch raises ``SelectkitMismatchError`` unless ``force``.
    """
    instance(force, bool, "force", "force=True", optional=False)
    if order not in ORDERS:
        raise SelectkitUsageError(
            f"{option('order')} must be one of {', '.join(ORDERS)}, not {order!r}"
        )
    check_arguments(ENGINE_BOUNDS, ray_address=ray_address, resume=resume)
    tables = expand_inputs([table_path] if isinstance(table_path, (str, Path)) else table_path)
    folder = is_folder_output(output)
    if resume and not folder:
        raise SelectkitUsageError(
            f"{option('resume')} continues a dataset folder; write to one (-o DIR/) or drop "
            f"{option('resume')}"
        )
    check_output_path(output, [manifest_path, *tables], folder=folder)
    if STDIO in tables and (len(tables) > 1 or not _is_local(engine)):
        raise SelectkitUsageError(
            "stdin ('-') is read once, on this machine: give it alone with the local engine, "
            "or save it to a file first"
        )
    prov = Provenance(command="apply")
    prov.start("apply")
    manifest = read_table(manifest_path, id_col=id_col)
    if "rank" not in manifest.frame.columns:
        raise SelectkitError(
            f"'{manifest_path}' has no 'rank' column, so it is not a manifest; "
            "make one with `selectkit select`"
        )
    recorded = _recorded(manifest_path, manifest.source.format)
    picks = manifest.frame.select(
        [id_col] + [c for c in MANIFEST_EXTRAS if c in manifest.frame.columns]
    )
    eng = get_engine(engine, ray_address=ray_address)
    try:
        shards = plan_shards(tables, input_format=input_format)
        job = ApplyJob(
            picks=eng.put(picks),
            manifest=str(manifest_path),
            where="stdin" if tables == ["-"] else ", ".join(f"'{t}'" for t in tables),
            order=order,
            id_col=id_col,
            with_manifest_columns=with_manifest_columns,
            input_format=input_format,
            batch_size=batch_size,
            allow_empty=len(shards) > 1,
            pool_numbered=_pool_ids_were_row_numbers(recorded),
            params={"order": order, "force": force},
            manifest_source=manifest.source.as_dict(),
        )
        if folder:
            identity = {
                "inputs": [manifest.source.as_dict(), *input_fingerprints(eng, shards)],
                "params": job.params,
            }
            with DatasetWriter(output, command="apply", identity=identity, resume=resume) as w:
                job = replace(job, staging=str(w.staging))
                todo = w.todo(shards)
                pending = {s.index for s in todo}
                reused = {p.name: p for p in w.reused}
                done = {
                    s.index: _reused_result(w.staging, s, job, reused)
                    for s in shards
                    if s.index not in pending
                }
                results = _run(eng, job, shards, todo, done, on_part=w.done)
                _check(results, shards, job, recorded, picks, force)
                prov.stop("apply")
                _finish(prov, eng, job, results, picks, rows=sum(r.found.len() for r in results))
                w.commit(prov)
            return prov
        results = _run(eng, job, shards, shards, {}, on_part=None)
    finally:
        eng.close()
    _check(results, shards, job, recorded, picks, force)
    result = pl.concat([r.kept for r in results if r.kept is not None], how="vertical_relaxed")
    if order == "rank":
        result = result.sort("__rank")
    result = result.drop("__rank")
    prov.stop("apply")
    _finish(prov, eng, job, results, picks, rows=result.height)
    write_table(result, output, provenance=prov)
    return prov


@dataclass(frozen=True)
class ApplyJob:
    """What every shard's kernel needs: the manifest's ids (stored once) and the options."""

    picks: Handle
    manifest: str
    where: str
    order: str
    id_col: str
    with_manifest_columns: bool
    input_format: str | None
    batch_size: int
    allow_empty: bool
    pool_numbered: bool
    params: dict[str, Any]
    manifest_source: dict[str, Any]
    #: the dataset folder's staging folder ("" for a file output: rows come back)
    staging: str = ""


@dataclass
class ApplyResult:
    """One shard's partial result, reduced on the driver in shard order."""

    index: int
    rows: int
    #: the manifest ids found in the shard (O(selected rows))
    found: pl.Series = field(default_factory=lambda: pl.Series([], dtype=pl.Int64))
    #: a file output: the shard's picked rows, with ``__rank``
    kept: pl.DataFrame | None = None
    source: dict[str, Any] | None = None
    part: PartRecord | None = None
    #: the shard has no id column: its ids are row numbers
    numbered: bool = False
    #: its own ids run on by one from ``first_id`` (then they are row numbers when
    #: ``first_id`` is the shard's first row number)
    consecutive: bool = True
    first_id: Any = None
    #: no id column, first row number not known yet: only counted
    needs_row0: bool = False


class _PartProvenance(Provenance):
    """A part's provenance: no command line (a worker has none; parts must not differ by the
    engine that wrote them)."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("argv", None)
        return out


def apply_shard(shard: Shard, job: ApplyJob) -> ApplyResult:
    """Filter one shard by the manifest's ids: its picked rows (returned, or written as its
    part), the ids found and the counts the driver's checks need. Cost: one read of the shard;
    memory O(batch + the shard's picked rows)."""
    picks = job.picks.get()
    groups = range(*shard.groups) if shard.groups is not None else None
    source, batches = iter_batches(
        shard.path,
        input_format=job.input_format,
        batch_size=job.batch_size,
        id_col=job.id_col,
        allow_empty=job.allow_empty,
        row_groups=groups,
    )
    first = next(batches, None)
    numbered = first is not None and job.id_col not in first.columns
    if numbered and shard.row0 is None:
        rows = first.height + sum(b.height for b in batches)
        return ApplyResult(shard.index, rows, needs_row0=True)
    out = ApplyResult(shard.index, 0, numbered=numbered)
    kept: list[pl.DataFrame] = []
    extras: list[str] | None = None
    for batch in _chain(first, batches):
        if numbered:
            check_row_number_ids(job.id_col, job.where, batch.columns)
            start = shard.row0 + out.rows
            batch = batch.with_columns(
                pl.Series(job.id_col, np.arange(start, start + batch.height, dtype=np.int64))
            )
        elif job.pool_numbered and out.consecutive:
            ids = batch.get_column(job.id_col)
            if out.first_id is None and ids.len():
                out.first_id = ids[0]
            out.consecutive = ids.dtype.is_integer() and _positional(ids, out.first_id + out.rows)
        out.rows += batch.height
        if extras is None:
            extras = [
                c
                for c in MANIFEST_EXTRAS
                if job.with_manifest_columns and c in picks.columns and c not in batch.columns
            ]
        right = _align_ids(picks, batch.schema[job.id_col], job.id_col, job.where, job.manifest)
        right = right.select([job.id_col, pl.col("rank").alias("__rank"), *extras])
        kept.append(batch.join(right, on=job.id_col, how="inner", maintain_order="left"))
    out.source = source.as_dict()
    if not kept:
        return out
    frame = pl.concat(kept, how="vertical_relaxed")
    out.found = frame.get_column(job.id_col)
    if not job.staging:
        out.kept = frame
        return out
    if job.order == "rank":
        frame = frame.sort("__rank")
    prov = _PartProvenance(command="apply", params=job.params)
    prov.inputs = [job.manifest_source, out.source]
    prov.metrics = {
        "rows": frame.height,
        "table_rows": out.rows,
        "row_number_ids": numbered,
        "consecutive_ids": out.consecutive,
        "first_id": out.first_id,
    }
    out.part = write_part(job.staging, shard, [frame.drop("__rank")], prov)
    return out


def _chain(first: pl.DataFrame | None, rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    if first is None:
        return
    yield first
    yield from rest


def _is_local(engine: str | Engine) -> bool:
    """Whether kernels run in this process (the only place stdin can be read)."""
    if isinstance(engine, Engine):
        return engine.describe() == {"engine": "local", "workers": 1}
    return engine == "local"


def _run(
    eng: Engine,
    job: ApplyJob,
    shards: list[Shard],
    todo: Sequence[Shard],
    done: dict[int, ApplyResult],
    *,
    on_part: Any,
) -> list[ApplyResult]:
    """Every shard's result in shard order; shards without ids whose first row number was
    unknown run again once the rows before them are counted."""
    results = dict(done)

    def collect(items: Sequence[Shard]) -> None:
        for result in eng.map(
            apply_shard, list(items), shared=job, label="apply", total=len(items)
        ):
            results[result.index] = result
            if result.part is not None and on_part is not None:
                on_part(result.part)

    collect(todo)
    waiting = [shards[i] for i, r in sorted(results.items()) if r.needs_row0]
    if waiting:
        starts = list(itertools.accumulate((results[s.index].rows for s in shards), initial=0))
        collect([replace(s, row0=starts[s.index]) for s in waiting])
    return [results[s.index] for s in shards]


def _check(
    results: list[ApplyResult],
    shards: list[Shard],
    job: ApplyJob,
    recorded: dict,
    picks: pl.DataFrame,
    force: bool,
) -> None:
    """The checks that need every shard's counts, made on the driver in the order the one-file
    pass makes them: an empty table, shard order, row numbers, repeated and missing ids."""
    where, manifest_path = job.where, job.manifest
    rows = sum(r.rows for r in results)
    if rows == 0:
        every = "every input" if len(shards) > 1 else "the input"
        raise SelectkitError(f"{where}: {every} is empty (no rows); give a table with rows")
    sources = _sources(results)
    numbered = any(r.numbered for r in results)
    if numbered and len(sources) > 1:
        check_shard_order(manifest_path, [Source(**s) for s in sources])
    starts = list(itertools.accumulate((r.rows for r in results), initial=0))
    own_ids_positional = all(
        r.numbered or r.rows == 0 or (r.consecutive and r.first_id == starts[i])
        for i, r in enumerate(results)
    )
    if not force:
        check_row_numbers(
            recorded,
            manifest_path,
            where,
            rows=rows,
            table_numbered=numbered,
            own_ids_positional=own_ids_positional,
        )
    parts = [r.found for r in results if r.found.len()]
    found = (
        pl.concat(
            [p.alias(job.id_col).to_frame() for p in parts], how="vertical_relaxed"
        ).to_series()
        if parts
        else picks[job.id_col].head(0)
    )
    # a picked id found twice: the corpus repeats it (ids the manifest does not pick may repeat
    # without harm, and checking only these keeps memory O(selected rows))
    check_unique_ids(found.alias(job.id_col), where)
    if found.len() != picks.height:
        have = set(found.to_list())
        missing = [i for i in picks.get_column(job.id_col).to_list() if i not in have]
        raise SelectkitMismatchError(
            f"{len(missing)} of the {picks.height} manifest ids are not in {where} (e.g. "
            f"{missing[0]!r}); apply '{manifest_path}' to a table holding the ids it was "
            "selected from"
        )


def _sources(results: list[ApplyResult]) -> list[dict[str, Any]]:
    """One input entry per file, in order (a Parquet file cut into shards: rows summed)."""
    merged: dict[str, dict[str, Any]] = {}
    for r in results:
        src = r.source
        if src is None:
            continue
        if src["path"] in merged:
            merged[src["path"]]["rows"] += src["rows"]
        else:
            merged[src["path"]] = dict(src)
    return list(merged.values())


def _finish(
    prov: Provenance,
    eng: Engine,
    job: ApplyJob,
    results: list[ApplyResult],
    picks: pl.DataFrame,
    *,
    rows: int,
) -> None:
    prov.params = dict(job.params)
    prov.inputs = [job.manifest_source, *_sources(results)]
    prov.metrics = {
        "manifest_rows": picks.height,
        "table_rows": sum(r.rows for r in results),
        "rows": rows,
    }
    prov.engine = engine_record(eng)


def _reused_result(
    staging: Path, shard: Shard, job: ApplyJob, reused: dict[str, PartRecord]
) -> ApplyResult:
    """A part kept from an interrupted run, as its kernel reported it (from its provenance and
    its id column)."""
    part = reused[part_name(shard.index)]
    if part.fingerprint is None:  # an empty shard: no file
        return ApplyResult(
            shard.index, 0, source=empty_source(shard.path, job.input_format).as_dict(), part=part
        )
    path = staging / part.name
    meta = read_provenance(path) or {}
    metrics = meta.get("metrics") or {}
    return ApplyResult(
        shard.index,
        int(metrics.get("table_rows", 0)),
        found=pl.read_parquet(path, columns=[job.id_col]).get_column(job.id_col),
        source=(meta.get("inputs") or [None, None])[1],
        part=part,
        numbered=bool(metrics.get("row_number_ids")),
        consecutive=bool(metrics.get("consecutive_ids", True)),
        first_id=metrics.get("first_id"),
    )


def _recorded(manifest_path: str | Path, fmt: str) -> dict:
    """The manifest's provenance, or {} when it carries none (JSONL/CSV manifests)."""
    if fmt != "parquet":
        return {}
    try:
        return read_provenance(manifest_path) or {}
    except SelectkitError:
        return {}


def _pool_ids_were_row_numbers(recorded: dict) -> bool:
    """Whether ``select`` numbered the pool's rows: its first input (which fixes the rows) was a
    ``.npy`` matrix, whose ids are always row numbers."""
    inputs = recorded.get("inputs") or []
    return bool(inputs) and (inputs[0] or {}).get("format") == "npy"


def _positional(ids: pl.Series, offset: int) -> bool:
    """Whether a batch's ids are its row numbers ``offset, offset + 1, ...``; O(batch)."""
    if not ids.dtype.is_integer():
        return False
    want = np.arange(offset, offset + ids.len(), dtype=np.int64)
    return bool(np.array_equal(ids.cast(pl.Int64).to_numpy(), want))


def check_row_numbers(
    recorded: dict,
    manifest_path: str | Path,
    where: str,
    *,
    rows: int,
    table_numbered: bool,
    own_ids_positional: bool,
) -> None:
    """Refuse a table whose row numbers cannot be the manifest's ids.

    Row numbers are ids only by position, so a table of other rows silently gives other rows. The
    checks, from the manifest's provenance (none without one): a table without an id column must
    have exactly the selected pool's row count (``metrics.pool_rows``); when the pool's own ids
    were row numbers (a ``.npy`` input), a table with an id column must hold its row numbers
    there. Tables with real ids need no such check: their ids are matched, and missing ones are
    refused. Raises ``SelectkitMismatchError``; ``--force`` / ``force=True`` skips it. O(1).
    """
    pool_rows = (recorded.get("metrics") or {}).get("pool_rows")
    inputs = recorded.get("inputs") or []
    origin = f"'{inputs[0].get('path')}'" if inputs else "its pool"
    override = f"or pass {option('force', python='force=True')} if you know the row numbers match"
    if table_numbered and isinstance(pool_rows, int) and rows != pool_rows:
        raise SelectkitMismatchError(
            f"{where} has no id column, so its row numbers are the ids, but it has {rows} rows "
            f"and manifest '{manifest_path}' was selected from {pool_rows} rows ({origin}): "
            f"other rows would be written; apply it to the table those rows came from, {override}"
        )
    if not table_numbered and _pool_ids_were_row_numbers(recorded) and not own_ids_positional:
        raise SelectkitMismatchError(
            f"manifest '{manifest_path}' was selected from {origin}, whose ids are row numbers, "
            f"but {where} has its own ids that are not its row numbers: other rows would be "
            f"written; apply it to a table in the same row order without an id column, {override}"
        )


def check_shard_order(manifest_path: str | Path, sources: list[Source]) -> None:
    """Row-number ids run on across shards, so they depend on the shards' order: refuse the
    shards `select` read (by fingerprint) given in another order, naming the right one."""
    try:
        recorded = (read_provenance(manifest_path) or {}).get("inputs") or []
    except SelectkitError:  # a JSONL/CSV manifest carries no provenance: nothing to check
        return
    want = [r.get("fingerprint") for r in recorded]
    have = [s.fingerprint for s in sources]
    if sorted(want) == sorted(have) and want != have:
        order = ", ".join(f"'{r.get('path')}'" for r in recorded)
        raise SelectkitError(
            "these shards have no id column, so their rows are numbered on across them, but "
            f"they are not in the order `select` read them; give them as {order}"
        )


def _align_ids(
    picks: pl.DataFrame, dtype: pl.DataType, id_col: str, where: str, manifest_path: str | Path
) -> pl.DataFrame:
    have = picks.schema[id_col]
    if have == dtype:
        return picks
    if have.is_integer() and dtype.is_integer():
        return picks.with_columns(pl.col(id_col).cast(dtype))
    raise SelectkitError(
        f"ids of '{manifest_path}' are {have} but {where} has {dtype} ids in column '{id_col}'; "
        "apply the manifest to the table it was made from (or name its id column with "
        f"{option('id_col')})"
    )
