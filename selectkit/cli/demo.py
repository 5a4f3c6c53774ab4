"""``selectkit demo``: the whole pipeline on bundled real data (thin shell over
:func:`selectkit.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from selectkit.cli._options import Json, Seed
from selectkit.cli._run import report


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

    summary = run_demo(out_dir, corpus=corpus, budget=budget, seed=seed)
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
