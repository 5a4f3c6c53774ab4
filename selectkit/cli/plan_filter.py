"""``selectkit plan-filter``: how much of a quality-ranked pool to keep for each compute budget
(Goyal et al., CVPR 2024); a thin shell over :func:`selectkit.planfilter.plan_filter`."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from selectkit.cli._options import IdCol, Json, Seed
from selectkit.cli._run import report
from selectkit.errors import SelectkitUsageError
from selectkit.planfilter.run import PLAN_FILTER_PARAMS as P


def plan_filter(
    curves: Annotated[
        Optional[str],
        typer.Argument(
            help="Curves of your short runs: bucket, pool_size, samples_seen, error "
            "(buckets sort best first: 0, 1, 2 or top10, top20, ...). Omit for the rule of thumb."
        ),
    ] = None,
    compute: Annotated[
        list[str],
        typer.Option(
            "--compute",
            help="Compute budgets in samples seen, comma-separated or repeated: 32M,128M,1.5B,1e6.",
        ),
    ] = ...,  # type: ignore[assignment]
    output: Annotated[
        Optional[str],
        typer.Option(
            "-o", "--output", help="Plan table (.parquet, .jsonl, .csv; '-' for JSON Lines)."
        ),
    ] = None,
    fitted: Annotated[
        Optional[str],
        typer.Option(
            "--fitted",
            help="Fitted parameters instead of curves: bucket, pool_size, b, tau, a, d (what "
            "--params writes).",
        ),
    ] = None,
    params_out: Annotated[
        Optional[str],
        typer.Option("--params", help="Write the fitted parameters and per-bucket residuals."),
    ] = None,
    pool: Annotated[
        Optional[str],
        typer.Option(
            "--pool", help="The scored pool: its rows are the keep fraction's denominator."
        ),
    ] = None,
    score_col: Annotated[
        str, typer.Option("--score-col", help="Quality score column of --pool (higher = better).")
    ] = "score",
    bucket_edges: Annotated[
        Optional[str],
        typer.Option(
            "--bucket-edges",
            help="Buckets of --pool by score quantile: 0.1,0.2,0.3 = top 10%, 10-20%, 20-30%, rest.",
        ),
    ] = None,
    buckets_out: Annotated[
        Optional[str],
        typer.Option("--buckets-out", help="Write --pool's rows with their bucket (0 = best)."),
    ] = None,
    pool_size: Annotated[
        Optional[int],
        typer.Option("--pool-size", min=P["pool_size"].cli_min, help=P["pool_size"].help + "."),
    ] = None,
    keep_out: Annotated[
        Optional[str],
        typer.Option(
            "--keep-out",
            help="With --pool and one --compute: write the selection (select --strategy topk "
            "--score-col ... --budget <recommended fraction>).",
        ),
    ] = None,
    plot: Annotated[
        Optional[str], typer.Option("--plot", help="Write a PNG of the plan (needs matplotlib).")
    ] = None,
    d_form: Annotated[str, typer.Option("--d-form", help=P["d_form"].help + ".")] = "floor",
    d: Annotated[
        Optional[float],
        typer.Option("--d", "-d", min=P["d"].cli_min, help=P["d"].help + " (default: fitted)."),
    ] = None,
    tau_scale_m: Annotated[
        bool, typer.Option("--tau-scale-m/--no-tau-scale-m", help=P["tau_scale_m"].help + ".")
    ] = False,
    monotone: Annotated[
        bool, typer.Option("--monotone/--no-monotone", help=P["monotone"].help + ".")
    ] = True,
    r_max: Annotated[
        float, typer.Option("--r-max", min=P["r_max"].cli_min, help=P["r_max"].help + ".")
    ] = 4.0,
    starts: Annotated[
        int,
        typer.Option(
            "--starts",
            min=P["starts"].cli_min,
            max=P["starts"].cli_max,
            help=P["starts"].help + ".",
        ),
    ] = 6,
    print_fraction: Annotated[
        bool,
        typer.Option(
            "--print-fraction",
            help="Print only the recommended keep fraction (e.g. 12.5%) on stdout, for "
            "`select --budget`; needs exactly one --compute.",
        ),
    ] = False,
    seed: Seed = 0,
    id_col: IdCol = "id",
    as_json: Json = False,
) -> None:
    """Fit each quality bucket's utility b and repetition half-life tau from short runs
    (Goyal et al., "Scaling Laws for Data Filtering", CVPR 2024), report the fit residuals, and
    for each compute budget recommend how many of the best buckets to keep and the predicted
    error. Without curves, only a labelled rule of thumb: keep the smallest top fraction
    repeated at most --r-max times.

    Examples:

        selectkit plan-filter curves.parquet --compute 32M,128M,640M -o plan.parquet --plot plan.png

        selectkit select pool.parquet --strategy topk --score-col quality --budget
        "$(selectkit plan-filter curves.parquet --compute 128M --print-fraction)" -o keep.parquet

    docs/plan-filter.md says more (the law, its pitfalls, a measured check).
    """
    from selectkit.console import is_quiet, stderr_console
    from selectkit.planfilter.run import parse_compute
    from selectkit.planfilter.run import plan_filter as run

    computes = parse_compute(compute)
    if print_fraction and len(computes) != 1:
        raise SelectkitUsageError(
            f"--print-fraction prints one fraction, but --compute gives {len(computes)} budgets; "
            "give one --compute"
        )
    if print_fraction and as_json:
        raise SelectkitUsageError("--print-fraction and --json both print on stdout; pick one")
    if (print_fraction or as_json) and output == "-":
        raise SelectkitUsageError("'-o -' prints the plan on stdout; drop --print-fraction/--json")
    summary = run(
        curves,
        output,
        compute=computes,
        fitted=fitted,
        pool=pool,
        score_col=score_col,
        bucket_edges=bucket_edges,
        buckets_out=buckets_out,
        pool_size=pool_size,
        params_out=params_out,
        plot=plot,
        keep_out=keep_out,
        d_form=d_form,
        d=d,
        tau_scale_m=tau_scale_m,
        monotone=monotone,
        r_max=r_max,
        starts=starts,
        seed=seed,
        id_col=id_col,
    )
    if not is_quiet():
        console = stderr_console()
        if summary["method"] == "rule-of-thumb":
            console.print(summary["label"], markup=False, soft_wrap=True)
        else:
            for row in summary["params"]:
                console.print(
                    f"bucket {row['bucket']}: b={row['b']:.4g} tau={row['tau']:.3g}"
                    + (f" rmse={row['rmse']:.3g}" if "rmse" in row else ""),
                    markup=False,
                    soft_wrap=True,
                )
            console.print(
                f"shared a={summary['a']:.4g} d={summary['d']:.4g} ({summary['d_form']})",
                markup=False,
            )
        for row in summary["plan"]:
            err = row.get("predicted_error")
            console.print(
                f"compute {row['compute']:,}: keep {row['keep_fraction']:.2%} of the pool"
                + (f" (top {row['m']} buckets)" if row.get("m") is not None else "")
                + (f", predicted error {err:.4g}" if err is not None else "")
                + (" [extrapolated]" if row.get("extrapolated") else ""),
                markup=False,
                soft_wrap=True,
            )
        for line in summary["warnings"]:
            if line != summary.get("label"):
                console.print("warning: " + line, markup=False, soft_wrap=True)
    if print_fraction:
        sys.stdout.write(summary["budget"] + "\n")
        return
    if as_json:
        report(summary, as_json=True, title="plan-filter")
