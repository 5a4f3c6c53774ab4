"""TEMPORARY stand-in for selectkit.engine (ENGINE-SPEC.md) until the lead's module lands on
main; deleted at the merge. Same signatures as the spec."""

from __future__ import annotations

import os
from dataclasses import dataclass

from selectkit.dsir.parallel import Executor
from selectkit.io.formats import STDIO
from selectkit.io.tables import expand_inputs

SHARD_ROWS = 1 << 17


@dataclass(frozen=True)
class Shard:
    index: int
    key: str
    path: str
    rows: tuple[int, int] | None = None
    row0: int | None = None


def plan_shards(paths, *, shard_rows=SHARD_ROWS):
    files = expand_inputs(paths)
    real = [os.path.abspath(p) for p in files if p != STDIO]
    common = os.path.commonpath([os.path.dirname(p) for p in real]) if real else ""
    out = []
    for i, p in enumerate(files):
        key = p if p == STDIO else os.path.relpath(os.path.abspath(p), common)
        out.append(Shard(i, key, p, None, None))
    return out


class _LocalEngine:
    def __init__(self, workers):
        self.workers = max(1, int(workers or 1))
        self._ex = Executor(self.workers)

    def map(self, kernel, items, *, shared=None, setup=None, label=None, total=None):
        return self._ex.map(kernel, ((item, shared) for item in items))

    def describe(self):
        return {"engine": "local", "workers": self.workers}

    def close(self):
        self._ex.close()


def get_engine(name="local", ray_address=None, workers=None):
    if not isinstance(name, str):
        return name
    if name == "ray":
        raise NotImplementedError("ray engine lands with selectkit.engine")
    return _LocalEngine(workers)


def engine_record(engine):
    return engine.describe()
