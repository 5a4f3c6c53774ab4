"""Write tables atomically: to a temporary file in the target folder, renamed only on success."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import errno
import glob
import gzip
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from selectkit import interrupts
from selectkit.errors import SelectkitError, SelectkitUsageError, option
from selectkit.io.formats import STDIO, detect_format, is_gzip
from selectkit.io.provenance import METADATA_KEY, Provenance
from selectkit.io.vectors import as_matrix

PARQUET_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1 << 16  # rows per Parquet row group, whatever the caller's batch size


def check_output_path(
    output: str | Path, inputs: Sequence[str | Path], *, folder: bool = False
) -> None:
    """Refuse an output that is one of the inputs or lies in a folder that does not exist.

    ``folder``: the caller writes a dataset folder (``-o DIR/``); an existing folder is then
    fine (it is replaced whole at the end), an existing file is refused, and so is an input
    inside the folder (the swap would remove it). O(inputs).
    """
    out = str(output)
    if out == STDIO:
        return
    real = os.path.realpath(out)
    for inp in inputs:
        if str(inp) == STDIO:
            continue
        inside = folder and os.path.realpath(str(inp)).startswith(real.rstrip(os.sep) + os.sep)
        if os.path.realpath(str(inp)) == real or inside:
            what = "a new folder" if folder else "a new file"
            raise SelectkitUsageError(
                f"output '{out}' is also an input; write to {what} so the input stays intact"
            )
    parent = Path(out).resolve().parent
    if not parent.is_dir():
        raise SelectkitUsageError(f"output folder '{parent}' does not exist; create it first")
    if folder:
        if Path(out).exists() and not Path(out).is_dir():
            raise SelectkitUsageError(
                f"output '{out}' is a file; give a folder path (DIR/) or remove the file"
            )
        return
    if Path(out).is_dir():
        raise SelectkitUsageError(f"output '{out}' is a folder; give a file path")


#: temporary outputs are named ``.NAME.PID-RANDOM.sk-tmp`` next to ``NAME``
TMP_SUFFIX = ".sk-tmp"
#: a dataset folder ``DIR`` is staged in ``.DIR.sk-partial`` (stable: ``--resume`` finds it)
PARTIAL_SUFFIX = ".sk-partial"
#: outputs this process committed, in order: a signal after them must not say "nothing written"
COMMITTED: list[str] = []
_group: contextvars.ContextVar[list[tuple[Path, Path]] | None] = contextvars.ContextVar(
    "selectkit_output_group", default=None
)


def atomic_path(output: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path next to ``output``; move it over ``output`` only on success.

    The finished file is fsynced before the rename and the folder after it, so a crash right
    after leaves either the old or the new output, whole. An exception (KeyboardInterrupt and
    :class:`~selectkit.interrupts.Interrupted` included) removes the temporary file and leaves
    any existing ``output`` untouched; an ``OSError`` (disk full, ...) becomes a
    ``SelectkitError`` that names ``output``. Inside :func:`output_group` the rename waits for
    the group's end. Stale temporary files of ``output`` left by killed runs are removed first.
    """
    return _staged(output, folder_output=False)


def atomic_part(output: str | Path, dataset: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_path` for a file of the dataset folder ``dataset`` being staged (a
    part, a progress record): renamed into place at once, even inside an :func:`output_group`,
    and not counted among the run's committed outputs, since each must be durable on its own.
    A write error names ``dataset`` and says the finished parts are kept for ``--resume``."""
    return _staged(output, folder_output=False, part_of=Path(dataset))


def atomic_folder(output: str | Path) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_path` for a folder output: the old folder is swapped out whole."""
    return _staged(output, folder_output=True)


@contextlib.contextmanager
def _staged(
    output: str | Path, *, folder_output: bool, part_of: Path | None = None
) -> Iterator[Path]:
    out = Path(output)
    folder = out.resolve().parent
    remove_stale_temporaries(folder, out.name)
    naming = dict(prefix=f".{out.name}.{os.getpid()}-", suffix=TMP_SUFFIX, dir=folder)
    try:
        if folder_output:
            tmp = Path(tempfile.mkdtemp(**naming))
        else:
            fd, name = tempfile.mkstemp(**naming)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise _write_error(out, exc, part_of) from None
    try:
        yield tmp
        for path in tmp.iterdir() if folder_output else [tmp]:
            _fsync(path)
        # mkstemp/mkdtemp make 0600/0700; give the mode a plain open()/mkdir() would
        os.chmod(tmp, (0o777 if folder_output else 0o666) & ~_umask())
        group = None if part_of is not None else _group.get()
        if group is None:
            _commit([(tmp, out)], record=part_of is None)
        else:
            group.append((tmp, out))
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError) and exc.errno != errno.EPIPE:
            raise _write_error(out, exc, part_of) from exc
        raise


@contextlib.contextmanager
def output_group() -> Iterator[None]:
    """Commit every output written inside the block together at its end, or none of them.

    A run that writes a manifest and a side table (or curves and a summary) either leaves all
    of them new or all of them as they were. Nested groups join the outermost one.
    """
    if _group.get() is not None:
        yield
        return
    staged: list[tuple[Path, Path]] = []
    token = _group.set(staged)
    try:
        yield
        _group.reset(token)
        token = None
        _commit(staged)
    except BaseException:
        for tmp, _ in staged:
            if not tmp.name.endswith(PARTIAL_SUFFIX):  # a dataset's staging keeps its parts
                _discard(tmp)
        raise
    finally:
        if token is not None:
            _group.reset(token)


def _commit(staged: list[tuple[Path, Path]], *, record: bool = True) -> None:
    """Rename finished temporaries over their outputs with the stop signals held.

    A signal that already arrived cancels the commit: it is raised as the block ends and the
    caller removes the temporaries. One that arrives during the renames waits until all are
    done, so a group is never half-committed. An existing folder output is moved aside first
    (a folder cannot be renamed over a full one) and removed after. ``record``: list the
    outputs in :data:`COMMITTED` (not a dataset's parts, which are no output yet).
    """
    aside: list[Path] = []
    with interrupts.deferred():
        if interrupts.pending():
            return
        for tmp, out in staged:
            if tmp.is_dir() and out.exists():
                aside.append(out.with_name(f".{out.name}.{os.getpid()}-old{TMP_SUFFIX}"))
                os.replace(out, aside[-1])
            os.replace(tmp, out)
            if record:
                COMMITTED.append(str(out))
        for folder in {out.resolve().parent for _, out in staged}:
            _fsync_folder(folder)
    for old in aside:
        shutil.rmtree(old, ignore_errors=True)


def _discard(path: Path) -> None:
    """Remove a temporary file or folder, if it is still there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    # makes the rename itself durable; some file systems refuse to fsync a folder
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_error(out: Path, exc: OSError, part_of: Path | None = None) -> SelectkitError:
    reason = exc.strerror or str(exc).splitlines()[0]
    hint = (
        "free some space or write elsewhere"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc)
        else "check the folder's permissions and free space"
    )
    if part_of is not None:
        return SelectkitError(
            f"cannot write '{part_of}' ({reason}, writing {out.name}); {hint}. The existing "
            f"'{part_of}' is unchanged; the finished parts are kept for {option('resume')}"
        )
    return SelectkitError(
        f"cannot write '{out}' ({reason}); {hint}. Any existing file is unchanged"
    )


def remove_stale_temporaries(folder: Path, name: str) -> int:
    """Remove ``name``'s temporary files whose writer is gone; return how many were removed.

    A run killed with SIGKILL (or by the OOM killer) cannot clean up. Its temporaries carry its
    process id; one whose process no longer runs, or runs but started after the file was last
    written (the id was reused), is stale. Files of live runs are left alone.
    """
    removed = 0
    try:
        candidates = list(folder.glob(f".{glob.escape(name)}.*{TMP_SUFFIX}"))
    except OSError:
        return 0
    for path in candidates:
        pid_text = path.name[len(name) + 2 :].split("-", 1)[0]
        if not pid_text.isdigit() or _writer_alive(int(pid_text), path):
            continue
        _discard(path)
        removed += 1
    return removed


def _writer_alive(pid: int, path: Path) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:
        started = os.stat(f"/proc/{pid}").st_ctime
        return started <= path.stat().st_mtime + 1.0
    except OSError:
        return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _vector_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c, t in frame.schema.items() if isinstance(t, (pl.Array, pl.List))]


class TableWriter:
    """Stream batches of one schema to Parquet, JSONL, CSV or stdout, atomically.

    Use as a context manager; call ``write(batch)`` any number of times and set ``provenance``
    before the block ends. Parquet batches are regrouped into row groups of ``ROW_GROUP_ROWS``,
    so the file layout does not depend on the batch size; memory stays O(batch + row group).
    ``part_of``: ``output`` is a part file of that dataset folder's staging (see
    :func:`atomic_part`).
    """

    def __init__(
        self,
        output: str | Path,
        *,
        output_format: str | None = None,
        part_of: str | Path | None = None,
    ) -> None:
        self.output = str(output)
        self._part_of = part_of
        self.format = detect_format(self.output, output_format, output=True)
        if self.format == "npy":
            raise SelectkitUsageError(
                f"cannot stream rows to '{self.output}'; write .parquet or .jsonl instead"
            )
        self.provenance: Provenance | None = None
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._parquet: pq.ParquetWriter | None = None
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._text: IO[bytes] | None = None
        self._raw: IO[bytes] | None = None  # the file under a gzip stream
        self._tmp: Path | None = None

    def __enter__(self) -> TableWriter:
        if self.output == STDIO:
            if self.format == "parquet":
                raise SelectkitUsageError("cannot write Parquet to stdout; use -o FILE.parquet")
            self._text = sys.stdout.buffer
        else:
            staged = (
                atomic_path(self.output)
                if self._part_of is None
                else atomic_part(self.output, self._part_of)
            )
            self._tmp = self._stack.enter_context(staged)
        return self

    def write(self, batch: pl.DataFrame) -> None:
        """Append ``batch`` (same schema every time)."""
        if self.format == "csv" and _vector_columns(batch):
            raise SelectkitUsageError(
                f"CSV cannot hold the list column '{_vector_columns(batch)[0]}'; "
                "write .parquet or .jsonl instead"
            )
        if self.format != "parquet":
            binary = [c for c, t in batch.schema.items() if t == pl.Binary]
            if binary:
                raise SelectkitUsageError(
                    f"'{self.output}': column '{binary[0]}' holds raw bytes, which "
                    f"{self.format.upper()} cannot hold; write .parquet instead"
                )
        self.rows += batch.height
        if self.format == "parquet":
            self._pending.append(batch)
            self._pending_rows += batch.height
            if self._parquet is None or self._pending_rows >= ROW_GROUP_ROWS:
                self._flush(final=False)
            return
        if self._text is None:
            self._text = self._open_text()
        if self.format == "jsonl":
            batch.write_ndjson(self._text)
        else:
            batch.write_csv(self._text, include_header=self.rows == batch.height)
        self._text.flush()

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Finishing (the last row group, the footer, gzip's trailer) can fail too, on a full
        # disk say: then the temporary file is abandoned like after any other error.
        if exc_type is None:
            try:
                self._finish()
            except BaseException as err:
                self._abandon()
                self._stack.__exit__(type(err), err, err.__traceback__)
                raise
            self._stack.__exit__(None, None, None)
        else:
            self._abandon()
            self._stack.__exit__(exc_type, exc, tb)
        return False

    def _abandon(self) -> None:
        """Close whatever is open without caring whether it can still be written."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
        if self._text is not None and self._text is not sys.stdout.buffer:
            with contextlib.suppress(Exception):
                self._text.close()
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.close()

    def _open_text(self) -> IO[bytes]:
        raw = open(self._tmp, "wb")  # noqa: SIM115
        if not is_gzip(self.output):
            return raw
        self._raw = raw
        # mtime 0 and no file name in the header: the same rows give the same bytes
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)

    def _flush(self, final: bool) -> None:
        """Write whole row groups of pending rows (all of them when ``final``)."""
        if not self._pending:
            return
        merged = (
            pl.concat(self._pending, how="vertical") if len(self._pending) > 1 else self._pending[0]
        )
        if self._parquet is None:
            schema = merged.head(0).to_arrow().schema
            self._parquet = pq.ParquetWriter(
                str(self._tmp), schema, compression=PARQUET_COMPRESSION
            )
            if not final and merged.height < ROW_GROUP_ROWS:
                self._pending, self._pending_rows = [merged], merged.height
                return
        cut = merged.height if final else merged.height - merged.height % ROW_GROUP_ROWS
        if cut:
            self._parquet.write_table(merged.head(cut).to_arrow(), row_group_size=ROW_GROUP_ROWS)
        rest = merged.slice(cut)
        self._pending, self._pending_rows = ([rest], rest.height) if rest.height else ([], 0)

    def _finish(self) -> None:
        if self.format == "parquet":
            self._flush(final=True)
            if self._parquet is None:
                raise SelectkitError("nothing to write: the result has no rows")
            if self.provenance is not None:
                self._parquet.add_key_value_metadata(
                    _provenance_metadata(self._parquet, self.provenance)
                )
            self._parquet.close()
            return
        if self._text is None:
            if self.output == STDIO:
                return
            self._text = self._open_text()
        if self._text is sys.stdout.buffer:
            self._text.flush()
            return
        self._text.close()  # gzip's trailer is written here
        if self._raw is not None:
            self._raw.close()


def _provenance_metadata(writer: pq.ParquetWriter, provenance: Provenance) -> dict[str, str]:
    """The footer's key-value metadata: the provenance, also inside the stored Arrow schema.

    The Arrow schema is serialised when the writer opens, before the run's provenance exists;
    pyarrow's ``read_schema(f).metadata`` and ``read_table(f).schema.metadata`` (what pandas
    and Ray read) look only there, so it is stored again with the key added.
    """
    text = provenance.to_json()
    schema = writer.schema.with_metadata({**(writer.schema.metadata or {}), METADATA_KEY: text})
    stored = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    return {METADATA_KEY: text, "ARROW:schema": stored}


def write_table(
    frame: pl.DataFrame,
    output: str | Path,
    *,
    provenance: Provenance | None = None,
    output_format: str | None = None,
) -> None:
    """Write ``frame`` to ``output`` by its extension (``-`` = JSONL on stdout), atomically.

    ``.npy`` output takes a frame whose only list column is the vectors and whose ids are row
    numbers; the ids would otherwise be lost, so that is refused.
    """
    fmt = detect_format(output, output_format, output=True)
    if fmt == "npy":
        _write_npy(frame, str(output))
        return
    with TableWriter(output, output_format=fmt) as writer:
        writer.provenance = provenance
        writer.write(frame)


def _write_npy(frame: pl.DataFrame, output: str) -> None:
    vectors = _vector_columns(frame)
    if len(vectors) != 1:
        raise SelectkitUsageError(
            f"'{output}': .npy holds one matrix; this table has {len(vectors)} list columns. "
            "Write .parquet instead"
        )
    others = [c for c in frame.columns if c not in vectors]
    ids = frame.get_column(others[0]) if others else None
    if ids is not None and not (
        ids.dtype.is_integer() and ids.to_numpy().tolist() == list(range(frame.height))
    ):
        raise SelectkitUsageError(
            f"'{output}': .npy cannot keep the ids of this table (they are not row numbers); "
            "write .parquet to keep them"
        )
    matrix = as_matrix(frame.get_column(vectors[0]), output)
    with atomic_path(output) as tmp, open(tmp, "wb") as f:
        np.save(f, matrix)
