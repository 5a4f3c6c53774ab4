"""Fit the law of :mod:`selectkit.planfilter.law` to measured curves: one utility b and half-life
tau per bucket, one scale a and one d shared by every bucket (the paper's assumption).

Log-space least squares (``scipy.optimize.least_squares``, residual log(predicted) -
log(measured)) over (log a, d, b_1..b_B, log tau_1..log tau_B), with b in [-1, 0) and tau in
[0.5, 100]. The authors report instabilities with scipy, so the fit starts from the best point
of a coarse grid and from ``starts - 1`` seeded random points, and keeps the lowest cost. With
``monotone=True`` the buckets' b must not decrease from the best bucket to the worst (an
isotonic fit, weighted by points); when that changes any b, tau, a and d are refitted with b
held. Cost: a few thousand evaluations of the law over a few dozen points (well under a second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from selectkit.planfilter.law import mixture_error, unit_terms

B_BOUNDS = (-1.0, -1e-6)
TAU_BOUNDS = (0.5, 100.0)
A_BOUNDS = (1e-8, 1e8)


@dataclass
class Curves:
    """Measured curves, one entry per bucket in quality order (best first)."""

    names: list[str]
    pools: np.ndarray  # rows per bucket
    n: list[np.ndarray]  # samples seen, per bucket
    error: list[np.ndarray]  # measured error in (0, 1), per bucket


@dataclass
class FitResult:
    """Fitted parameters with their residuals (arrays are per bucket, in quality order)."""

    names: list[str]
    pools: np.ndarray
    b: np.ndarray
    tau: np.ndarray
    a: float
    d: float
    d_form: str
    b_raw: np.ndarray
    rmse: np.ndarray = field(default_factory=lambda: np.empty(0))
    rmse_log: np.ndarray = field(default_factory=lambda: np.empty(0))
    max_rel: np.ndarray = field(default_factory=lambda: np.empty(0))
    points: np.ndarray = field(default_factory=lambda: np.empty(0))
    n_max: np.ndarray = field(default_factory=lambda: np.empty(0))
    cost: float = float("nan")
    monotone_adjusted: bool = False

    def at_bounds(self) -> list[str]:
        """One line per parameter the fit left on a bound of its box (a sign that the curves do
        not pin it down: no repetition effect measured, or too few points)."""
        lines = []
        for name, b, tau in zip(self.names, self.b, self.tau, strict=True):
            if b <= B_BOUNDS[0] + 1e-6 or b >= B_BOUNDS[1] - 1e-6:
                lines.append(f"bucket {name}: b={b:.3g} is on its bound [-1, 0)")
            for edge in TAU_BOUNDS:
                if abs(tau - edge) <= 1e-3 * edge:
                    lines.append(
                        f"bucket {name}: tau={tau:.3g} is on its bound {edge:g} (the curves do "
                        "not pin the half-life down; measure more repetitions)"
                    )
        for edge in A_BOUNDS:
            if abs(math.log(self.a) - math.log(edge)) < 1e-3:
                lines.append(f"a={self.a:.3g} is on its bound {edge:g}")
        return lines

    def predict(self, i: int, n: np.ndarray) -> np.ndarray:
        """Bucket ``i``'s predicted error at samples seen ``n``."""
        return mixture_error(
            n,
            self.pools[i : i + 1],
            self.b[i : i + 1],
            self.tau[i : i + 1],
            self.a,
            self.d,
            d_form=self.d_form,
        )

    def residuals_from(self, curves: Curves) -> None:
        """Fill rmse (error units), rmse_log, max_rel (max |pred/obs - 1|) per bucket."""
        rm, rl, mr = [], [], []
        for i, (n, y) in enumerate(zip(curves.n, curves.error, strict=True)):
            p = self.predict(i, n)
            rm.append(float(np.sqrt(np.mean((p - y) ** 2))))
            rl.append(float(np.sqrt(np.mean((np.log(p) - np.log(y)) ** 2))))
            mr.append(float(np.max(np.abs(p / y - 1.0))))
        self.rmse, self.rmse_log, self.max_rel = np.array(rm), np.array(rl), np.array(mr)
        self.points = np.array([len(n) for n in curves.n])
        self.n_max = np.array([float(n.max()) for n in curves.n])


def isotonic_increasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to ``y`` in weighted least squares (pool adjacent
    violators). Cost: O(len(y)); used over buckets, never rows."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(map(float, y), map(float, w), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([np.full(c, m) for m, _, c in blocks])


def _unpack(theta: np.ndarray, nb: int, d_fixed: float | None, b_fixed: np.ndarray | None):
    la, i = theta[0], 1
    if d_fixed is None:
        d, i = theta[1], 2
    else:
        d = d_fixed
    if b_fixed is None:
        b, i = theta[i : i + nb], i + nb
    else:
        b = b_fixed
    ltau = theta[i : i + nb]
    return math.exp(la), d, b, np.exp(ltau)


def _residuals(theta, curves: Curves, d_form, d_fixed, b_fixed) -> np.ndarray:
    nb = len(curves.names)
    a, d, b, tau = _unpack(theta, nb, d_fixed, b_fixed)
    out = []
    for i in range(nb):
        p = mixture_error(
            curves.n[i], curves.pools[i : i + 1], b[i : i + 1], tau[i : i + 1], a, d, d_form=d_form
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(np.maximum(p, 1e-300)) - np.log(curves.error[i])
        out.append(np.where(np.isfinite(r), r, 50.0))
    return np.concatenate(out)


def _d_upper(curves: Curves, d_form: str) -> float:
    low = min(float(y.min()) for y in curves.error)
    return 0.999 * low if d_form == "floor" else 0.999


def _grid_start(curves: Curves, d_form: str, d_fixed: float | None) -> np.ndarray:
    """The best point of a coarse grid: a x d shared, then (b, tau) per bucket independently."""
    bs = np.linspace(-0.9, -0.01, 15)
    taus = np.geomspace(TAU_BOUNDS[0], TAU_BOUNDS[1], 8)
    du = _d_upper(curves, d_form)
    ds = [d_fixed] if d_fixed is not None else list(np.array([0.0, 0.3, 0.6, 0.9]) * du)
    best = (np.inf, None)
    for a in np.geomspace(1e-5, 1e5, 11):
        for d in ds:
            total, picks = 0.0, []
            for i in range(len(curves.names)):
                scores = np.empty((bs.size, taus.size))
                logy = np.log(curves.error[i])
                for t, tau in enumerate(taus):
                    head, later = unit_terms(curves.n[i], curves.pools[i], tau, a)
                    if d_form == "floor":
                        p = d + np.exp(bs[:, None] * (head + later)[None, :])
                    else:
                        p = (d + np.exp(bs[:, None] * head[None, :])) * np.exp(
                            bs[:, None] * later[None, :]
                        )
                    with np.errstate(divide="ignore", invalid="ignore"):
                        r = np.log(p) - logy[None, :]
                    ok = np.all(np.isfinite(r), axis=1)
                    scores[:, t] = np.where(
                        ok, np.sum(np.where(ok[:, None], r, 0.0) ** 2, 1), np.inf
                    )
                j, t = np.unravel_index(np.argmin(scores), scores.shape)
                total += scores[j, t]
                picks.append((bs[j], taus[t]))
            if total < best[0]:
                best = (total, (a, d, picks))
    a, d, picks = best[1]
    head = [math.log(a)] + ([d] if d_fixed is None else [])
    return np.array(head + [p[0] for p in picks] + [math.log(p[1]) for p in picks])


def _solve(curves, d_form, d_fixed, b_fixed, starts: list[np.ndarray]):
    from scipy.optimize import least_squares

    nb = len(curves.names)
    lo = [math.log(A_BOUNDS[0])]
    hi = [math.log(A_BOUNDS[1])]
    if d_fixed is None:
        lo.append(0.0)
        hi.append(_d_upper(curves, d_form))
    if b_fixed is None:
        lo += [B_BOUNDS[0]] * nb
        hi += [B_BOUNDS[1]] * nb
    lo += [math.log(TAU_BOUNDS[0])] * nb
    hi += [math.log(TAU_BOUNDS[1])] * nb
    lo, hi = np.array(lo), np.array(hi)
    best = None
    for x0 in starts:
        x0 = np.clip(x0, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
        try:
            res = least_squares(
                _residuals,
                x0,
                bounds=(lo, hi),
                args=(curves, d_form, d_fixed, b_fixed),
                method="trf",
                max_nfev=3000,
                x_scale="jac",
            )
        except (ValueError, FloatingPointError):
            continue
        if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
            best = res
    return best


def fit_curves(
    curves: Curves,
    *,
    d_form: str = "floor",
    d: float | None = None,
    monotone: bool = True,
    starts: int = 6,
    seed: int = 0,
) -> FitResult:
    """Fit (a, d) shared and (b, tau) per bucket to ``curves``; ``d`` given = held fixed.

    Returns a :class:`FitResult` with per-bucket residuals. Cost: see the module doc."""
    nb = len(curves.names)
    grid = _grid_start(curves, d_form, d)
    rng = np.random.default_rng(seed)
    tries = [grid]
    for _ in range(max(0, starts - 1)):
        head = [rng.uniform(math.log(1e-5), math.log(1e5))]
        if d is None:
            head.append(rng.uniform(0, _d_upper(curves, d_form)))
        tries.append(
            np.array(
                head
                + list(rng.uniform(-0.8, -0.02, nb))
                + list(rng.uniform(math.log(0.6), math.log(80.0), nb))
            )
        )
    res = _solve(curves, d_form, d, None, tries)
    theta = res.x if res is not None else grid
    a, dd, b, tau = _unpack(theta, nb, d, None)
    cost = float(res.cost) if res is not None else float("nan")
    b_raw = np.array(b, dtype=np.float64)
    b_new = b_raw
    adjusted = False
    if monotone and nb > 1 and np.any(np.diff(b_raw) < -1e-12):
        weights = np.array([len(n) for n in curves.n], dtype=np.float64)
        b_new = np.clip(isotonic_increasing(b_raw, weights), *B_BOUNDS)
        adjusted = True
        head = [math.log(a)] + ([dd] if d is None else [])
        again = _solve(curves, d_form, d, b_new, [np.array(head + list(np.log(tau)))])
        if again is not None:
            a, dd, _, tau = _unpack(again.x, nb, d, b_new)
            cost = float(again.cost)
    out = FitResult(
        names=list(curves.names),
        pools=np.asarray(curves.pools, dtype=np.float64),
        b=np.asarray(b_new, dtype=np.float64),
        tau=np.asarray(tau, dtype=np.float64),
        a=float(a),
        d=float(dd),
        d_form=d_form,
        b_raw=b_raw,
        cost=cost,
        monotone_adjusted=adjusted,
    )
    out.residuals_from(curves)
    return out
