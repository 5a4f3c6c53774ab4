"""``selectkit stream``: keep or skip each line of a stream, in bounded memory.

:func:`stream_select` reads JSON Lines (or CSV) from stdin or files, decides line by line with
a policy of :mod:`selectkit.stream.policies`, and writes the kept lines, byte for byte, to
``out`` as soon as each batch of available lines is decided. ``state`` resumes a stream
exactly; ``log`` writes one decision row per input line.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from selectkit.console import progress_bar, warn
from selectkit.errors import SelectkitDataError, SelectkitUsageError
from selectkit.io.provenance import METADATA_KEY, Provenance
from selectkit.io.write import ROW_GROUP_ROWS, atomic_path, check_output_path, output_group
from selectkit.params import Param
from selectkit.rng import derive_salt, id_uniforms
from selectkit.stream.lines import (
    FieldReader,
    MalformedLine,
    check_inputs_exist,
    csv_columns,
    line_batches,
    open_input,
)
from selectkit.stream.policies import STREAM_PARAMS, STREAM_STRATEGIES, Batch, Policy

STATE_VERSION = 1
#: stream_select's own bounded options (the policies' are STREAM_PARAMS)
STREAM_OPTIONS: dict[str, Param] = {
    "max_keep": Param(int, None, "keep at most this many lines of the whole stream", low=0),
    "seed": Param(int, 0, "seed of every random draw (with each line's id)", low=0),
}


def parse_fraction(text: str | float) -> float:
    """A keep fraction from '10%', '0.1' or 0.1; a usage error outside (0, 1]."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SelectkitUsageError(
            f"--budget '{text}' is not a fraction; give e.g. 10% or 0.1 (the share of lines to keep)"
        ) from None
    if not 0.0 < value <= 1.0:
        raise SelectkitUsageError(f"--budget {text} must be in (0, 1] (e.g. 10% or 0.1)")
    return value


def parse_stream_budget(text: str | float, cost_col: str | None) -> tuple[float, float | None]:
    """(fraction, rate) of a stream budget: '10%' / 0.1 is a share of the lines, or of the
    cost seen with ``cost_col``: (0.1, None); 'cost:X' (``cost_col`` required) is X cost units
    per input line on average: (1.0, X). Usage errors name the fix."""
    raw = str(text).strip()
    if not raw.lower().startswith("cost:"):
        return parse_fraction(text), None
    if not cost_col:
        raise SelectkitUsageError(
            f"--budget {raw} spends a cost per line: give --cost-col NAME (the field with each "
            "line's cost), or a share such as 10%"
        )
    number = raw[5:].strip()
    try:
        rate = float(number)
    except ValueError:
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0.0):
        raise SelectkitUsageError(
            f"--budget {raw}: the cost per line must be a positive number, e.g. cost:12.5"
        )
    return 1.0, rate


def _check_inputs(
    strategy: str, proba_col: str | None, score_col: str | None, embedding_col: str | None
) -> None:
    if strategy not in STREAM_STRATEGIES:
        known = ", ".join(STREAM_STRATEGIES)
        raise SelectkitUsageError(f"unknown stream strategy '{strategy}'; choose one of {known}")
    reads = STREAM_STRATEGIES[strategy][0]
    if "proba" in reads and not proba_col:
        raise SelectkitUsageError(
            f"--strategy {strategy} reads class probabilities: give --proba-col NAME "
            "(a stream of scores takes --strategy quantile or random)"
        )
    if reads == "utility" and not (proba_col or score_col):
        raise SelectkitUsageError(
            "--strategy quantile ranks a utility: give --score-col NAME (higher = more worth "
            "keeping) or --proba-col NAME (utility = 1 - top-class probability)"
        )
    if "embedding" in reads and not embedding_col:
        raise SelectkitUsageError(
            "--strategy density compares embeddings: give --embedding-col NAME as well"
        )


def _load_state(path: str | None, record: dict[str, Any], policy: Policy) -> None:
    if path is None or not Path(path).exists():
        return
    try:
        saved = json.loads(Path(path).read_text())
        config, body = saved["config"], saved["state"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SelectkitDataError(
            f"state file '{path}' is not a selectkit stream state; give another --state path"
        ) from None
    # a key only one side has (cost_col) must be unset on the other
    for key in [*record, *(k for k in config if k not in record)]:
        value = record.get(key)
        if config.get(key) != value:
            raise SelectkitUsageError(
                f"state file '{path}' was saved with {key}={config.get(key)!r}, this run has "
                f"{key}={value!r}; resume with the same options, or give a new --state file"
            )
    policy.load(body)


def stream_select(
    inputs: Sequence[str | BinaryIO] = ("-",),
    out: BinaryIO | str | Path | None = None,
    *,
    strategy: str = "rand-var-uncertainty",
    budget: str | float = 0.1,
    proba_col: str | None = None,
    score_col: str | None = None,
    embedding_col: str | None = None,
    cost_col: str | None = None,
    id_col: str = "id",
    input_format: str = "auto",
    seed: int = 0,
    max_keep: int | None = None,
    state: str | None = None,
    log: str | None = None,
    on_error: str = "raise",
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Decide keep/skip for every line of ``inputs`` (paths, '-' for stdin, or open binary
    readers) and write kept lines to ``out`` (default stdout; a binary writer, flushed per batch,
    or a file path, written whole at the end) unchanged; return a summary (this run's lines and
    kept, the stream's ``lines_total`` and ``kept_total``, skipped, lines_per_s).

    Random draws come from ``seed`` and each line's id (its line number when it has none), so
    the decisions depend only on the lines seen so far, never on how the input was chunked.
    ``state``: a JSON file loaded at the start (if it exists) and saved at the end, so a stream
    fed in pieces decides exactly as one run would. ``log``: Parquet with one row per input line
    (line, id, keep, utility, threshold, error; with ``cost_col`` also cost and
    cumulative_cost, the stream's kept cost through the line).

    ``cost_col``: a field with each line's positive cost (tokens, seconds): ``budget`` is then
    a share of the cost seen ('10%'), or 'cost:X', X cost units per input line on average; the
    summary adds the run's ``cost_seen`` and ``kept_cost`` (and the stream's ``*_total``).
    Memory is O(window) whatever the stream's length; time is O(1) per line (O(window)
    quantile, O(window d) density).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [str(inputs)]
    inputs = [str(i) if isinstance(i, Path) else i for i in inputs]
    frac, rate = parse_stream_budget(budget, cost_col)
    _check_inputs(strategy, proba_col, score_col, embedding_col)
    if on_error not in ("raise", "skip"):
        raise SelectkitUsageError(f"--on-error {on_error!r}: choose raise or skip")
    if max_keep is not None:
        max_keep = STREAM_OPTIONS["max_keep"].check("max_keep", max_keep)
    seed = STREAM_OPTIONS["seed"].check("seed", seed)
    p = {name: spec.default for name, spec in STREAM_PARAMS.items()}
    for name, value in (params or {}).items():
        if name not in STREAM_PARAMS:
            raise SelectkitUsageError(f"unknown stream parameter '{name}'")
        p[name] = STREAM_PARAMS[name].check(name, value)
    fmt = input_format
    if fmt == "auto":
        first = next((i for i in inputs if isinstance(i, str) and i != "-"), "")
        fmt = "csv" if first.endswith((".csv", ".csv.gz")) else "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise SelectkitUsageError(f"--format {input_format!r}: choose auto, jsonl or csv")
    if cost_col is not None and (not isinstance(cost_col, str) or not cost_col):
        raise SelectkitUsageError("--cost-col must name a field")
    if fmt == "csv" and (proba_col or embedding_col):
        raise SelectkitUsageError(
            "a CSV stream carries scalar fields only: use --score-col (or JSON Lines for "
            "--proba-col / --embedding-col)"
        )
    files = [i for i in inputs if isinstance(i, str) and i != "-"]
    check_inputs_exist(files)
    out_path = str(out) if isinstance(out, (str, Path)) else None
    for path in (state, log, out_path):
        if path is not None:
            check_output_path(path, files)
    if len({p for p in (state, log, out_path) if p is not None}) < sum(
        p is not None for p in (state, log, out_path)
    ):
        raise SelectkitUsageError("--state, --log and the output must be different files")
    # what a state file must agree on to resume
    record = {
        "version": STATE_VERSION,
        "strategy": strategy,
        "budget": frac if rate is None else f"cost:{rate:g}",
        "seed": seed,
        "max_keep": max_keep,
        "id_col": id_col,
        "proba_col": proba_col,
        "score_col": score_col,
        "embedding_col": embedding_col,
        **p,
    }
    if cost_col is not None:  # absent otherwise, so states saved before cost budgets resume
        record["cost_col"] = cost_col
    policy = Policy(strategy, frac, p, max_keep, rate=rate)
    _load_state(state, record, policy)
    reader = FieldReader(
        fmt,
        id_col=id_col,
        proba_col=proba_col,
        score_col=score_col,
        embedding_col=embedding_col,
        cost_col=cost_col,
    )
    reader.classes = policy.classes
    salts = stream_salts(seed, strategy)
    start_line, kept_before = policy.lines, policy.kept
    cost_before, kept_cost_before = policy.cost_total, policy.kept_cost
    warned: set[str] = set()
    skipped = 0
    t0 = time.perf_counter()
    prov = Provenance(
        command="stream",
        params={k: v for k, v in record.items() if k != "version"},
        seed=seed,
    )
    with ExitStack() as stack:
        stack.enter_context(output_group())
        if out_path is not None:  # a file output appears whole at the end, like every output
            out = stack.enter_context(open(stack.enter_context(atomic_path(out_path)), "wb"))
        elif out is None:
            out = sys.stdout.buffer
        writer = None
        if log is not None:
            tmp = stack.enter_context(atomic_path(log))
            writer = _LogWriter(tmp, costed=cost_col is not None)
            stack.callback(writer.close)
        bar = stack.enter_context(progress_bar("stream", None, rate=True))

        def decide(lines: list[bytes], first: int, where: str) -> int:
            nonlocal skipped
            fields = reader.parse(lines, first, where, on_error == "skip")
            n = len(fields.lines)
            if not n:
                return 0
            keys = fields.ids
            numbers = np.arange(policy.lines, policy.lines + n)
            _warn_about_ids(keys, id_col, warned)
            if keys.null_count():
                fill = pl.select(
                    pl.concat_str(pl.lit("\x00line"), pl.Series(numbers).cast(pl.String))
                ).to_series()
                keys = keys.zip_with(keys.is_not_null(), fill)
            batch = _batch(fields, keys, salts, policy, n)
            if policy.classes is None:
                policy.classes = reader.classes
            kept_cost = policy.kept_cost
            keep, used = policy.decide(batch)
            keep &= ~fields.bad
            cumulative = (
                kept_cost + np.cumsum(np.where(keep, batch.cost, 0.0))
                if batch.cost is not None
                else None
            )
            skipped += int(fields.bad.sum())
            if keep.any():
                out.write(b"".join(ln for ln, k in zip(fields.lines, keep, strict=True) if k))
                out.flush()
            if writer is not None:
                writer.add(
                    numbers + 1,
                    fields.ids,
                    keep,
                    batch.utility,
                    used,
                    fields.reasons,
                    batch.cost,
                    cumulative,
                )
            return n

        for source in inputs:
            where = (
                "stdin"
                if source == "-"
                else (f"'{source}'" if isinstance(source, str) else "the stream")
            )
            number = 0  # line number within this source
            digest = hashlib.blake2b(digest_size=16)
            decided_before = policy.lines
            with open_input(source) as handle:
                for lines in line_batches(handle, where, digest):
                    if fmt == "csv" and number == 0:
                        header, lines = lines[0], lines[1:]
                        number = 1
                        if reader.header is None:
                            _check_csv_header(header, where, id_col, score_col, cost_col)
                            reader.header = header
                            out.write(header)
                        elif header != reader.header:
                            raise SelectkitDataError(
                                f"{where}: its CSV header differs from the first input's; "
                                "give files with the same columns"
                            )
                        if not lines:
                            continue
                    try:
                        done = decide(lines, number + 1, where)
                    except MalformedLine as exc:
                        # the lines before the bad one are decided (and kept) first
                        if exc.index:
                            decide(lines[: exc.index], number + 1, where)
                        raise
                    number += len(lines)
                    bar.advance(done)
            prov.inputs.append(
                {
                    "path": source if isinstance(source, str) else "<reader>",
                    "format": fmt,
                    "rows": policy.lines - decided_before,
                    "fingerprint": "blake2b-128:" + digest.hexdigest(),
                }
            )
        seconds = time.perf_counter() - t0
        lines_done = policy.lines - start_line
        summary = {
            "lines": lines_done,  # this run's; *_total: the whole stream, across --state resumes
            "kept": int(policy.kept - kept_before),
            "kept_fraction": round((policy.kept - kept_before) / lines_done, 6)
            if lines_done
            else 0.0,
            "skipped_malformed": skipped,
            "lines_total": policy.lines,
            "kept_total": int(policy.kept),
            "lines_per_s": round(lines_done / seconds) if seconds > 0 else None,
        }
        if cost_col is not None:
            seen = policy.cost_total - cost_before
            kept_cost = policy.kept_cost - kept_cost_before
            summary["cost_seen"] = seen
            summary["kept_cost"] = kept_cost
            summary["kept_cost_fraction"] = round(kept_cost / seen, 6) if seen else 0.0
            summary["cost_seen_total"] = policy.cost_total
            summary["kept_cost_total"] = policy.kept_cost
        if lines_done and skipped == lines_done:
            warn(
                f"all {lines_done} lines were malformed and skipped (--on-error skip), so nothing "
                "was kept: check the field names (--id-col, --proba-col, --score-col, --cost-col)"
            )
        prov.metrics = {k: v for k, v in summary.items() if k != "lines_per_s"}
        prov.timings = {"stream_s": round(seconds, 6)}
        if writer is not None:
            writer.finish(prov)
        if state is not None:
            with atomic_path(state) as tmp_state:
                body = policy.state()
                text = json.dumps(
                    {"config": record, "state": body}, sort_keys=True, allow_nan=False
                )
                tmp_state.write_text(text + "\n")
    return summary


def _check_csv_header(
    header: bytes, where: str, id_col: str, score_col: str | None, cost_col: str | None = None
) -> None:
    names = csv_columns(header)
    for flag, col in (("--score-col", score_col), ("--cost-col", cost_col)):
        if col and col not in names:
            raise SelectkitUsageError(
                f"{where}: {flag} '{col}' is not a column of its CSV header (columns: "
                f"{', '.join(names)}); name one of them (each CSV input starts with its header)"
            )


def _warn_about_ids(ids: pl.Series, id_col: str, warned: set[str]) -> None:
    """Warn once when ids repeat (equal ids get equal random draws) or when a named id column is
    absent (the draws then key on line positions)."""
    if "absent" not in warned and id_col != "id" and ids.null_count() == ids.len():
        warned.add("absent")
        warn(f"no line has the id field '{id_col}'; the random draws key on line positions")
    if "repeat" not in warned and ids.null_count() < ids.len():
        present = ids.drop_nulls()
        if present.n_unique() < present.len():
            warned.add("repeat")
            warn(
                f"ids repeat in '{id_col}' (e.g. {present.filter(present.is_duplicated())[0]!r});"
                " lines with the same id get the same random draws: give each line its own id"
            )


def _batch(fields, keys: pl.Series, salts: list[int], policy: Policy, n: int) -> Batch:
    nan = np.full(n, np.nan)
    conf = margin = nan
    if fields.proba is not None:
        top2 = -np.partition(-fields.proba, 1, axis=1)[:, :2] if fields.proba.shape[1] > 1 else None
        conf = fields.proba.max(axis=1)
        margin = top2[:, 0] - top2[:, 1] if top2 is not None else nan
        conf = np.where(fields.bad, np.nan, conf)
        margin = np.where(fields.bad, np.nan, margin)
    if fields.score is not None:
        utility = fields.score
    elif fields.proba is not None:
        utility = 1.0 - conf
    else:
        utility = nan
    utility = np.where(fields.bad, np.nan, utility)
    cost = None if fields.cost is None else np.where(fields.bad, np.nan, fields.cost)
    return policy_batch(conf, margin, utility, keys, salts, fields.embedding, cost)


def policy_batch(
    conf: np.ndarray,
    margin: np.ndarray,
    utility: np.ndarray,
    keys: pl.Series,
    salts: list[int],
    embedding: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> Batch:
    """A policy's :class:`Batch`: the per-line inputs plus the random draws, three per line,
    from each line's key (its id) and the three ``stream_salts``; O(n)."""
    from scipy.special import ndtri  # 0.25 s to import: only stream runs pay it

    u1 = id_uniforms(keys, salts[0])
    u2 = id_uniforms(keys, salts[1])
    z = ndtri(id_uniforms(keys, salts[2]))
    return Batch(conf, margin, utility, u1, u2, z, embedding, cost)


def stream_salts(seed: int, strategy: str) -> list[int]:
    """The salts of a stream's random draws (a uniform, a second one, a normal) under ``seed``;
    ``al simulate --stream`` draws with the same ones, so its decisions are the command's."""
    return [derive_salt(seed, "stream", strategy, part) for part in ("u", "u2", "z")]


class _LogWriter:
    """The decision log, written in row groups as the stream goes (memory O(row group))."""

    FIELDS = (
        ("line", pa.int64()),
        ("id", pa.string()),
        ("keep", pa.bool_()),
        ("utility", pa.float64()),
        ("threshold", pa.float64()),
        ("error", pa.string()),
    )
    COST_FIELDS = (("cost", pa.float64()), ("cumulative_cost", pa.float64()))

    def __init__(self, path: Path, costed: bool = False) -> None:
        self.path = path
        self.costed = costed
        self.schema = pa.schema(list(self.FIELDS + (self.COST_FIELDS if costed else ())))
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, line, ids, keep, utility, threshold, reasons, cost=None, cumulative=None) -> None:
        columns = {
            "line": pa.array(line, pa.int64()),
            "id": ids.to_arrow().cast(pa.string()),
            "keep": pa.array(keep),
            "utility": pa.array(utility, pa.float64(), from_pandas=True),
            "threshold": pa.array(threshold, pa.float64(), from_pandas=True),
            "error": pa.array([r or None for r in reasons], pa.string()),
        }
        if self.costed:
            columns["cost"] = pa.array(cost, pa.float64(), from_pandas=True)
            columns["cumulative_cost"] = pa.array(cumulative, pa.float64())
        table = pa.table(columns, schema=self.schema)
        self.parts.append(table)
        self.rows += table.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.parts:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self.writer.write_table(pa.concat_tables(self.parts), row_group_size=ROW_GROUP_ROWS)
        self.parts, self.rows = [], 0

    def finish(self, prov: Provenance) -> None:
        """Write what is left and the provenance (as the file's key-value metadata)."""
        self._flush()
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self.writer.add_key_value_metadata({METADATA_KEY: prov.to_json()})
        self.writer.close()
        self.writer = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
