"""Parity: given the same probability table, least-confidence, margin and entropy pick the same
batch as scikit-activeml's UncertaintySampling (same order too) and modAL's samplers (modAL
returns its batch unordered); and bald picks the same batch, in order, as scikit-activeml's
GreedyBALD given the same ensemble probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import UncertaintySampling
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from selectkit import Pool, select

OURS_TO_PEERS = {
    "least-confidence": ("least_confident", uncertainty_sampling),
    "margin": ("margin_sampling", margin_sampling),
    "entropy": ("entropy", entropy_sampling),
}


class TableClassifier(ClassifierMixin, BaseEstimator):
    """A fitted model's probabilities, looked up by row number (X[:, 0]): every tool then scores
    the very same table."""

    def __init__(self, table=None):
        self.table = table

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.arange(self.table.shape[1])
        return self

    def predict_proba(self, X):
        return self.table[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


@pytest.fixture(scope="module")
def table(digits) -> np.ndarray:
    """Real probabilities: logistic regression fitted on 60 digits, predicted on all 1,797."""
    x, y = digits
    model = LogisticRegression(max_iter=1000).fit(x[:60], y[:60])
    # float32 as selectkit stores it; the peers get the identical values in float64
    return model.predict_proba(x).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("ours", sorted(OURS_TO_PEERS))
@pytest.mark.parametrize("budget", [1, 10, 100])
def test_same_batch_as_scikit_activeml_and_modal(table, ours, budget):
    n, c = table.shape
    x = np.arange(n, dtype=np.float64)[:, None]
    _, sel = select(Pool.from_arrays(proba=table), ours, budget, seed=0)

    method, modal_fn = OURS_TO_PEERS[ours]
    y_fit = np.full(n, -1)
    y_fit[:c] = np.arange(c)  # the wrapper needs each class once to accept the model as fitted
    clf = SklearnClassifier(TableClassifier(table), classes=np.arange(c), missing_label=-1)
    clf.fit(x, y_fit)
    skal = UncertaintySampling(method=method, missing_label=-1, random_state=0).query(
        x, np.full(n, -1), clf, fit_clf=False, batch_size=budget
    )
    modal, _ = modal_fn(TableClassifier(table).fit(x, None), x, n_instances=budget)

    assert sel.indices.tolist() == skal.tolist()
    # modAL's multi_argmax is an argpartition: the same batch, returned in no particular order
    assert sorted(sel.indices.tolist()) == sorted(modal.tolist())


def test_parity_table_has_no_ties_that_would_make_it_trivial(table):
    top2 = np.sort(table, axis=1)[:, -2:]
    assert np.unique(top2[:, 1] - top2[:, 0]).size > 0.99 * table.shape[0]


class MemberClassifier(ClassifierMixin, BaseEstimator):
    """Ensemble member ``t`` of a stored (n, T, C) probability tensor, looked up by row number."""

    def __init__(self, table=None, t=0):
        self.table = table
        self.t = t

    def fit(self, X, y, sample_weight=None):
        self.classes_ = np.arange(self.table.shape[2])
        return self

    def predict_proba(self, X):
        return self.table[np.asarray(X)[:, 0].astype(int), self.t]


@pytest.mark.parametrize("budget", [1, 25])
def test_bald_same_batch_as_scikit_activeml_greedy_bald(digits, budget):
    """Real ensemble: 6 logistic regressions on bootstrap resamples of 80 labelled digits."""
    from skactiveml.pool import GreedyBALD

    from selectkit.al.models import FittedModel

    x, y = digits
    mc = FittedModel("logreg", x[:80], y[:80], 10, seed=0).proba_mc(x, 6).astype(np.float64)
    n, t, c = mc.shape
    idx = np.arange(n, dtype=np.float64)[:, None]
    y_fit = np.full(n, -1)
    y_fit[:c] = np.arange(c)
    ensemble = [
        SklearnClassifier(MemberClassifier(mc, m), classes=np.arange(c), missing_label=-1).fit(
            idx, y_fit
        )
        for m in range(t)
    ]
    skal = GreedyBALD(missing_label=-1, random_state=0).query(
        idx, np.full(n, -1), ensemble, fit_ensemble=False, batch_size=budget
    )
    _, sel = select(Pool.from_arrays(proba_mc=mc), "bald", budget, seed=0)
    assert sel.indices.tolist() == skal.tolist()
