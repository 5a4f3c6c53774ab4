"""cluster's outputs: the assignment of every row, shard by shard, to one file or a folder.

A file output is written on the driver from the shards' frames, in shard order; a folder output
(``-o DIR/``) gets one part per shard, written by the kernel that assigned it. Either way the
driver adds the shards' cluster sizes and inertia in shard order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from selectkit.cluster.shards import AssignSpec, shard_assign
from selectkit.cluster.sources import Planned
from selectkit.console import progress_bar
from selectkit.engine import Engine
from selectkit.io import Provenance, TableWriter


def assign_to_file(
    engine: Engine,
    planned: Planned,
    spec: AssignSpec,
    output: str | Path,
    prov: Provenance,
    rows: int,
    finish: Callable[[np.ndarray, float], None],
) -> None:
    """Assign every shard on ``engine`` and write the rows to ``output`` in shard order; then
    ``finish(sizes, inertia)`` (metrics, centroids) before the file is committed."""
    k = spec.index.centroids.shape[0]
    sizes, inertia = np.zeros(k, dtype=np.int64), 0.0
    with TableWriter(output) as writer, progress_bar("assign", rows) as bar:
        for result in engine.map(shard_assign, planned.items, shared=spec):
            sizes += result.sizes
            inertia += result.inertia
            for frame in result.frames:
                writer.write(frame)
            bar.advance(result.rows)
        finish(sizes, inertia)
        writer.provenance = prov


def identity(prov: Provenance) -> dict:
    """What ``--resume`` must find unchanged: the inputs' fingerprints and every parameter that
    changes the output (``threads`` does not)."""
    return {
        "inputs": [{"path": s["path"], "fingerprint": s["fingerprint"]} for s in prov.inputs],
        "params": {name: v for name, v in prov.params.items() if name != "threads"},
    }


def assign_to_folder(
    engine: Engine,
    planned: Planned,
    spec: AssignSpec,
    output: str | Path,
    prov: Provenance,
    resume: bool,
    rows: int,
    finish: Callable[[np.ndarray, float], None],
) -> None:
    """Assign the shards still to do on ``engine``, each kernel writing its own part; with
    ``resume`` the intact parts of an earlier run are reused (their sizes and inertia are read
    back from their ``cluster`` and ``distance`` columns). Then ``finish`` and commit."""
    from selectkit.io.dataset import DatasetWriter, part_name

    k = spec.index.centroids.shape[0]
    part_prov = Provenance(
        command="cluster", seed=prov.seed, params=prov.params, inputs=prov.inputs
    )
    with DatasetWriter(output, command="cluster", identity=identity(prov), resume=resume) as writer:
        todo = writer.todo(planned.items)
        spec.staging, spec.provenance = str(writer.staging), part_prov
        partial: dict[int, tuple[np.ndarray, float]] = {}
        with progress_bar("assign", rows) as bar:
            for item, result in zip(todo, engine.map(shard_assign, todo, shared=spec), strict=True):
                writer.done(result.part)
                partial[item.index] = (result.sizes, result.inertia)
                bar.advance(result.rows)
        reused = {part.name for part in writer.reused}
        for item in planned.items:
            if part_name(item.index) in reused:
                partial[item.index] = _part_stats(writer.staging / part_name(item.index), k)
        sizes, inertia = np.zeros(k, dtype=np.int64), 0.0
        for item in planned.items:  # shard order
            sizes += partial[item.index][0]
            inertia += partial[item.index][1]
        finish(sizes, inertia)
        writer.commit(prov)


def _part_stats(path: Path, k: int) -> tuple[np.ndarray, float]:
    """A finished part's cluster sizes and inertia, as its kernel computed them."""
    table = pq.read_table(path, columns=["cluster", "distance"])
    labels = table.column("cluster").to_numpy()
    dist = table.column("distance").to_numpy().astype(np.float64)
    return np.bincount(labels, minlength=k).astype(np.int64), math.fsum(dist)
