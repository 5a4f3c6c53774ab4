"""cluster's input as shards, and the fit matrix drawn from them (driver side).

The fit matrix is the same bytes whatever the sharding or the engine: the sample is the
``fit_rows`` rows with the smallest seeded hashes of their ids (ties by row), and it is put in
id order, exactly as one pass over one file would put it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from selectkit.cluster.shards import (
    FitRequest,
    KeySpec,
    ReadSpec,
    VectorShard,
    shard_fit_rows,
    shard_keys,
)
from selectkit.engine import Engine
from selectkit.engine.threads import Background
from selectkit.errors import SelectkitDataError
from selectkit.io.tables import Source
from selectkit.io.vector_source import open_vectors
from selectkit.rng import derive_salt, smallest_keys


@dataclass
class Planned:
    """The input's shards, how messages name it, and its provenance record."""

    items: list[VectorShard]
    where: str
    sources_of: Callable[[], list[Source]]  # the provenance records (may wait for a hash)
    matrix: np.ndarray | None = None  # a single .npy input, memory-mapped

    @property
    def sources(self) -> list[Source]:
        """The input's provenance records (waits for its content hash)."""
        return self.sources_of()


def plan_input(path: str, read: ReadSpec, engine: Engine) -> Planned:
    """The shards of ``path`` (a file, a dataset folder or a quoted glob): Parquet and .npy by
    files and row ranges (``plan_shards``); anything read whole (stdin, JSON Lines, CSV) as one
    shard held on the engine. The input is opened and checked up front (``open_vectors``:
    columns, row count, ids unique across all parts)."""
    from selectkit.engine.shards import plan_shards

    where = "stdin" if path == "-" else f"'{path}'"
    vs = open_vectors(
        path, embedding_col=read.embedding_col, id_col=read.id_col, input_format=read.input_format
    )
    npy = vs._matrix is not None and vs.source.format == "npy"
    if vs._matrix is not None and not npy:  # read whole, as it always was
        data = engine.put((vs.ids(), np.asarray(vs.load(), dtype=np.float32)))
        key = "-" if path == "-" else os.path.basename(path)
        known = [vs.source]  # hashed already, by the format check above
        return Planned([VectorShard(0, key, data=data)], where, lambda: known)
    shards = plan_shards([path], input_format=read.input_format)
    items = [VectorShard(s.index, s.key, shard=s) for s in shards]
    # hashing a file releases the GIL: it overlaps the read of the rows (0.6 s of 470 MiB)
    hashing = Background(lambda: [vs.source])
    return Planned(items, where, hashing.result, vs.load() if npy else None)


@dataclass
class FitMatrix:
    x: np.ndarray  # float32 (fit_rows, d), in id order
    rows: int  # rows of the whole input
    shard_rows: list[int]
    ids: pl.Series | None = None  # the fit rows' ids, sorted (None: a .npy's row numbers)
    complete: bool = False  # x holds every row of the input (no sample was drawn)
    rank: np.ndarray | None = None  # complete: each input row's row in x (None: the same row)

    def in_input_order(self, values: np.ndarray | pl.Series) -> list:
        """Per-row ``values`` of x (one per fit row, id order: an array or a Series) put back in
        input order and cut into the shards' rows (only for a complete fit matrix). O(n)."""
        if self.rank is not None:
            values = (
                values.gather(self.rank) if isinstance(values, pl.Series) else values[self.rank]
            )
        bounds = np.cumsum([0, *self.shard_rows])
        return [values[int(a) : int(b)] for a, b in itertools.pairwise(bounds)]


def fit_matrix(
    planned: Planned, read: ReadSpec, engine: Engine, fit_sample: int | None, seed: int
) -> FitMatrix:
    """The rows k-means is fitted on, in id order: every row, or the ``fit_sample`` rows with
    the smallest hashes of their ids seeded by ``seed`` (``id_hashes`` with the salt
    ``derive_salt(seed, "cluster", "fit-sample")``, ties by row). Kernels return each shard's
    hashes, then its chosen rows; both follow the ids, never the rows' positions or the shards.
    Cost: two passes over the input with a sample (8 bytes per row on the driver), one
    without; the fit rows in memory."""
    items = planned.items
    if planned.matrix is not None and (not fit_sample or fit_sample >= planned.matrix.shape[0]):
        # every row of one .npy file, whose ids are its row numbers: fit on the memory map
        n = planned.matrix.shape[0]
        return FitMatrix(
            planned.matrix,
            n,
            [(s.shard.rows or (0, n))[1] - (s.shard.rows or (0, n))[0] for s in items],
            complete=True,
        )
    complete = True
    if fit_sample:
        spec = KeySpec(read, derive_salt(seed, "cluster", "fit-sample"))
        found = list(engine.map(shard_keys, items, shared=spec))
        shard_rows = [r.rows for r in found]
        keys = np.concatenate([r.keys for r in found])
        _no_rows(keys.size, planned.where)
        if fit_sample < keys.size:
            complete = False
            chosen = np.sort(smallest_keys(keys, fit_sample))
            bounds = np.searchsorted(chosen, np.cumsum([0, *shard_rows]))
            starts = np.cumsum([0, *shard_rows])
            requests = [
                FitRequest(item, chosen[bounds[i] : bounds[i + 1]] - starts[i])
                for i, item in enumerate(items)
                if bounds[i + 1] > bounds[i]
            ]
        else:
            requests = [FitRequest(item, None) for item in items]
        parts = list(engine.map(shard_fit_rows, requests, shared=read))
    else:
        parts = list(engine.map(shard_fit_rows, [FitRequest(i, None) for i in items], shared=read))
        shard_rows = [p[0].len() for p in parts]
    parts = [p for p in parts if p[0].len()]
    _no_rows(sum(p[0].len() for p in parts), planned.where)
    ids = pl.concat([p[0] for p in parts])
    rank = None
    blocks = [block for part in parts for block in part[1]]
    del parts
    if ids.is_sorted():
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    else:  # each block's rows scattered straight to their id rank: one copy, not two
        order = ids.arg_sort().to_numpy()
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        x = np.empty((order.size, blocks[0].shape[1]), dtype=np.float32)
        start = 0
        for i in range(len(blocks)):
            block, blocks[i] = blocks[i], None  # each block is freed once placed
            x[rank[start : start + block.shape[0]]] = block
            start += block.shape[0]
        ids = ids.gather(order)
    return FitMatrix(x, int(sum(shard_rows)), shard_rows, ids, complete, rank if complete else None)


def _no_rows(n: int, where: str) -> None:
    if n == 0:
        raise SelectkitDataError(f"{where} has no rows")
