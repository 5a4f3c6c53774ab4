"""The ``selectkit`` command line: a thin Typer shell over the Python API."""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from selectkit import interrupts, textcap
from selectkit._version import __version__
from selectkit.cli._run import check_json_stdout, configure, report, run
from selectkit.cli.disco import app as disco_app
from selectkit.errors import SelectkitUsageError

app = typer.Typer(
    name="selectkit",
    help="Pick the subset of a corpus worth labelling, training on or evaluating with.\n\n"
    "Typical pipeline:  embed -> select -> apply.  Every command reads .parquet, .jsonl, .csv, "
    ".npy or '-' (stdin, JSON Lines) and writes by the output's extension ('-o -' = JSON Lines "
    "on stdout). Exit codes: 0 ok, 1 bad data or impossible request, 2 usage error, 70 internal error, "
    "130 Ctrl-C, 143 SIGTERM, 129 SIGHUP; a failed or stopped run leaves existing outputs as "
    "they were.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(disco_app, name="disco")

Output = Annotated[
    str,
    typer.Option("-o", "--output", help="Output file (.parquet, .jsonl, .csv) or '-' for stdout."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout.")]
Seed = Annotated[
    int, typer.Option("--seed", min=0, help="Seed for every random choice (recorded).")
]
Threads = Annotated[
    Optional[int], typer.Option("--threads", min=1, help="BLAS threads (default: all cores).")
]
MaxChars = Annotated[
    int, typer.Option("--max-chars", min=1, help=textcap.MAX_CHARS_HELP, show_default=True)
]
OnLong = Annotated[str, typer.Option("--on-long", help=textcap.ON_LONG_HELP)]
InputFormat = Annotated[
    Optional[str],
    typer.Option(
        "--input-format",
        help="Format of '-' (stdin; default jsonl) or of inputs without a known extension: "
        "jsonl, csv, parquet or npy.",
    ),
]


def _version(value: bool) -> None:
    if value:
        print(f"selectkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="No progress bars or notes.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Global options come before the command: selectkit -q select ..."""
    configure(quiet, debug)


@app.command()
def embed(
    input: Annotated[
        str,
        typer.Argument(help="Corpus with a text column (.jsonl, .parquet, .csv, or - for stdin)."),
    ],
    output: Output,
    embedder: Annotated[
        str,
        typer.Option("--embedder", "-e", help="hashing (built-in, default), minilm or wordllama."),
    ] = "hashing",
    dim: Annotated[
        Optional[int],
        typer.Option("--dim", min=2, help="Vector size (hashing: 256; wordllama: 64/128/256)."),
    ] = None,
    pooling: Annotated[
        Optional[str],
        typer.Option("--pooling", help="minilm token pooling: mean (default), cls or last."),
    ] = None,
    text_col: Annotated[str, typer.Option("--text-col", help="Column holding the text.")] = "text",
    id_col: Annotated[
        str, typer.Option("--id-col", help="Id column (row numbers if absent).")
    ] = "id",
    keep: Annotated[
        Optional[list[str]],
        typer.Option("--keep", help="Also copy this column to the output (repeatable)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per streamed batch.")
    ] = 8192,
    fit_rows: Annotated[
        int, typer.Option("--fit-rows", min=1, help="hashing: fit IDF/PCA on the first N rows.")
    ] = 100_000,
    max_chars: MaxChars = textcap.MAX_CHARS,
    on_long: OnLong = textcap.ON_LONG[0],
    input_format: InputFormat = None,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Turn a corpus into vectors: writes id + embedding (fixed-size float32 list).

    Streams in batches, so memory stays flat however large the corpus. The default embedder needs
    no download: hashed word and character n-grams, TF-IDF weighted, reduced to --dim by a PCA fitted
    on the first --fit-rows texts.

    Example:  selectkit embed data_samples/rotten_tomatoes.jsonl -o emb.parquet
    """
    from selectkit.embed import embed_file

    check_json_stdout(as_json, output)
    prov = run(
        lambda: embed_file(
            input,
            output,
            embedder=embedder,
            dim=dim,
            pooling=pooling,
            text_col=text_col,
            id_col=id_col,
            input_format=input_format,
            batch_size=batch_size,
            fit_rows=fit_rows,
            threads=threads,
            keep_columns=keep or (),
            max_chars=max_chars,
            on_long=on_long,
        )
    )
    rate = prov.metrics["rows"] / max(prov.timings.get("embed_s", 0.0), 1e-9)
    summary = {"output": output, **prov.metrics, **prov.timings, "docs_per_s": round(rate, 1)}
    report(summary, as_json=as_json, title="embed")


@app.command()
def cluster(
    input: Annotated[
        str, typer.Argument(help="Vectors: .npy, or a table with an embedding column.")
    ],
    output: Output,
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
    embedding_col: Annotated[
        str, typer.Option("--embedding-col", help="Embedding column.")
    ] = "embedding",
    id_col: Annotated[
        str, typer.Option("--id-col", help="Id column (row numbers if absent).")
    ] = "id",
    seed: Seed = 0,
    input_format: InputFormat = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per assignment batch.")
    ] = 65536,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """k-means: writes id, cluster, distance (squared distance to its centroid) per row.

    Seeding by rejection-sampling k-means++; rs-greedy (default) keeps the best of 2+ln k
    rejection-sampled candidates per centre, ranked on a lightweight coreset, which matches greedy
    k-means++ quality at a fraction of its cost. Then Lloyd iterations on faiss. With --fit-sample
    the model is fitted on a sample and every row is assigned in a stream (for data bigger than
    memory). With --levels a hierarchical k-means with resampling is built (Vo et al. 2024).

    Example:  selectkit cluster emb.parquet -k 50 -o clusters.parquet --centroids centroids.parquet
    """
    from selectkit.cluster import cluster_file
    from selectkit.cluster.pipeline import parse_levels

    check_json_stdout(as_json, output)
    prov = run(
        lambda: cluster_file(
            input,
            output,
            k=k,
            levels=parse_levels(levels) if levels else None,
            centroids_out=centroids,
            seeding=seeding,
            iters=iters,
            tol=tol,
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
        )
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="cluster")


def _sample_sizes(text: str | None) -> int | list[int] | None:
    from selectkit.cluster.pipeline import parse_levels

    if text is None:
        return None
    sizes = parse_levels(text, "--sample-size")
    return sizes[0] if len(sizes) == 1 else sizes


def _parse_params(items: list[str] | None) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


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
            raise SelectkitUsageError(
                f"no such option {token!r} for `select`; global options such as -q and "
                "--debug go before the command: `selectkit -q select ...`"
            )
        if not token.startswith("--") or token == "--":
            inputs.append(token)
            i += 1
            continue
        spec = spec or get_strategy(strategy)
        key, sep, value = token[2:].partition("=")
        name = key.replace("-", "_")
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


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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
    id_col: Annotated[str, typer.Option("--id-col", help="Id column.")] = "id",
    embedding_col: Annotated[
        str, typer.Option("--embedding-col", help="Embedding column.")
    ] = "embedding",
    label_col: Annotated[
        str,
        typer.Option(
            "--label-col",
            help="Label column (non-null = already labelled, never picked); 'none' ignores labels.",
        ),
    ] = "label",
    cluster_col: Annotated[str, typer.Option("--cluster-col", help="Cluster column.")] = "cluster",
    score_col: Annotated[
        str,
        typer.Option(
            "--score-col", help="Score column read by ccs and topk (sensitivity: --loss-col)."
        ),
    ] = "score",
    proba_col: Annotated[
        str, typer.Option("--proba-col", help="Class-probability column (list of float).")
    ] = "proba",
    proba_mc_col: Annotated[
        str, typer.Option("--proba-mc-col", help="Monte-Carlo probability column.")
    ] = "proba_mc",
    group_col: Annotated[str, typer.Option("--group-col", help="Group column.")] = "group",
    text_col: Annotated[str, typer.Option("--text-col", help="Text column (dsir).")] = "text",
    model_col: Annotated[str, typer.Option("--model-col", help="Model column.")] = "model",
    stochastic: Annotated[
        Optional[str],
        typer.Option(
            "--stochastic",
            help="Scored strategies: sample the batch instead of taking the top scores: softmax, "
            "power or softrank (Kirsch et al. 2023).",
        ),
    ] = None,
    beta: Annotated[
        Optional[float],
        typer.Option(
            "--beta",
            help="With --stochastic: its coldness β (> 0, default 1; large = close to top-k). "
            "Otherwise the strategy's own beta (ccs: the hard-cutoff fraction).",
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
        typer.Option("--anchor-neighbours", min=1, help="anchoral: neighbours per anchor (K)."),
    ] = 50,
    input_format: InputFormat = None,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Pick --budget rows with a strategy and write a manifest (id, rank, score, weight[, cluster]).

    Rows with a non-null label are treated as already labelled: never picked, but strategies
    such as kcenter count them as covered. The manifest records the strategy, parameters, seed,
    inputs (with fingerprints), timings and metrics; see `selectkit inspect`.

    Examples:

        selectkit select emb.parquet --strategy kcenter --budget 200 -o manifest.parquet

        selectkit select emb.parquet dyn.parquet --strategy ccs --score-col aum --budget 10% -o m.parquet

        selectkit select emb.parquet clusters.parquet --strategy semdedup --threshold 0.95 -o kept.parquet

        selectkit select shards/*.jsonl.gz --strategy dsir --target wiki.jsonl --budget 1000 -o m.parquet

    Active learning (a pool with your model's proba column):

        selectkit select pool.parquet -s margin -b 100 --stochastic power -o batch.parquet
    """
    from selectkit.pool import Columns
    from selectkit.select import select_files

    check_json_stdout(as_json, output)
    tables, options = run(lambda: split_strategy_options(inputs, strategy))
    params = {**options, **_parse_params(param)}
    if beta is not None and not stochastic:  # without --stochastic, --beta is the strategy's own
        from selectkit.strategies import get_strategy

        if "beta" not in run(lambda: get_strategy(strategy)).params:
            raise typer.BadParameter(
                "--beta needs --stochastic (or a strategy with a beta, ccs)", param_hint="--beta"
            )
        params.setdefault("beta", str(beta))
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
        raise typer.BadParameter("give at least one input table", param_hint="INPUTS")
    if emit_dropped is not None and emit_dropped == output:
        raise typer.BadParameter("--emit-dropped needs a file other than -o's")
    prov = run(
        lambda: select_files(
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
            stochastic=stochastic,
            stochastic_beta=1.0 if beta is None else beta,
            subpool=subpool,
            subpool_options={
                "anchors": anchors,
                "neighbours": anchor_neighbours,
                "subpool_size": subpool_size,
            },
        )
    )
    report(
        {"output": output, "strategy": strategy, "seed": seed, **prov.metrics, **prov.timings},
        as_json=as_json,
        title="select",
    )


@app.command()
def scores(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Tables with an embedding and a label column, joined on the id column."
        ),
    ],
    output: Output,
    model: Annotated[
        str,
        typer.Option("--model", help="sgd (linear softmax, fast) or mlp (one hidden layer)."),
    ] = "sgd",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 10,
    seed: Seed = 0,
    id_col: Annotated[str, typer.Option("--id-col", help="Id column.")] = "id",
    embedding_col: Annotated[
        str, typer.Option("--embedding-col", help="Embedding column.")
    ] = "embedding",
    label_col: Annotated[str, typer.Option("--label-col", help="Label column.")] = "label",
    input_format: InputFormat = None,
    as_json: Json = False,
) -> None:
    """Score how hard each labelled row is to learn: AUM, forgetting events, EL2N and loss.

    Trains a scikit-learn model epoch by epoch on the labelled rows and records how its
    predictions of each row evolve. Low aum, high forgetting, high el2n and high loss mark hard
    (or mislabelled) rows. Writes id, aum, forgetting, el2n, loss for the labelled rows; feed it to
    `select --strategy ccs --score-col aum` (or topk, or sensitivity with --loss-col loss).

    Example:  selectkit scores vectors.parquet --label-col label -o dyn.parquet
    """
    from selectkit.dynamics import scores_file
    from selectkit.pool import Columns

    check_json_stdout(as_json, output)
    columns = Columns().with_overrides(id=id_col, embedding=embedding_col, label=label_col)
    prov = run(
        lambda: scores_file(
            inputs,
            output,
            epochs=epochs,
            model=model,
            seed=seed,
            columns=columns,
            input_format=input_format,
        )
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="scores")


@app.command()
def apply(
    manifest: Annotated[str, typer.Argument(help="Manifest written by `selectkit select`.")],
    table: Annotated[
        list[str],
        typer.Argument(
            help="Any table holding the same ids (e.g. the corpus); several shards are read in "
            "order as one table (rows without ids are numbered on across them)."
        ),
    ],
    output: Output,
    order: Annotated[
        str,
        typer.Option("--order", help="rank (pick order, default) or original (the table's order)."),
    ] = "rank",
    id_col: Annotated[str, typer.Option("--id-col", help="Id column in both tables.")] = "id",
    manifest_columns: Annotated[
        bool,
        typer.Option(
            "--manifest-columns/--no-manifest-columns", help="Append rank, score and weight."
        ),
    ] = True,
    input_format: InputFormat = None,
    as_json: Json = False,
) -> None:
    """Materialise a manifest: the rows of TABLE whose ids the manifest lists.

    Example:  selectkit apply manifest.parquet data_samples/rotten_tomatoes.jsonl -o subset.jsonl
    """
    from selectkit.apply import apply_manifest

    check_json_stdout(as_json, output)
    prov = run(
        lambda: apply_manifest(
            manifest,
            table,
            output,
            order=order,
            id_col=id_col,
            with_manifest_columns=manifest_columns,
            input_format=input_format,
        )
    )
    report({"output": output, **prov.metrics, **prov.timings}, as_json=as_json, title="apply")


@app.command()
def inspect(
    path: Annotated[str, typer.Argument(help="Any table or artefact (.parquet shows provenance).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
) -> None:
    """Show an artefact's columns, row count and provenance (how it was made).

    Example:  selectkit inspect manifest.parquet --json
    """
    from selectkit.inspect import inspect_file

    info = run(lambda: inspect_file(path))
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return
    _print_inspect(info)


def _print_inspect(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"[bold]{info['path']}[/]  {info['format']}, {info['rows']} rows")
    cols = Table("column", "type", title_justify="left")
    for name, dtype in info["columns"].items():
        cols.add_row(name, dtype)
    console.print(cols)
    prov = info.get("provenance")
    if not prov:
        console.print("no selectkit provenance")
        return
    console.print(
        f"made by: selectkit {prov['selectkit_version']} {prov['command']} (seed {prov['seed']})"
    )
    table = Table("provenance", "value", title_justify="left")
    for key in ("params", "metrics", "timings"):
        for k, v in (prov.get(key) or {}).items():
            table.add_row(f"{key}.{k}", json.dumps(v) if isinstance(v, (dict, list)) else str(v))
    for i, src in enumerate(prov.get("inputs") or []):
        table.add_row(f"input[{i}]", f"{src['path']} ({src['rows']} rows, {src['fingerprint']})")
    console.print(table)


@app.command()
def strategies(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List every strategy, the columns it needs, its parameters and its cost."""
    from selectkit.strategies import list_strategies

    specs = run(list_strategies)
    rows = [
        {
            "name": s.name,
            "needs": list(s.needs),
            "optional": list(s.optional),
            "params": {
                k: {**p.describe(), "help": p.help}  # type, default, choices, bounds
                for k, p in s.params.items()
            },
            "summary": s.summary,
            "cost": s.cost,
        }
        for s in specs
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("strategy", "needs", "parameters", "what it does", show_lines=True)
    for r in rows:
        params = "\n".join(
            f"--{k.replace('_', '-')} {v['default']}: {v['help']}" for k, v in r["params"].items()
        )
        needs = ", ".join(r["needs"]) or "-"
        if r["optional"]:
            needs += f"\n(optional: {', '.join(r['optional'])})"
        table.add_row(r["name"], needs, params or "-", f"{r['summary']}\nCost: {r['cost']}")
    Console().print(table)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's outputs.")] = Path(
        "selectkit-demo"
    ),
    corpus: Annotated[
        Optional[str],
        typer.Option("--corpus", help="Corpus (default: bundled Rotten Tomatoes sample)."),
    ] = None,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Rows to pick.")] = 200,
    seed: Seed = 0,
    as_json: Json = False,
) -> None:
    """Run the whole pipeline on bundled real data: embed, select (kcenter vs random), apply.

    Prints how well each selection covers the corpus (distance of every row to its nearest pick;
    lower is better) and the label mix of each.
    """
    from selectkit.demo import run_demo

    summary = run(lambda: run_demo(out_dir, corpus=corpus, budget=budget, seed=seed))
    if as_json:
        report(summary, as_json=True, title="demo")
        return
    _print_demo(summary)


def _print_demo(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(
        f"Embedded {summary['rows']} texts of {summary['corpus']} in {summary['embed_seconds']} s; "
        f"picked {summary['budget']} with seed {summary['seed']}."
    )
    table = Table(
        "strategy",
        "mean dist to nearest pick",
        "max dist",
        "seconds",
        "labels picked",
        title="Coverage of the corpus (lower distance = better coverage)",
        title_justify="left",
    )
    for name, r in summary["selections"].items():
        labels = ", ".join(f"{k} {v}" for k, v in r.get("labels", {}).items())
        table.add_row(
            name, f"{r['mean_distance']:.4f}", f"{r['max_distance']:.4f}", str(r["seconds"]), labels
        )
    console.print(table)
    console.print(
        "kcenter minimises the worst case (max distance): every text is close to some pick. "
        "Random matches the corpus's density, so its mean can be as low or lower."
    )
    for name, path in summary["outputs"].items():
        console.print(f"  {name}: {path}")
    console.print("Next: selectkit inspect " + summary["outputs"]["kcenter"])


from selectkit.cli.al import app as _al_app  # noqa: E402  (sub-app: selectkit al ...)

app.add_typer(_al_app, name="al")


def entrypoint() -> None:
    """Console-script entry point: signals unwind like Ctrl-C; usage errors exit 2."""
    from selectkit.cli._run import stopped, stopped_outside_run
    from selectkit.io.provenance import set_invocation

    interrupts.install()
    set_invocation(["selectkit", *sys.argv[1:]])
    try:
        if len(sys.argv) == 1:  # bare `selectkit`: the help, as a usage error
            app(["--help"], standalone_mode=False)
            sys.exit(2)
        app()
    except SystemExit as exc:
        code = stopped_outside_run(exc.code)
        if code is None:
            raise
        sys.exit(code)
    except SelectkitUsageError as exc:  # pragma: no cover - run() already handles these
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as exc:  # a signal outside a command's run (while parsing, say)
        sys.exit(stopped(exc))
