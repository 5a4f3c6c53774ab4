"""The classifiers an active-learning simulation can refit each round, by name.

Every model is a scikit-learn estimator made fresh each round (re-initialised, as AnchorAL and
baal do) with a seed from the simulation's master seed. Probabilities are always returned over
*all* the dataset's classes (columns of classes not yet labelled are 0), so strategies see one
fixed C. ``proba_mc`` (for BALD) comes from the model's own ensemble where it has one (the
random forest's trees) and otherwise from ``members`` bootstrap refits of the model on the
labelled set.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import LinearSVC

from selectkit.errors import SelectkitUsageError


def _linear_svm(seed: int, counts: np.ndarray) -> ClassifierMixin:
    # Platt-calibrated probabilities need at least 2 rows per class for the inner folds; with
    # fewer the plain SVM's decision values go through a softmax (see ``predict_proba``).
    folds = int(min(3, counts.min()))
    if folds < 2:
        return _SoftmaxSVM(random_state=seed)
    return CalibratedClassifierCV(LinearSVC(random_state=seed), cv=folds, method="sigmoid")


class _SoftmaxSVM(LinearSVC):
    """A linear SVM whose probabilities are a softmax of its decision values (few labels)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.decision_function(x)
        if z.ndim == 1:
            z = np.stack([-z, z], axis=1)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


MODELS: dict[str, tuple[str, Callable[[int, np.ndarray], ClassifierMixin]]] = {
    "logreg": (
        "logistic regression (lbfgs, C=1, up to 1000 iterations)",
        lambda seed, counts: LogisticRegression(max_iter=1000),
    ),
    "linear-svm": (
        "linear SVM with Platt-calibrated probabilities (3-fold; softmax of decision values "
        "while a class has a single label)",
        _linear_svm,
    ),
    "knn": (
        "k-nearest neighbours (k = 5, or fewer while fewer rows are labelled)",
        lambda seed, counts: KNeighborsClassifier(n_neighbors=int(min(5, counts.sum()))),
    ),
    "rf": (
        "random forest (100 trees); its trees give proba_mc",
        lambda seed, counts: RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
    ),
    "mlp": (
        "multi-layer perceptron (one hidden layer of 100, adam, up to 300 epochs)",
        lambda seed, counts: MLPClassifier(
            hidden_layer_sizes=(100,), max_iter=300, random_state=seed
        ),
    ),
}


def check_model(name: str) -> None:
    """Raise a usage error naming the known models unless ``name`` is one."""
    if name not in MODELS:
        raise SelectkitUsageError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")


class FittedModel:
    """A model fitted on the labelled rows, predicting over all ``n_classes`` classes."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> None:
        check_model(name)
        self.name, self.n_classes, self.seed = name, n_classes, seed
        self.x, self.y = x, y
        self.classes = np.unique(y)
        self.model = self._fit(x, y, seed) if self.classes.size > 1 else None

    def _fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> ClassifierMixin:
        counts = np.unique(y, return_counts=True)[1]
        model = MODELS[self.name][1](seed, counts)
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
