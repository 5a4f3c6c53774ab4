"""The duplicate-id check of a stream, in 8 bytes per row instead of the ids themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import polars as pl

from selectkit.io.tables import check_unique_ids


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
        self._parts.append(ids if self.exact else _hashes(ids))

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
        suspects = [ids.filter(pl.Series(np.isin(_hashes(ids), repeated))) for ids in reread()]
        check_unique_ids(pl.concat(suspects).alias(self.name), where)


def _hashes(ids: pl.Series) -> np.ndarray:
    # a fixed seed: the same id hashes alike in every batch of the run
    return ids.hash(seed=0).to_numpy()
