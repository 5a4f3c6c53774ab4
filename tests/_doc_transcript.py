"""Read the command and Python blocks of the Markdown docs, and run them as a transcript.

A page's blocks run in order in one folder, so a block may use the files an earlier block of the
same page wrote (or ``data_samples/``, linked into that folder). The conventions, which the docs
themselves follow:

- ```` ```bash ````, ```` ```sh ```` and ```` ```shell ```` blocks: every line that is not blank
  and not a ``#`` comment is a command (a trailing backslash continues it on the next line).
- ```` ```console ```` blocks: a line starting with ``$ `` is a command (continued by a trailing
  backslash); every other line is output shown to the reader. Output need not match, except:
  a command whose output starts with ``error:`` must fail (exit non-zero, ``error:`` on
  stderr), with the code shown as ``[exit N]`` or ``(exit N)`` when the doc shows one; a command
  with ``--json`` whose shown output is JSON must print JSON whose keys match (see
  :func:`json_keys_mismatch`).
- ```` ```python ```` blocks: a page's blocks run in one namespace, in the page's folder.
- An untagged block is output or an illustration and never runs; it must not hold ``$ ``
  commands (tag it ``console``).
- ``<!-- transcript: skip (REASON) -->`` on the line before a block (blank lines between are
  allowed) skips it; the reason is required.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})
RUN_LANGS = SHELL_LANGS | {"python"}
SKIP_RE = re.compile(r"^<!--\s*transcript:\s*skip\b\s*(?:\((?P<reason>[^)]*)\))?\s*-->\s*$")
EXIT_RE = re.compile(r"[\[(]exit (?P<code>\d+)[\])]\s*$")


@dataclass
class Command:
    """One shell command of a block, with the output the doc shows after it."""

    text: str
    line: int
    shown: list[str] = field(default_factory=list)

    @property
    def expects_error(self) -> bool:
        return any(s.lstrip().startswith("error:") for s in self.shown)

    @property
    def expected_exit(self) -> int | None:
        for s in self.shown:
            match = EXIT_RE.search(s)
            if match:
                return int(match.group("code"))
        return None

    @property
    def shown_json(self) -> str | None:
        """The shown output when the command asks for ``--json`` and the doc shows JSON."""
        text = "\n".join(self.shown).strip()
        if "--json" in self.text and text[:1] in "{[" and text:
            return text
        return None


@dataclass
class Block:
    """A fenced block of a page: its language, first line, body and skip reason (if marked)."""

    page: str
    number: int
    lang: str
    line: int
    body: str
    skip: str | None = None
    marked_skip: bool = False
    commands: list[Command] = field(default_factory=list)

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and not self.marked_skip

    def where(self) -> str:
        return f"{self.page} block {self.number} (line {self.line}, {self.lang})"


def _join_continued(lines: list[tuple[int, str]]) -> list[tuple[int, str, list[str]]]:
    """Group (line number, text) pairs into commands for a bash/sh block: (line, command, [])."""
    out: list[tuple[int, str, list[str]]] = []
    pending: tuple[int, list[str]] | None = None
    for number, text in lines:
        if pending is None:
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            pending = (number, [text])
        else:
            pending[1].append(text)
        if not text.rstrip().endswith("\\"):
            out.append((pending[0], "\n".join(pending[1]), []))
            pending = None
    if pending is not None:
        out.append((pending[0], "\n".join(pending[1]), []))
    return out


def _console_commands(lines: list[tuple[int, str]]) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for number, text in lines:
        if continuing:
            commands[-1].text += "\n" + text
            continuing = text.rstrip().endswith("\\")
        elif text.startswith("$ "):
            commands.append(Command(text[2:], number))
            continuing = text.rstrip().endswith("\\")
        elif commands:
            commands[-1].shown.append(text)
    return commands


def parse_page(path: Path, root: Path) -> list[Block]:
    """Every fenced block of a Markdown page, numbered from 1; costs one pass over the file."""
    page = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith("```"):
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        lang = stripped[3:].strip().split()[0] if stripped[3:].strip() else ""
        start = i
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            text = lines[i]
            body.append((i + 1, text[len(indent) :] if text.startswith(indent) else text))
            i += 1
        i += 1  # the closing fence
        marker_line = start - 1
        while marker_line >= 0 and not lines[marker_line].strip():
            marker_line -= 1
        match = SKIP_RE.match(lines[marker_line].strip()) if marker_line >= 0 else None
        block = Block(
            page=page,
            number=len(blocks) + 1,
            lang=lang,
            line=start + 1,
            body="\n".join(text for _, text in body),
            skip=(match.group("reason") or "").strip() if match else None,
            marked_skip=match is not None,
        )
        if lang == "console":
            block.commands = _console_commands(body)
        elif lang in SHELL_LANGS:
            block.commands = [Command(t, n, s) for n, t, s in _join_continued(body)]
        blocks.append(block)
    return blocks


def _keys(value: object) -> set[str]:
    """Every dict key at any depth of a parsed JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _compare(shown: object, real: object, path: str) -> list[str]:
    problems: list[str] = []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{path or 'top level'}: the doc shows an object, the output has {real!r:.60}"]
        missing, extra = sorted(set(shown) - set(real)), sorted(set(real) - set(shown))
        if missing or extra:
            problems.append(
                f"{path or 'top level'}: keys shown but not printed {missing}, "
                f"printed but not shown {extra}"
            )
        for key in set(shown) & set(real):
            problems += _compare(shown[key], real[key], f"{path}.{key}".lstrip("."))
    elif isinstance(shown, list) and isinstance(real, list):
        by_name = {r.get("name"): r for r in real if isinstance(r, dict) and "name" in r}
        for i, item in enumerate(shown):
            if isinstance(item, dict) and item.get("name") in by_name:
                problems += _compare(item, by_name[item["name"]], f"{path}[{item['name']}]")
            elif i < len(real):
                problems += _compare(item, real[i], f"{path}[{i}]")
    return problems


def json_keys_mismatch(shown: str, printed: str) -> list[str]:
    """How the keys of a shown JSON sample differ from the printed JSON ([] = they agree).

    A sample that is valid JSON must have exactly the printed keys at every level (lists are
    matched element by element, by ``name`` where the elements have one). A sample that is not
    valid JSON (abridged with ``...``) must name only keys that the printed JSON has somewhere.
    """
    try:
        real = json.loads(printed)
    except json.JSONDecodeError as exc:
        return [f"the command printed no JSON on stdout ({exc}): {printed[:200]!r}"]
    try:
        sample = json.loads(shown)
    except json.JSONDecodeError:
        named = set(re.findall(r'"([A-Za-z_][\w.+-]*)"\s*:', shown))
        unknown = sorted(named - _keys(real))
        return [f"keys shown but not printed: {unknown}"] if unknown else []
    return _compare(sample, real, "")


# --- running -------------------------------------------------------------------------------

_DRIVER = r"""
import json, os, sys, traceback
results = os.fdopen(int(sys.argv[1]), "w")
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    block = json.loads(request)
    try:
        exec(compile(block["code"], block["name"], "exec"), namespace)
        sys.stdout.flush(); sys.stderr.flush()
        results.write(json.dumps({"ok": True}) + "\n")
    except BaseException:
        sys.stdout.flush(); sys.stderr.flush()
        results.write(json.dumps({"ok": False, "error": traceback.format_exc()}) + "\n")
    results.flush()
"""


class TranscriptError(AssertionError):
    """A block of a page did not run as written."""


@dataclass
class PageRun:
    """What running one page did: blocks run, blocks skipped (with reasons), JSON checks made."""

    page: str
    ran: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    json_checked: int = 0
    commands: int = 0
    seconds: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what) per step
    cpu_s: float = 0.0  # user + system CPU of every process the page started

    def slowest(self, n: int = 3) -> str:
        return ", ".join(f"{s:.1f} s {what[:60]!r}" for s, what in sorted(self.seconds)[::-1][:n])


def doc_env(root: Path, python: Path) -> dict[str, str]:
    """The environment the docs assume: ``selectkit`` and ``python`` of this venv first on
    PATH, this checkout importable, no colour, a wide terminal, no model downloads."""
    import os

    return {
        **os.environ,
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(root),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "HF_HUB_OFFLINE": "1",
    }


class _Python:
    """One Python process per page: its blocks run in one namespace, in the page's folder."""

    def __init__(self, python: Path, cwd: Path, env: dict[str, str]) -> None:
        import os
        import subprocess

        self.read_fd, write_fd = os.pipe()
        self.out = open(cwd / ".transcript-python.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), "-c", _DRIVER, str(write_fd)],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self.results = os.fdopen(self.read_fd, "r")

    def run(self, code: str, name: str, timeout: float) -> str | None:
        """Run one block; returns None or the traceback (with the process's recent output)."""
        import select

        mark = self.out.tell()
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"code": code, "name": name}) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.results], [], [], timeout)
        if not ready:
            return f"timed out after {timeout} s"
        line = self.results.readline()
        if not line:
            return f"the Python process died (exit {self.proc.wait()})"
        reply = json.loads(line)
        if reply["ok"]:
            return None
        self.out.seek(mark)
        output = self.out.read().decode(errors="replace")[-3000:]
        self.out.seek(0, 2)
        return f"{reply['error']}\n--- output ---\n{output}"

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
        self.results.close()
        self.out.close()


def run_command(command: Command, cwd: Path, env: dict[str, str], timeout: float):
    """Run one shell command line with bash (``pipefail``); returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _check_command(block: Block, command: Command, proc) -> list[str]:
    where = f"{block.where()}, command at line {command.line}:\n  $ {command.text}\n"
    tail = f"--- stderr ---\n{proc.stderr[-3000:]}\n--- stdout ---\n{proc.stdout[-1500:]}"
    if command.expects_error:
        problems = []
        if proc.returncode == 0:
            problems.append("the doc shows an error but the command succeeded")
        elif command.expected_exit is not None and proc.returncode != command.expected_exit:
            problems.append(f"exit {proc.returncode}, the doc shows exit {command.expected_exit}")
        if "error:" not in proc.stderr:
            problems.append("no 'error:' line on stderr")
        return [f"{where}{'; '.join(problems)}\n{tail}"] if problems else []
    if proc.returncode != 0:
        return [f"{where}exit {proc.returncode}\n{tail}"]
    return []


def run_page(path: Path, root: Path, workdir: Path, python: Path, timeout: float = 300):
    """Run every runnable block of one page in ``workdir``, in order; returns a PageRun.

    Raises TranscriptError naming the page, block, command and stderr at the first command or
    Python block that fails, and after the run lists every ``--json`` sample whose keys differ
    from the printed JSON. Costs what the page's commands cost.
    """
    import resource

    blocks = parse_page(path, root)
    env = doc_env(root, python)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = PageRun(path.relative_to(root).as_posix())
    mismatches: list[str] = []
    interpreter: _Python | None = None
    try:
        for block in blocks:
            if block.marked_skip:
                result.skipped.append((block.number, block.skip or ""))
                continue
            if not block.runs:
                continue
            if block.lang == "python":
                if interpreter is None:
                    interpreter = _Python(python, workdir, env)
                started = time.perf_counter()
                error = interpreter.run(block.body, f"{block.page} block {block.number}", timeout)
                result.seconds.append(
                    (time.perf_counter() - started, f"python block {block.number}")
                )
                if error is not None:
                    raise TranscriptError(f"{block.where()} failed:\n{error}")
            for command in block.commands:
                started = time.perf_counter()
                proc = run_command(command, workdir, env, timeout)
                result.seconds.append((time.perf_counter() - started, command.text))
                result.commands += 1
                problems = _check_command(block, command, proc)
                if problems:
                    raise TranscriptError(problems[0])
                shown = command.shown_json
                if shown is not None:
                    result.json_checked += 1
                    for problem in json_keys_mismatch(shown, proc.stdout):
                        mismatches.append(
                            f"{block.where()}, line {command.line}: $ {command.text}\n  {problem}"
                        )
            result.ran += 1
    finally:
        if interpreter is not None:
            interpreter.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result.cpu_s = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    if mismatches:
        raise TranscriptError(
            "--json samples that do not match the output:\n" + "\n".join(mismatches)
        )
    return result
