"""``selectkit report``: one self-contained HTML page showing what was selected and why.

:func:`write_report` reads manifests with their pool (embeddings, clusters, corpus), or one
``al simulate`` curves table, or one ``disco evaluate`` table, and writes the page atomically.
"""

from __future__ import annotations

from selectkit.report.api import render_report, write_report

__all__ = ["render_report", "write_report"]
