"""``embed``'s shard kernel: one shard's texts to vectors, written as that shard's own part.

The driver (:mod:`selectkit.embed.pipeline`) fits the embedder once and sends it to every worker
with an :class:`EmbedJob`; model embedders (minilm, wordllama) are loaded once per worker by
:func:`embed_setup`. Each call of :func:`embed_shard` reads one shard in batches, checks them
(text column, nulls, ids, the text cap) exactly as the one-file pipeline does, embeds them and
writes one Parquet part; what it returns is small (counts, 8 bytes per id for the duplicate
check, the shard's source). Memory per worker: one batch, one row group, the ids' hashes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from selectkit.embed.ids import id_hashes
from selectkit.engine import Handle, thread_limits
from selectkit.engine.shards import Shard
from selectkit.errors import SelectkitDataError, option
from selectkit.io import Provenance
from selectkit.io.dataset import PartRecord, write_part
from selectkit.io.tables import check_row_number_ids, iter_batches
from selectkit.pool import MADE_BY
from selectkit.textcap import TextCap


@dataclass(frozen=True)
class EmbedJob:
    """What every shard's kernel needs: the options, the fitted model (or how to load one) and
    where the parts go. Picklable; sent once per worker."""

    text_col: str
    id_col: str
    keep_columns: tuple[str, ...]
    batch_size: int
    input_format: str | None
    max_chars: int
    on_long: str
    threads: int | None
    #: (name, dim, pooling) of a model embedder that each worker loads once
    spec: tuple[str, int | None, str | None, str | None]  # embedder, dim, pooling, runtime
    #: the folder the parts go to
    staging: str = ""
    #: the parts carry provenance (a dataset folder) or not (temporary parts of a file output)
    folder: bool = False
    #: the fitted embedder (hashing), stored once with ``engine.put``
    model: Handle | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: several shards: an empty one is skipped (one warning) instead of failing the run
    allow_empty: bool = False


@dataclass
class ShardResult:
    """A shard's partial result, reduced on the driver in shard order."""

    index: int
    rows: int
    truncated: int = 0
    #: 64-bit hashes of the shard's given ids (None: its ids are row numbers)
    hashes: np.ndarray | None = None
    source: dict[str, Any] | None = None
    part: PartRecord | None = None
    #: the shard has no id column and its first row number was not known: only counted
    needs_row0: bool = False


class _PartProvenance(Provenance):
    """A part's provenance: no command line (a worker has none, and a part must not differ by
    the engine that wrote it)."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("argv", None)
        return out


@functools.lru_cache(maxsize=2)
def load_model(name: str, dim: int | None, pooling: str | None, runtime: str | None) -> Any:
    """A model embedder, loaded once per process (the driver's copy is reused in-process)."""
    from selectkit.embed.pipeline import make_embedder

    return make_embedder(name, dim=dim, pooling=pooling, runtime=runtime)


def embed_setup(job: EmbedJob) -> tuple[EmbedJob, Any]:
    """Once per worker: the fitted embedder from the object store, or a model loaded here."""
    model = job.model.get() if job.model is not None else load_model(*job.spec)
    return job, model


class Preparer:
    """Checks one input's batches as the one-file pipeline always has and fills in row-number
    ids: a missing text or kept column, a null text (naming its row), ids; applies the cap."""

    def __init__(self, job: EmbedJob, where: str, row0: int | None, cap: TextCap) -> None:
        self.job = job
        self.where = where
        self.row0 = row0  # the first row's global number (row-number ids)
        self.offset = 0  # rows seen so far in this input
        self.cap = cap

    def has_ids(self, batch: pl.DataFrame) -> bool:
        return self.job.id_col in batch.columns

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        job, where = self.job, self.where
        if job.text_col not in batch.columns:
            raise SelectkitDataError(
                f"{where} has no text column '{job.text_col}'; name the column that holds "
                f"{MADE_BY['text']}'s texts with {option('text_col')}"
            )
        for col in job.keep_columns:
            if col not in batch.columns:
                raise SelectkitDataError(
                    f"{where} has no column '{col}'; drop it from "
                    + option("keep_columns", cli="--keep")
                )
        texts = batch.get_column(job.text_col)
        if texts.null_count():
            row = self.offset + int(texts.is_null().arg_max())
            raise SelectkitDataError(
                f"{where}: column '{job.text_col}' is null at row {row}; drop or fill those rows"
            )
        if not self.has_ids(batch):
            check_row_number_ids(job.id_col, where, batch.columns)
            start = (self.row0 or 0) + self.offset
            batch = batch.with_columns(
                pl.Series(job.id_col, np.arange(start, start + batch.height, dtype=np.int64))
            )
        capped = self.cap.apply(texts, where=where, row0=self.offset, ids=batch[job.id_col])
        if capped is not texts:
            batch = batch.with_columns(capped)
        self.offset += batch.height
        return batch


def embed_frame(model: Any, batch: pl.DataFrame, job: EmbedJob) -> pl.DataFrame:
    """One prepared batch as output rows: id, embedding, the kept columns."""
    vectors = model.embed(batch.get_column(job.text_col))
    return pl.DataFrame(
        [batch.get_column(job.id_col), pl.Series("embedding", vectors)]
        + [batch.get_column(c) for c in job.keep_columns]
    )


def shard_source(shard: Shard, job: EmbedJob, columns: Sequence[str]):
    """(Source, batches) of one shard: its rows (its row groups for a slice of a Parquet
    file), checked as every input is, with the source's rows and fingerprint filled in once
    the batches are exhausted."""
    groups = range(*shard.groups) if shard.groups is not None else None
    return iter_batches(
        shard.path,
        columns=list(columns),
        input_format=job.input_format,
        batch_size=job.batch_size,
        schema_overrides={job.text_col: pl.String},
        id_col=job.id_col,
        allow_empty=job.allow_empty,
        row_groups=groups,
    )


def embed_shard(state: tuple[EmbedJob, Any], shard: Shard) -> ShardResult:
    """Embed one shard into ``job.staging/part-{index:05d}.parquet``; return its counts, the
    hashes of its ids and its source. Cost: one read of the shard and the embedding of its
    texts; memory O(batch + row group). A shard without ids whose first row number is not yet
    known is only counted (``needs_row0``); the driver runs it again once it is."""
    job, model = state
    cap = TextCap(job.max_chars, job.on_long)
    columns = [job.id_col, job.text_col, *job.keep_columns]
    source, batches = shard_source(shard, job, columns)
    first = next(batches, None)
    if first is not None and job.id_col not in first.columns and shard.row0 is None:
        rows = first.height + sum(b.height for b in batches)
        return ShardResult(shard.index, rows, needs_row0=True)
    prep = Preparer(job, shard.where, shard.row0, cap)
    given = first is not None and job.id_col in first.columns
    hashes: list[np.ndarray] = []
    prov = _PartProvenance(command="embed", seed=0, params=job.params)

    def frames() -> Iterator[pl.DataFrame]:
        for batch in _chain(first, batches):
            batch = prep(batch)
            if given:  # row numbers are unique by construction; only given ids need the check
                hashes.append(id_hashes(batch.get_column(job.id_col)))
            with thread_limits(job.threads):
                out = embed_frame(model, batch, job)
            yield out
        # read by write_part when the part is finished, after the last frame
        prov.inputs = [source.as_dict()]
        prov.metrics = {
            "rows": prep.offset,
            "truncated_texts": cap.truncated,
            "row_number_ids": not given,
        }

    part = write_part(job.staging, shard, frames(), prov if job.folder else None)
    return ShardResult(
        shard.index,
        prep.offset,
        cap.truncated,
        np.concatenate(hashes) if given and hashes else None,
        source.as_dict(),
        part,
    )


def _chain(first: pl.DataFrame | None, rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    if first is None:
        return
    yield first
    yield from rest
