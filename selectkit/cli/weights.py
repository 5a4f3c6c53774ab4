"""``selectkit weights ...``: per-row training weights (broadcast a coreset's weights to a pool);
a thin shell over :func:`selectkit.weights.broadcast_weights`."""

from __future__ import annotations

from typing import Annotated

import typer

from selectkit.cli._options import EmbeddingCol, IdCol, Json, Output
from selectkit.cli._run import check_json_stdout, guarded, report
from selectkit.weights import BROADCAST_PARAMS

app = typer.Typer(
    help="Per-row training weights: broadcast a coreset's weights to every pool row.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def broadcast(
    coreset: Annotated[
        str,
        typer.Argument(
            help="Coreset weights: id and a weight column (e.g. a `select` manifest), "
            "optionally its own embedding column (else looked up in POOL by id)."
        ),
    ],
    pool: Annotated[str, typer.Argument(help="Pool embeddings: id and embedding.")],
    output: Output,
    k: Annotated[
        int,
        typer.Option(
            "--k", min=BROADCAST_PARAMS["k"].cli_min, help=BROADCAST_PARAMS["k"].help + "."
        ),
    ] = BROADCAST_PARAMS["k"].default,
    kernel: Annotated[
        str, typer.Option("--kernel", help=BROADCAST_PARAMS["kernel"].help + ".")
    ] = BROADCAST_PARAMS["kernel"].default,
    weight_col: Annotated[
        str, typer.Option("--weight-col", help="Column of CORESET with the weights.")
    ] = "weight",
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=BROADCAST_PARAMS["batch_size"].cli_min,
            help=BROADCAST_PARAMS["batch_size"].help + ".",
        ),
    ] = BROADCAST_PARAMS["batch_size"].default,
    embedding_col: EmbeddingCol = "embedding",
    id_col: IdCol = "id",
    as_json: Json = False,
) -> None:
    """Give every POOL row the weight of its nearest CORESET row (exact L2 kNN; --k 5 averages
    the 5 nearest, --kernel distance weights them by 1/(d+eps)). Writes id, weight and, for
    --k 1, source_id (the nearest coreset id).

    Examples:

        selectkit weights broadcast core.parquet emb.parquet -o weights.parquet

        selectkit weights broadcast core.parquet emb.parquet --k 5 --kernel distance -o w.parquet

    docs/weights.md says how to use the weights in training.
    """
    from selectkit.weights import broadcast_weights

    check_json_stdout(as_json, output)
    summary = broadcast_weights(
        coreset,
        pool,
        output,
        k=k,
        kernel=kernel,
        weight_col=weight_col,
        embedding_col=embedding_col,
        id_col=id_col,
        batch_size=batch_size,
    )
    report(summary, as_json=as_json, title="weights broadcast")


app.command("broadcast")(guarded(broadcast))
