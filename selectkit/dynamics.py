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
}
EL2N_EPOCHS = 10
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
) -> dict[str, np.ndarray]:
    """Per-row ``aum``, ``forgetting``, ``el2n`` and ``loss`` of labels ``y`` (any hashable
    values) on vectors ``x``. Cost: ``epochs`` passes of training plus prediction, O(epochs n C d)
    time for ``sgd``; memory O(n C) per prediction chunk, O(n) for the scores."""
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
    return {
        "aum": aum,
        "forgetting": forgetting,
        "el2n": el2n,
        "loss": loss,
        "final_correct": prev_correct,
    }


def check_args(*, epochs: int, model: str, seed: int = DEFAULT_SEED) -> None:
    """Refuse an unknown model or an epoch count or seed outside ``BOUNDS``, before any work."""
    arguments.text(model, "model", choices=MODELS, what="model")
    check_arguments(BOUNDS, epochs=epochs, seed=seed)


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
) -> Provenance:
    """Write id, aum, forgetting, el2n and loss for every labelled row of ``inputs`` (needs an
    embedding and a label column; unlabelled rows are left out). ``inputs`` is one path (a
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
    check_args(epochs=epochs, model=model, seed=seed)
    folder = is_folder_output(output)
    check_output_path(output, inputs, folder=folder)
    cols = columns or Columns()
    with opened_engine(engine, ray_address) as eng:
        prov = Provenance(command="scores", seed=seed)
        prov.start("read")
        pool = load_pool(inputs, columns=cols, input_format=input_format)
        prov.stop("read")
        result = scores_for_pool(pool, epochs=epochs, model=model, seed=seed, prov=prov)
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
) -> pl.DataFrame:
    """The scores table of ``scores_file`` (id, aum, forgetting, el2n, loss per labelled row)
    for an in-memory pool, e.g. ``Pool.from_arrays(x, labels=y)``. Cost: see
    ``training_dynamics``."""
    arguments.instance(pool, Pool, "pool", "Pool.from_arrays(x, labels=y)", optional=False)
    check_args(epochs=epochs, model=model, seed=seed)
    pool.require(["embedding", "label"], "`selectkit scores`")
    rows = np.flatnonzero(pool.labelled_mask)
    if rows.size == 0:
        raise SelectkitDataError(
            f"column '{pool.columns.label}' of {pool.where} has no labels; training dynamics "
            "need labelled rows"
        )
    x = pool.embeddings
    labels = pool.frame.get_column(pool.columns.label).gather(rows).to_numpy()
    if prov:
        prov.start("train")
    dyn = training_dynamics(
        x if rows.size == len(pool) else np.asarray(x[rows]),
        labels,
        epochs=epochs,
        model=model,
        rng=derive_rng(seed, "scores", model),
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
