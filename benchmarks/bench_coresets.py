"""Cost of every coreset strategy at corpus scale: time and peak memory, through the CLI.

n = 1M rows x d = 128 float32 (a Gaussian mixture, memory-mapped .npy, 488 MiB), clustered
once with `selectkit cluster --levels 1000,100 --resample-steps 1 --fit-sample 200000`; a score
and a loss column per row. Each strategy picks 10% (100,000 rows) in its own child process,
so the peak RSS is its own.

    python benchmarks/bench_coresets.py [--n 1000000] [--strategies ccs,semdedup,...]

The input itself is 488 MiB; memory O(n) means a peak of a small multiple of that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
import _common as C
from bench_kcenter import make_data

STRATEGIES = {
    "random": [],
    "ccs": ["--score-col", "score"],
    "topk": ["--score-col", "score"],
    "stratified": [],
    "sensitivity": ["--loss-col", "loss"],
    "balanced": [],
    "semdedup": ["--threshold", "0.95"],
}
SELECTKIT = [sys.executable, "-m", "selectkit", "-q"]


def prepare(n: int, d: int, folder: Path) -> tuple[Path, Path, Path, dict]:
    data = make_data(n, d, 0, folder)
    clusters = folder / f"clusters_{n}.parquet"
    info = {}
    if not clusters.exists():
        cmd = [
            *SELECTKIT, "cluster", str(data), "--levels", "1000,100", "--resample-steps", "1",
            "--fit-sample", "200000", "-o", str(clusters),
        ]  # fmt: skip
        res = C.run_child(cmd, timeout=1800)
        if res["rc"] != 0:
            raise SystemExit(res["stderr"])
        info = {"cluster_s": round(res["wall_s"], 1), "cluster_peak_mib": res["peak_rss_mib"]}
    scores = folder / f"scores_{n}.parquet"
    if not scores.exists():
        rng = np.random.default_rng(0)
        pl.DataFrame(
            {
                "id": np.arange(n, dtype=np.int64),
                "score": rng.normal(size=n),
                "loss": rng.exponential(size=n),
            }
        ).write_parquet(scores)
    return data, clusters, scores, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=C.OUT / "data")
    args = ap.parse_args()
    C.print_env(C.env_report())
    data, clusters, scores, info = prepare(args.n, args.d, args.data_dir)
    if info:
        print(
            f"cluster --levels 1000,100: {info['cluster_s']} s, {info['cluster_peak_mib']:.0f} MiB"
        )
    print(f"input: {data.name} ({data.stat().st_size / 2**20:.0f} MiB)")
    rows = []
    for name in args.strategies.split(","):
        out = args.data_dir / f"manifest_{name}.parquet"
        budget = [] if name == "semdedup" else ["--budget", "10%"]
        cmd = [
            *SELECTKIT, "select", str(data), str(clusters), str(scores),
            "--strategy", name, *budget, *STRATEGIES[name], "-o", str(out), "--json",
        ]  # fmt: skip
        runs = [C.run_child(cmd, timeout=1800) for _ in range(args.repeats)]
        bad = [r for r in runs if r["rc"] != 0]
        if bad:
            print(f"{name}: failed rc={bad[0]['rc']}: {bad[0]['stderr'][-400:]}")
            continue
        report = json.loads(runs[-1]["stdout"])
        wall = float(np.median([r["wall_s"] for r in runs]))
        peak = max(r["peak_rss_mib"] for r in runs)
        row = {
            "strategy": name,
            "wall_s": round(wall, 1),
            "select_s": report.get("select_s"),
            "read_s": report.get("read_s"),
            "peak_rss_mib": round(peak),
            "selected": report.get("selected_rows"),
        }
        rows.append(row)
        print(json.dumps(row))
    C.OUT.mkdir(exist_ok=True)
    (C.OUT / f"bench_coresets_n{args.n}.json").write_text(json.dumps(rows, indent=1))
    print(pl.DataFrame(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
