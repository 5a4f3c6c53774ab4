"""Describe an artefact: its columns, row count and the provenance it carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selectkit.io import detect_format, read_provenance, read_table
from selectkit.io.tables import check_exists, open_parquet


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Return {path, format, rows, columns: {name: type}, provenance | None}.

    Parquet files are described from their footer alone (O(1) in the rows); other formats are read.
    """
    path = str(path)
    check_exists(path)
    fmt = detect_format(path)
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
        "format": fmt,
        "rows": table.height,
        "columns": columns,
        "provenance": None,
    }
