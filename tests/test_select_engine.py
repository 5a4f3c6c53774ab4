"""``select --engine local|ray``: every strategy gives the same manifest and provenance (apart
from timings and the engine record) on the local engine and on a real two-node Ray cluster;
the row-local scored strategies score per shard and merge a top-k (ties by id) exactly; the
others read the pool on the driver on either engine. Real data (digits, Rotten Tomatoes text)
through the CLI and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selectkit.errors import SelectkitDataError
from selectkit.io import read_provenance
from selectkit.select import select_files
from selectkit.strategies import get_strategy, list_strategies
from selectkit.testing import example_frame, wide_frame
from tests._same_bytes import assert_same_output

pytestmark = pytest.mark.ray

SCORED = ["least-confidence", "margin", "entropy", "bald"]


@pytest.fixture(scope="module")
def address(ray_cluster) -> str:
    return ray_cluster.address


def same_bytes(a, b) -> None:
    """Same data bytes and stable provenance (``tests/_same_bytes``); a ran locally, b on Ray."""
    assert_same_output(a, b)
    assert read_provenance(a)["engine"]["engine"] == "local"
    assert read_provenance(b)["engine"]["engine"] == "ray"


def _budget(name: str):
    return None if get_strategy(name).self_sized else 40


@pytest.mark.parametrize("name", [s.name for s in list_strategies()])
def test_every_strategy_gives_the_same_bytes_on_local_and_ray(tmp_path, address, name):
    spec = get_strategy(name)
    pool = tmp_path / "pool.parquet"
    example_frame(name).write_parquet(pool)
    kwargs = dict(strategy=name, budget=_budget(name), seed=7, params=spec.example_params())
    select_files([pool], tmp_path / "local.parquet", **kwargs)
    select_files([pool], tmp_path / "ray.parquet", engine="ray", ray_address=address, **kwargs)
    same_bytes(tmp_path / "local.parquet", tmp_path / "ray.parquet")


# -------------------------------------------------------------------- per-shard scoring


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The example pool without embeddings (so no coverage metric needs the whole pool), as one
    file and as four part files holding the rows in a shuffled order, 50 rows labelled."""
    folder = tmp_path_factory.mktemp("shards")
    frame = wide_frame().drop("embedding", "text")
    labels = pl.Series(
        "label", [int(v) if i < 50 else None for i, v in enumerate(frame["cluster"])]
    )
    frame = frame.with_columns(labels)
    frame.write_parquet(folder / "pool.parquet")
    parts = folder / "parts"
    parts.mkdir()
    perm = np.random.default_rng(0).permutation(frame.height)
    for i in range(4):
        frame[perm[i::4]].write_parquet(parts / f"part-{i:05d}.parquet")
    return folder


@pytest.mark.parametrize("name", SCORED)
@pytest.mark.parametrize("budget", ["60", "7%"])
def test_scored_strategies_score_per_shard_and_merge_exactly(cli, shards, address, name, budget):
    whole = shards / "whole.parquet"
    res = cli("select", shards / "pool.parquet", "-s", name, "-b", budget, "-o", whole)
    assert res.exit_code == 0, res.stderr
    out = shards / f"{name}-{budget}.parquet"
    glob = str(shards / "parts" / "*.parquet")
    res = cli("select", glob, "-s", name, "-b", budget, "-o", out, "--engine", "ray",
              "--ray-address", address)  # fmt: skip
    assert res.exit_code == 0, res.stderr
    # the same picks, ranks and scores as on the whole pool in one file
    assert pl.read_parquet(out).equals(pl.read_parquet(whole))
    prov = read_provenance(out)
    # each part was read by its own kernel: the inputs record lists every part
    assert [s["path"].rsplit("/", 1)[-1] for s in prov["inputs"]] == [
        f"part-{i:05d}.parquet" for i in range(4)
    ]
    assert sum(s["rows"] for s in prov["inputs"]) == 1797
    assert prov["metrics"]["selectable_rows"] == 1797 - 50
    local = shards / f"{name}-{budget}-local.parquet"
    res = cli("select", glob, "-s", name, "-b", budget, "-o", local, "--engine", "local")
    assert res.exit_code == 0, res.stderr
    same_bytes(local, out)


def test_ties_across_shards_go_to_the_smaller_id(tmp_path, address):
    # 300 rows in 3 shards, every score tied in threes across shards: the top-k must take the
    # tied rows in ascending id order, as on one machine
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [0.9, 0.1]])
    ids = np.arange(300)
    rows = probs[ids % 3]
    frame = pl.DataFrame({"id": ids, "proba": rows.tolist()})
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        frame.filter(pl.col("id") % 3 == (i + 1) % 3).write_parquet(parts / f"part-{i:05d}.parquet")
    frame.write_parquet(tmp_path / "one.parquet")
    select_files([tmp_path / "one.parquet"], tmp_path / "a.parquet", strategy="margin", budget=150)
    select_files(
        [parts], tmp_path / "b.parquet", strategy="margin", budget=150, engine="ray",
        ray_address=address,
    )  # fmt: skip
    a, b = pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    assert a.equals(b)
    # the 100 rows scoring 1.0 (ids 0, 3, ...) first, then ids 1, 4, ... up to 148
    assert b["id"].to_list() == list(range(0, 300, 3)) + list(range(1, 150, 3))


def test_labelled_rows_are_never_picked_and_all_labelled_is_named(tmp_path, shards, address):
    out = tmp_path / "m.parquet"
    select_files([shards / "parts"], out, strategy="entropy", budget="100%", engine="ray",
                 ray_address=address)  # fmt: skip
    picked = set(pl.read_parquet(out)["id"])
    labelled = set(
        pl.read_parquet(shards / "pool.parquet").filter(pl.col("label").is_not_null())["id"]
    )
    assert len(picked) == 1797 - 50 and not picked & labelled
    with pytest.raises(SelectkitDataError, match="already labelled: column 'cluster'"):
        select_files([shards / "parts"], out, strategy="margin", budget=5, labelled_col="cluster",
                     engine="ray", ray_address=address)  # fmt: skip


def test_a_bad_shard_is_named(cli, tmp_path, shards, address):
    parts = tmp_path / "parts"
    parts.mkdir()
    for p in sorted((shards / "parts").iterdir()):
        (parts / p.name).write_bytes(p.read_bytes())
    bad = pl.read_parquet(parts / "part-00002.parquet")
    bad = bad.with_columns(pl.Series("proba", [[2.0] + [0.0] * 9] * bad.height))
    bad.write_parquet(parts / "part-00002.parquet")
    out = tmp_path / "m.parquet"
    res = cli("select", parts, "-s", "margin", "-b", "5", "-o", out, "--engine", "ray",
              "--ray-address", address)  # fmt: skip
    assert res.exit_code == 1
    assert "part-00002.parquet" in res.stderr and "not a probability distribution" in res.stderr
    assert "part-00001" not in res.stderr and not out.exists()


def test_an_id_in_two_shards_is_refused(tmp_path, shards, address):
    parts = tmp_path / "parts"
    parts.mkdir()
    frame = pl.read_parquet(shards / "pool.parquet")
    frame.head(100).write_parquet(parts / "part-00000.parquet")
    frame.slice(99).write_parquet(parts / "part-00001.parquet")  # d0099 in both
    # rank the repeated row first: its margin is made the largest
    with pytest.raises(SelectkitDataError, match="occurs in more than one shard"):
        select_files([parts], tmp_path / "m.parquet", strategy="margin", budget="100%",
                     engine="ray", ray_address=address)  # fmt: skip


def test_an_id_in_two_shards_is_refused_even_when_it_is_not_picked(tmp_path, shards):
    parts = tmp_path / "parts"
    parts.mkdir()
    frame = pl.read_parquet(shards / "pool.parquet")
    frame.head(100).write_parquet(parts / "part-00000.parquet")
    frame.slice(99).write_parquet(parts / "part-00001.parquet")  # d0099 in both
    with pytest.raises(SelectkitDataError, match=r"id 'd0099' occurs in more than one shard"):
        select_files([parts], tmp_path / "m.parquet", strategy="margin", budget=1)
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize(
    "extra",
    [
        {"stochastic": "softmax", "coldness": 2.0},  # sampled on the driver (softrank: ranks)
        {"metrics": True, "with_embedding": True},  # coverage needs the whole pool
    ],
)
def test_pool_wide_calls_read_the_pool_on_the_driver_with_the_same_bytes(tmp_path, address, extra):
    extra = dict(extra)
    frame = wide_frame() if extra.pop("with_embedding", False) else wide_frame().drop("embedding")
    pool = tmp_path / "pool.parquet"
    frame.write_parquet(pool)
    select_files([pool], tmp_path / "local.parquet", strategy="entropy", budget=30, seed=3,
                 **extra)  # fmt: skip
    select_files([pool], tmp_path / "ray.parquet", strategy="entropy", budget=30, seed=3,
                 engine="ray", ray_address=address, **extra)  # fmt: skip
    same_bytes(tmp_path / "local.parquet", tmp_path / "ray.parquet")
    prov = read_provenance(tmp_path / "ray.parquet")
    assert [s["path"] for s in prov["inputs"]] == [str(pool)]
    if "stochastic" in extra:
        assert prov["params"]["acquisition"] == {"stochastic": "softmax", "coldness": 2.0}
    else:
        assert "coverage_mean_distance" in prov["metrics"]


def test_json_summary_and_python_api_agree_on_ray(cli, tmp_path, shards, address):
    out = tmp_path / "cli.parquet"
    res = cli("select", shards / "parts", "-s", "bald", "-b", "12", "-o", out, "--engine",
              "ray", "--ray-address", address, "--json")  # fmt: skip
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["selected_rows"] == 12 and summary["pool_rows"] == 1797
    prov = select_files([shards / "parts"], tmp_path / "py.parquet", strategy="bald", budget=12)
    assert prov.metrics == read_provenance(out)["metrics"]
    assert pl.read_parquet(out).equals(pl.read_parquet(tmp_path / "py.parquet"))


# -------------------------------------------------------------------- scores -o DIR/


def test_scores_folder_output_is_the_same_on_both_engines_and_reads_back(
    cli, tmp_path, digits_parquet, address, monkeypatch
):
    import selectkit.dynamics as dynamics
    from selectkit.dynamics import scores_file
    from selectkit.io.dataset import dataset_parts
    from selectkit.pool import Columns

    cols = Columns(label="digit")
    scores_file([digits_parquet], tmp_path / "dyn.parquet", epochs=3, columns=cols)
    monkeypatch.setattr(dynamics, "PART_ROWS", 500)  # four parts of the 1,797 rows
    scores_file([digits_parquet], f"{tmp_path}/local/", epochs=3, columns=cols)
    scores_file([digits_parquet], f"{tmp_path}/ray/", epochs=3, columns=cols, engine="ray",
                ray_address=address)  # fmt: skip
    assert_same_output(tmp_path / "local", tmp_path / "ray")
    parts = [Path(p) for p in dataset_parts(tmp_path / "local")]
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert [pl.read_parquet(p).height for p in parts] == [500, 500, 500, 297]
    whole = pl.read_parquet(tmp_path / "dyn.parquet")
    assert pl.concat([pl.read_parquet(p) for p in parts]).equals(whole)
    record = json.loads((tmp_path / "ray" / "_selectkit.json").read_text())
    assert record["provenance"]["engine"]["engine"] == "ray"
    # the folder is one input: select reads it as it reads the file
    for name, dyn in (("from-file", tmp_path / "dyn.parquet"), ("from-folder", tmp_path / "ray")):
        res = cli("select", digits_parquet, dyn, "-s", "topk", "--score-col", "el2n",
                  "--label-col", "digit", "-b", "50", "-o", tmp_path / f"{name}.parquet")  # fmt: skip
        assert res.exit_code == 0, res.stderr
    a = pl.read_parquet(tmp_path / "from-file.parquet")
    assert a.equals(pl.read_parquet(tmp_path / "from-folder.parquet")) and a.height == 50


def test_scores_cli_writes_a_folder(cli, tmp_path, digits_parquet):
    out = f"{tmp_path}/dyn/"
    res = cli("scores", digits_parquet, "--label-col", "digit", "--epochs", "2", "-o", out)
    assert res.exit_code == 0, res.stderr
    frame = pl.read_parquet(tmp_path / "dyn" / "part-00000.parquet")
    assert frame.columns == ["id", "aum", "forgetting", "el2n", "loss"] and frame.height == 1797
    prov = read_provenance(tmp_path / "dyn" / "part-00000.parquet")
    assert prov["command"] == "scores" and prov["engine"] == {"engine": "local", "workers": 1}
    # a file where the folder should go is refused before training
    (tmp_path / "taken").write_text("x")
    res = cli("scores", digits_parquet, "--label-col", "digit", "-o", f"{tmp_path}/taken/")
    assert res.exit_code == 2 and "is a file" in res.stderr


def test_inputs_sharded_alike_are_joined_per_shard_else_on_the_driver(tmp_path, shards, address):
    frame = pl.read_parquet(shards / "pool.parquet")
    preds, meta, other = (tmp_path / n for n in ("preds", "meta", "other"))
    for folder in (preds, meta, other):
        folder.mkdir()
    for i in range(3):
        frame[i::3].select("id", "proba").write_parquet(preds / f"part-{i:05d}.parquet")
        frame[i::3].select("id", "label", "cluster").write_parquet(meta / f"part-{i:05d}.parquet")
        # the same rows, dealt to other parts: shard i of preds/ has no partner in other/
        rows = frame[(i + 1) % 3 :: 3].select("id", "label", "cluster")
        rows.write_parquet(other / f"part-{i:05d}.parquet")
    frame.write_parquet(tmp_path / "one.parquet")
    select_files([tmp_path / "one.parquet"], tmp_path / "one-m.parquet", strategy="margin",
                 budget=40)  # fmt: skip
    expected = pl.read_parquet(tmp_path / "one-m.parquet")
    assert "cluster" in expected.columns
    aligned = select_files([preds, meta], tmp_path / "aligned.parquet", strategy="margin",
                           budget=40, engine="ray", ray_address=address)  # fmt: skip
    assert pl.read_parquet(tmp_path / "aligned.parquet").equals(expected)
    # joined shard by shard: every part of both folders was read by a kernel
    assert len(aligned.inputs) == 6 and sum(s["rows"] for s in aligned.inputs) == 2 * 1797
    crossed = select_files([preds, other], tmp_path / "crossed.parquet", strategy="margin",
                           budget=40, engine="ray", ray_address=address)  # fmt: skip
    assert pl.read_parquet(tmp_path / "crossed.parquet").equals(expected)
    # joined on the driver: the folders are the inputs, as load_pool records them
    assert [s["path"] for s in crossed.inputs] == [str(preds), str(other)]
    local = select_files([preds, other], tmp_path / "crossed-local.parquet", strategy="margin",
                         budget=40)  # fmt: skip
    assert local.inputs == crossed.inputs
    same_bytes(tmp_path / "crossed-local.parquet", tmp_path / "crossed.parquet")


@pytest.mark.parametrize("budget, message", [("0", "selects nothing"), ("9999", "larger than")])
def test_a_bad_budget_is_refused_on_ray(cli, shards, tmp_path, address, budget, message):
    out = tmp_path / "m.parquet"
    res = cli("select", shards / "parts", "-s", "entropy", "-b", budget, "-o", out, "--engine",
              "ray", "--ray-address", address)  # fmt: skip
    assert res.exit_code == (2 if budget == "0" else 1), res.stderr
    assert message in res.stderr and not out.exists()
