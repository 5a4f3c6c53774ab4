"""``selectkit report``: one self-contained HTML page of a selection, a comparison, AL curves or a
DISCO evaluation (thin shell over :func:`selectkit.report.write_report`)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit.cli._options import (
    ClusterCol,
    EmbeddingCol,
    GroupCol,
    IdCol,
    Json,
    LabelCol,
    Seed,
    TextCol,
)
from selectkit.cli._run import report as print_summary


def report(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Manifest(s) of `select` and the pool tables they came from (embeddings, "
            "clusters, corpus with text; semdedup's --emit-dropped table too), or one "
            "`al simulate` curves table, or one `disco evaluate` table, or `disco predict` "
            "output (with a model,accuracy table to compare)."
        ),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="The HTML file to write (e.g. report.html).")
    ],
    seed: Seed = 0,
    max_points: Annotated[
        int,
        typer.Option("--max-points", min=1, help="Most pool rows drawn on the map (by id hash)."),
    ] = 50_000,
    text_chars: Annotated[
        int, typer.Option("--text-chars", min=0, help="Characters of each text shown on hover.")
    ] = 120,
    title: Annotated[Optional[str], typer.Option("--title", help="The page's title.")] = None,
    id_col: IdCol = "id",
    embedding_col: EmbeddingCol = "embedding",
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    cluster_col: ClusterCol = "cluster",
    group_col: GroupCol = "group",
    as_json: Json = False,
) -> None:
    """Write one self-contained HTML page (no network, same inputs = same bytes).

    Examples:

        selectkit report manifest.parquet emb.parquet corpus.jsonl -o report.html

        selectkit report kcenter.parquet random.parquet emb.parquet clusters.parquet -o compare.html

        selectkit report curves.parquet -o al.html

        selectkit report eval.parquet -o disco.html

        selectkit report predicted.parquet acc.parquet -o predicted.html

    docs/report.md says what each page shows.
    """
    from selectkit.pool import Columns
    from selectkit.report import write_report

    columns = Columns().with_overrides(
        id=id_col,
        embedding=embedding_col,
        text=text_col,
        label="none" if label_col.lower() == "none" else label_col,
        cluster=cluster_col,
        group=group_col,
    )
    summary = write_report(
        inputs,
        output,
        columns=columns,
        seed=seed,
        max_points=max_points,
        text_chars=text_chars,
        title=title,
    )
    print_summary(summary, as_json=as_json, title="report")
