"""BADGE (Ash et al., ICLR 2020): k-means++ seeding on gradient embeddings, never materialised.

For a softmax classifier the gradient of the loss at the pseudo-label ŷ = argmax p with respect
to the last layer's weights is g = (p - e_ŷ) ⊗ h, with h the row's embedding (the last layer's
input). Its dimension is C·d (76,800 at C = 100, d = 768), so the peers that build it need
n·C·d floats. Here every distance comes from the factorised form

    ||g_i - g_j||² = ||a_i||²||h_i||² + ||a_j||²||h_j||² - 2 (a_i·a_j)(h_i·h_j),  a = p - e_ŷ,

and a_i·a_j = p_i·a_j - a_j[ŷ_i], so one pick costs one (n, C) and one (n, d) matrix-vector
product and O(n) extra memory: O(n B (C + d)) time for a batch of B, no (n, C·d) matrix.

As in the official ``init_centers``, the first pick is the row of largest gradient norm; each
later one is drawn with probability proportional to its squared distance to the nearest pick (D²
sampling, the same draw as ``selectkit.cluster.seeding``). Labelled rows are never drawn.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from selectkit.cluster.seeding import d2_draw
from selectkit.console import progress_bar
from selectkit.cost import CostBudget
from selectkit.pool import Pool
from selectkit.strategies.base import Selection, register_strategy
from selectkit.strategies.scored import top_k

CHUNK_ROWS = 1 << 15


def _row_sq(x: np.ndarray) -> np.ndarray:
    """Float64 squared row norms of ``x``, by chunks (no float64 copy of ``x``)."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for s in range(0, x.shape[0], CHUNK_ROWS):
        b = np.asarray(x[s : s + CHUNK_ROWS], dtype=np.float32)
        out[s : s + b.shape[0]] = np.einsum("ij,ij->i", b, b, dtype=np.float64)
    return out


class GradientEmbedding:
    """The implicit gradient embeddings g_i = (p_i - e_ŷi) ⊗ h_i of a pool: norms and distances.

    Holds references to ``proba`` (n, C) and ``emb`` (n, d) plus O(n) vectors; nothing of size
    n·C·d.
    """

    def __init__(self, proba: np.ndarray, emb: np.ndarray) -> None:
        self.p = np.asarray(proba, dtype=np.float32)
        self.h = np.asarray(emb)
        self.yhat = np.argmax(self.p, axis=1)
        p_top = self.p[np.arange(self.p.shape[0]), self.yhat].astype(np.float64)
        self.a_sq = np.maximum(_row_sq(self.p) - 2.0 * p_top + 1.0, 0.0)  # ||p - e_ŷ||²
        self.h_sq = _row_sq(self.h)
        self.norm_sq = self.a_sq * self.h_sq

    def sq_dist_to(self, j: int) -> np.ndarray:
        """||g_i - g_j||² for every row i (float64, clipped at 0); O(n (C + d))."""
        a_j = self.p[j].astype(np.float32)
        a_j[self.yhat[j]] -= 1.0
        aa = (self.p @ a_j).astype(np.float64) - a_j[self.yhat]
        hh = (self.h @ np.asarray(self.h[j], dtype=self.h.dtype)).astype(np.float64)
        d = self.norm_sq + self.norm_sq[j] - 2.0 * aa * hh
        return np.maximum(d, 0.0)


def badge_seeding(
    pool: Pool,
    rows: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    spend: CostBudget | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` of ``rows`` by BADGE; returns (picked pool rows in order, the distance of
    each pick's gradient embedding to the nearest earlier pick; the first: its norm).

    With ``spend`` (a ``selectkit.cost.CostBudget``): the first pick is the largest gradient
    norm / cost**λ, each later one is drawn ∝ D² / cost**λ among the rows that still fit, and it
    stops when none fits (``budget`` is then an upper bound). O(n) more per pick."""
    grad = GradientEmbedding(pool.proba, pool.embeddings)
    n = len(pool)
    allowed = np.zeros(n, dtype=bool)
    allowed[rows] = True
    picks = np.empty(budget, dtype=np.int64)
    gains = np.empty(budget, dtype=np.float64)
    divisor = None if spend is None else spend.divisor()
    if spend is not None:
        rows = rows[~spend.unaffordable(0.0)[rows]]
        allowed[:] = False
        allowed[rows] = True
    first_key = grad.norm_sq[rows] if divisor is None else grad.norm_sq[rows] / divisor[rows]
    first = int(rows[top_k(pool, rows, first_key, 1)[0]])
    picks[0], gains[0] = first, np.sqrt(grad.norm_sq[first])
    min_dist = np.where(allowed, grad.sq_dist_to(first), 0.0)
    min_dist[first] = 0.0
    spent = 0.0 if spend is None else float(spend.costs[first])
    done = budget
    # one BLAS thread: a chain of matrix-vector products, where threads cost more than they gain
    # (13x faster at n = 2,000 and 2.3x at 20,000 on 2 shared cores, measured; DESIGN.md §5)
    with progress_bar("badge", budget) as bar, threadpool_limits(limits=1):
        bar.advance()
        for i in range(1, budget):
            if spend is not None:  # rows that no longer fit leave the draw for good
                gone = spend.unaffordable(spent)
                allowed &= ~gone
                min_dist[gone] = 0.0
                allowed[picks[:i]] = False
                if not allowed.any():
                    done = i
                    break
            drawn = d2_draw(min_dist if divisor is None else min_dist / divisor, rng, 1)
            if drawn.size:
                row = int(drawn[0])
            else:  # only duplicates of picked rows are left: any remaining row
                allowed[picks[:i]] = False
                row = int(rng.choice(np.flatnonzero(allowed)))
            if spend is not None:
                spent += float(spend.costs[row])
            picks[i], gains[i] = row, np.sqrt(min_dist[row])
            np.minimum(min_dist, grad.sq_dist_to(row), out=min_dist)
            min_dist[row] = 0.0  # rows outside ``rows`` stay at 0: min(0, d) = 0
            bar.advance()
    return picks[:done], gains[:done]


@register_strategy(
    "badge",
    summary="BADGE: k-means++ seeding on gradient embeddings (p - onehot(argmax p)) ⊗ embedding, "
    "uncertain and diverse (Ash et al. 2020).",
    needs=("proba", "embedding"),
    cost="O(n*budget*(C+d)) time; O(n) extra memory (the n x C*d gradient embeddings are never "
    "built).",
    spends_cost=True,
)
def badge(
    pool: Pool, budget: int, rng: np.random.Generator, spend: CostBudget | None = None
) -> Selection:
    """BADGE batch over the unlabelled rows; scores are each pick's gradient-embedding distance to
    the nearest earlier pick (the first pick: its gradient norm). With ``spend`` (a cost budget)
    the D² draw is divided by cost**λ among the affordable rows."""
    picks, gains = badge_seeding(pool, pool.candidates, budget, rng, spend)
    return Selection(indices=picks, scores=gains)
