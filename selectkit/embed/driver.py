"""``embed``'s driver: plan the shards, fit once, run the shard kernels, reduce, write.

What runs where: the driver reads the first ``--fit-rows`` texts (in shard order) and fits the
hashing embedder; every shard is embedded by :func:`selectkit.embed.kernel.embed_shard` on the
engine, which writes that shard's part; the driver then checks ids across all shards (from
their hashes), sums the counts, and either commits the dataset folder or copies the parts, in
shard order, into the one output file. stdin is one stream, read once, on the driver.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow.parquet as pq

from selectkit.console import progress_bar
from selectkit.embed.ids import IdHashes, check_shard_duplicates, id_hashes
from selectkit.embed.kernel import (
    EmbedJob,
    Preparer,
    ShardResult,
    embed_frame,
    embed_setup,
    embed_shard,
    load_model,
    shard_source,
)
from selectkit.embed.saved import save_embedder
from selectkit.engine import Engine, engine_record, get_engine, thread_limits
from selectkit.engine.shards import Shard, input_fingerprints, plan_shards
from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.io import (
    Provenance,
    TableWriter,
    check_output_path,
    iter_batches,
    output_group,
    read_provenance,
)
from selectkit.io.dataset import DatasetWriter, is_folder_output, part_name
from selectkit.io.formats import STDIO, detect_format
from selectkit.io.streams import is_stream, where_of
from selectkit.io.tables import empty_source, expand_inputs
from selectkit.io.write import TMP_SUFFIX

if TYPE_CHECKING:
    from selectkit.embed.pipeline import EmbedOptions


def run_embed(
    inputs: list[str | Path],
    output: str | Path,
    opts: EmbedOptions,
    *,
    engine: str | Engine,
    ray_address: str | None,
    resume: bool,
) -> Provenance:
    """The ``embed`` command after its arguments are checked; returns the provenance."""
    folder = is_folder_output(output)
    if resume and not folder:
        raise SelectkitUsageError(
            f"{option('resume')} continues a dataset folder; write to one (-o DIR/) or drop "
            f"{option('resume')}"
        )
    check_output_path(output, expand_inputs(inputs), folder=folder)
    if not folder and detect_format(output, output=True) == "csv":
        raise SelectkitUsageError(
            "CSV cannot hold the list column 'embedding'; write .parquet or .jsonl instead"
        )
    streams = [str(p) for p in inputs if is_stream(str(p))]
    if streams:
        name = "stdin ('-')" if streams[0] == STDIO else f"{streams[0]} (a pipe)"
        if len(inputs) > 1 or folder or not _is_local(engine):
            raise SelectkitUsageError(
                f"{name} is read once, on this machine: give it alone, with the local "
                "engine and a file output, or save it to a file first"
            )
        with _saving(opts):
            return _embed_stream(streams[0], output, opts)
    eng = get_engine(engine, ray_address=ray_address)
    try:
        with _saving(opts):
            return _embed_shards(eng, plan_shards(inputs, input_format=opts.input_format),
                                 inputs, output, opts, folder=folder, resume=resume)  # fmt: skip
    finally:
        eng.close()


def _saving(opts: EmbedOptions) -> contextlib.AbstractContextManager[None]:
    """With ``--save-model``, the saved embedder and the vectors commit together, or neither."""
    return output_group() if opts.save_model is not None else contextlib.nullcontext()


def _ready_model(opts: EmbedOptions, prov: Provenance) -> Any:
    """The embedder before fitting: loaded from ``--model DIR`` (already fitted) or by name."""
    prov.start("load_model")
    model = opts.saved.load() if opts.saved is not None else load_model(*_model_spec(opts))
    prov.stop("load_model")
    return model


def _fit(model: Any, texts: pl.Series, opts: EmbedOptions) -> None:
    """Fit on ``texts`` unless the embedder was loaded fitted; then save it if asked (the
    folder is staged now and committed with the output)."""
    if opts.saved is None:
        model.fit(texts)
    if opts.save_model is not None:
        save_embedder(model, opts.save_model)


def _fit_rows(opts: EmbedOptions) -> int:
    """Texts read before embedding: the hashing fit's, or one (to fail early on bad rows)."""
    return opts.fit_rows if opts.embedder == "hashing" and opts.saved is None else 1


def _is_local(engine: str | Engine) -> bool:
    return engine == "local" or (
        isinstance(engine, Engine) and engine.describe()["engine"] == "local"
    )


def _model_spec(opts: EmbedOptions) -> tuple[str, int | None, str | None, str | None]:
    return (opts.embedder, opts.dim, opts.pooling, opts.runtime)


def _job(opts: EmbedOptions, **extra: Any) -> EmbedJob:
    return EmbedJob(
        text_col=opts.text_col,
        id_col=opts.id_col,
        keep_columns=opts.keep_columns,
        batch_size=opts.batch_size,
        input_format=opts.input_format,
        max_chars=opts.cap.max_chars,
        on_long=opts.cap.on_long,
        threads=opts.threads,
        spec=_model_spec(opts),
        **extra,
    )


def _params(model: Any, opts: EmbedOptions) -> dict[str, Any]:
    return {
        **model.config(),
        "text_col": opts.text_col,
        "id_col": opts.id_col,
        "batch_size": opts.batch_size,
        "keep_columns": list(opts.keep_columns),
        **opts.cap.record(),
        **({"model_folder": str(opts.saved.path)} if opts.saved is not None else {}),
    }


def _where(inputs: Sequence[str | Path]) -> str:
    return (
        ", ".join(f"'{p}'" for p in inputs) if len(inputs) <= 3 else f"'{inputs[0]}' and the rest"
    )


def _embed_shards(
    eng: Engine,
    shards: list[Shard],
    inputs: Sequence[str | Path],
    output: str | Path,
    opts: EmbedOptions,
    *,
    folder: bool,
    resume: bool,
) -> Provenance:
    prov = Provenance(command="embed", seed=0)
    # embedders are deterministic; 0 is the fixed seed of the hashing embedder's randomized SVD
    model = _ready_model(opts, prov)
    job = _job(opts, allow_empty=len(shards) > 1)
    with thread_limits(opts.threads):
        prov.start("fit")
        texts = _fit_texts(shards, job, _fit_rows(opts))
        if texts.len() == 0:
            raise SelectkitDataError(
                f"{_where(inputs)} has no rows; give a corpus with at least one text"
            )
        _fit(model, texts, opts)
        del texts
        prov.stop("fit")
    params = _params(model, opts)
    shared_model = eng.put(model) if opts.embedder == "hashing" else None
    prov.start("embed")
    if folder:
        identity = {"inputs": input_fingerprints(eng, shards), "params": params}
        with DatasetWriter(output, command="embed", identity=identity, resume=resume) as writer:
            job = replace(job, staging=str(writer.staging), folder=True, model=shared_model,
                          params=params)  # fmt: skip
            todo = writer.todo(shards)
            reused = {p.name: p for p in writer.reused}
            pending = {s.index for s in todo}
            done = {s.index: _reused_result(writer.staging, s, job, reused) for s in shards
                    if s.index not in pending}  # fmt: skip
            results = _run(eng, job, shards, todo, done, on_part=writer.done)
            metrics = _reduce(results, shards, job, prov)
            prov.stop("embed")
            _finish(prov, eng, params, results, metrics)
            writer.commit(prov)
    else:
        staging = _temporary_staging(output)
        try:
            job = replace(job, staging=str(staging), model=shared_model, params=params)
            results = _run(eng, job, shards, shards, {}, on_part=None)
            metrics = _reduce(results, shards, job, prov)
            with TableWriter(output) as out:
                for result in results:
                    _copy_part(staging, result, out)
                prov.stop("embed")
                _finish(prov, eng, params, results, metrics)
                out.provenance = prov
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    opts.cap.truncated = metrics["truncated_texts"]
    opts.cap.report()
    return prov


def _finish(
    prov: Provenance, eng: Engine, params: dict, results: list[ShardResult], metrics: dict
) -> None:
    prov.params = params
    prov.inputs = _sources(results)
    prov.metrics = metrics
    prov.engine = engine_record(eng)


def _fit_texts(shards: list[Shard], job: EmbedJob, rows: int) -> pl.Series:
    """The first ``rows`` texts of the shards in order, checked and capped as the kernels will
    check them (so a bad row fails before any work is sent). Memory: those texts."""
    texts: list[pl.Series] = []
    have = row0 = 0
    for shard in shards:
        _source, batches = shard_source(shard, job, [job.id_col, job.text_col, *job.keep_columns])
        prep = Preparer(job, shard.where, row0, _cap(job))
        for batch in batches:
            texts.append(prep(batch).get_column(job.text_col))
            have += batch.height
            if have >= rows:
                return pl.concat(texts).head(rows)
        row0 += prep.offset
    return pl.concat(texts) if texts else pl.Series(job.text_col, [], dtype=pl.String)


def _cap(job: EmbedJob):
    from selectkit.textcap import TextCap

    return TextCap(job.max_chars, job.on_long)


def _run(
    eng: Engine,
    job: EmbedJob,
    shards: list[Shard],
    todo: Sequence[Shard],
    done: dict[int, ShardResult],
    *,
    on_part: Any,
) -> list[ShardResult]:
    """Every shard's result in shard order: ``done`` (reused parts) plus ``todo`` run on the
    engine. Shards without ids whose first row number was unknown are run again once the rows
    before them are counted."""
    results = dict(done)
    for result in eng.map(embed_shard, list(todo), shared=job, setup=embed_setup, label="embed",
                          total=len(todo)):  # fmt: skip
        results[result.index] = result
        if result.part is not None and on_part is not None:
            on_part(result.part)
    waiting = [shards[i] for i, r in sorted(results.items()) if r.needs_row0]
    if waiting:
        starts = list(itertools.accumulate((results[s.index].rows for s in shards), initial=0))
        again = [replace(s, row0=starts[s.index]) for s in waiting]
        for result in eng.map(embed_shard, again, shared=job, setup=embed_setup, label="embed",
                              total=len(again)):  # fmt: skip
            results[result.index] = result
            if result.part is not None and on_part is not None:
                on_part(result.part)
    return [results[s.index] for s in shards]


def _reduce(
    results: list[ShardResult], shards: list[Shard], job: EmbedJob, prov: Provenance
) -> dict[str, Any]:
    """Counts summed in shard order; duplicate ids across all shards refused (naming the id
    and the files that hold it)."""
    check_shard_duplicates(
        job.id_col,
        [(s, r.hashes) for s, r in zip(shards, results, strict=True)],
        lambda shard: _reread_ids(shard, job),
    )
    return {
        "rows": sum(r.rows for r in results),
        "truncated_texts": sum(r.truncated for r in results),
    }


def _sources(results: list[ShardResult]) -> list[dict[str, Any]]:
    """One input entry per file, in order: a Parquet file cut into several shards is one
    entry with its rows summed."""
    merged: dict[str, dict[str, Any]] = {}
    for r in results:
        src = r.source or {}
        have = merged.get(src["path"])
        if have is None:
            merged[src["path"]] = dict(src)
        else:
            have["rows"] += src["rows"]
    return list(merged.values())


def _reread_ids(shard: Shard, job: EmbedJob) -> Iterator[pl.Series]:
    """The id column of one shard again (only to name a duplicate id)."""
    groups = range(*shard.groups) if shard.groups is not None else None
    _source, batches = iter_batches(
        shard.path,
        columns=[job.id_col],
        input_format=job.input_format,
        batch_size=job.batch_size,
        allow_empty=True,
        row_groups=groups,
    )
    for batch in batches:
        if job.id_col in batch.columns:
            yield batch.get_column(job.id_col)


def _reused_result(staging: Path, shard: Shard, job: EmbedJob, reused: dict) -> ShardResult:
    """A part kept from an interrupted run, as its kernel would have reported it: its counts and
    source from its provenance, its ids' hashes from its id column."""
    part = reused[part_name(shard.index)]
    if part.fingerprint is None:  # an empty shard: no file
        return ShardResult(
            shard.index, 0, source=empty_source(shard.path, job.input_format).as_dict(), part=part
        )
    path = staging / part.name
    meta = read_provenance(path) or {}
    metrics = meta.get("metrics") or {}
    hashes = None
    if not metrics.get("row_number_ids"):
        ids = pl.read_parquet(path, columns=[job.id_col]).get_column(job.id_col)
        hashes = id_hashes(ids)
    return ShardResult(
        shard.index,
        int(metrics.get("rows", part.rows)),
        int(metrics.get("truncated_texts", 0)),
        hashes,
        (meta.get("inputs") or [None])[0],
        part,
    )


def _temporary_staging(output: str | Path) -> Path:
    """A private folder beside a file output for the shards' parts until they are copied into
    it (named so that a killed run's folder is removed by the next write of that output)."""
    out = Path(output)
    folder = out.resolve().parent
    return Path(
        tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}-parts-", suffix=TMP_SUFFIX, dir=folder)
    )


def _copy_part(staging: Path, result: ShardResult, out: TableWriter) -> None:
    """Append one shard's part to the file output and remove it. Memory: one row group."""
    if result.part is None or result.part.fingerprint is None:
        return
    path = staging / result.part.name
    pf = pq.ParquetFile(path)
    for rb in pf.iter_batches():
        out.write(pl.from_arrow(rb))
    path.unlink()


def _embed_stream(path: str, output: str | Path, opts: EmbedOptions) -> Provenance:
    """stdin, a FIFO or ``/dev/fd/N``: one stream read once, on the driver: the first
    ``fit_rows`` rows fit the model, then everything is embedded into the output as it streams.
    Memory as for a file shard, plus the ids themselves for the duplicate check (a stream
    cannot be read twice)."""
    where = where_of(path)
    prov = Provenance(command="embed", seed=0)
    model = _ready_model(opts, prov)
    job = _job(opts)
    source, batches = iter_batches(
        path,
        columns=[opts.id_col, opts.text_col, *opts.keep_columns],
        input_format=opts.input_format,
        batch_size=opts.batch_size,
        schema_overrides={opts.text_col: pl.String},
        id_col=opts.id_col,
    )
    prep = Preparer(job, where, 0, opts.cap)
    ids_seen = IdHashes(opts.id_col, exact=True)
    given = True

    def prepared(batch: pl.DataFrame) -> pl.DataFrame:
        nonlocal given
        given = prep.has_ids(batch)
        batch = prep(batch)
        if given:
            ids_seen.add(batch.get_column(opts.id_col))
        return batch

    with thread_limits(opts.threads), TableWriter(output) as writer:
        prov.start("fit")
        head: list[pl.DataFrame] = []
        count = 0
        for batch in batches:
            head.append(prepared(batch))
            count += batch.height
            if count >= _fit_rows(opts):
                break
        if count == 0:
            raise SelectkitDataError(f"{where} has no rows; give a corpus with at least one text")
        _fit(
            model, pl.concat([b.get_column(opts.text_col) for b in head]).head(opts.fit_rows), opts
        )
        prov.stop("fit")
        prov.start("embed")
        with progress_bar("embed", None) as bar:
            for batch in itertools.chain(_drain(head), (prepared(b) for b in batches)):
                writer.write(embed_frame(model, batch, job))
                bar.advance(batch.height)
        prov.stop("embed")
        ids_seen.check(where, lambda: iter(()))
        prov.params = _params(model, opts)
        prov.inputs = [source.as_dict()]
        prov.metrics = {"rows": writer.rows, "truncated_texts": opts.cap.truncated}
        prov.engine = engine_record(get_engine("local"))
        writer.provenance = prov
    opts.cap.report()
    return prov


def _drain(batches: list[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Yield and forget the batches of ``batches`` (the list is emptied as it goes)."""
    batches.reverse()
    while batches:
        yield batches.pop()
