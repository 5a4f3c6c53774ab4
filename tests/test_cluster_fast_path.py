"""The single-read cluster path (issue 14): the fit's own labels become the output, a step's
cost comes from the cluster sums, Parquet row groups are decoded by polars (pyarrow for big
groups), and commands set the allocation policy. Real files through the CLI and the API."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from selectkit.cluster import cluster_file
from selectkit.cluster import lloyd_blocks as lloyd
from selectkit.cluster.search import assign, centroid_index
from selectkit.io import tables
from selectkit.io.tables import iter_batches


def _centroids(path) -> np.ndarray:
    table = pl.read_parquet(path).sort("cluster")
    return np.ascontiguousarray(table["centroid"].to_numpy(), dtype=np.float32)


@pytest.mark.parametrize("spherical", [False, True])
def test_output_is_the_search_against_the_written_centroids(rt_emb, tmp_path, spherical):
    """No second read: yet every row's cluster and distance are exactly what searching the
    final centroids gives, in input order, with the input's ids."""
    out, cents = tmp_path / "c.parquet", tmp_path / "cen.parquet"
    cluster_file(rt_emb, out, k=12, centroids_out=cents, spherical=spherical, seed=4)
    table = pl.read_parquet(out)
    src = pl.read_parquet(rt_emb)
    x = np.ascontiguousarray(src["embedding"].to_numpy(), dtype=np.float32)
    labels, dist = assign(x, _centroids(cents), spherical=spherical)
    assert table["id"].equals(src["id"])
    assert np.array_equal(table["cluster"].to_numpy(), labels)
    assert np.array_equal(table["distance"].to_numpy(), dist)
    assert np.array_equal(
        pl.read_parquet(cents)["size"].to_numpy(), np.bincount(labels, minlength=12)
    )


def test_shuffled_input_in_many_row_groups_gives_the_same_rows(rt_emb, tmp_path):
    """The labels come from the id-ordered fit matrix and are put back in input order: a
    shuffled copy written in small row groups (several shards) gets the same row for each id."""
    src = pl.read_parquet(rt_emb)
    shuffled = src.sample(fraction=1.0, shuffle=True, seed=9)
    path = tmp_path / "shuffled.parquet"
    shuffled.write_parquet(path, row_group_size=97)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    cluster_file(rt_emb, a, k=9, seed=2)
    cluster_file(path, b, k=9, seed=2, batch_size=50)
    got_a, got_b = pl.read_parquet(a), pl.read_parquet(b)
    assert got_b["id"].equals(shuffled["id"])  # input order kept
    assert got_a.sort("id").equals(got_b.sort("id"))


def test_fit_sample_still_reads_and_searches(rt_emb, tmp_path):
    """With --fit-sample the fit has not seen every row: the rows are assigned by search."""
    out, cents = tmp_path / "c.parquet", tmp_path / "cen.parquet"
    cluster_file(rt_emb, out, k=6, fit_sample=300, centroids_out=cents, seed=1)
    x = np.ascontiguousarray(pl.read_parquet(rt_emb)["embedding"].to_numpy(), dtype=np.float32)
    labels, dist = assign(x, _centroids(cents))
    table = pl.read_parquet(out)
    assert np.array_equal(table["cluster"].to_numpy(), labels)
    assert np.array_equal(table["distance"].to_numpy(), dist)


def test_step_cost_from_sums_matches_the_exact_distances(rt_emb):
    """sum |x|^2 - 2 sum S.c + sum n |c|^2 equals the float64 sum of the row distances."""
    x = np.ascontiguousarray(pl.read_parquet(rt_emb)["embedding"].to_numpy(), dtype=np.float32)
    c = x[np.random.default_rng(0).choice(x.shape[0], 15, replace=False)]
    index = centroid_index(c, False)
    blocks = lloyd.fit_blocks(x)
    parts = [lloyd.lloyd_block(b, lloyd.StepSpec(index, distances=True)) for b in blocks]
    step = lloyd.reduce_blocks(parts)
    cost = lloyd.step_cost(sum(b.sq_norms for b in blocks), step.sums, step.counts, c)
    exact = float(step.dist.astype(np.float64).sum())
    assert cost == pytest.approx(exact, rel=1e-6)
    # a labels-only step gives the same labels and sums, and no distances
    quick = lloyd.reduce_blocks(
        [lloyd.lloyd_block(b, lloyd.StepSpec(index, False)) for b in blocks]
    )
    assert quick.dist is None
    assert np.array_equal(quick.labels, step.labels) and np.array_equal(quick.sums, step.sums)


def test_lloyd_distances_are_the_rows_own(rt_emb):
    """lloyd_steps fills in the last step's distances afterwards: they equal a search's."""
    x = np.ascontiguousarray(pl.read_parquet(rt_emb)["embedding"].to_numpy(), dtype=np.float32)
    c = x[:20].copy()
    cents, sizes, cost, done, history, labels, dist = lloyd.lloyd_steps(
        x, c, iters=5, tol=0.0, spherical=False, rows_are_unit=False
    )
    want_labels, want_dist = assign(x, cents)
    assert np.array_equal(labels, want_labels) and np.array_equal(dist, want_dist)
    assert cost == float(dist.astype(np.float64).sum())
    assert history == sorted(history, reverse=True)  # Lloyd never raises the cost
    assert 1 <= done <= 5 and sizes.sum() == x.shape[0]


def _frames(path, **kw) -> pl.DataFrame:
    _, batches = iter_batches(path, batch_size=70, **kw)
    return pl.concat(list(batches))


def test_parquet_groups_read_by_polars_or_pyarrow_alike(rt_emb, tmp_path, monkeypatch):
    """A row group small enough is decoded by polars, a bigger one streams through pyarrow:
    the same frames either way, row groups selected or not."""
    src = pl.read_parquet(rt_emb).with_columns(
        pl.Series(
            "note", [None if i % 7 else f"n{i}" for i in range(pl.read_parquet(rt_emb).height)]
        )
    )
    path = tmp_path / "groups.parquet"
    src.write_parquet(path, row_group_size=128)
    fast = _frames(path)
    some = _frames(path, row_groups=[1, 3])
    monkeypatch.setattr(tables, "POLARS_GROUP_BYTES", 0)  # every group is "too big" for polars
    slow = _frames(path)
    assert fast.equals(slow) and fast.equals(src)
    assert some.equals(_frames(path, row_groups=[1, 3]))
    assert some.equals(pl.concat([src.slice(128, 128), src.slice(384, 128)]))


def heavy_loaded(statement: str, modules: tuple[str, ...]) -> str:
    """Python code that runs ``statement`` and prints ``heavy [...]``: which of ``modules``
    it loaded (in a fresh interpreter, so nothing earlier has imported them)."""
    return (
        f"import sys\n{statement}\nprint('heavy', [m for m in {modules!r} if m in sys.modules])\n"
    )


def test_package_import_is_lazy_and_every_public_name_resolves():
    code = (
        heavy_loaded(
            "import selectkit as sk",
            ("selectkit.select", "selectkit.disco", "sklearn", "selectkit.cluster"),
        )
        + "missing = [n for n in sk.__all__ if getattr(sk, n, None) is None]\n"
        "print('missing', missing)\n"
        "print('sub', sk.strategies.__name__)\n"
        "import selectkit.select\n"  # a submodule named like a function leaves the function
        "print('select', callable(sk.select) and sk.select.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "heavy []" in out.stdout and "missing []" in out.stdout, out.stdout
    assert "sub selectkit.strategies" in out.stdout and "select select" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-c", "import selectkit; selectkit.no_such_name"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "no attribute 'no_such_name'" in bad.stderr


def test_cli_start_leaves_out_the_modules_only_some_commands_need():
    # every command pays the CLI's imports: scipy.special (0.25 s) and sklearn are for a few
    code = heavy_loaded(
        "import selectkit.cli", ("scipy.special", "scipy.stats", "sklearn", "torch")
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "heavy []" in out.stdout, out.stdout


@pytest.mark.parametrize(
    "env, hugepages_off", [({}, True), ({"NUMPY_MADVISE_HUGEPAGE": "1"}, False)]
)
def test_allocation_policy_and_its_override(env, hugepages_off):
    code = (
        "from selectkit.engine.memory import tune_allocations\n"
        "from numpy._core.multiarray import _set_madvise_hugepage\n"
        "done = tune_allocations()\n"
        "print(done['hugepages_off'], done['mmap_threshold'], _set_madvise_hugepage(True))\n"
    )
    import os

    run_env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"} | env
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=run_env
    )
    off, threshold, before = out.stdout.split()
    assert off == str(hugepages_off)
    assert before == str(not hugepages_off)  # numpy's own flag, as the policy left it
    assert threshold == str(sys.platform.startswith("linux"))


def test_input_fingerprint_is_hashed_beside_the_read(rt_emb, tmp_path):
    """The content hash runs on a thread while the rows are read; the provenance still records
    the file's own fingerprint, and a hashing error reaches the caller, not a lost thread."""
    from selectkit.engine.threads import Background
    from selectkit.io.provenance import read_provenance

    out = tmp_path / "c.parquet"
    cluster_file(rt_emb, out, k=5, seed=1)
    (recorded,) = read_provenance(out)["inputs"]
    assert recorded["fingerprint"] == tables.fingerprint_file(rt_emb)
    assert Background(lambda: 41 + 1).result() == 42
    with pytest.raises(FileNotFoundError):
        Background(lambda: tables.fingerprint_file(tmp_path / "gone.parquet")).result()
