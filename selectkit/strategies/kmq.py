"""kMQ: k-means clustering, then quality-weighted draws inside each cluster (Yu, Chen, Ahmadian,
Fadaee, "Diversify and Conquer", arXiv 2409.11378).

Diversity is global and quality local: the pool is split into clusters D_1..D_k (the input's
``cluster`` column, or seeded k-means on the embeddings with ``--k``), cluster j gets the
budget b_j = b * |D_j| / |D| (largest remainder; a cluster is never given more rows than it has,
and the surplus of a capped cluster goes to the others, so the total is always the budget), and
inside D_j rows are drawn without replacement with probability weighted by quality:

* ``within=quality`` (default): weight q_i^(1/T), the paper's p(x | q) ∝ q at T = 1 (q >= 0);
* ``within=softmax``: weight exp(q_i / T), what the authors' code does at T = 1;
* ``within=uniform``: every row alike (kM-Random; also what a pool without quality gets);
* ``within=closest``: the rows closest to their cluster's mean embedding (kM-Closest).

T -> 0 takes the highest-quality rows of each cluster; T -> inf is kM-Random. The draws are
Efraimidis–Spirakis weighted sampling without replacement: each row gets the key
E_i / w_i with E_i = -log(u_i), u_i a uniform from the seed and the row's id (never its
position), and each cluster keeps its b_j smallest keys (computed as log E_i - log w_i, so a
tiny temperature cannot underflow). A shuffled input gives the same manifest.

Iterative kMQ: ``cluster_weights`` names a table ``cluster, weight`` (from
``selectkit kmq-weights``); cluster j's budget becomes proportional to w_j * |D_j|. With
``select --exclude`` the earlier rounds' rows leave the pool first, so D_j is what is left.

The manifest is ranked by interleaving the clusters in proportion to their budgets (pick r of a
cluster with b_j picks sits at (r + 0.5) / b_j; ties by id hash), so any prefix of it is spread
over the clusters as the whole is. ``score`` is the quality (softmax/quality), the distance to
the cluster mean (closest) or null (uniform); ``weight`` is 1.

Cost: O(n log n) for the draws and the sort, O(n d) for kM-Closest's means and distances,
k-means O(iters n k d) when it clusters itself; memory O(n) beyond the embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError, SelectkitUsageError, option, param_option
from selectkit.linalg import group_means, squared_distances_to
from selectkit.pool import Pool, column_option
from selectkit.rng import id_hashes, id_uniforms, salt_of
from selectkit.strategies.allocation import capped_proportional
from selectkit.strategies.base import AUTO, LABELS_AS_DATA, Param, Selection, register_strategy

WITHIN = ("quality", "softmax", "uniform", "closest")

KMQ_PARAMS = {
    "within": Param(
        str,
        "quality",
        "how rows are drawn inside a cluster: quality (weight q^(1/T), the paper), softmax "
        "(weight exp(q/T), the authors' code), uniform (kM-Random), closest (kM-Closest)",
        WITHIN,
    ),
    "quality_col": Param(
        str,
        AUTO,
        "the quality column (>= 0 for within=quality); auto: the score column (--score-col) "
        "when the input has one, else uniform draws; none: uniform draws",
    ),
    "temperature": Param(
        float,
        1.0,
        "T of the quality weights: q^(1/T) or exp(q/T); small T takes each cluster's best "
        "rows, large T approaches uniform",
        low=0.0,
        low_open=True,
    ),
    "allocation": Param(
        str,
        "proportional",
        "proportional: cluster j gets b |D_j| / |D| (the paper); equal: the same count per "
        "cluster (what the authors' code intends, without its floor(b/k) shortfall)",
        ("proportional", "equal"),
    ),
    "k": Param(
        int,
        AUTO,
        "clusters made by seeded k-means on the embeddings; auto: the input's cluster column, "
        "else max(1, budget / 10) clusters",
        low=1,
    ),
    "cluster_weights": Param(
        str,
        None,
        "a table with columns cluster and weight (selectkit kmq-weights) multiplying each "
        "cluster's share of the budget (iterative kMQ)",
    ),
}


def quality_values(pool: Pool, rows: np.ndarray, quality_col: str) -> tuple[np.ndarray | None, str]:
    """Float64 quality of ``rows`` and the column it came from, or (None, "none") when the draws
    are uniform (``quality_col`` none, or auto without a score column). A named column that is
    missing, or that holds nulls, NaN or infinities, is a data error naming it."""
    if quality_col.lower() == "none":
        return None, "none"
    if quality_col == AUTO:
        name = pool.columns.score
        if name not in pool.frame.columns:
            return None, "none"
    else:
        name = quality_col
    if name not in pool.frame.columns:
        present = ", ".join(pool.frame.columns)
        raise SelectkitDataError(
            f"strategy 'kmq' needs the quality column '{name}', which {pool.where} lacks "
            f"(columns: {present}); name one with {option('quality_col')}, or draw uniformly "
            f"with {option('quality_col', 'none')}"
        )
    return pool.values(name)[rows], name


def draw_weights_log(q: np.ndarray, within: str, temperature: float, where: str) -> np.ndarray:
    """log w_i of the draw weights: log(q) / T (``quality``; q >= 0 required, q = 0 never drawn
    before the rows with weight) or q / T (``softmax``)."""
    if within == "softmax":
        return q / temperature
    if (q < 0).any():
        first = float(q[np.flatnonzero(q < 0)[0]])
        raise SelectkitDataError(
            f"{where} has {int((q < 0).sum())} negative values (first: {first:g}); "
            f"within=quality weights rows by q^(1/T) and needs q >= 0: shift the scores, or use "
            f"{option('within', 'softmax')}"
        )
    with np.errstate(divide="ignore"):
        return np.log(q) / temperature


def read_cluster_weights(path: str, known: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Float64 weight per cluster in ``known`` (sorted cluster ids) from the table at ``path``
    (columns ``cluster`` and ``weight``; finite, >= 0, one row per cluster) and the file's
    source record. A cluster of the file that is not in ``known`` is a data error; a known
    cluster the file lacks keeps weight 1. O(k log k)."""
    from selectkit.io import read_table

    table = read_table(path, id_col="cluster")
    frame = table.frame
    where = f"'{path}'"
    if "weight" not in frame.columns:
        raise SelectkitDataError(
            f"{where} has no column 'weight' (columns: {', '.join(frame.columns)}); give the "
            "cluster weights written by `selectkit kmq-weights`"
        )
    if not frame.schema["cluster"].is_integer() or not frame.schema["weight"].is_numeric():
        raise SelectkitDataError(
            f"{where} must have integer 'cluster' ids and numeric 'weight's, not "
            f"{frame.schema['cluster']} and {frame.schema['weight']}"
        )
    ids = frame.get_column("cluster").cast(pl.Int64).to_numpy()
    w = frame.get_column("weight").cast(pl.Float64).fill_null(np.nan).to_numpy()
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SelectkitDataError(
            f"column 'weight' of {where} has {int(bad.sum())} null, non-finite or negative "
            f"values (first at cluster {ids[first]}: {w[first]}); weights must be finite, >= 0"
        )
    pos = np.searchsorted(known, ids)
    unknown = (pos >= known.size) | (known[np.minimum(pos, known.size - 1)] != ids)
    if unknown.any():
        raise SelectkitDataError(
            f"{where} has {int(unknown.sum())} cluster ids that are not clusters of the pool "
            f"(first: {ids[np.flatnonzero(unknown)[0]]}); give the weights made from the same "
            "clusters file (selectkit kmq-weights), and drop the rows of clusters whose rows "
            "--exclude removed entirely"
        )
    out = np.ones(known.size, dtype=np.float64)  # clusters the file does not list keep 1
    out[pos] = w
    if not (out > 0).any():
        raise SelectkitDataError(
            f"{where} gives every cluster weight 0, which leaves none a share of the budget; "
            "give some cluster a weight > 0"
        )
    return out, {**table.source.as_dict(), "weighted_clusters": int(ids.size)}


def clusters_of(
    pool: Pool, rows: np.ndarray, k: int | str, budget: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str]:
    """(dense codes 0..c-1 of ``rows``, the cluster id of each code, where they came from): the
    input's cluster column under ``k=auto``, else seeded k-means (``selectkit.cluster``) with k
    clusters on the embeddings of ``rows``. O(iters n k d) for k-means."""
    if k == AUTO and pool.has("cluster"):
        col = pool.frame.get_column(pool.columns.cluster)
        codes = pool.cluster_labels[rows]  # validates type and nulls
        ids = np.unique(col.cast(pl.Int64).to_numpy())
        used, codes = np.unique(codes, return_inverse=True)
        return codes.astype(np.int64), ids[used], "input"
    if not pool.has("embedding"):
        raise SelectkitUsageError(
            f"strategy 'kmq' needs clusters: a '{pool.columns.cluster}' column (selectkit "
            f"cluster) or column '{pool.columns.embedding}' (embedding) to cluster with "
            f"{option('k', 100)}; {pool.where} has neither ({column_option('cluster')})"
        )
    from selectkit.cluster import kmeans

    n = rows.size
    clusters = max(1, budget // 10) if k == AUTO else int(k)
    if clusters > n:
        raise SelectkitDataError(
            f"{param_option('k', clusters)} asks for more clusters than the {n} selectable "
            f"rows; give {param_option('k', n)} or less"
        )
    x = np.ascontiguousarray(pool.embeddings[rows], dtype=np.float32)
    (child,) = rng.spawn(1)
    labels = kmeans(x, clusters, rng=child).labels.astype(np.int64)
    used, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64), used.astype(np.int64), f"kmeans k={clusters}"


@register_strategy(
    "kmq",
    summary="kMQ (Yu et al. 2024, Diversify and Conquer): the budget split over clusters by "
    "size (or by --cluster-weights), rows drawn inside each cluster weighted by quality "
    "(kM-Random: uniform; kM-Closest: nearest the cluster mean).",
    optional=("cluster", "embedding", "score"),
    params=KMQ_PARAMS,
    labels=LABELS_AS_DATA,  # curating training data: every row may be picked
    cost="O(n log n) draws and sort; kM-Closest O(n d); k-means O(iters n k d) when it "
    "clusters itself; memory O(n) beyond the embeddings.",
)
def kmq(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    within: str = "quality",
    quality_col: str = AUTO,
    temperature: float = 1.0,
    allocation: str = "proportional",
    k: int | str = AUTO,
    cluster_weights: str | None = None,
) -> Selection:
    """Return ``budget`` rows: per-cluster counts by (weighted) size, quality-weighted draws
    without replacement inside each cluster, interleaved by cluster; O(n log n)."""
    candidates = pool.candidates
    salt = salt_of(rng)
    groups, cluster_ids, source = clusters_of(pool, candidates, k, budget, rng)
    c = cluster_ids.size
    sizes = np.bincount(groups, minlength=c)
    group_tie = id_hashes(pl.Series(cluster_ids), salt)  # ties between clusters, by cluster id
    mass = sizes.astype(np.float64) if allocation == "proportional" else np.ones(c)
    metrics: dict[str, Any] = {}
    if cluster_weights:
        w, record = read_cluster_weights(str(cluster_weights), cluster_ids)
        mass = mass * w
        metrics["kmq_cluster_weights"] = record
    counts = capped_proportional(mass, sizes, budget, group_tie)

    ids = pool.ids.gather(candidates)
    tie = id_hashes(ids, salt ^ 0x6B6D71)  # 'kmq': an independent stream for row ties
    q, q_name = quality_values(pool, candidates, quality_col)
    mode = within
    scores = None
    if within == "closest":
        x = pool.embeddings
        means, _ = group_means(x, groups, c, rows=candidates)
        key = squared_distances_to(x, candidates, means, groups)
        scores = np.sqrt(key)
    else:
        log_e = np.log(-np.log(id_uniforms(ids, salt)))  # log E_i, E_i ~ Exp(1) from (seed, id)
        if within == "uniform" or q is None:  # w_i = 1: constant quality draws the same rows
            mode = "uniform"
            key = log_e
        else:
            where = f"the quality column '{q_name}' of {pool.where}"
            log_w = draw_weights_log(q, within, temperature, where)
            with np.errstate(invalid="ignore"):
                key = log_e - log_w  # log(E_i / w_i); +inf for w_i = 0
            key = np.where(np.isnan(key), np.inf, key)
            scores = q
    order = np.lexsort((tie, key, groups))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rank = np.arange(groups.size) - starts[groups[order]]
    keep = rank < counts[groups[order]]
    picks = order[keep]
    slot = (rank[keep] + 0.5) / counts[groups[picks]]
    picks = picks[np.lexsort((tie[picks], slot))]
    metrics.update(
        {
            "kmq_clusters": int(c),
            "kmq_clusters_used": int((counts > 0).sum()),
            "kmq_cluster_source": source,
            "kmq_within": mode,
            "kmq_quality_column": q_name if mode in ("quality", "softmax") else None,
            "kmq_max_cluster_picks": int(counts.max(initial=0)),
        }
    )
    if q is not None:
        metrics["kmq_mean_quality_picked"] = float(q[picks].mean()) if picks.size else None
        metrics["kmq_mean_quality_pool"] = float(q.mean())
    return Selection(
        indices=candidates[picks],
        scores=None if scores is None else scores[picks],
        metrics=metrics,
    )
