"""DISCO (Rubinstein et al., 2025): evaluate a new model on the few samples where existing models
disagree most, and predict its full-benchmark accuracy from its outputs on them.

Pieces: ``data`` (long-format predictions -> dense models x samples x classes), ``disagreement``
(PDS, JSD), ``anchors`` (stratified top-k), ``predictor`` (signature -> PCA -> ridge/kNN/forest, saved
without pickle), ``evaluate`` (leave-models-out MAE and Spearman) and ``files`` (the commands).
"""

from selectkit.disco.anchors import Anchors, choose_anchors, even_quotas
from selectkit.disco.data import ModelPool, Predictions, load_predictions, pivot_predictions
from selectkit.disco.disagreement import jsd, pds
from selectkit.disco.evaluate import evaluate, spearman, split_notes, summarise
from selectkit.disco.files import evaluate_files, fit_files, model_accuracy, predict_files
from selectkit.disco.predictor import (
    Predictor,
    check_benchmark,
    fit_predictor,
    load_predictor,
    predict_accuracy,
    save_predictor,
    signatures,
)

__all__ = [
    "Anchors",
    "ModelPool",
    "Predictions",
    "Predictor",
    "check_benchmark",
    "choose_anchors",
    "evaluate",
    "evaluate_files",
    "even_quotas",
    "fit_files",
    "fit_predictor",
    "jsd",
    "load_predictions",
    "load_predictor",
    "model_accuracy",
    "pds",
    "pivot_predictions",
    "predict_accuracy",
    "predict_files",
    "save_predictor",
    "signatures",
    "spearman",
    "split_notes",
    "summarise",
]
