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

from selectkit._version import __version__
from selectkit.errors import (
    SelectkitDataError,
    SelectkitError,
    SelectkitInternalError,
    SelectkitMismatchError,
    SelectkitUsageError,
)

# Every other name loads its module on first use (PEP 562): `import selectkit` and each CLI
# command then pay only for what they touch (polars, faiss, scikit-learn take seconds together).
_LAZY = {
    "Columns": ("selectkit.pool", "Columns"),
    "HashingEmbedder": ("selectkit.embed", "HashingEmbedder"),
    "Param": ("selectkit.strategies", "Param"),
    "Pool": ("selectkit.pool", "Pool"),
    "Selection": ("selectkit.strategies", "Selection"),
    "al_simulate": ("selectkit.al.simulate", "simulate"),
    "al_simulate_file": ("selectkit.al.simulate", "simulate_file"),
    "apply_manifest": ("selectkit.apply", "apply_manifest"),
    "build_manifest": ("selectkit.select", "build_manifest"),
    "cluster_file": ("selectkit.cluster", "cluster_file"),
    "derive_rng": ("selectkit.rng", "derive_rng"),
    "disco": ("selectkit.disco", None),
    "disco_evaluate_files": ("selectkit.disco", "evaluate_files"),
    "disco_fit_files": ("selectkit.disco", "fit_files"),
    "disco_predict_files": ("selectkit.disco", "predict_files"),
    "embed_file": ("selectkit.embed", "embed_file"),
    "embed_texts": ("selectkit.embed", "embed_texts"),
    "get_strategy": ("selectkit.strategies", "get_strategy"),
    "inspect_file": ("selectkit.inspect", "inspect_file"),
    "kmeans": ("selectkit.cluster", "kmeans"),
    "list_strategies": ("selectkit.strategies", "list_strategies"),
    "load_pool": ("selectkit.pool", "load_pool"),
    "make_embedder": ("selectkit.embed", "make_embedder"),
    "parse_budget": ("selectkit.budget", "parse_budget"),
    "read_provenance": ("selectkit.io", "read_provenance"),
    "read_table": ("selectkit.io", "read_table"),
    "register_strategy": ("selectkit.strategies", "register_strategy"),
    "run_demo": ("selectkit.demo", "run_demo"),
    "scores_file": ("selectkit.dynamics", "scores_file"),
    "scores_for_pool": ("selectkit.dynamics", "scores_for_pool"),
    "select": ("selectkit.select", "select"),
    "select_files": ("selectkit.select", "select_files"),
    "training_dynamics": ("selectkit.dynamics", "training_dynamics"),
    "write_table": ("selectkit.io", "write_table"),
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
    "apply_manifest",
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
    "list_strategies",
    "load_pool",
    "make_embedder",
    "parse_budget",
    "read_provenance",
    "read_table",
    "register_strategy",
    "run_demo",
    "scores_file",
    "scores_for_pool",
    "select",
    "select_files",
    "training_dynamics",
    "write_table",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'selectkit' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
