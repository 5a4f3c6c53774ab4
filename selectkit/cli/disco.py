"""``selectkit disco``: fit, apply and evaluate DISCO's accuracy predictor (thin shell over
``selectkit.disco``). Anchors are chosen by ``selectkit select --strategy disco``."""

from __future__ import annotations

from typing import Annotated

import typer

from selectkit.cli._options import GroupCol, IdCol, Json, LabelCol, ModelCol, ProbaCol
from selectkit.cli._run import check_json_stdout, guarded, report
from selectkit.disco.evaluate import EVALUATE_BOUNDS as BOUNDS  # every bound, declared once
from selectkit.errors import SelectkitUsageError

app = typer.Typer(
    name="disco",
    help="Predict a model's full-benchmark accuracy from its outputs on a few anchor samples "
    "(DISCO, Rubinstein et al. 2025).\n\n"
    "Predictions are long tables: one row per (model, id) with `proba` (class probabilities), "
    "optional `group` (sub-benchmark) and `correct` (0/1) or `label` (true class per id). "
    "Accuracy tables: columns `model`, `accuracy` (fractions).\n\n"
    "1. selectkit select preds.parquet --strategy disco --budget 100 -o anchors.parquet\n\n"
    "2. selectkit disco fit preds.parquet acc.parquet --anchors anchors.parquet -o predictor/\n\n"
    "3. selectkit disco predict predictor/ new_model_preds.parquet -o predicted.parquet",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

Regressor = Annotated[
    str,
    typer.Option(
        "--regressor",
        help="ridge (ridge regression, default), knn (accuracy of the most cosine-similar "
        "source models) or forest (100 regression trees, saved as node arrays, no pickle).",
    ),
]
Features = Annotated[
    str,
    typer.Option(
        "--features",
        help="What the regressor sees: signature (the model's probabilities on the anchors, "
        "PCA-reduced) or signature+accuracy (also its accuracy on the anchors; it then predicts "
        "the gap between full and anchor accuracy). signature+accuracy needs `correct` or "
        "`label` in the predictions, also in those of the models you later predict.",
    ),
]
Pca = Annotated[
    int,
    typer.Option(
        "--pca",
        min=BOUNDS["pca_dim"].cli_min,
        help="Keep at most this many PCA axes of the signatures.",
    ),
]
Alpha = Annotated[
    float,
    typer.Option("--alpha", min=BOUNDS["alpha"].cli_min, help="ridge: regularisation strength."),
]
Neighbors = Annotated[
    int,
    typer.Option(
        "--neighbours",
        "--neighbors",
        min=BOUNDS["neighbors"].cli_min,
        help="knn: neighbours averaged.",
    ),
]
DropIncomplete = Annotated[
    bool,
    typer.Option(
        "--drop-incomplete",
        help="Drop (with a warning) models that lack rows for some ids instead of failing.",
    ),
]


def _columns(model_col: str, id_col: str, proba_col: str, group_col: str, label_col: str):
    from selectkit.pool import Columns

    return Columns().with_overrides(
        model=model_col, id=id_col, proba=proba_col, group=group_col, label=label_col
    )


def fit(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Source models' predictions (long tables, stacked), per-sample tables joined "
            "on the id (e.g. id, label) and, last, an optional accuracy table (model, "
            "accuracy); default accuracy: computed from `correct`/`label`.",
        ),
    ],
    anchors: Annotated[
        str,
        typer.Option("--anchors", "-a", help="Anchors: the manifest of `select --strategy disco`."),
    ] = ...,
    output: Annotated[
        str, typer.Option("-o", "--output", help="Folder to write the predictor to.")
    ] = ...,
    regressor: Regressor = "ridge",
    features: Features = "signature",
    pca: Pca = 256,
    alpha: Alpha = 10.0,
    neighbors: Neighbors = 1,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=BOUNDS["seed"].cli_min, help="forest: seeds its bootstrap (recorded)."
        ),
    ] = 0,
    drop_incomplete: DropIncomplete = False,
    model_col: ModelCol = "model",
    id_col: IdCol = "id",
    proba_col: ProbaCol = "proba",
    group_col: GroupCol = "group",
    label_col: LabelCol = "label",
    as_json: Json = False,
) -> None:
    """Fit a predictor from the source models' outputs on the anchors to their accuracy.

    A model's signature is its probabilities on the anchors; a PCA fitted on these source
    models reduces it, and a ridge (or kNN, or random-forest) regressor maps it to accuracy. The predictor folder
    holds JSON + npz only (no pickle), so it is safe to share.

    Example:  selectkit disco fit preds.parquet acc.parquet --anchors anchors.parquet -o predictor/
    """
    from selectkit.disco import fit_files
    from selectkit.disco.files import split_accuracy_table

    cols = _columns(model_col, id_col, proba_col, group_col, label_col)
    predictions, accuracy = split_accuracy_table(inputs, model_col=model_col, id_col=id_col)
    _, prov = fit_files(
        predictions,
        accuracy,
        anchors,
        output,
        regressor=regressor,
        pca_dim=pca,
        alpha=alpha,
        neighbors=neighbors,
        seed=seed,
        features=features,
        columns=cols,
        drop_incomplete=drop_incomplete,
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="disco fit")


def predict(
    predictor: Annotated[str, typer.Argument(help="Predictor folder from `disco fit`.")],
    predictions: Annotated[
        list[str],
        typer.Argument(help="New models' predictions (long table; the anchors' rows suffice)."),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output (model, predicted_accuracy) or '-'.")
    ],
    drop_incomplete: DropIncomplete = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Predict even when the predictions look like another benchmark than the "
            "predictor's (other sample ids, or other true labels or groups on the anchors).",
        ),
    ] = False,
    model_col: ModelCol = "model",
    id_col: IdCol = "id",
    proba_col: ProbaCol = "proba",
    group_col: GroupCol = "group",
    label_col: LabelCol = "label",
    as_json: Json = False,
) -> None:
    """Predict the full-benchmark accuracy of new models from their outputs on the anchors.

    Refuses predictions that lack some anchors or have another number of classes, and, for a
    predictor fitted with --features signature+accuracy, predictions without `correct`/`label`.
    Refuses, unless --force, predictions on another benchmark: more or other sample ids than
    the predictor was fitted on, or other true labels or groups on the anchors.

    Example:  selectkit disco predict predictor/ new_model_preds.parquet -o predicted.parquet
    """
    from selectkit.disco import predict_files

    check_json_stdout(as_json, output)
    cols = _columns(model_col, id_col, proba_col, group_col, label_col)
    _, prov = predict_files(
        predictor,
        predictions,
        output,
        columns=cols,
        drop_incomplete=drop_incomplete,
        force=force,
    )
    report({"output": output, **prov.metrics}, as_json=as_json, title="disco predict")


def _budgets(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SelectkitUsageError(
            f"--budgets {text!r} is not a comma-separated list of counts, e.g. 10,30,100"
        ) from None
    if not values or min(values) < 1:
        raise SelectkitUsageError(f"--budgets {text!r}: give positive counts such as 10,30,100")
    return values


def evaluate(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="All models' predictions (long tables, stacked), per-sample tables joined on "
            "the id (e.g. id, label) and, last, an optional accuracy table (model, accuracy); "
            "default accuracy: computed from `correct`/`label`.",
        ),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Per-seed results (.parquet, .jsonl, .csv).")
    ] = ...,
    budgets: Annotated[
        str, typer.Option("--budgets", help="Anchor counts to try, e.g. 10,30,100.")
    ] = "10,30,60,100",
    seeds: Annotated[
        int,
        typer.Option(
            "--seeds",
            min=BOUNDS["seeds"].cli_min,
            help="Seeds: model splits (random split) and random anchors.",
        ),
    ] = 5,
    seed: Annotated[
        int, typer.Option("--seed", min=BOUNDS["seed"].cli_min, help="Base seed (recorded).")
    ] = 0,
    test_fraction: Annotated[
        float,
        typer.Option("--test-fraction", help="Share of models held out as test models per seed."),
    ] = 0.2,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="random: hold out --test-fraction of the models at random per seed; iid (the "
            "paper's): order models by accuracy and hold out every k-th, k = max(2, M // 40).",
        ),
    ] = "random",
    disagreement: Annotated[
        str, typer.Option("--disagreement", help="pds (default) or jsd.")
    ] = "pds",
    stratify: Annotated[
        str, typer.Option("--stratify", help="auto (by group if present), group or none.")
    ] = "auto",
    guiding_models: Annotated[
        int,
        typer.Option(
            "--guiding-models",
            min=BOUNDS["guiding_models"].cli_min,
            help="Score over this many source models (0 = all).",
        ),
    ] = 0,
    regressor: Regressor = "ridge",
    features: Features = "signature",
    pca: Pca = 256,
    alpha: Alpha = 10.0,
    neighbors: Neighbors = 1,
    drop_incomplete: DropIncomplete = False,
    model_col: ModelCol = "model",
    id_col: IdCol = "id",
    proba_col: ProbaCol = "proba",
    group_col: GroupCol = "group",
    label_col: LabelCol = "label",
    as_json: Json = False,
) -> None:
    """Leave-models-out evaluation: MAE (accuracy points) and Spearman of DISCO + predictor,
    random anchors + predictor and naive averaging, over seeds.

    Each seed holds out test models (--split random: --test-fraction of them at random; --split
    iid: every k-th by accuracy, as in the paper); anchors, PCA and regressor see only the
    others. `disco+naive` (raw accuracy on the DISCO anchors) is shown to make its bias
    visible: never use it as an estimate.

    Example:  selectkit disco evaluate preds.parquet acc.parquet --budgets 10,30,100 -o eval.parquet
    """
    from selectkit.disco import evaluate_files
    from selectkit.disco.files import split_accuracy_table

    check_json_stdout(as_json, output)
    cols = _columns(model_col, id_col, proba_col, group_col, label_col)
    predictions, accuracy = split_accuracy_table(inputs, model_col=model_col, id_col=id_col)
    parsed = _budgets(budgets)
    _, summary, prov = evaluate_files(
        predictions,
        accuracy,
        output,
        budgets=parsed,
        seeds=seeds,
        seed=seed,
        test_fraction=test_fraction,
        split=split,
        disagreement=disagreement,
        stratify=stratify,
        guiding_models=guiding_models,
        regressor=regressor,
        pca_dim=pca,
        alpha=alpha,
        neighbors=neighbors,
        features=features,
        columns=cols,
        drop_incomplete=drop_incomplete,
    )
    if as_json:
        report({"output": output, **prov.metrics, **prov.timings}, as_json=True, title="")
        return
    _print_summary(summary, prov.metrics)


def _print_summary(summary, metrics: dict) -> None:
    from rich.table import Table

    from selectkit.console import is_quiet, stderr_console

    # stdout is data only (the rows with -o -, the summary with --json): the table is for people,
    # on stderr, also when stderr is a file (`2> table.txt`); -q silences it
    if is_quiet():
        return

    table = Table(
        "budget",
        "method",
        "MAE (points)",
        "median AE",
        "Spearman",
        title=f"DISCO evaluation: {metrics['models']} models, {metrics['samples']} samples "
        "(mean ± sd over seeds)",
        title_justify="left",
    )
    for r in summary.to_dicts():
        sd = r["mae_std"] if r["mae_std"] is not None else 0.0
        rho_sd = r["spearman_std"] if r["spearman_std"] is not None else 0.0
        table.add_row(
            str(r["budget"]),
            r["method"],
            f"{r['mae_mean']:.2f} ± {sd:.2f}",
            f"{r['median_ae_mean']:.2f}",
            f"{r['spearman_mean']:.3f} ± {rho_sd:.3f}",
        )
    stderr_console().print(table)


app.command("fit")(guarded(fit))
app.command("predict")(guarded(predict))
app.command("evaluate")(guarded(evaluate))
