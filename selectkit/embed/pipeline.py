"""The ``embed`` pipeline: stream a corpus in batches, embed each, stream the vectors out."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit import arguments
from selectkit.console import progress_bar
from selectkit.embed.hashing import BOUNDS as HASHING_BOUNDS
from selectkit.embed.hashing import HashingEmbedder
from selectkit.embed.ids import IdHashes
from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.io import Provenance, TableWriter, check_output_path, iter_batches
from selectkit.io.tables import check_row_number_ids
from selectkit.params import Param, check_arguments
from selectkit.pool import MADE_BY
from selectkit.textcap import MAX_CHARS, TextCap

EMBEDDERS = {
    "hashing": "built-in hashed word+char n-gram TF-IDF with PCA; no download, no torch (default)",
    "minilm": "all-MiniLM-L6-v2 sentence-transformer, 384-d (pip install 'selectkit[models]')",
    "wordllama": "WordLlama static token embeddings, 64/128/256-d (pip install 'selectkit[wordllama]')",
}


#: the one declaration of `selectkit embed`'s numeric bounds; its CLI options' min/max match it
EMBED_BOUNDS = {
    # None: the embedder's own dimension; a range checked by each embedder (hashing: >= 2)
    "dim": replace(HASHING_BOUNDS["dim"], default=None),
    "batch_size": Param(int, 8192, "texts embedded per batch", low=1),
    "fit_rows": Param(int, 100_000, "hashing: texts its IDF and PCA are fitted on", low=1),
    "threads": Param(int, None, "threads of the embedder (default: all cores)", low=1),
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

    arguments.text(name, "embedder", choices=list(EMBEDDERS), what="embedder")
    if dim is not None:
        arguments.integer(dim, "dim")  # its range is each embedder's: hashing checks its own
    if pooling is not None:
        arguments.text(pooling, "pooling", choices=POOLINGS)
        if name != "minilm":
            raise SelectkitUsageError(
                f"{option('pooling')} applies to the minilm embedder only, not {name!r}"
            )
    if name == "minilm" and dim not in (None, 384):
        raise SelectkitUsageError(f"the minilm embedder has 384 dimensions; drop {option('dim')}")
    if name == "wordllama" and dim not in (None, 64, 128, 256):
        raise SelectkitUsageError(f"wordllama {option('dim')} must be 64, 128 or 256, not {dim}")


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
    if isinstance(texts, str) or not isinstance(texts, (Sequence, pl.Series)):
        raise SelectkitUsageError(
            f"texts= must be a list of strings (or a polars Series), not {type(texts).__name__}"
        )
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
    max_chars: int = MAX_CHARS,
    on_long: str = "truncate",
) -> Provenance:
    """Embed the ``text_col`` of a table into ``output`` (id, embedding[, kept columns]).

    Streams: what is held is the first ``fit_rows`` texts (until the fit is done and they are
    embedded), one batch, the writer's one row group and 8 bytes per row for the duplicate-id
    check; not the corpus. The hashing embedder fits its IDF and PCA on the first ``fit_rows``
    rows. Texts longer than ``max_chars`` characters are truncated (counted on stderr and in the
    provenance) or, with ``on_long="error"``, fail the run (see ``selectkit.textcap``). Rows
    without ``id_col`` get row numbers. Null texts, a missing text column or duplicate ids fail
    the run with no output written. Returns the provenance stored in the output.
    """
    input_path = arguments.path(input_path, "input_path")
    output = arguments.path(output, "output")
    arguments.text(text_col, "text_col")
    arguments.text(id_col, "id_col")
    keep_columns = arguments.texts(keep_columns, "keep_columns")
    check_arguments(EMBED_BOUNDS, batch_size=batch_size, fit_rows=fit_rows, threads=threads)
    check_output_path(output, [input_path])
    cap = TextCap(max_chars, on_long)
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
    # stdin cannot be read twice to name a duplicate, so its ids are kept as they are
    ids_seen = IdHashes(id_col, exact=str(input_path) == "-")
    offset = 0

    def prepared(batch: pl.DataFrame) -> pl.DataFrame:
        nonlocal offset
        if text_col not in batch.columns:
            raise SelectkitDataError(
                f"{where} has no text column '{text_col}'; name the column that holds "
                f"{MADE_BY['text']}'s texts with {option('text_col')}"
            )
        for col in keep_columns:
            if col not in batch.columns:
                raise SelectkitDataError(
                    f"{where} has no column '{col}'; drop it from "
                    + option("keep_columns", cli="--keep")
                )
        texts = batch.get_column(text_col)
        if texts.null_count():
            row = offset + int(texts.is_null().arg_max())
            raise SelectkitDataError(
                f"{where}: column '{text_col}' is null at row {row}; drop or fill those rows"
            )
        if id_col not in batch.columns:
            check_row_number_ids(id_col, where, batch.columns)
            batch = batch.with_columns(
                pl.Series(id_col, np.arange(offset, offset + batch.height, dtype=np.int64))
            )
        else:  # row numbers are unique by construction; only given ids need the check
            ids_seen.add(batch.get_column(id_col))
        capped = cap.apply(texts, where=where, row0=offset, ids=batch.get_column(id_col))
        if capped is not texts:
            batch = batch.with_columns(capped)
        offset += batch.height
        return batch

    with threadpool_limits(limits=threads), TableWriter(output) as writer:
        prov.start("fit")
        head, rest = _prefix_and_rest(batches, fit_rows)
        head = [prepared(b) for b in head]
        if not head or sum(b.height for b in head) == 0:
            raise SelectkitDataError(f"{where} has no rows; give a corpus with at least one text")
        model.fit(pl.concat([b.get_column(text_col) for b in head]).head(fit_rows))
        prov.stop("fit")
        prov.start("embed")
        with progress_bar("embed", None) as bar:
            # _drain hands the fit batches over one by one, so none outlives its own embedding
            for batch in itertools.chain(_drain(head), (prepared(b) for b in rest)):
                vectors = model.embed(batch.get_column(text_col))
                out = pl.DataFrame(
                    [batch.get_column(id_col), pl.Series("embedding", vectors)]
                    + [batch.get_column(c) for c in keep_columns]
                )
                writer.write(out)
                bar.advance(batch.height)
        prov.stop("embed")
        ids_seen.check(where, lambda: _reread_ids(input_path, id_col, input_format, batch_size))
        prov.params = {
            **model.config(),
            "text_col": text_col,
            "id_col": id_col,
            "batch_size": batch_size,
            "keep_columns": list(keep_columns),
            **cap.record(),
        }
        prov.inputs = [source.as_dict()]
        prov.metrics = {"rows": writer.rows, "truncated_texts": cap.truncated}
        writer.provenance = prov
    cap.report()
    return prov


def _drain(batches: list[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Yield and forget the batches of ``batches`` (the list is emptied as it goes)."""
    batches.reverse()
    while batches:
        yield batches.pop()


def _reread_ids(
    path: str | Path, id_col: str, input_format: str | None, batch_size: int
) -> Iterator[pl.Series]:
    """The id column of ``path`` again, batch by batch (only to name a duplicate id)."""
    _source, batches = iter_batches(
        path, columns=[id_col], input_format=input_format, batch_size=batch_size
    )
    for batch in batches:
        if id_col in batch.columns:
            yield batch.get_column(id_col)
