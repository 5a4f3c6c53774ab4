"""``selectkit stream``: keep or skip each line of a stream (stdin or files) in bounded memory;
a thin shell over :func:`selectkit.stream.stream_select`."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from selectkit.cli._options import EmbeddingCol, IdCol, ProbaCol, ScoreCol, Seed
from selectkit.console import note, stderr_console
from selectkit.interrupts import Interrupted
from selectkit.stream.policies import STREAM_PARAMS, STREAM_STRATEGIES
from selectkit.stream.run import STREAM_OPTIONS

_P = STREAM_PARAMS


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
        str, typer.Option("--budget", "-b", help="Share of lines to keep: 10% or 0.1.")
    ] = "10%",
    # a line's fields are the stream's columns: the shared column options, unset by default
    proba_col: ProbaCol = None,  # type: ignore[assignment]
    score_col: ScoreCol = None,  # type: ignore[assignment]
    embedding_col: EmbeddingCol = None,  # type: ignore[assignment]
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
            "--log", help="Parquet file with one decision row per input line (written at the end)."
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
    step: Annotated[float, typer.Option("--step", help=_P["step"].help + ".")] = _P["step"].default,
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
            id_col=id_col,
            input_format=input_format,
            seed=seed,
            max_keep=max_keep,
            state=state,
            log=log,
            on_error=on_error,
            params=params,
        )
    except Interrupted as exc:
        stderr_console().print(
            f"stopped by {exc.name}; the lines kept so far are on stdout; --state and --log "
            "were not changed",
            soft_wrap=True,
        )
        raise typer.Exit(exc.exit_code) from None
    skipped = (
        f", {summary['skipped_malformed']} malformed line(s) skipped"
        if summary["skipped_malformed"]
        else ""
    )
    note(
        f"kept {summary['kept']:,} of {summary['lines_total']:,} lines "
        f"({100 * summary['kept_fraction']:.1f}%){skipped}"
    )
