"""selectkit: data selection and active learning for real corpora.

Python API: every CLI command is a thin shell over one of these calls (docs/python-api.md has
the table of CLI command -> Python call)::

    import selectkit as sk
    sk.embed_file("data_samples/rotten_tomatoes.jsonl", "emb.parquet")
    pool = sk.load_pool("emb.parquet")                 # or sk.Pool.from_arrays(X, labels=y)
    manifest, selection = sk.select(pool, "kcenter", budget=200, seed=0)
    sk.select_files("emb.parquet", "manifest.parquet", strategy="kcenter", budget=200)

Errors are ``SelectkitError`` subclasses (usage, data, mismatch, internal); from Python their
messages name arguments (``label_col=``), on the command line flags (``--label-col``).
"""

import os

# faiss's OpenMP threads spin while waiting by default; on shared cores that makes every faiss
# call (k-means assignment above all) up to 10x slower. Passive waiting costs little on an idle
# machine. Set before faiss loads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from selectkit import disco
from selectkit._version import __version__
from selectkit.apply import apply_manifest
from selectkit.budget import parse_budget
from selectkit.cluster import cluster_file, kmeans
from selectkit.demo import run_demo
from selectkit.disco import evaluate_files as disco_evaluate_files
from selectkit.disco import fit_files as disco_fit_files
from selectkit.disco import predict_files as disco_predict_files
from selectkit.dynamics import scores_file, scores_for_pool, training_dynamics
from selectkit.embed import HashingEmbedder, embed_file, embed_texts, make_embedder
from selectkit.errors import (
    SelectkitDataError,
    SelectkitError,
    SelectkitInternalError,
    SelectkitMismatchError,
    SelectkitUsageError,
)
from selectkit.inspect import inspect_file
from selectkit.io import read_provenance, read_table, write_table
from selectkit.kmq import kmq_weights
from selectkit.planfilter.run import plan_filter
from selectkit.pool import Columns, Pool, load_pool
from selectkit.report import render_report, write_report
from selectkit.rng import derive_rng
from selectkit.select import build_manifest, select, select_files
from selectkit.strategies import Param, Selection, get_strategy, list_strategies, register_strategy
from selectkit.stream import stream_select
from selectkit.weights import broadcast_weights

__all__ = [
    "Columns",
    "HashingEmbedder",
    "Param",
    "Pool",
    "Selection",
    "SelectkitDataError",
    "SelectkitError",
    "SelectkitInternalError",
    "SelectkitMismatchError",
    "SelectkitUsageError",
    "__version__",
    "al_simulate",
    "al_simulate_file",
    "al_simulate_stream",
    "al_simulate_stream_file",
    "apply_manifest",
    "broadcast_weights",
    "build_manifest",
    "cluster_file",
    "derive_rng",
    "disco",
    "disco_evaluate_files",
    "disco_fit_files",
    "disco_predict_files",
    "embed_file",
    "embed_texts",
    "get_strategy",
    "inspect_file",
    "kmeans",
    "kmq_weights",
    "list_strategies",
    "load_pool",
    "make_embedder",
    "parse_budget",
    "plan_filter",
    "read_provenance",
    "read_table",
    "register_strategy",
    "render_report",
    "run_demo",
    "scores_file",
    "scores_for_pool",
    "select",
    "select_files",
    "stream_select",
    "training_dynamics",
    "write_report",
    "write_table",
]

# `al simulate` needs scikit-learn's models (seconds to import): loaded on first use only
_LAZY = {"al_simulate": "simulate", "al_simulate_file": "simulate_file"}
# `al simulate --stream`, the stream replay
_LAZY_STREAM = {
    "al_simulate_stream": "simulate_stream",
    "al_simulate_stream_file": "simulate_stream_file",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module("selectkit.al.simulate"), _LAZY[name])
    if name in _LAZY_STREAM:
        import importlib

        module = importlib.import_module("selectkit.al.stream_replay")
        return getattr(module, _LAZY_STREAM[name])
    raise AttributeError(f"module 'selectkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
