"""Provenance: how an artefact was made, stored as JSON under the Parquet metadata key ``selectkit``."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selectkit._version import __version__
from selectkit.io.tables import open_parquet

if TYPE_CHECKING:
    import polars as pl

METADATA_KEY = "selectkit"
_invocation: dict[str, list[str] | None] = {"argv": None}


def set_invocation(argv: list[str] | None) -> None:
    """Record the command line (set by the CLI entry point) so artefacts can say how to rerun."""
    _invocation["argv"] = list(argv) if argv is not None else None


@dataclass
class Provenance:
    """What a command did: parameters, seed, inputs, timings and summary metrics.

    ``timings`` are the only part that changes between two runs of the same command on the same
    inputs; everything else, and every data column, is reproducible. ``engine`` says where the
    work ran (:func:`selectkit.engine.engine_record`): the output is the same on every engine.
    """

    command: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] | None = None
    _clock: dict[str, float] = field(default_factory=dict, repr=False)

    def start(self, stage: str) -> None:
        """Start timing ``stage``."""
        self._clock[stage] = time.perf_counter()

    def stop(self, stage: str) -> float:
        """Stop timing ``stage``; return and record its seconds."""
        seconds = time.perf_counter() - self._clock.pop(stage)
        self.timings[f"{stage}_s"] = round(self.timings.get(f"{stage}_s", 0.0) + seconds, 6)
        return seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "selectkit_version": __version__,
            "command": self.command,
            "params": self.params,
            "seed": self.seed,
            "inputs": self.inputs,
            "metrics": self.metrics,
            "timings": self.timings,
            **({"engine": self.engine} if self.engine is not None else {}),
            "python": platform.python_version(),
            **({"argv": _invocation["argv"]} if _invocation["argv"] else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot record {type(value).__name__} in provenance")


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """Return the provenance dict stored in a Parquet file, or None if it has none."""
    meta = open_parquet(path).metadata.metadata or {}
    raw = meta.get(METADATA_KEY.encode())
    return json.loads(raw) if raw else None


def fingerprint_ids(ids: pl.Series) -> str:
    """``sha256`` (hex) of a set of ids: sorted ascending, each written as text and followed by
    a newline, so any tool can recompute it. Order-free; O(n log n) and O(n) text."""
    values = ids.sort().to_list()
    return hashlib.sha256("".join(f"{v}\n" for v in values).encode()).hexdigest()
