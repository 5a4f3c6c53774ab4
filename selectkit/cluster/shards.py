"""cluster's per-shard kernels: the fit sample's keys and rows, and the assignment of every row.

Every kernel reads one shard (a file, or a fixed range of a big Parquet or .npy file; inputs
that are read whole, such as stdin, JSON Lines and CSV, are one shard held in memory) and
returns a small partial result that the driver reduces in shard order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from selectkit.cluster.search import CentroidIndex, assign_block
from selectkit.rng import id_hashes


@dataclass(frozen=True)
class VectorShard:
    """One shard of the input: read from ``shard`` (an engine Shard) or held in ``data``
    (a handle to (ids, matrix), for inputs read whole). ``index`` and ``key`` name its part."""

    index: int
    key: str
    shard: object | None = None
    data: object | None = None
    known: KnownAssignment | None = None  # its rows' clusters, when the fit already found them


@dataclass(frozen=True)
class KnownAssignment:
    """A shard's ids, clusters and distances in row order, found by the fit itself (its last
    Lloyd step, or its last reassignment, ran on every row against the final centroids)."""

    ids: pl.Series
    labels: np.ndarray
    dist: np.ndarray

    def batches(self, batch_size: int) -> Iterator[tuple[pl.Series, np.ndarray, np.ndarray]]:
        for s in range(0, self.labels.size, batch_size):
            yield (
                self.ids.slice(s, batch_size),
                self.labels[s : s + batch_size],
                self.dist[s : s + batch_size],
            )


@dataclass(frozen=True)
class ReadSpec:
    """How a kernel reads the vectors of a shard."""

    embedding_col: str
    id_col: str
    batch_size: int
    input_format: str | None = None


def shard_rows(item: VectorShard, spec: ReadSpec) -> Iterator[tuple[pl.Series, np.ndarray]]:
    """(ids, float32 block) batches of the shard, in row order; memory O(batch)."""
    if item.data is not None:
        ids, matrix = item.data.get()
        for s in range(0, matrix.shape[0], spec.batch_size):
            block = np.asarray(matrix[s : s + spec.batch_size], dtype=np.float32)
            yield ids.slice(s, block.shape[0]), block
        return
    from selectkit.engine.shards import shard_vectors

    yield from shard_vectors(
        item.shard,
        embedding_col=spec.embedding_col,
        id_col=spec.id_col,
        batch_size=spec.batch_size,
        input_format=spec.input_format,
    )


# -- the fit sample ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    read: ReadSpec
    salt: int


@dataclass
class ShardKeys:
    """A shard's row count, vector width and every row's seeded id hash, in row order."""

    rows: int
    dim: int | None
    keys: np.ndarray


def _npy_rows(item: VectorShard, input_format: str | None) -> tuple[int, int] | None:
    """(first row number, rows) of a .npy shard, whose ids are its row numbers; else None."""
    from selectkit.io.formats import detect_format, known_suffix

    shard = item.shard
    if shard is None or not (input_format or known_suffix(shard.path)):
        return None
    if detect_format(shard.path, input_format) != "npy":
        return None
    start, stop = shard.rows or (0, int(np.load(shard.path, mmap_mode="r").shape[0]))
    return (shard.row0 or 0), stop - start


def _parquet_ids_keys(item: VectorShard, spec: KeySpec) -> ShardKeys | tuple[int, int]:
    """A Parquet shard's keys from its id column alone (the vectors are not read); without an
    id column, its (first row number, rows) from the file's metadata."""
    from selectkit.engine.shards import shard_batches
    from selectkit.io.tables import open_parquet

    shard, id_col = item.shard, spec.read.id_col
    parts = [
        id_hashes(frame.get_column(id_col), spec.salt)
        for frame in shard_batches(
            shard,
            columns=[id_col],
            batch_size=spec.read.batch_size,
            id_col=id_col,
            input_format=spec.read.input_format,
        )
        if id_col in frame.columns
    ]
    if parts:
        keys = np.concatenate(parts)
        return ShardKeys(int(keys.size), None, keys)
    start, stop = shard.rows or (0, open_parquet(shard.path).metadata.num_rows)
    return (shard.row0 or 0), stop - start


def shard_keys(item: VectorShard, spec: KeySpec) -> ShardKeys:
    """The seeded hash of every id of the shard (``id_hashes``); O(rows) memory. Only ids
    are read: a Parquet shard's id column; a .npy's (or id-less Parquet's) ids are its row
    numbers, so nothing is read."""
    numbered = _npy_rows(item, spec.read.input_format)
    if numbered is None and item.data is None:
        numbered = _parquet_ids_keys(item, spec)
        if isinstance(numbered, ShardKeys):
            return numbered
    if numbered is not None:
        first, rows = numbered
        keys = id_hashes(np.arange(first, first + rows, dtype=np.int64), spec.salt)
        return ShardKeys(rows, None, keys)
    parts, dim = [], None
    for ids, block in shard_rows(item, spec.read):
        parts.append(id_hashes(ids, spec.salt))
        dim = block.shape[1]
    keys = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    return ShardKeys(int(keys.size), dim, keys)


@dataclass(frozen=True)
class FitRequest:
    """Which rows of a shard the fit takes: sorted positions in the shard, or None (all)."""

    shard: VectorShard
    positions: np.ndarray | None

    @property
    def key(self) -> str:
        return self.shard.key


def shard_fit_rows(item: FitRequest, spec: ReadSpec) -> tuple[pl.Series, list[np.ndarray]]:
    """The ids and float32 vector blocks of the requested rows, in row order; one pass. The
    blocks stay apart, so the driver copies each row once, straight to its place."""
    ids_parts, x_parts, offset = [], [], 0
    want = item.positions
    for ids, block in shard_rows(item.shard, spec):
        if want is None:
            ids_parts.append(ids)
            x_parts.append(block)
        else:
            lo, hi = np.searchsorted(want, [offset, offset + block.shape[0]])
            local = want[lo:hi] - offset
            ids_parts.append(ids.gather(local))
            x_parts.append(block[local])
        offset += block.shape[0]
    if not x_parts:
        return pl.Series(spec.id_col, []), []
    return pl.concat(ids_parts), x_parts


# -- assignment -------------------------------------------------------------------------------


@dataclass
class AssignSpec:
    """What every assignment kernel shares: the centroid index, the maps finest cluster ->
    cluster of each upper level, and where parts go (``staging`` for a folder output)."""

    read: ReadSpec
    index: CentroidIndex
    up: list[np.ndarray] = field(default_factory=list)
    staging: str | None = None
    provenance: object | None = None


@dataclass
class ShardAssignment:
    """A shard's cluster sizes, inertia (the exactly rounded sum of its distances), rows, and either its
    output frames (file output: the driver writes them) or its part's record (folder output)."""

    sizes: np.ndarray
    inertia: float
    rows: int
    frames: list[pl.DataFrame] | None = None
    part: object | None = None


def _assigned(item: VectorShard, spec: AssignSpec):
    """(ids, labels, distances) batches of the shard: the fit's when it found them, else read
    and searched against the centroids."""
    if item.known is not None:
        yield from item.known.batches(spec.read.batch_size)
        return
    for ids, block in shard_rows(item, spec.read):
        yield (ids, *assign_block(block, spec.index))


def shard_assign(item: VectorShard, spec: AssignSpec) -> ShardAssignment:
    """Assign every row of the shard to its nearest centroid (or take the clusters the fit
    found: then nothing is read); O(rows k d), memory O(batch) for a folder output (the kernel
    writes its own part), O(rows) for a file output."""
    k = spec.index.centroids.shape[0]
    state = {"sizes": np.zeros(k, dtype=np.int64), "rows": 0}
    dists: list[np.ndarray] = []

    def frames() -> Iterator[pl.DataFrame]:
        for ids, labels, dist in _assigned(item, spec):
            state["sizes"] += np.bincount(labels, minlength=k)
            dists.append(dist)
            state["rows"] += labels.size
            columns = [
                ids.alias(spec.read.id_col),
                pl.Series("cluster", labels.astype(np.int32)),
                pl.Series("distance", dist),
            ]
            columns += [
                pl.Series(f"cluster_level{i + 2}", level[labels].astype(np.int32))
                for i, level in enumerate(spec.up)
            ]
            yield pl.DataFrame(columns)

    if spec.staging is None:
        out, part = list(frames()), None
    else:
        from selectkit.io.dataset import write_part

        out, part = None, write_part(spec.staging, item, frames(), spec.provenance)
    # exactly rounded, so a resumed run recomputes a reused part's share from its file alone
    inertia = math.fsum(np.concatenate(dists).astype(np.float64)) if dists else 0.0
    return ShardAssignment(state["sizes"], inertia, state["rows"], frames=out, part=part)
