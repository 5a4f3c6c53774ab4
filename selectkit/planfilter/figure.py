"""The plan as a PNG: predicted error against compute for each top-m union, the best m marked
at every requested budget. matplotlib is optional (``pip install 'selectkit[plot]'``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from selectkit.io.write import atomic_path
from selectkit.planfilter.law import mixture_error


def plot_plan(
    table: pl.DataFrame, fit, computes: list[int], output: str | Path, *, tau_scale_m: bool
) -> None:
    """Write the plan's PNG (atomically). With a fit: one curve per m over compute (log axis),
    the requested budgets as dashed lines and each budget's best m as a dot; for the rule of
    thumb: the keep fraction against compute. Cost: O(B * (200 + K))."""
    from selectkit.al.plot import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    lo, hi = min(computes) / 4, max(computes) * 4
    grid = np.geomspace(lo, hi, 200)
    if fit is not None:
        order = np.lexsort((np.arange(len(fit.b)), fit.b))
        for m in range(1, len(order) + 1):
            pick = order[:m]
            y = mixture_error(
                grid,
                fit.pools[pick],
                fit.b[pick],
                fit.tau[pick],
                fit.a,
                fit.d,
                d_form=fit.d_form,
                tau_scale_m=tau_scale_m,
            )
            frac = table.filter(pl.col("m") == m).get_column("keep_fraction")[0]
            ax.plot(grid, y, label=f"top {m} ({frac:.1%})", linewidth=1.5)
        best = table.filter(pl.col("best"))
        ax.scatter(
            best["compute"],
            best["predicted_error"],
            color="black",
            zorder=3,
            s=18,
            label="best per budget",
        )
        ax.set_ylabel("predicted error")
    else:
        ax.plot(table["compute"], table["keep_fraction"], marker="o")
        ax.set_ylabel("keep fraction (rule of thumb, no curves)")
    for c in computes:
        ax.axvline(c, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute (samples seen)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
