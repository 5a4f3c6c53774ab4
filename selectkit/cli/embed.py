"""``selectkit embed``: a corpus to vectors (thin shell over :func:`selectkit.embed_file`)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from selectkit import textcap
from selectkit.cli._options import (
    EngineOpt,
    IdCol,
    Json,
    MaxChars,
    OnLong,
    RayAddressOpt,
    ResumeOpt,
    TextCol,
    Threads,
)
from selectkit.cli._run import check_json_stdout, report


def embed(
    input: Annotated[
        list[str],
        typer.Argument(
            help="Corpus with a text column: .jsonl, .parquet or .csv (gzip, bz2 or xz compressed "
            "too), several shards, a quoted glob ('shards/*.jsonl.gz') or a dataset folder, "
            "or - for JSON Lines on stdin."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            help="Vectors: .parquet (id + embedding list column), .jsonl, - for JSON Lines on "
            "stdout, or DIR/ for a dataset folder (one part per shard). CSV cannot hold a "
            "vector column.",
        ),
    ],
    embedder: Annotated[
        Optional[str],
        typer.Option(
            "--embedder",
            "-e",
            help="hashing (built-in, default), static (MiniLM distilled to token vectors: built "
            "once, then fast, numpy only), minilm or wordllama; with --model, the saved one.",
        ),
    ] = None,
    dim: Annotated[
        Optional[int],
        typer.Option(
            "--dim", min=2, help="Vector size (hashing: 256; wordllama: 64/128/256; static: 256)."
        ),
    ] = None,
    pooling: Annotated[
        Optional[str],
        typer.Option(
            "--pooling",
            help="minilm token pooling: auto (default: the model's own, mean for MiniLM), mean, "
            "cls, last or eos (the end-of-sequence token; for MiniLM the same as last).",
        ),
    ] = None,
    runtime: Annotated[
        Optional[str],
        typer.Option(
            "--runtime",
            help="minilm: torch (default), onnx (ONNX Runtime, exported once and cached) or "
            "onnx-int8 (int8 weights: fastest, cosine ~0.99 to torch).",
        ),
    ] = None,
    save_model: Annotated[
        Optional[str],
        typer.Option(
            "--save-model",
            help="Also write the fitted embedder to this folder, to embed later data into the "
            "same space with --model DIR.",
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help="Embed with an embedder saved by --save-model instead of fitting one (the "
            "hashing embedder's IDF and PCA are reused; --fit-rows is unused).",
        ),
    ] = None,
    text_col: TextCol = "text",
    id_col: IdCol = "id",
    keep: Annotated[
        Optional[list[str]],
        typer.Option("--keep", help="Also copy this column to the output (repeatable)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per streamed batch.")
    ] = 8192,
    fit_rows: Annotated[
        int, typer.Option("--fit-rows", min=1, help="hashing: fit IDF/PCA on the first N rows.")
    ] = 100_000,
    max_chars: MaxChars = textcap.MAX_CHARS,
    on_long: OnLong = textcap.ON_LONG[0],
    input_format: Annotated[
        Optional[str],
        typer.Option(
            "--input-format",
            help="Format of '-' (stdin; default jsonl) or of a corpus without a known extension: "
            "jsonl, csv or parquet.",
        ),
    ] = None,
    threads: Threads = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    resume: ResumeOpt = False,
    as_json: Json = False,
) -> None:
    """Turn a corpus into vectors: writes id + embedding (fixed-size float32 list).

    Streams in batches, so memory stays flat however large the corpus. The default embedder needs
    no download: hashed word and character n-grams, TF-IDF weighted, reduced to --dim by a PCA fitted
    on the first --fit-rows texts.

    Each input file is a shard (a big Parquet file, several); with --engine ray the shards are
    embedded across a Ray cluster, with the same output bytes as the local engine.

    With --save-model DIR the fitted embedder is kept; --model DIR embeds new data into the
    same space later.

    Example:  selectkit embed data_samples/rotten_tomatoes.jsonl -o emb.parquet
    """
    from selectkit.embed import embed_file

    check_json_stdout(as_json, output)
    prov = embed_file(
        input[0] if len(input) == 1 else input,
        output,
        embedder=embedder,
        dim=dim,
        pooling=pooling,
        runtime=runtime,
        model=model,
        save_model=save_model,
        text_col=text_col,
        id_col=id_col,
        input_format=input_format,
        batch_size=batch_size,
        fit_rows=fit_rows,
        threads=threads,
        keep_columns=keep or (),
        max_chars=max_chars,
        on_long=on_long,
        engine=engine,
        ray_address=ray_address,
        resume=resume,
    )
    rate = prov.metrics["rows"] / max(prov.timings.get("embed_s", 0.0), 1e-9)
    summary = {"output": output, **prov.metrics, **prov.timings, "docs_per_s": round(rate, 1)}
    report(summary, as_json=as_json, title="embed")
