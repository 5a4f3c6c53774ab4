"""Peak memory and wall time of `selectkit embed` and `selectkit select --strategy dsir` at 100k
and 1M real documents: does memory stay flat as the corpus grows ten times?

Corpora: ``make_memory_corpus.py`` (Debian dictionaries and fortunes, ~450 characters per
document; the 1M file repeats the ~172k distinct documents with distinct ids). Built on first
use under ``--data`` (default /tmp/selectkit-memory, not committed).

Each command runs as a child process of a tiny launcher (see ``_common.run_child``): ``peak RSS``
is the kernel's high-water mark of the largest process of the run (``ru_maxrss``), ``tree peak``
the sampled (every 0.25 s) peak of the summed RSS of the process and its workers (dsir spawns
one per core). DSIR draws a fixed ``--budget`` (a count, so what it keeps for the selection does
not grow with the corpus); its target is the Jargon File. The CLI under test is this work tree's
(``PYTHONPATH`` = the repository, or ``--pythonpath``), whichever selectkit the interpreter has
installed.

Usage: python benchmarks/bench_memory.py [--sizes 100000,1000000] [--repeats 1]
       [--commands embed,dsir] [--timeout 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import REPO, env_report, fmt, median, print_env, run_child, table, write_json

HERE = Path(__file__).resolve().parent


def corpus(data: Path, rows: int) -> Path:
    """The corpus of ``rows`` documents, built by make_memory_corpus.py when missing."""
    path = data / f"memory_{rows}.jsonl"
    if not path.exists() or not (data / "memory_target.jsonl").exists():
        script = str(HERE / "make_memory_corpus.py")
        subprocess.run(
            [sys.executable, script, "--out", str(data), "--sizes", str(rows)], check=True
        )
    return path


def command(name: str, path: Path, out: Path, budget: int) -> list[str]:
    """The CLI call measured for ``name`` (embed or dsir) on ``path``."""
    cli = [sys.executable, "-m", "selectkit", "-q"]
    if name == "embed":
        return [*cli, "embed", str(path), "-o", str(out / "emb.parquet"), "--json"]
    target = path.parent / "memory_target.jsonl"
    return [
        *cli,
        "select",
        str(path),
        "--strategy",
        "dsir",
        "--target",
        str(target),
        "--budget",
        str(budget),
        "-o",
        str(out / "manifest.parquet"),
        "--json",
    ]


def measure(name: str, rows: int, args: argparse.Namespace) -> dict:
    """Median wall time and peaks of ``args.repeats`` runs of one command at one size."""
    data = Path(args.data)
    path = corpus(data, rows)
    out = data / "out"
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": args.pythonpath}
    runs = []
    for _ in range(args.repeats):
        load_before = os.getloadavg()[0]
        res = run_child(command(name, path, out, args.budget), timeout=args.timeout, env=env)
        res["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if res["rc"] != 0:
            raise SystemExit(f"{name} at {rows} rows failed ({res['rc']}): {res['stderr'][-500:]}")
        summary = json.loads(res["stdout"])
        runs.append({**{k: v for k, v in res.items() if k != "stdout"}, "summary": summary})
        print(
            f"  {name} {rows:>9,}: wall {res['wall_s']:.1f} s, peak RSS "
            f"{res['peak_rss_mib']:.0f} MiB, tree peak {res['sampled_peak_rss_mib']:.0f} MiB, "
            f"load {res['load_avg_1min'][0]} -> {res['load_avg_1min'][1]}",
            flush=True,
        )
    return {
        "command": name,
        "rows": rows,
        "wall_s": median([r["wall_s"] for r in runs]),
        "peak_rss_mib": median([r["peak_rss_mib"] for r in runs]),
        "tree_peak_mib": median([r["sampled_peak_rss_mib"] for r in runs]),
        "runs": runs,
    }


def report(results: list[dict], sizes: list[int]) -> str:
    """One row per command and size, plus the largest / smallest size ratio per command."""
    rows = []
    for res in results:
        rows.append(
            [
                res["command"],
                res["rows"],
                res["wall_s"],
                round(res["rows"] / res["wall_s"]),
                res["peak_rss_mib"],
                res["tree_peak_mib"],
            ]
        )
    lo, hi = min(sizes), max(sizes)
    for name in dict.fromkeys(r["command"] for r in results):
        small = next(r for r in results if r["command"] == name and r["rows"] == lo)
        big = next(r for r in results if r["command"] == name and r["rows"] == hi)
        rows.append(
            [
                f"{name} {hi // lo}x / 1x",
                "-",
                big["wall_s"] / small["wall_s"],
                "-",
                fmt(big["peak_rss_mib"] / small["peak_rss_mib"], 3),
                fmt(big["tree_peak_mib"] / small["tree_peak_mib"], 3),
            ]
        )
    head = ["command", "docs", "wall s", "docs/s", "peak RSS MiB", "tree peak MiB"]
    return table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--commands", default="embed,dsir")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=int, default=1000, help="dsir documents to draw")
    parser.add_argument("--data", default="/tmp/selectkit-memory")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per child run")
    parser.add_argument(
        "--pythonpath",
        default=str(REPO),
        help="where the selectkit under test lives (a copy keeps a long run safe from edits)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = env_report()
    print_env(env)
    results = [measure(name, rows, args) for name in args.commands.split(",") for rows in sizes]
    text = report(results, sizes)
    print(text)
    path = write_json("bench_memory", {"env": env, "args": vars(args), "results": results})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
