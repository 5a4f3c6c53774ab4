"""Render a page's content into one self-contained HTML document (jinja2, autoescaped).

CSS and the map's script are read from ``assets/`` and inlined; the map's data goes in a JSON
``<script>`` block with ``<`` escaped, so no text from the inputs can close it.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from selectkit._version import __version__


@cache
def _asset(name: str) -> str:
    return resources.files("selectkit.report").joinpath("assets", name).read_text("utf-8")


@lru_cache(maxsize=1)
def _template():
    import jinja2

    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.from_string(_asset("report.html.j2"))


def _sections(page: dict[str, Any]) -> list[tuple[str, str]]:
    if page["kind"] in ("selection", "compare"):
        out = [("counts", "Counts")]
        if page.get("map"):
            out.append(("map", "Map"))
        out += [(f"share-{s['role']}", f"Per {s['role']}") for s in page["shares"]]
        if page["histograms"]:
            out.append(("scores", "Scores & weights"))
        out += [(f"dsir{i}", "DSIR shift") for i in range(len(page["dsir"]))]
        out += [(f"dropped{i}", "Near-duplicates") for i in range(len(page["dropped"]))]
    else:
        out = [("summary", "Summary"), ("charts", "Charts")]
    return [*out, ("provenance", "Provenance")]


def _map_size(page: dict[str, Any]) -> int:
    """CSS pixels of each map: one large, two or three side by side on a laptop screen."""
    n = len(page.get("names") or [])
    return 640 if n <= 1 else 440 if n == 2 else 400


def map_json(data: dict[str, Any]) -> str:
    """The map's data as compact JSON that is safe inside a ``<script>`` element."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(page: dict[str, Any], *, title: str, subtitle: list[str]) -> str:
    """The HTML text of ``page`` (a context from :mod:`selectkit.report.sections` or
    :mod:`selectkit.report.evaluation`); O(size of the page)."""
    data = page.get("map")
    return _template().render(
        page=page,
        title=title,
        subtitle=subtitle,
        sections=_sections(page),
        version=__version__,
        css=_asset("report.css"),
        map_js=_asset("map.js"),
        map_json=map_json(data) if data else "",
        map_size=_map_size(page),
    )
