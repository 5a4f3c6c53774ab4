"""Compare two runs' outputs the way issue 13 promises: the same data bytes, and the same
provenance apart from what says when and where it ran (timings, rates, the engine, argv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: provenance keys that may differ between engines (at any depth)
VOLATILE = {"timings", "engine", "argv", "docs_per_s", "rows_per_s"}


def stable(value: Any) -> Any:
    """``value`` (a provenance, or part of one) without its volatile keys."""
    if isinstance(value, dict):
        return {
            k: stable(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def _table_bytes(path: Path) -> tuple[bytes, dict]:
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    prov = json.loads(meta.get(b"selectkit", b"{}"))
    sink = pa.BufferOutputStream()
    plain = table.replace_schema_metadata(None)
    with pa.ipc.new_stream(sink, plain.schema) as writer:
        writer.write_table(plain)
    return sink.getvalue().to_pybytes(), stable(prov)


def assert_same_output(a: str | Path, b: str | Path) -> None:
    """Parquet files, JSON files or dataset folders ``a`` and ``b`` hold the same data and the
    same stable provenance."""
    a, b = Path(a), Path(b)
    if a.is_dir():
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir()), (a, b)
        for name in names:
            assert_same_output(a / name, b / name)
        return
    if a.suffix == ".parquet":
        data_a, prov_a = _table_bytes(a)
        data_b, prov_b = _table_bytes(b)
        assert prov_a == prov_b, f"{a.name}: provenance differs"
        assert data_a == data_b, f"{a.name}: data differs"
    elif a.suffix == ".json":
        assert stable(json.loads(a.read_text())) == stable(json.loads(b.read_text())), a.name
    else:
        assert a.read_bytes() == b.read_bytes(), a.name
