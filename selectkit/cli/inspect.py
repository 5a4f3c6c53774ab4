"""``selectkit inspect``: an artefact's columns, rows and provenance (thin shell over
:func:`selectkit.inspect_file`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from selectkit.cli._options import AsJson


def inspect(
    path: Annotated[str, typer.Argument(help="Any table or artefact (.parquet shows provenance).")],
    as_json: AsJson = False,
) -> None:
    """Show an artefact's columns, row count and provenance (how it was made).

    Example:  selectkit inspect manifest.parquet --json
    """
    from selectkit.inspect import inspect_file

    info = inspect_file(path)
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
