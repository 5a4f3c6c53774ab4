"""The report's Python calls: :func:`render_report` (HTML text) and :func:`write_report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from selectkit import arguments
from selectkit.console import note
from selectkit.errors import SelectkitUsageError, option
from selectkit.pool import Columns
from selectkit.report.evaluation import curves_page, disco_page, predicted_page
from selectkit.report.inputs import gather
from selectkit.report.page import render
from selectkit.report.projection import MAX_POINTS
from selectkit.report.sections import selection_page

#: characters of each text shown on hover
TEXT_CHARS = 120
SUFFIXES = (".html", ".htm")


def _subtitle(page: dict[str, Any]) -> list[str]:
    if page["kind"] in ("selection", "compare"):
        names = ", ".join(page["names"])
        pool = f" of a {page['pool_rows']:,}-row pool" if page["pool_rows"] is not None else ""
        return [f"{len(page['names'])} selection(s){pool}: {names}"]
    return list(page["facts"])


def render_report(
    inputs: str | Path | list[str | Path],
    *,
    columns: Columns | None = None,
    seed: int = 0,
    max_points: int = MAX_POINTS,
    text_chars: int = TEXT_CHARS,
    title: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Read ``inputs`` and return ``(html, page)``: the page's HTML text and its content.

    ``inputs``: one or more manifests plus the pool tables they were selected from
    (embeddings, clusters, a corpus with text/labels; joined on the id column), or one
    ``al simulate`` curves table, or one ``disco evaluate`` table. ``max_points`` caps the map
    (rows drawn by id hash with ``seed``); ``text_chars`` is how much of each text the hover
    shows. Costs one read of every input, O(n) hashing and O(m d^2) for the map's projection
    of its m <= max_points rows.
    """
    paths = [str(p) for p in arguments.paths(inputs, "inputs")]
    cols = arguments.instance(columns, Columns, "columns", "Columns(text='body')") or Columns()
    arguments.integer(seed, "seed", min=0)
    arguments.integer(max_points, "max_points", min=1)
    arguments.integer(text_chars, "text_chars", min=0)
    if title is not None:
        arguments.text(title, "title")
    got = gather(paths, cols)
    if got.kind == "curves":
        page = curves_page(got.table)
    elif got.kind == "disco":
        page = disco_page(got.table)
    elif got.kind == "predicted":
        page = predicted_page(got.table, got.manifests[0] if got.manifests else None)
    else:
        if got.pool is not None and got.pool.frame.height > 200_000:
            note(f"report: drawing at most {max_points:,} of {got.pool.frame.height:,} rows")
        page = selection_page(got, cols, seed=seed, max_points=max_points, text_chars=text_chars)
    default = {
        "selection": "Selection report",
        "compare": "Selections compared",
        "curves": "Active-learning curves",
        "disco": "DISCO evaluation",
        "predicted": "DISCO predicted accuracy",
    }[page["kind"]]
    return render(page, title=title or default, subtitle=_subtitle(page)), page


def write_report(
    inputs: str | Path | list[str | Path],
    output: str | Path,
    *,
    columns: Columns | None = None,
    seed: int = 0,
    max_points: int = MAX_POINTS,
    text_chars: int = TEXT_CHARS,
    title: str | None = None,
) -> dict[str, Any]:
    """Write the report of ``inputs`` (see :func:`render_report`) to ``output`` (.html),
    atomically: a failed run leaves no partial file and an existing ``output`` untouched.

    Returns a summary: output, kind (selection, compare, curves, disco), bytes, points (map
    points drawn, 0 without a map), seconds. Same inputs and arguments give the same bytes.
    """
    from selectkit.io.write import atomic_path, check_output_path

    out = arguments.path(output, "output")
    if str(out) == "-" or Path(out).suffix.lower() not in SUFFIXES:
        raise SelectkitUsageError(
            f"{option('output', cli='-o')} '{out}' must be an .html file (e.g. report.html)"
        )
    paths = [str(p) for p in arguments.paths(inputs, "inputs")]
    check_output_path(out, paths)
    started = time.perf_counter()
    html, page = render_report(
        paths,
        columns=columns,
        seed=seed,
        max_points=max_points,
        text_chars=text_chars,
        title=title,
    )
    data = html.encode("utf-8")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    points = len(page["map"]["ids"]) if page.get("map") else 0
    return {
        "output": str(out),
        "kind": page["kind"],
        "bytes": len(data),
        "points": points,
        "seconds": round(time.perf_counter() - started, 3),
    }
