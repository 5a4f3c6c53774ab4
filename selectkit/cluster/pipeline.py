"""The ``cluster`` command: fit k-means (on a sample if asked), then assign every row, shard by
shard, on any engine (the driver: plan, fit matrix, seeding, Lloyd's reductions, outputs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from selectkit import arguments
from selectkit.cluster.hierarchical import check_levels, hierarchical_kmeans
from selectkit.cluster.kmeans import KMEANS_BOUNDS
from selectkit.cluster.outputs import assign_to_file, assign_to_folder
from selectkit.cluster.search import centroid_index
from selectkit.cluster.seeding import SEEDERS, check_k_fits
from selectkit.cluster.shards import AssignSpec, KnownAssignment, ReadSpec
from selectkit.cluster.sources import fit_matrix, plan_input
from selectkit.console import warn
from selectkit.engine import Engine, engine_record
from selectkit.engine.threads import thread_limits
from selectkit.errors import SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    TableWriter,
    check_output_path,
    detect_format,
    output_group,
    write_table,
)
from selectkit.io.dataset import is_folder_output
from selectkit.io.tables import DEFAULT_ID, input_files
from selectkit.params import Param, check_arguments
from selectkit.rng import DEFAULT_SEED, derive_rng

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


def _check_engine_args(engine, ray_address, resume, folder: bool) -> None:
    """Usage checks of the engine options, before any work."""
    from selectkit.engine import ENGINES

    if not isinstance(engine, Engine):
        arguments.text(engine, "engine", choices=list(ENGINES))
    if ray_address is not None:
        arguments.text(ray_address, "ray_address")
    if not isinstance(resume, bool):
        raise SelectkitUsageError(f"{option('resume')} must be True or False, not {resume!r}")
    if resume and not folder:
        raise SelectkitUsageError(
            f"{option('resume')} continues a folder output; give {option('output', cli='-o')} "
            "DIR/ (a trailing slash makes a dataset folder)"
        )


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
    sample_per_centroid: int = 256,
    refine_iters: int = 2,
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
    engine: str | Engine = "local",
    ray_address: str | None = None,
    resume: bool = False,
) -> Provenance:
    """Cluster the vectors of ``input_path`` and write id, cluster, distance to ``output``.

    ``input_path`` is a file, a dataset folder or a quoted glob; ``output`` a file, or a folder
    (``DIR/``) that gets one part per input shard. With ``fit_sample`` the model is fitted on
    that many rows sampled by their ids' seeded hashes and every row is then assigned shard by
    shard, so memory is O(fit_sample * d + shard), not O(n * d). The fit rows are put in id
    order, so the same rows in any order or sharding get the same centroids and clusters.
    With ``levels`` (finest first) a hierarchical k-means is fitted and the output gets one
    ``cluster_level<i>`` column per extra level. ``centroids_out`` receives cluster, centroid,
    size (and level, parent for a hierarchy). ``engine`` ("local", "ray" or an Engine) runs the
    per-shard and per-block kernels (``ray_address``: the cluster; default $RAY_ADDRESS); the
    output is the same bytes on every engine. ``resume`` (folder outputs) reuses the parts of
    an interrupted run with the same inputs and parameters. Returns the provenance written.
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
        sample_per_centroid=sample_per_centroid,
        refine_iters=refine_iters,
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
    folder = is_folder_output(output)
    _check_engine_args(engine, ray_address, resume, folder)
    # every usage check runs before any work: both outputs, their formats, distinct paths
    inputs = [input_path, *input_files(input_path)] if str(input_path) != "-" else []
    check_output_path(output, inputs, folder=folder)
    if centroids_out:
        check_output_path(centroids_out, inputs)
        centroids = option("centroids_out", cli="--centroids")
        if Path(str(centroids_out)).resolve() == Path(str(output)).resolve():
            raise SelectkitUsageError(
                f"{centroids} must be a different file from {option('output', cli='-o')}"
            )
        if detect_format(centroids_out, output=True) not in ("parquet", "jsonl"):
            raise SelectkitUsageError(
                f"{centroids} '{centroids_out}': centroids are vectors; write .parquet or .jsonl"
            )
    if not folder:
        TableWriter(output)  # validates the output's format now (opens nothing)
    from selectkit.engine import get_engine

    eng = get_engine(engine, ray_address=ray_address)
    try:
        with thread_limits(threads):
            return _cluster(
                eng,
                input_path,
                output,
                folder=folder,
                resume=resume,
                ks=ks,
                levels=levels,
                centroids_out=centroids_out,
                seeding=seeding,
                iters=iters,
                tol=tol,
                spherical=spherical,
                seed=seed,
                sample_per_centroid=sample_per_centroid,
                refine_iters=refine_iters,
                max_trials=max_trials,
                chain=chain,
                fit_sample=fit_sample,
                resample_steps=resample_steps,
                sample_size=sample_size,
                read=ReadSpec(embedding_col, id_col, batch_size, input_format),
                threads=threads,
            )
    finally:
        if eng is not engine:  # an Engine the caller gave stays theirs
            eng.close()


def _cluster(
    eng,
    input_path,
    output,
    *,
    folder: bool,
    resume: bool,
    ks: list[int],
    levels,
    centroids_out,
    seeding: str,
    iters: int,
    tol: float,
    spherical: bool,
    seed: int,
    sample_per_centroid: int,
    refine_iters: int,
    max_trials: int,
    chain: int,
    fit_sample,
    resample_steps: int,
    sample_size,
    read: ReadSpec,
    threads,
) -> Provenance:
    prov = Provenance(command="cluster", seed=seed)
    prov.start("read")
    planned = plan_input(str(input_path), read, eng)
    fit = fit_matrix(planned, read, eng, fit_sample, seed)
    prov.stop("read")
    x_fit, n = fit.x, fit.rows
    fit_rows = x_fit.shape[0]
    check_k_fits(
        ks[0],
        fit_rows,
        rows="k-means is fitted on",
        name="levels" if levels else "k",
        hint=f" or raise {option('fit_sample')}" if fit_rows < n else "",
    )
    prov.start("fit")
    tree = hierarchical_kmeans(
        x_fit,
        ks,
        rng_for_level=lambda i: derive_rng(seed, "cluster", "level", i),
        resample_steps=resample_steps if levels else 0,
        sample_size=sample_size,
        seeding=seeding,
        iters=iters,
        tol=tol,
        spherical=spherical,
        max_trials=max_trials,
        chain=chain,
        engine=eng,
        sample_per_centroid=sample_per_centroid,
        refine_iters=refine_iters,
        row_ids=fit.ids,
    )
    prov.stop("fit")
    del x_fit
    finest = tree[0].result
    prov.params = {
        "k": ks[0],
        "levels": levels,
        "seeding": seeding,
        "iters": iters,
        "tol": tol,
        "sample_per_centroid": sample_per_centroid,
        "refine_iters": refine_iters,
        "spherical": spherical,
        # options that the chosen seeding or mode ignores are recorded as None
        "max_trials": max_trials if seeding in ("rs", "rs-greedy") else None,
        "afkmc2_chain": chain if seeding == "afkmc2" else None,
        "fit_sample": fit_sample,
        "fit_rows": fit_rows,
        "resample_steps": resample_steps if levels else None,
        "sample_size": sample_size if levels else None,
        "embedding_col": read.embedding_col,
        "id_col": read.id_col,
        "batch_size": read.batch_size,
        "threads": threads,
    }
    prov.inputs = [source.as_dict() for source in planned.sources]
    planned.items = _with_known_clusters(planned.items, fit, finest, read.id_col)
    spec = AssignSpec(read, centroid_index(finest.centroids, spherical), _ancestors(tree))

    def finish(sizes: np.ndarray, inertia: float) -> None:
        prov.stop("assign")
        prov.metrics = {
            "rows": n,
            "dim": int(finest.centroids.shape[1]),
            "inertia": inertia,
            "fit_inertia": finest.inertia,
            "seed_cost": finest.seed_cost,
            "lloyd_iterations": finest.iterations,
            "empty_clusters": int((sizes == 0).sum()),
            **{k: v for k, v in finest.info.items() if not k.endswith("_s")},
        }
        # seconds are timings (the one part of a provenance that differs between two runs)
        prov.timings.update({k: v for k, v in finest.info.items() if k.endswith("_s")})
        prov.engine = engine_record(eng)
        if centroids_out:
            table = _centroid_table(tree, sizes, levels is not None)
            write_table(table, centroids_out, provenance=prov)

    prov.start("assign")
    with output_group():  # assignments and centroids commit together, or none
        if folder:
            assign_to_folder(eng, planned, spec, output, prov, resume, n, finish)
        else:
            assign_to_file(eng, planned, spec, output, prov, n, finish)
    if prov.metrics["empty_clusters"]:
        warn(
            f"{prov.metrics['empty_clusters']} of {ks[0]} clusters are empty (the data has fewer "
            f"distinct points than {option('k')}, or many duplicates); lower it"
        )
    return prov


def _with_known_clusters(items: list, fit, finest, id_col: str) -> list:
    """The shards, each carrying its rows' clusters when the fit ran on every row: its last
    step labelled every row against the final centroids, in fixed blocks of the id-ordered
    matrix, so assigning needs no second read and gives the same bytes for any sharding, order
    or engine. A fit on a sample (``fit_sample``) leaves the shards to be read and searched."""
    if not fit.complete or finest.labels.size != fit.rows:
        return items
    # one .npy file has no ids: its row numbers are
    ids = fit.ids if fit.ids is not None else pl.Series(id_col, np.arange(fit.rows, dtype=np.int64))
    per_shard = zip(
        fit.in_input_order(ids),
        fit.in_input_order(finest.labels),
        fit.in_input_order(finest.distances),
        strict=True,
    )
    return [
        replace(item, known=KnownAssignment(*known))
        for item, known in zip(items, per_shard, strict=True)
    ]


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
