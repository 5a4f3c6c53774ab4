"""Learning-curve plots (PNG): mean accuracy ± one standard deviation over repeats, per strategy.

matplotlib is an optional extra (``pip install 'selectkit[plot]'``); it is imported here only.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from selectkit.errors import SelectkitUsageError, option
from selectkit.io.write import atomic_path


def require_matplotlib() -> None:
    """Raise a usage error telling the user how to install matplotlib when it is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SelectkitUsageError(
            f"{option('plot')} needs matplotlib, which is not installed; "
            "pip install 'selectkit[plot]'"
        ) from None


def plot_curves(curves: pl.DataFrame, output: str | Path, *, title: str = "") -> None:
    """Write a PNG of accuracy against labelled rows (against cumulative cost when the curves
    have a ``cumulative_cost`` column): one line (mean) and band (± std) per strategy
    (alphabetical). Atomic like every selectkit output."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as plt

    x_col = "cumulative_cost" if "cumulative_cost" in curves.columns else "n_labelled"
    stats = (
        curves.group_by(["strategy", "round"])
        .agg(
            pl.col(x_col).mean().alias("x"),
            pl.col("accuracy").mean().alias("mean"),
            pl.col("accuracy").std(ddof=0).fill_null(0.0).alias("std"),
        )
        .sort(["strategy", "round"])
    )
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (name,), part in stats.group_by(["strategy"], maintain_order=True):
        n = part["x"].to_numpy()
        mean, std = part["mean"].to_numpy(), part["std"].to_numpy()
        (line,) = ax.plot(n, mean, label=str(name), linewidth=1.6)
        ax.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("labelled rows" if x_col == "n_labelled" else "cumulative cost (mean)")
    ax.set_ylabel("test accuracy (mean ± std over repeats)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
