"""Active-learning strategies at scale: selectkit against scikit-activeml on the same arrays.

Two suites, every method in its own child process (peak RSS = the kernel's high-water mark for
that child, ``ru_maxrss``), peers under an address-space cap so that a materialising method
fails fast with MemoryError instead of swapping the machine:

  badge   BADGE at n = 20,000, C = 100 classes, d = 768 (scikit-activeml issue #589's setting):
          selectkit's factorised distances vs skactiveml.pool.Badge, which builds the
          (n, C*d) float64 gradient embedding (12.3 GB at this size). Also at --small-n rows,
          where the peer fits, for a same-size time and memory ratio.
  scale   every selectkit AL strategy at n = 1,000,000 (d = 128, C = 10, T = 8 MC passes,
          1,000 labelled rows, budget 100), next to skactiveml's UncertaintySampling
          (least_confident, margin_sampling, entropy), GreedyBALD (on an ensemble returning the
          stored passes), CoreSet, Badge and TypiClust.

Data: a Gaussian mixture for the embeddings (fixed seed) and a softmax of a fixed random linear
map of them for the probabilities (MC passes: the same map with multiplicative noise), saved once
as .npy under benchmarks/out/data/ and memory-mapped by every child. Selection time is measured
inside the child around the select call only; "process wall" includes imports and loading.

    nice .venv/bin/python benchmarks/bench_al.py badge
    nice .venv/bin/python benchmarks/bench_al.py scale --n 1000000

Results: a table on stdout and benchmarks/out/bench_al_<suite>.json.
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

DATA = C.OUT / "data"
LABELLED = 1000


def make_data(n: int, d: int, c: int, t: int, seed: int = 0) -> dict[str, Path]:
    """Embeddings (n, d), proba (n, c) and proba_mc (n, t, c) as float32 .npy; cached."""
    import numpy as np

    DATA.mkdir(parents=True, exist_ok=True)
    stem = f"al_{n}x{d}_c{c}_t{t}_s{seed}"
    paths = {k: DATA / f"{stem}_{k}.npy" for k in ("emb", "proba", "proba_mc")}
    if all(p.exists() for p in paths.values()):
        return paths
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (64, d)).astype(np.float32)
    w = rng.normal(0, 1.0 / np.sqrt(d), (d, c)).astype(np.float32) * 3
    emb = np.lib.format.open_memmap(DATA / "tmp_emb.npy", "w+", np.float32, (n, d))
    proba = np.lib.format.open_memmap(DATA / "tmp_proba.npy", "w+", np.float32, (n, c))
    mc = np.lib.format.open_memmap(DATA / "tmp_proba_mc.npy", "w+", np.float32, (n, t, c))
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        x = means[rng.integers(0, 64, m)] + rng.standard_normal((m, d), dtype=np.float32)
        emb[s : s + m] = x
        logits = x @ w
        proba[s : s + m] = _softmax(logits)
        noise = rng.normal(1.0, 0.3, (m, t, 1)).astype(np.float32)
        mc[s : s + m] = _softmax(logits[:, None, :] * noise)
    for name, arr in (("emb", emb), ("proba", proba), ("proba_mc", mc)):
        arr.flush()
        del arr
        os.replace(DATA / f"tmp_{name}.npy", paths[name])
    return paths


def _softmax(z):
    import numpy as np

    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- child workers

SKAL_METHODS = {
    "least-confidence": "least_confident",
    "margin": "margin_sampling",
    "entropy": "entropy",
}


def child(args: argparse.Namespace) -> dict:
    import numpy as np

    if args.cap_gib:
        import resource

        cap = int(args.cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    paths = json.loads(args.paths)
    emb = np.load(paths["emb"], mmap_mode="r")
    proba = np.load(paths["proba"], mmap_mode="r")
    n = emb.shape[0]
    labelled = np.zeros(n, dtype=bool)
    if args.labelled:
        labelled[:: max(1, n // args.labelled)] = True
    info: dict = {"method": args.child}
    if args.child.startswith("selectkit:"):
        import selectkit as sk

        name = args.child.split(":", 1)[1]
        extra = {"proba": np.asarray(proba)}
        if name == "bald":
            extra = {"proba_mc": np.asarray(np.load(paths["proba_mc"], mmap_mode="r"))}
        labels = np.where(labelled, 0, None).astype(object)
        pool = sk.Pool.from_arrays(np.asarray(emb), labels=labels, **extra)
        t0 = time.perf_counter()
        _, sel = sk.select(pool, name, args.budget, seed=0)
        info["select_s"] = time.perf_counter() - t0
        info["picks"] = sel.indices.tolist()
        return info
    # scikit-activeml: same arrays, unlabelled = NaN
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.pool import Badge, CoreSet, GreedyBALD, TypiClust, UncertaintySampling

    class Table(SkactivemlClassifier):
        """Probabilities (and embeddings) looked up by the row number in X[:, 0]."""

        def __init__(self, missing_label=np.nan, classes=None):
            super().__init__(classes=classes, missing_label=missing_label)

        def fit(self, X, y, sample_weight=None):
            self._validate_data(X, y, sample_weight)
            return self

        def predict_proba(self, X, return_embeddings=False):
            rows = np.asarray(X)[:, 0].astype(np.int64)
            p = np.asarray(proba[rows], dtype=np.float64)
            return (p, np.asarray(emb[rows], dtype=np.float64)) if return_embeddings else p

    name = args.child.split(":", 1)[1]
    y = np.full(n, np.nan)
    y[labelled] = 0
    classes = np.arange(proba.shape[1])
    t0 = time.perf_counter()
    if name in SKAL_METHODS:
        idx = np.arange(n, dtype=np.float64)[:, None]
        clf = Table(classes=classes)
        clf.classes_ = classes
        qs = UncertaintySampling(method=SKAL_METHODS[name], random_state=0)
        picks = qs.query(idx, y, clf, fit_clf=False, batch_size=args.budget)
    elif name == "badge":
        idx = np.arange(n, dtype=np.float64)[:, None]
        clf = Table(classes=classes)
        clf.classes_ = classes
        qs = Badge(random_state=0, clf_embedding_flag_name="return_embeddings")
        picks = qs.query(idx, y, clf, fit_clf=False, batch_size=args.budget)
    elif name == "bald":
        mc = np.load(paths["proba_mc"], mmap_mode="r")

        class Member(Table):
            """Ensemble member ``t``: proba_mc[:, t] by row number."""

            def __init__(self, missing_label=np.nan, classes=None, t=0):
                super().__init__(classes=classes, missing_label=missing_label)
                self.t = t

            def predict_proba(self, X, return_embeddings=False):
                rows = np.asarray(X)[:, 0].astype(np.int64)
                return np.asarray(mc[rows, self.t], dtype=np.float64)

        idx = np.arange(n, dtype=np.float64)[:, None]
        ensemble = []
        for t in range(mc.shape[1]):
            member = Member(classes=classes, t=t)
            member.classes_ = classes
            ensemble.append(member)
        qs = GreedyBALD(random_state=0)
        picks = qs.query(idx, y, ensemble, fit_ensemble=False, batch_size=args.budget)
    elif name == "coreset":
        picks = CoreSet(random_state=0).query(np.asarray(emb), y, batch_size=args.budget)
    elif name == "typiclust":
        picks = TypiClust(random_state=0).query(np.asarray(emb), y, batch_size=args.budget)
    else:
        raise SystemExit(f"no peer for {name}")
    info["select_s"] = time.perf_counter() - t0
    info["picks"] = np.asarray(picks).tolist()
    return info


def run(method: str, paths: dict, args: argparse.Namespace, cap_gib: float = 0.0) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "_child",
        "--child",
        method,
        "--paths",
        json.dumps({k: str(v) for k, v in paths.items()}),
        "--budget",
        str(args.budget),
        "--labelled",
        str(args.labelled),
        "--cap-gib",
        str(cap_gib),
    ]
    res = C.run_child(cmd, timeout=args.timeout)
    out = {"method": method, "rc": res["rc"], "peak_rss_mib": res["peak_rss_mib"]}
    out["wall_s"] = res["wall_s"]
    lines = [ln for ln in res["stdout"].splitlines() if ln.startswith("{")]
    if res["rc"] == 0 and lines:
        info = json.loads(lines[-1])
        out["select_s"] = info["select_s"]
        out["picks"] = info["picks"]
    else:
        err = (res["stderr"].strip().splitlines() or ["?"])[-1]
        out["error"] = "timed out" if res["timed_out"] else err[:160]
    return out


def measure(methods: list[tuple[str, float]], paths: dict, args) -> list[dict]:
    if args.only:
        keep = set(args.only.split(","))
        methods = [m for m in methods if m[0] in keep]
    rows = []
    for method, cap in methods:
        runs = [run(method, paths, args, cap) for _ in range(args.repeats if not cap else 1)]
        ok = [r for r in runs if "select_s" in r]
        row = runs[-1]
        if ok:
            row = dict(ok[-1])
            row["select_s"] = C.median([r["select_s"] for r in ok])
            row["runs"] = len(ok)
        rows.append(row)
        print(
            f"  {method:28s} select {C.fmt(row.get('select_s'))} s  peak {C.fmt(row['peak_rss_mib'])} "
            f"MiB  {row.get('error', '')}",
            flush=True,
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", choices=["badge", "scale", "_child"])
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--small-n", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--labelled", type=int, default=LABELLED)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--cap-gib", type=float, default=8.0, help="peers' address-space cap")
    ap.add_argument("--only", default="", help="comma-separated methods, e.g. selectkit:badge")
    ap.add_argument("--child")
    ap.add_argument("--paths")
    args = ap.parse_args()
    if args.suite == "_child":
        print(json.dumps(child(args)))
        return 0
    env = C.env_report()
    C.print_env(env)
    results: dict = {"env": env, "suite": args.suite, "budget": args.budget}
    if args.suite == "badge":
        args.labelled = 0
        blocks = []
        for n in (args.small_n, args.n or 20_000):
            paths = make_data(n, 768, 100, 2)
            print(f"BADGE n={n:,} C=100 d=768 budget={args.budget}", flush=True)
            rows = measure(
                [("selectkit:badge", 0.0), ("skactiveml:badge", args.cap_gib)], paths, args
            )
            blocks.append({"n": n, "rows": rows})
        results["blocks"] = blocks
    else:
        n = args.n or 1_000_000
        paths = make_data(n, 128, 10, 8)
        print(f"scale n={n:,} d=128 C=10 T=8 labelled={args.labelled} budget={args.budget}")
        ours = [
            "least-confidence",
            "margin",
            "entropy",
            "bald",
            "badge",
            "coreset",
            "pcoreset",
            "typiclust",
            "random",
        ]
        peers = ["least-confidence", "margin", "entropy", "bald", "badge", "coreset", "typiclust"]
        methods = [(f"selectkit:{m}", 0.0) for m in ours]
        methods += [(f"skactiveml:{m}", args.cap_gib) for m in peers]
        results["blocks"] = [{"n": n, "rows": measure(methods, paths, args)}]
    for block in results["blocks"]:
        print(f"\nn = {block['n']:,}")
        by = {r["method"]: r for r in block["rows"]}
        table = []
        for r in block["rows"]:
            name = r["method"].split(":", 1)[1]
            peer = by.get(f"skactiveml:{name}") if r["method"].startswith("selectkit") else None
            ratio = "-"
            if peer and "select_s" in peer and "select_s" in r:
                ratio = f"{peer['select_s'] / r['select_s']:.1f}x"
            table.append(
                [
                    r["method"],
                    r.get("runs", 1),
                    r.get("select_s"),
                    r["peak_rss_mib"],
                    ratio,
                    r.get("error", ""),
                ]
            )
        print(C.table(["method", "runs", "select s", "peak RSS MiB", "peer/ours", "note"], table))
    for block in results["blocks"]:
        for r in block["rows"]:
            r.pop("picks", None)
    name = "bench_al_" + args.suite + ("_only" if args.only else "")
    print(f"\nwrote {C.write_json(name, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
