"""Stream-based active learning, replayed (``selectkit al simulate --stream``).

A labelled table is replayed as a stream. Each arriving row is first predicted by the current
model (prequential, test-then-train: the prediction counts before the row's label could be
used), then a stream policy of :mod:`selectkit.stream.policies` decides to keep it (ask for its
label) or not, and the model learns from the kept rows only. Per repeat r (all randomness from
the master seed and the row ids, never a row's position):

1. optionally a held-out test split (``test_size``, stratified by class, as the pool-based
   simulation's ``split``), the rest is the stream;
2. the replay order: ``order="id"`` sorts the stream by a seeded hash of the ids (a new random
   order per repeat; the same rows in any input order give the same run); ``order="file"``
   keeps the input order (a real time-ordered stream; repeats then differ only in their seeds);
3. per strategy and budget: a fresh policy (the same rules, budget estimate and id-keyed draws
   as ``selectkit stream``: :func:`selectkit.stream.run.stream_salts` under the repeat's seed)
   and a fresh model. The stream goes by in chunks of ``update_every`` rows: the chunk is
   predicted, its rows are decided in order, the model is updated on the chunk's kept rows.

Models: any name of :data:`selectkit.al.models.MODELS` (default ``logreg``) or a scikit-learn
classifier is refit from scratch on all rows kept so far after every chunk that kept a row
(O(kept so far) per update); ``"sgd"`` is ``SGDClassifier(loss="log_loss")`` updated with
``partial_fit`` on each chunk's kept rows only (O(kept rows of the chunk) per update, the
survey's incremental learner; on digits it learns far less from the same rows, see
docs/active-learning.md).

Drift (``drift_at=f``): from row f·n of the stream on, every class c is relabelled
(c + k) mod C with a seeded k in 1..C-1 (test labels too, for the test accuracy after it): an
abrupt drift the model only learns about through the rows it keeps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit.al.curves import paired_gain, sd
from selectkit.al.models import MODEL_PARAMS, FittedModel, check_model, model_label, model_param
from selectkit.al.simulate import Simulation, check_outputs, labelled_pool, split
from selectkit.console import progress_bar
from selectkit.errors import SelectkitError, SelectkitUsageError, option
from selectkit.io import Provenance, output_group, write_table
from selectkit.params import Param, check_arguments, check_params
from selectkit.pool import Columns, Pool
from selectkit.rng import DEFAULT_SEED, derive_rng, derive_salt, id_hashes
from selectkit.stream.policies import STREAM_PARAMS, STREAM_STRATEGIES, Policy
from selectkit.stream.run import parse_fraction, policy_batch, stream_salts

#: the stream strategies the replay runs: those that read probabilities (and random)
REPLAY_STRATEGIES = tuple(STREAM_STRATEGIES)
DEFAULT_STREAM_STRATEGIES = ("random", "var-uncertainty", "rand-var-uncertainty")
ORDERS = ("id", "file")

STREAM_REPLAY_BOUNDS = {
    "repeats": Param(int, 5, "repeats (new order, test split and seeds)", low=1),
    "seed": Param(int, DEFAULT_SEED, "master seed (recorded)", low=0),
    "update_every": Param(int, 50, "rows between model updates (and curve points)", low=1),
    "window_rows": Param(int, 500, "rows per window of the kept-fraction check", low=1),
}
#: SGD's L2 penalty, the "sgd" model's main parameter (--model-param alpha=...)
SGD_ALPHA = Param(float, 1e-4, "L2 penalty", low=0)


def _seed(seed: int, *keys: str | int) -> int:
    return int(derive_rng(seed, "al", "stream", *keys).integers(0, 2**31 - 1))


def parse_budgets(budgets: str | float | Sequence[str | float]) -> list[float]:
    """Budgets from '5%,10%,30%', 0.1 or a list of fractions / percentages; each in (0, 1]."""
    items = budgets.split(",") if isinstance(budgets, str) else budgets
    if isinstance(items, (int, float)):
        items = [items]
    out = [parse_fraction(b) for b in items if str(b).strip()]
    if not out:
        raise SelectkitUsageError("--budget: give at least one budget, e.g. 5%,10%,30%")
    if len(set(out)) != len(out):
        raise SelectkitUsageError("--budget: each budget may be given once")
    return out


class _Learner:
    """The replay's model: incremental SGD, or a named model refit on the rows kept so far."""

    def __init__(self, model: str | Any, n_classes: int, seed: int, param: Any) -> None:
        self.model, self.n_classes, self.seed, self.param = model, n_classes, seed, param
        self.sgd = None
        self.fitted: FittedModel | None = None
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        if model == "sgd":
            from sklearn.linear_model import SGDClassifier

            self.sgd = SGDClassifier(loss="log_loss", alpha=param, random_state=seed)
        self.fitted_once = False

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(len(x), C) probabilities over all classes (1/C each before any update)."""
        if not self.fitted_once:
            return np.full((x.shape[0], self.n_classes), 1.0 / self.n_classes)
        if self.sgd is not None:
            out = np.zeros((x.shape[0], self.n_classes))
            out[:, self.sgd.classes_] = self.sgd.predict_proba(x)
            return out
        assert self.fitted is not None
        return self.fitted.proba(x).astype(np.float64)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        if not len(y):
            return
        if self.sgd is not None:
            self.sgd.partial_fit(x, y, classes=np.arange(self.n_classes))
        else:
            self.xs.append(x)
            self.ys.append(y)
            self.fitted = FittedModel(
                self.model,
                np.concatenate(self.xs),
                np.concatenate(self.ys),
                self.n_classes,
                self.seed,
                self.param,
            )
        self.fitted_once = True


def _check_strategies(strategies: Sequence[str]) -> list[str]:
    names = [s.strip() for s in strategies if s.strip()]
    if not names:
        raise SelectkitUsageError("give at least one stream strategy")
    for name in names:
        if name not in STREAM_STRATEGIES:
            raise SelectkitUsageError(
                f"{name!r} is not a stream strategy; with --stream choose among "
                f"{', '.join(STREAM_STRATEGIES)}"
            )
    if len(set(names)) != len(names):
        raise SelectkitUsageError("each strategy may be given once")
    return names


def _check_model(model: str | Any, model_params: dict[str, Any] | None) -> Any:
    if model != "sgd":
        return model_param(model, model_params)
    params = dict(model_params or {})
    unknown = sorted(set(params) - {"alpha"})
    if unknown:
        raise SelectkitUsageError(
            f"model 'sgd' takes the parameter alpha (L2 penalty), not {unknown[0]!r}"
        )
    raw = params.get("alpha", SGD_ALPHA.default)
    return SGD_ALPHA.parse("alpha", raw, what="model parameter")


def _check_drift(drift_at: float | None) -> None:
    if drift_at is None:
        return
    ok = isinstance(drift_at, (int, float)) and not isinstance(drift_at, bool)
    if not ok or not 0.0 < float(drift_at) < 1.0:
        raise SelectkitUsageError(
            f"{option('drift_at', drift_at)} must lie in (0, 1): the share of the stream "
            "before the drift, e.g. 0.5"
        )


def simulate_stream(
    x: np.ndarray,
    y: Sequence | np.ndarray,
    *,
    strategies: Sequence[str] = DEFAULT_STREAM_STRATEGIES,
    budgets: str | float | Sequence[str | float] = 0.1,
    model: str | Any = "logreg",
    repeats: int = 5,
    seed: int = DEFAULT_SEED,
    ids: Sequence | np.ndarray | None = None,
    order: str = "id",
    test_size: float | None = 0.25,
    drift_at: float | None = None,
    update_every: int = 50,
    window_rows: int = 500,
    strategy_params: dict[str, dict[str, Any]] | None = None,
    model_params: dict[str, Any] | None = None,
) -> Simulation:
    """Replay vectors ``x`` (n, d) with labels ``y`` as a stream (module doc) and return a
    :class:`~selectkit.al.simulate.Simulation`: ``curves``, one row per (strategy, budget,
    repeat, chunk of ``update_every`` rows) with rows_seen, kept, kept_fraction,
    prequential_accuracy (over every row seen so far), chunk_accuracy, test_accuracy (after
    the chunk's update; null without a test split), fit_s and select_s; ``summary``, one row
    per (strategy, budget): the final prequential and test accuracy mean ± sd over repeats,
    their paired gain over random at the same budget, the kept fraction, and the kept fraction
    of every window of ``window_rows`` stream rows (min, max and the share within ±20 % of the
    budget), and with ``drift_at`` the prequential accuracy after the drift.

    ``strategies``: names of ``STREAM_STRATEGIES``; ``budgets``: '5%,10%,30%' or fractions;
    ``strategy_params``: per strategy, ``STREAM_PARAMS`` values (``{"split": {"split_ratio":
    0.3}}``). ``model``: a name of ``MODELS`` or a classifier (refit on the kept rows after
    each chunk), or ``"sgd"`` (incremental, ``model_params={"alpha": ...}``). Time: repeats x
    strategies x budgets x (n predictions + n decisions + the updates); memory O(n d).
    """
    check_arguments(
        STREAM_REPLAY_BOUNDS,
        repeats=repeats,
        seed=seed,
        update_every=update_every,
        window_rows=window_rows,
    )
    names = _check_strategies(strategies)
    fracs = parse_budgets(budgets)
    if order not in ORDERS:
        raise SelectkitUsageError(f"{option('order', order)} must be id or file")
    _check_drift(drift_at)
    if test_size is not None and not (
        isinstance(test_size, (int, float)) and 0.0 < float(test_size) < 1.0
    ):
        raise SelectkitUsageError(f"{option('test_size', test_size)} must lie in (0, 1) or None")
    if model != "sgd":
        check_model(model)
    param = _check_model(model, model_params)
    sparams = {}
    for name in names:
        given = (strategy_params or {}).get(name, {})
        sparams[name] = check_params(given, STREAM_PARAMS, owner=f"stream strategy '{name}'")
    x = np.ascontiguousarray(x, dtype=np.float32)
    labels = np.asarray(y)
    classes, y_enc = np.unique(labels, return_inverse=True)
    n, n_classes = x.shape[0], len(classes)
    if y_enc.size != n:
        raise SelectkitError(f"{n} vectors but {y_enc.size} labels")
    if ids is not None and len(ids) != n:
        raise SelectkitError(f"{n} vectors but {len(ids)} ids")
    if n_classes < 2:
        raise SelectkitError(
            f"a stream replay needs at least two classes; the labels hold {n_classes} "
            f"({', '.join(map(str, classes[:1]))}): give a labelled table with several classes"
        )
    id_series = Pool.from_arrays(ids=np.arange(n) if ids is None else ids).ids
    keys = id_series.cast(pl.String)
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    total = repeats * len(names) * len(fracs)
    with progress_bar("simulate --stream", total) as bar, threadpool_limits(limits=1):
        for r in range(repeats):
            if test_size is not None:
                stream_rows, test_rows = split(
                    y_enc, id_series, float(test_size), derive_salt(seed, "al", "stream-split", r)
                )
            else:
                stream_rows, test_rows = np.arange(n), np.arange(0)
            if order == "id":
                h = id_hashes(id_series.gather(stream_rows), derive_salt(seed, "al", "order", r))
                stream_rows = stream_rows[np.argsort(h, kind="stable")]
            y_stream = y_enc[stream_rows].copy()
            y_test = y_enc[test_rows].copy()
            drift_row = None
            shift = 0
            if drift_at is not None:
                drift_row = round(float(drift_at) * stream_rows.size)
                shift = int(derive_rng(seed, "al", "drift", r).integers(1, n_classes))
                y_stream[drift_row:] = (y_stream[drift_row:] + shift) % n_classes
            run_seed = _seed(seed, "repeat", r)
            x_stream, x_test, k_stream = x[stream_rows], x[test_rows], keys.gather(stream_rows)
            for name in names:
                for b in fracs:
                    out, run = _replay(
                        name,
                        b,
                        sparams[name],
                        x_stream,
                        y_stream,
                        k_stream,
                        x_test,
                        y_test,
                        drift_row,
                        shift,
                        n_classes,
                        model,
                        param,
                        run_seed,
                        update_every,
                        window_rows,
                    )
                    for row in out:
                        row.update(strategy=name, budget=b, repeat=r, seed=run_seed)
                    run.update(strategy=name, budget=b, repeat=r)
                    rows += out
                    runs.append(run)
                    bar.advance()
    first = ["strategy", "budget", "repeat", "seed"]
    curves = pl.DataFrame(rows).select(*first, pl.exclude(first))
    info = {
        "classes": [str(c) for c in classes],
        "rows": n,
        "stream_rows": int(stream_rows.size),
        "test_rows": int(test_rows.size),
        "runs": runs,
    }
    return Simulation(curves=curves, summary=summarise_stream(pl.DataFrame(runs)), info=info)


def _replay(
    name: str,
    budget: float,
    params: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    keys: pl.Series,
    x_test: np.ndarray,
    y_test: np.ndarray,
    drift_row: int | None,
    shift: int,
    n_classes: int,
    model: str | Any,
    param: Any,
    seed: int,
    update_every: int,
    window_rows: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    policy = Policy(name, budget, params, None)
    policy.classes = n_classes
    salts = stream_salts(seed, name)
    learner = _Learner(model, n_classes, _seed(seed, "fit", name, repr(budget)), param)
    n = y.size
    keep_all = np.zeros(n, dtype=bool)
    correct = np.zeros(n, dtype=bool)
    out = []
    fit_s = select_s = 0.0
    for start in range(0, n, update_every):
        stop = min(start + update_every, n)
        xs, ys = x[start:stop], y[start:stop]
        t0 = time.perf_counter()
        proba = learner.proba(xs)
        correct[start:stop] = proba.argmax(axis=1) == ys  # predicted before any label is used
        t1 = time.perf_counter()
        top2 = -np.partition(-proba, 1, axis=1)[:, :2]
        conf = top2[:, 0]
        batch = policy_batch(
            conf,
            top2[:, 0] - top2[:, 1],
            1.0 - conf,
            keys.slice(start, stop - start),
            salts,
            xs if name == "density" else None,
        )
        keep, _ = policy.decide(batch)
        keep_all[start:stop] = keep
        t2 = time.perf_counter()
        learner.update(xs[keep], ys[keep])
        test_acc = None
        if y_test.size:
            yt = y_test
            if drift_row is not None and stop > drift_row:
                yt = (y_test + shift) % n_classes
            test_acc = float((learner.proba(x_test).argmax(axis=1) == yt).mean())
        t3 = time.perf_counter()
        fit_s += (t1 - t0) + (t3 - t2)
        select_s += t2 - t1
        out.append(
            {
                "rows_seen": stop,
                "kept": int(keep_all[:stop].sum()),
                "kept_fraction": float(keep_all[:stop].mean()),
                "prequential_accuracy": float(correct[:stop].mean()),
                "chunk_accuracy": float(correct[start:stop].mean()),
                "test_accuracy": test_acc,
                "fit_s": (t1 - t0) + (t3 - t2),
                "select_s": t2 - t1,
            }
        )
    full = n // window_rows * window_rows
    windows = keep_all[:full].reshape(-1, window_rows).mean(axis=1) if full else np.empty(0)
    run = {
        "rows": n,
        "kept": int(keep_all.sum()),
        "kept_fraction": float(keep_all.mean()) if n else 0.0,
        "prequential_accuracy": float(correct.mean()) if n else 0.0,
        "test_accuracy": out[-1]["test_accuracy"] if out else None,
        "after_drift_accuracy": (
            float(correct[drift_row:].mean()) if drift_row is not None and drift_row < n else None
        ),
        "window_kept_min": float(windows.min()) if windows.size else None,
        "window_kept_max": float(windows.max()) if windows.size else None,
        "windows_within_20pct": (
            float((np.abs(windows - budget) <= 0.2 * budget).mean()) if windows.size else None
        ),
        "fit_s": fit_s,
        "select_s": select_s,
    }
    return out, run


def summarise_stream(runs: pl.DataFrame, baseline: str = "random") -> pl.DataFrame:
    """Per (strategy, budget): repeats, mean and sd (ddof=1; 0 for one repeat) of the final
    prequential and test accuracy (and after the drift, when there was one), the paired gain
    of prequential accuracy over ``baseline`` at the same budget, the mean kept fraction, and
    over every run's windows the min and max kept fraction and the mean share of windows within
    ±20 % of the budget. Sorted by budget, then best prequential accuracy first."""
    aggs = [
        pl.len().alias("repeats"),
        pl.col("prequential_accuracy").mean().alias("prequential_accuracy_mean"),
        sd("prequential_accuracy").alias("prequential_accuracy_std"),
        pl.col("test_accuracy").mean().alias("test_accuracy_mean"),
        sd("test_accuracy").alias("test_accuracy_std"),
        pl.col("kept_fraction").mean().alias("kept_fraction_mean"),
        pl.col("window_kept_min").min(),
        pl.col("window_kept_max").max(),
        pl.col("windows_within_20pct").mean(),
        pl.col("select_s").mean().alias("select_s_per_repeat"),
        pl.col("fit_s").mean().alias("fit_s_per_repeat"),
    ]
    if runs["after_drift_accuracy"].null_count() < runs.height:
        aggs += [
            pl.col("after_drift_accuracy").mean().alias("after_drift_accuracy_mean"),
            sd("after_drift_accuracy").alias("after_drift_accuracy_std"),
        ]
    out = runs.group_by(["strategy", "budget"]).agg(aggs)
    if baseline in runs["strategy"].to_list():
        gain = paired_gain(runs, "prequential_accuracy", f"gain_vs_{baseline}", baseline,
                           pair=("budget", "repeat"), group=("strategy", "budget"))  # fmt: skip
        out = out.join(gain, on=["strategy", "budget"], how="left")
    return out.sort(
        ["budget", "prequential_accuracy_mean", "strategy"], descending=[False, True, False]
    )


def plot_stream_curves(curves: pl.DataFrame, output: str | Path, *, title: str = "") -> None:
    """Write a PNG of prequential accuracy against rows seen: one panel per budget, one line
    (mean) and band (± sd over repeats) per strategy. Atomic like every selectkit output."""
    from selectkit.al.plot import require_matplotlib
    from selectkit.io.write import atomic_path

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted(set(curves["budget"].to_list()))
    fig, axes = plt.subplots(
        1, len(budgets), figsize=(4.2 * len(budgets), 3.8), dpi=110, squeeze=False
    )
    for ax, b in zip(axes[0], budgets, strict=True):
        stats = (
            curves.filter(pl.col("budget") == b)
            .group_by(["strategy", "rows_seen"])
            .agg(
                pl.col("prequential_accuracy").mean().alias("mean"),
                pl.col("prequential_accuracy").std(ddof=0).fill_null(0.0).alias("std"),
            )
            .sort(["strategy", "rows_seen"])
        )
        for (name,), part in stats.group_by(["strategy"], maintain_order=True):
            n = part["rows_seen"].to_numpy()
            mean, std = part["mean"].to_numpy(), part["std"].to_numpy()
            (line,) = ax.plot(n, mean, label=str(name), linewidth=1.5)
            ax.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.15)
        ax.set_title(f"budget {100 * b:g}%")
        ax.set_xlabel("rows seen")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("prequential accuracy (mean ± sd)")
    axes[0][-1].legend(loc="lower right", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def simulate_stream_file(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    strategies: Sequence[str] = DEFAULT_STREAM_STRATEGIES,
    budgets: str | float | Sequence[str | float] = 0.1,
    model: str | Any = "logreg",
    repeats: int = 5,
    seed: int = DEFAULT_SEED,
    order: str = "id",
    test_size: float | None = 0.25,
    drift_at: float | None = None,
    update_every: int = 50,
    window_rows: int = 500,
    strategy_params: dict[str, dict[str, Any]] | None = None,
    model_params: dict[str, Any] | None = None,
    columns: Columns | None = None,
    input_format: str | None = None,
    plot: str | Path | None = None,
    summary_out: str | Path | None = None,
) -> tuple[Provenance, pl.DataFrame]:
    """Read labelled tables (an embedding and a label per row, joined on the id column like
    ``al simulate``), replay them as a stream (:func:`simulate_stream`), write the curves
    (Parquet, JSONL or CSV by extension) with provenance, and optionally the summary table and
    a PNG plot. Returns (provenance, summary). Usage problems are refused before any work."""
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    check_arguments(
        STREAM_REPLAY_BOUNDS,
        repeats=repeats,
        seed=seed,
        update_every=update_every,
        window_rows=window_rows,
    )
    _check_strategies(strategies)
    parse_budgets(budgets)
    if order not in ORDERS:
        raise SelectkitUsageError(f"{option('order', order)} must be id or file")
    _check_drift(drift_at)
    if model != "sgd":
        check_model(model)
    param = _check_model(model, model_params)
    check_outputs(output, summary_out, plot, paths, curves_hold_lists=False)
    prov = Provenance(command="al simulate", seed=seed)
    prov.start("read")
    pool, label_series = labelled_pool(
        paths, columns, input_format, "al simulate --stream", "a replay"
    )
    x = pool.embeddings
    prov.stop("read")
    prov.start("simulate")
    sim = simulate_stream(
        x,
        label_series.to_numpy(),
        strategies=strategies,
        budgets=budgets,
        model=model,
        repeats=repeats,
        seed=seed,
        ids=pool.ids,
        order=order,
        test_size=test_size,
        drift_at=drift_at,
        update_every=update_every,
        window_rows=window_rows,
        strategy_params=strategy_params,
        model_params=model_params,
    )
    prov.stop("simulate")
    label = model_label(model)
    pname = "alpha" if model == "sgd" else (MODEL_PARAMS[model].name if param is not None else "")
    prov.params = {
        "stream": True,
        "strategies": list(strategies),
        "budgets": parse_budgets(budgets),
        "model": label,
        "model_params": {pname: param} if param is not None else {},
        "repeats": repeats,
        "order": order,
        "test_size": test_size,
        "drift_at": drift_at,
        "update_every": update_every,
        "window_rows": window_rows,
        "strategy_params": strategy_params or {},
        "accuracy": "prequential (test-then-train) over every stream row seen",
    }
    prov.inputs = [s.as_dict() for s in pool.sources]
    prov.metrics = {k: v for k, v in sim.info.items() if k != "runs"} | {
        "summary": sim.summary.to_dicts()
    }
    with output_group():
        write_table(sim.curves, output, provenance=prov)
        if summary_out:
            write_table(sim.summary, summary_out, provenance=prov)
        if plot:
            plot_stream_curves(sim.curves, plot, title=f"{Path(str(paths[0])).name}: {label}")
    return prov, sim.summary
