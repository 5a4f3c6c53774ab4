"""Which file format a path holds, from its extension or an explicit override."""

from __future__ import annotations

from pathlib import Path

from selectkit.errors import SelectkitUsageError, option

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
GZIP_FORMATS = ("jsonl", "csv")


def is_gzip(path: str | Path) -> bool:
    """True for a gzip-compressed table (``.jsonl.gz``, ``.csv.gz``)."""
    return str(path) != STDIO and str(path).lower().endswith(".gz")


def _suffix(path: str | Path) -> str:
    """The format extension, looking through a trailing ``.gz``."""
    p = Path(path)
    if p.suffix.lower() == ".gz":
        p = p.with_suffix("")
    return p.suffix.lower()


def known_suffix(path: str | Path) -> bool:
    """True when ``path``'s extension names a format."""
    return _suffix(path) in _BY_SUFFIX


def detect_format(path: str | Path, override: str | None = None, *, output: bool = False) -> str:
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
    suffix = _suffix(path)
    if is_gzip(path) and _BY_SUFFIX.get(suffix) not in GZIP_FORMATS:
        raise SelectkitUsageError(
            f"'{path}': only JSON Lines and CSV can be gzip-compressed (.jsonl.gz, .csv.gz)"
        )
    if suffix not in _BY_SUFFIX:
        if output:
            raise SelectkitUsageError(
                f"cannot tell which format to write to '{path}'; end its name with .parquet, "
                ".jsonl, .csv (or .npy for a matrix), or use '-' for JSON Lines on stdout"
            )
        raise SelectkitUsageError(
            f"cannot tell the format of '{path}' from its extension; name it .parquet, .jsonl, "
            f".ndjson, .csv or .npy, or pass {option('input_format')}"
        )
    return _BY_SUFFIX[suffix]
