"""DSIR on the engines (issue 13 item 5): the two passes as shard kernels, merged exactly on the
driver, give the same manifest and provenance (apart from timings and the engine record) in this
process, on a local pool of two processes and on a real two-node Ray cluster. Real text from
data_samples/ (Rotten Tomatoes and fortunes) cut into gzip JSONL shards, through the CLI and the
Python API: document and token budgets, two targets with quotas, draws with replacement, id-less
shards with a saved model, corrupt shards, and the per-shard candidate bound."""

from __future__ import annotations

import gzip
import json

import numpy as np
import polars as pl
import pytest

from selectkit.dsir.kernels import SelectSpec, select_shard
from selectkit.dsir.merge import CandidateMerge
from selectkit.dsir.pipeline import DsirSettings, run_dsir
from selectkit.dsir.resample import Reservoir
from selectkit.dsir.sources import Corpus, Reading
from selectkit.dsir.weigh import FeatureConfig
from selectkit.engine import get_engine
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io import read_provenance
from selectkit.rng import derive_rng
from selectkit.select import select_files
from tests._same_bytes import assert_same_output, stable
from tests.conftest import FORTUNES, RT

SHARDS = 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(folder, shard paths with ids, id-less shard paths, target path, raw frame): the pool
    mixes Rotten Tomatoes reviews, 35 of its plot synopses and fortunes; the target is 100
    other synopses."""
    folder = tmp_path_factory.mktemp("dsir-engine")
    rt = pl.read_ndjson(RT).select("id", "text", "label")
    plots = rt.filter(pl.col("label") == "plot")
    plots.head(100).select("text").write_ndjson(folder / "target.jsonl")
    fortunes = pl.read_ndjson(FORTUNES).select("id", "text", pl.lit("fortune").alias("label"))
    raw = pl.concat([rt.filter(pl.col("label") != "plot"), plots.slice(100), fortunes])
    raw = raw.sample(fraction=1.0, shuffle=True, seed=4)  # synopses in every shard
    with_ids, no_ids = [], []
    for i, part in enumerate(np.array_split(np.arange(raw.height), SHARDS)):
        for name, cols, out in (("part", ["id", "text"], with_ids), ("noid", ["text"], no_ids)):
            path = folder / f"{name}-{i}.jsonl.gz"
            with gzip.open(path, "wb") as f:
                raw[part].select(cols).write_ndjson(f)
            out.append(path)
    return folder, with_ids, no_ids, folder / "target.jsonl", raw


def _read_shards(paths) -> pl.DataFrame:
    return pl.concat([pl.read_ndjson(gzip.decompress(p.read_bytes())) for p in paths])


def _engines(address: str | None):
    """(name, select_files engine arguments): this process, a local pool of 2, Ray."""
    runs = [("inline", {}), ("pool", {"engine": get_engine("local", workers=2)})]
    if address is not None:
        runs.append(("ray", {"engine": "ray", "ray_address": address}))
    return runs


def _select_everywhere(tmp_path, inputs, address, budget=150, **params):
    """The same selection on every engine; returns the output paths by engine name."""
    outs = {}
    for name, kwargs in _engines(address):
        out = tmp_path / f"{name}.parquet"
        try:
            select_files(
                list(map(str, inputs)),
                out,
                strategy="dsir",
                budget=budget,
                seed=11,
                params=params,
                **kwargs,
            )
        finally:
            if name == "pool":
                kwargs["engine"].close()
        outs[name] = out
    return outs


def _same_everywhere(outs) -> pl.DataFrame:
    first = outs["inline"]
    for out in list(outs.values())[1:]:
        assert_same_output(first, out)
    return pl.read_parquet(first)


# -- same bytes on every engine -----------------------------------------------------------------


@pytest.mark.ray
def test_document_budget_same_bytes_inline_pool_and_two_ray_nodes(corpus, tmp_path, ray_cluster):
    _, shards, _, target, raw = corpus
    outs = _select_everywhere(tmp_path, shards, ray_cluster.address, target=[str(target)])
    manifest = _same_everywhere(outs)
    assert manifest.height == 150 and manifest.get_column("id").n_unique() == 150
    labels = manifest.join(raw, on="id").get_column("label")
    assert (labels == "plot").mean() > 5 * (raw.get_column("label") == "plot").mean()
    ray_engine = read_provenance(outs["ray"])["engine"]
    assert ray_engine["engine"] == "ray" and ray_engine["nodes"] == 2
    assert read_provenance(outs["inline"])["engine"] == {"engine": "local", "workers": 1}
    prov = read_provenance(outs["pool"])
    assert prov["engine"] == {"engine": "local", "workers": 2}
    assert prov["inputs"][0]["path"] == str(shards[0]) and len(prov["inputs"]) == SHARDS
    assert prov["metrics"]["pool_rows"] == raw.height


@pytest.mark.ray
def test_token_budget_two_targets_and_quotas_same_bytes(corpus, tmp_path, ray_cluster):
    _, shards, _, target, _ = corpus
    targets = [str(target), str(FORTUNES)]
    outs = _select_everywhere(
        tmp_path,
        shards,
        ray_cluster.address,
        budget=None,
        target=targets,
        budget_tokens=20_000,
        quotas="0.6,0.4",
        min_tokens=5,
    )
    manifest = _same_everywhere(outs)
    prov = read_provenance(outs["ray"])
    assert prov["metrics"]["target_quotas"] == [12_000, 8_000]
    assert prov["metrics"]["selected_tokens"] >= 20_000
    assert set(manifest.get_column("target")) == set(targets)
    assert manifest.get_column("id").n_unique() == manifest.height  # without replacement


@pytest.mark.ray
def test_with_replacement_same_bytes_on_every_engine(corpus, tmp_path, ray_cluster):
    _, shards, _, target, _ = corpus
    outs = _select_everywhere(
        tmp_path, shards, ray_cluster.address, budget=300, target=[str(target)],
        with_replacement=True, smoothing=50.0,
    )  # fmt: skip
    manifest = _same_everywhere(outs)
    weights = manifest.get_column("weight").to_numpy()
    assert weights.sum() == 300 and manifest.height > 1


@pytest.mark.ray
def test_id_less_shards_with_a_saved_model_count_rows_then_weigh(corpus, tmp_path, ray_cluster):
    """A saved model and a count budget need no pass 1, but id-less documents are numbered
    across the shards: the rows are counted first, on every engine, to the same manifest."""
    _, shards, no_ids, target, _ = corpus
    model = tmp_path / "model.npz"
    select_files(
        list(map(str, no_ids)), tmp_path / "fit.parquet", strategy="dsir", budget=5,
        params={"target": [str(target)], "save_model": str(model)},
    )  # fmt: skip
    outs = _select_everywhere(tmp_path, no_ids, ray_cluster.address, budget=80, model=str(model))
    manifest = _same_everywhere(outs)
    timings = read_provenance(outs["ray"])["timings"]
    assert "count_rows_s" in timings and "fit_raw_s" not in timings
    # the same documents with ids: the manifest's row numbers are the id-less run's ids
    ids = _read_shards(shards).get_column("id")
    with_ids = tmp_path / "ids.parquet"
    select_files(
        list(map(str, shards)), with_ids, strategy="dsir", budget=80, seed=11,
        params={"model": str(model)},
    )  # fmt: skip
    assert "count_rows_s" not in read_provenance(with_ids)["timings"]  # ids: one pass
    picked = ids.gather(manifest.get_column("id")).to_list()
    assert len(set(picked) & set(pl.read_parquet(with_ids).get_column("id"))) > 0


@pytest.mark.ray
def test_cli_engine_ray_with_address_from_the_environment(cli, corpus, tmp_path, ray_cluster):
    """The issue's command: a quoted glob of shards, --budget-tokens, --engine ray (the address
    from RAY_ADDRESS, which the cluster fixture exports), against --engine local."""
    folder, _, _, target, _ = corpus
    args = ["select", str(folder / "part-*.jsonl.gz"), "--strategy", "dsir", "--target", target,
            "--budget-tokens", "15000", "--seed", "3"]  # fmt: skip
    local = cli.json(*args, "-o", tmp_path / "local.parquet")
    remote = cli.json(*args, "--engine", "ray", "-o", tmp_path / "ray.parquet")
    local.pop("output"), remote.pop("output")
    assert stable(local) == stable(remote) and remote["selected_tokens"] >= 15_000
    assert_same_output(tmp_path / "local.parquet", tmp_path / "ray.parquet")
    r = cli(*args, "--engine", "ray", "--workers", "2", "-o", tmp_path / "w.parquet")
    assert r.exit_code == 2 and "drop it" in r.stderr and "--workers" in r.stderr
    assert not (tmp_path / "w.parquet").exists()


def test_cli_workers_two_same_manifest_as_one(cli, corpus, tmp_path):
    """DSIR's --workers keeps its meaning on the local engine (processes on this machine)."""
    _, shards, _, target, _ = corpus
    args = ["select", *shards, "-s", "dsir", "--target", target, "-b", "60"]
    cli.json(*args, "--workers", "1", "-o", tmp_path / "one.parquet")
    cli.json(*args, "--workers", "2", "-o", tmp_path / "two.parquet")
    one, two = (read_provenance(tmp_path / f"{n}.parquet") for n in ("one", "two"))
    assert two["engine"] == {"engine": "local", "workers": 2}
    for prov in (one, two):  # the option the user changed, and what depends on the run
        prov["params"]["strategy_params"].pop("workers")
    assert stable(one) == stable(two)
    assert pl.read_parquet(tmp_path / "one.parquet").equals(
        pl.read_parquet(tmp_path / "two.parquet")
    )


def test_budget_tokens_takes_an_exponent_on_the_cli(cli, corpus, tmp_path):
    """The issue's `--budget-tokens 5e9` form: an exact integer with an exponent is that
    integer; one that is not an integer is refused (exit 2)."""
    _, shards, _, target, _ = corpus
    args = ["select", *shards, "-s", "dsir", "--target", target]
    cli.json(*args, "--budget-tokens", "1.2e4", "-o", tmp_path / "e.parquet")
    cli.json(*args, "--budget-tokens", "12000", "-o", tmp_path / "n.parquet")
    assert_same_output(tmp_path / "e.parquet", tmp_path / "n.parquet")
    r = cli(*args, "--budget-tokens", "1.5e-3", "-o", tmp_path / "x.parquet")
    assert r.exit_code == 2 and "budget_tokens" in r.stderr


# -- corrupt shards -----------------------------------------------------------------------------


@pytest.fixture
def corrupt(corpus, tmp_path):
    """The shards with a truncated gzip member as shard 2, and a broken JSON line in shard 3."""
    _, shards, _, _, _ = corpus
    bad_gz = tmp_path / "part-2.jsonl.gz"
    bad_gz.write_bytes(shards[2].read_bytes()[:-200])
    lines = gzip.decompress(shards[3].read_bytes()).splitlines()
    lines[40] = b'{"id": "broken", "text": "no closing quote}'
    bad_json = tmp_path / "part-3.jsonl.gz"
    bad_json.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return shards, bad_gz, bad_json


@pytest.mark.parametrize("engine", ["local", pytest.param("ray", marks=pytest.mark.ray), "pool"])
def test_a_corrupt_shard_is_an_error_naming_that_file(cli, corpus, corrupt, tmp_path, engine):
    _, _, _, target, _ = corpus
    shards, bad_gz, bad_json = corrupt
    extra = {"local": [], "ray": ["--engine", "ray"], "pool": ["--workers", "2"]}[engine]
    for bad, at in ((bad_gz, 2), (bad_json, 3)):
        inputs = [*shards[:at], bad, *shards[at + 1 :]]
        out = tmp_path / "m.parquet"
        r = cli("select", *inputs, "-s", "dsir", "--target", target, "-b", "20", *extra, "-o", out)
        assert r.exit_code == 1, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(bad) in lines[0], r.stderr
        assert "internal error" not in r.stderr and not out.exists()


@pytest.mark.ray
def test_a_corrupt_shard_from_python_on_ray_names_the_file(corpus, corrupt, tmp_path, ray_cluster):
    _, _, _, target, _ = corpus
    shards, bad_gz, _ = corrupt
    with pytest.raises(SelectkitDataError, match=str(bad_gz)):
        select_files(
            [*map(str, shards[:2]), str(bad_gz)], tmp_path / "m.parquet", strategy="dsir",
            budget=10, params={"target": [str(target)]}, engine="ray",
            ray_address=ray_cluster.address,
        )  # fmt: skip


def test_workers_with_an_engine_of_its_own_is_a_usage_error(corpus, tmp_path):
    _, shards, _, target, _ = corpus
    pool = get_engine("local", workers=2)
    try:
        with pytest.raises(SelectkitUsageError, match=r"params=\{'workers'.*drop it"):
            select_files(
                list(map(str, shards)), tmp_path / "m.parquet", strategy="dsir", budget=10,
                params={"target": [str(target)], "workers": 2}, engine=pool,
            )  # fmt: skip
    finally:
        pool.close()


# -- the kernels: what each shard returns, and the exact merge ----------------------------------


def _spec(budget: int, **kw) -> SelectSpec:
    cfg = FeatureConfig()
    log_ratio = derive_rng(0, "test").normal(size=(1, cfg.buckets))
    base = dict(features=cfg, reading=Reading(), log_ratio=log_ratio, min_tokens=0,
                noise="gumbel", seed=5, buffers=((budget, None),), baseline=(budget, None),
                draws=None)  # fmt: skip
    return SelectSpec(**{**base, **kw})


def test_each_shard_returns_at_most_its_top_lists(corpus):
    """Driver memory is O(budget + shards x candidates): a shard's candidates are its top list
    per target and the baseline's, whatever its size; their n-grams come with them."""
    _, shards, _, _, raw = corpus
    spec = _spec(25)
    for shard in Corpus(list(map(str, shards))).plan():
        part = select_shard(shard, spec)
        assert part.pool_rows == raw.height // SHARDS
        assert part.tops[0][1].size == 25 and part.baseline[1].size == 25
        assert part.rows.size <= 50 and part.ptr.size == part.rows.size + 1
        assert part.ids.len() == part.rows.size and part.buckets.size == part.ptr[-1]


def test_merged_shard_top_lists_equal_one_shard_of_everything(corpus, tmp_path):
    """The union of the shards' top-k holds the global top-k: merging 5 shards gives the ranking
    of the same documents read as one file (ties by id hash, then row)."""
    _, shards, _, _, _ = corpus
    whole = tmp_path / "whole.jsonl"
    _read_shards(shards).write_ndjson(whole)
    spec = _spec(40)
    ranked = []
    for inputs in (list(map(str, shards)), [str(whole)]):
        merge = CandidateMerge(spec, 5)
        for shard in Corpus(inputs).plan():
            merge.add(select_shard(shard, spec))
        _keys, handles, _tokens, scores = merge.buffers[0].ranked()
        ranked.append((merge.store.ids_of(handles).to_list(), scores.tolist()))
    assert ranked[0] == ranked[1] and len(ranked[0][0]) == 40


def test_reservoir_merge_draws_in_proportion_to_weights():
    """Per-shard reservoirs merged slot by slot (Gumbel-max over the shards' masses) are an exact
    weighted draw with replacement over all documents."""
    logw = np.log(np.array([1.0, 2.0, 3.0, 4.0]))
    k = 40_000
    merged = Reservoir(k)
    for s, docs in enumerate(([0, 1], [2], [3])):  # three shards
        shard = Reservoir(k)
        shard.add(logw[docs], np.array(docs), np.ones(len(docs), np.int64), derive_rng(1, s))
        merged.merge(shard.slots(), shard.slot_row, derive_rng(2, s).gumbel(size=k))
    rows, draws, _, _ = merged.result()
    share = dict(zip(rows.tolist(), (draws / k).tolist(), strict=True))
    assert [round(share[i], 2) for i in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.01)


def test_parquet_row_ranges_are_shards_with_the_same_result(corpus, tmp_path, monkeypatch):
    """A big Parquet file is cut into row-group ranges (the engine's plan): the selection and
    the recorded input (one file, all its rows) are those of the uncut file."""
    _, _, _, target, raw = corpus
    path = tmp_path / "raw.parquet"
    raw.select("id", "text").write_parquet(path, row_group_size=500)
    settings = DsirSettings(targets=[str(target)])
    whole = run_dsir(Corpus([str(path)]), 60, 9, settings)
    import selectkit.dsir.sources as sources

    real = sources.plan_shards
    monkeypatch.setattr(sources, "plan_shards", lambda p, **kw: real(p, shard_rows=1000, **kw))
    plan = Corpus([str(path)]).plan()
    assert len(plan) == 5 and plan[1].key == "raw.parquet:1000-2000" and plan[1].row0 == 1000
    cut = run_dsir(Corpus([str(path)]), 60, 9, settings)
    assert cut.ids == whole.ids and cut.scores.tolist() == whole.scores.tolist()
    assert cut.inputs == whole.inputs and cut.inputs[0]["rows"] == raw.height
    assert json.dumps(cut.metrics, sort_keys=True) == json.dumps(whole.metrics, sort_keys=True)
