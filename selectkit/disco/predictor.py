"""DISCO's performance predictor: from a model's outputs on the anchors to its full accuracy.

A model's *signature* is its class probabilities on the k anchor samples, flattened to k*C
numbers. A PCA fitted on the source models only (never on the models to be predicted) reduces
signatures to at most ``pca_dim`` dimensions, and a regressor maps them to accuracy:

* ``ridge``: ridge regression (``alpha``, default 10 as in the paper), closed form;
* ``knn``: the mean accuracy of the ``neighbors`` source models whose reduced signatures are most
  cosine-similar (1 = the paper's kNN);
* ``forest``: a random forest of 100 regression trees (scikit-learn's ``RandomForestRegressor``
  with its defaults, as in the paper), fitted with scikit-learn and then *exported as arrays of
  tree nodes* (children, split feature, threshold, leaf value); prediction walks those arrays in
  numpy, so a saved forest needs no scikit-learn object and no pickle.

With ``features="signature+accuracy"`` the regressors also see the model's *anchor accuracy*
a (its mean correctness on the k anchors) and predict the residual accuracy - a, to which a is
added back: ridge fits the residual on (z, a) with a unpenalised, the forest fits it on (z, a),
kNN takes the nearest source models' residuals. On DISCO anchors a is biased low (they are the
hard samples) but the bias is systematic, and a model unlike every source model still gets its
own measured a plus a learned correction instead of a stranger's accuracy. Such a predictor
needs the new models' correctness on the anchors (a ``correct`` or ``label`` column).

Everything is saved as a folder holding ``predictor.json`` (metadata: anchor ids, source models,
sizes, regressor, selectkit version, input fingerprints) and ``arrays.npz`` (numeric arrays only,
loaded with ``allow_pickle=False`` and checked for shape and, for a forest, that every child
index points forward, so a damaged file cannot loop): no pickle, so a predictor folder is safe to
share and to load from an untrusted source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from selectkit._version import __version__
from selectkit.console import warn
from selectkit.disco.data import Predictions
from selectkit.errors import SelectkitError, SelectkitMismatchError, SelectkitUsageError, option
from selectkit.io.provenance import fingerprint_ids
from selectkit.io.write import atomic_folder
from selectkit.params import Param, check_arguments

FORMAT = "selectkit-disco-predictor"
FORMAT_VERSION = 1
META_FILE = "predictor.json"
ARRAYS_FILE = "arrays.npz"
REGRESSORS = ("ridge", "knn", "forest")
FOREST_TREES = 100
DEFAULT_PCA = 256
DEFAULT_ALPHA = 10.0
FEATURES = ("signature", "signature+accuracy")
# every bound of the predictor's parameters, once: fit_predictor checks them, the CLI's options
# take their min/max from here
FIT_BOUNDS = {
    "regressor": Param(str, "ridge", "ridge, knn or forest", choices=REGRESSORS),
    "features": Param(str, "signature", "what the regressor sees", choices=FEATURES),
    "pca_dim": Param(int, DEFAULT_PCA, "PCA axes kept of the signatures, at most", low=1),
    "alpha": Param(float, DEFAULT_ALPHA, "ridge: regularisation strength", low=0),
    "neighbors": Param(int, 1, "knn: neighbours averaged", low=1),
}


@dataclass
class Forest:
    """Regression trees as flat node arrays (all trees concatenated; node ids are global).

    ``left``/``right``: child node ids (-1 at a leaf); ``feature``: the split axis (-2 at a leaf);
    ``threshold``: go left when ``value <= threshold``; ``value``: the node's mean target;
    ``roots``: each tree's first node. Children always have larger ids than their parent (the
    order scikit-learn builds them in, checked on load), so a walk ends within the node count.
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray

    ARRAYS = ("left", "right", "feature", "threshold", "value", "roots")

    @classmethod
    def from_sklearn(cls, model: Any) -> Forest:
        """Copy the nodes of a fitted ``RandomForestRegressor`` (single output) into arrays."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in cls.ARRAYS}
        offset = 0
        for est in model.estimators_:
            t = est.tree_
            n = int(t.node_count)
            leaf = t.children_left == -1
            parts["left"].append(np.where(leaf, -1, t.children_left + offset))
            parts["right"].append(np.where(leaf, -1, t.children_right + offset))
            parts["feature"].append(np.where(leaf, -2, t.feature))
            parts["threshold"].append(np.where(leaf, 0.0, t.threshold))
            parts["value"].append(t.value[:, 0, 0])
            parts["roots"].append(np.array([offset]))
            offset += n
        ints = ("left", "right", "feature", "roots")
        return cls(
            **{
                k: np.concatenate(v).astype(np.int64 if k in ints else np.float64)
                for k, v in parts.items()
            }
        )

    def check(self, dim: int, where: str) -> None:
        """Refuse node arrays that are inconsistent (lengths, indices out of range, a child that
        does not point forward, a split on an axis >= ``dim``)."""
        n = self.left.shape[0]
        ok = all(getattr(self, k).shape == (n,) for k in self.ARRAYS if k != "roots")
        ok = ok and self.roots.ndim == 1 and self.roots.size >= 1 and n >= 1
        if ok:
            ids = np.arange(n)
            inner = self.left != -1
            ok = bool(
                ((self.roots >= 0) & (self.roots < n)).all()
                and (self.right[~inner] == -1).all()
                and (self.left[inner] > ids[inner]).all()
                and (self.right[inner] > ids[inner]).all()
                and (self.left[inner] < n).all()
                and (self.right[inner] < n).all()
                and ((self.feature[inner] >= 0) & (self.feature[inner] < dim)).all()
                and np.isfinite(self.threshold).all()
                and np.isfinite(self.value).all()
            )
        if not ok:
            raise SelectkitError(f"{where}: the forest's node arrays are inconsistent; re-fit it")

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Mean over trees of each row's leaf value; all (tree, row) pairs walk down together,
        one vectorised step per tree level. O(n_trees n depth)."""
        # scikit-learn's trees compare float32 inputs with their float64 thresholds
        x = np.asarray(z, dtype=np.float32).astype(np.float64)
        rows = np.arange(x.shape[0])[None, :]
        node = np.repeat(self.roots[:, None], x.shape[0], axis=1)
        for _ in range(self.left.shape[0]):
            inner = self.left[node] != -1
            if not inner.any():
                break
            feat = np.maximum(self.feature[node], 0)
            go_left = x[rows, feat] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node].mean(axis=0)


@dataclass
class Predictor:
    """A fitted predictor: PCA (``mean``, ``components``) plus a regressor over its output.

    ``anchor_ids``: the k anchor sample ids, in signature order; ``n_classes``: C; ``models`` and
    ``accuracy``: the source models and their accuracies (fractions); ``train_z``: their reduced
    signatures; ``coef``/``intercept``: the ridge weights (zeros / mean accuracy otherwise);
    ``forest``: the forest's nodes (see ``Forest``), None unless ``regressor == "forest"``.
    ``features``: ``signature`` or ``signature+accuracy`` (see the module docstring); with the
    latter, ``train_anchor_accuracy`` holds the source models' anchor accuracies, the targets are
    residuals (accuracy - anchor accuracy), ``accuracy_coef`` is ridge's unpenalised weight on
    the anchor accuracy and the forest's last input axis is the anchor accuracy.
    """

    anchor_ids: list[Any]
    n_classes: int
    models: list[str]
    accuracy: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    train_z: np.ndarray
    coef: np.ndarray
    intercept: float
    regressor: str = "ridge"
    alpha: float = DEFAULT_ALPHA
    neighbors: int = 1
    meta: dict[str, Any] = field(default_factory=dict)
    forest: Forest | None = None
    features: str = "signature"
    train_anchor_accuracy: np.ndarray | None = None
    accuracy_coef: float = 0.0

    @property
    def uses_accuracy(self) -> bool:
        """Whether predictions need each model's accuracy on the anchors."""
        return self.features == "signature+accuracy"

    @property
    def n_anchors(self) -> int:
        return len(self.anchor_ids)

    @property
    def pca_dim(self) -> int:
        return int(self.components.shape[0])

    def predict(
        self, signatures: np.ndarray, anchor_accuracy: np.ndarray | None = None
    ) -> np.ndarray:
        """Predicted accuracy (fractions, clipped to [0, 1]) for (n, k, C) or (n, k*C)
        signatures; refuses any other shape. ``anchor_accuracy``: each model's mean correctness
        on the anchors, (n,) fractions; required when ``uses_accuracy``, ignored otherwise.
        O(n k C d)."""
        x = np.asarray(signatures, dtype=np.float64)
        k, c = self.n_anchors, self.n_classes
        if x.ndim == 3 and x.shape[1:] == (k, c):
            x = x.reshape(x.shape[0], k * c)
        if x.ndim != 2 or x.shape[1] != k * c:
            raise SelectkitError(
                f"signature of shape {tuple(np.shape(signatures))} does not fit this predictor, "
                f"which expects (models, {k}, {c}) or (models, {k * c}): probabilities of {c} "
                f"classes on its {k} anchors"
            )
        if not np.isfinite(x).all():
            raise SelectkitError("signatures hold NaN or infinite values")
        a = np.zeros(x.shape[0])
        if self.uses_accuracy:
            if anchor_accuracy is None:
                raise SelectkitError(
                    "this predictor uses each model's accuracy on the anchors (features "
                    "signature+accuracy); pass anchor_accuracy"
                )
            a = np.asarray(anchor_accuracy, dtype=np.float64)
            if (
                a.shape != (x.shape[0],)
                or not np.isfinite(a).all()
                or (a < 0).any()
                or (a > 1).any()
            ):
                raise SelectkitError(
                    f"anchor_accuracy must hold one fraction in [0, 1] per model ({x.shape[0]}), "
                    f"got shape {a.shape}"
                )
        targets = self.accuracy
        if self.uses_accuracy and self.train_anchor_accuracy is not None:
            targets = self.accuracy - self.train_anchor_accuracy
        with threadpool_limits(limits=1):  # small products; see fit_predictor
            z = (x - self.mean) @ self.components.T
            if self.regressor == "ridge":
                pred = z @ self.coef + self.accuracy_coef * a + self.intercept
            elif self.regressor == "forest":
                if self.forest is None:
                    raise SelectkitError("this forest predictor has no trees; re-fit it")
                pred = self.forest.predict(np.column_stack([z, a]) if self.uses_accuracy else z)
            else:
                pred = _knn(self.train_z, targets, z, self.neighbors)
        # the regressors predict the residual accuracy - anchor accuracy (a = 0 without it)
        return np.clip(pred + a, 0.0, 1.0)


def _unit(z: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(norms > 0, norms, 1.0)


def _knn(train_z: np.ndarray, y: np.ndarray, z: np.ndarray, neighbors: int) -> np.ndarray:
    """Mean target of the ``neighbors`` most cosine-similar training rows; ties to lower rows."""
    sims = _unit(z) @ _unit(train_z).T
    k = min(neighbors, train_z.shape[0])
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return y[nearest].mean(axis=1)


def _pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components) of the top ``dim`` principal axes of ``x``; signs fixed so each axis's
    largest-magnitude entry is positive (deterministic output). O(M^2 kC) by a thin SVD."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    return mean, comps


def signatures(preds: Predictions, anchor_rows: np.ndarray) -> np.ndarray:
    """Each model's probabilities on the anchor samples: (M, k*C) float64; O(M k C)."""
    sub = preds.proba[:, np.asarray(anchor_rows, dtype=np.int64), :]
    return sub.reshape(preds.n_models, -1).astype(np.float64)


def fit_predictor(
    preds: Predictions,
    accuracy: np.ndarray,
    anchor_rows: np.ndarray,
    *,
    regressor: str = "ridge",
    pca_dim: int = DEFAULT_PCA,
    alpha: float = DEFAULT_ALPHA,
    neighbors: int = 1,
    random_state: int = 0,
    features: str = "signature",
    meta: dict[str, Any] | None = None,
) -> Predictor:
    """Fit the predictor on the source models in ``preds`` with their ``accuracy`` (fractions).

    ``anchor_rows``: sample positions of the anchors in ``preds``. The PCA keeps
    min(pca_dim, M - 1, k*C) axes. ``random_state`` seeds the forest's bootstrap and feature
    draws (derive it from the run's seed). ``features="signature+accuracy"`` also uses each
    model's accuracy on the anchors (needs ``preds.correct``; see the module docstring).
    O(M^2 k C) time, O(M k C) memory; a forest adds 100 trees of O(d M log M) each.
    """
    check_arguments(
        FIT_BOUNDS,
        regressor=regressor,
        features=features,
        pca_dim=pca_dim,
        alpha=alpha,
        neighbors=neighbors,
    )
    m = preds.n_models
    if m < 2:
        raise SelectkitError(
            f"fitting a predictor needs at least 2 source models; {preds.where} has {m}"
        )
    if regressor == "knn" and neighbors >= m:
        raise SelectkitUsageError(
            f"{option('neighbors', neighbors, cli=f'--neighbours {neighbors}')} averages every "
            f"one of the {m} source models, so every "
            f"model would get the same prediction; use fewer than {m}"
        )
    y = np.asarray(accuracy, dtype=np.float64)
    if y.shape != (m,) or not np.isfinite(y).all():
        raise SelectkitError(f"need one finite accuracy per source model ({m}), got {y.shape}")
    x = signatures(preds, anchor_rows)
    uses_acc = features == "signature+accuracy"
    a = np.zeros(m)
    if uses_acc:
        correct = preds.require_correct("features signature+accuracy")
        a = correct[:, np.asarray(anchor_rows, dtype=np.int64)].mean(axis=1, dtype=np.float64)
    r = y - a  # the target: accuracy, or its residual over the anchor accuracy
    dim = max(1, min(pca_dim, m - 1, x.shape[1]))
    acc_coef = 0.0
    # small dense problems: BLAS threads cost more than they gain, and collapse on shared cores
    # (a 171 x 1000 fit took 2-7 s with 2 threads under load, 0.12 s with one)
    with threadpool_limits(limits=1):
        mean, comps = _pca(x, dim)
        z = (x - mean) @ comps.T
        intercept = float(r.mean())
        if regressor == "ridge":
            # z is centred (x - mean); the anchor accuracy's weight is not shrunk: its scale is
            # fixed (a fraction) and its link to the accuracy is the point of the feature
            feats = np.column_stack([z, a - a.mean()]) if uses_acc else z
            penalty = np.full(feats.shape[1], float(alpha))
            if uses_acc:
                penalty[-1] = 0.0
            w = np.linalg.solve(feats.T @ feats + np.diag(penalty), feats.T @ (r - r.mean()))
            coef = w[:dim]
            if uses_acc:
                acc_coef = float(w[-1])
                intercept -= acc_coef * float(a.mean())
        else:
            coef = np.zeros(dim)
    forest = None
    if regressor == "forest":
        from sklearn.ensemble import RandomForestRegressor  # slow import; only forests need it

        model = RandomForestRegressor(FOREST_TREES, random_state=random_state, n_jobs=1)
        forest = Forest.from_sklearn(model.fit(np.column_stack([z, a]) if uses_acc else z, r))
    ids = preds.ids.gather(np.asarray(anchor_rows, dtype=np.int64)).to_list()
    return Predictor(
        anchor_ids=ids,
        n_classes=preds.n_classes,
        models=list(preds.models),
        accuracy=y,
        mean=mean,
        components=comps,
        train_z=z,
        coef=coef,
        intercept=intercept,
        regressor=regressor,
        alpha=float(alpha),
        neighbors=int(neighbors),
        # what `predict` checks new predictions against; a caller that never saves the predictor
        # (evaluate) skips its O(N log N) fingerprint by passing meta={"benchmark": None}
        meta={
            **(
                {}
                if "benchmark" in (meta or {})
                else {"benchmark": benchmark_record(preds, anchor_rows)}
            ),
            **(meta or {}),
        },
        forest=forest,
        features=features,
        train_anchor_accuracy=a if uses_acc else None,
        accuracy_coef=acc_coef,
    )


def benchmark_record(preds: Predictions, anchor_rows: np.ndarray) -> dict[str, Any]:
    """What identifies the benchmark a predictor is fitted on, as saved in its metadata: the
    sample count, ``fingerprint_ids`` of the sample ids, and the anchors' true labels and groups
    where the predictions have them (None otherwise). O(N log N)."""
    rows = np.asarray(anchor_rows, dtype=np.int64)
    return {
        "samples": preds.n_samples,
        "ids_sha256": fingerprint_ids(preds.ids),
        "anchor_labels": None if preds.labels is None else preds.labels[rows].tolist(),
        "anchor_groups": None if preds.groups is None else [str(g) for g in preds.groups[rows]],
    }


def benchmark_mismatch(predictor: Predictor, preds: Predictions, rows: np.ndarray) -> str | None:
    """Why ``preds`` (whose positions ``rows`` hold the anchors) are not on the benchmark the
    predictor was fitted on, or None when nothing recorded contradicts it.

    Predictions may hold the anchors' rows only, so the sample ids are compared in full only
    when there are as many as when fitted; more ids than the benchmark had is a mismatch. The
    anchors' true labels and groups, where both sides have them, must be those recorded.
    Predictors saved before the record existed pass. O(N log N)."""
    bench = predictor.meta.get("benchmark")
    if not isinstance(bench, dict):
        return None
    n = bench.get("samples")
    if isinstance(n, int) and preds.n_samples > n:
        return f"it has {preds.n_samples} sample ids, more than the {n} of that benchmark"
    if preds.n_samples == n and fingerprint_ids(preds.ids) != bench.get("ids_sha256"):
        return f"it has {n} sample ids, as many as that benchmark, but not the same ones"
    for what, have, want in (
        ("true label", preds.labels, bench.get("anchor_labels")),
        ("group", preds.groups, bench.get("anchor_groups")),
    ):
        if have is None or want is None:
            continue
        got = have[rows]
        ref = np.asarray(want, dtype=got.dtype if what == "true label" else object)
        got = got if what == "true label" else np.asarray([str(g) for g in got], dtype=object)
        differs = got != ref
        if what == "true label":  # -1: a sample without a label on one side
            differs &= (got >= 0) & (ref >= 0)
        if differs.any():
            i = int(np.flatnonzero(differs)[0])
            return (
                f"{int(differs.sum())} of the {len(ref)} anchors have another {what} (e.g. id "
                f"{predictor.anchor_ids[i]!r}: {got[i]!r} here, {ref[i]!r} when fitted)"
            )
    return None


def check_benchmark(
    predictor: Predictor, preds: Predictions, rows: np.ndarray, *, force: bool = False
) -> None:
    """Refuse (``SelectkitMismatchError``) predictions on another benchmark than the
    predictor's (see ``benchmark_mismatch``); with ``force``, warn instead."""
    why = benchmark_mismatch(predictor, preds, rows)
    if why is None:
        return
    inputs = predictor.meta.get("inputs") or []
    origin = f" ({', '.join(repr(i.get('path')) for i in inputs)})" if inputs else ""
    message = f"{preds.where} is not the benchmark this predictor was fitted on{origin}: {why}"
    if force:
        warn(
            f"{message}; predicting anyway ({option('force', python='force=True')}), the "
            "predictions may be meaningless"
        )
        return
    raise SelectkitMismatchError(
        f"{message}; give predictions on that benchmark, or pass "
        f"{option('force', python='force=True')} if the samples are the same"
    )


def anchor_rows_of(preds: Predictions, anchor_ids: list[Any], what: str) -> np.ndarray:
    """Positions in ``preds`` of ``anchor_ids``, in their order; refuses missing anchors naming
    how many are missing and one example."""
    if not anchor_ids:
        raise SelectkitError(f"{what} lists no anchors")
    ids = preds.ids
    try:
        wanted = pl.Series("id", anchor_ids).cast(ids.dtype)
    except pl.exceptions.PolarsError:
        raise SelectkitError(
            f"anchor ids of {what} are {pl.Series(anchor_ids).dtype} but the ids of {preds.where} "
            f"are {ids.dtype}; give ids of one type"
        ) from None
    lookup = pl.DataFrame({"id": ids, "row": np.arange(ids.len(), dtype=np.int64)})
    rows = pl.DataFrame({"id": wanted}).join(lookup, on="id", how="left", maintain_order="left")
    missing = rows.get_column("row").null_count()
    if missing:
        example = rows.filter(pl.col("row").is_null()).get_column("id")[0]
        raise SelectkitMismatchError(
            f"{preds.where} lacks {missing} of the {len(anchor_ids)} anchors of {what} (e.g. id "
            f"{example!r}); give every model's predictions on all the anchors"
        )
    return rows.get_column("row").to_numpy()


def predict_accuracy(
    predictor: Predictor, preds: Predictions, *, force: bool = False
) -> pl.DataFrame:
    """Predicted accuracy of every model in ``preds`` (which must cover the predictor's anchors
    and have its number of classes): a frame ``model, predicted_accuracy``. Predictions on
    another benchmark than the predictor's are refused (``check_benchmark``) unless ``force``;
    missing anchors and another number of classes always are (``SelectkitMismatchError``)."""
    if preds.n_classes != predictor.n_classes:
        raise SelectkitMismatchError(
            f"{preds.where} has {preds.n_classes} classes per proba but the predictor was fitted "
            f"on {predictor.n_classes}; give predictions on the same benchmark"
        )
    rows = anchor_rows_of(preds, predictor.anchor_ids, "the predictor")
    check_benchmark(predictor, preds, rows, force=force)
    anchor_acc = None
    if predictor.uses_accuracy:
        if preds.correct is None:
            raise SelectkitError(
                f"this predictor was fitted with features signature+accuracy and needs each "
                f"model's correctness on the anchors, but {preds.where} has neither a 'correct' "
                "column nor a 'label' column; add one, or use a predictor fitted with "
                + option("features", "signature")
            )
        anchor_acc = preds.correct[:, rows].mean(axis=1, dtype=np.float64)
    pred = predictor.predict(signatures(preds, rows), anchor_acc)
    seen = set(predictor.models) | set(predictor.meta.get("guiding_models") or [])
    known = [m for m in preds.models if m in seen]
    if known:
        # a model that chose the anchors or trained the predictor is not a fair test of it
        warn(
            f"{len(known)} model(s) of {preds.where} (e.g. {known[0]!r}) helped choose the "
            "anchors or fit this predictor; their predictions are optimistic"
        )
    return pl.DataFrame(
        {"model": preds.models, "predicted_accuracy": pl.Series(pred, dtype=pl.Float64)}
    )


# ------------------------------------------------------------------------------------ storage


def save_predictor(predictor: Predictor, folder: str | Path) -> Path:
    """Write ``predictor`` to ``folder`` (JSON + npz, no pickle), atomically: files go to a
    temporary folder that replaces ``folder`` only when complete (:func:`atomic_folder`). An existing ``folder`` is
    replaced only if it is empty or an earlier predictor."""
    out = Path(folder)
    if out.exists():
        if not out.is_dir():
            raise SelectkitUsageError(f"output '{out}' is a file; give a folder for the predictor")
        extra = sorted(p.name for p in out.iterdir() if p.name not in (META_FILE, ARRAYS_FILE))
        if extra:
            raise SelectkitUsageError(
                f"output folder '{out}' already holds other files ({extra[0]}, ...); give a new "
                "or empty folder"
            )
    parent = out.resolve().parent
    if not parent.is_dir():
        raise SelectkitUsageError(f"output folder '{parent}' does not exist; create it first")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "selectkit_version": __version__,
        "regressor": predictor.regressor,
        "features": predictor.features,
        "alpha": predictor.alpha,
        "neighbors": predictor.neighbors,
        "pca_dim": predictor.pca_dim,
        "n_anchors": predictor.n_anchors,
        "n_classes": predictor.n_classes,
        "anchor_ids": predictor.anchor_ids,
        "models": predictor.models,
        **{k: v for k, v in predictor.meta.items() if k not in _RESERVED},
    }
    with atomic_folder(out) as tmp:
        np.savez(
            tmp / ARRAYS_FILE,
            accuracy=predictor.accuracy,
            mean=predictor.mean,
            components=predictor.components,
            train_z=predictor.train_z,
            coef=predictor.coef,
            intercept=np.array([predictor.intercept]),
            **(
                {
                    "train_anchor_accuracy": predictor.train_anchor_accuracy,
                    "accuracy_coef": np.array([predictor.accuracy_coef]),
                }
                if predictor.uses_accuracy
                else {}
            ),
            **(
                {f"forest_{k}": getattr(predictor.forest, k) for k in Forest.ARRAYS}
                if predictor.forest is not None
                else {}
            ),
        )
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


_RESERVED = {
    "format",
    "format_version",
    "selectkit_version",
    "regressor",
    "features",
    "alpha",
    "neighbors",
    "pca_dim",
    "n_anchors",
    "n_classes",
    "anchor_ids",
    "models",
}


_INT_ARRAYS = {"forest_left", "forest_right", "forest_feature", "forest_roots"}


def load_predictor(folder: str | Path) -> Predictor:
    """Read a predictor folder written by ``save_predictor``; checks the format and that every
    array has the shape the metadata says. Never unpickles anything."""
    path = Path(folder)
    meta_path, arrays_path = path / META_FILE, path / ARRAYS_FILE
    if not meta_path.is_file() or not arrays_path.is_file():
        raise SelectkitError(
            f"'{path}' is not a DISCO predictor folder (needs {META_FILE} and {ARRAYS_FILE}); "
            "make one with `selectkit disco fit`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise SelectkitError(f"'{meta_path}' is not valid JSON ({exc}); re-create it") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise SelectkitError(
            f"'{meta_path}' is not a version-{FORMAT_VERSION} {FORMAT} file; re-fit it with this "
            "selectkit"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, KeyError) as exc:
        raise SelectkitError(f"'{arrays_path}' is not a readable npz ({exc}); re-fit") from None
    try:
        # numeric arrays only (allow_pickle=False already refuses objects)
        arrays = {
            k: v.astype(np.int64 if k in _INT_ARRAYS else np.float64, casting="same_kind")
            for k, v in arrays.items()
        }
    except TypeError:
        raise SelectkitError(f"'{arrays_path}' holds arrays of the wrong type; re-fit") from None
    try:
        k, c, d, m = meta["n_anchors"], meta["n_classes"], meta["pca_dim"], len(meta["models"])
        expected = {
            "accuracy": (m,),
            "mean": (k * c,),
            "components": (d, k * c),
            "train_z": (m, d),
            "coef": (d,),
            "intercept": (1,),
        }
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise SelectkitError(
                    f"'{arrays_path}': array '{name}' has shape {arrays[name].shape}, expected "
                    f"{shape}; the folder is damaged, re-fit it"
                )
        # predictors saved before the option existed use the signature only
        features = meta.get("features", "signature")
        if len(meta["anchor_ids"]) != k or meta["regressor"] not in REGRESSORS:
            raise SelectkitError(f"'{meta_path}' is inconsistent; re-fit the predictor")
        if features not in FEATURES:
            raise SelectkitError(
                f"'{meta_path}': unknown features {features!r} (a newer selectkit?); re-fit it"
            )
        uses_acc = features == "signature+accuracy"
        if uses_acc:
            for name, shape in (("train_anchor_accuracy", (m,)), ("accuracy_coef", (1,))):
                if name not in arrays or arrays[name].shape != shape:
                    raise SelectkitError(
                        f"'{arrays_path}' lacks array '{name}' of shape {shape}, which features "
                        "signature+accuracy need; the folder is damaged, re-fit it"
                    )
        forest = None
        if meta["regressor"] == "forest":
            names = [f"forest_{a}" for a in Forest.ARRAYS]
            if any(n not in arrays for n in names):
                raise SelectkitError(f"'{arrays_path}' lacks the forest's nodes; re-fit it")
            forest = Forest(*(arrays[n] for n in names))
            # with the anchor accuracy, the forest's inputs are the d PCA axes plus that column
            forest.check(d + int(uses_acc), f"'{arrays_path}'")
        return Predictor(
            anchor_ids=meta["anchor_ids"],
            n_classes=c,
            models=meta["models"],
            accuracy=arrays["accuracy"],
            mean=arrays["mean"],
            components=arrays["components"],
            train_z=arrays["train_z"],
            coef=arrays["coef"],
            intercept=float(arrays["intercept"][0]),
            regressor=meta["regressor"],
            alpha=float(meta["alpha"]),
            neighbors=int(meta["neighbors"]),
            meta={k2: v for k2, v in meta.items() if k2 not in _RESERVED},
            forest=forest,
            features=features,
            train_anchor_accuracy=arrays["train_anchor_accuracy"] if uses_acc else None,
            accuracy_coef=float(arrays["accuracy_coef"][0]) if uses_acc else 0.0,
        )
    except KeyError as exc:
        raise SelectkitError(f"'{meta_path}' lacks {exc}; re-fit the predictor") from None
