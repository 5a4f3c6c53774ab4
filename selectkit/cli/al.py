"""``selectkit al ...``: active-learning commands (the simulation loop)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit.cli._options import (
    EmbeddingCol,
    IdCol,
    InputFormat,
    Json,
    LabelCol,
    Seed,
    key_values,
)
from selectkit.cli._run import check_json_stdout, guarded, report
from selectkit.errors import SelectkitUsageError

app = typer.Typer(
    help="Active learning: simulate labelling rounds on a labelled dataset and compare "
    "strategies by their learning curves.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _strategy_params(items: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        strategy, dot, name = key.partition(".")
        if not sep or not dot or not strategy.strip() or not name.strip():
            raise SelectkitUsageError(
                f"--param {item!r} is not STRATEGY.KEY=VALUE, e.g. -p typiclust.neighbours=10"
            )
        out.setdefault(strategy.strip(), {})[name.strip().replace("-", "_")] = value.strip()
    return out


def simulate(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Labelled table(s): an embedding column and a label for every row; several "
            "tables are joined on the id column (e.g. embeddings + a labels table)."
        ),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Learning curves (.parquet or .jsonl).")
    ],
    strategies: Annotated[
        Optional[str],
        typer.Option(
            "--strategies",
            "-s",
            help="Comma-separated strategies, e.g. random,margin,badge (default random,margin); "
            "a scored one may take modifiers: entropy+power, bald+power=2 (coldness 2), "
            "margin+anchoral. With --stream, stream strategies (default "
            "random,var-uncertainty,rand-var-uncertainty).",
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Classifier refit each round: logreg, linear-svm, knn, rf or mlp."
        ),
    ] = "logreg",
    model_param: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model-param",
            help="The model's main parameter NAME=VALUE: logreg/linear-svm C=1 (> 0), knn "
            "n_neighbors=5 (>= 1), rf n_estimators=100 (>= 1), mlp alpha=0.0001 (>= 0).",
        ),
    ] = None,
    # bounds (init >= 0, batch >= 1, ...) are declared once, in selectkit.al.simulate
    # SIMULATE_BOUNDS, and checked there (exit 2)
    init: Annotated[
        Optional[int],
        typer.Option("--init", help="Initial labelled rows (random, shared; >= 0; default 20)."),
    ] = None,
    batch: Annotated[
        Optional[int], typer.Option("--batch", help="Rows labelled per round (>= 1; default 10).")
    ] = None,
    rounds: Annotated[
        Optional[int], typer.Option("--rounds", help="Labelling rounds (>= 0; default 10).")
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Repeats (new test split and initial set; >= 1).")
    ] = 5,
    test_size: Annotated[
        float, typer.Option("--test-size", help="Held-out test fraction (stratified; in (0, 1)).")
    ] = 0.25,
    mc_members: Annotated[
        Optional[int],
        typer.Option(
            "--mc-members",
            help="bald: ensemble members (bootstrap refits; rf: trees; >= 1; default 8).",
        ),
    ] = None,
    param: Annotated[
        Optional[list[str]],
        typer.Option("--param", "-p", help="Strategy parameter STRATEGY.KEY=VALUE (repeatable)."),
    ] = None,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot", help="Also write a PNG of mean ± std accuracy curves (needs selectkit[plot])."
        ),
    ] = None,
    summary: Annotated[
        Optional[str],
        typer.Option("--summary", help="Also write the summary table (AULC per strategy) here."),
    ] = None,
    seed: Seed = 0,
    id_col: IdCol = "id",
    embedding_col: EmbeddingCol = "embedding",
    label_col: LabelCol = "label",
    input_format: InputFormat = None,
    cost_col: Annotated[
        Optional[str],
        typer.Option(
            "--cost-col",
            help="Column of per-row costs (> 0): each round spends --batch-cost; curves and "
            "AULC over cumulative cost; name+cost[=λ] ranks by utility/cost^λ (docs/cost.md).",
        ),
    ] = None,
    batch_cost: Annotated[
        Optional[float],
        typer.Option(
            "--batch-cost", help="With --cost-col: cost per round (default: batch x median cost)."
        ),
    ] = None,
    as_json: Json = False,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Stream mode: replay the rows as a stream, predicting each row before a "
            "stream strategy decides to keep it; the model learns from kept rows only "
            "(prequential accuracy; docs/active-learning.md). -s then lists stream strategies "
            "(default random,var-uncertainty,rand-var-uncertainty); --model is refit on the "
            "kept rows every --update-every rows, or -m sgd learns them incrementally "
            "(partial_fit). --init, --batch, --rounds, --mc-members, --cost-col and "
            "--batch-cost are for pool-based runs and refused with it.",
        ),
    ] = False,
    budget: Annotated[
        Optional[str],
        typer.Option("--budget", help="--stream: share(s) of the stream to keep, e.g. 5%,10%,30%."),
    ] = None,
    order: Annotated[
        str,
        typer.Option(
            "--order",
            help="--stream: replay order, id (a seeded hash of the ids, new per repeat: any "
            "input order gives the same result) or file (the input order).",
        ),
    ] = "id",
    drift_at: Annotated[
        Optional[float],
        typer.Option(
            "--drift-at",
            help="--stream: relabel every class from this share of the stream on (abrupt "
            "drift), e.g. 0.5.",
        ),
    ] = None,
    update_every: Annotated[
        int,
        typer.Option(
            "--update-every",
            help="--stream: rows between model updates (and curve points; >= 1).",
        ),
    ] = 50,
) -> None:
    """Simulate pool-based active learning and write learning curves.

    Per repeat: a stratified held-out test split and an initial labelled set shared by every
    strategy; then per round: refit the model, score it on the test set, query --batch rows with
    the strategy, reveal their labels. Curves: one row per (repeat, strategy, round) with the
    labelled-set size, accuracy, macro-F1, timings and the ids picked. Summary: the area under
    the learning curve (normalised trapezoid of accuracy over labelled rows) mean ± std per
    strategy, and its paired gain over random.

    Example:  selectkit al simulate digits.parquet -s random,margin,badge --init 20 --batch 10
    --rounds 30 --repeats 5 --model-param C=10 -o curves.parquet --plot curves.png
    """
    from selectkit.al.simulate import SIMULATE_BOUNDS, simulate_file
    from selectkit.pool import Columns

    check_json_stdout(as_json, output)
    columns = Columns().with_overrides(id=id_col, embedding=embedding_col, label=label_col)
    pool_only = {"--init": init, "--batch": batch, "--rounds": rounds,
                 "--mc-members": mc_members, "--cost-col": cost_col,
                 "--batch-cost": batch_cost}  # fmt: skip
    if stream:
        given = [name for name, value in pool_only.items() if value is not None]
        if given:
            raise SelectkitUsageError(
                f"{given[0]} is for pool-based simulation (rounds of labelling); drop it with "
                "--stream, whose budget is --budget"
            )
        _simulate_stream(
            inputs, output, strategies=strategies, budget=budget, model=model,
            repeats=repeats, seed=seed, order=order, test_size=test_size, drift_at=drift_at,
            update_every=update_every, param=param, model_param=model_param, columns=columns,
            input_format=input_format, plot=plot, summary=summary, as_json=as_json,
        )  # fmt: skip
        return
    if budget is not None or drift_at is not None:
        raise SelectkitUsageError("--budget and --drift-at are for --stream (a stream replay)")

    def given_or_default(value: int | None, name: str) -> int:
        return SIMULATE_BOUNDS[name].default if value is None else value

    names = [s.strip() for s in (strategies or "random,margin").split(",") if s.strip()]
    params = _strategy_params(param)
    model_params = key_values(model_param, "--model-param", "C=10")
    prov, table = simulate_file(
        inputs,
        output,
        strategies=names,
        model=model,
        init=given_or_default(init, "init"),
        batch=given_or_default(batch, "batch"),
        rounds=given_or_default(rounds, "rounds"),
        repeats=repeats,
        seed=seed,
        test_size=test_size,
        strategy_params=params,
        mc_members=given_or_default(mc_members, "mc_members"),
        columns=columns,
        input_format=input_format,
        plot=plot,
        summary_out=summary,
        model_params=model_params,
        cost_col=cost_col,
        batch_cost=batch_cost,
    )
    if as_json:
        report(
            {"output": output, "summary": table.to_dicts(), **prov.timings},
            as_json=True,
            title="al simulate",
        )
        return
    _print_summary(table)


def _simulate_stream(
    inputs: list[str],
    output: str,
    *,
    strategies: str | None,
    budget: str | None,
    param: list[str] | None,
    model_param: list[str] | None,
    summary: str | None,
    as_json: bool,
    **options,
) -> None:
    """``al simulate --stream``: the replay of :mod:`selectkit.al.stream_replay`."""
    from selectkit.al.stream_replay import DEFAULT_STREAM_STRATEGIES, simulate_stream_file

    text = strategies or ",".join(DEFAULT_STREAM_STRATEGIES)
    prov, table = simulate_stream_file(
        inputs,
        output,
        strategies=[s.strip() for s in text.split(",") if s.strip()],
        budgets=budget or 0.1,
        strategy_params=_strategy_params(param),
        model_params=key_values(model_param, "--model-param", "C=10"),
        summary_out=summary,
        **options,
    )
    if as_json:
        report(
            {"output": output, "summary": table.to_dicts(), **prov.timings},
            as_json=True,
            title="al simulate --stream",
        )
        return
    _print_stream_summary(table)


def _print_stream_summary(table) -> None:
    import sys

    from rich.table import Table

    from selectkit.console import is_quiet, stderr_console

    if is_quiet() or not sys.stderr.isatty():
        return
    out = Table(
        "budget",
        "strategy",
        "prequential acc",
        "± std",
        "gain vs random",
        "test acc",
        "kept",
        "windows ±20%",
        title="stream replay: prequential (test-then-train) accuracy over the stream",
        title_justify="left",
    )
    for r in table.to_dicts():
        gain = r.get("gain_vs_random")
        test = r.get("test_accuracy_mean")
        within = r.get("windows_within_20pct")
        out.add_row(
            f"{100 * r['budget']:g}%",
            r["strategy"],
            f"{r['prequential_accuracy_mean']:.4f}",
            f"{r['prequential_accuracy_std']:.4f}",
            "-" if gain is None else f"{gain:+.4f} ± {r['gain_vs_random_std']:.4f}",
            "-" if test is None else f"{test:.4f}",
            f"{r['kept_fraction_mean']:.3f}",
            "-" if within is None else f"{100 * within:.0f}%",
        )
    stderr_console().print(out)


def _print_summary(table) -> None:
    import sys

    from rich.table import Table

    from selectkit.console import is_quiet, stderr_console

    if is_quiet() or not sys.stderr.isatty():
        return
    out = Table(
        "strategy",
        "AULC mean",
        "± std",
        "gain vs random",
        "final acc",
        "select s",
        title="area under the learning curve (normalised trapezoid)",
        title_justify="left",
    )
    with_cost = "aulc_cost_mean" in table.columns
    if with_cost:
        out.add_column("AULC over cost")
    for r in table.to_dicts():
        gain = r.get("gain_vs_random")
        cells = [f"{r['aulc_cost_mean']:.4f} ± {r['aulc_cost_std']:.4f}"] if with_cost else []
        out.add_row(
            r["strategy"],
            f"{r['aulc_mean']:.4f}",
            f"{r['aulc_std']:.4f}",
            "-" if gain is None else f"{gain:+.4f} ± {r['gain_vs_random_std']:.4f}",
            f"{r['final_accuracy_mean']:.4f}",
            f"{r['select_s_per_repeat']:.2f}",
            *cells,
        )
    stderr_console().print(out)


app.command("simulate")(guarded(simulate))
