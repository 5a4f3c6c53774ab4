"""Bounded memory on real text: the --max-chars cap of embed and dsir, through the real CLI.

Every run is a subprocess of the installed entry point (``python -m selectkit``) on real files
built from data_samples/ (Debian fortunes, Rotten Tomatoes). Long texts are real texts joined
end to end, as a scraped page or a concatenated log line would be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from selectkit.io.provenance import read_provenance

REPO = Path(__file__).resolve().parents[1]
FORTUNES = REPO / "data_samples" / "fortunes.jsonl"
RT = REPO / "data_samples" / "rotten_tomatoes.jsonl"
CAP = 2_000


def cli(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    """``selectkit ARGS`` from this work tree, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "selectkit", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def fortunes() -> list[dict]:
    return [json.loads(line) for line in FORTUNES.read_text().splitlines()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[int]]:
    """500 real fortunes, three of them replaced by 30-60 fortunes joined (over CAP chars)."""
    rows = [{"id": r["id"], "text": r["text"]} for r in fortunes()[:500]]
    pool = [r["text"] for r in fortunes()]
    long_rows = [7, 150, 433]
    for k, at in enumerate(long_rows):
        rows[at]["text"] = "\n".join(pool[k * 60 : k * 60 + 30 + 15 * k])
        assert len(rows[at]["text"]) > CAP
    path = tmp_path_factory.mktemp("cap") / "corpus.jsonl"
    return write_jsonl(path, rows), long_rows


def test_embed_truncates_counts_on_stderr_and_records_the_cap(tmp_path, corpus):
    path, _ = corpus
    out = tmp_path / "emb.parquet"
    r = cli("embed", path, "-o", out, "--max-chars", CAP)
    assert r.returncode == 0, r.stderr
    assert f"truncated 3 texts longer than {CAP} characters" in r.stderr
    prov = read_provenance(out)
    assert prov["params"]["max_chars"] == CAP and prov["params"]["on_long"] == "truncate"
    assert prov["metrics"]["truncated_texts"] == 3
    # the default cap (100,000) cuts nothing here and says nothing
    r = cli("embed", path, "-o", tmp_path / "plain.parquet")
    assert r.returncode == 0 and "truncated" not in r.stderr
    plain = read_provenance(tmp_path / "plain.parquet")
    assert plain["params"]["max_chars"] == 100_000 and plain["metrics"]["truncated_texts"] == 0


def test_truncated_embedding_equals_embedding_the_pre_truncated_text(tmp_path, corpus):
    path, _ = corpus
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    cut = write_jsonl(tmp_path / "cut.jsonl", [{**r, "text": r["text"][:CAP]} for r in rows])
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert cli("embed", path, "-o", a, "--max-chars", CAP).returncode == 0
    assert cli("embed", cut, "-o", b).returncode == 0
    assert pl.read_parquet(a).equals(pl.read_parquet(b))


def test_embed_on_long_error_names_file_row_id_and_length(tmp_path, corpus):
    path, long_rows = corpus
    out = tmp_path / "emb.parquet"
    r = cli("embed", path, "-o", out, "--max-chars", CAP, "--on-long", "error")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    first = long_rows[0]
    length = len(json.loads(path.read_text().splitlines()[first])["text"])
    msg = lines[0]
    assert str(path) in msg and f"row {first}" in msg and "fortune-00007" in msg
    assert f"{length:,} characters" in msg and "--max-chars" in msg
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    bad = cli("embed", path, "-o", out, "--on-long", "ignore")
    assert bad.returncode == 2 and "--on-long" in bad.stderr


def test_dsir_truncates_counts_and_records_the_cap(tmp_path, corpus):
    path, _ = corpus
    out = tmp_path / "m.parquet"
    target = write_jsonl(
        tmp_path / "target.jsonl", [{"text": json.loads(x)["text"]} for x in RT.open()][:300]
    )
    args = ("select", path, "--strategy", "dsir", "--target", target, "--budget", 20)
    r = cli(*args, "--max-chars", CAP, "-o", out)
    assert r.returncode == 0, r.stderr
    # two passes read the corpus; each long text is counted once
    assert f"truncated 3 texts longer than {CAP} characters" in r.stderr
    prov = read_provenance(out)
    params = prov["params"]["strategy_params"]
    assert params["max_chars"] == CAP and params["on_long"] == "truncate"
    assert prov["metrics"]["truncated_texts"] == 3
    r = cli(*args, "--max-chars", CAP, "--on-long", "error", "-o", tmp_path / "e.parquet")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert str(path) in r.stderr and "row 7" in r.stderr and "fortune-00007" in r.stderr
    assert not (tmp_path / "e.parquet").exists()


@pytest.fixture(scope="module")
def huge_line(tmp_path_factory) -> Path:
    """2,000 real rows, one of which is a single 50 MB text (real fortunes repeated)."""
    rows = [{"id": r["id"], "text": r["text"]} for r in fortunes()]
    block = "\n".join(r["text"] for r in rows)
    rows[1000]["text"] = (block * (50_000_000 // len(block) + 1))[:50_000_000]
    return write_jsonl(tmp_path_factory.mktemp("huge") / "huge.jsonl", rows)


def peak_rss_of(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``selectkit ARGS`` under a small parent that reports its children's peak RSS (MiB):
    this test process's own RUSAGE_CHILDREN would also count every earlier child."""
    probe = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'selectkit', *sys.argv[1:]])\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(f'PEAK {peak:.0f}', file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    peak = float(proc.stderr.rsplit("PEAK ", 1)[1].split()[0])
    return proc, peak


@pytest.mark.parametrize("command", ["embed", "dsir"])
def test_a_50_mb_line_runs_in_bounded_time_and_memory(tmp_path, huge_line, command):
    if command == "embed":
        args = ["embed", str(huge_line), "-o", str(tmp_path / "e.parquet")]
    else:
        target = write_jsonl(tmp_path / "t.jsonl", [{"text": r["text"]} for r in fortunes()])
        args = ["select", str(huge_line), "--strategy", "dsir", "--target", str(target)]
        args += ["--budget", "50", "--workers", "1", "-o", str(tmp_path / "m.parquet")]
    t0 = time.perf_counter()
    proc, peak = peak_rss_of(args, timeout=300)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert "truncated 1 text longer than 100000 characters" in proc.stderr
    # correctness bounds (before the cap: 70 s and 13 GB for embed), generous for a shared CI box
    assert peak < 1536, f"peak RSS {peak:.0f} MiB"
    assert wall < 240, f"{wall:.0f} s"
