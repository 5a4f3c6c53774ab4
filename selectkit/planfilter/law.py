"""The repetition-aware scaling law of Goyal et al. (CVPR 2024, "Scaling Laws for Data
Filtering"), for one quality bucket and for the union of the top-m buckets.

A bucket of P rows trained for n samples seen runs e = floor(n / P) full epochs plus a partial
one. Epoch k (k = 0, 1, ...) has the exponent b_k = b * 2^(-k / tau): b < 0 is the bucket's
utility (more negative = more useful) and tau its repetition half-life, in epochs. With
N0 = 1e5 and a shared scale a, integrating dy/dn = b_k y / n within each epoch gives the
reducible error

    R(n) = (a * min(P, n) / N0)^b_0 * prod_{k=1..e} (min(P (k + 1), n) / (P k))^b_k

(a cancels from every ratio k >= 1, so a only sets the first epoch's level). The error is

* ``d_form="floor"`` (default): error(n) = d + R(n); d is an irreducible floor, the usual form
  of a scaling law, and d and R are separately identifiable from short runs;
* ``d_form="inside"`` (the authors' code): error(n) = (d + (a min(P, n) / N0)^b_0) *
  prod_k(...); d then decays with repetition like the rest.

The union of the top-m buckets has pool size sum(P_i) and per-epoch exponent
b̄_k = sum_i w_i b_i 2^(-k / tau_i) with w_i = P_i / sum(P) (the mean when the sizes are equal);
``tau_scale_m=True`` multiplies every tau_i by m first, the authors' ``estimate_best_pool.py``
choice (``docs/plan-filter.md`` reports how each fits held-out union curves).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

N0 = 1e5
D_FORMS = ("floor", "inside")
#: beyond this many half-lives 2^(-k/tau) < 1e-16: later epochs add nothing
_HALF_LIVES = 54.0


def _epoch_terms(
    n: np.ndarray, pool: float, exponent: Callable[[np.ndarray], np.ndarray], k_cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """(log of the first-epoch size ratio without a, sum over epochs k >= 1 of b_k log ratio)."""
    n = np.asarray(n, dtype=np.float64)
    e = np.floor(n / pool).astype(np.int64)
    k = np.arange(1, k_cap + 1, dtype=np.float64)
    bk = exponent(k)  # b_k for k = 1..k_cap
    full = np.concatenate([[0.0], np.cumsum(bk * np.log1p(1.0 / k))])  # full[j]: epochs 1..j
    ec = np.minimum(e, k_cap)
    later = full[np.maximum(ec - 1, 0)] * (e >= 1)
    last_b = np.where((e >= 1) & (e <= k_cap), bk[np.clip(e - 1, 0, k_cap - 1)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        last = np.where(e >= 1, last_b * np.log(n / np.maximum(e, 1) / pool), 0.0)
    first = np.log(np.minimum(pool, n) / N0)
    return first, later + last


def _k_cap(n_max: float, pool: float, tau_max: float) -> int:
    return int(max(1, min(math.floor(n_max / pool), math.ceil(_HALF_LIVES * tau_max))))


def mixture_error(
    n: np.ndarray,
    pools: np.ndarray,
    b: np.ndarray,
    tau: np.ndarray,
    a: float,
    d: float,
    *,
    d_form: str = "floor",
    tau_scale_m: bool = False,
) -> np.ndarray:
    """Predicted error after ``n`` samples seen (array) of training on the union of the buckets
    with sizes ``pools``, utilities ``b`` and half-lives ``tau`` (one bucket: arrays of one).

    Returns an array shaped like ``n``. Cost: O(len(n) + K * m) with K = the epochs that still
    matter (at most 54 half-lives); memory O(len(n) + K)."""
    n = np.asarray(n, dtype=np.float64)
    pools = np.atleast_1d(np.asarray(pools, dtype=np.float64))
    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if tau_scale_m:
        tau = tau * b.size
    w = pools / pools.sum()
    pool = float(pools.sum())
    b0 = float(w @ b)

    def exponent(k: np.ndarray) -> np.ndarray:
        return np.exp2(-k[:, None] / tau[None, :]) @ (w * b)

    n_max = float(n.max()) if n.size else 0.0
    first, later = _epoch_terms(n, pool, exponent, _k_cap(n_max, pool, float(tau.max())))
    head = np.exp(b0 * (math.log(a) + first))
    if d_form == "floor":
        return d + head * np.exp(later)
    return (d + head) * np.exp(later)


def bucket_error(
    n: np.ndarray,
    pool: float,
    b: float,
    tau: float,
    a: float,
    d: float,
    *,
    d_form: str = "floor",
) -> np.ndarray:
    """Predicted error of one bucket of ``pool`` rows after ``n`` samples seen (array); see the
    module doc for the law. Cost: O(len(n) + K)."""
    return mixture_error(n, [pool], [b], [tau], a, d, d_form=d_form)


def unit_terms(n: np.ndarray, pool: float, tau: float, a: float) -> tuple[np.ndarray, np.ndarray]:
    """One bucket's log-error terms at b = 1: (log(a min(P, n) / N0), the sum over epochs k >= 1
    of 2^(-k/tau) times the log size ratio). At utility b the reducible error is
    exp(b * (head + later)); the fit's grid uses this to try many b at once. Cost: O(len(n) + K).
    """
    n = np.asarray(n, dtype=np.float64)

    def exponent(k: np.ndarray) -> np.ndarray:
        return np.exp2(-k / tau)

    n_max = float(n.max()) if n.size else 0.0
    first, later = _epoch_terms(n, float(pool), exponent, _k_cap(n_max, float(pool), tau))
    return math.log(a) + first, later
