"""``selectkit strategies``: every registered strategy (thin shell over
:func:`selectkit.list_strategies`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from selectkit.cli._options import AsJson


def strategies(
    as_json: AsJson = False,
) -> None:
    """List every strategy, the columns it needs, what labels mean to it, its parameters and cost.

    labels: "labelled set" (rows with a label are never picked) or "as data" (every row may be
    picked; --labelled-col on `select` keeps marked rows out).

    On a terminal: a table. Piped: plain text, one line per fact, never wrapped (grep-able).
    """
    from selectkit.strategies import list_strategies

    rows = [describe(s) for s in list_strategies()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif sys.stdout.isatty():
        _print_table(rows)
    else:
        sys.stdout.write(plain_text(rows))


def describe(spec: Any) -> dict[str, Any]:
    """One strategy as plain data: what ``strategies --json`` prints for it."""
    return {
        "name": spec.name,
        "needs": list(spec.needs),
        "optional": list(spec.optional),
        "params": {
            k: {**p.describe(), "help": p.help}  # type, default, choices, bounds
            for k, p in spec.params.items()
        },
        "summary": spec.summary,
        "cost": spec.cost,
        "labels": spec.labels,
        "input": spec.inputs.name,
    }


def option_lines(row: dict[str, Any]) -> list[str]:
    """``--name default: help`` for each parameter of a described strategy."""
    return [
        f"--{k.replace('_', '-')} {v['default']}: {v['help']}" for k, v in row["params"].items()
    ]


def plain_text(rows: list[dict[str, Any]]) -> str:
    """The listing for pipes: a block per strategy, each line whole."""
    out: list[str] = []
    for r in rows:
        out.append(f"{r['name']}: {r['summary']}")
        needs = ", ".join(r["needs"]) or "-"
        if r["optional"]:
            needs += f" (optional: {', '.join(r['optional'])})"
        if r["input"] != "wide":
            needs += f" (input: {r['input']})"
        out.append(f"  needs: {needs}")
        out.append(f"  labels: {_labels(r)}")
        out.extend(f"  {line}" for line in option_lines(r))
        out.append(f"  cost: {r['cost']}")
        out.append("")
    return "\n".join(out)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("strategy", "needs", "labels", "parameters", "what it does", show_lines=True)
    for r in rows:
        needs = ", ".join(r["needs"]) or "-"
        if r["optional"]:
            needs += f"\n(optional: {', '.join(r['optional'])})"
        if r["input"] != "wide":
            needs += f"\n(input: {r['input']})"
        params = "\n".join(option_lines(r))
        summary = f"{r['summary']}\nCost: {r['cost']}"
        table.add_row(r["name"], needs, _labels(r), params or "-", summary)
    Console().print(table)


def _labels(row: dict[str, Any]) -> str:
    return "as data" if row["labels"] == "data" else "labelled set"
