"""semdedup: exactly the injected near-duplicates go, nothing else; the greedy order; CLI."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit import Pool, SelectkitError, SelectkitUsageError, select
from selectkit.cluster.kmeans import assign, kmeans
from selectkit.strategies import semdedup as sd


@pytest.fixture(scope="module")
def corpus_with_copies(rt_emb):
    """Real text embeddings plus 30 injected near-copies (tiny noise) with new ids."""
    frame = pl.read_parquet(rt_emb)
    x = np.stack(frame.get_column("embedding").to_numpy()).astype(np.float32)
    rng = np.random.default_rng(0)
    originals = rng.choice(len(x), size=30, replace=False)
    copies = x[originals] + rng.normal(0, 1e-3, (30, x.shape[1])).astype(np.float32)
    allx = np.vstack([x, copies])
    ids = np.arange(len(allx))
    fit = kmeans(allx, 8, rng=np.random.default_rng(0))
    cluster, _ = assign(allx, fit.centroids)
    return allx, ids, cluster.astype(np.int32), originals, np.arange(len(x), len(allx))


def test_removes_exactly_the_injected_copies(corpus_with_copies):
    x, ids, cluster, originals, copies = corpus_with_copies
    pool = Pool.from_arrays(x, ids=ids, cluster=cluster)
    _, sel = select(pool, "semdedup", seed=0, params={"threshold": 0.99, "order": "input"})
    dropped = sel.tables["dropped"]
    assert sorted(dropped.get_column("id").to_list()) == copies.tolist()
    pairs = dict(zip(dropped["id"].to_list(), dropped["duplicate_of"].to_list(), strict=True))
    assert all(pairs[c] == o for c, o in zip(copies, originals, strict=True))
    assert (dropped.get_column("similarity") > 0.99).all()
    assert sel.indices.size == len(x) - 30
    # farthest-first order keeps one of each pair, whichever comes first
    _, far = select(pool, "semdedup", seed=0, params={"threshold": 0.99, "order": "far"})
    gone = set(far.tables["dropped"].get_column("id").to_list())
    assert len(gone) == 30
    assert all((c in gone) != (o in gone) for c, o in zip(copies, originals, strict=True))


def test_greedy_keeps_the_end_of_a_chain():
    # a ~ b and b ~ c above the threshold, a and c below: b goes, c stays (b was dropped)
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.3), np.sin(0.3)])
    c = np.array([np.cos(0.6), np.sin(0.6)])
    x = np.vstack([a, b, c]).astype(np.float32)
    pool = Pool.from_arrays(x, cluster=np.zeros(3, np.int32))
    threshold = float(np.cos(0.45))  # cos(0.3) > t > cos(0.6)
    _, sel = select(pool, "semdedup", params={"threshold": threshold, "order": "input"})
    assert sel.indices.tolist() == [0, 2]
    # most typical first: b (nearest the centroid) is kept and covers both a and c
    _, sel = select(pool, "semdedup", params={"threshold": threshold, "order": "near"})
    assert sel.indices.tolist() == [1]


def test_labelled_rows_are_kept_and_their_copies_dropped():
    x = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]], dtype=np.float32)
    pool = Pool.from_arrays(x, labels=[None, 1, None], cluster=np.zeros(3, np.int32))
    _, sel = select(pool, "semdedup", params={"order": "input"})
    assert sel.indices.tolist() == [2]
    assert sel.tables["dropped"].get_column("duplicate_of").to_list() == [1]


def sequential_reference(v, threshold, forced):
    """The definition, one row at a time: dropped when an earlier kept row is too similar."""
    sim = v.astype(np.float64) @ v.T.astype(np.float64)
    kept, match = [], {}
    for i in range(v.shape[0]):
        earlier = [j for j in kept if sim[i, j] > threshold]
        if earlier and not forced[i]:
            match[i] = earlier[0]
        else:
            kept.append(i)
    return kept, match


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000), st.floats(0.0, 0.95), st.integers(1, 9))
def test_blocked_dedup_matches_the_sequential_definition(m, seed, threshold, block):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(m, 3)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    forced = rng.random(m) < 0.1
    old = sd.BLOCK_ENTRIES, sd.MAX_BLOCK_ROWS
    sd.BLOCK_ENTRIES, sd.MAX_BLOCK_ROWS = 4 * block, block  # many small blocks
    try:
        kept, match, _ = sd.dedup_in_order(v, threshold, forced)
    finally:
        sd.BLOCK_ENTRIES, sd.MAX_BLOCK_ROWS = old
    want_kept, want_match = sequential_reference(v, threshold, forced)
    # float32 products may differ from float64 right at the threshold: skip such draws
    sim = v.astype(np.float64) @ v.T.astype(np.float64)
    if np.any(np.abs(sim - threshold) < 1e-5):
        return
    assert np.flatnonzero(kept).tolist() == want_kept
    assert {i: int(match[i]) for i in np.flatnonzero(~kept)} == want_match


def test_cli_emit_dropped_and_no_budget(cli, tmp_path, corpus_with_copies):
    x, ids, cluster, _, copies = corpus_with_copies
    emb, clu = tmp_path / "emb.parquet", tmp_path / "clusters.parquet"
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(emb)
    pl.DataFrame({"id": ids, "cluster": cluster}).write_parquet(clu)
    kept, dropped = tmp_path / "kept.parquet", tmp_path / "dropped.parquet"
    r = cli(
        "select", emb, clu, "--strategy", "semdedup", "--threshold", "0.99",
        "--order", "input", "-o", kept, "--emit-dropped", dropped,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(kept).height == len(x) - 30
    assert sorted(pl.read_parquet(dropped).get_column("id").to_list()) == copies.tolist()
    r = cli("select", emb, clu, "--strategy", "semdedup", "--budget", "10", "-o", kept)
    assert r.exit_code == 2 and "takes no budget" in r.output
    r = cli(
        "select",
        emb,
        "--strategy",
        "kcenter",
        "--budget",
        "5",
        "-o",
        kept,
        "--emit-dropped",
        dropped,
    )
    assert r.exit_code == 2 and "no 'dropped' table" in r.output


def test_bad_threshold_is_refused(corpus_with_copies):
    x, _, cluster, _, _ = corpus_with_copies
    with pytest.raises(SelectkitError, match="threshold"):
        select(Pool.from_arrays(x, cluster=cluster), "semdedup", params={"threshold": 1.5})
    with pytest.raises(SelectkitUsageError):
        select(Pool.from_arrays(x, cluster=cluster), "semdedup", 5)
