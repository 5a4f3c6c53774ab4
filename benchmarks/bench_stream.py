"""selectkit stream: prequential accuracy on a real stream, budget tracking, throughput, memory.

1. Quality (real data): scikit-learn's digits replayed in a random order as a stream, 5 seeds
   (order and selector seed), budgets 5/10/30%. The model is SGDClassifier(log_loss), updated
   with partial_fit on the kept rows every 50 lines; each line is predicted before its label
   could be used (prequential accuracy, test-then-train). The selector is selectkit's Python
   API fed 50 lines at a time with --state carried over (exactly one run's decisions), and the
   peer is scikit-activeml's stream module (the same strategies, one query() + update() call
   per line, as its docs run it). With --drift, the labels are permuted halfway (abrupt drift).
2. Budget: the kept fraction of every window of 500 lines, against the budget (±20 %).
3. Cost: score-only (quantile) and probability (rand-var-uncertainty) streams of 10^5 .. 10^7
   synthetic lines through the CLI in a pipe: lines per second and peak RSS. The lines are
   synthetic: speed and memory only, never quality.
4. Cost budgets (--cost-col), on a real stream with a real cost: Rotten Tomatoes rows
   500..2999 (data_samples/), each with its text's token count as the cost and the class
   probabilities of a logistic regression fitted on rows 0..499 (hashing embeddings); the kept
   cost of every window of 500 lines against the target (budget x the window's cost, or X x
   500 for cost:X), 5 seeds. Then the throughput with and without --cost-col on 10^5 / 10^6
   synthetic probability lines through the CLI (best of 3 runs each).

    python benchmarks/bench_stream.py            # all four, ~8 min on 2 cores
    python benchmarks/bench_stream.py --quick    # 3 seeds, 10^5..10^6 lines
    python benchmarks/bench_stream.py --only-cost-budget   # part 4 alone, ~4 min
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_report, fmt, print_env, run_child, selectkit_exe, table, write_json

from selectkit.stream import stream_select

STRATEGIES = [
    "random",
    "fixed-uncertainty",
    "var-uncertainty",
    "rand-var-uncertainty",
    "split",
    "quantile",
    "density",
]
PEERS = {  # scikit-activeml's classes for the same rules
    "random": "StreamRandomSampling",
    "fixed-uncertainty": "FixedUncertainty",
    "var-uncertainty": "VariableUncertainty",
    "rand-var-uncertainty": "RandomVariableUncertainty",
    "split": "Split",
}
UPDATE_EVERY = 50


def digits_stream(seed: int, drift: bool):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.copy()
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    if drift:  # abrupt drift: the labels are permuted for the second half
        perm = np.random.default_rng(seed + 100).permutation(10)
        half = len(y) // 2
        y[half:] = perm[y[half:]]
    return x, y


def new_model(seed: int):
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed)


def proba_of(model, fitted: bool, x: np.ndarray) -> np.ndarray:
    if not fitted:
        return np.full((len(x), 10), 0.1)
    p = np.zeros((len(x), 10))
    p[:, model.classes_] = model.predict_proba(x)
    return p / p.sum(axis=1, keepdims=True)


def replay_selectkit(strategy: str, budget: float, seed: int, drift: bool):
    """Prequential accuracy and per-line keep flags of selectkit's selector on digits."""
    x, y = digits_stream(seed, drift)
    model, fitted = new_model(seed), False
    state = Path(tempfile.mkdtemp()) / "s.json"
    correct, keep_all = 0, []
    t_select = 0.0
    for start in range(0, len(y), UPDATE_EVERY):
        xs, ys = x[start : start + UPDATE_EVERY], y[start : start + UPDATE_EVERY]
        p = proba_of(model, fitted, xs)
        correct += int((p.argmax(axis=1) == ys).sum())
        lines = b"".join(
            (
                json.dumps(
                    {
                        "id": f"r{start + i}",
                        "proba": p[i].tolist(),
                        "emb": xs[i, ::4].round(3).tolist(),
                    }
                )
                + "\n"
            ).encode()
            for i in range(len(ys))
        )
        kw = {"score_col": None, "proba_col": "proba"}
        if strategy == "density":
            kw["embedding_col"] = "emb"
        out = io.BytesIO()
        t0 = time.perf_counter()
        log = state.with_suffix(".parquet")
        stream_select(
            [io.BytesIO(lines)],
            out,
            strategy=strategy,
            budget=budget,
            seed=seed,
            state=str(state),
            log=str(log),
            **kw,
        )
        t_select += time.perf_counter() - t0
        import polars as pl

        keep = pl.read_parquet(log)["keep"].to_numpy()
        keep_all.append(keep)
        if keep.any():
            model.partial_fit(xs[keep], ys[keep], classes=np.arange(10))
            fitted = True
    return correct / len(y), np.concatenate(keep_all), t_select


class _Fixed:
    """A 'classifier' whose predict_proba is the model's current output for the candidate."""

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba
        self.classes = np.arange(10)
        self.classes_ = np.arange(10)

    def predict_proba(self, x):
        return self.proba[np.asarray(x, dtype=np.int64).ravel()]


def replay_peer(strategy: str, budget: float, seed: int, drift: bool):
    """The same replay with scikit-activeml's query strategy deciding, one call per line."""
    import skactiveml.stream as sks
    from skactiveml.classifier import SklearnClassifier

    x, y = digits_stream(seed, drift)
    model, fitted = new_model(seed), False
    extra = {"classes": np.arange(10)} if strategy == "fixed-uncertainty" else {}
    qs = getattr(sks, PEERS[strategy])(budget=budget, random_state=seed, **extra)
    correct, keep_all, t_select = 0, [], 0.0
    for start in range(0, len(y), UPDATE_EVERY):
        xs, ys = x[start : start + UPDATE_EVERY], y[start : start + UPDATE_EVERY]
        p = proba_of(model, fitted, xs)
        correct += int((p.argmax(axis=1) == ys).sum())
        # skactiveml asks a fitted classifier for the candidate's probabilities: give it one
        # that returns the same probabilities selectkit sees
        from sklearn.dummy import DummyClassifier

        clf = SklearnClassifier(DummyClassifier(strategy="prior"), classes=np.arange(10))
        clf.fit(np.zeros((10, 1)), np.arange(10))
        clf.predict_proba = lambda c, _p=p: _p[np.asarray(c, dtype=np.int64).ravel()]  # type: ignore[method-assign]
        keep = np.zeros(len(ys), dtype=bool)
        t0 = time.perf_counter()
        for i in range(len(ys)):
            cand = np.array([[i]])
            queried = qs.query(cand) if strategy == "random" else qs.query(cand, clf=clf)
            qs.update(cand, queried)
            keep[i] = len(queried) > 0
        t_select += time.perf_counter() - t0
        keep_all.append(keep)
        if keep.any():
            model.partial_fit(xs[keep], ys[keep], classes=np.arange(10))
            fitted = True
    return correct / len(y), np.concatenate(keep_all), t_select


def windows_ok(keep: np.ndarray, budget: float, width: int = 500) -> tuple[float, float]:
    w = keep[: keep.size // width * width].reshape(-1, width).mean(axis=1)
    return float(w.min()), float(w.max())


def quality(seeds: list[int], budgets: list[float], drift: bool) -> list[dict]:
    rows = []
    for budget in budgets:
        for strategy in STRATEGIES:
            for who in ("selectkit", "skactiveml"):
                if who == "skactiveml" and strategy not in PEERS:
                    continue
                accs, fracs, wins, secs = [], [], [], []
                for seed in seeds:
                    fn = replay_selectkit if who == "selectkit" else replay_peer
                    acc, keep, sec = fn(strategy, budget, seed, drift)
                    accs.append(acc)
                    fracs.append(keep.mean())
                    wins.append(windows_ok(keep, budget))
                    secs.append(sec)
                rows.append(
                    {
                        "budget": budget,
                        "strategy": strategy,
                        "who": who,
                        "drift": drift,
                        "acc_mean": float(np.mean(accs)),
                        "acc_sd": float(np.std(accs)),
                        "kept_mean": float(np.mean(fracs)),
                        "window_min": min(w[0] for w in wins),
                        "window_max": max(w[1] for w in wins),
                        "select_s_median": float(np.median(secs)),
                    }
                )
                r = rows[-1]
                print(
                    f"  b={budget:.2f} {strategy:22s} {who:10s} acc {r['acc_mean']:.3f}±"
                    f"{r['acc_sd']:.3f} kept {r['kept_mean']:.3f} windows "
                    f"[{r['window_min']:.3f}, {r['window_max']:.3f}] "
                    f"select {r['select_s_median']:.2f}s",
                    flush=True,
                )
    return rows


def make_lines(path: Path, n: int, kind: str) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as fh:
        block = 100_000
        for start in range(0, n, block):
            m = min(block, n - start)
            if kind == "score":
                s = rng.random(m)
                fh.writelines(f'{{"id":"r{start + i}","score":{s[i]:.6f}}}\n' for i in range(m))
            else:
                p = rng.dirichlet(np.full(10, 0.3), size=m).round(5)
                p[:, 0] += 1.0 - p.sum(axis=1)
                fh.writelines(
                    f'{{"id":"r{start + i}","proba":[{",".join(f"{v:.5f}" for v in p[i])}]}}\n'
                    for i in range(m)
                )


def cost(sizes: list[int]) -> list[dict]:
    rows = []
    tmp = Path(tempfile.mkdtemp())
    base = 1_000_000
    for kind, args in (
        ("score", ["-s", "quantile", "--score-col", "score"]),
        ("proba", ["-s", "rand-var-uncertainty", "--proba-col", "proba"]),
    ):
        path = tmp / f"{kind}.jsonl"
        make_lines(path, min(base, max(sizes)), kind)
        lines_in_file = min(base, max(sizes))
        for n in sizes:
            copies = max(1, n // lines_in_file)
            head = (
                f"head -n {n} {path}"
                if n < lines_in_file
                else f"for i in $(seq {copies}); do cat {path}; done"
            )
            sk = " ".join(selectkit_exe())
            cmd = ["bash", "-c", f"{head} | {sk} -q stream {' '.join(args)} -b 10% > /dev/null"]
            res = run_child(cmd, timeout=900)
            n_real = min(n, copies * lines_in_file) if n >= lines_in_file else n
            rows.append(
                {
                    "kind": kind,
                    "lines": n_real,
                    "wall_s": res["wall_s"],
                    "lines_per_s": n_real / res["wall_s"],
                    "peak_rss_mib": res["peak_rss_mib"],
                    "rc": res["rc"],
                }
            )
            r = rows[-1]
            print(
                f"  {kind:5s} {n_real:>10,} lines: {r['wall_s']:.1f}s, "
                f"{r['lines_per_s']:,.0f} lines/s, peak {r['peak_rss_mib']:.0f} MiB, rc {r['rc']}",
                flush=True,
            )
    return rows


def rt_cost_stream(path: Path) -> None:
    """Rotten Tomatoes rows 500.. as JSON lines: id, tokens (the cost), proba, util."""
    from _common import REPO
    from sklearn.linear_model import LogisticRegression

    import selectkit as sk

    rows = [json.loads(line) for line in (REPO / "data_samples/rotten_tomatoes.jsonl").open()]
    x = sk.embed_texts([r["text"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    proba = LogisticRegression(max_iter=1000).fit(x[:500], labels[:500]).predict_proba(x[500:])
    with open(path, "w") as fh:
        for r, p in zip(rows[500:], proba, strict=True):
            p = p / p.sum()
            fh.write(
                json.dumps(
                    {
                        "id": r["id"],
                        "tokens": len(r["text"].split()),
                        "proba": [round(float(v), 6) for v in p],
                        "util": round(float(1 - p.max()), 6),
                    }
                )
                + "\n"
            )


def cost_budget(seeds: list[int]) -> list[dict]:
    import polars as pl

    tmp = Path(tempfile.mkdtemp())
    path = tmp / "rt.jsonl"
    rt_cost_stream(path)
    rows = []
    mean_cost = float(pl.read_ndjson(path)["tokens"].mean())
    for budget in ["5%", "10%", "30%", f"cost:{0.1 * mean_cost:.2f}"]:
        for strategy in STRATEGIES[:-1]:
            ratios, shares, lines, secs = [], [], [], []
            for seed in seeds:
                kw = {"score_col": "util"} if strategy == "quantile" else {"proba_col": "proba"}
                log = tmp / "log.parquet"
                t0 = time.perf_counter()
                summary = stream_select(
                    [str(path)],
                    io.BytesIO(),
                    strategy=strategy,
                    budget=budget,
                    cost_col="tokens",
                    seed=seed,
                    log=str(log),
                    **kw,
                )
                secs.append(time.perf_counter() - t0)
                frame = pl.read_parquet(log)
                c, k = frame["cost"].to_numpy(), frame["keep"].to_numpy()
                full = c.size // 500 * 500
                kept = (c[:full] * k[:full]).reshape(-1, 500).sum(axis=1)
                if budget.startswith("cost:"):
                    target = np.full(kept.size, float(budget[5:]) * 500)
                else:
                    target = float(budget[:-1]) / 100 * c[:full].reshape(-1, 500).sum(axis=1)
                ratios += (kept / target).tolist()
                shares.append(summary["kept_cost_fraction"])
                lines.append(summary["kept_fraction"])
            r = np.array(ratios)
            rows.append(
                {
                    "budget": budget,
                    "strategy": strategy,
                    "kept_cost_share": float(np.mean(shares)),
                    "kept_line_share": float(np.mean(lines)),
                    "window_ratio_min": float(r.min()),
                    "window_ratio_max": float(r.max()),
                    "windows_within_20pct": float((np.abs(r - 1) <= 0.2).mean()),
                    "stream_s_median": float(np.median(secs)),
                }
            )
            row = rows[-1]
            print(
                f"  {budget:10s} {strategy:22s} kept cost {row['kept_cost_share']:.3f} "
                f"(lines {row['kept_line_share']:.3f}) window kept/target "
                f"[{row['window_ratio_min']:.2f}, {row['window_ratio_max']:.2f}] "
                f"within ±20% {100 * row['windows_within_20pct']:.0f}%",
                flush=True,
            )
    return rows


def cost_throughput(sizes: list[int]) -> list[dict]:
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "proba.jsonl"
    rng = np.random.default_rng(0)
    n_max = max(sizes)
    with open(path, "w") as fh:
        for start in range(0, n_max, 100_000):
            m = min(100_000, n_max - start)
            p = rng.dirichlet(np.full(10, 0.3), size=m).round(5)
            p[:, 0] += 1.0 - p.sum(axis=1)
            tok = rng.integers(3, 300, size=m)
            fh.writelines(
                f'{{"id":"r{start + i}","tokens":{tok[i]},'
                f'"proba":[{",".join(f"{v:.5f}" for v in p[i])}]}}\n'
                for i in range(m)
            )
    rows = []
    sk = " ".join(selectkit_exe())
    for n in sizes:
        for extra in ("", "--cost-col tokens"):
            cmd = [
                "bash",
                "-c",
                f"head -n {n} {path} | {sk} -q stream --proba-col proba -b 10% {extra} > /dev/null",
            ]
            # the best of 3 (shared cores: one run can be twice as slow as the next)
            res = min((run_child(cmd, timeout=900) for _ in range(3)), key=lambda r: r["wall_s"])
            rows.append(
                {
                    "lines": n,
                    "cost_col": bool(extra),
                    "wall_s": res["wall_s"],
                    "lines_per_s": n / res["wall_s"],
                    "peak_rss_mib": res["peak_rss_mib"],
                    "rc": res["rc"],
                }
            )
            r = rows[-1]
            print(
                f"  {n:>9,} lines {'--cost-col' if extra else 'no cost   '}: {r['wall_s']:.1f}s "
                f"{r['lines_per_s']:,.0f} lines/s peak {r['peak_rss_mib']:.0f} MiB rc {r['rc']}",
                flush=True,
            )
    return rows


def policy_throughput(n: int = 200_000) -> list[dict]:
    """The decision loop alone, in process (no parsing): lines per second with and without
    costs, best of 3, on synthetic probabilities and costs."""
    import polars as pl

    from selectkit.stream.policies import STREAM_PARAMS, Policy
    from selectkit.stream.run import policy_batch, stream_salts

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(10, 0.3), size=n)
    conf = p.max(axis=1)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    keys = pl.Series([f"r{i}" for i in range(n)])
    costs = rng.integers(3, 300, n).astype(np.float64)
    params = {k: v.default for k, v in STREAM_PARAMS.items()}
    rows = []
    for strategy in ("rand-var-uncertainty", "quantile"):
        for cost in (None, costs):
            best = float("inf")
            for _ in range(3):
                batch = policy_batch(
                    conf, top2[:, 0] - top2[:, 1], 1 - conf, keys, stream_salts(0, strategy),
                    None, cost,
                )  # fmt: skip
                policy = Policy(strategy, 0.1, params, None)
                policy.classes = 10
                t0 = time.perf_counter()
                policy.decide(batch)
                best = min(best, time.perf_counter() - t0)
            rows.append(
                {"strategy": strategy, "cost_col": cost is not None, "lines_per_s": n / best}
            )
            print(
                f"  decide() {strategy:22s} {'costs' if cost is not None else 'counts'}: "
                f"{n / best:,.0f} lines/s",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--only-cost-budget", action="store_true")
    args = ap.parse_args()
    if args.only_cost_budget:
        args.skip_quality = args.skip_cost = True
    rep = env_report()
    print_env(rep)
    seeds = [0, 1, 2] if args.quick else [0, 1, 2, 3, 4]
    budgets = [0.05, 0.1, 0.3]
    out: dict = {"env": rep}
    if not args.skip_quality:
        print("digits replayed as a stream (prequential accuracy, mean ± sd over seeds):")
        out["quality"] = quality(seeds, budgets, drift=False)
        print("the same with an abrupt drift halfway (labels permuted):")
        out["drift"] = quality(seeds, [0.1], drift=True)
    if not args.skip_cost:
        sizes = [100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 10_000_000]
        print("throughput and peak memory through the CLI in a pipe (synthetic lines):")
        out["cost"] = cost(sizes)
    print("cost budgets (--cost-col tokens) on Rotten Tomatoes, windows of 500 lines:")
    out["cost_budget"] = cost_budget(seeds)
    print("throughput with and without --cost-col (synthetic probability lines):")
    out["cost_throughput"] = cost_throughput([100_000, 1_000_000])
    out["policy_throughput"] = policy_throughput()
    path = write_json("bench_stream" + ("_cost" if args.only_cost_budget else ""), out)
    print(f"wrote {path}")
    if "quality" in out:
        print(
            table(
                ["budget", "strategy", "who", "acc", "kept", "windows"],
                [
                    [
                        r["budget"],
                        r["strategy"],
                        r["who"],
                        f"{r['acc_mean']:.3f}±{r['acc_sd']:.3f}",
                        fmt(r["kept_mean"], 3),
                        f"[{r['window_min']:.3f}, {r['window_max']:.3f}]",
                    ]
                    for r in out["quality"]
                ],
            )
        )


if __name__ == "__main__":
    main()
