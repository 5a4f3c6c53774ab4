"""The pool: the joined input tables with typed accessors for the columns strategies need."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from selectkit import arguments
from selectkit.console import warn
from selectkit.errors import SelectkitDataError, SelectkitUsageError, option
from selectkit.io.formats import known_suffix
from selectkit.io.tables import Source, Table, check_unique_ids, read_table
from selectkit.io.vectors import as_matrix, as_tensor3, check_finite, check_probabilities

# Which command (or tool) makes each conventional column; used in "missing column" errors.
MADE_BY = {
    "id": "any table with unique ids (or none: row numbers are used)",
    "text": "your corpus",
    "embedding": "`selectkit embed`",
    "cluster": "`selectkit cluster`",
    "label": "your labels (null = unlabelled)",
    "proba": "your model's predicted class probabilities",
    "proba_mc": "your model's Monte-Carlo dropout passes",
    "score": "`selectkit scores` (aum, forgetting, el2n, loss) or your own scores",
    "group": "your metadata",
    "model": "your evaluation runs",
}


def column_option(role: str, value: str | None = None) -> str:
    """How a message names the option that renames the ``role`` column: ``--score-col aum`` on
    the command line, ``columns=Columns(score='aum')`` from Python."""
    flag = f"--{role.replace('_', '-')}-col" + ("" if value is None else f" {value}")
    python = f"columns=Columns({role}={'...' if value is None else repr(value)})"
    return option(f"{role}_col", cli=flag, python=python)


@dataclass(frozen=True)
class Columns:
    """The column name used for each role; every field is overridable by a CLI flag."""

    id: str = "id"
    text: str = "text"
    embedding: str = "embedding"
    cluster: str = "cluster"
    label: str = "label"
    proba: str = "proba"
    proba_mc: str = "proba_mc"
    score: str = "score"
    group: str = "group"
    model: str = "model"

    def name(self, role: str) -> str:
        return getattr(self, role)

    @classmethod
    def roles(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_overrides(self, **names: str | None) -> Columns:
        return replace(self, **{k: v for k, v in names.items() if v})


@dataclass
class Pool:
    """Rows to select from, joined on id, with typed access to embeddings, labels, ...

    ``frame`` holds the scalar and list columns; ``arrays`` holds matrices kept outside polars
    (memory-mapped ``.npy`` inputs), already aligned with ``frame``'s rows.

    The *labelled set* (rows never selected, which strategies such as kcenter treat as covered):
    the rows where ``labelled_col`` is non-null when it is given; otherwise, unless
    ``labels_as_data`` (strategies that prune labelled data) or not ``use_labels``, the rows
    whose label is non-null. Null marks an unlabelled row; ``-1`` and ``""`` are labels.
    """

    frame: pl.DataFrame
    columns: Columns = field(default_factory=Columns)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    use_labels: bool = True
    labelled_col: str | None = None
    labels_as_data: bool = False

    def __len__(self) -> int:
        return self.frame.height

    @property
    def where(self) -> str:
        paths = [s.path for s in self.sources]
        return "'" + "' + '".join(paths) + "'" if paths else "the pool"

    @property
    def ids(self) -> pl.Series:
        return self.frame.get_column(self.columns.id)

    def has(self, role: str) -> bool:
        name = self.columns.name(role)
        return name in self.frame.columns or name in self.arrays

    def require(self, roles: Sequence[str], purpose: str) -> None:
        """Raise naming the first missing column, which command makes it and how to rename."""
        for role in roles:
            if not self.has(role):
                name = self.columns.name(role)
                raise SelectkitDataError(
                    f"{purpose} needs column '{name}' ({role}), which {self.where} lacks; "
                    f"make it with {MADE_BY[role]}, or name another column with "
                    + column_option(role)
                )

    @cached_property
    def embeddings(self) -> np.ndarray:
        """The (n, d) float32 embedding matrix; zero-copy from fixed-size lists and .npy."""
        name = self.columns.embedding
        self.require(["embedding"], "this step")
        if name in self.arrays:
            return self.arrays[name]
        return as_matrix(self.frame.get_column(name), self.where)

    def values(self, role: str) -> np.ndarray:
        """Float64 (n,) values of a numeric column (e.g. ``score``), checked for null and NaN.

        ``role`` is a column role (``score``) or, failing that, a literal column name.
        """
        name = self.columns.name(role) if role in Columns.roles() else role
        if name not in self.frame.columns:
            self.require([role] if role in Columns.roles() else [], "this step")
            raise SelectkitDataError(f"{self.where} has no column '{name}'; name one that exists")
        col = self.frame.get_column(name)
        if not col.dtype.is_numeric():
            raise SelectkitDataError(
                f"column '{name}' of {self.where} holds {col.dtype}, not numbers; "
                f"name a numeric column (e.g. {column_option('score', 'aum')})"
            )
        values = col.cast(pl.Float64).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SelectkitDataError(
                f"column '{name}' of {self.where} has {int(bad.sum())} null, NaN or infinite "
                f"values (first at id {self.ids[row]!r}); fill or drop those rows first"
            )
        return values

    @cached_property
    def cluster_labels(self) -> np.ndarray:
        """Dense int64 (n,) cluster codes 0..k-1 (sorted by cluster id) from the cluster column,
        checked for nulls. ``cluster_labels.max() + 1`` is the number of clusters."""
        self.require(["cluster"], "this step")
        return self.cluster_codes(self.columns.cluster)

    def cluster_codes(self, name: str) -> np.ndarray:
        """Dense int64 codes 0..k-1 of the integer cluster column ``name`` (e.g. a
        ``cluster_level2`` tree level), checked for type and nulls. O(n log n)."""
        col = self.frame.get_column(name)
        if not col.dtype.is_integer():
            raise SelectkitDataError(
                f"column '{name}' of {self.where} holds {col.dtype}, not integer cluster ids; "
                "make it with `selectkit cluster` or name another column with "
                + column_option("cluster")
            )
        if col.null_count():
            raise SelectkitDataError(
                f"column '{name}' of {self.where} has {col.null_count()} null cluster ids; "
                "give every row a cluster (re-run `selectkit cluster` on the same rows)"
            )
        return np.unique(col.to_numpy(), return_inverse=True)[1].astype(np.int64)

    @cached_property
    def proba(self) -> np.ndarray:
        """The (n, C) float32 class-probability matrix; rows are checked to be distributions."""
        name = self.columns.proba
        self.require(["proba"], "this step")
        mat = self.arrays[name] if name in self.arrays else as_matrix(self.frame[name], self.where)
        check_probabilities(mat, self.where, name)
        return mat

    @cached_property
    def proba_mc(self) -> np.ndarray:
        """The (n, T, C) float32 tensor of T Monte-Carlo passes (or ensemble members) per row."""
        name = self.columns.proba_mc
        self.require(["proba_mc"], "this step")
        if name in self.arrays:
            mat = self.arrays[name]
        else:
            mat = as_tensor3(self.frame.get_column(name), self.where)
        check_probabilities(mat.reshape(-1, mat.shape[-1]), self.where, name, per_row=mat.shape[1])
        return mat

    @property
    def labelled_column(self) -> str | None:
        """The column whose non-null rows are the labelled set, or None when no row is."""
        if self.labelled_col is not None:
            return self.labelled_col
        if self.labels_as_data or not self.use_labels:
            return None
        return self.columns.label

    @cached_property
    def labelled_mask(self) -> np.ndarray:
        """Boolean (n,) mask of the labelled set (see the class doc); all False without one."""
        name = self.labelled_column
        if name is None or name not in self.frame.columns:
            return np.zeros(len(self), dtype=bool)
        return self.frame.get_column(name).is_not_null().to_numpy()

    @cached_property
    def candidates(self) -> np.ndarray:
        """Row indices (int64, ascending) that may be selected: those not in the labelled set."""
        idx = np.flatnonzero(~self.labelled_mask).astype(np.int64)
        if idx.size == 0:
            name = self.labelled_column
            raise SelectkitDataError(
                f"every row of {self.where} is already labelled: column '{name}' is non-null "
                f'in all {len(self)} rows (null = unlabelled; -1 and "" are labels), so nothing '
                "is left to select; name the column that marks the rows already labelled ("
                + option("labelled_col")
                + "), or ignore labels ("
                + option(
                    "label_col",
                    "none",
                    python="use_labels=False when loading: load_pool(..., use_labels=False)",
                )
                + ")"
            )
        return idx

    def marking_labelled(self, column: str | None, *, labels_as_data: bool = False) -> Pool:
        """This pool with its labelled set marked by ``column`` (non-null = already labelled)
        or, without one, by the label column unless ``labels_as_data``; ``self`` when that is
        already so. Refuses a ``column`` the pool lacks. O(1): the frame is shared."""
        if column is not None and column not in self.frame.columns:
            present = list(self.frame.columns)
            close = difflib.get_close_matches(column, present, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise SelectkitDataError(
                f"column '{column}' (the labelled-set column, {option('labelled_col')}) "
                f"is not in {self.where}; columns there: {', '.join(present)}{hint}"
            )
        if column == self.labelled_col and labels_as_data == self.labels_as_data:
            return self
        return replace(self, labelled_col=column, labels_as_data=labels_as_data)

    def in_id_order(self) -> tuple[Pool, np.ndarray | None]:
        """This pool with its rows sorted by id, and the permutation used (``sorted.row(i)`` is
        ``self.row(perm[i])``), or (self, None) when the rows are already in id order.

        The canonical order that makes a selection independent of the order and sharding of the
        input: every strategy run on it sees the same rows in the same order, so its random
        draws, k-means samples and positional tie-breaks are the same. Ids are unique, so the
        order is total. Cost: one O(n log n) sort of the ids; when the rows are out of order, a
        copy of the frame's columns in the new order, and of each matrix kept outside it
        (memory-mapped embeddings included) when first read.
        """
        ids = self.ids
        if ids.is_sorted():
            return self, None
        perm = ids.arg_sort().to_numpy().astype(np.int64)
        pool = Pool(
            frame=self.frame[perm],
            columns=self.columns,
            arrays=_GatheredRows(self.arrays, perm),  # type: ignore[arg-type]
            sources=self.sources,
            use_labels=self.use_labels,
            labelled_col=self.labelled_col,
            labels_as_data=self.labels_as_data,
        )
        return pool, perm

    @classmethod
    def from_arrays(
        cls,
        embeddings: np.ndarray | Sequence | None = None,
        *,
        ids: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
        columns: Columns | None = None,
        use_labels: bool = True,
        **extra: Sequence | np.ndarray,
    ) -> Pool:
        """Build a pool from in-memory arrays (the Python API's entry point); ids default to 0..n-1.

        ``ids``, ``labels`` and ``embeddings`` become the columns ``columns`` names for their
        roles (default ``id``, ``label``, ``embedding``); every other keyword is a column under
        its own name (``score=...``, or ``aum=...`` with ``columns=Columns(score="aum")``).
        The proba (n, C) and proba_mc (n, T, C) columns stay numpy when given as numpy arrays.
        ``use_labels=False`` treats every row as unlabelled. Cost: one copy of each array."""
        cols = arguments.instance(columns, Columns, "columns", "Columns(label='y')") or Columns()
        if not isinstance(use_labels, bool):
            raise SelectkitUsageError(f"use_labels= must be True or False, not {use_labels!r}")
        for name, value in (("embeddings", embeddings), ("ids", ids), ("labels", labels)):
            _check_array_like(value, name)
        for name, value in extra.items():
            _check_array_like(value, name)
        taken = {cols.id: "ids", cols.label: "labels", cols.embedding: "embeddings"}
        for name in extra:
            if name in taken:
                raise SelectkitUsageError(
                    f"column '{name}' given twice: as {name}= and as {taken[name]}=; drop one"
                )
        n = _first_len(embeddings, ids, labels, *extra.values())
        data: dict[str, object] = {cols.id: np.arange(n, dtype=np.int64) if ids is None else ids}
        if labels is not None:
            # an object array with None for unlabelled rows: let polars infer int/str with nulls
            obj = isinstance(labels, np.ndarray) and labels.dtype == object
            floats = isinstance(labels, np.ndarray) and labels.dtype.kind == "f"
            if floats:  # NaN marks an unlabelled row, as None does
                data[cols.label] = pl.Series(labels).fill_nan(None)
            else:
                data[cols.label] = labels.tolist() if obj else labels
        arrays: dict[str, np.ndarray] = {}
        for name, ndim in ((cols.proba, 2), (cols.proba_mc, 3)):
            value = extra.get(name)
            if isinstance(value, np.ndarray) and value.ndim == ndim:  # kept outside polars
                if value.shape[0] != n:
                    raise SelectkitUsageError(
                        f"{name} has {value.shape[0]} rows but the ids have {n}"
                    )
                arrays[name] = np.ascontiguousarray(extra.pop(name), dtype=np.float32)
        data.update(extra)
        for name, value in data.items():
            if len(value) != n:  # type: ignore[arg-type]
                raise SelectkitUsageError(
                    f"{name} has {len(value)} rows but the first array has {n}"  # type: ignore[arg-type]
                )
        frame = pl.DataFrame(data, strict=False)
        where = "the given arrays"
        check_unique_ids(frame.get_column(cols.id), where)
        if embeddings is not None:
            matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
            if matrix.ndim != 2:
                raise SelectkitUsageError(
                    f"embeddings= must be a 2-d (rows, dim) array, not one of shape {matrix.shape}"
                )
            check_finite(matrix, where, "embeddings")
            if matrix.shape[0] != n:
                raise SelectkitUsageError(
                    f"embeddings have {matrix.shape[0]} rows but the ids/labels have {n}"
                )
            arrays[cols.embedding] = matrix
        return cls(frame=frame, columns=cols, arrays=arrays, use_labels=use_labels)


def _check_array_like(value: object, name: str) -> None:
    """Refuse what is not a sequence of values (a str, a dict, a number) as a column."""
    if value is None or isinstance(value, (np.ndarray, pl.Series)):
        return
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise SelectkitUsageError(
            f"{name}= must be an array or a list with one value per row, not {type(value).__name__}"
        )


class _GatheredRows(Mapping):
    """Matrices by name, seen through a row permutation: each is gathered (copied in the new row
    order) when first read, so a strategy that never reads a matrix never pays for its copy."""

    def __init__(self, arrays: Mapping[str, np.ndarray], perm: np.ndarray) -> None:
        self._arrays, self._perm = arrays, perm
        self._gathered: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._gathered:
            self._gathered[name] = np.ascontiguousarray(self._arrays[name][self._perm])
        return self._gathered[name]

    def __contains__(self, name: object) -> bool:  # Mapping's default would gather the matrix
        return name in self._arrays

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


def _first_len(*things: object) -> int:
    for thing in things:
        if thing is not None:
            return len(thing)  # type: ignore[arg-type]
    raise SelectkitUsageError("give at least embeddings or ids to build a pool")


def load_pool(
    paths: str | Path | Sequence[str | Path],
    *,
    columns: Columns | None = None,
    input_format: str | None = None,
    use_labels: bool = True,
) -> Pool:
    """Read every table in ``paths`` (one path, or a list) and join them on the id column into
    one ``Pool``.

    The first table fixes the rows and their order; every later table must hold an id for each of
    them (extra rows are ignored). A column present in two tables is taken from the first. Memory:
    the tables themselves; ``.npy`` matrices stay memory-mapped when their order is unchanged.
    """
    paths = arguments.paths(paths, "paths")
    cols = arguments.instance(columns, Columns, "columns", "Columns(label='y')") or Columns()
    if input_format is not None:
        arguments.text(input_format, "input_format")
    if not isinstance(use_labels, bool):
        raise SelectkitUsageError(f"use_labels= must be True or False, not {use_labels!r}")
    if not paths:
        raise SelectkitUsageError("give at least one input table")
    if sum(str(p) == "-" for p in paths) > 1:
        raise SelectkitUsageError("stdin ('-') can be given only once")
    # --input-format names the format of stdin and of files without a known extension; a known
    # extension wins, so a .parquet and a .jsonl can be joined in one call
    tables = [
        read_table(
            p,
            input_format=input_format if str(p) == "-" or not known_suffix(p) else None,
            id_col=cols.id,
        )
        for p in paths
    ]
    return join_tables(tables, cols, use_labels=use_labels)


def check_named_columns(present: Sequence[str], columns: Columns, paths: Sequence[str]) -> None:
    """Refuse a column named for a role (``--label-col lable``) that no input has.

    Only names that differ from a role's default are checked: the defaults are conventions that
    an input may or may not follow, but a name the user gave is a request. The id column is left
    out, since a table without one uses row numbers. Cost: O(roles x columns).
    """
    default = Columns()
    for role in Columns.roles():
        name = columns.name(role)
        if role == "id" or name == default.name(role) or name in present:
            continue
        close = difflib.get_close_matches(name, list(present), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        where = ", ".join(f"'{p}'" for p in paths)
        raise SelectkitDataError(
            f"column '{name}' (the {role.replace('_', ' ')} column) is in none of {where}; "
            f"columns there: {', '.join(present)}{hint}"
        )


def join_tables(tables: Sequence[Table], columns: Columns, *, use_labels: bool = True) -> Pool:
    """Left-join ``tables`` on ``columns.id`` in the first table's row order; see ``load_pool``."""
    first = tables[0]
    frame = first.frame
    arrays = dict(first.arrays)
    id_col = columns.id
    for table in tables[1:]:
        where = f"'{table.source.path}'"
        left_t, right_t = frame.schema[id_col], table.frame.schema[id_col]
        if left_t != right_t and not (left_t.is_integer() and right_t.is_integer()):
            raise SelectkitDataError(
                f"{where}: ids in column '{id_col}' are {right_t} but '{first.source.path}' has "
                f"{left_t}; give both tables ids of one type"
            )
        dupes = [c for c in table.frame.columns if c != id_col and c in frame.columns]
        dupes += [c for c in table.arrays if c in arrays or c in frame.columns]
        if dupes:
            warn(f"column(s) {dupes} of {where} ignored; taken from an earlier input")
        right = table.frame.drop([c for c in dupes if c in table.frame.columns])
        right = right.with_columns(pl.col(id_col).cast(left_t)).with_row_index("__row")
        joined = frame.join(right, on=id_col, how="left", maintain_order="left")
        missing = joined.get_column("__row").null_count()
        if missing:
            example = joined.filter(pl.col("__row").is_null()).get_column(id_col)[0]
            raise SelectkitDataError(
                f"{where} lacks {missing} of the {frame.height} ids of '{first.source.path}' "
                f"(e.g. {example!r}); give tables that cover the same ids"
            )
        rows = joined.get_column("__row").to_numpy()
        identity = rows.shape[0] == table.height and np.array_equal(rows, np.arange(rows.shape[0]))
        for name, matrix in table.arrays.items():
            if name not in dupes:
                arrays[name] = matrix if identity else np.ascontiguousarray(matrix[rows])
        frame = joined.drop("__row")
    check_named_columns([*frame.columns, *arrays], columns, [t.source.path for t in tables])
    return Pool(
        frame=frame,
        columns=columns,
        arrays=arrays,
        sources=[t.source for t in tables],
        use_labels=use_labels,
    )
