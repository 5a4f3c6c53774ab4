"""``selectkit kmq-weights``: iterative kMQ's next cluster weights from per-row feedback on a
round's manifest; a thin shell over :func:`selectkit.kmq.kmq_weights`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit.cli._options import IdCol, Json, Output
from selectkit.cli._run import check_json_stdout, report
from selectkit.kmq import KMQ_WEIGHTS_PARAMS


def kmq_weights(
    manifest: Annotated[
        str,
        typer.Argument(help="A round's manifest (`select --strategy kmq`): id and cluster."),
    ],
    feedback: Annotated[
        str, typer.Argument(help="Per-row feedback: id and a number (higher = more weight).")
    ],
    output: Output,
    feedback_col: Annotated[
        str, typer.Option("--feedback-col", help="Column of FEEDBACK with the feedback.")
    ] = "feedback",
    rule: Annotated[
        str, typer.Option("--rule", help=KMQ_WEIGHTS_PARAMS["rule"].help + ".")
    ] = KMQ_WEIGHTS_PARAMS["rule"].default,
    temperature: Annotated[
        float,
        typer.Option("--temperature", help=KMQ_WEIGHTS_PARAMS["temperature"].help + "."),
    ] = KMQ_WEIGHTS_PARAMS["temperature"].default,
    prior: Annotated[
        Optional[str],
        typer.Option("--prior", help="The previous round's weights (default: all 1)."),
    ] = None,
    clusters: Annotated[
        Optional[str],
        typer.Option(
            "--clusters",
            help="A `selectkit cluster` table to look each pick's cluster up by id (when the "
            "manifest has no cluster column).",
        ),
    ] = None,
    cluster_col: Annotated[
        str, typer.Option("--cluster-col", help="The cluster column.")
    ] = "cluster",
    id_col: IdCol = "id",
    as_json: Json = False,
) -> None:
    """Write the next round's cluster weights of iterative kMQ (cluster, weight, feedback_mean,
    feedback_rows): s_j = mean feedback of the round's rows in cluster j, then
    w_j <- w_j * s_j / mean(s) (--rule multiplicative, the paper's eq. 6, with --prior as w)
    or w_j = exp(s_j / T) (--rule softmax, the authors' code).

    Examples:

        selectkit kmq-weights round1.parquet feedback.parquet -o weights1.parquet

        selectkit kmq-weights round2.parquet fb2.parquet --prior weights1.parquet -o weights2.parquet

    Then: selectkit select ... --strategy kmq --cluster-weights weights1.parquet
    --exclude round1.parquet. docs/coresets.md, "kmq", says more.
    """
    from selectkit.kmq import kmq_weights as run

    check_json_stdout(as_json, output)
    summary = run(
        manifest,
        feedback,
        output,
        feedback_col=feedback_col,
        rule=rule,
        temperature=temperature,
        prior=prior,
        clusters=clusters,
        cluster_col=cluster_col,
        id_col=id_col,
    )
    report(summary, as_json=as_json, title="kmq-weights")
