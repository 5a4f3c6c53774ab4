"""Compute-aware data filtering (Goyal et al., CVPR 2024): fit a repetition-aware scaling law
per quality bucket and plan how much of the pool to keep for each compute budget."""

from selectkit.planfilter.fit import Curves, FitResult, fit_curves
from selectkit.planfilter.law import bucket_error, mixture_error
from selectkit.planfilter.plan import plan_table
from selectkit.planfilter.rule import rule_table
from selectkit.planfilter.run import PLAN_FILTER_PARAMS, parse_compute, plan_filter

__all__ = [
    "PLAN_FILTER_PARAMS",
    "Curves",
    "FitResult",
    "bucket_error",
    "fit_curves",
    "mixture_error",
    "parse_compute",
    "plan_filter",
    "plan_table",
    "rule_table",
]
