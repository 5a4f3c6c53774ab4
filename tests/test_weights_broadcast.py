"""weights broadcast: every pool row gets its nearest coreset row's weight (faiss exact kNN)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selectkit as sk
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from tests.conftest import leftovers


def brute_nearest(pool, core):
    d = ((pool[:, None, :].astype(np.float64) - core[None].astype(np.float64)) ** 2).sum(-1)
    return d


@pytest.fixture
def digits_files(tmp_path, digits):
    x, y = digits
    ids = [f"d{i:04d}" for i in range(len(x))]
    pool = tmp_path / "pool.parquet"
    pl.DataFrame({"id": ids, "embedding": x, "label": y}).write_parquet(pool)
    rows = np.random.default_rng(0).choice(len(x), 90, replace=False)
    w = np.random.default_rng(1).uniform(0.1, 3.0, size=90)
    core = tmp_path / "core.parquet"
    pl.DataFrame({"id": [ids[i] for i in rows], "weight": w}).write_parquet(core)
    return pool, core, x, rows, w, ids


def test_each_row_gets_its_nearest_coreset_weight(tmp_path, digits_files):
    pool, core, x, rows, w, ids = digits_files
    out = tmp_path / "w.parquet"
    summary = sk.broadcast_weights(core, pool, out)
    got = pl.read_parquet(out)
    assert got.columns == ["id", "weight", "source_id"] and got.height == len(x)
    assert got["id"].to_list() == ids
    d = brute_nearest(x, x[rows])
    nearest = d.argmin(1)
    clear = np.sort(d, 1)[:, 1] - np.sort(d, 1)[:, 0] > 1e-4  # no near-tie between two rows
    assert np.allclose(got["weight"].to_numpy()[clear], w[nearest][clear])
    assert (got["source_id"].to_numpy()[clear] == np.array(ids)[rows][nearest][clear]).all()
    # the coreset rows keep their own weight exactly
    own = got.filter(pl.col("id").is_in([ids[i] for i in rows]))
    assert dict(zip(own["id"], own["weight"], strict=True)) == dict(
        zip([ids[i] for i in rows], w, strict=True)
    )
    assert summary["rows"] == len(x) and summary["coreset_rows"] == 90
    prov = sk.read_provenance(out)
    assert prov["command"] == "weights broadcast" and prov["params"]["k"] == 1
    assert [i["path"] for i in prov["inputs"]] == [str(core), str(pool)]


def test_k_nearest_uniform_and_distance_kernels(tmp_path, digits_files):
    pool, core, x, rows, w, _ = digits_files
    d = brute_nearest(x, x[rows])
    knn = np.argsort(d, 1)[:, :5]
    ds = np.sort(d, 1)
    clear = ds[:, 5] - ds[:, 4] > 1e-4  # the 5 nearest are unambiguous (no tie at the edge)
    assert clear.mean() > 0.95
    sk.broadcast_weights(core, pool, tmp_path / "u.parquet", k=5)
    u = pl.read_parquet(tmp_path / "u.parquet")
    assert u.columns == ["id", "weight"]
    assert np.allclose(u["weight"].to_numpy()[clear], w[knn].mean(1)[clear], rtol=1e-6)
    sk.broadcast_weights(core, pool, tmp_path / "d.parquet", k=5, kernel="distance", batch_size=100)
    inv = 1 / (np.sqrt(np.take_along_axis(d, knn, 1)) + 1e-8)
    want = (w[knn] * inv).sum(1) / inv.sum(1)
    got = pl.read_parquet(tmp_path / "d.parquet")["weight"].to_numpy()
    assert np.allclose(got[clear], want[clear], rtol=1e-4)


def test_cli_matches_python_and_reads_the_coresets_own_embeddings(cli, tmp_path, digits_files):
    pool, core, x, rows = digits_files[:4]
    own = tmp_path / "own.jsonl"
    pl.read_parquet(core).with_columns(pl.Series("embedding", x[rows])).write_ndjson(own)
    out = tmp_path / "cli.parquet"
    result = cli("weights", "broadcast", own, pool, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == len(x)
    sk.broadcast_weights(core, pool, tmp_path / "py.parquet")
    assert pl.read_parquet(out).equals(pl.read_parquet(tmp_path / "py.parquet"))


def test_real_embeddings_from_selectkit_embed_through_a_moderate_manifest(cli, tmp_path, rt_emb):
    core = tmp_path / "core.parquet"
    labels = tmp_path / "labels.parquet"
    emb = pl.read_parquet(rt_emb)
    emb.select("id", pl.Series("cluster", np.arange(emb.height) % 4, dtype=pl.Int32)).write_parquet(
        labels
    )
    assert (
        cli("select", rt_emb, labels, "-s", "moderate", "--budget", "10%", "-o", core).exit_code
        == 0
    )
    out = tmp_path / "w.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "selectkit", "-q", "weights", "broadcast", str(core), str(rt_emb),
         "-o", str(out), "--k", "3", "--kernel", "distance"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = pl.read_parquet(out)
    assert got.height == emb.height and (got["weight"] > 0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(0, 10_000), st.data())
def test_k1_on_the_coreset_itself_returns_its_weights_in_any_order(m, seed, data):
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(seed)
    # distinct grid points: every row's nearest coreset row is itself, by a wide margin
    cells = rng.choice(10_000, size=m, replace=False)
    x = np.stack([cells // 100, cells % 100, np.zeros(m)], 1).astype(np.float32)
    w = data.draw(st.lists(st.floats(0, 1e6), min_size=m, max_size=m))
    ids = rng.choice(1_000_000, size=m, replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pl.DataFrame({"id": ids, "embedding": x, "weight": w}).write_parquet(folder / "c.parquet")
        perm = rng.permutation(m)
        pl.DataFrame({"id": ids[perm], "embedding": x[perm]}).write_parquet(folder / "p.parquet")
        sk.broadcast_weights(folder / "c.parquet", folder / "p.parquet", folder / "o.parquet")
        got = pl.read_parquet(folder / "o.parquet")
    assert got["id"].to_list() == ids[perm].tolist()
    assert got["weight"].to_list() == np.asarray(w, dtype=np.float64)[perm].tolist()
    assert got["source_id"].to_list() == ids[perm].tolist()


@pytest.mark.parametrize(
    ("frame", "args", "code", "message"),
    [
        ({"weight": None}, [], 1, "has no column 'weight' (the coreset weights)"),
        ({"weight": [1.0, np.nan]}, [], 1, "non-finite or negative weights (first at id 'd0001'"),
        ({"weight": [1.0, -2.0]}, [], 1, "non-finite or negative"),
        ({"weight": [1.0, 1.0], "id": ["d0000", "zzz"]}, [], 1, "1 ids of"),
        ({"weight": [1.0, 1.0]}, ["--k", "3"], 1, "-k 3 is larger than the coreset"),
        ({"weight": [1.0, 1.0]}, ["--kernel", "cosine"], 2, "--kernel"),
        ({"weight": [1.0, 1.0]}, ["--k", "0"], 2, "--k"),
        ({"weight": [1.0, 1.0]}, ["--weight-col", "w"], 1, "--weight-col"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    cli, tmp_path, digits_files, frame, args, code, message
):
    pool = digits_files[0]
    cols = {"id": frame.get("id", ["d0000", "d0001"])}
    if frame["weight"] is not None:
        cols["weight"] = frame["weight"]
    else:
        cols["w"] = [1.0, 1.0]
    core = tmp_path / "bad.parquet"
    pl.DataFrame(cols).write_parquet(core)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"keep me")  # an existing output is never touched by a failed run
    result = cli("weights", "broadcast", core, pool, "-o", out, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep me" and not leftovers(tmp_path)


def test_python_errors_speak_python(tmp_path, digits_files):
    pool, core = digits_files[:2]
    with pytest.raises(SelectkitUsageError, match="k=0"):
        sk.broadcast_weights(core, pool, tmp_path / "o.parquet", k=0)
    with pytest.raises(SelectkitDataError, match=r"k=91 is larger than the coreset"):
        sk.broadcast_weights(core, pool, tmp_path / "o.parquet", k=91)
    with pytest.raises(SelectkitUsageError, match="is also an input"):
        sk.broadcast_weights(core, pool, pool)
    other = tmp_path / "other.parquet"
    pl.DataFrame({"id": ["d0000"], "weight": [1.0], "embedding": [[0.0, 1.0]]}).write_parquet(other)
    with pytest.raises(SelectkitDataError, match="2-dimensional embeddings but the pool"):
        sk.broadcast_weights(other, pool, tmp_path / "o.parquet")
