"""``selectkit scores``: training-dynamics scores per labelled row (thin shell over
:func:`selectkit.dynamics.scores_file`)."""

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
    LabelCol,
    RayAddressOpt,
    Seed,
)
from selectkit.cli._run import check_json_stdout, report
from selectkit.dynamics import BOUNDS


def scores(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Tables with an embedding and a label column, joined on the id column."
        ),
    ],
    output: FolderOutput,
    model: Annotated[
        str,
        typer.Option("--model", help="sgd (linear softmax, fast) or mlp (one hidden layer)."),
    ] = "sgd",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 10,
    gradients: Annotated[
        bool,
        typer.Option(
            "--gradients",
            help="Write id and gradient instead: each row's last-layer loss gradient "
            "(p - onehot(y)) x [x, 1], randomly projected (for select --strategy omp).",
        ),
    ] = False,
    grad_dim: Annotated[
        Optional[int],
        typer.Option(
            "--grad-dim",
            min=BOUNDS["grad_dim"].cli_min,
            max=BOUNDS["grad_dim"].cli_max,
            help="Dimensions of the projected gradients (default 512; with --gradients).",
        ),
    ] = None,
    seed: Seed = 0,
    id_col: IdCol = "id",
    embedding_col: EmbeddingCol = "embedding",
    label_col: LabelCol = "label",
    input_format: InputFormat = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: Json = False,
) -> None:
    """Score how hard each labelled row is to learn: AUM, forgetting events, EL2N and loss.

    Trains a scikit-learn model epoch by epoch on the labelled rows and records how its
    predictions of each row evolve. Low aum, high forgetting, high el2n and high loss mark hard
    (or mislabelled) rows. Writes id, aum, forgetting, el2n, loss for the labelled rows; feed it to
    `select --strategy ccs --score-col aum` (or topk, or sensitivity with --loss-col loss).

    The model trains on this machine whatever --engine says; -o DIR/ writes a dataset
    folder (part files and a completion record) that `select` reads as one input.

    With --gradients it writes id and gradient (--grad-dim floats) for `select --strategy omp
    --vector-col gradient` (TAGCOS-style gradient matching).

    Example:  selectkit scores emb.parquet --label-col label -o dyn.parquet
    """
    from selectkit.dynamics import scores_file
    from selectkit.pool import Columns

    check_json_stdout(as_json, output)
    columns = Columns().with_overrides(id=id_col, embedding=embedding_col, label=label_col)
    prov = scores_file(
        inputs,
        output,
        epochs=epochs,
        model=model,
        seed=seed,
        columns=columns,
        input_format=input_format,
        engine=engine,
        ray_address=ray_address,
        gradients=gradients,
        grad_dim=grad_dim,
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="scores")
