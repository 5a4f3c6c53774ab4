"""How a strategy's input is read and shaped: the input adapter each strategy declares.

``select_files`` asks the strategy's adapter to *load* the input files into a ``Pool``, and
``select`` asks it to *prepare* an in-memory pool for the strategy (check the needed columns,
reshape). The runner knows no strategy by name: DISCO's long tables (one row per model and id,
pivoted to one row per id) are ``selectkit.disco.data.LONG``; DSIR's streaming over corpora larger
than memory is ``selectkit.strategies.dsir.STREAMED``; everything else is ``WIDE``. An adapter that
also has ``stream`` (a ``StreamingAdapter``) reads files itself and returns the finished manifest.

How a strategy runs on an engine (``select --engine local|ray``) is declared next to it: a
strategy with a ``ShardPlan`` (``register_strategy(..., shards=...)``; every row-local scored
strategy gets one, see ``selectkit.strategies.sharded.ShardedTopK``) may run per shard of its
input on the engine's workers; every other strategy, and a plan that declines a call (``run``
returns None), reads the pool on the driver, on either engine.
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
    # the engine (``selectkit.engine.Engine``) that per-shard work runs on; None = in process.
    # A streaming adapter may hand its shards to it (``engine.map``).
    engine: Any = None


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


@dataclass(frozen=True)
class ShardRequest:
    """What ``select_files`` asks a strategy's ``ShardPlan`` to select: the files, the budget
    as given, the seed, the resolved parameters, the labelled-set column and whether labels are
    data to the strategy, whether coverage metrics are wanted, the acquisition modifiers
    (``selectkit.strategies.scored.Acquisition``) and the strategy's name for messages."""

    files: FileInputs
    budget: int | float | str | None
    seed: int
    params: dict[str, Any]
    labelled_col: str | None
    labels_as_data: bool
    metrics: bool
    modifiers: Any
    strategy: str


@dataclass
class ShardedPick:
    """What a ``ShardPlan`` hands back: the finished manifest (id, rank, score, weight and
    cluster when the input has one), the pool's row counts, the inputs read
    (``Source.as_dict()`` per file) and the selection's metrics."""

    manifest: Any  # pl.DataFrame
    pool_rows: int
    selectable_rows: int
    inputs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ShardPlan(Protocol):
    """How a strategy runs per shard (``selectkit.engine.shards.plan_shards``) on an engine.

    ``name`` is shown in the docs' "what runs where" table. ``run`` returns the selection made
    from per-shard kernels reduced on the driver in shard order, or None when this call needs
    the whole pool (e.g. a pool-wide modifier): ``select_files`` then reads the pool on the
    driver as for any strategy. Its result must not depend on the engine or on the sharding."""

    name: str

    def run(self, request: ShardRequest, engine: Any) -> ShardedPick | None: ...
