"""``selectkit stream``: keep or skip each line of a stream (stdin or files) in bounded memory;
a thin shell over :func:`selectkit.stream.stream_select`."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from selectkit.cli._options import EmbeddingCol, IdCol, Seed
from selectkit.cli._run import stopped_saying
from selectkit.console import note
from selectkit.interrupts import Interrupted
from selectkit.stream.policies import STREAM_PARAMS, STREAM_STRATEGIES
from selectkit.stream.run import STREAM_OPTIONS

_P = STREAM_PARAMS


def _amount(value: float) -> str:
    """A cost total for the summary line: 64,603 or 2.5."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _strategies_help() -> str:
    return ", ".join(STREAM_STRATEGIES) + " (docs/stream.md says what each keeps)"


def stream(
    inputs: Annotated[
        Optional[list[str]],
        typer.Argument(help="JSON Lines or CSV files (.gz too), read in order; default: stdin."),
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="Stream strategy. " + _strategies_help() + ".")
    ] = "rand-var-uncertainty",
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            "-b",
            help="Share of lines to keep: 10% or 0.1; with --cost-col a share of the cost seen, "
            "or cost:X (X cost units per input line on average).",
        ),
    ] = "10%",
    proba_col: Annotated[
        Optional[str],
        typer.Option("--proba-col", help="Field with each line's class probabilities (a list)."),
    ] = None,
    score_col: Annotated[
        Optional[str],
        typer.Option(
            "--score-col",
            help="Field with each line's utility, a number (higher = more worth keeping).",
        ),
    ] = None,
    embedding_col: EmbeddingCol = None,  # type: ignore[assignment]
    cost_col: Annotated[
        Optional[str],
        typer.Option(
            "--cost-col",
            help="Field with each line's positive cost (tokens, seconds): --budget then spends "
            "cost, not lines.",
        ),
    ] = None,
    id_col: IdCol = "id",
    input_format: Annotated[
        str, typer.Option("--format", help="auto (by extension; stdin: jsonl), jsonl or csv.")
    ] = "auto",
    max_keep: Annotated[
        Optional[int],
        typer.Option(
            "--max-keep",
            min=STREAM_OPTIONS["max_keep"].cli_min,
            help=STREAM_OPTIONS["max_keep"].help + ".",
        ),
    ] = None,
    state: Annotated[
        Optional[str],
        typer.Option(
            "--state",
            help="JSON file: loaded at the start when it exists, saved at the end; feeding a "
            "stream in pieces with one --state decides exactly as one run.",
        ),
    ] = None,
    log: Annotated[
        Optional[str],
        typer.Option(
            "--log",
            help="Parquet file with one decision row per input line (written as the stream "
            "goes, renamed into place at the end).",
        ),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="A malformed line: raise (stop with its line number) or skip (count it).",
        ),
    ] = "raise",
    window: Annotated[
        int, typer.Option("--window", min=_P["window"].cli_min, help=_P["window"].help + ".")
    ] = _P["window"].default,
    step: Annotated[
        float,
        typer.Option("--step", help=_P["step"].help + "; must " + _P["step"].bounds_text() + "."),
    ] = _P["step"].default,
    delta: Annotated[
        float, typer.Option("--delta", min=_P["delta"].cli_min, help=_P["delta"].help + ".")
    ] = _P["delta"].default,
    split_ratio: Annotated[
        float,
        typer.Option(
            "--split-ratio",
            min=_P["split_ratio"].cli_min,
            max=_P["split_ratio"].cli_max,
            help=_P["split_ratio"].help + ".",
        ),
    ] = _P["split_ratio"].default,
    tolerance_window: Annotated[
        int,
        typer.Option(
            "--tolerance-window",
            min=_P["tolerance_window"].cli_min,
            help=_P["tolerance_window"].help + ".",
        ),
    ] = _P["tolerance_window"].default,
    density_window: Annotated[
        int,
        typer.Option(
            "--density-window",
            min=_P["density_window"].cli_min,
            help=_P["density_window"].help + ".",
        ),
    ] = _P["density_window"].default,
    warmup: Annotated[
        int,
        typer.Option(
            "--warmup",
            min=_P["warmup"].cli_min,
            max=_P["warmup"].cli_max,
            help=_P["warmup"].help + ".",
        ),
    ] = _P["warmup"].default,
    seed: Seed = 0,
) -> None:
    """Keep about --budget of the lines that stream by, deciding each line as it arrives;
    kept lines go to stdout byte for byte (flushed, so it works inside pipes), nothing else does.

    Examples:

        producer | selectkit stream --proba-col proba --budget 10% > kept.jsonl

        selectkit stream s.jsonl -s quantile --score-col score -b 5% --state s.json > kept.jsonl

    docs/stream.md explains the strategies, resuming with --state, and the costs.
    """
    from selectkit.stream import stream_select

    params = {
        "window": window,
        "step": step,
        "delta": delta,
        "split_ratio": split_ratio,
        "tolerance_window": tolerance_window,
        "density_window": density_window,
        "warmup": warmup,
    }
    try:
        summary = stream_select(
            inputs or ["-"],
            sys.stdout.buffer,
            strategy=strategy,
            budget=budget,
            proba_col=proba_col,
            score_col=score_col,
            embedding_col=embedding_col,
            cost_col=cost_col,
            id_col=id_col,
            input_format=input_format,
            seed=seed,
            max_keep=max_keep,
            state=state,
            log=log,
            on_error=on_error,
            params=params,
        )
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP
        what = f"stopped by {exc.name}" if isinstance(exc, Interrupted) else "interrupted"
        line = f"{what}; the lines kept so far are on stdout; --state and --log were not changed"
        raise typer.Exit(stopped_saying(exc, line)) from None
    skipped = (
        f", {summary['skipped_malformed']} malformed line(s) skipped"
        if summary["skipped_malformed"]
        else ""
    )
    costs = (
        f", cost {_amount(summary['kept_cost'])} of {_amount(summary['cost_seen'])} "
        f"({100 * summary['kept_cost_fraction']:.1f}%)"
        if "kept_cost" in summary
        else ""
    )
    note(
        f"kept {summary['kept']:,} of {summary['lines']:,} lines "
        f"({100 * summary['kept_fraction']:.1f}%){costs}{skipped}"
    )
