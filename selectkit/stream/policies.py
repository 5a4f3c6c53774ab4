"""Keep-or-skip rules for a stream, one line at a time (the strategies of ``selectkit stream``).

Each policy turns a batch of per-line inputs (confidence, utility, embedding, per-line random
variates) into keep decisions and the threshold each decision used. The decisions are
sequential: line t's decision depends on lines < t only through the policy's state (a
threshold, a budget estimate, a window), which is why the loops below run over lines; the
per-line arithmetic is a few float operations on Python floats (numpy scalars would be slower).

Budget control (Žliobaitė et al. 2014): ``spent = spent * (w - 1) / w + kept``; a line may be
kept only while ``spent / w < budget``. The quantile filter (BIQF, Kottke et al. 2015) balances
its own threshold instead.

Cost budgets (``--cost-col``): each line has a cost c_t > 0 and the budget is a share of the
cost seen (``budget``) or a cost per line (``rate``, ``cost:X``; the share is then
b_t = X (t - 1) / C_{t-1}, the rate over the mean cost of the lines so far). The estimate spends
costs instead of counts, against a window of the costs seen: ``spent = spent * (w - 1) / w +
c_t [kept]``, ``seen = seen * (w - 1) / w + c_t``; line t may be kept only while ``spent <
b_t seen`` and, for every strategy but ``random`` (an unbiased coin with probability b_t),
only while the stream's kept cost K is below b_t C_{t-1} (the first keep excepted), so K never
exceeds the budget of the cost seen by more than one line's cost. Both compare with the lines
before t: a line's own cost never buys its keep (checked with it, long lines were kept twice
as often as short ones at the same budget). State is O(1), O(w) for the quantile window, O(w d) for the density
window: nothing grows with the stream.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from selectkit.params import Param

#: the policy parameters, declared once: the CLI options and the state check read them here
STREAM_PARAMS: dict[str, Param] = {
    "window": Param(
        int, 100, "lines in the budget estimate's memory (and the quantile filter's window)", low=1
    ),
    "step": Param(
        float,
        0.01,
        "variable uncertainty: the threshold's relative change per decision (s)",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
    ),
    "delta": Param(
        float, 1.0, "randomized variable uncertainty: sd of the threshold's noise (δ)", low=0.0
    ),
    "split_ratio": Param(
        float,
        0.2,
        "split: share of lines decided at random (ν); the rest by variable uncertainty",
        low=0.0,
        high=1.0,
    ),
    "tolerance_window": Param(
        int, 50, "quantile: how quickly the filter pays back over- or under-spending", low=1
    ),
    "density_window": Param(int, 1000, "density: embeddings kept in the window", low=1),
    "warmup": Param(
        int,
        0,
        "variable uncertainty (var-, rand-var-uncertainty, split): keep the first N lines at "
        "random and start the threshold at the budget-quantile of their top-class "
        "probabilities instead of 1 (0: no warm-up)",
        low=0,
        high=100_000,
    ),
}

#: strategy name -> (what it reads, one-line summary)
STREAM_STRATEGIES: dict[str, tuple[str, str]] = {
    "random": ("nothing", "keep each line with probability = budget (no budget estimate)"),
    "fixed-uncertainty": (
        "proba",
        "keep lines whose top-class probability is at most 1/C + budget (1 - 1/C)",
    ),
    "var-uncertainty": (
        "proba",
        "keep lines below an adaptive confidence threshold (lowered on a keep, raised otherwise)",
    ),
    "rand-var-uncertainty": (
        "proba",
        "variable uncertainty with a noisy threshold, so it also keeps lines away from the "
        "boundary (tracks drift); the default",
    ),
    "split": ("proba", "a split_ratio share of lines at random, the rest by variable uncertainty"),
    "quantile": (
        "utility",
        "keep lines whose utility is in the top budget share of the last window, balanced so "
        "the kept fraction tracks the budget (BIQF)",
    ),
    "density": (
        "proba+embedding",
        "consider only lines that are a nearest neighbour of some line in the window, then "
        "randomized variable uncertainty on the margin (DBALStream)",
    ),
}


#: the strategies whose threshold a --warmup starts
WARMED = ("var-uncertainty", "rand-var-uncertainty", "split")


@dataclass
class Batch:
    """Per-line inputs of one batch; arrays of length n (``embedding``: (n, d) float32)."""

    confidence: np.ndarray  # top-class probability (NaN when the policy does not read it)
    margin: np.ndarray  # top-two probability gap (NaN when absent)
    utility: np.ndarray  # what the quantile filter ranks (NaN: seen, never kept)
    uniform: np.ndarray  # U(0, 1) per line, from the seed and the line's id
    uniform2: np.ndarray  # a second, independent U(0, 1)
    normal: np.ndarray  # N(0, 1) per line
    embedding: np.ndarray | None = None
    cost: np.ndarray | None = None  # each line's cost (> 0; NaN: an unreadable line) or None


class Policy:
    """A stream strategy: sequential keep decisions, a state that saves to JSON."""

    def __init__(
        self,
        name: str,
        budget: float,
        params: dict[str, Any],
        max_keep: int | None,
        rate: float | None = None,
    ):
        """``budget``: the share of lines (of the cost seen, when batches carry costs) to keep;
        ``rate``: instead, cost units per line on average (batches must carry costs)."""
        self.name = name
        self.budget = budget
        self.rate = rate
        self.p = params
        self.max_keep = max_keep
        self.lines = 0  # lines decided so far (t)
        self.kept = 0
        self.spent = 0.0  # Žliobaitė's budget estimate û
        self.theta = 1.0  # variable uncertainty's threshold, θ0 = 1
        self.classes: int | None = None
        self.q_window: deque[float] = deque()
        self.warm: list[float] = []  # top-class probabilities of the warm-up lines
        self.d_emb: np.ndarray | None = None  # density ring buffer (w, d)
        self.d_nn = np.empty(0)  # each window row's nearest-neighbour distance
        self.d_next = 0  # ring position of the next insert
        self.d_fill = 0
        # cost budgets: the window estimate of the cost seen, the stream's cost seen and kept,
        # and the lines with a cost
        self.seen_cost = 0.0
        self.cost_total = 0.0
        self.kept_cost = 0.0
        self.cost_lines = 0

    # -- state ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The policy's state as JSON-able values; :meth:`load` restores it exactly."""
        out: dict[str, Any] = {
            "lines": self.lines,
            "kept": self.kept,
            "spent": self.spent,
            "theta": self.theta,
            "classes": self.classes,
            "quantile_window": list(self.q_window),
            "warm": list(self.warm),
            "seen_cost": self.seen_cost,
            "cost_total": self.cost_total,
            "kept_cost": self.kept_cost,
            "cost_lines": self.cost_lines,
        }
        if self.d_emb is not None:
            size = self.d_emb.shape[0]
            # oldest first, so a resumed window evicts in the same order
            start = self.d_next if self.d_fill == size else 0
            order = (start + np.arange(self.d_fill)) % size
            out["density_window"] = self.d_emb[order].tolist()
            out["density_nn"] = [
                None if not np.isfinite(v) else v for v in self.d_nn[order].tolist()
            ]
        return out

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`'s output."""
        self.lines = int(state["lines"])
        self.kept = int(state["kept"])
        self.spent = float(state["spent"])
        self.theta = float(state["theta"])
        self.classes = state.get("classes")
        self.q_window = deque(float(v) for v in state.get("quantile_window", []))
        self.warm = [float(v) for v in state.get("warm", [])]
        self.seen_cost = float(state.get("seen_cost", 0.0))
        self.cost_total = float(state.get("cost_total", 0.0))
        self.kept_cost = float(state.get("kept_cost", 0.0))
        self.cost_lines = int(state.get("cost_lines", 0))
        if state.get("density_window"):
            emb = np.asarray(state["density_window"], dtype=np.float32)
            self._density_alloc(emb.shape[1])
            assert self.d_emb is not None
            self.d_fill = emb.shape[0]
            self.d_emb[: self.d_fill] = emb
            nn = [np.inf if v is None else v for v in state["density_nn"]]
            self.d_nn[: self.d_fill] = np.asarray(nn, dtype=np.float64)
            self.d_next = self.d_fill % self.d_emb.shape[0]

    # -- decisions ------------------------------------------------------------------------
    def decide(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Return (keep, threshold) per line of ``batch`` and advance the state. O(n) for the
        uncertainty rules, O(n w) for the quantile filter's window, O(n w d) for density."""
        if self.name == "quantile":
            return self._quantile(batch)
        if self.name == "density":
            return self._density(batch)
        return self._gated(batch)

    def _cost_locals(self, batch: Batch) -> tuple:
        """What the decision loops keep in locals for a cost-rate budget: (costed, the batch's
        costs as a list, the rate, cost seen, cost total, cost kept, lines with a cost)."""
        costed = batch.cost is not None
        costs = batch.cost.tolist() if costed else []
        return (costed, costs, self.rate, self.seen_cost, self.cost_total, self.kept_cost,
                self.cost_lines)  # fmt: skip

    def _gated(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        n = batch.uniform.size
        keep = np.zeros(n, dtype=bool)
        used = np.full(n, np.nan)
        name, b = self.name, self.budget
        w = float(self.p["window"])
        decay = (w - 1.0) / w
        s = self.p["step"]
        delta = self.p["delta"]
        nu = self.p["split_ratio"]
        cap = self.max_keep if self.max_keep is not None else -1
        spent, theta, kept = self.spent, self.theta, self.kept
        inv_c = 1.0 / self.classes if self.classes else None
        fixed = 1.0
        if name == "fixed-uncertainty" and inv_c is not None:
            fixed = inv_c + b * (1.0 - inv_c)
        conf = batch.confidence.tolist()
        u1 = batch.uniform.tolist()
        u2 = batch.uniform2.tolist()
        z = batch.normal.tolist()
        warmup = int(self.p["warmup"]) if name in WARMED else 0
        costed, costs, rate, seen, total, kcost, clines = self._cost_locals(batch)
        cc, bt, room = 1.0, b, True
        for i in range(n):
            take = False
            line = self.lines + i
            if costed:  # the budget in cost units (module doc)
                cc = costs[i]
                valid = cc == cc
                if not valid:
                    cc = 0.0
                # against the lines before this one: a line's own cost never buys its keep
                pseen, ptotal, plines = seen, total, clines
                seen = seen * decay + cc
                total += cc
                clines += valid
                if rate is not None:
                    bt = min(1.0, rate * plines / ptotal) if ptotal > 0.0 else 1.0
                    if name == "fixed-uncertainty" and inv_c is not None:
                        fixed = inv_c + bt * (1.0 - inv_c)
                room = valid and kept != cap and (kcost < bt * ptotal or kcost == 0.0)
                gate = room and (spent < bt * pseen or spent == 0.0)
            else:
                room = kept != cap
                gate = room and spent / w < b
            if line < warmup:  # warm-up: a coin per line, and θ from what it saw
                c = conf[i]
                if c == c:
                    self.warm.append(c)
                used[i] = bt
                take = u1[i] < bt and room
                if line == warmup - 1 and self.warm:
                    theta = float(np.quantile(self.warm, bt))
                    self.warm = []
            elif name == "random":  # a coin per line: unbiased, its kept share is binomial
                used[i] = bt  # (with costs too: no cap, which would bias it low)
                take = u1[i] < bt and kept != cap and (not costed or valid)
            elif gate:
                c = conf[i]
                if c != c:  # NaN: seen, not kept
                    pass
                elif name == "fixed-uncertainty":
                    used[i] = fixed
                    take = c <= fixed
                elif name == "split" and u1[i] < nu:
                    used[i] = bt
                    take = u2[i] < bt
                else:  # var-uncertainty, rand-var-uncertainty, split's other branch
                    t = theta * (1.0 + delta * z[i]) if name != "var-uncertainty" else theta
                    used[i] = t
                    take = c < t
                    theta = theta * (1.0 - s) if take else theta * (1.0 + s)
            spent = spent * decay + (cc if take else 0.0)
            if take:
                kept += 1
                kcost += cc
                keep[i] = True
        self.spent, self.theta, self.kept = spent, theta, kept
        self.seen_cost, self.cost_total, self.kept_cost, self.cost_lines = (
            seen,
            total,
            kcost,
            clines,
        )
        self.lines += n
        return keep, used

    def _quantile(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        n = batch.utility.size
        keep = np.zeros(n, dtype=bool)
        used = np.full(n, np.nan)
        b = self.budget
        w = int(self.p["window"])
        decay = (w - 1.0) / w
        tol = float(self.p["tolerance_window"])
        cap = self.max_keep if self.max_keep is not None else -1
        win = self.q_window
        ranked = sorted(win)
        kept, t = self.kept, self.lines
        util = batch.utility.tolist()
        costed, costs, rate, seen, total, kcost, clines = self._cost_locals(batch)
        cc, bt = 1.0, b
        for i in range(n):
            t += 1
            if costed:
                cc = costs[i]
                valid = cc == cc
                if not valid:
                    cc = 0.0
                ptotal, plines = total, clines  # the lines before this one
                seen = seen * decay + cc
                total += cc
                clines += valid
                if rate is not None:
                    bt = min(1.0, rate * plines / ptotal) if ptotal > 0.0 else 1.0
                if not valid:
                    continue
            u = util[i]
            if u != u:
                continue
            win.append(u)
            bisect.insort(ranked, u)
            if len(win) > w:
                del ranked[bisect.bisect_left(ranked, win.popleft())]
            m = len(ranked)
            pos = (1.0 - bt) * (m - 1)
            lo = int(pos)
            hi = min(lo + 1, m - 1)
            theta = ranked[lo] + (ranked[hi] - ranked[lo]) * (pos - lo)
            if costed:  # the shortfall in lines of the mean cost
                behind = bt * ptotal - kcost
                mean = ptotal / plines if plines else cc
                theta -= (ranked[-1] - ranked[0]) * behind / (mean * tol)
                behind_ok = behind > 0.0 or kcost == 0.0
            else:
                theta -= (ranked[-1] - ranked[0]) * (bt * t - kept) / tol
                behind_ok = kept < bt * t
            used[i] = theta
            # a tie with the threshold is kept only while behind the budget: a run of equal
            # utilities (a constant score, an unfitted model) must not be kept whole
            take = u > theta or (u == theta and behind_ok)
            if take and kept != cap and (not costed or behind_ok):
                kept += 1
                kcost += cc
                keep[i] = True
        self.kept, self.lines = kept, t
        self.seen_cost, self.cost_total, self.kept_cost, self.cost_lines = (
            seen,
            total,
            kcost,
            clines,
        )
        return keep, used

    def _density_alloc(self, d: int) -> None:
        size = int(self.p["density_window"])
        self.d_emb = np.zeros((size, d), dtype=np.float32)
        self.d_nn = np.full(size, np.inf)

    def _density(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        emb = batch.embedding
        assert emb is not None
        n = emb.shape[0]
        if self.d_emb is None:
            self._density_alloc(emb.shape[1])
        assert self.d_emb is not None
        keep = np.zeros(n, dtype=bool)
        used = np.full(n, np.nan)
        b = self.budget
        w = float(self.p["window"])
        decay = (w - 1.0) / w
        s, delta = self.p["step"], self.p["delta"]
        cap = self.max_keep if self.max_keep is not None else -1
        size = self.d_emb.shape[0]
        margin = batch.margin.tolist()
        z = batch.normal.tolist()
        costed = batch.cost is not None
        costs = batch.cost.tolist() if costed else []
        rate = self.rate
        cc, bt = 1.0, b
        for i in range(n):
            if costed:
                cc = costs[i]
                valid = cc == cc
                if not valid:
                    cc = 0.0
                pseen, ptotal, plines = self.seen_cost, self.cost_total, self.cost_lines
                self.seen_cost = self.seen_cost * decay + cc
                self.cost_total += cc
                self.cost_lines += valid
                if rate is not None:
                    bt = min(1.0, rate * plines / ptotal) if ptotal > 0.0 else 1.0
                kc = self.kept_cost
                room = (
                    valid
                    and (kc < bt * ptotal or kc == 0.0)
                    and (self.spent < bt * pseen or self.spent == 0.0)
                )
            else:
                room = self.spent / w < b
            x = emb[i]
            filled = self.d_emb[: self.d_fill]
            dist = np.sqrt(((filled - x) ** 2).sum(axis=1, dtype=np.float64))
            nn = self.d_nn[: self.d_fill]
            closer = dist < nn
            ldf = int(closer.sum())
            nn[closer] = dist[closer]
            self.d_emb[self.d_next] = x
            self.d_nn[self.d_next] = float(dist.min()) if dist.size else np.inf
            self.d_next = (self.d_next + 1) % size
            self.d_fill = min(self.d_fill + 1, size)
            take = False
            mg = margin[i]
            if ldf > 0 and mg == mg and room and self.kept != cap:
                t = self.theta * (1.0 + delta * z[i])
                used[i] = t
                take = mg < t
                self.theta *= (1.0 - s) if take else (1.0 + s)
            self.spent = self.spent * decay + (cc if take else 0.0)
            if take:
                self.kept += 1
                self.kept_cost += cc
                keep[i] = True
        self.lines += n
        return keep, used
