"""``selectkit apply``: the rows a manifest lists (thin shell over
:func:`selectkit.apply_manifest`)."""

from __future__ import annotations

from typing import Annotated

import typer

from selectkit.cli._options import (
    EngineOpt,
    FolderOutput,
    IdCol,
    InputFormat,
    Json,
    RayAddressOpt,
    ResumeOpt,
)
from selectkit.cli._run import check_json_stdout, report


def apply(
    manifest: Annotated[str, typer.Argument(help="Manifest written by `selectkit select`.")],
    table: Annotated[
        list[str],
        typer.Argument(
            help="Any table holding the same ids (e.g. the corpus); several shards, a quoted glob "
            "or a dataset folder are read in order as one table (rows without ids are numbered "
            "on across them)."
        ),
    ],
    output: FolderOutput,
    order: Annotated[
        str,
        typer.Option(
            "--order",
            help="rank (pick order, default) or original (the table's order); with -o DIR/ "
            "each part is in that order.",
        ),
    ] = "rank",
    id_col: IdCol = "id",
    manifest_columns: Annotated[
        bool,
        typer.Option(
            "--manifest-columns/--no-manifest-columns", help="Append rank, score and weight."
        ),
    ] = True,
    input_format: InputFormat = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Apply even when the table's row numbers do not fit the manifest's pool "
            "(row count, or own ids that are not row numbers).",
        ),
    ] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    resume: ResumeOpt = False,
    as_json: Json = False,
) -> None:
    """Materialise a manifest: the rows of TABLE whose ids the manifest lists.

    With -o DIR/ each shard's picked rows become its own part of a dataset folder; with
    --engine ray the shards are filtered across a Ray cluster (same output bytes).

    Example:  selectkit apply manifest.parquet data_samples/rotten_tomatoes.jsonl -o subset.jsonl
    """
    from selectkit.apply import apply_manifest

    check_json_stdout(as_json, output)
    prov = apply_manifest(
        manifest,
        table,
        output,
        order=order,
        id_col=id_col,
        with_manifest_columns=manifest_columns,
        input_format=input_format,
        force=force,
        engine=engine,
        ray_address=ray_address,
        resume=resume,
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="apply")
