"""`selectkit cluster` on engines: the fit sample drawn per shard, Lloyd over fixed blocks, every
row assigned shard by shard, folder outputs and --resume; the same bytes on every engine.

The vectors are real: the hashing embedder's embeddings of data_samples/ (Rotten Tomatoes and
fortunes, 5,000 texts), split into Parquet parts of uneven sizes in shuffled order.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from selectkit.cli import app
from selectkit.cluster import cluster_file, kmeans
from selectkit.cluster import lloyd_blocks as lloyd
from selectkit.cluster.lloyd_blocks import (
    BlockStats,
    LloydBlock,
    StepSpec,
    lloyd_block,
    reduce_blocks,
)
from selectkit.cluster.search import centroid_index
from selectkit.cluster.shards import ReadSpec
from selectkit.cluster.sources import fit_matrix, plan_input
from selectkit.engine import LocalEngine
from selectkit.io import read_provenance
from selectkit.io.tables import fingerprint_file
from selectkit.rng import derive_rng, derive_salt, id_hashes

from ._same_bytes import assert_same_output
from .conftest import DATA, REPO

SPEC = ReadSpec("embedding", "id", 65536)


@pytest.fixture(scope="module")
def real_vectors(tmp_path_factory) -> Path:
    """5,000 real texts embedded by the CLI (hashing embedder), one Parquet file in id order."""
    root = tmp_path_factory.mktemp("vectors")
    frames = []
    for name in ("rotten_tomatoes", "fortunes"):
        out = root / f"{name}.parquet"
        r = CliRunner().invoke(app, ["-q", "embed", str(DATA / f"{name}.jsonl"), "-o", str(out)])
        assert r.exit_code == 0, r.output
        frames.append(pl.read_parquet(out))
    path = root / "all.parquet"
    pl.concat(frames).sort("id").write_parquet(path, row_group_size=700)
    return path


@pytest.fixture(scope="module")
def parts_glob(real_vectors) -> str:
    """The same rows shuffled and split into four Parquet files of uneven sizes (a quoted glob)."""
    frame = pl.read_parquet(real_vectors)
    frame = frame[np.random.default_rng(3).permutation(frame.height)]
    folder = real_vectors.parent / "parts"
    folder.mkdir()
    bounds = [0, 900, 2300, 2400, frame.height]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        frame[a:b].write_parquet(folder / f"v-{i}.parquet", row_group_size=256)
    return str(folder / "v-*.parquet")


@pytest.fixture
def small_blocks(monkeypatch):
    """Lloyd's blocks of 1,024 rows (the constant is 131,072): the fit runs over 5 blocks."""
    monkeypatch.setattr(lloyd, "LLOYD_BLOCK_ROWS", 1024)


@pytest.fixture(scope="module")
def pool():
    """The local engine with two worker processes."""
    from selectkit.engine import get_engine

    engine = get_engine("local", workers=2)
    yield engine
    engine.close()


def _comparable(prov: dict) -> dict:
    """A provenance without what may differ between engines: timings, the engine, argv."""
    return {k: v for k, v in prov.items() if k not in ("timings", "engine", "argv")} | {
        "metrics": {
            k: v for k, v in prov["metrics"].items() if not k.endswith("_s") and k != "engine"
        }
    }


def _folder_frame(folder: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))])


# ---------------------------------------------------------------------------------------------
# the fit sample


@pytest.mark.parametrize("fit_sample", [None, 1500])
def test_fit_matrix_is_the_same_bytes_whatever_the_sharding(real_vectors, parts_glob, fit_sample):
    here = LocalEngine()
    one = fit_matrix(plan_input(str(real_vectors), SPEC, here), SPEC, here, fit_sample, 4)
    parts = fit_matrix(plan_input(parts_glob, SPEC, here), SPEC, here, fit_sample, 4)
    assert one.x.tobytes() == parts.x.tobytes()
    assert one.rows == parts.rows == 5000 and parts.shard_rows == [900, 1400, 100, 2600]
    # the sample is the rows with the smallest seeded id hashes, in id order
    frame = pl.read_parquet(real_vectors)
    keys = id_hashes(frame["id"], derive_salt(4, "cluster", "fit-sample"))
    chosen = frame[np.argsort(keys)[: fit_sample or frame.height]].sort("id")
    assert np.array_equal(parts.x, chosen["embedding"].to_numpy())


def test_duplicate_ids_across_shards_are_refused(tmp_path, real_vectors, cli):
    frame = pl.read_parquet(real_vectors)
    frame[:300].write_parquet(tmp_path / "a.parquet")
    frame[200:500].write_parquet(tmp_path / "b.parquet")  # rows 200-299 in both files
    for extra in ([], ["--fit-sample", "100"]):
        r = cli("cluster", str(tmp_path / "*.parquet"), "-k", "5", "-o", f"{tmp_path}/o/", *extra)
        assert r.exit_code == 1, r.stderr
        assert "duplicate ids (100 ids repeat" in r.stderr and "fortune-00" in r.stderr
        assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Lloyd over blocks


def test_farthest_rows_merge_exactly_across_blocks(real_vectors):
    """The empty-cluster re-seed takes the farthest rows, ties by row, as one argsort over the
    whole matrix would: here with many exact ties (every row appears three times)."""
    x = pl.read_parquet(real_vectors)["embedding"].to_numpy()[:700]
    x = np.ascontiguousarray(np.repeat(x, 3, axis=0))
    # 4 real centroids and 46 far away: those are empty in every block, so the driver may ask
    # for up to 46 far rows (a cluster empty in the matrix is empty in every block)
    far = np.repeat(x[:1] + 1000.0, 46, axis=0)
    index = StepSpec(centroid_index(np.concatenate([x[:4], far]), False), distances=True)
    from selectkit.engine.base import Handle as Held

    blocks = [LloydBlock("b", s, s + 300, Held(x[s : s + 300])) for s in range(0, x.shape[0], 300)]
    step = reduce_blocks([lloyd_block(b, index) for b in blocks])
    whole = lloyd_block(LloydBlock("all", 0, x.shape[0], Held(x)), index)
    assert isinstance(whole, BlockStats)
    assert np.array_equal(step.labels, whole.labels) and np.array_equal(step.dist, whole.dist)
    assert np.array_equal(step.counts, whole.counts)
    want = np.argsort(-whole.dist, kind="stable")
    assert (step.counts == 0).sum() >= 46
    for count in (1, 2, 3, 7, 46):
        assert np.array_equal(step.farthest(count), want[:count])
    # group_sums adds a chunk's rows in float32 (chunks in float64): equal to that rounding
    scale = np.abs(x).sum(axis=0).max()
    assert np.abs(step.sums - whole.sums).max() < 1e-6 * scale


def test_kmeans_over_blocks_is_the_same_bytes_on_a_process_pool(
    real_vectors, small_blocks, pool, monkeypatch
):
    x = pl.read_parquet(real_vectors)["embedding"].to_numpy()
    here = kmeans(x, 25, rng=derive_rng(1, "k"))
    there = kmeans(x, 25, rng=derive_rng(1, "k"), engine=pool)
    assert here.centroids.tobytes() == there.centroids.tobytes()
    assert here.labels.tobytes() == there.labels.tobytes()
    assert here.distances.tobytes() == there.distances.tobytes()
    assert here.history == there.history and here.iterations == there.iterations > 1
    # the blocked reduction is Lloyd all the same: close to one block's result
    monkeypatch.setattr(lloyd, "LLOYD_BLOCK_ROWS", 1 << 17)
    one = kmeans(x, 25, rng=derive_rng(1, "k"))
    assert np.array_equal(one.labels, here.labels)
    np.testing.assert_allclose(one.centroids, here.centroids, rtol=1e-5, atol=1e-6)


def test_distances_do_not_depend_on_threads(real_vectors):
    from threadpoolctl import threadpool_limits

    from selectkit.cluster import assign

    x = pl.read_parquet(real_vectors)["embedding"].to_numpy()
    c = x[::100]
    a = assign(x, c)
    with threadpool_limits(1):
        b = assign(x, c)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    direct = ((x - c[a[0]]).astype(np.float64) ** 2).sum(1).astype(np.float32)
    assert a[1].tobytes() == direct.tobytes()  # exact per row, not faiss's ||x||^2 + ||c||^2 - 2xc


# ---------------------------------------------------------------------------------------------
# cluster_file: folders, shards, engines


def _centroids_of(out) -> Path:
    return Path(str(out).rstrip("/").removesuffix(".parquet") + ".centroids.parquet")


def _run(inp, out, engine="local", **kw):
    args = dict(k=12, seed=5, centroids_out=_centroids_of(out))
    return cluster_file(inp, out, engine=engine, **(args | kw))


@pytest.mark.parametrize("extra", [{}, {"fit_sample": 3000}, {"levels": [30, 6], "k": None}])
def test_same_bytes_in_process_on_a_pool_and_folder_or_file(
    tmp_path, parts_glob, small_blocks, pool, extra
):
    a = _run(parts_glob, f"{tmp_path}/a/", **extra)
    b = _run(parts_glob, f"{tmp_path}/b/", engine=pool, **extra)
    c = _run(parts_glob, tmp_path / "c.parquet", engine=pool, **extra)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["_selectkit.json", *[f"part-{i:05d}.parquet" for i in range(4)]]
    assert_same_output(tmp_path / "a", tmp_path / "b")
    frame = _folder_frame(tmp_path / "a")
    assert frame.equals(pl.read_parquet(tmp_path / "c.parquet"))
    assert frame.height == 5000 and frame["id"].n_unique() == 5000
    cents = [pq.read_table(tmp_path / f"{n}.centroids.parquet") for n in "abc"]
    assert cents[0].equals(cents[1]) and cents[0].equals(cents[2])
    record = json.loads((tmp_path / "a" / "_selectkit.json").read_text())
    assert _comparable(record["provenance"]) == _comparable(read_provenance(tmp_path / "c.parquet"))
    assert _comparable(a.to_dict()) == _comparable(b.to_dict()) == _comparable(c.to_dict())
    assert a.metrics["rows"] == 5000 and [(s["rows"], s["parts"]) for s in a.inputs] == [(5000, 4)]


def test_one_file_or_shuffled_parts_get_the_same_clusters(tmp_path, real_vectors, parts_glob):
    one = _run(real_vectors, tmp_path / "one.parquet", fit_sample=2000)
    parts = _run(parts_glob, f"{tmp_path}/parts/", fit_sample=2000)
    a = pl.read_parquet(tmp_path / "one.parquet").sort("id")
    b = _folder_frame(tmp_path / "parts").sort("id")
    assert a.equals(b)  # labels and distances: a row's result depends on the row alone
    ca = pq.read_table(tmp_path / "one.centroids.parquet")
    assert ca.equals(pq.read_table(tmp_path / "parts.centroids.parquet"))
    assert one.metrics["fit_inertia"] == parts.metrics["fit_inertia"]
    assert one.metrics["inertia"] == pytest.approx(parts.metrics["inertia"], rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the command line: folders, --resume, errors


def test_cli_folder_output_resume_and_refusals(cli, tmp_path, parts_glob):
    out = tmp_path / "cl"
    args = ["cluster", parts_glob, "-k", "10", "-o", f"{out}/", "--seed", "2"]
    summary = cli.json(*args, "--engine", "local")
    assert summary["rows"] == 5000
    before = {p.name: (p.stat().st_ino, fingerprint_file(p)) for p in out.glob("part-*")}
    frame = _folder_frame(out)
    assert cli(*args, "--resume").exit_code == 0  # every part reused, none rewritten
    after = {p.name: (p.stat().st_ino, fingerprint_file(p)) for p in out.glob("part-*")}
    assert after == before and _folder_frame(out).equals(frame)
    r = cli("cluster", parts_glob, "-k", "11", "-o", f"{out}/", "--seed", "2", "--resume")
    assert r.exit_code == 1 and "cannot resume" in r.stderr and "k" in r.stderr
    assert _folder_frame(out).equals(frame)
    r = cli("cluster", parts_glob, "-k", "10", "-o", tmp_path / "f.parquet", "--resume")
    assert r.exit_code == 2 and "--resume continues a folder output" in r.stderr
    r = cli("cluster", parts_glob, "-k", "10", "-o", tmp_path / "f.parquet", "--engine", "spark")
    assert r.exit_code == 2 and "--engine" in r.stderr
    assert not (tmp_path / "f.parquet").exists()


def _recorded(staging: Path) -> list[str]:
    """The parts the progress record of a staged run vouches for."""
    try:
        record = json.loads((staging / "_selectkit.progress.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [part["name"] for part in record["parts"]]


def _killed_run(tmp_path: Path, args: list[str]) -> None:
    """Start the CLI, SIGKILL it once two parts are recorded (before it finishes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "selectkit", "-q", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    staging = tmp_path / ".big.sk-partial"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_recorded(staging)) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()


def test_killed_run_resumes_to_the_same_bytes(tmp_path, real_vectors):
    """A run killed after some parts: --resume computes only the rest, and the folder equals an
    uninterrupted run's. The input: 24 parts, so the assignment takes a while."""
    frame = pl.read_parquet(real_vectors)[:2500]
    for i in range(24):
        part = frame.with_columns(pl.col("id") + f"-{i}")
        part.write_parquet(tmp_path / f"in-{i:02d}.parquet")
    args = ["cluster", str(tmp_path / "in-*.parquet"), "-k", "300", "--fit-sample", "4000"]
    _killed_run(tmp_path, [*args, "-o", f"{tmp_path / 'big'}/"])
    staging = tmp_path / ".big.sk-partial"
    staged = {name: (staging / name).stat().st_ino for name in _recorded(staging)}
    assert 2 <= len(staged) < 24 and not (tmp_path / "big").exists()
    r = CliRunner().invoke(app, ["-q", *args, "-o", f"{tmp_path / 'big'}/", "--resume"])
    assert r.exit_code == 0, r.output
    reused = {n: (tmp_path / "big" / n).stat().st_ino for n in staged}
    assert reused == staged  # the parts of the killed run were kept, not recomputed
    r = CliRunner().invoke(app, ["-q", *args, "-o", f"{tmp_path / 'fresh'}/"])
    assert r.exit_code == 0, r.output
    for i in range(24):
        name = f"part-{i:05d}.parquet"
        a, b = tmp_path / "big" / name, tmp_path / "fresh" / name
        assert fingerprint_file(a) == fingerprint_file(b), name
    ra = json.loads((tmp_path / "big" / "_selectkit.json").read_text())["provenance"]
    rb = json.loads((tmp_path / "fresh" / "_selectkit.json").read_text())["provenance"]
    assert _comparable(ra) == _comparable(rb)


# ---------------------------------------------------------------------------------------------
# Ray: the same bytes across two nodes


RAY_CASES = [  # few iterations: each is one Ray map over the blocks (about a second here)
    {"fit_sample": 3000, "iters": 6},
    {"levels": [30, 6], "k": None, "resample_steps": 1, "iters": 4},
]


@pytest.mark.parametrize("extra", RAY_CASES)
def test_ray_two_nodes_same_bytes_as_local(tmp_path, parts_glob, small_blocks, ray_cluster, extra):
    local = _run(parts_glob, f"{tmp_path}/local/", **extra)
    ray = _run(parts_glob, f"{tmp_path}/ray/", engine="ray", **extra)
    assert_same_output(tmp_path / "local", tmp_path / "ray")
    assert_same_output(tmp_path / "local.centroids.parquet", tmp_path / "ray.centroids.parquet")
    assert _comparable(local.to_dict()) == _comparable(ray.to_dict())
    record = json.loads((tmp_path / "ray" / "_selectkit.json").read_text())["provenance"]
    assert record["engine"]["engine"] == "ray" and record["engine"]["nodes"] == 2
    assert local.engine == {"engine": "local", "workers": 1}


def test_ray_cli_file_output(cli, tmp_path, parts_glob, ray_cluster):
    out = tmp_path / "r.parquet"
    r = cli("cluster", parts_glob, "-k", "8", "-o", out, "--engine", "ray")
    assert r.exit_code == 0, r.stderr
    r = cli("cluster", parts_glob, "-k", "8", "-o", tmp_path / "l.parquet")
    assert r.exit_code == 0, r.stderr
    assert pl.read_parquet(out).equals(pl.read_parquet(tmp_path / "l.parquet"))


def test_npy_fit_sample_reads_no_vectors_for_the_keys(tmp_path, real_vectors, cli):
    """A .npy's ids are its row numbers: the fit sample of a .npy equals that of the same matrix
    in a Parquet file without ids (row numbers too)."""
    x = pl.read_parquet(real_vectors)["embedding"].to_numpy()
    np.save(tmp_path / "v.npy", x)
    pl.DataFrame({"embedding": x}).write_parquet(tmp_path / "v.parquet", row_group_size=999)
    for name in ("v.npy", "v.parquet"):
        r = cli("cluster", tmp_path / name, "-k", "9", "--fit-sample", "1200", "-o",
                tmp_path / f"{name}.out.parquet", "--centroids", tmp_path / f"{name}.c.parquet")  # fmt: skip
        assert r.exit_code == 0, r.stderr
    a = pl.read_parquet(tmp_path / "v.npy.out.parquet")
    assert a.equals(pl.read_parquet(tmp_path / "v.parquet.out.parquet"))
    assert a["id"].to_list() == list(range(5000))
    assert pq.read_table(tmp_path / "v.npy.c.parquet").equals(
        pq.read_table(tmp_path / "v.parquet.c.parquet")
    )
