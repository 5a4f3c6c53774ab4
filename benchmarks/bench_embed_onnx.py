"""MiniLM on ONNX Runtime against the torch path (issue 14 part 3), on real text, in one run.

For each corpus (Rotten Tomatoes snippets and the fortunes in data_samples/, both real text),
the same ``--docs`` texts are embedded by ``make_embedder("minilm", runtime=R)`` for R in torch,
onnx and onnx-int8, interleaved repeat by repeat (the machine is shared, so the order rotates),
at the thread counts of ``--threads``. Prints docs/s (median of ``--repeats``), the ratio to
torch in the same repeat, and the cosine of every vector to the torch vector (min and mean).
Each arm runs in this process after a warm-up batch, so model loading and the one-time ONNX
export are not timed (they are reported apart).

    .venv/bin/python benchmarks/bench_embed_onnx.py                   # 400 docs, 3 repeats
    .venv/bin/python benchmarks/bench_embed_onnx.py --docs 1000 --threads 1,2

Results: a table on stdout and benchmarks/out/bench_embed_onnx.json. Needs the [models] extra.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

RUNTIMES = ("torch", "onnx", "onnx-int8")


def corpora(n: int) -> dict[str, list[str]]:
    import polars as pl

    out = {}
    for name in ("rotten_tomatoes", "fortunes"):
        texts = pl.read_ndjson(C.REPO / "data_samples" / f"{name}.jsonl")["text"].to_list()
        out[name] = texts[:n]
    return out


def set_threads(runtime: str, model, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    if runtime != "torch":
        model.set_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="2")
    args = ap.parse_args()
    from selectkit.embed import make_embedder

    rep = C.env_report()
    C.print_env(rep)
    models, load_s = {}, {}
    for runtime in RUNTIMES:
        t = time.perf_counter()
        models[runtime] = make_embedder("minilm", runtime=runtime)
        load_s[runtime] = time.perf_counter() - t
    rows, results = [], []
    for name, texts in corpora(args.docs).items():
        for threads in [int(x) for x in args.threads.split(",")]:
            speed = {r: [] for r in RUNTIMES}
            ratio = {r: [] for r in RUNTIMES}
            vectors = {}
            for r in RUNTIMES:
                set_threads(r, models[r], threads)
                models[r].embed(texts[:32])  # warm-up
            for rep_i in range(args.repeats):
                order = RUNTIMES[rep_i % 3 :] + RUNTIMES[: rep_i % 3]
                took = {}
                for r in order:
                    t = time.perf_counter()
                    vectors[r] = models[r].embed(texts)
                    took[r] = time.perf_counter() - t
                    speed[r].append(len(texts) / took[r])
                for r in RUNTIMES:
                    ratio[r].append(took["torch"] / took[r])
            for r in RUNTIMES:
                cos = (vectors[r] * vectors["torch"]).sum(axis=1)
                row = {
                    "corpus": name,
                    "threads": threads,
                    "runtime": r,
                    "docs_per_s": C.median(speed[r]),
                    "speedup_vs_torch": C.median(ratio[r]),
                    "speedup_range": [min(ratio[r]), max(ratio[r])],
                    "cos_min": float(cos.min()),
                    "cos_mean": float(cos.mean()),
                    "load_s": load_s[r],
                }
                results.append(row)
                rows.append([name, threads, r, C.fmt(row["docs_per_s"], 1),
                             f"{row['speedup_vs_torch']:.2f}x "
                             f"({min(ratio[r]):.2f}-{max(ratio[r]):.2f})",
                             f"{row['cos_min']:.4f}", f"{row['cos_mean']:.4f}"])  # fmt: skip
            print(C.table(["corpus", "threads", "runtime", "docs/s", "vs torch", "cos min",
                           "cos mean"], rows[-3:]), flush=True)  # fmt: skip
    print(C.table(["corpus", "threads", "runtime", "docs/s", "vs torch", "cos min", "cos mean"],
                  rows))  # fmt: skip
    print("load (first run includes the ONNX export):",
          {k: round(v, 1) for k, v in load_s.items()})  # fmt: skip
    C.write_json("bench_embed_onnx", {"env": rep, "args": vars(args), "results": results})


if __name__ == "__main__":
    main()
