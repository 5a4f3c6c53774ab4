"""k-means, fit-on-sample, hierarchical k-means and the cluster command on real files."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from selectkit.cluster import assign, cluster_file, kmeans, lloyd, potential
from selectkit.io import read_provenance
from selectkit.rng import derive_rng

from .conftest import leftovers


def test_lloyd_matches_scikit_learn_from_the_same_start(digits):
    from sklearn.cluster import KMeans

    x = digits[0]
    init = x[:: x.shape[0] // 20][:20].copy()
    ours, _, cost, _, history = lloyd(x, init, iters=300, tol=0.0)
    ref = KMeans(20, init=init, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(x)
    assert abs(cost - ref.inertia_) / ref.inertia_ < 1e-3
    assert np.all(np.diff(history) <= 1e-6 * history[0])  # never increases
    assert abs(potential(x, ours) - cost) / cost < 1e-5


def test_empty_clusters_are_reseeded(digits):
    x = digits[0]
    init = np.repeat(x[:1], 10, axis=0)  # ten identical centroids: nine start empty
    c, sizes, _, _, _ = lloyd(x, init, iters=10, tol=0.0)
    assert (sizes > 0).all()
    assert np.unique(c, axis=0).shape[0] == 10


def test_kmeans_is_reproducible_and_better_than_its_seeds(digits):
    x = digits[0]
    a = kmeans(x, 15, rng=derive_rng(5, "k"))
    b = kmeans(x, 15, rng=derive_rng(5, "k"))
    assert a.centroids.tobytes() == b.centroids.tobytes()
    assert a.inertia < a.seed_cost
    seeds_only = kmeans(x, 15, rng=derive_rng(5, "k"), iters=0)
    assert seeds_only.iterations == 0 and seeds_only.inertia == pytest.approx(
        seeds_only.seed_cost, rel=1e-5
    )


def test_spherical_centroids_are_unit_norm(digits):
    x = digits[0] / np.linalg.norm(digits[0], axis=1, keepdims=True)
    r = kmeans(x, 12, rng=derive_rng(0, "s"), spherical=True)
    np.testing.assert_allclose(np.linalg.norm(r.centroids, axis=1), 1.0, atol=1e-5)
    labels, dist = assign(x, r.centroids, spherical=True)
    direct = ((x - r.centroids[labels]) ** 2).sum(1)
    np.testing.assert_allclose(dist, direct, atol=1e-4)


def test_rs_greedy_lloyd_cost_is_near_greedy(digits):
    """After the same 25 Lloyd iterations, rs-greedy's cost is within 2% of greedy k-means++
    (mean of 8 seeds) and below random init's."""
    x = digits[0]
    cost = {
        m: np.mean([kmeans(x, 30, seeding=m, rng=derive_rng(s, "q")).inertia for s in range(8)])
        for m in ("rs-greedy", "greedy", "random")
    }
    assert cost["rs-greedy"] < 1.02 * cost["greedy"]
    assert cost["rs-greedy"] < cost["random"]


def test_cluster_file_outputs_and_provenance(tmp_path, digits_parquet, digits):
    out, cen = tmp_path / "c.parquet", tmp_path / "cen.parquet"
    prov = cluster_file(digits_parquet, out, k=10, centroids_out=cen, seed=3)
    frame = pl.read_parquet(out)
    assert frame.columns == ["id", "cluster", "distance"]
    assert frame.schema["cluster"] == pl.Int32 and frame.schema["distance"] == pl.Float32
    assert frame.get_column("id").equals(pl.read_parquet(digits_parquet).get_column("id"))
    cents = pl.read_parquet(cen)
    assert cents.columns == ["cluster", "centroid", "size"] and cents.height == 10
    assert cents.get_column("size").sum() == digits[0].shape[0]
    c = cents.get_column("centroid").to_numpy()
    lab = frame.get_column("cluster").to_numpy()
    direct = ((digits[0] - c[lab]) ** 2).sum(1)
    np.testing.assert_allclose(
        frame.get_column("distance").to_numpy(), direct, rtol=1e-3, atol=1e-3
    )
    meta = read_provenance(out)
    assert meta["command"] == "cluster" and meta["seed"] == 3 and meta["params"]["k"] == 10
    assert meta["metrics"]["inertia"] == pytest.approx(prov.metrics["inertia"])
    assert meta["metrics"]["inertia"] == pytest.approx(float(direct.sum()), rel=1e-3)


def test_npy_and_parquet_inputs_agree(tmp_path, digits_npy, digits):
    pl.DataFrame({"embedding": digits[0]}).write_parquet(tmp_path / "v.parquet", row_group_size=100)
    cluster_file(digits_npy, tmp_path / "a.parquet", k=8, seed=1)
    cluster_file(tmp_path / "v.parquet", tmp_path / "b.parquet", k=8, seed=1, batch_size=77)
    a, b = pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    assert a.get_column("cluster").equals(b.get_column("cluster"))
    assert a.get_column("id").to_list() == list(range(digits[0].shape[0]))


def test_fit_sample_streams_every_row(tmp_path, digits_npy, digits):
    out = tmp_path / "c.parquet"
    prov = cluster_file(digits_npy, out, k=10, fit_sample=500, batch_size=128, seed=0)
    frame = pl.read_parquet(out)
    assert frame.height == digits[0].shape[0]
    assert prov.params["fit_rows"] == 500 and prov.metrics["rows"] == digits[0].shape[0]
    full = cluster_file(digits_npy, tmp_path / "f.parquet", k=10, fit_sample=10**9, seed=0)
    assert full.params["fit_rows"] == digits[0].shape[0]
    # fitted on a sample the cost on all rows is still close to fitting on everything
    assert prov.metrics["inertia"] < 1.15 * full.metrics["inertia"]


def test_hierarchical_levels_are_consistent(tmp_path, digits_npy, digits):
    out, cen = tmp_path / "t.parquet", tmp_path / "tc.parquet"
    cluster_file(digits_npy, out, levels=[60, 12, 3], centroids_out=cen, resample_steps=3, seed=0)
    tree = pl.read_parquet(out)
    assert tree.columns == ["id", "cluster", "distance", "cluster_level2", "cluster_level3"]
    cents = pl.read_parquet(cen)
    for level, k in ((1, 60), (2, 12), (3, 3)):
        part = cents.filter(pl.col("level") == level)
        assert part.height == k and part.get_column("size").sum() == digits[0].shape[0]
    parent = dict(cents.filter(pl.col("level") == 1).select("cluster", "parent").iter_rows())
    assert all(parent[a] == b for a, b in tree.select("cluster", "cluster_level2").iter_rows())
    assert cents.filter(pl.col("level") == 3).get_column("parent").to_list() == [-1, -1, -1]


def test_resampling_spreads_centroids_over_the_support():
    """Vo et al.'s point: on data where one region is 20x denser, plain k-means puts most
    centroids in the dense region; resampling moves a larger share to the sparse one."""
    rng = np.random.default_rng(0)
    dense = rng.normal(0, 1, (20000, 2))
    sparse = rng.normal(0, 1, (1000, 2)) + np.array([12.0, 0.0])
    x = np.vstack([dense, sparse]).astype(np.float32)
    from selectkit.cluster.hierarchical import resampled_kmeans

    plain, _ = resampled_kmeans(x, 40, rng=derive_rng(0, "r"), resample_steps=0, sample_size=None)
    spread, _ = resampled_kmeans(x, 40, rng=derive_rng(0, "r"), resample_steps=10, sample_size=None)
    share = lambda r: float((r.centroids[:, 0] > 6).mean())  # noqa: E731
    assert share(spread) >= share(plain) + 0.05


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["-k", "5000"], 1, "larger than the 1797 rows"),
        ([], 2, "either -k"),
        (["-k", "3", "--levels", "3,2"], 2, "either -k"),
        (["--levels", "5,10"], 2, "must decrease"),
        (["--levels", "a,b"], 2, "comma-separated"),
        (["-k", "3", "--embedding-col", "vec"], 1, "no column 'vec'"),
        (["-k", "3", "--seeding", "magic"], 2, "unknown --seeding"),
        (["-k", "3", "--centroids", "c.csv"], 2, "centroids are vectors"),
        (["-k", "3", "-o", "x.npy"], 2, "cannot stream rows"),
    ],
)
def test_cluster_cli_errors(cli, tmp_path, digits_parquet, args, code, fragment):
    out = tmp_path / "c.parquet"
    r = cli("cluster", digits_parquet, "-o", out, *args)
    assert r.exit_code == code, r.stderr
    assert fragment in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_cluster_cli_then_select_carries_clusters(cli, tmp_path, digits_parquet):
    cl, cen = tmp_path / "cl.parquet", tmp_path / "cen.parquet"
    summary = cli.json(
        "cluster", digits_parquet, "-k", "10", "-o", cl, "--centroids", cen, "--seeding", "rs"
    )
    assert summary["rows"] == 1797 and summary["seed_cost"] > summary["inertia"]
    r = cli("cluster", digits_parquet, "-k", "10", "-o", cl, "--centroids", cl)
    assert r.exit_code == 2 and "different file" in r.stderr
    m = tmp_path / "m.parquet"
    assert cli("select", digits_parquet, cl, "-s", "kcenter", "-b", "20", "-o", m).exit_code == 0
    manifest = pl.read_parquet(m).join(pl.read_parquet(cl), on="id", suffix="_cl")
    assert manifest.get_column("cluster").equals(manifest.get_column("cluster_cl"))
    assert (
        cli(
            "cluster", digits_parquet, "-k", "5", "--iters", "0", "-o", tmp_path / "s.parquet"
        ).exit_code
        == 0
    )


def test_cluster_same_seed_same_bytes(tmp_path, digits_npy):
    for name in ("a", "b"):
        cluster_file(
            digits_npy,
            tmp_path / f"{name}.parquet",
            k=9,
            seed=7,
            centroids_out=tmp_path / f"{name}c.parquet",
        )
    assert pl.read_parquet(tmp_path / "a.parquet").equals(pl.read_parquet(tmp_path / "b.parquet"))
    ca = pl.read_parquet(tmp_path / "ac.parquet").get_column("centroid").to_numpy()
    cb = pl.read_parquet(tmp_path / "bc.parquet").get_column("centroid").to_numpy()
    assert ca.tobytes() == cb.tobytes()


def test_failed_centroids_write_leaves_no_output(cli, tmp_path, digits_npy):
    out = tmp_path / "keep.parquet"
    out.write_bytes(b"old")
    r = cli("cluster", digits_npy, "-k", "3", "-o", out, "--centroids", tmp_path / "c.txt")
    assert r.exit_code == 2 and out.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_degenerate_data_all_rows_identical(cli, tmp_path, digits):
    same = np.repeat(digits[0][:1], 200, axis=0)
    np.save(tmp_path / "same.npy", same)
    for seeding in ("rs-greedy", "rs", "kmeans++", "greedy", "afkmc2", "random"):
        r = cli(
            "cluster",
            tmp_path / "same.npy",
            "-k",
            "5",
            "--seeding",
            seeding,
            "-o",
            tmp_path / "o.parquet",
        )
        assert r.exit_code == 0, (seeding, r.stderr)
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "selectkit",
            "cluster",
            str(tmp_path / "same.npy"),
            "-k",
            "5",
            "-o",
            str(tmp_path / "o.parquet"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "4 of 5 clusters are empty" in proc.stderr


def test_stdin_and_bad_parquet_ids(cli, tmp_path, digits):
    rows = "".join(
        f'{{"id": "r{i}", "embedding": {v.tolist()}}}\n' for i, v in enumerate(digits[0][:60])
    )
    r = cli("cluster", "-", "-k", "4", "-o", tmp_path / "o.parquet", input=rows)
    assert r.exit_code == 0, r.stderr
    assert pl.read_parquet(tmp_path / "o.parquet").get_column("id").to_list()[:2] == ["r0", "r1"]
    pl.DataFrame({"id": [None, *range(1, 60)], "embedding": digits[0][:60]}).write_parquet(
        tmp_path / "n.parquet"
    )
    r = cli("cluster", tmp_path / "n.parquet", "-k", "4", "-o", tmp_path / "p.parquet")
    assert r.exit_code == 1 and "null in 1 rows" in r.stderr
    pl.DataFrame({"id": np.arange(60, dtype=float), "embedding": digits[0][:60]}).write_parquet(
        tmp_path / "f.parquet"
    )
    r = cli("cluster", tmp_path / "f.parquet", "-k", "4", "-o", tmp_path / "p.parquet")
    assert r.exit_code == 1 and "integers or strings" in r.stderr
    assert not (tmp_path / "p.parquet").exists()


def test_spherical_runs_on_unnormalised_rows(digits):
    """Cosine k-means on raw rows: the result equals running it on the unit rows, and it does
    not stop after two iterations because of the constant norm term."""
    x = digits[0] * np.linspace(1, 5, digits[0].shape[0], dtype=np.float32)[:, None]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    a = kmeans(x, 20, rng=derive_rng(0, "s"), spherical=True, tol=1e-4)
    b = kmeans(unit, 20, rng=derive_rng(0, "s"), spherical=True, tol=1e-4)
    np.testing.assert_allclose(a.centroids, b.centroids, atol=1e-5)
    assert a.iterations > 2


def test_output_layout_does_not_depend_on_batch_size(tmp_path, digits_npy):
    cluster_file(digits_npy, tmp_path / "a.parquet", k=5, batch_size=7)
    cluster_file(digits_npy, tmp_path / "b.parquet", k=5, batch_size=100000)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 1
    a, b = pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    assert a.get_column("cluster").equals(b.get_column("cluster"))


def test_sample_size_per_level(cli, tmp_path, digits_npy):
    out = tmp_path / "t.parquet"
    summary = cli.json(
        "cluster",
        digits_npy,
        "--levels",
        "40,8",
        "--resample-steps",
        "2",
        "--sample-size",
        "5,1",
        "-o",
        out,
    )
    assert summary["rows"] == 1797
    from selectkit.io import read_provenance

    assert read_provenance(out)["params"]["sample_size"] == [5, 1]
    r = cli(
        "cluster",
        digits_npy,
        "--levels",
        "40,8",
        "--sample-size",
        "5,1,1",
        "-o",
        tmp_path / "u.parquet",
    )
    assert r.exit_code == 2 and "one per level" in r.stderr
    r = cli(
        "cluster",
        digits_npy,
        "--levels",
        "40,8",
        "--sample-size",
        "x",
        "-o",
        tmp_path / "u.parquet",
    )
    assert r.exit_code == 2 and "--sample-size" in r.stderr


def test_sample_size_one_skips_resampling(digits):
    from selectkit.cluster.hierarchical import resampled_kmeans

    x = digits[0]
    a, _ = resampled_kmeans(x, 10, rng=derive_rng(0, "r"), resample_steps=5, sample_size=1)
    b, _ = resampled_kmeans(x, 10, rng=derive_rng(0, "r"), resample_steps=0, sample_size=None)
    assert a.centroids.tobytes() == b.centroids.tobytes()
