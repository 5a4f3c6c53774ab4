"""The classifiers an active-learning simulation can refit each round, by name or as any
scikit-learn classifier.

Every model is a scikit-learn estimator made fresh each round (re-initialised, as AnchorAL and
baal do) with a seed from the simulation's master seed. Each named model declares its main
parameter (``MODEL_PARAMS``: logreg's and linear-svm's C, knn's k, rf's trees, mlp's alpha) with
its default and bound; ``--model-param C=10`` / ``model_params={"C": 10}`` sets it. From Python,
``model=`` may also be any classifier with ``fit`` and ``predict_proba`` (e.g.
``LogisticRegression(C=10, class_weight="balanced")``): it is cloned each round, and its
``random_state``, when it has one left at None, is seeded from the master seed.

Probabilities are always returned over *all* the dataset's classes (columns of classes not yet
labelled are 0), so strategies see one fixed C. ``proba_mc`` (for BALD) comes from the model's
own ensemble where it has one (the random forest's trees) and otherwise from ``members``
bootstrap refits of the model on the labelled set.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import LinearSVC

from selectkit.errors import SelectkitUsageError
from selectkit.params import Param


@dataclass(frozen=True)
class ModelParam:
    """A named model's main parameter: its scikit-learn name and its declaration (type,
    default, help and bound, a ``Param``)."""

    name: str
    param: Param

    @property
    def type(self) -> type:
        return self.param.type

    @property
    def default(self) -> Any:
        return self.param.default

    @property
    def help(self) -> str:
        return self.param.help


def _linear_svm(seed: int, counts: np.ndarray, c: float) -> ClassifierMixin:
    # Platt-calibrated probabilities need at least 2 rows per class for the inner folds; with
    # fewer the plain SVM's decision values go through a softmax (see ``predict_proba``).
    folds = int(min(3, counts.min()))
    if folds < 2:
        return _SoftmaxSVM(C=c, random_state=seed)
    return CalibratedClassifierCV(LinearSVC(C=c, random_state=seed), cv=folds, method="sigmoid")


class _SoftmaxSVM(LinearSVC):
    """A linear SVM whose probabilities are a softmax of its decision values (few labels)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.decision_function(x)
        if z.ndim == 1:
            z = np.stack([-z, z], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


Factory = Callable[[int, np.ndarray, Any], ClassifierMixin]
_C = Param(float, 1.0, "inverse regularisation strength", low=0, low_open=True)

MODELS: dict[str, tuple[str, Factory]] = {
    "logreg": (
        "logistic regression (lbfgs, C = 1 unless --model-param C=..., up to 1000 iterations)",
        lambda seed, counts, c: LogisticRegression(C=c, max_iter=1000),
    ),
    "linear-svm": (
        "linear SVM (C = 1 unless --model-param C=...) with Platt-calibrated probabilities "
        "(3-fold; softmax of decision values while a class has a single label)",
        _linear_svm,
    ),
    "knn": (
        "k-nearest neighbours (k = 5 unless --model-param n_neighbors=..., or fewer while "
        "fewer rows are labelled)",
        lambda seed, counts, k: KNeighborsClassifier(n_neighbors=int(min(k, counts.sum()))),
    ),
    "rf": (
        "random forest (100 trees unless --model-param n_estimators=...); its trees give proba_mc",
        lambda seed, counts, t: RandomForestClassifier(n_estimators=t, random_state=seed, n_jobs=1),
    ),
    "mlp": (
        "multi-layer perceptron (one hidden layer of 100, adam, L2 alpha = 1e-4 unless "
        "--model-param alpha=..., up to 300 epochs)",
        lambda seed, counts, a: MLPClassifier(
            hidden_layer_sizes=(100,), alpha=a, max_iter=300, random_state=seed
        ),
    ),
}

# each named model's main parameter, declared once: default, type and bound
MODEL_PARAMS: dict[str, ModelParam] = {
    "logreg": ModelParam("C", _C),
    "linear-svm": ModelParam("C", _C),
    "knn": ModelParam("n_neighbors", Param(int, 5, "neighbours that vote", low=1)),
    "rf": ModelParam("n_estimators", Param(int, 100, "trees", low=1)),
    "mlp": ModelParam("alpha", Param(float, 1e-4, "L2 penalty", low=0)),
}


def check_model(model: str | ClassifierMixin) -> None:
    """Raise a usage error unless ``model`` is a known name or a classifier with ``fit`` and
    ``predict_proba``."""
    if isinstance(model, str):
        if model not in MODELS:
            raise SelectkitUsageError(
                f"unknown model {model!r}; choose one of: {', '.join(MODELS)} (or, from Python, "
                "pass a scikit-learn classifier)"
            )
        return
    if not (hasattr(model, "fit") and hasattr(model, "predict_proba")):
        raise SelectkitUsageError(
            f"model {type(model).__name__} has no fit/predict_proba; pass a model name or a "
            "scikit-learn classifier with predict_proba"
        )


def model_param(model: str | ClassifierMixin, params: Mapping[str, Any] | None) -> Any:
    """The value of a named model's main parameter from ``params`` (``{"C": "10"}``; the text of
    ``--model-param C=10`` is converted), or its default; checked against its declared bound.
    An estimator takes no ``params`` (set them on it). Raises ``SelectkitUsageError``."""
    params = dict(params or {})
    if not isinstance(model, str):
        if params:
            raise SelectkitUsageError(
                "model parameters are for named models; set them on the estimator instead "
                f"(e.g. {type(model).__name__}({next(iter(params))}=...))"
            )
        return None
    check_model(model)
    spec = MODEL_PARAMS[model]
    unknown = sorted(set(params) - {spec.name})
    if unknown:
        raise SelectkitUsageError(
            f"model {model!r} takes the parameter {spec.name} ({spec.help}), not {unknown[0]!r}; "
            f"e.g. --model-param {spec.name}={spec.default:g} / model_params="
            f"{{'{spec.name}': {spec.default:g}}}"
        )
    raw = params.get(spec.name, spec.default)
    kind = "an integer" if spec.type is int else "a finite number"
    try:
        number = float(raw)
        if isinstance(raw, bool) or not np.isfinite(number):
            raise ValueError(raw)
        if spec.type is int and not number.is_integer():
            raise ValueError(raw)  # never truncate 2.5 neighbours to 2
        value = spec.type(number)
    except (TypeError, ValueError):
        raise SelectkitUsageError(
            f"model parameter {spec.name}={raw!r} of {model!r} is not {kind}"
        ) from None
    if not spec.param.within(value):
        raise SelectkitUsageError(
            f"model parameter {spec.name}={value!r} of {model!r} ('--model-param' / "
            f"model_params=) must {spec.param.bounds_text()}"
        )
    return value


def model_label(model: str | ClassifierMixin) -> str:
    """How a model is recorded: its name, or the estimator's repr (its non-default params)."""
    return model if isinstance(model, str) else repr(model)


class FittedModel:
    """A model fitted on the labelled rows, predicting over all ``n_classes`` classes.

    ``model``: a name of ``MODELS`` (with ``param``, its main parameter; default when None) or
    a scikit-learn classifier, cloned for each fit."""

    def __init__(
        self,
        model: str | ClassifierMixin,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        seed: int,
        param: Any = None,
    ) -> None:
        check_model(model)
        self.name, self.n_classes, self.seed = model, n_classes, seed
        if isinstance(model, str) and param is None:
            param = MODEL_PARAMS[model].default
        self.param = param
        self.x, self.y = x, y
        self.classes = np.unique(y)
        self.model = self._fit(x, y, seed) if self.classes.size > 1 else None

    def _make(self, seed: int, counts: np.ndarray) -> ClassifierMixin:
        if isinstance(self.name, str):
            return MODELS[self.name][1](seed, counts, self.param)
        est = clone(self.name)
        if "random_state" in est.get_params() and est.get_params()["random_state"] is None:
            est.set_params(random_state=seed)
        return est

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> ClassifierMixin:
        counts = np.unique(y, return_counts=True)[1]
        model = self._make(seed, counts)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(x, y)

    def _full(self, model: ClassifierMixin | None, proba: np.ndarray, classes: np.ndarray):
        out = np.zeros((proba.shape[0], self.n_classes), dtype=np.float32)
        out[:, classes] = proba
        return out

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(len(x), n_classes) float32 probabilities. With no labels yet every class gets 1/C;
        with one labelled class, that class gets 1."""
        if self.classes.size == 0:
            return np.full((x.shape[0], self.n_classes), 1.0 / self.n_classes, dtype=np.float32)
        if self.model is None:
            out = np.zeros((x.shape[0], self.n_classes), dtype=np.float32)
            out[:, self.classes[0]] = 1.0
            return out
        return self._full(self.model, self.model.predict_proba(x), self.model.classes_)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most likely class of each row (ties: the lower class number)."""
        return np.argmax(self.proba(x), axis=1)

    def proba_mc(self, x: np.ndarray, members: int) -> np.ndarray:
        """(len(x), members, n_classes) float32: the forest's first ``members`` trees for ``rf``,
        else ``members`` refits on bootstrap resamples of the labelled rows (seeded)."""
        if self.model is None:
            return np.repeat(self.proba(x)[:, None, :], members, axis=1)
        out = np.empty((x.shape[0], members, self.n_classes), dtype=np.float32)
        if isinstance(self.model, RandomForestClassifier):
            trees = self.model.estimators_
            for t in range(members):
                out[:, t] = self._full(None, trees[t % len(trees)].predict_proba(x), self.classes)
            return out
        rng = np.random.default_rng(self.seed)
        for t in range(members):
            rows = rng.integers(0, self.y.size, self.y.size)
            yb = self.y[rows]
            if np.unique(yb).size < 2:  # a one-class resample: keep the full labelled set
                rows, yb = np.arange(self.y.size), self.y
            model = self._fit(self.x[rows], yb, self.seed + t + 1)
            out[:, t] = self._full(model, model.predict_proba(x), model.classes_)
        return out
