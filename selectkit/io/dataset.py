"""Dataset folders: one Parquet part per shard plus a completion record, written resumably.

A command that writes many rows with ``-o DIR/`` makes::

    DIR/part-00000.parquet     one per shard, named by the shard's index; each carries the
    DIR/part-00001.parquet     selectkit provenance in its Arrow schema metadata
    ...
    DIR/_selectkit.json        the completion record: command, identity (input fingerprints +
                               parameters), the run's provenance, every part (name, shard key,
                               rows, fingerprint), complete: true

The run stages everything in ``.DIR.sk-partial/`` beside ``DIR`` (a stable name, so a rerun with
``--resume`` finds it): each part is written atomically by its kernel (temporary file, fsync,
rename), the driver keeps a progress record there, and only :meth:`DatasetWriter.commit` swaps
the staging folder in place of ``DIR``. Whatever stops the run before that (an error, Ctrl-C,
SIGTERM, SIGKILL, a full disk), the old ``DIR`` is untouched and the staging folder holds the
finished parts and their progress record, never a partial part.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from selectkit.console import note, warn
from selectkit.errors import (
    SelectkitDataError,
    SelectkitError,
    SelectkitInternalError,
    SelectkitMismatchError,
    SelectkitUsageError,
    option,
)
from selectkit.io.formats import STDIO
from selectkit.io.provenance import Provenance, _jsonable
from selectkit.io.tables import fingerprint_file
from selectkit.io.write import (
    PARTIAL_SUFFIX,
    TableWriter,
    _commit,
    _fsync_folder,
    _group,
    _write_error,
    atomic_part,
    remove_stale_temporaries,
)

__all__ = [
    "PROGRESS_NAME",
    "RECORD_NAME",
    "DatasetRecord",
    "DatasetWriter",
    "PartRecord",
    "combined_fingerprint",
    "dataset_fingerprint",
    "dataset_parts",
    "identity_changes",
    "is_dataset_folder",
    "is_folder_output",
    "part_name",
    "read_record",
    "staging_of",
    "write_part",
]

#: the completion record of a finished dataset folder
RECORD_NAME = "_selectkit.json"
#: the progress record of a run still being staged (``.DIR.sk-partial/``)
PROGRESS_NAME = "_selectkit.progress.json"
_LOCK_NAME = "_selectkit.lock"
#: staging folders this process left behind for ``--resume`` (a run that failed or was
#: stopped), with their finished parts: what the CLI's "stopped by ..." line can mention
KEPT: list[tuple[str, int]] = []
_FORMAT = "selectkit-dataset"
_VERSION = 1
_PART_GLOB = "part-*.parquet"


class ShardLike(Protocol):
    """What the writer needs of a shard (``selectkit.engine.shards.Shard`` has it)."""

    @property
    def index(self) -> int: ...

    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class PartRecord:
    """One finished part: file name, shard key, rows and the file's data fingerprint.

    ``fingerprint`` is None for an empty shard that yielded no frame at all (no file is
    written for it). Small and picklable: kernels return it to the driver.
    """

    name: str
    key: str
    rows: int
    fingerprint: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PartRecord:
        """Parse one entry of a record's ``parts``; ValueError when it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a part entry is not an object")
        name, key, rows, fp = (data.get(k) for k in ("name", "key", "rows", "fingerprint"))
        if not (isinstance(name, str) and isinstance(key, str) and isinstance(rows, int)):
            raise ValueError(f"part entry {data!r} lacks a name, key or row count")
        if fp is not None and not isinstance(fp, str):
            raise ValueError(f"part entry {name!r} has a fingerprint that is not text")
        if os.path.basename(name) != name or name.startswith("."):
            raise ValueError(f"part name {name!r} is not a plain file name")
        return cls(name, key, rows, fp)


@dataclass
class DatasetRecord:
    """A dataset folder's record (``_selectkit.json``) or a staging folder's progress record."""

    command: str
    identity: dict[str, Any]
    parts: list[PartRecord]
    complete: bool
    provenance: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": _FORMAT,
            "version": _VERSION,
            "command": self.command,
            "complete": self.complete,
            "identity": self.identity,
            "rows": self.rows,
            "parts": [p.as_dict() for p in self.parts],
        }
        if self.complete:
            out["provenance"] = self.provenance
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DatasetRecord:
        """Parse a record; ValueError naming what is wrong."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} record")
        if data.get("version") != _VERSION:
            raise ValueError(
                f"record version {data.get('version')!r}, this selectkit reads {_VERSION}"
            )
        identity = data.get("identity")
        parts = data.get("parts")
        if not isinstance(identity, dict) or not isinstance(parts, list):
            raise ValueError("no identity or parts")
        provenance = data.get("provenance")
        return cls(
            command=str(data.get("command", "")),
            identity=identity,
            parts=[PartRecord.from_dict(p) for p in parts],
            complete=data.get("complete") is True,
            provenance=provenance if isinstance(provenance, dict) else None,
        )


def part_name(index: int) -> str:
    """The file name of shard ``index``'s part: ``part-00003.parquet``."""
    return f"part-{index:05d}.parquet"


def is_folder_output(path: str | Path) -> bool:
    """Whether ``-o path`` asks for a dataset folder: a trailing slash or an existing folder."""
    text = str(path)
    if text == STDIO:
        return False
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def is_dataset_folder(path: str | Path) -> bool:
    """Whether an input names a folder (a dataset folder or a folder of part files). O(1)."""
    return str(path) != STDIO and os.path.isdir(path)


def staging_of(output: str | Path) -> Path:
    """The staging folder of the dataset folder ``output``: ``.NAME.sk-partial`` beside it."""
    out = _clean(output)
    return out.parent / f".{out.name}{PARTIAL_SUFFIX}"


def _clean(output: str | Path) -> Path:
    text = str(output).rstrip("/" + os.sep)
    return Path(os.path.abspath(text or os.sep))


def _output_of(staging: Path) -> Path:
    name = staging.name
    if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
        return staging.parent / name[1 : -len(PARTIAL_SUFFIX)]
    return staging


# ---------------------------------------------------------------------------------------------
# kernel side


def write_part(
    staging: str | Path,
    shard: ShardLike,
    frames: Iterable[pl.DataFrame],
    provenance: Provenance | None,
) -> PartRecord:
    """Write shard ``shard``'s rows as ``staging/part-{index:05d}.parquet``; return its record.

    Runs in a kernel (any process, any node that sees ``staging``). The part is written to a
    temporary file in ``staging``, fsynced and renamed, so it is either whole or absent; the
    provenance goes into its Arrow schema metadata as :class:`TableWriter` does. Memory is
    O(batch + row group); it costs the write plus one read to fingerprint the finished file.
    A shard whose ``frames`` yield nothing writes no file (``fingerprint`` None); one that
    yields only empty frames writes a part with the schema and no rows. A write error (a full
    disk) names the dataset folder and leaves no partial part.
    """
    staging = Path(staging)
    name = part_name(shard.index)
    path = staging / name
    dataset = _output_of(staging)
    if not staging.is_dir():
        raise SelectkitError(
            f"cannot write '{dataset}': its staging folder '{staging}' does not exist here; "
            "on a cluster the output must be on storage that every node sees"
        )
    batches = iter(frames)
    first = next(batches, None)
    if first is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # an earlier run's part of this shard
        return PartRecord(name, shard.key, 0, None)
    with TableWriter(path, output_format="parquet", part_of=dataset) as writer:
        writer.provenance = provenance
        writer.write(first)
        for frame in batches:
            writer.write(frame)
    return PartRecord(name, shard.key, writer.rows, fingerprint_file(path))


# ---------------------------------------------------------------------------------------------
# driver side


class DatasetWriter:
    """Write a dataset folder resumably: the driver's side of :func:`write_part`.

    Use as a context manager::

        with DatasetWriter("emb/", command="embed", identity=identity, resume=resume) as w:
            for record in engine.map(kernel, w.todo(shards), shared=w.staging):
                w.done(record)
            w.commit(provenance)

    ``identity`` is what ``resume`` must match: ``{"inputs": [fingerprints...], "params":
    {...}}`` (JSON-able). With ``resume``, the parts of an unfinished run (or of a finished
    ``DIR``) whose identity and shard key match, and whose file is intact, are reused;
    a different identity is refused naming what changed. Without it, an unfinished run's
    staging folder is discarded (one warning line). Costs: entering reads the old record; each
    :meth:`done` rewrites the progress record (O(parts)); :meth:`todo` re-reads the reused
    parts once to check their fingerprints; :meth:`commit` is O(parts) plus the old folder's
    removal. Two runs writing the same folder at once are refused (a lock in the staging).
    """

    def __init__(
        self, output: str | Path, *, command: str, identity: dict, resume: bool = False
    ) -> None:
        self.output = _clean(output)
        self.command = command
        self.identity = _normal_identity(identity)
        self.resume = resume
        self.staging = staging_of(self.output)
        #: parts reused from an earlier run (filled by :meth:`todo`)
        self.reused: list[PartRecord] = []
        self._previous: dict[str, PartRecord] = {}
        self._done: dict[str, PartRecord] = {}
        self._plan: dict[str, ShardLike] | None = None
        self._lock: int | None = None
        self.committed = False

    # -- entering: find, check and lock the staging folder

    def __enter__(self) -> DatasetWriter:
        parent = self.output.parent
        if not parent.is_dir():
            raise SelectkitUsageError(f"output folder '{parent}' does not exist; create it first")
        if self.output.exists() and not self.output.is_dir():
            raise SelectkitUsageError(
                f"output '{self.output}' is a file; give a folder path (DIR/) or remove the file"
            )
        if self.output.is_dir() and not _replaceable(self.output):
            # the commit replaces the whole folder: never one selectkit did not write
            raise SelectkitUsageError(
                f"output folder '{self.output}' already holds files and is not a selectkit "
                f"dataset folder (it has no {RECORD_NAME}); give a new or empty folder"
            )
        remove_stale_temporaries(parent, self.output.name)  # a swap killed half-way
        existed = self.staging.exists()
        try:
            self._open_staging()
        except BaseException:
            self._unlock()
            if not existed:  # refused before any work: leave nothing behind
                shutil.rmtree(self.staging, ignore_errors=True)
            raise
        return self

    def _open_staging(self) -> None:
        if self.staging.is_dir():
            self._take_lock()
            previous = _read_any_record(self.staging)
            if self.resume and previous is not None:
                self._check_identity(previous, self.staging)
                self._previous = {p.name: p for p in previous.parts}
            elif self.resume:
                warn(
                    f"the unfinished run in '{self.staging.name}' has no readable progress "
                    "record; starting over"
                )
            else:
                warn(
                    f"discarding an unfinished run in '{self.staging.name}'; use "
                    f"{option('resume')} to continue it"
                )
            self._clear_staging(keep=set(self._previous))
        else:
            try:
                self.staging.mkdir()
            except FileExistsError:  # a file in the way, or a race with another run
                raise SelectkitUsageError(
                    f"'{self.staging}' is in the way of the output's staging folder; remove it"
                ) from None
            except OSError as exc:
                raise _write_error(self.output, exc) from None
            self._take_lock()
            if self.resume:
                self._adopt_finished_output()
            self._write_progress(list(self._previous.values()))

    def _adopt_finished_output(self) -> None:
        """With ``resume`` and a complete ``DIR`` of the same identity, reuse its parts (hard
        links into the staging folder: O(parts), no copy; a copy where links are refused)."""
        if not (self.output / RECORD_NAME).is_file():
            return
        record = read_record(self.output)
        self._check_identity(record, self.output)
        for part in record.parts:
            if part.fingerprint is None or not (self.output / part.name).is_file():
                continue
            try:
                os.link(self.output / part.name, self.staging / part.name)
            except OSError:
                shutil.copy2(self.output / part.name, self.staging / part.name)
        self._previous = {p.name: p for p in record.parts}

    def _check_identity(self, record: DatasetRecord, where: Path) -> None:
        changes = identity_changes(record.identity, self.identity)
        if record.command != self.command:
            changes.insert(
                0, f"the command changed ({record.command!r} then, {self.command!r} now)"
            )
        if changes:
            run = "its finished run" if where == self.output else f"the run in '{where.name}'"
            raise SelectkitMismatchError(
                f"cannot resume '{self.output}' from {run}: {'; '.join(changes)}; drop "
                f"{option('resume')} to start over, or restore that run's inputs and parameters"
            )

    def _clear_staging(self, keep: set[str]) -> None:
        """Remove everything in the staging folder but the lock and the ``keep`` parts (an
        earlier run's temporaries, parts nobody vouches for). The progress record is rewritten
        (with the kept parts) before a completion record left by an interrupted swap goes, so
        the kept parts are vouched for at every moment."""
        for entry in self.staging.iterdir():
            if entry.name in keep or entry.name in (_LOCK_NAME, PROGRESS_NAME, RECORD_NAME):
                continue
            _remove(entry)
        self._write_progress([p for n, p in sorted(self._previous.items()) if n in keep])
        with contextlib.suppress(FileNotFoundError):
            (self.staging / RECORD_NAME).unlink()

    def _take_lock(self) -> None:
        try:
            fd = os.open(self.staging / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _write_error(self.output, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SelectkitError(
                    f"another run is writing '{self.output}' (its staging folder "
                    f"'{self.staging.name}' is locked); wait for it to finish or stop it"
                ) from None
            raise _write_error(self.output, exc) from None
        self._lock = fd

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing releases the flock
            self._lock = None

    # -- the run

    def todo(self, shards: Sequence[ShardLike]) -> list[ShardLike]:
        """The shards still to compute, in plan order: all of them unless ``resume`` found
        intact parts of the same shard keys. ``shards`` is the whole plan (commit needs a part
        for each). Costs one read of every reused part (its fingerprint)."""
        if self._lock is None:
            raise SelectkitInternalError("use DatasetWriter as a context manager (with ...)")
        plan: dict[str, ShardLike] = {}
        for shard in shards:
            name = part_name(shard.index)
            if name in plan:
                raise SelectkitInternalError(f"two shards have index {shard.index}")
            plan[name] = shard
        self._plan = plan
        todo: list[ShardLike] = []
        self.reused = []
        for name, shard in plan.items():
            old = self._previous.get(name)
            if old is not None and old.key == shard.key and self._intact(old):
                self._done[name] = old
                self.reused.append(old)
            else:
                self._done.pop(name, None)
                todo.append(shard)
        for name in set(self._previous) - {p.name for p in self.reused}:
            with contextlib.suppress(FileNotFoundError):
                (self.staging / name).unlink()
        if self.resume:
            note(
                f"resuming '{self.output}': {len(self.reused)} of {len(plan)} part(s) reused, "
                f"{len(todo)} to compute"
            )
        self._previous = {}
        self._write_progress(self._ordered_done())
        return todo

    def _intact(self, part: PartRecord) -> bool:
        path = self.staging / part.name
        if part.fingerprint is None:
            return not path.exists()
        return path.is_file() and fingerprint_file(path) == part.fingerprint

    def done(self, record: PartRecord) -> None:
        """Note that a part is finished; the progress record is rewritten atomically (O(parts))."""
        if self._plan is None:
            raise SelectkitInternalError("DatasetWriter.done() before todo()")
        shard = self._plan.get(record.name)
        if shard is None or shard.key != record.key:
            raise SelectkitInternalError(
                f"part {record.name} (shard {record.key!r}) is not in this run's plan"
            )
        self._done[record.name] = record
        self._write_progress(self._ordered_done())

    def _ordered_done(self) -> list[PartRecord]:
        order = list(self._plan) if self._plan is not None else sorted(self._done)
        return [self._done[n] for n in order if n in self._done]

    def _write_progress(self, parts: list[PartRecord]) -> None:
        record = DatasetRecord(self.command, self.identity, parts, complete=False)
        _write_json(self.staging / PROGRESS_NAME, record.to_json(), self.output)

    def commit(self, provenance: Provenance | dict | None) -> None:
        """Write the completion record and swap the staging folder in place of the output.

        The old output is moved aside and removed only once the new one is in place (inside an
        :func:`~selectkit.io.write.output_group`, at the group's end, with the group's other
        outputs). O(parts) plus removing the old folder.
        """
        if self._plan is None:
            raise SelectkitInternalError("DatasetWriter.commit() before todo()")
        missing = [s.key for n, s in self._plan.items() if n not in self._done]
        if missing:
            raise SelectkitInternalError(
                f"cannot commit '{self.output}': shard {missing[0]!r} has no part"
            )
        if isinstance(provenance, Provenance):
            provenance = json.loads(provenance.to_json())
        record = DatasetRecord(
            self.command, self.identity, self._ordered_done(), complete=True, provenance=provenance
        )
        _write_json(self.staging / RECORD_NAME, record.to_json(), self.output)
        keep = {p.name for p in record.parts if p.fingerprint is not None} | {RECORD_NAME}
        for entry in self.staging.iterdir():
            if entry.name not in keep:  # the progress record, the lock, stray temporaries
                _remove(entry)
        _fsync_folder(self.staging)
        group = _group.get()
        if group is None:
            _commit([(self.staging, self.output)])
        else:
            group.append((self.staging, self.output))
        self.committed = True

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._unlock()
        if exc_type is not None and self._plan is not None and self.staging.is_dir():
            KEPT.append((str(self.staging), len(self._done)))
        return False


def _replaceable(folder: Path) -> bool:
    """True for an empty folder or one a selectkit run committed (it has its record)."""
    return (folder / RECORD_NAME).is_file() or next(folder.iterdir(), None) is None


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()


def _write_json(path: Path, text: str, dataset: Path) -> None:
    with atomic_part(path, dataset) as tmp:
        tmp.write_text(text)


def _normal_identity(identity: dict) -> dict[str, Any]:
    """The identity as it reads back from JSON (tuples as lists, numpy scalars as numbers)."""
    if not isinstance(identity, dict):
        raise SelectkitInternalError("a dataset identity is a dict of inputs and params")
    return json.loads(json.dumps(identity, sort_keys=True, default=_jsonable))


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two identities, one phrase each (empty when they match).

    Inputs are compared position by position (named by their ``path`` when they carry one),
    parameters by name, with the old and the new value. O(size of the identities).
    """
    changes: list[str] = []
    old_in, new_in = old.get("inputs", []), new.get("inputs", [])
    if not isinstance(old_in, list) or not isinstance(new_in, list) or len(old_in) != len(new_in):
        n_old = len(old_in) if isinstance(old_in, list) else "?"
        changes.append(f"the inputs changed ({n_old} then, {len(new_in)} now)")
    else:
        for i, (a, b) in enumerate(zip(old_in, new_in, strict=True)):
            if a != b:
                changes.append(_input_change(i, a, b))
    old_p, new_p = old.get("params", {}) or {}, new.get("params", {}) or {}
    for name in sorted(set(old_p) | set(new_p)):
        a, b = old_p.get(name, _UNSET), new_p.get(name, _UNSET)
        if a != b:
            changes.append(f"parameter '{name}' changed ({_show(a)} then, {_show(b)} now)")
    for name in sorted((set(old) | set(new)) - {"inputs", "params"}):
        if old.get(name, _UNSET) != new.get(name, _UNSET):
            changes.append(
                f"'{name}' changed ({_show(old.get(name, _UNSET))} then, "
                f"{_show(new.get(name, _UNSET))} now)"
            )
    return changes


_UNSET = object()


def _show(value: Any) -> str:
    return "unset" if value is _UNSET else json.dumps(value, sort_keys=True, default=str)


def _input_change(i: int, old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        name = new.get("path") or old.get("path") or f"#{i + 1}"
        if old.get("path") != new.get("path"):
            return f"input #{i + 1} changed ('{old.get('path')}' then, '{new.get('path')}' now)"
        fields = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        what = fields[0] if fields else "content"
        return (
            f"input '{name}' changed (its {what} was {_show(old.get(what, _UNSET))}, "
            f"now {_show(new.get(what, _UNSET))})"
        )
    return f"input #{i + 1} changed (fingerprint {_show(old)} then, {_show(new)} now)"


# ---------------------------------------------------------------------------------------------
# reading side


def _read_any_record(staging: Path) -> DatasetRecord | None:
    """A staging folder's progress record (or its completion record, when the swap did not
    happen); None when it has neither or they cannot be read (nothing then vouches for it)."""
    for name in (RECORD_NAME, PROGRESS_NAME):
        path = staging / name
        if path.is_file():
            try:
                return DatasetRecord.from_json(path.read_text())
            except (ValueError, OSError, UnicodeDecodeError):
                return None
    return None


def read_record(folder: str | Path) -> DatasetRecord:
    """The completion record of a dataset folder; a data error naming it when it is malformed."""
    path = Path(folder) / RECORD_NAME
    try:
        return DatasetRecord.from_json(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise SelectkitDataError(
            f"'{path}' is not a readable selectkit dataset record ({str(exc)[:200]}); "
            "re-create the folder with the command that made it"
        ) from None
    except OSError as exc:
        raise SelectkitDataError(f"cannot read '{path}' ({exc.strerror or exc})") from None


def dataset_parts(folder: str | Path) -> list[str]:
    """The part files of a dataset folder, in record order (paths joined to ``folder``).

    A folder with a completion record gives its parts (empty shards without a file skipped);
    one without a record but with ``part-*.parquet`` files (Spark, Ray, Dask output) gives them
    sorted by name. A folder with a progress record but no completion record is an unfinished
    run: a data error saying so. O(parts); reads the record only.
    """
    base = str(folder)
    root = Path(base)
    if (root / RECORD_NAME).is_file():
        record = read_record(root)
        if not record.complete:
            raise _unfinished(base)
        paths = []
        for part in record.parts:
            if part.fingerprint is None:
                continue
            if not (root / part.name).is_file():
                raise SelectkitDataError(
                    f"dataset folder '{base}' lists {part.name}, which is missing; re-create "
                    "the folder with the command that made it"
                )
            paths.append(os.path.join(base, part.name))
        return paths
    if (root / PROGRESS_NAME).is_file() or root.name.endswith(PARTIAL_SUFFIX):
        raise _unfinished(base)
    found = sorted(p.name for p in root.glob(_PART_GLOB) if p.is_file())
    if not found:
        raise SelectkitDataError(
            f"input '{base}' is a folder without {RECORD_NAME} or part-*.parquet files; give a "
            "table file, a dataset folder or a quoted glob ('shards/*.jsonl')"
        )
    return [os.path.join(base, name) for name in found]


def _unfinished(folder: str) -> SelectkitDataError:
    return SelectkitDataError(
        f"'{folder}' holds an unfinished run (no completion record {RECORD_NAME}); rerun the "
        f"command that writes it with {option('resume')} to finish it"
    )


def dataset_fingerprint(folder: str | Path) -> str:
    """One fingerprint for a dataset folder's data, independent of where it lies.

    With a completion record, from the record's part fingerprints (O(parts), no data read);
    without one, each part file is fingerprinted (one read of the data). The same data in the
    same parts gives the same value as :func:`combined_fingerprint` over the part files.
    """
    root = Path(folder)
    if (root / RECORD_NAME).is_file():
        record = read_record(root)
        pairs = [(p.name, p.fingerprint) for p in record.parts if p.fingerprint is not None]
        return combined_fingerprint(pairs)
    paths = dataset_parts(folder)
    return combined_fingerprint([(os.path.basename(p), fingerprint_file(p)) for p in paths])


def combined_fingerprint(pairs: Iterable[tuple[str, str | None]]) -> str:
    """``parts-blake2b-128:<hex>`` of (name, fingerprint) pairs in order: one value for a
    multi-file input. O(pairs)."""
    h = hashlib.blake2b(digest_size=16)
    for name, fp in pairs:
        h.update(f"{name}\t{fp}\n".encode())
    return "parts-blake2b-128:" + h.hexdigest()
