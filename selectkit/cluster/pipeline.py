"""The ``cluster`` command: fit k-means (on a sample if asked), then assign every row in a stream."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit import arguments
from selectkit.cluster.hierarchical import check_levels, hierarchical_kmeans
from selectkit.cluster.kmeans import KMEANS_BOUNDS, assign_block, centroid_index
from selectkit.cluster.seeding import SEEDERS, check_k_fits
from selectkit.console import progress_bar, warn
from selectkit.errors import SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    TableWriter,
    check_output_path,
    detect_format,
    output_group,
    write_table,
)
from selectkit.io.tables import DEFAULT_ID, check_unique_ids
from selectkit.io.vector_source import open_vectors
from selectkit.params import Param, check_arguments
from selectkit.rng import DEFAULT_SEED, derive_rng, derive_salt, id_hashes, smallest_keys

#: the one declaration of `selectkit cluster`'s numeric bounds; its CLI options' min/max match it
CLUSTER_BOUNDS = {
    **KMEANS_BOUNDS,
    "k": replace(KMEANS_BOUNDS["k"], default=None),  # or levels=
    "seed": replace(KMEANS_BOUNDS["seed"], default=DEFAULT_SEED),
    "fit_sample": Param(int, None, "fit on this many sampled rows, assign every row", low=1),
    "resample_steps": Param(int, 10, "hierarchical: resampling rounds per level", low=0),
    "sample_size": Param(int, None, "hierarchical: points kept per cluster when resampling", low=1),
    "batch_size": Param(int, 65536, "rows assigned per batch", low=1),
    "threads": Param(int, None, "faiss threads (default: all cores)", low=1),
}


def parse_levels(text: str, name: str = "levels") -> list[int]:
    """'10000,1000,100' -> [10000, 1000, 100]; ``name`` is the argument's (``sample_size``)."""
    name = name.lstrip("-").replace("-", "_")  # "--sample-size" as callers used to pass
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SelectkitUsageError(
            f"{option(name)} {text!r} must be comma-separated integers"
        ) from None
    if not levels or min(levels) < 1:
        raise SelectkitUsageError(f"{option(name)} {text!r} must list positive integers")
    return levels


def _fit_matrix(vs, fit_rows: int, seed: int) -> np.ndarray:
    """The rows k-means is fitted on, in id order: every row, or the ``fit_rows`` rows with the
    smallest seeded hashes of their ids. Both the sample and the order follow the ids, never the
    rows' positions, so the same rows in another order fit the same centroids (and so get the
    same clusters). Cost: the ids in memory; a copy of the fit rows when they are out of order."""
    ids = vs.ids()
    if fit_rows < vs.n:
        keys = id_hashes(ids, derive_salt(seed, "cluster", "fit-sample"))
        rows = np.sort(smallest_keys(keys, fit_rows))  # sorted positions: one pass to read them
        x_fit, ids = vs.take(rows), ids.gather(rows)
    else:
        x_fit = vs.load()
    if ids.is_sorted():
        return x_fit
    return np.ascontiguousarray(x_fit[ids.arg_sort().to_numpy()])


def cluster_file(
    input_path: str | Path,
    output: str | Path,
    *,
    k: int | None = None,
    levels: list[int] | None = None,
    centroids_out: str | Path | None = None,
    seeding: str = "rs-greedy",
    iters: int = 25,
    tol: float = 1e-4,
    spherical: bool = False,
    seed: int = DEFAULT_SEED,
    max_trials: int = 0,
    chain: int = 50,
    fit_sample: int | None = None,
    resample_steps: int = 10,
    sample_size: int | list[int] | None = None,
    embedding_col: str = "embedding",
    id_col: str = DEFAULT_ID,
    batch_size: int = 65536,
    threads: int | None = None,
    input_format: str | None = None,
) -> Provenance:
    """Cluster the vectors of ``input_path`` and write id, cluster, distance to ``output``.

    With ``fit_sample`` the model is fitted on that many uniformly sampled rows and every row is
    then assigned in a stream of batches, so memory is O(fit_sample * d + batch), not O(n * d).
    The fit sample and its order derive from the seed and the ids (``_fit_matrix``), so the same
    rows in any order get the same clusters.
    With ``levels`` (finest first) a hierarchical k-means is fitted and the output gets one
    ``cluster_level<i>`` column per extra level. ``centroids_out`` receives cluster, centroid,
    size (and level, parent for a hierarchy). Returns the provenance written.
    """
    input_path = arguments.path(input_path, "input_path")
    output = arguments.path(output, "output")
    centroids_out = arguments.optional_path(centroids_out, "centroids_out")
    if (k is None) == (levels is None):
        raise SelectkitUsageError(
            f"give either {option('k')} (flat k-means) or {option('levels')} (hierarchical)"
        )
    if levels is not None:
        if isinstance(levels, (str, int)) or not isinstance(levels, (list, tuple)):
            raise SelectkitUsageError(
                f"{option('levels')} must be a list of cluster counts, finest first "
                f"(e.g. [100, 10]), not {levels!r}"
            )
        for level in levels:
            arguments.integer(level, "levels", min=1)
        check_levels(list(levels))
    ks = list(levels) if levels is not None else [k]
    sizes = sample_size if isinstance(sample_size, list) else [sample_size]
    check_arguments(
        CLUSTER_BOUNDS,
        k=k,
        iters=iters,
        tol=tol,
        max_trials=max_trials,
        chain=chain,
        fit_sample=fit_sample,
        resample_steps=resample_steps,
        batch_size=batch_size,
        threads=threads,
        seed=seed,
    )
    for size in sizes:
        check_arguments(CLUSTER_BOUNDS, sample_size=size)
    if isinstance(sample_size, list) and len(sample_size) != len(ks):
        raise SelectkitUsageError(
            f"{option('sample_size')} lists {len(sample_size)} values for {len(ks)} levels; give "
            "one value or one per level"
        )
    arguments.text(seeding, "seeding", choices=SEEDERS)
    # every usage check runs before any work: both outputs, their formats, distinct paths
    outputs = [output] + ([centroids_out] if centroids_out else [])
    for out in outputs:
        check_output_path(out, [input_path])
    if centroids_out:
        centroids = option("centroids_out", cli="--centroids")
        if Path(str(centroids_out)).resolve() == Path(str(output)).resolve():
            raise SelectkitUsageError(
                f"{centroids} must be a different file from {option('output', cli='-o')}"
            )
        if detect_format(centroids_out, output=True) not in ("parquet", "jsonl"):
            raise SelectkitUsageError(
                f"{centroids} '{centroids_out}': centroids are vectors; write .parquet or .jsonl"
            )
    TableWriter(output)  # validates the output's format now (opens nothing)
    prov = Provenance(command="cluster", seed=seed)
    vs = open_vectors(
        input_path, embedding_col=embedding_col, id_col=id_col, input_format=input_format
    )
    fit_rows = vs.n if not fit_sample or fit_sample >= vs.n else fit_sample
    check_k_fits(
        ks[0],
        fit_rows,
        rows="k-means is fitted on",
        name="levels" if levels else "k",
        hint=f" or raise {option('fit_sample')}" if fit_rows < vs.n else "",
    )
    with threadpool_limits(limits=threads):
        prov.start("read")
        x_fit = _fit_matrix(vs, fit_rows, seed)
        prov.stop("read")
        common = dict(
            seeding=seeding,
            iters=iters,
            tol=tol,
            spherical=spherical,
            max_trials=max_trials,
            chain=chain,
        )
        prov.start("fit")
        tree = hierarchical_kmeans(
            x_fit,
            ks,
            rng_for_level=lambda i: derive_rng(seed, "cluster", "level", i),
            resample_steps=resample_steps if levels else 0,
            sample_size=sample_size,
            **common,
        )
        prov.stop("fit")
        finest = tree[0].result
        up = _ancestors(tree)
        prov.start("assign")
        sizes = np.zeros(ks[0], dtype=np.int64)
        inertia = 0.0
        id_chunks: list[pl.Series] = []
        index = centroid_index(finest.centroids, spherical)
        with (
            output_group(),  # assignments and centroids commit together, or none
            TableWriter(output) as writer,
            progress_bar("assign", vs.n) as bar,
        ):
            for ids, block in vs.batches(batch_size):
                labels, dist = assign_block(block, index, spherical)
                sizes += np.bincount(labels, minlength=ks[0])
                inertia += float(dist.astype(np.float64).sum())
                id_chunks.append(ids)
                columns = [
                    ids.alias(id_col),
                    pl.Series("cluster", labels.astype(np.int32)),
                    pl.Series("distance", dist),
                ]
                columns += [
                    pl.Series(f"cluster_level{i + 2}", up[i][labels].astype(np.int32))
                    for i in range(len(up))
                ]
                writer.write(pl.DataFrame(columns))
                bar.advance(block.shape[0])
            check_unique_ids(pl.concat(id_chunks), f"'{input_path}'")
            prov.stop("assign")
            prov.params = {
                "k": ks[0],
                "levels": levels,
                "seeding": seeding,
                "iters": iters,
                "tol": tol,
                "spherical": spherical,
                # options that the chosen seeding or mode ignores are recorded as None
                "max_trials": max_trials if seeding in ("rs", "rs-greedy") else None,
                "afkmc2_chain": chain if seeding == "afkmc2" else None,
                "fit_sample": fit_sample,
                "fit_rows": fit_rows,
                "resample_steps": resample_steps if levels else None,
                "sample_size": sample_size if levels else None,
                "embedding_col": embedding_col,
                "id_col": id_col,
                "batch_size": batch_size,
                "threads": threads,
            }
            prov.inputs = [vs.source.as_dict()]
            prov.metrics = {
                "rows": vs.n,
                "dim": vs.dim,
                "inertia": inertia,
                "fit_inertia": finest.inertia,
                "seed_cost": finest.seed_cost,
                "lloyd_iterations": finest.iterations,
                "empty_clusters": int((sizes == 0).sum()),
                **finest.info,
            }
            writer.provenance = prov
            if centroids_out:
                table = _centroid_table(tree, sizes, levels is not None)
                write_table(table, centroids_out, provenance=prov)
    if prov.metrics["empty_clusters"]:
        warn(
            f"{prov.metrics['empty_clusters']} of {ks[0]} clusters are empty (the data has fewer "
            f"distinct points than {option('k')}, or many duplicates); lower it"
        )
    return prov


def _ancestors(tree) -> list[np.ndarray]:
    """For each level above the finest, the map finest-cluster -> cluster at that level."""
    maps, current = [], np.arange(tree[0].k)
    for level in tree[:-1]:
        current = level.parents[current]
        maps.append(current)
    return maps


def _centroid_table(tree, finest_sizes: np.ndarray, hierarchical: bool) -> pl.DataFrame:
    frames = []
    sizes = finest_sizes
    for i, level in enumerate(tree):
        frame = pl.DataFrame(
            {
                "cluster": np.arange(level.k, dtype=np.int32),
                "centroid": level.result.centroids.astype(np.float32),
                "size": sizes.astype(np.int64),
            }
        )
        if hierarchical:
            parent = level.parents if level.parents is not None else np.full(level.k, -1)
            frame = frame.with_columns(
                pl.lit(i + 1, dtype=pl.Int32).alias("level"),
                pl.Series("parent", parent.astype(np.int32)),
            )
        frames.append(frame)
        if level.parents is not None:
            sizes = np.bincount(level.parents, weights=sizes, minlength=tree[i + 1].k).astype(
                np.int64
            )
    return pl.concat(frames) if hierarchical else frames[0]
