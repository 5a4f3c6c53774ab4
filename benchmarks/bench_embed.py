"""Throughput and memory of selectkit's default (hashing) embedder, with scikit-learn as a peer.

Measures, in one run and one environment:

  (a) in memory (in a child process): ``HashingEmbedder(dim=256).fit(texts)`` time and
      ``.embed(texts)`` docs/s on ``--inmem-docs`` short texts (median of ``--repeats`` runs),
      interleaved run by run with the peer ``HashingVectorizer(analyzer="char_wb",
      ngram_range=(3, 5))`` + ``HashingVectorizer(analyzer="word", ngram_range=(1, 2))``
      ``.transform`` on the same texts (a sparse 2**20-wide output, no fit, no IDF, no
      projection: a reference for the tokenising + hashing cost only).
  (b) end to end: ``selectkit embed corpus.jsonl -o out.parquet`` in a child process on JSONL
      corpora of each ``--sizes`` docs: wall time, docs/s, the fit/embed split the CLI reports,
      and the child's exact peak RSS (``os.wait4`` rusage) plus a sampled RSS trace.

  (c) engines, side by side in the same run: ``selectkit embed 'shards/*.jsonl.gz' -o DIR/``
      over ``--engine-shards`` gzip shards of ``--engine-docs`` real documents (``--engine-corpus``,
      e.g. ``make_memory_corpus.py``'s ``memory_100000.jsonl``; else the short texts below) with
      ``--engine local`` and ``--engine ray`` (a Ray instance started by the run on this machine,
      or ``$RAY_ADDRESS``): wall time, docs/s, the driver's peak RSS, and whether the two
      folders hold the same bytes.

Short texts come from data_samples/rotten_tomatoes.jsonl (``text`` < 300 chars), repeated with a
row-number suffix so that every text differs.

    .venv/bin/python benchmarks/bench_embed.py                   # full: 10k, 100k, 1M
    .venv/bin/python benchmarks/bench_embed.py --sizes 10000,100000 --repeats 3   # quick
    .venv/bin/python benchmarks/bench_embed.py --skip-inmem --skip-e2e \
        --engine-corpus /tmp/selectkit-memory/memory_100000.jsonl      # engines only

Results: a table on stdout and benchmarks/out/bench_embed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

TARGET_DOCS_PER_S = 5000.0


def base_texts() -> list[str]:
    import polars as pl

    df = pl.read_ndjson(C.REPO / "data_samples" / "rotten_tomatoes.jsonl")
    return [t for t in df.get_column("text").to_list() if t is not None and len(t) < 300]


def make_texts(n: int, base: list[str]) -> list[str]:
    nb = len(base)
    return [f"{base[i % nb]} {i}" for i in range(n)]


def make_corpus(n: int, base: list[str], folder: Path) -> Path:
    """JSONL with ``id`` (int) and ``text``; cached by size."""
    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"corpus_{n}.jsonl"
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".jsonl.tmp")
    chunk = 200_000
    with open(tmp, "wb") as fh:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            nb = len(base)
            pl.DataFrame(
                {
                    "id": pl.Series("id", range(start, stop), dtype=pl.Int64),
                    "text": [f"{base[i % nb]} {i}" for i in range(start, stop)],
                }
            ).write_ndjson(fh)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- (a) in memory


def bench_inmem(n_docs: int, repeats: int, threads: int | None) -> dict:
    import numpy as np
    from sklearn.feature_extraction.text import HashingVectorizer
    from threadpoolctl import threadpool_limits

    from selectkit.embed.hashing import HashingEmbedder

    texts = make_texts(n_docs, base_texts())
    n_chars = sum(len(t) for t in texts)
    hv_char = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5))
    hv_word = HashingVectorizer(analyzer="word", ngram_range=(1, 2))

    def sk_transform():
        a = hv_char.transform(texts)
        b = hv_word.transform(texts)
        return a, b

    fit_s, embed_s, sk_s, fit_cpu, embed_cpu = [], [], [], [], []
    model = None
    with threadpool_limits(limits=threads):
        # warm-up (imports, allocator, caches) -- not timed
        HashingEmbedder(dim=256).fit(texts[:2000]).embed(texts[:2000])
        sk_transform()
        for r in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            model = HashingEmbedder(dim=256).fit(texts)
            fit_s.append(time.perf_counter() - t)
            fit_cpu.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            X = model.embed(texts)
            embed_s.append(time.perf_counter() - t)
            embed_cpu.append(time.process_time() - c)
            t = time.perf_counter()
            _a, _b = sk_transform()
            sk_s.append(time.perf_counter() - t)
            print(
                f"  in-memory run {r + 1}/{repeats}: selectkit fit {fit_s[-1]:.2f} s "
                f"(cpu {fit_cpu[-1]:.2f}), embed {embed_s[-1]:.2f} s (cpu {embed_cpu[-1]:.2f}); "
                f"sklearn hashing transform {sk_s[-1]:.2f} s; load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        assert X.shape == (n_docs, 256) and X.dtype == np.float32

    med = C.median
    res = {
        "docs": n_docs,
        "chars": n_chars,
        "repeats": repeats,
        "threads": threads,
        "selectkit_fit_s": fit_s,
        "selectkit_embed_s": embed_s,
        "sklearn_hashing_transform_s": sk_s,
        "selectkit_fit_cpu_s": fit_cpu,
        "selectkit_embed_cpu_s": embed_cpu,
        "selectkit_fit_median_s": med(fit_s),
        "selectkit_embed_median_s": med(embed_s),
        "selectkit_docs_per_s": n_docs / med(embed_s),
        "sklearn_hashing_docs_per_s": n_docs / med(sk_s),
        "loadavg_after": os.getloadavg(),
    }
    res["ratio_selectkit_over_sklearn_hashing"] = (
        res["selectkit_docs_per_s"] / res["sklearn_hashing_docs_per_s"]
    )
    return res


# --------------------------------------------------------------------------- (b) end to end


def rss_at_fractions(trace: list, fractions=(0.25, 0.5, 0.75, 1.0)) -> list[float]:
    """Sampled RSS (MiB) at the given fractions of the run's duration."""
    if not trace:
        return []
    end = trace[-1][0]
    out = []
    for f in fractions:
        t = f * end
        out.append(min(trace, key=lambda p: abs(p[0] - t))[1])
    return out


def bench_e2e(
    sizes: list[int],
    repeats_small: int,
    repeats_large: int,
    timeout: float,
    threads: int | None,
    data_dir: Path,
) -> list[dict]:
    base = base_texts()
    rows = []
    for n in sizes:
        t = time.perf_counter()
        corpus = make_corpus(n, base, data_dir)
        print(
            f"  corpus {n:,} docs: {corpus} ({corpus.stat().st_size / 2**20:.0f} MiB, "
            f"made/cached in {time.perf_counter() - t:.1f} s)",
            flush=True,
        )
        out = data_dir / f"emb_{n}.parquet"
        reps = repeats_small if n <= 100_000 else repeats_large
        runs = []
        for r in range(reps):
            if out.exists():
                out.unlink()
            cmd = [*C.selectkit_exe(), "-q", "embed", str(corpus), "-o", str(out), "--json"]
            if threads:
                cmd += ["--threads", str(threads)]
            load0 = os.getloadavg()[0]
            res = C.run_child(cmd, timeout=timeout)
            res["loadavg_before"] = load0
            res["selectkit_source"] = C.source_fingerprint()
            res["loadavg_after"] = os.getloadavg()[0]
            if res["rc"] != 0:
                print(
                    f"  FAILED rc={res['rc']} timed_out={res['timed_out']}\n{res['stderr'][-2000:]}"
                )
                runs.append(res)
                break
            summary = json.loads(res["stdout"])
            res["summary"] = summary
            res["out_mib"] = out.stat().st_size / 2**20
            res["rss_at_25_50_75_100pct"] = rss_at_fractions(res["rss_trace"])
            runs.append(res)
            print(
                f"  embed {n:,} run {r + 1}/{reps}: wall {res['wall_s']:.1f} s "
                f"(fit {summary.get('fit_s', float('nan')):.1f} s, "
                f"embed {summary.get('embed_s', float('nan')):.1f} s), "
                f"peak RSS {res['peak_rss_mib']:.0f} MiB, load {load0:.1f}->{res['loadavg_after']:.1f}",
                flush=True,
            )
        ok = [r for r in runs if r["rc"] == 0]
        if out.exists():
            out.unlink()
        row = {
            "docs": n,
            "runs": [{k: v for k, v in r.items() if k != "stdout"} for r in runs],
            "ok": bool(ok),
        }
        if ok:
            wall = C.median([r["wall_s"] for r in ok])
            row.update(
                wall_s=wall,
                docs_per_s_wall=n / wall,
                fit_s=C.median([r["summary"]["fit_s"] for r in ok]),
                embed_s=C.median([r["summary"]["embed_s"] for r in ok]),
                docs_per_s_embed=C.median([r["summary"]["docs_per_s"] for r in ok]),
                peak_rss_mib=max(r["peak_rss_mib"] for r in ok),
                peak_rss_mib_runs=[r["peak_rss_mib"] for r in ok],
                rss_at_25_50_75_100pct=ok[-1]["rss_at_25_50_75_100pct"],
                out_mib=ok[-1]["out_mib"],
                n_runs=len(ok),
            )
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- (c) engines


def make_shards(corpus: Path | None, n: int, shards: int, base: list[str], folder: Path) -> Path:
    """``shards`` gzip JSONL shards of the first ``n`` documents of ``corpus`` (or of the short
    texts); cached by size."""
    import gzip

    import polars as pl

    out = folder / f"shards_{n}_{shards}"
    if out.is_dir() and len(list(out.glob("*.jsonl.gz"))) == shards:
        return out
    out.mkdir(parents=True, exist_ok=True)
    frame = (
        pl.read_ndjson(corpus, n_rows=n).select("id", "text")
        if corpus is not None
        else pl.read_ndjson(make_corpus(n, base, folder))
    )
    per = -(-frame.height // shards)
    for k in range(shards):
        with gzip.open(out / f"docs-{k:03d}.jsonl.gz", "wb") as fh:
            frame.slice(k * per, per).write_ndjson(fh)
    return out


def _folder_bytes(folder: Path) -> list[bytes]:
    """Each part's data as Arrow IPC bytes (provenance dropped), in part order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part).replace_schema_metadata(None)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        out.append(sink.getvalue().to_pybytes())
    return out


def bench_engines(args: argparse.Namespace, data_dir: Path) -> dict:
    """The same embed on the local engine and on Ray, in this run, on the same shards."""
    import shutil

    shards = make_shards(
        args.engine_corpus, args.engine_docs, args.engine_shards, base_texts(), data_dir
    )
    glob = str(shards / "*.jsonl.gz")
    rows = {}
    for engine in args.engines.split(","):
        out = data_dir / f"emb_engine_{engine}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [*C.selectkit_exe(), "-q", "embed", glob, "-o", f"{out}/", "--engine", engine]
        cmd += ["--json"]
        load0 = os.getloadavg()[0]
        res = C.run_child(cmd, timeout=args.timeout)
        res["loadavg_before"], res["loadavg_after"] = load0, os.getloadavg()[0]
        row = {k: v for k, v in res.items() if k not in ("stdout", "rss_trace")}
        if res["rc"] == 0:
            summary = json.loads(res["stdout"])
            row.update(
                summary=summary,
                docs_per_s_wall=args.engine_docs / res["wall_s"],
                docs_per_s_embed=summary.get("docs_per_s"),
            )
        else:
            print(f"  {engine} FAILED rc={res['rc']}\n{res['stderr'][-2000:]}")
        rows[engine] = row
        print(
            f"  {engine}: wall {res['wall_s']:.1f} s, driver peak RSS "
            f"{res['peak_rss_mib']:.0f} MiB, load {load0:.1f}->{res['loadavg_after']:.1f}",
            flush=True,
        )
    names = [e for e in rows if rows[e]["rc"] == 0]
    same = None
    if len(names) > 1:
        first = _folder_bytes(data_dir / f"emb_engine_{names[0]}")
        same = all(_folder_bytes(data_dir / f"emb_engine_{e}") == first for e in names[1:])
    for e in rows:
        shutil.rmtree(data_dir / f"emb_engine_{e}", ignore_errors=True)
    return {
        "docs": args.engine_docs,
        "shards": args.engine_shards,
        "corpus": str(args.engine_corpus or "short texts (data_samples)"),
        "cpus": os.cpu_count(),
        "runs": rows,
        "same_bytes": same,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000,1000000", help="end-to-end corpus sizes")
    ap.add_argument("--inmem-docs", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=5, help="in-memory repeats (median)")
    ap.add_argument(
        "--e2e-repeats", type=int, default=3, help="end-to-end repeats for <= 100k docs"
    )
    ap.add_argument(
        "--e2e-repeats-large", type=int, default=1, help="end-to-end repeats above 100k"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="BLAS threads for both (default: all)"
    )
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per child run")
    ap.add_argument("--data-dir", type=Path, default=C.OUT / "data")
    ap.add_argument("--skip-inmem", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--name", default="bench_embed", help="JSON result name under benchmarks/out/")
    ap.add_argument("--worker-inmem", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip-engines", action="store_true")
    ap.add_argument("--engines", default="local,ray", help="(c): engines to compare")
    ap.add_argument("--engine-docs", type=int, default=100_000, help="(c): documents")
    ap.add_argument("--engine-shards", type=int, default=8, help="(c): gzip shards")
    ap.add_argument("--engine-corpus", type=Path, default=None, help="(c): real JSONL corpus")
    args = ap.parse_args()

    if args.worker_inmem is not None:  # child process for (a)
        res = bench_inmem(args.inmem_docs, args.repeats, args.threads)
        res["blas"] = C.blas_info()
        args.worker_inmem.write_text(json.dumps(res))
        return 0

    rep = C.env_report()
    print("== bench_embed: selectkit HashingEmbedder vs scikit-learn HashingVectorizer ==")
    C.print_env(rep)
    print(f"load average at start: {os.getloadavg()}")
    payload: dict = {"env": rep, "args": {k: str(v) for k, v in vars(args).items()}}

    if not args.skip_inmem:
        print(
            f"\n-- (a) in memory, {args.inmem_docs:,} docs, median of {args.repeats} --", flush=True
        )
        res_path = C.OUT / f".{args.name}-inmem.json"
        C.OUT.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            __file__,
            "--worker-inmem",
            str(res_path),
            "--inmem-docs",
            str(args.inmem_docs),
            "--repeats",
            str(args.repeats),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        run = C.run_child(cmd, timeout=args.timeout)
        print(run["stdout"], end="")
        if run["rc"] != 0:
            print(f"in-memory worker failed rc={run['rc']}:\n{run['stderr'][-3000:]}")
        else:
            im = json.loads(res_path.read_text())
            res_path.unlink()
            im["worker_peak_rss_mib"] = run["peak_rss_mib"]
            payload["inmem"] = im
        C.write_json(args.name, payload)

    if not args.skip_e2e:
        sizes = [int(s) for s in args.sizes.split(",") if s]
        print(f"\n-- (b) end to end `selectkit embed` on {sizes} docs --", flush=True)
        payload["e2e"] = bench_e2e(
            sizes,
            args.e2e_repeats,
            args.e2e_repeats_large,
            args.timeout,
            args.threads,
            args.data_dir,
        )
    if not args.skip_engines:
        print(
            f"\n-- (c) engines {args.engines}: {args.engine_docs:,} docs in "
            f"{args.engine_shards} shards --",
            flush=True,
        )
        payload["engines"] = bench_engines(args, args.data_dir)
    payload["loadavg_end"] = os.getloadavg()
    C.write_json(args.name, payload)

    # ------------------------------------------------------------------ report
    print("\n== results ==")
    C.print_env(rep)
    if "inmem" in payload:
        im = payload["inmem"]
        print(
            f"\n(a) in memory, {im['docs']:,} docs ({im['chars'] / im['docs']:.0f} chars/doc), "
            f"median of {im['repeats']} (fit runs: {', '.join(f'{x:.1f}' for x in im['selectkit_fit_s'])} s):"
        )
        print(
            C.table(
                ["method", "fit s", "transform s", "docs/s", "selectkit / peer"],
                [
                    [
                        "selectkit HashingEmbedder(dim=256)",
                        im["selectkit_fit_median_s"],
                        im["selectkit_embed_median_s"],
                        im["selectkit_docs_per_s"],
                        1.0,
                    ],
                    [
                        "sklearn HashingVectorizer char_wb(3,5)+word(1,2)",
                        None,
                        im["docs"] / im["sklearn_hashing_docs_per_s"],
                        im["sklearn_hashing_docs_per_s"],
                        im["ratio_selectkit_over_sklearn_hashing"],
                    ],
                ],
            )
        )
        ok = im["selectkit_docs_per_s"] >= TARGET_DOCS_PER_S
        print(
            f"target >= {TARGET_DOCS_PER_S:,.0f} docs/s (embed, in memory): "
            f"{'MET' if ok else 'NOT MET'} ({im['selectkit_docs_per_s']:,.0f})"
        )
    if "e2e" in payload:
        print("\n(b) end to end `selectkit embed corpus.jsonl -o out.parquet` (child process):")
        rows = []
        for r in payload["e2e"]:
            if not r["ok"]:
                rows.append([r["docs"], "FAILED", None, None, None, None, None, None])
                continue
            rows.append(
                [
                    r["docs"],
                    r["wall_s"],
                    r["fit_s"],
                    r["embed_s"],
                    r["docs_per_s_wall"],
                    r["docs_per_s_embed"],
                    r["peak_rss_mib"],
                    " / ".join(f"{x:.0f}" for x in r["rss_at_25_50_75_100pct"]),
                ]
            )
        print(
            C.table(
                [
                    "docs",
                    "wall s",
                    "fit s",
                    "embed s",
                    "docs/s (wall)",
                    "docs/s (embed phase)",
                    "peak RSS MiB",
                    "RSS at 25/50/75/100% of run",
                ],
                rows,
            )
        )
        by_n = {r["docs"]: r for r in payload["e2e"] if r["ok"]}
        for r in by_n.values():
            ok = r["docs_per_s_wall"] >= TARGET_DOCS_PER_S
            print(
                f"  {r['docs']:>9,} docs: {r['docs_per_s_wall']:,.0f} docs/s wall-clock -> target "
                f">= {TARGET_DOCS_PER_S:,.0f}: {'MET' if ok else 'NOT MET'}"
            )
        if 100_000 in by_n and 1_000_000 in by_n:
            a, b = by_n[100_000]["peak_rss_mib"], by_n[1_000_000]["peak_rss_mib"]
            growth = b / a - 1
            verdict = "FLAT (< 10% growth)" if growth < 0.10 else "GROWS"
            print(f"  peak RSS 100k -> 1M: {a:.0f} -> {b:.0f} MiB ({growth:+.1%}): {verdict}")
            payload["peak_rss_growth_100k_to_1m"] = growth
            C.write_json(args.name, payload)
    if "engines" in payload:
        eng = payload["engines"]
        print(
            f"\n(c) `selectkit embed 'shards/*.jsonl.gz' -o DIR/ --engine E`, {eng['docs']:,} docs "
            f"in {eng['shards']} shards ({eng['corpus']}), {eng['cpus']} CPUs:"
        )
        base_wall = None
        table = []
        for name, r in eng["runs"].items():
            if r["rc"] != 0:
                table.append([name, "FAILED", None, None, None, None])
                continue
            base_wall = base_wall or r["wall_s"]
            table.append(
                [
                    name,
                    r["wall_s"],
                    r["docs_per_s_wall"],
                    r["docs_per_s_embed"],
                    r["wall_s"] / base_wall,
                    r["peak_rss_mib"],
                ]
            )
        print(
            C.table(
                [
                    "engine",
                    "wall s",
                    "docs/s (wall)",
                    "docs/s (embed)",
                    "wall / first",
                    "driver peak RSS MiB",
                ],
                table,
            )
        )
        print(f"  same bytes in every engine's parts: {eng['same_bytes']}")
    sources = {r.get("selectkit_source") for row in payload.get("e2e", []) for r in row["runs"]}
    sources.add(rep["selectkit_source"])
    sources.add(C.source_fingerprint())
    sources.discard(None)
    if len(sources) > 1:
        print(f"\nWARNING: selectkit/ source changed during this run ({sorted(sources)})")
    print(f"\nload average at end: {payload['loadavg_end']}")
    print(f"JSON: {C.OUT / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
