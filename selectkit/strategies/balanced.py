"""Balanced hierarchical sampling (Vo et al. 2024, "automatic data curation").

The budget is water-filled down a tree of clusters: at each node, every child gets
min(t, its size) rows for the largest cut t that fits, so small (rare) clusters are taken whole
and large (dense) ones are capped; leaves then give their rows at random or closest to their
centroid first. The tree is hierarchical k-means with resampling (``--levels 1000,100``), or
the cluster columns of the input (``cluster``, ``cluster_level2``, ... from ``selectkit
cluster --levels``).
"""

from __future__ import annotations

import numpy as np

from selectkit.cluster.hierarchical import hierarchical_kmeans
from selectkit.errors import SelectkitError
from selectkit.linalg import group_means, squared_distances_to
from selectkit.pool import Pool
from selectkit.strategies.allocation import draw_within_groups, water_fill
from selectkit.strategies.base import AUTO, LABELS_AS_DATA, Param, Selection, register_strategy


def tree_from_pool(pool: Pool) -> list[np.ndarray]:
    """Row-level cluster codes per level, finest first, from ``cluster`` and any
    ``cluster_level2``, ``cluster_level3``, ... columns."""
    levels = [pool.cluster_labels]
    name = pool.columns.cluster
    i = 2
    while f"{name}_level{i}" in pool.frame.columns:
        levels.append(pool.cluster_codes(f"{name}_level{i}"))
        i += 1
    return levels


def tree_by_kmeans(
    x: np.ndarray, levels: list[int], rng: np.random.Generator, resample_steps: int, sample_size
) -> list[np.ndarray]:
    """Row-level codes per level (finest first) of hierarchical k-means with resampling."""
    rngs = rng.spawn(len(levels))
    tree = hierarchical_kmeans(
        x,
        levels,
        rng_for_level=lambda i: rngs[i],
        resample_steps=resample_steps,
        sample_size=sample_size,
    )
    rows = [tree[0].labels.astype(np.int64)]
    for below in tree[:-1]:  # a row's cluster one level up is its cluster's parent
        rows.append(below.parents[rows[-1]])
    return rows


def balanced_counts(levels: list[np.ndarray], budget: int, rng: np.random.Generator) -> np.ndarray:
    """How many rows each finest cluster gives: the budget water-filled from the top of the tree
    down. ``levels`` are codes per row (finest first); each node must have one parent."""
    parent_rows = np.zeros(levels[0].size, dtype=np.int64)  # a virtual root above the top level
    parent_counts = np.array([budget], dtype=np.int64)
    for depth in range(len(levels) - 1, -1, -1):
        child_rows = levels[depth]
        k = int(child_rows.max()) + 1
        sizes = np.bincount(child_rows, minlength=k)
        parent_of = np.full(k, -1, dtype=np.int64)
        parent_of[child_rows] = parent_rows
        if not np.array_equal(parent_of[child_rows], parent_rows):
            raise SelectkitError(
                f"the cluster levels are not nested: a level-{depth + 1} cluster has rows under "
                "two parents; give cluster columns made by `selectkit cluster --levels`"
            )
        counts = np.zeros(k, dtype=np.int64)
        kids_by_parent = np.argsort(parent_of, kind="stable")
        bounds = np.searchsorted(parent_of[kids_by_parent], np.arange(parent_counts.size + 1))
        for p in np.flatnonzero(parent_counts):  # a loop over tree nodes, not rows
            kids = kids_by_parent[bounds[p] : bounds[p + 1]]
            kids = kids[sizes[kids] > 0]
            counts[kids] = water_fill(sizes[kids], int(parent_counts[p]), rng)
        parent_rows, parent_counts = child_rows, counts
    return parent_counts


@register_strategy(
    "balanced",
    summary="Balanced sampling down a cluster tree: rare clusters kept whole, dense ones capped "
    "(Vo et al. 2024); hierarchical k-means with resampling, or the input's cluster columns.",
    needs=("embedding",),
    optional=("cluster",),
    params={
        "levels": Param(
            int,
            AUTO,
            "clusters per level, finest first (e.g. 1000,100); auto: the input's cluster columns, "
            "else one level of sqrt(n) clusters",
            multiple=True,
            sep=",",
            low=1,
            min_items=1,
        ),
        "resample_steps": Param(
            int, 3, "k-means resampling rounds per level (0: plain k-means)", low=0
        ),
        "sample_size": Param(
            int,
            0,
            "rows closest to each centroid kept per resampling round (0: half the mean)",
            low=0,
        ),
        "leaf": Param(
            str,
            "random",
            "how a leaf cluster gives its rows: random, or closest to its centroid first",
            ("random", "closest"),
        ),
    },
    labels=LABELS_AS_DATA,  # curating a corpus: every row may be picked
    cost="k-means: about (1 + resample_steps) n k d per level and Lloyd iteration; sampling "
    "O(n log n); memory O(n + k d).",
)
def balanced(
    pool: Pool,
    budget: int,
    rng: np.random.Generator,
    levels: list[int] | str = AUTO,
    resample_steps: int = 3,
    sample_size: int = 0,
    leaf: str = "random",
) -> Selection:
    """Return ``budget`` rows spread over the cluster tree as evenly as the clusters allow;
    the score is the distance to the leaf centroid with ``leaf=closest``."""
    candidates = pool.candidates
    x = pool.embeddings
    if levels == AUTO and pool.has("cluster"):
        tree = tree_from_pool(pool)
        source = "input"
    else:
        sizes = (
            [max(1, min(len(pool), round(len(pool) ** 0.5)))]
            if levels == AUTO
            else list(levels)  # each >= 1, at least one: checked by its Param
        )
        source = ",".join(map(str, sizes))
        if sizes[0] > len(pool):
            raise SelectkitError(
                f"levels={source} asks for {sizes[0]} clusters but the pool has {len(pool)} rows"
            )
        try:
            tree = tree_by_kmeans(x, sizes, rng, resample_steps, sample_size or None)
        except ValueError as exc:
            raise SelectkitError(f"levels={source}: {exc}") from None
    # dense codes over the candidates only, so empty (all-labelled) clusters drop out
    cand_levels = [np.unique(level[candidates], return_inverse=True)[1] for level in tree]
    counts = balanced_counts(cand_levels, budget, rng)
    leaves = cand_levels[0]
    key = None
    d2 = None
    if leaf == "closest":
        k = int(leaves.max()) + 1
        centres, _ = group_means(x, leaves, k, rows=candidates)
        d2 = squared_distances_to(x, candidates, centres, leaves)
        key = d2
    picks = draw_within_groups(leaves, counts, rng, key=key)
    picks = picks[rng.permutation(picks.size)]
    return Selection(
        indices=candidates[picks],
        scores=None if d2 is None else np.sqrt(d2[picks]),
        params={"levels": source},
        metrics={
            "balanced_leaves": int(leaves.max()) + 1,
            "balanced_levels": len(tree),
            "balanced_leaves_used": int((counts > 0).sum()),
        },
    )
