"""Shared helpers for the active-learning strategy tests (real digits probabilities)."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression


def digits_proba(digits, fit_rows: int = 60) -> np.ndarray:
    """(1797, 10) float64 probabilities of a logistic regression fitted on the first rows."""
    x, y = digits
    model = LogisticRegression(max_iter=1000).fit(x[:fit_rows], y[:fit_rows])
    return model.predict_proba(x)


def pool_file(tmp_path, frame: pl.DataFrame, name: str = "pool.parquet"):
    path = tmp_path / name
    frame.write_parquet(path)
    return path
