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
import sys
import types

# faiss's OpenMP threads spin while waiting by default; on shared cores that makes every faiss
# call (k-means assignment above all) up to 10x slower. Passive waiting costs little on an idle
# machine. Set before faiss loads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from selectkit._version import __version__
from selectkit.errors import (
    SelectkitDataError,
    SelectkitError,
    SelectkitInternalError,
    SelectkitMismatchError,
    SelectkitUsageError,
)

# Every other public name is imported on first use (PEP 562): a command imports only what it
# runs, so `selectkit cluster` does not pay for disco, the strategies or scikit-learn (importing
# them all took 1.3-1.9 s of every command's start). name -> (module, attribute)
_PUBLIC = {
    "apply_manifest": ("selectkit.apply", "apply_manifest"),
    "parse_budget": ("selectkit.budget", "parse_budget"),
    "cluster_file": ("selectkit.cluster", "cluster_file"),
    "kmeans": ("selectkit.cluster", "kmeans"),
    "run_demo": ("selectkit.demo", "run_demo"),
    "disco_evaluate_files": ("selectkit.disco", "evaluate_files"),
    "disco_fit_files": ("selectkit.disco", "fit_files"),
    "disco_predict_files": ("selectkit.disco", "predict_files"),
    "scores_file": ("selectkit.dynamics", "scores_file"),
    "scores_for_pool": ("selectkit.dynamics", "scores_for_pool"),
    "training_dynamics": ("selectkit.dynamics", "training_dynamics"),
    "HashingEmbedder": ("selectkit.embed", "HashingEmbedder"),
    "embed_file": ("selectkit.embed", "embed_file"),
    "embed_texts": ("selectkit.embed", "embed_texts"),
    "make_embedder": ("selectkit.embed", "make_embedder"),
    "inspect_file": ("selectkit.inspect", "inspect_file"),
    "read_provenance": ("selectkit.io", "read_provenance"),
    "read_table": ("selectkit.io", "read_table"),
    "write_table": ("selectkit.io", "write_table"),
    "kmq_weights": ("selectkit.kmq", "kmq_weights"),
    "plan_filter": ("selectkit.planfilter.run", "plan_filter"),
    "Columns": ("selectkit.pool", "Columns"),
    "Pool": ("selectkit.pool", "Pool"),
    "load_pool": ("selectkit.pool", "load_pool"),
    "render_report": ("selectkit.report", "render_report"),
    "write_report": ("selectkit.report", "write_report"),
    "derive_rng": ("selectkit.rng", "derive_rng"),
    "build_manifest": ("selectkit.select", "build_manifest"),
    "select": ("selectkit.select", "select"),
    "select_files": ("selectkit.select", "select_files"),
    "Param": ("selectkit.strategies", "Param"),
    "Selection": ("selectkit.strategies", "Selection"),
    "get_strategy": ("selectkit.strategies", "get_strategy"),
    "list_strategies": ("selectkit.strategies", "list_strategies"),
    "register_strategy": ("selectkit.strategies", "register_strategy"),
    "stream_select": ("selectkit.stream", "stream_select"),
    "broadcast_weights": ("selectkit.weights", "broadcast_weights"),
    "al_simulate": ("selectkit.al.simulate", "simulate"),
    "al_simulate_file": ("selectkit.al.simulate", "simulate_file"),
    "al_simulate_stream": ("selectkit.al.stream_replay", "simulate_stream"),
    "al_simulate_stream_file": ("selectkit.al.stream_replay", "simulate_stream_file"),
}

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


class _Package(types.ModuleType):
    """The package's module type: importing a submodule whose name is also a public function
    (``selectkit.select``) must not replace the function with the module, as Python's import
    system does by setting the parent's attribute. The submodule stays in ``sys.modules``."""

    def __setattr__(self, name: str, value) -> None:
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        module, attr = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # the next lookup is a plain attribute
        return value
    try:  # a subpackage (selectkit.disco, selectkit.strategies, ...) not imported yet
        return importlib.import_module(f"selectkit.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"selectkit.{name}":
            raise
    raise AttributeError(f"module 'selectkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
