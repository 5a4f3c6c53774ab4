"""What a report is made of: each input told apart by its columns, read once.

A *manifest* has ``id`` and ``rank`` (the output of ``select``); *curves* are the output of
``al simulate`` (repeat, strategy, round, n_labelled, accuracy); a *DISCO evaluation* is the
output of ``disco evaluate`` (seed, budget, method, mae, spearman). Every other table is part of
the *pool*: embeddings, clusters, a corpus with text and labels, joined on the id column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io import read_provenance
from selectkit.io.formats import detect_format, is_gzip
from selectkit.io.tables import check_exists, read_table
from selectkit.pool import Columns, Pool, load_pool

CURVES_COLUMNS = ("repeat", "strategy", "round", "n_labelled", "accuracy")
DISCO_COLUMNS = ("seed", "budget", "method", "mae", "spearman")
MANIFEST_COLUMNS = ("rank",)
#: what `disco predict` writes, and the true accuracies it may be compared with
PREDICTED_COLUMNS = ("model", "predicted_accuracy")
ACCURACY_COLUMNS = ("model", "accuracy")
#: what `select --strategy semdedup --emit-dropped` writes
DROPPED_COLUMNS = ("duplicate_of", "similarity")


@dataclass
class Artefact:
    """One input read whole: its path, frame and provenance (``None`` when it carries none)."""

    path: str
    frame: pl.DataFrame
    provenance: dict[str, Any] | None


@dataclass
class ReportInputs:
    """The inputs of one report, by kind: ``kind`` is selection, curves or disco."""

    kind: str
    manifests: list[Artefact] = field(default_factory=list)
    pool: Pool | None = None
    pool_paths: list[str] = field(default_factory=list)
    table: Artefact | None = None
    dropped: list[Artefact] = field(default_factory=list)


def _columns_of(path: str, columns: Columns) -> list[str]:
    """Column names of ``path``, enough to tell its kind: the Parquet footer, the first rows of
    a plain JSON Lines or CSV file (a corpus is then read once, by the pool), else a read."""
    fmt = detect_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if fmt == "npy":
        return [columns.embedding]
    if not is_gzip(path) and os.path.isfile(path):
        try:
            head = (pl.read_ndjson if fmt == "jsonl" else pl.read_csv)(path, n_rows=20)
            return list(head.columns)
        except (pl.exceptions.PolarsError, OSError, ValueError):
            pass  # the full read below names the problem
    return list(read_table(path, id_col=columns.id).frame.columns)


def kind_of(columns: list[str]) -> str:
    """``manifest``, ``curves``, ``disco`` or ``pool`` for a table with these columns."""
    if all(c in columns for c in CURVES_COLUMNS):
        return "curves"
    if all(c in columns for c in DISCO_COLUMNS):
        return "disco"
    if all(c in columns for c in PREDICTED_COLUMNS):
        return "predicted"
    if all(c in columns for c in ACCURACY_COLUMNS) and "id" not in columns:
        return "accuracy"
    if all(c in columns for c in DROPPED_COLUMNS):
        return "dropped"
    if all(c in columns for c in MANIFEST_COLUMNS) and "embedding" not in columns:
        return "manifest"
    return "pool"


def _artefact(path: str, columns: Columns) -> Artefact:
    table = read_table(path, id_col=columns.id)
    prov = read_provenance(path) if detect_format(path) == "parquet" else None
    return Artefact(path=path, frame=table.frame, provenance=prov)


def gather(paths: list[str], columns: Columns) -> ReportInputs:
    """Read and classify ``paths``: the manifests and the pool tables (joined into a
    :class:`~selectkit.pool.Pool`), or exactly one curves or DISCO table. Refuses a mix of
    kinds, stdin, and manifest ids the pool lacks. Costs one read of each input."""
    if not paths:
        raise SelectkitUsageError("give at least one input: a manifest, curves or eval table")
    kinds: dict[str, list[str]] = {
        "manifest": [],
        "curves": [],
        "disco": [],
        "dropped": [],
        "predicted": [],
        "accuracy": [],
        "pool": [],
    }
    for p in paths:
        if p == "-":
            raise SelectkitUsageError("report reads files, not stdin ('-'); give the file paths")
        check_exists(p)
        kinds[kind_of(_columns_of(p, columns))].append(p)
    if kinds["predicted"]:
        return _predicted(paths, kinds, columns)
    for kind in ("curves", "disco"):
        if kinds[kind]:
            if len(paths) > 1:
                others = [p for p in paths if p not in kinds[kind]]
                what = "`al simulate` curves" if kind == "curves" else "`disco evaluate` results"
                raise SelectkitUsageError(
                    f"'{kinds[kind][0]}' holds {what}, which make a page of their own; "
                    f"report it alone (drop {', '.join(repr(o) for o in others)})"
                )
            return ReportInputs(kind=kind, table=_artefact(paths[0], columns))
    if not kinds["manifest"]:
        raise SelectkitUsageError(
            f"no manifest among {', '.join(repr(p) for p in paths)} (a table with 'id' and "
            "'rank', as `selectkit select` writes); give one or more manifests first"
        )
    manifests = [_artefact(p, columns) for p in kinds["manifest"]]
    for m in manifests:
        if columns.id not in m.frame.columns or m.frame.height == 0:
            raise SelectkitDataError(
                f"manifest '{m.path}' has no rows or no '{columns.id}' column; give the output "
                "of `selectkit select`"
            )
    pool = None
    if kinds["pool"]:  # label 'none': no label column, as in `select --label-col none`
        no_labels = columns.label == "none"
        read_as = replace(columns, label=Columns.label) if no_labels else columns
        pool = load_pool(kinds["pool"], columns=read_as, use_labels=not no_labels)
    if pool is not None:
        _check_ids(manifests, pool, kinds["pool"], columns.id)
    if kinds["dropped"] and len(manifests) != 1:
        raise SelectkitUsageError(
            f"'{kinds['dropped'][0]}' lists the rows semdedup dropped; give it with the one "
            "manifest semdedup kept"
        )
    return ReportInputs(
        kind="selection",
        manifests=manifests,
        pool=pool,
        pool_paths=kinds["pool"],
        dropped=[_artefact(p, columns) for p in kinds["dropped"]],
    )


def _plain(path: str) -> Artefact:
    """A table keyed by model, not by row id (no id column is added)."""
    readers = {"parquet": pl.read_parquet, "csv": pl.read_csv, "jsonl": pl.read_ndjson}
    fmt = detect_format(path)
    try:
        frame = readers.get(fmt, pl.read_ndjson)(path)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise SelectkitDataError(f"cannot read '{path}': {exc}") from None
    prov = read_provenance(path) if fmt == "parquet" else None
    return Artefact(path=path, frame=frame, provenance=prov)


def _predicted(paths: list[str], kinds: dict[str, list[str]], columns: Columns) -> ReportInputs:
    """`disco predict` output, optionally with one table of the models' true accuracies."""
    others = [p for p in paths if p not in kinds["predicted"] + kinds["accuracy"]]
    if len(kinds["predicted"]) > 1 or len(kinds["accuracy"]) > 1 or others:
        extra = (kinds["predicted"][1:] + kinds["accuracy"][1:] + others)[0]
        raise SelectkitUsageError(
            f"'{kinds['predicted'][0]}' holds `disco predict` output: report it alone or with "
            f"one table of true accuracies (model, accuracy); drop '{extra}'"
        )
    table = _plain(kinds["predicted"][0])
    truth = _plain(kinds["accuracy"][0]) if kinds["accuracy"] else None
    return ReportInputs(kind="predicted", table=table, manifests=[truth] if truth else [])


def _check_ids(manifests: list[Artefact], pool: Pool, pool_paths: list[str], id_col: str) -> None:
    ids = pool.frame.get_column(id_col)
    for m in manifests:
        mids = m.frame.get_column(id_col)
        if mids.dtype != ids.dtype:
            raise SelectkitDataError(
                f"manifest '{m.path}' has {mids.dtype} ids but the pool "
                f"'{pool_paths[0]}' has {ids.dtype} ids; give the pool it was selected from"
            )
        missing = mids.filter(~mids.is_in(ids.implode()))
        if missing.len():
            raise SelectkitDataError(
                f"manifest '{m.path}' has {missing.len()} ids not in the pool "
                f"'{Path(pool_paths[0])}' (first: {missing[0]!r}); give the tables it was "
                "selected from"
            )
