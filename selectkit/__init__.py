"""selectkit: data selection and active learning for real corpora.

Python API (every CLI command is a thin shell over these)::

    import selectkit as sk
    pool = sk.load_pool(["emb.parquet"])               # or sk.Pool.from_arrays(X)
    manifest, selection = sk.select(pool, "kcenter", budget=200, seed=0)
    preds = sk.disco.load_predictions("preds.parquet")  # DISCO: see docs/disco.md
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
from selectkit.embed import HashingEmbedder, embed_file, embed_texts, make_embedder
from selectkit.errors import SelectkitError, SelectkitUsageError
from selectkit.inspect import inspect_file
from selectkit.io import read_provenance, read_table, write_table
from selectkit.pool import Columns, Pool, load_pool
from selectkit.rng import derive_rng
from selectkit.select import build_manifest, select, select_files
from selectkit.strategies import Param, Selection, get_strategy, list_strategies, register_strategy

__all__ = [
    "Columns",
    "HashingEmbedder",
    "Param",
    "Pool",
    "Selection",
    "SelectkitError",
    "SelectkitUsageError",
    "__version__",
    "apply_manifest",
    "build_manifest",
    "derive_rng",
    "disco",
    "embed_file",
    "embed_texts",
    "get_strategy",
    "inspect_file",
    "list_strategies",
    "load_pool",
    "make_embedder",
    "parse_budget",
    "read_provenance",
    "read_table",
    "register_strategy",
    "select",
    "select_files",
    "write_table",
]
