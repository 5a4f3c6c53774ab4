"""The docs run as written: every command and Python block of README.md and docs/*.md.

Each page runs in its own temporary folder holding a copy of ``data_samples/`` and
``examples/`` (the paths the docs use), with this venv's ``selectkit`` and ``python`` first on
PATH, as after ``source .venv/bin/activate``. Conventions (skip markers, expected errors, JSON
samples): tests/_doc_transcript.py.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

from tests._doc_transcript import (
    RUN_LANGS,
    SHELL_LANGS,
    TranscriptError,
    json_keys_mismatch,
    parse_page,
    run_page,
)

from .conftest import REPO

PAGES = ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))]
PYTHON = Path(sys.executable)
# Fenced-block languages that are neither run nor output: config files shown for reading.
SHOWN_ONLY = {"", "toml", "text", "json"}


def _page_folder(tmp_path: Path) -> Path:
    for name in ("data_samples", "examples"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page, tmp_path):
    started = time.perf_counter()
    failure = run = None
    try:
        run = run_page(REPO / page, REPO, _page_folder(tmp_path), PYTHON)
    except TranscriptError as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    assert run is not None
    reasons = "; ".join(f"block {n}: {why}" for n, why in run.skipped)
    print(
        f"{page}: {run.ran} blocks ran ({run.commands} commands, {run.json_checked} JSON samples"
        f" checked), {len(run.skipped)} skipped{' (' + reasons + ')' if reasons else ''},"
        f" {time.perf_counter() - started:.1f} s wall, {run.cpu_s:.1f} s CPU; slowest: {run.slowest()}"
    )
    assert run.ran == sum(block.runs for block in parse_page(REPO / page, REPO))


def test_every_block_is_run_or_marked():
    """Counts what the transcript runs; a skip always says why; no command hides in an untagged
    block; every language is one we run or one that is only shown."""
    ran = skipped = 0
    problems = []
    for page in PAGES:
        for block in parse_page(REPO / page, REPO):
            if block.marked_skip:
                skipped += 1
                if not block.skip:
                    problems.append(f"{block.where()}: skip marker without a reason")
            elif block.lang in RUN_LANGS:
                ran += 1
            elif block.lang not in SHOWN_ONLY:
                problems.append(f"{block.where()}: unknown block language {block.lang!r}")
            if block.lang == "" and any(line.startswith("$ ") for line in block.body.split("\n")):
                problems.append(
                    f"{block.where()}: '$ ' commands in an untagged block; tag it console"
                )
            if block.lang in SHELL_LANGS and not block.marked_skip and not block.commands:
                problems.append(f"{block.where()}: a shell block without a command")
    print(f"doc transcript: {ran} blocks run, {skipped} skipped (each with a reason)")
    assert not problems, "\n".join(problems)
    assert ran > 40


def test_transcript_reports_the_failing_command(tmp_path):
    """A broken page fails naming the page, block, command and stderr; a shown error that does
    not happen fails too; a skipped block does not run."""
    docs = tmp_path / "docs"
    docs.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    page = docs / "broken.md"
    page.write_text(
        "```bash\necho hi > made.txt\n```\n\n"
        "<!-- transcript: skip (needs a GPU) -->\n```bash\nexit 3\n```\n\n"
        "```console\n$ cat made.txt\nhi\n$ selectkit inspect nothing.parquet\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(TranscriptError) as info:
        run_page(page, tmp_path, work, PYTHON)
    message = str(info.value)
    assert "docs/broken.md block 3" in message
    assert "$ selectkit inspect nothing.parquet" in message
    assert "nothing.parquet" in message.split("--- stderr ---")[1]  # selectkit's own error line
    assert (work / "made.txt").read_text() == "hi\n"

    page.write_text("```console\n$ true\nerror: this should have failed\n```\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match="the doc shows an error but the command succeeded"):
        run_page(page, tmp_path, work, PYTHON)

    page.write_text("<!-- transcript: skip -->\n\n```bash\nexit 1\n```\n", encoding="utf-8")
    (block,) = parse_page(page, tmp_path)
    assert block.marked_skip and block.skip == ""  # test_every_block_is_run_or_marked refuses it

    page.write_text("```python\nx = 1\n```\n\n```python\nassert x == 2, 'x is 1'\n```\n")
    with pytest.raises(TranscriptError, match=r"block 2 \(line 5, python\) failed:(.|\n)*x is 1"):
        run_page(page, tmp_path, work, PYTHON)


def test_json_sample_keys_are_compared():
    printed = '{"a": 1, "b": {"c": 2}, "d": [{"name": "x", "e": 1}]}'
    assert (
        json_keys_mismatch('{"a": 0, "b": {"c": 0}, "d": [{"name": "x", "e": 5}]}', printed) == []
    )
    assert json_keys_mismatch('{"a": 0, "b": {"c": 0}}', printed)  # d missing from the sample
    assert json_keys_mismatch('{"a": 0, "b": {"z": 0}, "d": []}', printed)  # z is not printed
    assert json_keys_mismatch('{"a": 1, ..., "c": 2}', printed) == []  # abridged: a subset
    assert json_keys_mismatch('{"a": 1, ..., "zz": 2}', printed) == [
        "keys shown but not printed: ['zz']"
    ]
    assert json_keys_mismatch('{"a": 1}', "not json")
