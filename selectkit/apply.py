"""Materialise a manifest: the rows of any input table whose ids the manifest lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from selectkit.arguments import instance
from selectkit.errors import SelectkitError, SelectkitMismatchError, SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    check_output_path,
    iter_batches,
    read_provenance,
    read_table,
    write_table,
)
from selectkit.io.tables import Source, check_row_number_ids, check_unique_ids, expand_inputs

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
) -> Provenance:
    """Write the rows of ``table_path`` listed in the manifest to ``output``.

    ``table_path`` may be several tables (shards, or a quoted glob) read in order as one table:
    without an id column their rows are numbered on across the shards, as ``select`` numbers them.

    ``order``: ``rank`` (pick order) or ``original`` (the table's order). With
    ``with_manifest_columns`` the manifest's rank, score and weight are appended (unless the table
    has columns of those names). The table is streamed: memory is O(batch + selected rows).
    Every manifest id must be found, or the run fails with no output.

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
    tables = expand_inputs([table_path] if isinstance(table_path, (str, Path)) else table_path)
    check_output_path(output, [manifest_path, *tables])
    prov = Provenance(command="apply")
    prov.start("apply")
    manifest = read_table(manifest_path, id_col=id_col)
    if "rank" not in manifest.frame.columns:
        raise SelectkitError(
            f"'{manifest_path}' has no 'rank' column, so it is not a manifest; "
            "make one with `selectkit select`"
        )
    recorded = _recorded(manifest_path, manifest.source.format)
    pool_numbered = _pool_ids_were_row_numbers(recorded)
    picks = manifest.frame.select(
        [id_col] + [c for c in MANIFEST_EXTRAS if c in manifest.frame.columns]
    )
    where = "stdin" if tables == ["-"] else ", ".join(f"'{t}'" for t in tables)
    kept: list[pl.DataFrame] = []
    numbered = False
    own_ids_positional = True  # the table's own ids equal its row numbers (so far)
    offset = 0
    extras: list[str] | None = None
    sources: list[Source] = []
    shards = len(tables) > 1
    for path in tables:
        source, batches = iter_batches(
            path,
            input_format=input_format,
            batch_size=batch_size,
            id_col=id_col,
            allow_empty=shards,
        )
        sources.append(source)
        for batch in batches:
            if id_col not in batch.columns:
                numbered = True
                check_row_number_ids(id_col, where, batch.columns)
                batch = batch.with_columns(
                    pl.Series(id_col, np.arange(offset, offset + batch.height, dtype=np.int64))
                )
            elif pool_numbered and own_ids_positional:
                own_ids_positional = _positional(batch.get_column(id_col), offset)
            offset += batch.height
            if extras is None:
                extras = [
                    c
                    for c in MANIFEST_EXTRAS
                    if with_manifest_columns and c in picks.columns and c not in batch.columns
                ]
            right = _align_ids(picks, batch.schema[id_col], id_col, where, manifest_path)
            right = right.select([id_col, pl.col("rank").alias("__rank"), *extras])
            kept.append(batch.join(right, on=id_col, how="inner", maintain_order="left"))
    if offset == 0:
        every = "every input" if shards else "the input"
        raise SelectkitError(f"{where}: {every} is empty (no rows); give a table with rows")
    if numbered and len(sources) > 1:
        check_shard_order(manifest_path, sources)
    if not force:
        check_row_numbers(
            recorded,
            manifest_path,
            where,
            rows=offset,
            table_numbered=numbered,
            own_ids_positional=own_ids_positional,
        )
    result = pl.concat(kept, how="vertical_relaxed")
    # a picked id found twice: the corpus repeats it (ids the manifest does not pick may repeat
    # without harm, and checking only these keeps memory O(selected rows))
    check_unique_ids(result.get_column(id_col), where)
    if result.height != picks.height:
        found = set(result.get_column(id_col).to_list())
        missing = [i for i in picks.get_column(id_col).to_list() if i not in found]
        raise SelectkitMismatchError(
            f"{len(missing)} of the {picks.height} manifest ids are not in {where} (e.g. "
            f"{missing[0]!r}); apply '{manifest_path}' to a table holding the ids it was "
            "selected from"
        )
    if order == "rank":
        result = result.sort("__rank")
    result = result.drop("__rank")
    prov.stop("apply")
    prov.metrics = {"manifest_rows": picks.height, "table_rows": offset, "rows": result.height}
    write_table(
        result, output, provenance=_provenance(prov, manifest.source, sources, order, force)
    )
    return prov


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


def _provenance(
    prov: Provenance, manifest: Source, tables: list[Source], order: str, force: bool
) -> Provenance:
    prov.params = {"order": order, "force": force}
    prov.inputs = [manifest.as_dict(), *(t.as_dict() for t in tables)]
    return prov
