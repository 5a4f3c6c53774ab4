"""``selectkit select``: pick a budget of rows with a strategy (thin shell over
:func:`selectkit.select_files`).

Strategy parameters are written as ``--name value`` among the inputs; Click hands options it
does not know to the variadic inputs argument, so :func:`split_strategy_options` types them by
the chosen strategy's own parameters.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from selectkit.cli._options import (
    ClusterCol,
    EmbeddingCol,
    EngineOpt,
    GroupCol,
    IdCol,
    InputFormat,
    Json,
    LabelCol,
    ModelCol,
    Output,
    ProbaCol,
    ProbaMcCol,
    RayAddressOpt,
    ScoreCol,
    Seed,
    TextCol,
    Threads,
    key_values,
)
from selectkit.cli._run import check_json_stdout, report
from selectkit.errors import SelectkitUsageError

#: other spellings accepted for a parameter's name (British spellings are the declared ones)
SPELLINGS = {"neighbors": "neighbours"}


def spelled(name: str) -> str:
    """``name`` in the spelling parameters are declared with (``n_neighbors`` -> ``n_neighbours``)."""
    for other, declared in SPELLINGS.items():
        name = name.replace(other, declared)
    return name


class SelectCommand(TyperCommand):
    """``select``, whose --help also lists every strategy's own options."""

    def format_help(self, ctx: Any, formatter: Any) -> Any:
        self.epilog = strategy_options_help()
        return super().format_help(ctx, formatter)


def strategy_options_help() -> str:
    """The epilog of ``select --help``: each strategy's options, grouped by strategy."""
    from selectkit.strategies import list_strategies

    lines = [
        "**Strategy options** (write them among the inputs; `selectkit strategies` says more):",
        "",
    ]
    for spec in list_strategies():
        opts = ", ".join(f"--{k.replace('_', '-')} ({p.default})" for k, p in spec.params.items())
        lines.append(f"* **{spec.name}**: {opts or 'none'}")
    return "\n".join(lines)


def split_strategy_options(
    tokens: list[str], strategy: str
) -> tuple[list[str], dict[str, str | list[str]]]:
    """Split the inputs of ``select`` from strategy options written as ``--name value``.

    Click hands options it does not know to the variadic inputs argument, so they are parsed
    here, typed by the strategy's own parameters: a boolean takes no value (``--keep-hard``, or
    ``--keep-hard=false``); any other parameter takes the next token; a ``multiple`` parameter
    may repeat (``--target a --target b``) and collects a list.
    """
    from selectkit.strategies import get_strategy

    spec = None
    inputs: list[str] = []
    params: dict[str, str | list[str]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        single_dash = token.startswith("-") and not token.startswith("--") and len(token) > 1
        if single_dash and not token[1:].replace(".", "", 1).isdigit():  # -1 may be a value
            raise SelectkitUsageError(f"no such option {token!r} for `select`")
        if not token.startswith("--") or token == "--":
            inputs.append(token)
            i += 1
            continue
        spec = spec or get_strategy(strategy)
        key, sep, value = token[2:].partition("=")
        name = spelled(key.replace("-", "_"))
        if name not in spec.params:
            known = ", ".join("--" + k.replace("_", "-") for k in spec.params) or "none"
            close = difflib.get_close_matches(name, spec.params, n=1)
            hint = f"did you mean --{close[0].replace('_', '-')}? " if close else ""
            raise SelectkitUsageError(
                f"no such option {token.split('=')[0]!r}: {hint}not a `select` option (see "
                f"`selectkit select --help`) nor a parameter of strategy '{spec.name}' ({known})"
            )
        if not sep and spec.params[name].type is bool:
            value = "true"
        elif not sep:
            if i + 1 >= len(tokens):
                raise SelectkitUsageError(f"option {token} needs a value")
            value = tokens[i + 1]
            i += 1
        if spec.params[name].multiple:
            params.setdefault(name, []).append(value)
        else:
            params[name] = value
        i += 1
    return inputs, params


def select(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Input tables, joined on the id column (first one fixes the rows); for dsir, "
            "shards of one corpus read in order (.gz and quoted globs too). Strategy "
            "parameters may be written among them as --name value (see `selectkit strategies`)."
        ),
    ],
    output: Output,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="Strategy name; see `selectkit strategies`.")
    ],
    budget: Annotated[
        Optional[str],
        typer.Option(
            "--budget",
            "-b",
            help="Rows to pick: a count (1000), fraction (0.05) or 5%. Not for semdedup, "
            "whose --threshold decides what is kept; dsir may count tokens instead "
            "(--budget-tokens).",
        ),
    ] = None,
    seed: Seed = 0,
    param: Annotated[
        Optional[list[str]],
        typer.Option("--param", "-p", help="Strategy parameter KEY=VALUE (repeatable)."),
    ] = None,
    emit_dropped: Annotated[
        Optional[str],
        typer.Option(
            "--emit-dropped",
            help="semdedup: also write the dropped rows (id, the kept id it duplicates, "
            "similarity) to this file.",
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics/--no-metrics",
            help="Record how well the selection covers the pool (needs embeddings).",
        ),
    ] = True,
    id_col: IdCol = "id",
    embedding_col: EmbeddingCol = "embedding",
    label_col: LabelCol = "label",
    labelled_col: Annotated[
        Optional[str],
        typer.Option(
            "--labelled-col",
            help="Rows where this column is non-null are already labelled: never picked, by "
            "any strategy (e.g. to prune a labelled set with ccs while keeping some rows out).",
        ),
    ] = None,
    cluster_col: ClusterCol = "cluster",
    score_col: ScoreCol = "score",
    proba_col: ProbaCol = "proba",
    proba_mc_col: ProbaMcCol = "proba_mc",
    group_col: GroupCol = "group",
    text_col: TextCol = "text",
    model_col: ModelCol = "model",
    stochastic: Annotated[
        Optional[str],
        typer.Option(
            "--stochastic",
            help="Scored strategies: sample the batch instead of taking the top scores: softmax, "
            "power or softrank (Kirsch et al. 2023).",
        ),
    ] = None,
    coldness: Annotated[
        Optional[float],
        typer.Option(
            "--coldness",
            help="With --stochastic: its coldness β (> 0, default 1; large = close to top-k).",
        ),
    ] = None,
    subpool: Annotated[
        Optional[str],
        typer.Option(
            "--subpool",
            help="Scored strategies: score only a subpool near labelled anchors: anchoral "
            "(Lesci & Vlachos 2024; needs embedding and label).",
        ),
    ] = None,
    subpool_size: Annotated[
        int, typer.Option("--subpool-size", min=1, help="anchoral: rows in the subpool (M).")
    ] = 10_000,
    anchors: Annotated[
        int, typer.Option("--anchors", min=1, help="anchoral: anchors per class (A).")
    ] = 10,
    anchor_neighbours: Annotated[
        int,
        typer.Option(
            "--anchor-neighbours",
            "--anchor-neighbors",
            min=1,
            help="anchoral: neighbours per anchor (K).",
        ),
    ] = 50,
    group_min: Annotated[
        Optional[list[str]],
        typer.Option(
            "--group-min",
            help="Group ranges, any strategy: at least COUNT picks of each GROUP of --group-col "
            "(GROUP=COUNT[,GROUP=COUNT...]; repeatable).",
        ),
    ] = None,
    group_max: Annotated[
        Optional[list[str]],
        typer.Option(
            "--group-max",
            help="Group ranges: at most COUNT picks of each GROUP (GROUP=COUNT,...; repeatable).",
        ),
    ] = None,
    group_ranges: Annotated[
        Optional[str],
        typer.Option(
            "--group-ranges",
            help="Group ranges from a csv/parquet file with columns group,min,max (empty = no "
            "bound).",
        ),
    ] = None,
    report_path: Annotated[
        Optional[str],
        typer.Option(
            "--report",
            help="Also write an HTML report of the selection vs the pool to this file "
            "(as `selectkit report MANIFEST INPUTS... -o PATH`), after the manifest.",
        ),
    ] = None,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exclude",
            help="An earlier manifest (any table with the id column): its rows are removed "
            "from the pool before the strategy runs (repeatable; recorded in provenance).",
        ),
    ] = None,
    cost_col: Annotated[
        Optional[str],
        typer.Option(
            "--cost-col",
            help="Column of per-row costs (> 0; seconds, tokens, money), from any input: the "
            "manifest gains cost and cumulative_cost (docs/cost.md).",
        ),
    ] = None,
    budget_cost: Annotated[
        Optional[str],
        typer.Option(
            "--budget-cost",
            help="Spend at most this much --cost-col cost instead of a count (also -b cost:X; "
            "exclusive with --budget).",
        ),
    ] = None,
    cost_exponent: Annotated[
        float,
        typer.Option(
            "--cost-exponent",
            help="Rank by utility / cost^λ (0 = cost-blind; kcenter, badge, typiclust too).",
        ),
    ] = 1.0,
    cost_mode: Annotated[
        str,
        typer.Option("--cost-mode", help="Scored strategies: ratio (utility/cost^λ) or penalty."),
    ] = "ratio",
    cost_lambda: Annotated[
        float,
        typer.Option(
            "--cost-lambda",
            help="penalty: utility - μ·cost/median(cost), μ = this.",
        ),
    ] = 1.0,
    min_cost: Annotated[
        Optional[float],
        typer.Option("--min-cost", help="Floor on each cost (cheap rows crowd out less)."),
    ] = None,
    input_format: InputFormat = None,
    threads: Threads = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: Json = False,
) -> None:
    """Pick --budget rows with a strategy and write a manifest (id, rank, score, weight[, cluster]).

    Acquisition strategies (kcenter, margin, ...) treat rows with a non-null label as already
    labelled: never picked, but counted as covered. Strategies that use labels as data (ccs,
    sensitivity, topk, stratified, disco, ...) may pick any row; --labelled-col marks rows to
    keep out for any strategy; `selectkit strategies` shows which is which. The manifest
    records the strategy, parameters, seed, inputs (with fingerprints), timings and metrics;
    see `selectkit inspect`.

    Examples:

        selectkit select emb.parquet --strategy kcenter --budget 200 -o manifest.parquet

        selectkit select emb.parquet dyn.parquet --strategy ccs --score-col aum --budget 10% -o m.parquet

        selectkit select emb.parquet clusters.parquet --strategy semdedup --threshold 0.95 -o kept.parquet

        selectkit select shards/*.jsonl.gz --strategy dsir --target wiki.jsonl --budget 1000 -o m.parquet

    A second round that leaves out the rows an earlier manifest picked:

        selectkit select emb.parquet -s kcenter -b 200 --exclude round1.parquet -o round2.parquet

    Active learning (a pool with your model's proba column):

        selectkit select pool.parquet -s margin -b 100 --stochastic power --coldness 2 -o batch.parquet

    Group ranges on any strategy (at least / at most so many picks per --group-col value):

        selectkit select emb.parquet meta.parquet -s kcenter -b 500 --group-min wiki=100 -o m.parquet

    A budget in cost units (a --cost-col of seconds per row; docs/cost.md):

        selectkit select pool.parquet -s entropy --cost-col seconds --budget-cost 3600 -o batch.parquet

    On a Ray cluster (margin, entropy, least-confidence and bald score each shard there; the
    other strategies read the pool on this machine; docs/strategies.md says what runs where):

        selectkit select 'preds/*.parquet' -s margin -b 100000 -o batch.parquet --engine ray
    """
    from selectkit.pool import Columns
    from selectkit.select import select_files

    check_json_stdout(as_json, output)
    tables, options = split_strategy_options(inputs, strategy)
    params = {**options, **key_values(param, "--param", "beta=0.5")}
    use_labels = label_col.lower() != "none"
    columns = Columns().with_overrides(
        id=id_col,
        embedding=embedding_col,
        label=label_col if use_labels else None,
        cluster=cluster_col,
        score=score_col,
        proba=proba_col,
        proba_mc=proba_mc_col,
        group=group_col,
        model=model_col,
        text=text_col,
    )
    if not tables:
        raise SelectkitUsageError("give at least one input table")
    if emit_dropped is not None and emit_dropped == output:
        raise SelectkitUsageError("--emit-dropped needs a file other than -o's")
    if report_path is not None:
        _check_report(report_path, output, tables)
    prov = select_files(
        tables,
        output,
        strategy=strategy,
        budget=budget,
        seed=seed,
        params=params,
        columns=columns,
        input_format=input_format,
        use_labels=use_labels,
        threads=threads,
        emit={"dropped": emit_dropped},
        metrics=metrics,
        labelled_col=labelled_col,
        stochastic=stochastic,
        coldness=coldness,
        subpool=subpool,
        subpool_options={
            "anchors": anchors,
            "neighbours": anchor_neighbours,
            "subpool_size": subpool_size,
        },
        engine=engine,
        ray_address=ray_address,
        group_min=group_min,
        group_max=group_max,
        group_ranges=group_ranges,
        exclude=exclude or None,
        cost_col=cost_col,
        budget_cost=budget_cost,
        cost_exponent=cost_exponent,
        cost_mode=cost_mode,
        cost_lambda=cost_lambda,
        min_cost=min_cost,
    )
    summary = {"output": output, "strategy": strategy, "seed": seed}
    if report_path is not None:
        from selectkit.report import write_report

        # after the manifest is in place: the report reads it like any other; a failed report
        # leaves the manifest written and no partial report
        write_report([output, *tables], report_path, columns=columns, seed=seed)
        summary["report"] = report_path
    report({**summary, **prov.metrics, **prov.timings}, as_json=as_json, title="select")


def _check_report(report_path: str, output: str, tables: list[str]) -> None:
    """--report needs files to read back: a manifest file, not stdout, and no stdin input."""
    if output == "-" or "-" in tables:
        raise SelectkitUsageError(
            "--report reads the manifest and inputs back: write -o to a file and give inputs "
            "as files (not '-')"
        )
    if report_path in (output, *tables):
        raise SelectkitUsageError("--report needs a file of its own (e.g. manifest.html)")
