"""`selectkit report`: render time and file size at 3k, 50k and 1M pool rows.

- 3k: the bundled Rotten Tomatoes corpus (real texts), embedded with the built-in embedder,
  kcenter and random manifests of 200 rows, the corpus for hover texts;
- 50k: the same 3,000 real texts repeated under new ids (so the hover texts are real), with
  synthetic Gaussian vectors of dim 256, a random manifest of 1% of the pool;
- 1M: synthetic vectors of dim 256, no texts, a random manifest of 1% (render time only
  depends on the pool's size through reading, hashing and joining; the map draws 50k rows).

Each size is rendered ``--repeats`` times (median reported) in this process, after one warm-up
render at 3k (imports, jinja2 compile). Writes benchmarks/out/bench_report.json.

    python benchmarks/bench_report.py                 # ~2 min on 2 shared cores
    python benchmarks/bench_report.py --sizes 3000,50000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, env_report, print_env, table, write_json

import selectkit as sk

CORPUS = REPO / "data_samples" / "rotten_tomatoes.jsonl"
DIM = 256


def make_real(folder: Path) -> list[Path]:
    emb = folder / "emb.parquet"
    sk.embed_file(CORPUS, emb)
    picks = []
    for strategy in ("kcenter", "random"):
        m = folder / f"{strategy}.parquet"
        sk.select_files([emb], m, strategy=strategy, budget=200, use_labels=False)
        picks.append(m)
    return [*picks, emb, CORPUS]


def make_synthetic(folder: Path, n: int, texts: bool) -> list[Path]:
    rng = np.random.default_rng(0)
    emb = folder / f"emb_{n}.parquet"
    ids = pl.Series("id", [f"r{i:07d}" for i in range(n)])
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    pl.DataFrame({"id": ids, "embedding": x}).write_parquet(emb)
    manifest = folder / f"m_{n}.parquet"
    sk.select_files([emb], manifest, strategy="random", budget=max(1, n // 100), metrics=False)
    out = [manifest, emb]
    if texts:
        real = pl.read_ndjson(CORPUS)
        reps = -(-n // real.height)
        corpus = pl.concat([real] * reps).head(n).with_columns(id=ids)
        path = folder / f"corpus_{n}.parquet"
        corpus.write_parquet(path)
        out.append(path)
    return out


def measure(inputs: list[Path], output: Path, repeats: int) -> dict:
    times, summary = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        summary = sk.write_report(inputs, output)
        times.append(time.perf_counter() - started)
    return {
        "median_s": round(statistics.median(times), 2),
        "runs_s": [round(t, 2) for t in times],
        "bytes": summary["bytes"],
        "points": summary["points"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="3000,50000,1000000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    env = env_report()
    print_env(env)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        real = make_real(folder)
        sk.write_report(real, folder / "warm.html")  # imports and template compile
        for n in sizes:
            if n == 3000:
                inputs, what = real, "real (data_samples), 2 manifests, texts"
            else:
                texts = n <= 100_000
                inputs = make_synthetic(folder, n, texts)
                what = "synthetic vectors" + (", real texts repeated" if texts else ", no texts")
            repeats = args.repeats if n <= 100_000 else 1
            result = measure(inputs, folder / f"report_{n}.html", repeats)
            rows.append({"pool_rows": n, "inputs": what, **result})
            print(rows[-1], flush=True)
    header = ["pool rows", "inputs", "median s", "MB", "map points"]
    print(
        table(
            header,
            [
                [f"{r['pool_rows']:,}", r["inputs"], r["median_s"], f"{r['bytes'] / 1e6:.2f}",
                 f"{r['points']:,}"]
                for r in rows
            ],
        )
    )  # fmt: skip
    write_json("bench_report", {"env": env, "rows": rows})


if __name__ == "__main__":
    main()
