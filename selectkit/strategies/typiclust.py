"""TypiClust (Hacohen, Dekel, Weinshall, ICML 2022): typical points of uncovered clusters.

The pool is clustered by k-means into min(|L| + budget, ``max_clusters``) clusters (selectkit's
own k-means, fitted on at most ``fit_rows`` sampled rows, then every row assigned). Each pick
takes, among the clusters with the fewest labelled or picked rows, the largest one (clusters
below ``min_cluster_size`` only when nothing else is left) and its most *typical* unlabelled row:
typicality = 1 / (mean Euclidean distance to its ``neighbours`` nearest rows in the cluster +
1e-5), as in the reference code. It needs no labels, so it is a cold-start strategy.

Cost: the k-means fit, one O(n k d) assignment pass, and one exact within-cluster kNN (faiss) per
visited cluster, O(sum of visited sizes² d), where a cluster larger than ``cluster_rows`` is
represented by a uniform sample of that many of its rows not yet labelled or picked (typicality
estimated and picks made within the sample, redrawn when it runs out); memory O(n) plus the
largest visited cluster's (or sample's) rows.
"""

from __future__ import annotations

import faiss
import numpy as np

from selectkit.cluster.kmeans import assign, kmeans
from selectkit.cost import CostBudget
from selectkit.pool import Pool
from selectkit.strategies.base import Param, Selection, register_strategy


def typicality(x: np.ndarray, neighbours: int) -> np.ndarray:
    """1 / (mean distance to the ``neighbours`` nearest other rows + 1e-5) for each row of ``x``;
    exact faiss kNN, O(m² d)."""
    m = x.shape[0]
    k = min(neighbours, m - 1)
    if k <= 0:
        return np.ones(m)
    x = np.ascontiguousarray(x, dtype=np.float32)
    dist, _ = faiss.knn(x, x, k + 1)
    # the row itself is among its k+1 nearest (at distance 0), so dropping the smallest drops it
    near = np.sqrt(np.maximum(np.sort(dist, axis=1)[:, 1:], 0.0)).mean(axis=1)
    return 1.0 / (near + 1e-5)


@register_strategy(
    "typiclust",
    summary="TypiClust: the most typical row of each largest uncovered k-means cluster "
    "(Hacohen et al. 2022); needs no labels (cold start).",
    needs=("embedding",),
    optional=("label",),
    params={
        "max_clusters": Param(int, 500, "cap on the number of k-means clusters", low=1),
        "neighbours": Param(int, 20, "nearest neighbours in the typicality estimate", low=1),
        "min_cluster_size": Param(int, 5, "clusters smaller than this are used last", low=1),
        "fit_rows": Param(
            int, 50_000, "k-means is fitted on at most this many sampled rows", low=1
        ),
        "cluster_rows": Param(
            int,
            20_000,
            "typicality within a larger cluster uses this many sampled rows of it",
            low=1,
        ),
        "iters": Param(int, 20, "Lloyd iterations of the k-means fit", low=0),
    },
    cost="k-means on min(n, fit_rows) rows + O(n*k*d) assignment + O(sum of visited cluster "
    "sizes^2 * d) typicality, each size capped at cluster_rows; O(n) extra memory.",
    spends_cost=True,
)
def typiclust(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    max_clusters: int = 500,
    neighbours: int = 20,
    min_cluster_size: int = 5,
    fit_rows: int = 50_000,
    iters: int = 20,
    cluster_rows: int = 20_000,
    spend: CostBudget | None = None,
) -> Selection:
    """TypiClust batch; scores are the typicality of each pick within its cluster.

    With ``spend`` (a ``selectkit.cost.CostBudget``) each pick is the most typical row of the
    chosen cluster among the rows that still fit (a cluster with none left is passed over), it
    stops when no row fits, and the clusters number |L| + budget / (mean selectable cost), the
    picks the budget buys at the average cost (``budget`` is then an upper bound)."""
    x = np.asarray(pool.embeddings)
    n = x.shape[0]
    labelled = pool.labelled_mask
    wanted = budget
    if spend is not None:
        mean_cost = float(np.mean(spend.costs[pool.candidates]))
        wanted = max(1, min(budget, int(spend.budget / mean_cost)))
    k = max(1, min(int(labelled.sum()) + wanted, max_clusters, n))
    fit = np.sort(rng.choice(n, size=fit_rows, replace=False)) if n > fit_rows else None
    sample = x if fit is None else x[fit]
    model = kmeans(sample, min(k, sample.shape[0]), rng=rng, iters=iters)
    labels, _ = assign(x, model.centroids)
    k = model.centroids.shape[0]
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))])
    sizes = np.diff(bounds)
    covered = np.bincount(labels[labelled], minlength=k)
    free = np.bincount(labels[~labelled], minlength=k)  # unlabelled, not yet picked
    small = sizes < min_cluster_size
    taken = labelled.copy()  # labelled or already picked
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    used = np.zeros(k, dtype=np.int64)  # how far into its cached ranking each cluster is
    picks = np.empty(budget, dtype=np.int64)
    scores = np.empty(budget, dtype=np.float64)
    spent = 0.0
    done = budget
    for i in range(budget):
        if spend is not None:  # rows that no longer fit leave their clusters for good
            gone = spend.unaffordable(spent) & ~taken
            taken |= gone
            free -= np.bincount(labels[gone], minlength=k)
        # not small first, then fewest covered, then largest, then lowest cluster number
        open_ = np.flatnonzero(free > 0)
        if open_.size == 0:
            done = i
            break
        j = int(open_[np.lexsort((open_, -sizes[open_], covered[open_], small[open_]))[0]])
        if j in cache:  # skip rows ranked before they left (cost)
            while used[j] < cache[j][0].size and taken[cache[j][0][used[j]]]:
                used[j] += 1
        if j not in cache or used[j] == cache[j][0].size:
            # (re)rank the cluster: a sampled large cluster is resampled among its rows left
            members = order[bounds[j] : bounds[j + 1]]
            if members.size > cluster_rows:  # bound the O(size² d) kNN: a uniform sample
                left = members[~taken[members]]
                keep_n = min(cluster_rows, left.size)
                members = np.sort(rng.choice(left, size=keep_n, replace=False))
            typ = typicality(x[members], neighbours)
            keep = ~taken[members]
            rank = np.lexsort((members[keep], -typ[keep]))  # most typical first, ties by row
            cache[j] = (members[keep][rank], typ[keep][rank])
            used[j] = 0
        rows, typ = cache[j]
        picks[i], scores[i] = rows[used[j]], typ[used[j]]
        if spend is not None:
            spent += float(spend.costs[picks[i]])
        taken[picks[i]] = True
        used[j] += 1
        covered[j] += 1
        free[j] -= 1
    return Selection(indices=picks[:done], scores=scores[:done], metrics={"clusters": k})
