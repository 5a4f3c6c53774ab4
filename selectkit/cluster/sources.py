"""cluster's input as shards, and the fit matrix drawn from them (driver side).

The fit matrix is the same bytes whatever the sharding or the engine: the sample is the
``fit_rows`` rows with the smallest seeded hashes of their ids (ties by row), and it is put in
id order, exactly as one pass over one file would put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import polars as pl

from selectkit.cluster._exec import put, run_map
from selectkit.cluster.shards import (
    FitRequest,
    KeySpec,
    ReadSpec,
    VectorShard,
    shard_fit_rows,
    shard_ids_with_keys,
    shard_keys,
)
from selectkit.errors import SelectkitDataError
from selectkit.io.tables import Source, check_unique_ids, fingerprint_file
from selectkit.io.vector_source import open_vectors
from selectkit.rng import derive_salt, smallest_keys


@dataclass
class Planned:
    """The input's shards, how messages name it, and its provenance (``rows`` filled later)."""

    items: list[VectorShard]
    where: str
    sources: list[Source]
    paths: list[str | None]  # each item's file (None: held in memory)
    matrix: np.ndarray | None = None  # a single .npy input, memory-mapped


def _one_file(path: str) -> bool:
    """A single file (or stdin), not a folder or a quoted glob that names several."""
    if path == "-" or os.path.isfile(path):
        return True
    return not (os.path.isdir(path) or any(c in path for c in "*?["))


def plan_input(path: str, read: ReadSpec, engine) -> Planned:
    """The shards of ``path``: a Parquet or .npy file by row ranges (``plan_shards``), a
    dataset folder or quoted glob by parts, anything read whole (stdin, JSON Lines, CSV) as one
    shard in memory. A single file is opened and checked up front (columns, ids, rows)."""
    from selectkit.engine.shards import plan_shards

    where = "stdin" if path == "-" else f"'{path}'"
    if _one_file(path):
        vs = open_vectors(
            path,
            embedding_col=read.embedding_col,
            id_col=read.id_col,
            input_format=read.input_format,
        )
        if vs._parquet is None and vs.source.format != "npy":  # read whole, as it always was
            data = put(engine, (vs.ids(), np.asarray(vs.load(), dtype=np.float32)))
            return Planned([VectorShard(0, "-" if path == "-" else os.path.basename(path), data=data)],
                           where, [vs.source], [None])  # fmt: skip
        shards = plan_shards([path], input_format=read.input_format)
        items = [VectorShard(s.index, s.key, shard=s) for s in shards]
        matrix = vs.load() if vs.source.format == "npy" else None
        return Planned(items, where, [vs.source], [s.path for s in shards], matrix)
    shards = plan_shards([path], input_format=read.input_format)
    if not shards:
        raise SelectkitDataError(f"{where} holds no input files")
    files = list(dict.fromkeys(s.path for s in shards))
    sources = [Source(f, _format_of(f), 0, fingerprint_file(f)) for f in files]
    return Planned([VectorShard(s.index, s.key, shard=s) for s in shards], where, sources,
                   [s.path for s in shards])  # fmt: skip


def _format_of(path: str) -> str:
    from selectkit.io.formats import detect_format

    return detect_format(path, None)


def fill_rows(planned: Planned, rows: list[int]) -> None:
    """Record each input file's row count (from its shards') in the provenance sources."""
    if len(planned.sources) == 1 and planned.sources[0].rows:
        return
    per_file: dict[str, int] = {}
    for path, count in zip(planned.paths, rows, strict=True):
        if path is not None:
            per_file[path] = per_file.get(path, 0) + count
    for source in planned.sources:
        source.rows = per_file.get(source.path, source.rows)


@dataclass
class FitMatrix:
    x: np.ndarray  # float32 (fit_rows, d), in id order
    rows: int  # rows of the whole input
    shard_rows: list[int]


def fit_matrix(
    planned: Planned, read: ReadSpec, engine, fit_sample: int | None, seed: int
) -> FitMatrix:
    """The rows k-means is fitted on, in id order: every row, or the ``fit_sample`` rows with
    the smallest hashes of their ids seeded by ``seed`` (``id_hashes`` with the salt
    ``derive_salt(seed, "cluster", "fit-sample")``, ties by row). Kernels return each shard's
    hashes, then its chosen rows; both follow the ids, never the rows' positions or the shards.
    Duplicate ids are refused here, naming one. Cost: two passes over the input with a sample
    (8 bytes per row on the driver), one without; the fit rows in memory."""
    items = planned.items
    if planned.matrix is not None and (not fit_sample or fit_sample >= planned.matrix.shape[0]):
        # every row of one .npy file, whose ids are its row numbers: fit on the memory map
        n = planned.matrix.shape[0]
        return FitMatrix(
            planned.matrix,
            n,
            [(s.shard.rows or (0, n))[1] - (s.shard.rows or (0, n))[0] for s in items],
        )
    if fit_sample:
        spec = KeySpec(read, derive_salt(seed, "cluster", "fit-sample"))
        found = list(run_map(engine, shard_keys, items, spec))
        shard_rows = [r.rows for r in found]
        keys = np.concatenate([r.keys for r in found])
        _no_rows(keys.size, planned.where)
        _check_unique_keys(keys, items, engine, spec, planned.where)
        if fit_sample < keys.size:
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
        parts = list(run_map(engine, shard_fit_rows, requests, read))
    else:
        parts = list(run_map(engine, shard_fit_rows, [FitRequest(i, None) for i in items], read))
        shard_rows = [p[0].len() for p in parts]
    parts = [p for p in parts if p[0].len()]
    _no_rows(sum(p[0].len() for p in parts), planned.where)
    ids = pl.concat([p[0] for p in parts])
    x = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    if not fit_sample:
        check_unique_ids(ids.alias(read.id_col), planned.where)
    fill_rows(planned, shard_rows)
    if not ids.is_sorted():
        x = np.ascontiguousarray(x[ids.arg_sort().to_numpy()])
    return FitMatrix(x, int(sum(shard_rows)), shard_rows)


def _no_rows(n: int, where: str) -> None:
    if n == 0:
        raise SelectkitDataError(f"{where} has no rows")


def _check_unique_keys(keys, items, engine, spec: KeySpec, where: str) -> None:
    """Refuse repeated ids: a repeated hash is confirmed on the ids themselves (re-read)."""
    ordered = np.sort(keys)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if repeated.size == 0:
        return
    suspects = list(run_map(engine, shard_ids_with_keys, items, (spec, repeated)))
    check_unique_ids(pl.concat(suspects).alias(spec.read.id_col), where)
