"""Describe an artefact: its columns, row count and the provenance it carries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selectkit.io import detect_format, read_provenance, read_table
from selectkit.io.dataset import (
    PROGRESS_NAME,
    RECORD_NAME,
    DatasetRecord,
    read_record,
)
from selectkit.io.formats import known_suffix
from selectkit.io.streams import is_stream
from selectkit.io.tables import check_exists, input_files, names_many_files, open_parquet


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Return {path, format, rows, columns: {name: type}, provenance | None}.

    Parquet files are described from their footer alone (O(1) in the rows); other formats are read.
    A dataset folder (or a quoted glob of Parquet files) is described from its record and its
    parts' footers (O(parts)): ``format`` is ``"dataset"``, ``provenance`` the run's, and
    ``parts`` lists each part's name, shard key, rows and fingerprint; ``complete`` says whether
    the run finished (an unfinished staging folder ``.DIR.sk-partial`` can be inspected too).
    """
    path = str(path)
    if names_many_files(path):
        return _inspect_many(path)
    check_exists(path)
    # a stream (stdin, <(...)) is read once and its format told by its content
    fmt = None if is_stream(path) and not known_suffix(path) else detect_format(path)
    if fmt == "parquet":
        meta = open_parquet(path)
        schema = meta.schema_arrow
        return {
            "path": path,
            "format": fmt,
            "rows": meta.metadata.num_rows,
            "columns": {f.name: str(f.type) for f in schema},
            "provenance": read_provenance(path),
        }
    table = read_table(path)
    columns = {name: str(dtype) for name, dtype in table.frame.schema.items()}
    for name, arr in table.arrays.items():
        columns[name] = f"{arr.dtype}[{arr.shape[1]}]"
    return {
        "path": path,
        "format": fmt or table.source.format,
        "rows": table.height,
        "columns": columns,
        "provenance": None,
    }


def _inspect_many(path: str) -> dict[str, Any]:
    folder = Path(path)
    record: DatasetRecord | None = None
    if folder.is_dir() and (folder / RECORD_NAME).is_file():
        record = read_record(folder)
    elif folder.is_dir() and (folder / PROGRESS_NAME).is_file():
        record = DatasetRecord.from_json((folder / PROGRESS_NAME).read_text())
    if record is not None:
        files = [os.path.join(path, p.name) for p in record.parts if p.fingerprint is not None]
        files = [f for f in files if os.path.isfile(f)] if not record.complete else files
    else:
        files = input_files(path)
    if not all(known_suffix(f) and detect_format(f) == "parquet" for f in files):
        table = read_table(path)
        return {
            "path": path,
            "format": table.source.format,
            "rows": table.height,
            "columns": {n: str(t) for n, t in table.frame.schema.items()},
            "provenance": None,
            "parts": [{"name": f} for f in files],
            "complete": None,
        }
    footers = [open_parquet(f) for f in files]
    columns = {f.name: str(f.type) for f in footers[0].schema_arrow} if footers else {}
    if record is None:
        parts = [
            {
                "name": os.path.relpath(f, path) if folder.is_dir() else f,
                "rows": m.metadata.num_rows,
            }
            for f, m in zip(files, footers, strict=True)
        ]
        return {
            "path": path,
            "format": "parts",
            "rows": sum(p["rows"] for p in parts),
            "columns": columns,
            "provenance": None,  # no record: nothing vouches for the folder as a whole
            "parts": parts,
            "complete": None,
        }
    return {
        "path": path,
        "format": "dataset",
        "rows": record.rows,
        "columns": columns,
        "provenance": record.provenance,
        "command": record.command,
        "identity": record.identity,
        "parts": [p.as_dict() for p in record.parts],
        "complete": record.complete,
    }
