"""k-means seeding: rejection-sampling k-means++ and the classic seeders beside it.

Every seeder takes a float32 (n, d) array, k and a numpy Generator, and returns a ``Seeds``:
the chosen row indices (k distinct rows), plus counters for the distance evaluations and trials
spent. Norms and sums are float64; distances to centres come from one matrix product per batch.

- ``rs``        rejection sampling (Shah, Agrawal, Jaiswal 2025): exact D^2 samples from a cheap
                proposal; O(nd) set-up, then about 2(F + n|c1|^2)/cost trials per centre.
- ``rs-greedy`` rs candidates, 2 + ln k per centre, the best kept by its potential estimated on a
                lightweight coreset (ours; reaches greedy k-means++ quality at rs cost).
- ``kmeans++``  plain D^2 sampling (Arthur & Vassilvitskii 2007); Theta(nkd).
- ``greedy``    scikit-learn's greedy k-means++ (2 + ln k candidates, exact potentials); Theta(nkd ln k).
- ``afkmc2``    assumption-free K-MC^2 (Bachem et al. 2016), Markov chains of length ``chain``.
- ``random``    k distinct rows, uniformly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from selectkit.arguments import text
from selectkit.errors import SelectkitDataError, option
from selectkit.linalg import column_mean, squared_norms
from selectkit.params import REQUIRED, Param, check_arguments

CHUNK_ROWS = 1 << 14  # float64 temporaries: 16 MiB at d = 128
SEEDERS = ("rs-greedy", "rs", "kmeans++", "greedy", "afkmc2", "random")
#: the one declaration of the seeding arguments' bounds; `selectkit cluster`'s options match it
SEED_BOUNDS = {
    "k": Param(int, REQUIRED, "clusters (seeds) to pick", low=1),
    "max_trials": Param(int, 0, "rs: cap on trials per centre, then uniform (0: no cap)", low=0),
    "chain": Param(int, 50, "afkmc2: length of each Markov chain", low=1),
    "coreset_size": Param(int, 16384, "rows of the coreset the seeder works on", low=1),
}


def check_seed_args(
    n: int,
    k: int,
    method: str,
    *,
    max_trials: int = 0,
    chain: int = 50,
    coreset_size: int = 16384,
    method_name: str = "seeding",
) -> None:
    """Refuse seeding arguments outside ``SEED_BOUNDS`` or ``SEEDERS`` (``SelectkitUsageError``)
    and a ``k`` above the ``n`` rows (``SelectkitDataError``: the data is too small). O(1)."""
    text(method, method_name, choices=SEEDERS)
    check_arguments(SEED_BOUNDS, k=k, max_trials=max_trials, chain=chain, coreset_size=coreset_size)
    check_k_fits(k, n)


def check_k_fits(
    k: int, n: int, *, rows: str = "in the data", name: str = "k", hint: str = ""
) -> None:
    """Refuse ``k`` clusters on fewer than ``k`` rows: the data is too small for the request."""
    if k > n:
        raise SelectkitDataError(
            f"{option(name, k)} is larger than the {n} rows {rows}; lower it{hint}"
        )


@dataclass
class Seeds:
    """Chosen centre rows (in pick order) and what it cost to choose them."""

    indices: np.ndarray
    distance_evals: int = 0
    trials: int = 0
    fallbacks: int = 0
    info: dict = field(default_factory=dict)


class _Data:
    """The data centred on its mean, with float64 squared norms: shared by every seeder."""

    # Any centre point mu keeps rejection sampling exact (Delta(x, S) <= ||x - c1||^2 <=
    # 2(||x - mu||^2 + ||c1 - mu||^2) for every mu); the mean only minimises the expected trials,
    # so an evenly strided sample of rows estimates it and saves one full pass over the data.
    MEAN_ROWS = 1 << 16

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x)  # a plain ndarray view: memmap subclass indexing is slow
        self.n, self.d = x.shape
        if self.n > self.MEAN_ROWS:
            rows = np.linspace(0, self.n - 1, self.MEAN_ROWS).astype(np.int64)
            self.mu = np.asarray(self.x[rows]).mean(axis=0, dtype=np.float64)
        else:
            self.mu = column_mean(self.x)
        self.mu32 = self.mu.astype(np.float32)
        self.sq = squared_norms(self.x, self.mu).astype(np.float64)  # ||x - mu||^2, float64 sums

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Centred float32 copies of rows ``idx`` (subtracted in float32, like ``sq``)."""
        out = np.asarray(self.x[idx], dtype=np.float32)
        return out - self.mu32


class _Centres:
    """A growing matrix of centred centre rows with their squared norms."""

    def __init__(self, data: _Data, k: int) -> None:
        self.data = data
        self.rows = np.empty(k, dtype=np.int64)
        self.vec = np.empty((k, data.d), dtype=np.float32)
        self.sq = np.empty(k, dtype=np.float64)
        self.sq32 = np.empty(k, dtype=np.float32)
        self.size = 0

    def add(self, row: int) -> None:
        self.rows[self.size] = row
        self.vec[self.size] = self.data.rows(np.array([row]))[0]
        self.sq[self.size] = self.data.sq[row]
        self.sq32[self.size] = self.data.sq[row]
        self.size += 1

    def min_sq_dist(self, idx: np.ndarray) -> np.ndarray:
        """Delta(x, S) for rows ``idx``: squared distance to the nearest centre.

        min_j ||x - c_j||^2 = ||x||^2 + min_j (||c_j||^2 - 2 x.c_j): the row's own norm (float64)
        is added after the minimum, so the (rows x centres) work is one float32 product.
        """
        return self.min_sq_dist_of(self.data.rows(idx), self.data.sq[idx])

    def min_sq_dist_of(self, rows: np.ndarray, rows_sq: np.ndarray) -> np.ndarray:
        """Delta for already gathered centred ``rows`` with squared norms ``rows_sq``."""
        s = self.size
        part = rows @ self.vec[:s].T
        part *= -2.0
        part += self.sq32[:s]
        return np.maximum(rows_sq + part.min(axis=1), 0.0)


def _update_min_dist(data: _Data, min_dist: np.ndarray, row: int) -> None:
    """In place: min_dist = min(min_dist, ||x - x_row||^2) over all rows; O(nd)."""
    c = data.rows(np.array([row]))[0]
    c_sq = data.sq[row]
    for s in range(0, data.n, CHUNK_ROWS):
        block = np.asarray(data.x[s : s + CHUNK_ROWS], dtype=np.float32)
        dot = block @ c - np.float32(data.mu32 @ c)  # (x - mu).(c - mu) without copying x
        d = data.sq[s : s + block.shape[0]] + c_sq - 2.0 * dot
        np.minimum(
            min_dist[s : s + block.shape[0]],
            np.maximum(d, 0.0),
            out=min_dist[s : s + block.shape[0]],
        )


def d2_draw(min_dist: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` rows drawn with probability proportional to ``min_dist`` (all zero: none)."""
    cdf = np.cumsum(min_dist)
    total = cdf[-1]
    if not total > 0:
        return np.empty(0, dtype=np.int64)
    return np.minimum(
        np.searchsorted(cdf, rng.random(size) * total, side="right"), min_dist.size - 1
    )


class RejectionSampler:
    """Exact D^2 sampling by rejection from q(x) ∝ ||x - mu||^2 + ||c1 - mu||^2.

    A proposal is drawn from the norm distribution with probability F / (F + n ||c1 - mu||^2)
    and uniformly otherwise; it is accepted with probability Delta(x, S) / (2 (||x - mu||^2 +
    ||c1 - mu||^2)) <= 1. Accepted draws are exactly D^2-distributed; the number of trials is
    geometric with mean 2 (F + n ||c1 - mu||^2) / Delta(X, S). Trials run in batches: one matrix
    product against the current centres per batch.
    """

    def __init__(self, data: _Data, first: int) -> None:
        self.data = data
        self.cdf = np.cumsum(data.sq)
        self.total = float(self.cdf[-1])  # F = Delta_1
        self.c1_sq = float(data.sq[first])
        mass = self.total + data.n * self.c1_sq
        self.p_norm = self.total / mass if mass > 0 else 0.0
        self.batch = 32
        self.exact_passes = 0
        # Proposals do not depend on the centres, so they are drawn and gathered in bulk;
        # the ones a batch does not consume (after its last acceptance) stay for the next.
        self._idx = np.empty(0, np.int64)
        self._rows = np.empty((0, data.d), np.float32)
        self._threshold = np.empty(0, np.float64)  # u * 2 (||x - mu||^2 + ||c1 - mu||^2)

    POOL = 1 << 13

    def _take(
        self, rng: np.random.Generator, size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._idx.size < size:
            fresh = self.propose(rng, max(self.POOL, size))
            thresh = rng.random(fresh.size) * 2.0 * (self.data.sq[fresh] + self.c1_sq)
            self._idx = np.concatenate([self._idx, fresh])
            order = np.argsort(fresh)  # gather in file order (memmap locality), keep draw order
            gathered = np.empty((fresh.size, self.data.d), dtype=np.float32)
            gathered[order] = self.data.rows(fresh[order])
            self._rows = np.concatenate([self._rows, gathered])
            self._threshold = np.concatenate([self._threshold, thresh])
        return self._idx[:size], self._rows[:size], self._threshold[:size]

    def _consume(self, used: int) -> None:
        self._idx, self._rows, self._threshold = (
            self._idx[used:],
            self._rows[used:],
            self._threshold[used:],
        )

    def propose(self, rng: np.random.Generator, size: int) -> np.ndarray:
        from_norm = rng.random(size) < self.p_norm
        out = rng.integers(0, self.data.n, size)
        m = int(from_norm.sum())
        if m:
            u = rng.random(m) * self.total
            out[from_norm] = np.minimum(np.searchsorted(self.cdf, u, side="right"), self.data.n - 1)
        return out

    def draw(
        self, centres: _Centres, rng: np.random.Generator, count: int = 1, max_trials: int = 0
    ) -> tuple[np.ndarray, int]:
        """Up to ``count`` independent D^2 samples w.r.t. ``centres`` and the trials spent.

        Trials run in batches; the accepted draws of a batch, in order, are i.i.d. D^2 samples.
        With ``max_trials`` > 0 at most ``count * max_trials`` trials are made and fewer samples
        may come back (the caller falls back to uniform draws, as in the paper).
        """
        accepted: list[np.ndarray] = []
        got = trials = dry = 0  # dry: trials since the last accepted one
        cap = count * max_trials if max_trials else 0
        while got < count:
            size = self.batch if not cap else min(self.batch, cap - trials)
            if size <= 0:
                break
            if not cap and dry > max(self.data.n, 1024):
                # Acceptance is so rare (Delta(X, S) tiny, e.g. only duplicates left) that one
                # exact pass is cheaper: sample the rest directly from the exact D^2 weights.
                exact = np.concatenate(
                    [
                        centres.min_sq_dist(np.arange(s, min(s + CHUNK_ROWS, self.data.n)))
                        for s in range(0, self.data.n, CHUNK_ROWS)
                    ]
                )
                self.exact_passes += 1
                if exact.sum() > 0:
                    accepted.append(d2_draw(exact, rng, count - got))
                break
            idx, rows, threshold = self._take(rng, size)
            delta = centres.min_sq_dist_of(rows, self.data.sq[idx])
            hits = np.flatnonzero(threshold < delta)[: count - got]
            dry = dry + size if hits.size == 0 else size - 1 - int(hits[-1])
            if hits.size < count - got:
                trials += size
                self._consume(size)
                self.batch = min(4096, self.batch * 2)
            else:
                trials += int(hits[-1]) + 1
                self._consume(int(hits[-1]) + 1)
                # the next batch: the trials this one needed per sample (measured best)
                per = (int(hits[-1]) + 1) / max(hits.size, 1)
                self.batch = int(min(4096, max(16, per * count)))
            accepted.append(idx[hits])
            got += hits.size
        rows = np.concatenate(accepted) if accepted else np.empty(0, np.int64)
        return rows, trials


def _uniform_not_in(n: int, taken: np.ndarray, rng: np.random.Generator) -> int:
    """A uniform row outside ``taken``; O(1) expected while few rows are taken."""
    taken_set = set(np.asarray(taken).tolist())
    if len(taken_set) * 2 < n:
        while True:
            row = int(rng.integers(0, n))
            if row not in taken_set:
                return row
    free = np.setdiff1d(np.arange(n), np.fromiter(taken_set, np.int64))
    return int(rng.choice(free))


def seed_random(x: np.ndarray, k: int, rng: np.random.Generator) -> Seeds:
    """k distinct rows uniformly at random; O(n)."""
    return Seeds(indices=rng.choice(x.shape[0], size=k, replace=False).astype(np.int64))


def seed_kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator, *, candidates: int = 1) -> Seeds:
    """D^2 sampling; with ``candidates`` > 1 the greedy variant that keeps the candidate with the
    lowest potential (scikit-learn's). Theta(n k d candidates) time, O(n) memory."""
    data = _Data(x)
    picks = np.empty(k, dtype=np.int64)
    picks[0] = rng.integers(0, data.n)
    min_dist = np.full(data.n, np.inf)
    _update_min_dist(data, min_dist, int(picks[0]))
    min_dist[picks[0]] = 0.0  # exactly: rounding must not leave a chosen row drawable
    evals = data.n
    for i in range(1, k):
        cands = d2_draw(min_dist, rng, candidates)
        if cands.size == 0:  # only duplicates of chosen rows are left: any unchosen row
            cands = np.array([_uniform_not_in(data.n, picks[:i], rng)])
        if candidates == 1 or cands.size == 1:
            best = int(cands[0])
        else:
            best, best_pot = -1, np.inf
            for cand in cands:
                trial = min_dist.copy()
                _update_min_dist(data, trial, int(cand))
                pot = trial.sum()
                if pot < best_pot:
                    best, best_pot = int(cand), pot
            evals += data.n * candidates
        if best in picks[:i]:  # a rounding-level D^2 weight on a duplicate of a chosen row
            best = _uniform_not_in(data.n, picks[:i], rng)
        picks[i] = best
        _update_min_dist(data, min_dist, best)
        min_dist[best] = 0.0
        evals += data.n
    return Seeds(indices=picks, distance_evals=evals)


def seed_rs(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    max_trials: int = 0,
    candidates: int = 1,
    coreset_size: int = 16384,
) -> Seeds:
    """Rejection-sampling k-means++; ``max_trials`` caps trials per centre (0 = no cap) with the
    paper's uniform fallback. With ``candidates`` > 1 (rs-greedy), each centre is the candidate
    whose potential, estimated on a lightweight coreset (Bachem, Lucic, Krause 2018) of
    ``coreset_size`` weighted rows, is lowest. O(nd) set-up plus O(trials k d) and, for rs-greedy,
    O(k candidates coreset_size d); memory O(n + coreset_size)."""
    data = _Data(x)
    centres = _Centres(data, k)
    first = int(rng.integers(0, data.n))
    centres.add(first)
    sampler = RejectionSampler(data, first)
    trials = fallbacks = 0
    evals = data.n
    coreset = _Coreset(data, coreset_size, rng) if candidates > 1 else None
    if coreset is not None:
        coreset.add(centres.vec[0], centres.sq[0])
    taken = {first}
    for _ in range(1, k):
        rows, t = sampler.draw(centres, rng, candidates, max_trials)
        trials += t
        evals += t * centres.size
        cands = rows.tolist()
        while len(cands) < candidates:  # the trial cap ran out: uniform fallback
            fallbacks += 1
            cands.append(_uniform_not_in(data.n, np.fromiter(taken, np.int64), rng))
        committed = False
        if coreset is not None and len(set(cands)) > 1:
            best = coreset.best(data.rows(np.array(cands)), data.sq[cands])
            row = cands[best]
            evals += coreset.size * len(cands)
            if row not in taken:
                coreset.commit(best)
                committed = True
        else:
            row = cands[0]
        if row in taken:  # a duplicate row (only possible with duplicate points): take another
            row = _uniform_not_in(data.n, np.fromiter(taken, np.int64), rng)
        taken.add(row)
        centres.add(row)
        if coreset is not None and not committed:
            coreset.add(centres.vec[centres.size - 1], centres.sq[centres.size - 1])
    return Seeds(
        indices=centres.rows.copy(), distance_evals=evals, trials=trials, fallbacks=fallbacks
    )


class _Coreset:
    """A lightweight coreset: rows drawn with q = 1/(2n) + ||x - mu||^2 / (2 F), weights 1/(m q).

    Its weighted k-means cost approximates the full cost of any set of centres, so candidate
    centres can be ranked on it at O(m d) each instead of O(n d).
    """

    def __init__(self, data: _Data, size: int, rng: np.random.Generator) -> None:
        n = data.n
        total = data.sq.sum()
        spread = 0.5 * data.sq / total if total > 0 else np.full(n, 0.5 / n)
        q = 0.5 / n + spread
        size = min(size, n)
        idx = np.minimum(
            np.searchsorted(np.cumsum(q), rng.random(size) * q.sum(), side="right"), n - 1
        )
        self.size = size
        self.pts = data.rows(idx)
        self.sq = data.sq[idx].astype(np.float32)
        self.weight = (1.0 / (size * q[idx])).astype(np.float32)
        self.min_dist = np.full(size, np.inf, dtype=np.float32)
        self._last: np.ndarray | None = None

    def _dist(self, vecs: np.ndarray, vecs_sq: np.ndarray) -> np.ndarray:
        d = self.pts @ vecs.T
        d *= -2.0
        d += self.sq[:, None]
        d += vecs_sq.astype(np.float32)[None, :]
        return np.maximum(d, 0.0, out=d)

    def add(self, vec: np.ndarray, vec_sq: float) -> None:
        d = self._dist(vec[None, :], np.array([vec_sq]))[:, 0]
        np.minimum(self.min_dist, d, out=self.min_dist)

    def best(self, vecs: np.ndarray, vecs_sq: np.ndarray) -> int:
        """Index of the candidate whose addition leaves the lowest estimated potential; the
        chosen one is then committed with ``commit``."""
        d = self._dist(vecs, vecs_sq)
        np.minimum(d, self.min_dist[:, None], out=d)
        self._last = d
        return int(np.argmin(self.weight @ d))

    def commit(self, which: int) -> None:
        """Make candidate ``which`` of the last ``best`` call a centre (no recomputation)."""
        assert self._last is not None
        self.min_dist = np.ascontiguousarray(self._last[:, which])
        self._last = None


def seed_afkmc2(x: np.ndarray, k: int, rng: np.random.Generator, *, chain: int = 200) -> Seeds:
    """Assumption-free K-MC^2: per centre a Metropolis-Hastings chain of ``chain`` proposals from
    q = Delta(x, c1) / (2 sum) + 1 / (2n). O(nd) set-up plus O(chain k^2 d)."""
    data = _Data(x)
    centres = _Centres(data, k)
    first = int(rng.integers(0, data.n))
    centres.add(first)
    d1 = np.full(data.n, np.inf)
    _update_min_dist(data, d1, first)
    q = 0.5 * d1 / d1.sum() + 0.5 / data.n if d1.sum() > 0 else np.full(data.n, 1.0 / data.n)
    cdf = np.cumsum(q)
    evals = data.n
    taken = {first}
    for _ in range(1, k):
        idx = np.minimum(
            np.searchsorted(cdf, rng.random(chain) * cdf[-1], side="right"), data.n - 1
        )
        delta = centres.min_sq_dist(idx)
        evals += chain * centres.size
        u = rng.random(chain)
        cur, cur_w = idx[0], delta[0] / q[idx[0]]
        for j in range(1, chain):  # a scalar chain of length `chain`; the distances were batched
            w = delta[j] / q[idx[j]]
            if cur_w == 0 or w / cur_w > u[j]:
                cur, cur_w = idx[j], w
        row = int(cur)
        if row in taken:
            row = _uniform_not_in(data.n, np.fromiter(taken, np.int64), rng)
        taken.add(row)
        centres.add(row)
    return Seeds(indices=centres.rows.copy(), distance_evals=evals)


def greedy_candidates(k: int) -> int:
    """scikit-learn's number of local trials: 2 + floor(ln k)."""
    return 2 + int(math.log(k))


def seed(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    method: str = "rs-greedy",
    max_trials: int = 0,
    chain: int = 50,
    coreset_size: int = 16384,
) -> Seeds:
    """Choose k distinct seed rows of ``x`` with ``method`` (one of ``SEEDERS``).

    Arguments are checked by ``check_seed_args``. The sampling seeders make many small matrix
    products (a batch of trials against the current centres); BLAS threads only add overhead
    there, so ``rs``, ``rs-greedy`` and ``afkmc2`` run with one BLAS thread. The O(nkd) seeders
    keep all threads.
    """
    check_seed_args(
        x.shape[0],
        k,
        method,
        max_trials=max_trials,
        chain=chain,
        coreset_size=coreset_size,
        method_name="method",
    )
    return seed_checked(
        x, k, rng, method=method, max_trials=max_trials, chain=chain, coreset_size=coreset_size
    )


def seed_checked(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    method: str,
    max_trials: int,
    chain: int,
    coreset_size: int = 16384,
) -> Seeds:
    """``seed`` for arguments already checked by ``check_seed_args`` (``kmeans`` checks them)."""
    if method in ("rs", "rs-greedy", "afkmc2"):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return _seed(x, k, rng, method, max_trials, chain, coreset_size)
    return _seed(x, k, rng, method, max_trials, chain, coreset_size)


_SEEDER_FNS = {
    "random": lambda x, k, rng, mt, ch, cs: seed_random(x, k, rng),
    "kmeans++": lambda x, k, rng, mt, ch, cs: seed_kmeanspp(x, k, rng),
    "greedy": lambda x, k, rng, mt, ch, cs: seed_kmeanspp(
        x, k, rng, candidates=greedy_candidates(k)
    ),
    "rs": lambda x, k, rng, mt, ch, cs: seed_rs(x, k, rng, max_trials=mt),
    "rs-greedy": lambda x, k, rng, mt, ch, cs: seed_rs(
        x, k, rng, max_trials=mt, candidates=greedy_candidates(k), coreset_size=cs
    ),
    "afkmc2": lambda x, k, rng, mt, ch, cs: seed_afkmc2(x, k, rng, chain=ch),
}


def _seed(
    x: np.ndarray,
    k: int,
    rng: np.random.Generator,
    method: str,
    max_trials: int,
    chain: int,
    coreset_size: int,
) -> Seeds:
    return _SEEDER_FNS[method](x, k, rng, max_trials, chain, coreset_size)


def potential(x: np.ndarray, centres: np.ndarray) -> float:
    """k-means cost: sum over rows of the squared distance to the nearest centre (exact, faiss)."""
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centres, dtype=np.float32))
    total = 0.0
    for s in range(0, x.shape[0], CHUNK_ROWS):
        block = np.ascontiguousarray(x[s : s + CHUNK_ROWS], dtype=np.float32)
        dist, _ = index.search(block, 1)
        total += float(np.maximum(dist[:, 0], 0.0).astype(np.float64).sum())
    return total
