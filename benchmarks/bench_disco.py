"""DISCO's disagreement scores at leaderboard size: PDS and JSD over 200 models x 100,000 samples x
4 classes (an MMLU-sized benchmark scored by a few hundred models), time and peak memory.

Data: a fixed-seed synthetic probability tensor (models share a per-sample "difficulty" and differ
in skill, so they agree on most samples and disagree on some), saved once as a float32 .npy (305
MiB) under benchmarks/out/data/ and, for the end-to-end run, as the long table the CLI reads
(20 million rows: model, id, proba as a fixed-size float32 list; Parquet). Every method runs in
its own child process (peak RSS = its own kernel high-water mark, via _launch.py):

  baseline        imports numpy + selectkit.disco and loads the .npy: the fixed cost of every
                  in-memory method (the 305 MiB array itself included)
  pds / jsd       ``selectkit.disco.pds`` / ``jsd`` on the loaded array (chunked over samples)
  numpy_pds       the textbook one-liner ``p.max(axis=0).sum(axis=1)`` on the whole array
  scipy_jsd       ``scipy.special.rel_entr(p, p.mean(axis=0)).sum(axis=2).mean(axis=0)``: the
                  definition (1/M) sum_m KL(p_m || p_bar) on the whole array, float64
  cli_pds/cli_jsd ``selectkit select long.parquet --strategy disco --budget 100 -o m.parquet``
                  (reads 20M rows, validates, pivots, scores, writes): the user's end-to-end cost

Timings: the in-process compute seconds (for the in-memory methods) and the child's wall time,
median of ``--repeats`` interleaved rounds; the score vectors of the peers are compared with
selectkit's (max abs difference).

    .venv/bin/python benchmarks/bench_disco.py                         # ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_disco.py --models 50 --samples 20000   # quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

METHODS = ("baseline", "pds", "numpy_pds", "jsd", "scipy_jsd", "cli_pds", "cli_jsd")


def make_data(m: int, n: int, c: int, seed: int, folder: Path) -> tuple[Path, Path]:
    """(tensor .npy, long .parquet) for ``m`` models on ``n`` samples over ``c`` classes."""
    import numpy as np
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"disco_{m}x{n}x{c}_seed{seed}"
    npy, parquet = folder / f"{stem}.npy", folder / f"{stem}.parquet"
    if npy.exists() and parquet.exists():
        return npy, parquet
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c, n)
    difficulty = rng.gamma(1.0, 1.0, n).astype(np.float32)  # most easy, a tail of hard ones
    p = np.empty((m, n, c), dtype=np.float32)
    for i in range(m):
        skill = rng.uniform(0.5, 3.0)
        logits = rng.normal(0.0, 1.0, (n, c)).astype(np.float32) * difficulty[:, None]
        logits[np.arange(n), truth] += skill
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        p[i] = e / e.sum(axis=1, keepdims=True)
    np.save(npy.with_suffix(".tmp.npy"), p)
    npy.with_suffix(".tmp.npy").replace(npy)
    frame = pl.DataFrame(
        {
            "model": np.repeat(np.array([f"model_{i:03d}" for i in range(m)]), n),
            "id": np.tile(np.arange(n, dtype=np.int64), m),
            "proba": p.reshape(m * n, c),
        }
    )
    tmp = parquet.with_suffix(".tmp.parquet")
    frame.write_parquet(tmp)
    tmp.replace(parquet)
    return npy, parquet


def worker(args: argparse.Namespace) -> dict:
    """Runs inside the child: load, compute, report seconds and a fingerprint of the scores."""
    import numpy as np

    import selectkit.disco as disco

    p = np.load(args.data)
    t0 = time.perf_counter()
    if args.worker == "baseline":
        scores = np.zeros(1)
    elif args.worker == "pds":
        scores = disco.pds(p)
    elif args.worker == "jsd":
        scores = disco.jsd(p)
    elif args.worker == "numpy_pds":
        scores = p.max(axis=0).sum(axis=1, dtype=np.float64)
    elif args.worker == "scipy_jsd":
        from scipy.special import rel_entr

        p64 = p.astype(np.float64)
        scores = rel_entr(p64, p64.mean(axis=0)).sum(axis=2).mean(axis=0)
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    seconds = time.perf_counter() - t0
    np.save(args.result.with_suffix(".npy"), scores)
    return {"seconds": seconds}


def run_method(method: str, npy: Path, parquet: Path, args, tmp: Path) -> dict:
    if method.startswith("cli_"):
        out = tmp / f"{method}.parquet"
        cmd = [
            *C.selectkit_exe(), "-q", "select", str(parquet), "-s", "disco", "-b", "100",
            "-p", f"disagreement={method[4:]}", "--label-col", "none", "-o", str(out), "--json",
        ]  # fmt: skip
        res = C.run_child(cmd, timeout=args.timeout)
        if res["rc"] == 0:
            summary = json.loads(res["stdout"])
            res["seconds"] = summary.get("select_s")
            res["read_s"] = summary.get("read_s")
        return res
    result = tmp / f"{method}.json"
    cmd = [
        C.python_exe(), str(Path(__file__).resolve()), "--worker", method,
        "--data", str(npy), "--result", str(result),
    ]  # fmt: skip
    res = C.run_child(cmd, timeout=args.timeout)
    if res["rc"] == 0:
        res.update(json.loads(result.read_text()))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--data-dir", type=Path, default=C.OUT / "data")
    ap.add_argument("--name", default="bench_disco")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = worker(args)
        args.result.write_text(json.dumps(out))
        return 0

    import tempfile

    import numpy as np

    env = C.env_report()
    C.print_env(env)
    t0 = time.perf_counter()
    npy, parquet = make_data(args.models, args.samples, args.classes, args.seed, args.data_dir)
    print(f"data    : {npy.name} + long Parquet ({time.perf_counter() - t0:.1f} s to make/find)")
    methods = args.methods.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for r in range(args.repeats):
            for method in methods:
                res = run_method(method, npy, parquet, args, tmp)
                if res["rc"] != 0:
                    print(f"{method} failed (rc {res['rc']}): {res['stderr'][-500:]}")
                runs[method].append(res)
                print(
                    f"round {r} {method:10s} wall {res['wall_s']:.2f} s, compute "
                    f"{C.fmt(res.get('seconds'))} s, peak {res['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        scores = {m: np.load(tmp / f"{m}.npy") for m in methods if (tmp / f"{m}.npy").exists()}
    agree = {}
    for peer, ours in (("numpy_pds", "pds"), ("scipy_jsd", "jsd")):
        if peer in scores and ours in scores:
            agree[peer] = float(np.abs(scores[peer] - scores[ours]).max())
    rows, summary = [], {}
    for method in methods:
        ok = [r for r in runs[method] if r["rc"] == 0]
        s = {
            "compute_s": C.median([r["seconds"] for r in ok if r.get("seconds") is not None]),
            "wall_s": C.median([r["wall_s"] for r in ok]),
            "peak_rss_mib": C.median([r["peak_rss_mib"] for r in ok]),
            "runs": len(ok),
        }
        summary[method] = s
        rows.append([method, s["compute_s"], s["wall_s"], s["peak_rss_mib"], s["runs"]])
    print()
    print(
        f"{args.models} models x {args.samples:,} samples x {args.classes} classes "
        f"(median of {args.repeats})"
    )
    print(C.table(["method", "compute s", "wall s", "peak RSS MiB", "runs"], rows))
    for peer, ours in (("numpy_pds", "pds"), ("scipy_jsd", "jsd")):
        if peer in summary and ours in summary and summary[ours]["compute_s"] > 0:
            ratio = summary[peer]["compute_s"] / summary[ours]["compute_s"]
            print(
                f"{ours}: {ratio:.2f}x the speed of {peer}; peak RSS {summary[ours]['peak_rss_mib']:.0f}"
                f" vs {summary[peer]['peak_rss_mib']:.0f} MiB; max |score difference| "
                f"{agree.get(peer, float('nan')):.2e}"
            )
    path = C.write_json(
        args.name, {"env": env, "args": {k: str(v) for k, v in vars(args).items()},
                    "summary": summary, "agreement": agree, "runs": runs},
    )  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
