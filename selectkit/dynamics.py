"""Training-dynamics difficulty scores (AUM, forgetting events, EL2N) from a scikit-learn model.

A linear softmax model (``sgd``) or a small MLP (``mlp``) is trained epoch by epoch on labelled
vectors with ``partial_fit``; after every epoch it predicts every training row, and the scores
accumulate from those predictions (the CCS code's definitions):

- ``aum``: sum over epochs of p(y) - max over c != y of p(c); low = hard or mislabelled.
- ``forgetting``: correct -> incorrect transitions between epochs; rows never predicted right
  get ``epochs`` (more than any row can be forgotten) so they rank hardest, as in Toneva et al.
- ``el2n``: sum over the first 10 epochs of ||p - onehot(y)||_2; high = hard.
- ``loss``: the final model's cross-entropy, -log p(y).

These let ``ccs`` (and ``sensitivity``, through ``loss``) run without a deep-learning stack.

With ``gradients=True`` the same trained model gives per-row *gradient features* instead
(``gradient_features``): the gradient of the row's cross-entropy with respect to the model's last
layer, g_i = (p_i - onehot(y_i)) (x) [z_i, 1] (z_i = the row's vector for ``sgd``, its hidden
activations for ``mlp``; p_i the model's predicted probabilities), randomly projected to
``grad_dim`` dimensions, for ``select --strategy omp`` (TAGCOS-style gradient matching).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selectkit import arguments
from selectkit.console import progress_bar
from selectkit.errors import SelectkitDataError
from selectkit.io import Provenance, check_output_path, write_table
from selectkit.params import Param, check_arguments
from selectkit.pool import Columns, Pool, load_pool
from selectkit.rng import DEFAULT_SEED, derive_rng

MODELS = ("sgd", "mlp")
#: the one declaration of `selectkit scores`' bounds; its CLI options' min/max match it
BOUNDS = {
    "epochs": Param(int, 10, "training epochs", low=1),
    "seed": Param(int, DEFAULT_SEED, "seeds the model and the epochs' order (recorded)", low=0),
    "grad_dim": Param(
        int, None, "dimensions of the projected gradient features (None: 512)", low=1, high=1 << 16
    ),
}
EL2N_EPOCHS = 10
GRAD_DIM = 512  # --grad-dim's default
CHUNK_ROWS = 8192


def _model(name: str, seed: int):
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier

    if name == "sgd":
        return SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed)
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(128,), random_state=seed, learning_rate_init=1e-3)
    raise AssertionError(name)  # unreachable: check_args refused it


def training_dynamics(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    model: str = "sgd",
    rng: np.random.Generator,
    keep_model: bool = False,
) -> dict[str, Any]:
    """Per-row ``aum``, ``forgetting``, ``el2n`` and ``loss`` of labels ``y`` (any hashable
    values) on vectors ``x``; with ``keep_model`` also the trained estimator (``model``) and the
    rows' class codes 0..C-1 in sorted label order (``target``). Cost: ``epochs`` passes of
    training plus prediction, O(epochs n C d) time for ``sgd``; memory O(n C) per prediction
    chunk, O(n) for the scores."""
    check_args(epochs=epochs, model=model)
    classes, target = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise SelectkitDataError(
            f"training dynamics need at least two distinct labels; all {y.size} labelled rows "
            f"have label {classes[0]!r}"
        )
    n = x.shape[0]
    clf = _model(model, int(rng.integers(2**31 - 1)))
    all_classes = np.arange(classes.size)
    aum = np.zeros(n)
    el2n = np.zeros(n)
    forgetting = np.zeros(n, dtype=np.int64)
    prev_correct = np.zeros(n, dtype=bool)
    ever_correct = np.zeros(n, dtype=bool)
    loss = np.zeros(n)
    rows = np.arange(n)
    with progress_bar("training epochs", epochs) as bar:
        for epoch in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, CHUNK_ROWS):
                part = np.sort(order[start : start + CHUNK_ROWS])
                clf.partial_fit(np.asarray(x[part]), target[part], classes=all_classes)
            for start in range(0, n, CHUNK_ROWS):
                sl = slice(start, min(n, start + CHUNK_ROWS))
                p = clf.predict_proba(np.asarray(x[sl])).astype(np.float64)
                t = target[sl]
                own = p[rows[: t.size], t]
                other = p.copy()
                other[rows[: t.size], t] = -np.inf
                aum[sl] += own - other.max(axis=1)
                correct = p.argmax(axis=1) == t
                forgetting[sl] += prev_correct[sl] & ~correct
                prev_correct[sl] = correct
                ever_correct[sl] |= correct
                if epoch < EL2N_EPOCHS:
                    p[rows[: t.size], t] -= 1.0
                    el2n[sl] += np.sqrt(np.einsum("ij,ij->i", p, p))
                if epoch == epochs - 1:
                    loss[sl] = -np.log(np.clip(own, 1e-12, None))
            bar.advance()
    forgetting[~ever_correct] = epochs
    out: dict[str, Any] = {
        "aum": aum,
        "forgetting": forgetting,
        "el2n": el2n,
        "loss": loss,
        "final_correct": prev_correct,
    }
    if keep_model:
        out["model"], out["target"] = clf, target
    return out


GRAD_CHUNK_ROWS = 4096


def gradient_projection(seed: int, cls: int, rows: int, dim: int) -> np.ndarray:
    """The (rows, dim) float32 block of the Rademacher projection that multiplies class ``cls``'s
    part of the last-layer gradient: entries +-1/sqrt(dim), drawn from ``seed`` and ``cls``
    alone (so any order or sharding of the rows projects alike). E||g R||^2 = ||g||^2 (JL)."""
    rng = derive_rng(seed, "scores", "gradients", cls)
    signs = rng.integers(0, 2, size=(rows, dim), dtype=np.int8)
    return (signs.astype(np.float32) * 2.0 - 1.0) * np.float32(1.0 / np.sqrt(dim))


def last_layer_inputs(model: Any, x: np.ndarray) -> np.ndarray:
    """What the model's last layer reads for the rows ``x``: ``x`` itself for a linear model,
    the hidden activations of an sklearn ``MLPClassifier`` (float32; O(rows h d))."""
    coefs = getattr(model, "coefs_", None)
    if coefs is None:
        return np.asarray(x, dtype=np.float32)
    from sklearn.neural_network._base import ACTIVATIONS

    h = np.asarray(x, dtype=np.float64)
    for w, b in zip(model.coefs_[:-1], model.intercepts_[:-1], strict=True):
        h = h @ w + b
        ACTIVATIONS[model.activation](h)
    return h.astype(np.float32)


def gradient_features(
    model: Any, x: np.ndarray, target: np.ndarray, *, dim: int = 512, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """(n, ``dim``) float32 projected last-layer gradients g_i R, g_i = (p_i - onehot(target_i))
    (x) [z_i, 1] (class-major), for a fitted sklearn classifier ``model`` (``predict_proba``;
    z_i from ``last_layer_inputs``) and class codes ``target`` in 0..C-1 (the model's class
    order). R = the class blocks of ``gradient_projection`` stacked; g R is computed as
    sum_c (p_ic - y_ic) ([z_i, 1] R_c) in chunks of rows, so the n x C(h+1) gradients are never
    formed. Cost O(n C h dim) time; memory O(n dim) for the result, O(n C + (h + 1) dim +
    chunk * dim) besides (and O(n h) for an MLP's hidden activations)."""
    check_arguments(BOUNDS, grad_dim=dim, seed=seed)
    n = x.shape[0]
    resid = np.empty((n, 0), dtype=np.float32)
    for start in range(0, n, GRAD_CHUNK_ROWS):
        sl = slice(start, min(n, start + GRAD_CHUNK_ROWS))
        p = model.predict_proba(np.asarray(x[sl])).astype(np.float32)
        if not resid.shape[1]:
            resid = np.empty((n, p.shape[1]), dtype=np.float32)
        p[np.arange(p.shape[0]), target[sl]] -= 1.0
        resid[sl] = p
    z = last_layer_inputs(model, x) if hasattr(model, "coefs_") else x
    z_dim = z.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    for c in range(resid.shape[1]):  # a loop over classes and chunks of rows, not rows
        proj = gradient_projection(seed, c, z_dim + 1, dim)
        for start in range(0, n, GRAD_CHUNK_ROWS):
            sl = slice(start, min(n, start + GRAD_CHUNK_ROWS))
            zc = np.asarray(z[sl], dtype=np.float32)
            out[sl] += resid[sl, c, None] * (zc @ proj[:z_dim] + proj[z_dim])
    return out


def check_args(
    *,
    epochs: int,
    model: str,
    seed: int = DEFAULT_SEED,
    gradients: bool = False,
    grad_dim: int | None = None,
) -> int:
    """Refuse an unknown model or an epoch count, seed or ``grad_dim`` outside ``BOUNDS`` (or
    ``grad_dim`` without ``gradients``), before any work; returns the gradient dimension."""
    from selectkit.errors import SelectkitUsageError, option

    arguments.text(model, "model", choices=MODELS, what="model")
    check_arguments(BOUNDS, epochs=epochs, seed=seed)
    if not isinstance(gradients, bool):
        raise SelectkitUsageError(f"gradients= must be True or False, not {gradients!r}")
    if grad_dim is not None and not gradients:
        raise SelectkitUsageError(
            f"{option('grad_dim')} sets the size of gradient features: add "
            + option("gradients", python="gradients=True")
        )
    dim = GRAD_DIM if grad_dim is None else grad_dim
    return check_arguments(BOUNDS, grad_dim=dim)["grad_dim"]


def scores_file(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    epochs: int = 10,
    model: str = "sgd",
    seed: int = DEFAULT_SEED,
    columns: Columns | None = None,
    input_format: str | None = None,
    engine: str | Any = "local",
    ray_address: str | None = None,
    gradients: bool = False,
    grad_dim: int | None = None,
) -> Provenance:
    """Write id, aum, forgetting, el2n and loss for every labelled row of ``inputs`` (needs an
    embedding and a label column; unlabelled rows are left out); with ``gradients``, id and
    ``gradient`` instead (``grad_dim`` floats per row, default 512: see
    ``gradient_features``). ``inputs`` is one path (a
    file, a quoted glob or a dataset folder) or a list. ``output`` is a table file, or a
    dataset folder (``DIR/``: one part per ``PART_ROWS`` rows of the result, in its row order,
    and a completion record). The model trains on the driver whatever the ``engine`` (it is
    recorded, as for every command). Returns the provenance. Cost: see
    ``training_dynamics``."""
    from selectkit.engine import engine_record
    from selectkit.io.dataset import is_folder_output
    from selectkit.select import opened_engine

    inputs = arguments.paths(inputs, "inputs")
    output = arguments.path(output, "output")
    check_args(epochs=epochs, model=model, seed=seed, gradients=gradients, grad_dim=grad_dim)
    folder = is_folder_output(output)
    check_output_path(output, inputs, folder=folder)
    cols = columns or Columns()
    with opened_engine(engine, ray_address) as eng:
        prov = Provenance(command="scores", seed=seed)
        prov.start("read")
        pool = load_pool(inputs, columns=cols, input_format=input_format)
        prov.stop("read")
        result = scores_for_pool(
            pool,
            epochs=epochs,
            model=model,
            seed=seed,
            prov=prov,
            gradients=gradients,
            grad_dim=grad_dim,
        )
        prov.engine = engine_record(eng)
        if folder:
            write_folder(result, output, prov)
        else:
            write_table(result, output, provenance=prov)
    return prov


#: rows per part of ``scores -o DIR/`` (the parts are fixed by the result's size alone)
PART_ROWS = 1 << 17


@dataclass(frozen=True)
class RowRange:
    """A part of a result held on the driver: rows ``[start, stop)``, named by its range."""

    index: int
    key: str
    start: int
    stop: int


def write_folder(result: pl.DataFrame, output: str | Path, prov: Provenance) -> None:
    """Write ``result`` as the dataset folder ``output``: part ``i`` holds rows
    ``[i * PART_ROWS, (i + 1) * PART_ROWS)``, each part carries ``prov``, then the completion
    record (``selectkit.io.dataset.DatasetWriter``). O(rows) writing; no copy of ``result``."""
    from selectkit.io.dataset import DatasetWriter, write_part

    starts = range(0, max(result.height, 1), PART_ROWS)
    stops = [min(start + PART_ROWS, result.height) for start in starts]
    ranges = [
        RowRange(i, f"rows:{start}-{stop}", start, stop)
        for i, (start, stop) in enumerate(zip(starts, stops, strict=True))
    ]
    identity = {"inputs": [s["fingerprint"] for s in prov.inputs], "params": prov.params}
    with DatasetWriter(output, command="scores", identity=identity) as writer:
        for part in writer.todo(ranges):
            rows = result.slice(part.start, part.stop - part.start)
            writer.done(write_part(writer.staging, part, [rows], prov))
        writer.commit(prov)


def scores_for_pool(
    pool: Pool,
    *,
    epochs: int = 10,
    model: str = "sgd",
    seed: int = DEFAULT_SEED,
    prov: Provenance | None = None,
    gradients: bool = False,
    grad_dim: int | None = None,
) -> pl.DataFrame:
    """The scores table of ``scores_file`` (id, aum, forgetting, el2n, loss per labelled row;
    with ``gradients``, id and ``gradient``) for an in-memory pool, e.g.
    ``Pool.from_arrays(x, labels=y)``. Cost: see ``training_dynamics`` (and
    ``gradient_features``)."""
    arguments.instance(pool, Pool, "pool", "Pool.from_arrays(x, labels=y)", optional=False)
    dim = check_args(epochs=epochs, model=model, seed=seed, gradients=gradients, grad_dim=grad_dim)
    pool.require(["embedding", "label"], "`selectkit scores`")
    rows = np.flatnonzero(pool.labelled_mask)
    if rows.size == 0:
        raise SelectkitDataError(
            f"column '{pool.columns.label}' of {pool.where} has no labels; training dynamics "
            "need labelled rows"
        )
    # the rows in id order: the epochs' seeded order, the model and so every score and gradient
    # are the same for the same rows in any input order (the output is in id order too)
    rows = rows[pool.ids.gather(rows).arg_sort().to_numpy()]
    x = pool.embeddings
    labels = pool.frame.get_column(pool.columns.label).gather(rows).to_numpy()
    if prov:
        prov.start("train")
    in_order = rows.size == len(pool) and bool(np.all(rows == np.arange(rows.size)))
    xs = x if in_order else np.asarray(x[rows])
    dyn = training_dynamics(
        xs,
        labels,
        epochs=epochs,
        model=model,
        rng=derive_rng(seed, "scores", model),
        keep_model=gradients,
    )
    if gradients:
        if prov:
            prov.stop("train")
            prov.start("gradients")
        feats = gradient_features(dyn["model"], xs, dyn["target"], dim=dim, seed=seed)
        if prov:
            prov.stop("gradients")
            prov.params = {
                "epochs": epochs,
                "model": model,
                "gradients": True,
                "grad_dim": dim,
                "projection": "rademacher +-1/sqrt(grad_dim), from the seed and the class",
                "columns": pool.columns.__dict__,
            }
            prov.inputs = [s.as_dict() for s in pool.sources]
            prov.metrics = {
                "rows": int(rows.size),
                "grad_dim": dim,
                "final_train_accuracy": float(dyn["final_correct"].mean()),
                "mean_gradient_norm": float(np.linalg.norm(feats, axis=1).mean())
                if rows.size
                else 0.0,
            }
        return pl.DataFrame(
            {pool.columns.id: pool.ids.gather(rows), "gradient": pl.Series("gradient", feats)}
        )
    if prov:
        prov.stop("train")
        prov.params = {"epochs": epochs, "model": model, "columns": pool.columns.__dict__}
        prov.inputs = [s.as_dict() for s in pool.sources]
        prov.metrics = {
            "rows": int(rows.size),
            "final_train_accuracy": float(dyn["final_correct"].mean()),
            "mean_aum": float(dyn["aum"].mean()),
        }
    return pl.DataFrame(
        {
            pool.columns.id: pool.ids.gather(rows),
            "aum": dyn["aum"],
            "forgetting": dyn["forgetting"].astype(np.int32),
            "el2n": dyn["el2n"],
            "loss": dyn["loss"],
        }
    )
