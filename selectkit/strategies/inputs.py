"""How a strategy's input is read and shaped: the input adapter each strategy declares.

``select_files`` asks the strategy's adapter to *load* the input files into a ``Pool``, and
``select`` asks it to *prepare* an in-memory pool for the strategy (check the needed columns,
reshape). The runner knows no strategy by name: DISCO's long tables (one row per model and id,
pivoted to one row per id) are ``selectkit.disco.data.LONG``; DSIR's streaming over corpora larger
than memory is ``selectkit.strategies.dsir.STREAMED``; everything else is ``WIDE``. An adapter that
also has ``stream`` (a ``StreamingAdapter``) reads files itself and returns the finished manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from selectkit.pool import Columns, Pool, load_pool

if TYPE_CHECKING:  # base imports this module for WIDE
    from selectkit.strategies.base import StreamedSelection


@dataclass(frozen=True)
class FileInputs:
    """The files ``select_files`` was given and how to read them."""

    paths: Sequence[str | Path]
    columns: Columns = field(default_factory=Columns)
    input_format: str | None = None
    use_labels: bool = True


@runtime_checkable
class InputAdapter(Protocol):
    """Reads a strategy's input files and shapes a pool for it.

    ``name`` is shown by ``selectkit strategies``. ``load`` reads files into a ``Pool``;
    ``prepare`` returns the pool the strategy runs on (checking ``needs`` first, naming
    ``purpose`` in the error) and must return an already prepared pool unchanged. Both receive
    the strategy's resolved parameters, so an adapter may be tuned by them (DISCO's
    ``drop_incomplete``)."""

    name: str

    def load(self, files: FileInputs, params: dict[str, Any]) -> Pool: ...

    def prepare(
        self, pool: Pool, needs: Sequence[str], purpose: str, params: dict[str, Any]
    ) -> Pool: ...


@runtime_checkable
class StreamingAdapter(InputAdapter, Protocol):
    """An adapter that selects straight from the files (corpora larger than memory): ``stream``
    returns the finished manifest; ``load``/``prepare`` still serve in-memory pools."""

    def stream(
        self,
        files: FileInputs,
        budget: int | float | str | None,
        seed: int,
        params: dict[str, Any],
    ) -> StreamedSelection: ...


class WideInput:
    """One row per id: the input tables joined on the id column (``load_pool``)."""

    name = "wide"

    def load(self, files: FileInputs, params: dict[str, Any]) -> Pool:
        """The joined pool of ``files``; cost: reading the tables."""
        return load_pool(
            files.paths,
            columns=files.columns,
            input_format=files.input_format,
            use_labels=files.use_labels,
        )

    def prepare(
        self, pool: Pool, needs: Sequence[str], purpose: str, params: dict[str, Any]
    ) -> Pool:
        """``pool`` itself, once it has the ``needs`` columns. O(columns)."""
        pool.require(needs, purpose)
        return pool


WIDE = WideInput()


class StreamedInput(WideInput):
    """A wide pool in memory, and from files a stream handed to ``fn(files, budget, seed,
    params) -> StreamedSelection`` (the strategy reads the files itself)."""

    name = "streamed"

    def __init__(self, fn: Callable[..., StreamedSelection]) -> None:
        self._fn = fn

    def stream(
        self,
        files: FileInputs,
        budget: int | float | str | None,
        seed: int,
        params: dict[str, Any],
    ) -> StreamedSelection:
        """The strategy's manifest straight from ``files``; cost: the strategy's."""
        return self._fn(files, budget, seed, params)
