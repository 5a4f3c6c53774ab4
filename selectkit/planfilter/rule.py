"""The rule of thumb offered when there are no curves to fit, labelled as such everywhere: keep
the smallest top fraction f of the pool that is repeated at most r_max times,
f = min(1, n / (r_max N)) (r_max = 4: "up to about 4 epochs is nearly as good as fresh data",
Muennighoff et al.'s finding for language models, not a fit to the user's data)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

RULE_LABEL = "rule of thumb (no curves fitted): keep the smallest top fraction seen at most "


def rule_table(
    computes: list[int], total_rows: int, r_max: float, sizes: np.ndarray | None = None
) -> pl.DataFrame:
    """One row per compute: keep fraction f = min(1, n / (r_max N)), the rows it keeps
    (ceil(f N)), repetitions and, when bucket ``sizes`` are given (best first), the number m of
    top buckets that covers f. Cost: O(C + B)."""
    n = np.asarray(computes, dtype=np.float64)
    frac = np.minimum(1.0, n / (r_max * total_rows))
    keep = np.maximum(1, np.ceil(frac * total_rows - 1e-9)).astype(np.int64)
    data = {
        "compute": pl.Series(np.asarray(computes, dtype=np.int64), dtype=pl.Int64),
        "keep_rows": pl.Series(keep, dtype=pl.Int64),
        "keep_fraction": pl.Series(frac, dtype=pl.Float64),
        "repetitions": pl.Series(n / keep, dtype=pl.Float64),
        "best": pl.Series([True] * n.size, dtype=pl.Boolean),
        "method": ["rule-of-thumb"] * n.size,
    }
    if sizes is not None:
        cum = np.cumsum(sizes)
        m = np.minimum(np.searchsorted(cum, keep, side="left") + 1, len(sizes))
        data["m"] = pl.Series(m, dtype=pl.Int32)
    return pl.DataFrame(data)


def label(r_max: float) -> str:
    """The label printed with every rule-of-thumb answer."""
    return f"{RULE_LABEL}{r_max:g} times, f = min(1, compute / ({r_max:g} x pool rows))"


def format_fraction(frac: float) -> str:
    """A keep fraction as a percentage ``select --budget`` reads: '12.5%', '100%' (rounded up at
    the third decimal so the kept rows are never fewer than planned)."""
    pct = math.ceil(frac * 100.0 * 1000.0 - 1e-6) / 1000.0
    pct = min(100.0, max(pct, 0.001))
    text = f"{pct:.3f}".rstrip("0").rstrip(".")
    return f"{text}%"
