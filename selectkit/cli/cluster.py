"""``selectkit cluster``: k-means on vectors (thin shell over :func:`selectkit.cluster_file`)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit.cli._options import (
    EmbeddingCol,
    EngineOpt,
    FolderOutput,
    IdCol,
    InputFormat,
    Json,
    RayAddressOpt,
    ResumeOpt,
    Seed,
    Threads,
)
from selectkit.cli._run import check_json_stdout, report


def cluster(
    input: Annotated[
        str, typer.Argument(help="Vectors: .npy, or a table with an embedding column.")
    ],
    output: FolderOutput,
    k: Annotated[
        Optional[int], typer.Option("-k", "--k", min=1, help="Number of clusters.")
    ] = None,
    levels: Annotated[
        Optional[str],
        typer.Option(
            "--levels",
            help="Hierarchical k-means: cluster counts finest first, e.g. 10000,1000,100.",
        ),
    ] = None,
    centroids: Annotated[
        Optional[str],
        typer.Option("--centroids", help="Also write centroids (cluster, centroid, size) here."),
    ] = None,
    seeding: Annotated[
        str,
        typer.Option(
            "--seeding", help="rs-greedy (default), rs, kmeans++, greedy, afkmc2 or random."
        ),
    ] = "rs-greedy",
    max_trials: Annotated[
        int,
        typer.Option(
            "--max-trials", min=0, help="rs: cap on trials per centre, then uniform (0 = no cap)."
        ),
    ] = 0,
    chain: Annotated[int, typer.Option("--chain", min=1, help="afkmc2: Markov chain length.")] = 50,
    iters: Annotated[
        int, typer.Option("--iters", min=0, help="Lloyd iterations after seeding (0 = seeds only).")
    ] = 25,
    tol: Annotated[
        float,
        typer.Option(
            "--tol", min=0.0, help="Stop when the cost falls by less than this (relative)."
        ),
    ] = 1e-4,
    sample_per_centroid: Annotated[
        int,
        typer.Option(
            "--sample-per-centroid",
            min=0,
            help="Seed and run Lloyd on max(this x k, 65536) rows sampled by id hash, then "
            "--refine-iters Lloyd iterations on every row; 0 = every iteration on every row.",
        ),
    ] = 256,
    refine_iters: Annotated[
        int,
        typer.Option(
            "--refine-iters",
            min=0,
            help="Lloyd iterations on every row after the sample's (sampled schedule).",
        ),
    ] = 2,
    spherical: Annotated[
        bool, typer.Option("--spherical", help="Cosine k-means (unit-norm centroids).")
    ] = False,
    fit_sample: Annotated[
        Optional[int],
        typer.Option(
            "--fit-sample",
            min=1,
            help="Fit on this many sampled rows, then assign all rows in a stream.",
        ),
    ] = None,
    resample_steps: Annotated[
        int,
        typer.Option("--resample-steps", min=0, help="Hierarchical: resampling rounds per level."),
    ] = 10,
    sample_size: Annotated[
        Optional[str],
        typer.Option(
            "--sample-size",
            help="Hierarchical: points kept per cluster when resampling, one value or one per "
            "level (e.g. 10,3; default: half the mean cluster size).",
        ),
    ] = None,
    embedding_col: EmbeddingCol = "embedding",
    id_col: IdCol = "id",
    seed: Seed = 0,
    input_format: InputFormat = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per assignment batch.")
    ] = 65536,
    threads: Threads = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    resume: ResumeOpt = False,
    as_json: Json = False,
) -> None:
    """k-means: writes id, cluster, distance (squared distance to its centroid) per row.

    Seeding by rejection-sampling k-means++; rs-greedy (default) keeps the best of 2+ln k
    rejection-sampled candidates per centre, ranked on a lightweight coreset, which matches greedy
    k-means++ quality at a fraction of its cost. Then Lloyd iterations on faiss. With --fit-sample
    the model is fitted on a sample and every row is assigned in a stream (for data bigger than
    memory). With --levels a hierarchical k-means with resampling is built (Vo et al. 2024).
    The input may be a dataset folder or a quoted glob; -o DIR/ writes one part per input shard.
    --engine ray runs the Lloyd blocks and the assignment on a Ray cluster: same bytes.

    Example:  selectkit cluster emb.parquet -k 50 -o clusters.parquet --centroids centroids.parquet
    """
    from selectkit.cluster import cluster_file
    from selectkit.cluster.pipeline import parse_levels

    check_json_stdout(as_json, output)
    prov = cluster_file(
        input,
        output,
        k=k,
        levels=parse_levels(levels) if levels else None,
        centroids_out=centroids,
        seeding=seeding,
        iters=iters,
        tol=tol,
        sample_per_centroid=sample_per_centroid,
        refine_iters=refine_iters,
        spherical=spherical,
        seed=seed,
        max_trials=max_trials,
        chain=chain,
        fit_sample=fit_sample,
        resample_steps=resample_steps,
        sample_size=_sample_sizes(sample_size),
        embedding_col=embedding_col,
        id_col=id_col,
        batch_size=batch_size,
        threads=threads,
        input_format=input_format,
        engine=engine,
        ray_address=ray_address,
        resume=resume,
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="cluster")


def _sample_sizes(text: str | None) -> int | list[int] | None:
    from selectkit.cluster.pipeline import parse_levels

    if text is None:
        return None
    sizes = parse_levels(text, "--sample-size")
    return sizes[0] if len(sizes) == 1 else sizes
