"""The duplicate-id check of a stream or of many shards, in 8 bytes per row instead of the ids."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from selectkit.errors import SelectkitDataError
from selectkit.io.tables import check_unique_ids
from selectkit.rng import id_hashes as rng_id_hashes

if TYPE_CHECKING:
    from selectkit.engine.shards import Shard


class IdHashes:
    """Collects a 64-bit hash of every id of a stream; ``check`` finds repeated hashes and names
    the duplicated id exactly by re-reading only the ids whose hash repeats.

    String ids cost their bytes plus an offset each; the hash is 8 bytes whatever the id. Two
    distinct ids share a hash with probability about n^2 / 2^65 (3e-8 at a million rows), which
    is why a repeated hash is confirmed on the real ids before anything is reported. With
    ``exact`` (an input that cannot be read twice, such as stdin) the ids themselves are kept.
    """

    def __init__(self, name: str, *, exact: bool = False) -> None:
        self.name = name
        self.exact = exact
        self._parts: list[np.ndarray | pl.Series] = []

    def add(self, ids: pl.Series) -> None:
        """Record one batch of ids."""
        self._parts.append(ids if self.exact else id_hashes(ids))

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Record the :func:`id_hashes` of a batch or shard computed elsewhere (a kernel)."""
        self._parts.append(hashes)

    def check(self, where: str, reread: Callable[[], Iterable[pl.Series]]) -> None:
        """Raise ``SelectkitError`` (via ``check_unique_ids``) when an id occurs twice.

        ``reread`` yields the stream's ids again, batch by batch; it runs only when two hashes
        are equal. Cost: one sort of n uint64 values.
        """
        if not self._parts:
            return
        if self.exact:
            check_unique_ids(pl.concat(self._parts).alias(self.name), where)
            return
        hashes = np.sort(np.concatenate(self._parts))
        self._parts = []
        repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        if repeated.size == 0:
            return
        suspects = [ids.filter(pl.Series(np.isin(id_hashes(ids), repeated))) for ids in reread()]
        check_unique_ids(pl.concat(suspects).alias(self.name), where)


def id_hashes(ids: pl.Series) -> np.ndarray:
    """The 64-bit hash of every id (uint64): selectkit's own hash with a fixed salt, so the same
    id hashes alike in every batch, shard, process and machine and a kernel's hashes can be
    checked on the driver. O(n) for integer ids, O(total bytes) for strings."""
    return rng_id_hashes(ids, 0)


def check_shard_duplicates(
    name: str,
    hashes: Sequence[tuple[Shard, np.ndarray | None]],
    reread: Callable[[Shard], Iterable[pl.Series]],
) -> None:
    """Raise ``SelectkitDataError`` when an id occurs twice across the shards, naming the id
    and the files that hold it (one file: the message ``check_unique_ids`` gives).

    ``hashes`` are each shard's :func:`id_hashes` (None for a shard whose ids are row numbers);
    ``reread(shard)`` yields a shard's ids again and runs only for shards holding a repeated
    hash. Cost: one sort of n uint64 values on the driver.
    """
    given = [(s, h) for s, h in hashes if h is not None and h.size]
    if not given:
        return
    every = np.sort(np.concatenate([h for _s, h in given]))
    repeated = np.unique(every[1:][every[1:] == every[:-1]])
    del every
    if repeated.size == 0:
        return
    if len(hashes) == 1:
        shard = hashes[0][0]
        suspects = [
            ids.filter(pl.Series(np.isin(id_hashes(ids), repeated))) for ids in reread(shard)
        ]
        check_unique_ids(pl.concat(suspects).alias(name), shard.where)
        return
    found = []
    for shard, h in given:
        if not np.isin(h, repeated).any():
            continue
        for ids in reread(shard):
            hit = ids.filter(pl.Series(np.isin(id_hashes(ids), repeated)))
            found.append(pl.DataFrame({"id": hit, "file": [shard.where] * hit.len()}))
    table = pl.concat(found) if found else pl.DataFrame({"id": [], "file": []})
    counts = table.group_by("id", maintain_order=True).agg(pl.len().alias("n"), pl.col("file"))
    dups = counts.filter(pl.col("n") > 1)
    if dups.height == 0:  # equal hashes of distinct ids
        return
    dup, times, files = dups.row(0)
    where = " and ".join(dict.fromkeys(files))
    raise SelectkitDataError(
        f"{where}: column '{name}' has duplicate ids ({dups.height} ids repeat; {dup!r} appears "
        f"{times} times); ids must be unique across the inputs"
    )
