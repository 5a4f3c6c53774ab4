"""Broadcast a coreset's per-row weights to every pool row by nearest neighbour.

"The Power of Few" (Jafari et al., ICASSP 2024) learns weights on a small coreset (e.g. a
``moderate`` manifest) and gives each full-data row the weight of its nearest coreset row in
embedding space, so the training code reads one ``weight`` column for all rows. ``k > 1``
averages the k nearest (``kernel="distance"``: weighted by 1 / (distance + eps)), so one
outlier's weight does not cover its whole Voronoi cell.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, option
from selectkit.io import Provenance, TableWriter, check_output_path, read_table
from selectkit.io.vector_source import VectorSource, open_vectors
from selectkit.io.vectors import as_matrix, check_finite
from selectkit.params import Param

EPS = 1e-8  # keeps 1 / (d + eps) finite for a pool row on top of a coreset row

BROADCAST_PARAMS = {
    "k": Param(int, 1, "coreset neighbours per pool row (k > 1 averages their weights)", low=1),
    "kernel": Param(
        str,
        "uniform",
        "how k > 1 neighbours are averaged: uniform mean, or distance (1 / (d + eps))",
        ("uniform", "distance"),
    ),
    "batch_size": Param(int, 65536, "pool rows searched per batch", low=1),
}


def coreset_weights(path: str, weight_col: str, id_col: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The coreset table sorted by id (so faiss's ties go to the smallest id, whatever the
    file's row order), with its weights checked and cast to float64, and its source record;
    data errors name the file. O(m log m)."""
    table = read_table(path, id_col=id_col)
    frame = table.frame
    where = f"'{path}'"
    if weight_col not in frame.columns:
        raise SelectkitDataError(
            f"{where} has no column '{weight_col}' (the coreset weights); columns there: "
            f"{', '.join(frame.columns)}; name the weight column with {option('weight_col')}"
        )
    col = frame.get_column(weight_col)
    if not col.dtype.is_numeric():
        raise SelectkitDataError(
            f"column '{weight_col}' of {where} holds {col.dtype}, not numbers; "
            f"name a numeric column with {option('weight_col')}"
        )
    w = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SelectkitDataError(
            f"column '{weight_col}' of {where} has {int(bad.sum())} null, non-finite or negative "
            f"weights (first at id {frame.get_column(id_col)[first]!r}: {w[first]}); "
            "weights must be finite and >= 0"
        )
    if frame.height == 0:
        raise SelectkitDataError(f"{where} has no rows; give a coreset with weights")
    frame = frame.with_columns(pl.Series(weight_col, w)).sort(id_col)
    return frame, table.source.as_dict()


def coreset_vectors(
    frame: pl.DataFrame, path: str, pool: VectorSource, embedding_col: str, id_col: str
) -> np.ndarray:
    """The coreset rows' float32 embeddings: its own column, else the pool's rows of its ids
    (one pass over the pool). A coreset id missing from the pool is a data error."""
    if embedding_col in frame.columns:
        mat = np.ascontiguousarray(as_matrix(frame.get_column(embedding_col), f"'{path}'"))
        check_finite(mat, f"'{path}'", embedding_col)
        return mat
    pool_ids = pool.ids()
    if pool_ids.dtype != frame.schema[id_col]:
        raise SelectkitDataError(
            f"the ids of '{path}' are {frame.schema[id_col]} but those of '{pool.path}' are "
            f"{pool_ids.dtype}; give the coreset the pool's ids (or its own {embedding_col!r} "
            "column)"
        )
    positions = (
        pl.DataFrame({id_col: frame.get_column(id_col)})
        .join(
            pl.DataFrame({id_col: pool_ids, "_row": np.arange(pool_ids.len(), dtype=np.int64)}),
            on=id_col,
            how="left",
            maintain_order="left",
        )
        .get_column("_row")
    )
    if positions.null_count():
        missing = frame.get_column(id_col).filter(positions.is_null())
        raise SelectkitDataError(
            f"{missing.len()} ids of '{path}' are not in '{pool.path}' (first: {missing[0]!r}), "
            f"so their embeddings are unknown; give the pool the coreset came from, or add an "
            f"'{embedding_col}' column to the coreset"
        )
    rows = positions.to_numpy()
    order = np.argsort(rows, kind="stable")
    out = np.empty((rows.size, pool.dim), dtype=np.float32)
    out[order] = pool.take(rows[order])
    return out


def neighbour_weights(
    dist2: np.ndarray, idx: np.ndarray, weights: np.ndarray, kernel: str
) -> np.ndarray:
    """Float64 weight per query row from its k nearest coreset rows (squared distances
    ``dist2``, positions ``idx``, both (m, k)): the mean, or the 1 / (d + eps)-weighted mean."""
    w = weights[idx]
    if idx.shape[1] == 1:
        return w[:, 0]
    if kernel == "uniform":
        return w.mean(axis=1)
    inv = 1.0 / (np.sqrt(np.maximum(dist2.astype(np.float64), 0.0)) + EPS)
    return (w * inv).sum(axis=1) / inv.sum(axis=1)


def broadcast_weights(
    coreset: str | Path,
    pool: str | Path,
    output: str | Path,
    *,
    k: int = 1,
    kernel: str = "uniform",
    weight_col: str = "weight",
    embedding_col: str = "embedding",
    id_col: str = "id",
    batch_size: int = 65536,
) -> dict[str, Any]:
    """Write ``output`` with one row per ``pool`` row: ``id``, ``weight`` (the weight of its
    nearest ``coreset`` row, or the average of the ``k`` nearest) and, for ``k=1``,
    ``source_id`` (that coreset row's id). Returns the run summary.

    ``coreset``: a table with ``id`` and ``weight_col`` (finite, >= 0) and optionally its own
    ``embedding_col``; otherwise its rows' embeddings are looked up in ``pool`` by id. Exact
    L2 search (faiss ``IndexFlatL2``); the pool is streamed in batches of ``batch_size``; ties
    in distance go to the smallest coreset id. Cost: O(n * m * d) time for n pool and m coreset
    rows, memory O(m d + batch_size * (d + k)). The write is atomic.
    """
    k = BROADCAST_PARAMS["k"].check("k", k)
    kernel = BROADCAST_PARAMS["kernel"].check("kernel", kernel)
    batch_size = BROADCAST_PARAMS["batch_size"].check("batch_size", batch_size)
    coreset, pool, output = str(coreset), str(pool), str(output)
    check_output_path(output, [coreset, pool])
    TableWriter(output)  # refuses an unwritable format (.npy) before any work
    prov = Provenance(
        command="weights broadcast",
        params={
            "k": k,
            "kernel": kernel,
            "weight_col": weight_col,
            "embedding_col": embedding_col,
            "id_col": id_col,
        },
    )
    prov.start("read")
    frame, core_source = coreset_weights(coreset, weight_col, id_col)
    vs = open_vectors(pool, embedding_col=embedding_col, id_col=id_col)
    vectors = coreset_vectors(frame, coreset, vs, embedding_col, id_col)
    prov.stop("read")
    m = vectors.shape[0]
    if k > m:
        raise SelectkitDataError(
            f"{option('k', k)} is larger than the coreset '{coreset}' of {m} rows; "
            f"give {option('k', m)} or less"
        )
    if vectors.shape[1] != vs.dim:
        raise SelectkitDataError(
            f"the coreset '{coreset}' has {vectors.shape[1]}-dimensional embeddings but the pool "
            f"'{pool}' has {vs.dim}; give both in the same embedding space"
        )
    weights = frame.get_column(weight_col).to_numpy()
    core_ids = frame.get_column(id_col)
    index = faiss.IndexFlatL2(vs.dim)
    index.add(vectors)
    prov.start("search")
    rows, total_w, total_d = 0, 0.0, 0.0
    started = time.perf_counter()
    with TableWriter(output) as writer:
        for ids, block in vs.batches(batch_size):
            dist2, idx = index.search(np.ascontiguousarray(block, dtype=np.float32), k)
            w = neighbour_weights(dist2, idx, weights, kernel)
            columns = {id_col: ids, "weight": pl.Series("weight", w, dtype=pl.Float64)}
            if k == 1:
                columns["source_id"] = core_ids.gather(idx[:, 0]).alias("source_id")
            writer.write(pl.DataFrame(columns))
            rows += block.shape[0]
            total_w += float(w.sum())
            total_d += float(np.sqrt(np.maximum(dist2[:, 0], 0.0)).sum())
        prov.stop("search")
        prov.inputs = [core_source, vs.source.as_dict()]
        prov.metrics = {
            "rows": rows,
            "coreset_rows": m,
            "mean_weight": total_w / rows if rows else 0.0,
            "mean_nearest_distance": total_d / rows if rows else 0.0,
        }
        writer.provenance = prov
    return {
        "output": output,
        **prov.metrics,
        "seconds": round(time.perf_counter() - started, 3),
    }
