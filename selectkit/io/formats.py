"""Which file format a path holds, from its extension or an explicit override."""

from __future__ import annotations

from pathlib import Path

from selectkit.errors import SelectkitUsageError

FORMATS = ("parquet", "jsonl", "csv", "npy")
_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".npy": "npy",
}

STDIO = "-"


def detect_format(path: str | Path, override: str | None = None) -> str:
    """Return one of ``FORMATS`` for ``path``; ``-`` (stdin/stdout) is JSONL unless overridden."""
    if override:
        fmt = override.lower().replace("ndjson", "jsonl")
        if fmt not in FORMATS:
            raise SelectkitUsageError(
                f"unknown format {override!r}; use one of {', '.join(FORMATS)}"
            )
        return fmt
    if str(path) == STDIO:
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _BY_SUFFIX:
        raise SelectkitUsageError(
            f"cannot tell the format of '{path}' from its extension; name it .parquet, .jsonl, "
            ".ndjson, .csv or .npy, or pass --input-format"
        )
    return _BY_SUFFIX[suffix]
