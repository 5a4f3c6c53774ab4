"""The ``embed`` pipeline: stream a corpus in batches, embed each, stream the vectors out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit.console import progress_bar
from selectkit.embed.hashing import HashingEmbedder
from selectkit.errors import SelectkitError, SelectkitUsageError
from selectkit.io import Provenance, TableWriter, check_output_path, iter_batches
from selectkit.io.tables import check_row_number_ids, check_unique_ids
from selectkit.pool import MADE_BY

EMBEDDERS = {
    "hashing": "built-in hashed word+char n-gram TF-IDF with PCA; no download, no torch (default)",
    "minilm": "all-MiniLM-L6-v2 sentence-transformer, 384-d (pip install 'selectkit[models]')",
    "wordllama": "WordLlama static token embeddings, 64/128/256-d (pip install 'selectkit[wordllama]')",
}


class Embedder(Protocol):
    name: str
    dim: int

    def fit(self, texts: Sequence[str]) -> Any: ...
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...
    def config(self) -> dict[str, Any]: ...


def check_embedder_options(name: str, dim: int | None, pooling: str | None) -> None:
    """Refuse option combinations that an embedder cannot honour, before loading any model."""
    from selectkit.embed.models import POOLINGS

    if name not in EMBEDDERS:
        raise SelectkitUsageError(
            f"unknown embedder {name!r}; choose one of: {', '.join(EMBEDDERS)}"
        )
    if pooling is not None and name != "minilm":
        raise SelectkitUsageError(f"--pooling applies to the minilm embedder only, not {name!r}")
    if pooling is not None and pooling not in POOLINGS:
        raise SelectkitUsageError(f"--pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
    if name == "minilm" and dim not in (None, 384):
        raise SelectkitUsageError("the minilm embedder has 384 dimensions; drop --dim")
    if name == "wordllama" and dim not in (None, 64, 128, 256):
        raise SelectkitUsageError(f"wordllama --dim must be 64, 128 or 256, not {dim}")
    if name == "hashing" and dim is not None and dim < 2:
        raise SelectkitUsageError(f"--dim must be at least 2, not {dim}")


def make_embedder(
    name: str = "hashing", *, dim: int | None = None, pooling: str | None = None
) -> Embedder:
    """Return a ready embedder by name (see ``EMBEDDERS``); model embedders load their weights.
    Options are checked first (usage errors), so a bad option never waits for a model to load."""
    check_embedder_options(name, dim, pooling)
    if name == "hashing":
        return HashingEmbedder(dim=dim or 256)
    if name == "minilm":
        from selectkit.embed.models import MiniLMEmbedder

        return MiniLMEmbedder(pooling=pooling or "mean")
    from selectkit.embed.models import WordLlamaEmbedder

    return WordLlamaEmbedder(dim=dim or 256)


def embed_texts(
    texts: Sequence[str] | pl.Series, *, embedder: str = "hashing", dim: int | None = None
) -> np.ndarray:
    """Embed texts in memory: fit on them (hashing) and return an (n, dim) float32 array."""
    model = make_embedder(embedder, dim=dim)
    model.fit(texts)
    return model.embed(texts)


def _prefix_and_rest(
    batches: Iterator[pl.DataFrame], rows: int
) -> tuple[list[pl.DataFrame], Iterator[pl.DataFrame]]:
    """Pull batches until ``rows`` rows are buffered; return them and the untouched remainder."""
    head: list[pl.DataFrame] = []
    count = 0
    for batch in batches:
        head.append(batch)
        count += batch.height
        if count >= rows:
            break
    return head, batches


def embed_file(
    input_path: str | Path,
    output: str | Path,
    *,
    embedder: str = "hashing",
    dim: int | None = None,
    pooling: str | None = None,
    text_col: str = "text",
    id_col: str = "id",
    input_format: str | None = None,
    batch_size: int = 8192,
    fit_rows: int = 100_000,
    threads: int | None = None,
    keep_columns: Sequence[str] = (),
) -> Provenance:
    """Embed the ``text_col`` of a table into ``output`` (id, embedding[, kept columns]).

    Streams: memory is O(fit_rows texts + batch_size * dim), not O(corpus). The hashing embedder
    fits its IDF and PCA on the first ``fit_rows`` rows. Rows without ``id_col`` get row numbers.
    Null texts, a missing text column or duplicate ids fail the run with no output written.
    Returns the provenance stored in the output.
    """
    check_output_path(output, [input_path])
    # embedders are deterministic; 0 is the fixed seed of the hashing embedder's randomized SVD
    prov = Provenance(command="embed", seed=0)
    prov.start("load_model")
    model = make_embedder(embedder, dim=dim, pooling=pooling)
    prov.stop("load_model")
    wanted = [id_col, text_col, *keep_columns]
    source, batches = iter_batches(
        input_path,
        columns=wanted,
        input_format=input_format,
        batch_size=batch_size,
        schema_overrides={text_col: pl.String},
        id_col=id_col,  # ids checked batch by batch as `select` checks them (null, type, kinds)
    )
    where = "stdin" if str(input_path) == "-" else f"'{input_path}'"
    id_chunks: list[pl.Series] = []
    offset = 0

    def prepared(batch: pl.DataFrame) -> pl.DataFrame:
        nonlocal offset
        if text_col not in batch.columns:
            raise SelectkitError(
                f"{where} has no text column '{text_col}'; name the column that holds "
                f"{MADE_BY['text']}'s texts with --text-col"
            )
        for col in keep_columns:
            if col not in batch.columns:
                raise SelectkitError(f"{where} has no column '{col}'; drop it from --keep")
        texts = batch.get_column(text_col)
        if texts.null_count():
            row = offset + int(texts.is_null().arg_max())
            raise SelectkitError(
                f"{where}: column '{text_col}' is null at row {row}; drop or fill those rows"
            )
        if id_col not in batch.columns:
            check_row_number_ids(id_col, where, batch.columns)
            batch = batch.with_columns(
                pl.Series(id_col, np.arange(offset, offset + batch.height, dtype=np.int64))
            )
        offset += batch.height
        id_chunks.append(batch.get_column(id_col))
        return batch

    with threadpool_limits(limits=threads), TableWriter(output) as writer:
        prov.start("fit")
        head, rest = _prefix_and_rest(batches, fit_rows)
        head = [prepared(b) for b in head]
        if not head or sum(b.height for b in head) == 0:
            raise SelectkitError(f"{where} has no rows; give a corpus with at least one text")
        fit_texts = pl.concat([b.get_column(text_col) for b in head]).head(fit_rows)
        model.fit(fit_texts)
        prov.stop("fit")
        prov.start("embed")
        with progress_bar("embed", None) as bar:
            for batch in _chain(head, (prepared(b) for b in rest)):
                vectors = model.embed(batch.get_column(text_col))
                out = pl.DataFrame(
                    [batch.get_column(id_col), pl.Series("embedding", vectors)]
                    + [batch.get_column(c) for c in keep_columns]
                )
                writer.write(out)
                bar.advance(batch.height)
        prov.stop("embed")
        check_unique_ids(pl.concat(id_chunks), where)
        prov.params = {
            **model.config(),
            "text_col": text_col,
            "id_col": id_col,
            "batch_size": batch_size,
            "keep_columns": list(keep_columns),
        }
        prov.inputs = [source.as_dict()]
        prov.metrics = {"rows": writer.rows}
        writer.provenance = prov
    return prov


def _chain(head: list[pl.DataFrame], rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    yield from head
    yield from rest
