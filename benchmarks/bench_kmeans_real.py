"""k-means on real embeddings (issue 14): selectkit cluster against faiss and scikit-learn.

Every peer runs in its own child process (wall time and peak RSS of that child alone), on the
same embeddings, in one run:

- ``selectkit``: the whole ``selectkit cluster SET -k K -o out.parquet`` command with defaults
  (read, seed, Lloyd, assign and write every row), and with ``--sample-per-centroid 0`` (the
  full-data schedule every Lloyd iteration on every row, the old default);
- ``faiss``: ``faiss.Kmeans(d, k, niter=25, seed=1)`` trained in process (faiss samples 256
  rows per centroid), then every row assigned with an ``IndexFlatL2``; the time excludes
  reading the file (reported apart as ``read_s``);
- ``faiss-all``: the same with ``max_points_per_centroid`` large (trains on every row);
- ``faiss-plain``: ``faiss`` with ``NUMPY_MADVISE_HUGEPAGE=0``, the policy selectkit's
  commands set for themselves (``selectkit/engine/memory.py``);
- ``sklearn``: ``KMeans(n_init=1, max_iter=25, random_state=0)`` on a 100k-row subset (drawn
  with a seeded permutation), with ``selectkit`` on the same subset for the cost comparison.

Costs: every peer writes its centroids; a last child computes each one's cost (sum of squared
distances to the nearest centroid, float64) on all rows, and on the subset for the subset runs.

    python benchmarks/make_dsir_corpus.py && python benchmarks/make_kmeans_corpora.py
    selectkit embed benchmarks/out/dsir_raw.jsonl -o /tmp/km/embA.parquet
    selectkit embed benchmarks/out/kmeans_entries.jsonl -o /tmp/km/embB.parquet
    nice -n 10 python benchmarks/bench_kmeans_real.py /tmp/km/embA.parquet --k 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, env_report, print_env, run_child, table, write_json

HERE = Path(__file__).resolve()


def load(path: str) -> np.ndarray:
    import polars as pl

    col = pl.read_parquet(path, columns=["embedding"])["embedding"]
    return np.ascontiguousarray(col.to_numpy(), dtype=np.float32)


def child(mode: str, data: str, k: int, out: str) -> None:
    """One peer, in this process: prints a JSON line of timings and writes centroids to out."""
    t0 = time.perf_counter()
    x = load(data)
    read_s = time.perf_counter() - t0
    d = x.shape[1]
    t1 = time.perf_counter()
    if mode in ("faiss", "faiss-all"):
        import faiss

        km = faiss.Kmeans(d, k, niter=25, seed=1)
        if mode == "faiss-all":
            km.cp.max_points_per_centroid = 10**9
        km.train(x)
        train_s = time.perf_counter() - t1
        index = faiss.IndexFlatL2(d)
        index.add(km.centroids)
        index.search(x, 1)  # every row assigned, as a user of the model would
        centroids = km.centroids
    elif mode == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(k, n_init=1, max_iter=25, random_state=0).fit(x)
        train_s = time.perf_counter() - t1
        centroids = km.cluster_centers_.astype(np.float32)
    else:
        raise SystemExit(f"unknown mode {mode}")
    np.save(out, centroids)
    print(
        json.dumps({"read_s": read_s, "train_s": train_s, "fit_assign_s": time.perf_counter() - t1})
    )


def costs(data: str, centroid_files: list[str]) -> None:
    """Print the cost of each centroid file on ``data`` (float64 sums)."""
    from selectkit.cluster.search import assign

    x = load(data)
    out = {}
    for f in centroid_files:
        _, dist = assign(x, np.load(f))
        out[f] = float(dist.astype(np.float64).sum())
    print(json.dumps(out))


def centroids_of(parquet: str, out: str) -> None:
    import polars as pl

    t = pl.read_parquet(parquet).sort("cluster")
    np.save(out, np.ascontiguousarray(t["centroid"].to_numpy(), dtype=np.float32))


def write_subset(data: str, rows: int, out: str, seed: int = 0) -> None:
    import polars as pl

    t = pl.read_parquet(data)
    pick = np.sort(np.random.default_rng(seed).permutation(t.height)[:rows])
    t[pick].write_parquet(out)


def py(*args: str) -> list[str]:
    return [sys.executable, str(HERE), *args]


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each peer (median)")
    p.add_argument("--subset", type=int, default=100_000)
    p.add_argument("--skip", default="", help="comma-separated peers to skip")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--child", nargs=4, metavar=("MODE", "DATA", "K", "OUT"))
    p.add_argument("--costs", nargs="+")
    p.add_argument("--centroids-of", nargs=2)
    p.add_argument("--subset-of", nargs=3)
    a = p.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], int(a.child[2]), a.child[3])
    if a.costs:
        return costs(a.costs[0], a.costs[1:])
    if a.centroids_of:
        return centroids_of(*a.centroids_of)
    if a.subset_of:
        return write_subset(a.subset_of[0], int(a.subset_of[1]), a.subset_of[2])
    rep = env_report()
    print_env(rep)
    skip = set(filter(None, a.skip.split(",")))
    tmp = Path(tempfile.mkdtemp(prefix="bench-kmeans-"))
    sk = [sys.executable, "-m", "selectkit", "cluster"]
    env = {"PYTHONPATH": str(REPO), **{k: v for k, v in __import__("os").environ.items()}}
    env["PYTHONPATH"] = str(REPO)
    subset = str(tmp / "subset.parquet")
    runs: dict[str, dict] = {}

    def run(name: str, cmd: list[str], cents: str, on: str, more: dict | None = None) -> None:
        if name.split(" ")[0] in skip:
            return
        got = []
        for _ in range(a.repeats):
            r = run_child(cmd, timeout=a.timeout, env={**env, **(more or {})})
            if r["rc"] != 0:
                raise SystemExit(f"{name} failed: {r['stderr'][-2000:]}")
            got.append(r)
        walls = sorted(r["wall_s"] for r in got)
        runs[name] = {
            "wall_s": walls[len(walls) // 2],
            "walls": walls,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in got),
            "stdout": got[-1]["stdout"][-3000:],
            "centroids": cents,
            "on": on,
        }
        print(f"{name}: {walls} s, {runs[name]['peak_rss_mib']:.0f} MiB", flush=True)

    k = a.k
    for label, extra in (("selectkit", []), ("selectkit-full", ["--sample-per-centroid", "0"])):
        out = str(tmp / f"{label}.parquet")
        cents = str(tmp / f"{label}_c.parquet")
        run(label, [*sk, a.data, "-k", str(k), "-o", out, "--centroids", cents, "--json", *extra],
            cents, a.data)  # fmt: skip
    for mode in ("faiss", "faiss-all"):
        cents = str(tmp / f"{mode}.npy")
        run(mode, py("--child", mode, a.data, str(k), cents), cents, a.data)
    # faiss with numpy's huge-page requests off, as selectkit's commands run (engine/memory.py)
    cents = str(tmp / "faiss-plain.npy")
    run("faiss-plain", py("--child", "faiss", a.data, str(k), cents), cents, a.data,
        {"NUMPY_MADVISE_HUGEPAGE": "0"})  # fmt: skip
    if "sklearn" not in skip:
        import subprocess

        subprocess.run(py("--subset-of", a.data, str(a.subset), subset), check=True, env=env)
        cents = str(tmp / "sklearn.npy")
        run("sklearn (subset)", py("--child", "sklearn", subset, str(k), cents), cents, subset)
        out, cents = str(tmp / "sk_sub.parquet"), str(tmp / "sk_sub_c.parquet")
        run("selectkit (subset)", [*sk, subset, "-k", str(k), "-o", out, "--centroids", cents],
            cents, subset)  # fmt: skip
    # costs: every centroid set on all rows (and the subset runs on the subset too)
    import subprocess

    files = {}
    for name, r in runs.items():
        f = r["centroids"]
        if f.endswith(".parquet"):
            npy = f[: -len(".parquet")] + ".npy"
            subprocess.run(py("--centroids-of", f, npy), check=True, env=env)
            f = npy
        files[name] = f
    full = last_json(subprocess.run(py("--costs", a.data, *files.values()), check=True,
                                    env=env, capture_output=True, text=True).stdout)  # fmt: skip
    sub_names = [n for n in runs if runs[n]["on"] == subset]
    part = {}
    if sub_names:
        part = last_json(subprocess.run(py("--costs", subset, *(files[n] for n in sub_names)),
                                        check=True, env=env, capture_output=True,
                                        text=True).stdout)  # fmt: skip
    ref = full[files["faiss"]] if "faiss" in runs else None
    rows = []
    for name, r in runs.items():
        f = files[name]
        extra = ""
        if name.startswith("selectkit") and "--json" in " ".join(runs[name].get("stdout", "")):
            pass
        if name.startswith(("faiss", "sklearn")):
            extra = json.loads(r["stdout"].strip().splitlines()[-1])
            r["child"] = extra
        rows.append([
            name, r["wall_s"], extra["fit_assign_s"] if extra else None, r["peak_rss_mib"],
            full[f], full[f] / ref if ref else None, part.get(f),
        ])  # fmt: skip
    if "sklearn (subset)" in runs and "selectkit (subset)" in runs:
        ratio = part[files["selectkit (subset)"]] / part[files["sklearn (subset)"]]
        print(f"subset cost selectkit / sklearn: {ratio:.5f}")
    print(f"\n{a.data}, k={k}, repeats={a.repeats}")
    print(table(["peer", "wall s (whole child)", "fit+assign s", "peak MiB", "cost all rows",
                 "cost / faiss", "cost subset"], rows))  # fmt: skip
    name = f"kmeans_real_{Path(a.data).stem}_k{k}"
    print(write_json(name, {"env": rep, "data": a.data, "k": k, "runs": runs, "cost_all": full,
                            "cost_subset": part, "files": files}))  # fmt: skip


if __name__ == "__main__":
    main()
