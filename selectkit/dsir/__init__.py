"""DSIR (Xie et al., NeurIPS 2023) at corpus scale: hashed n-gram features (``features``), raw and
target distributions (``model``), per-batch weighing (``weigh``), exact streaming selection
(``resample``), shards and their readers (``sources``), the two passes as shard kernels that any
engine runs (``kernels``), the driver's exact merge of their candidates (``merge``, ``store``)
and the two-pass driver (``pipeline``). The ``dsir`` strategy (``selectkit.strategies.dsir``) is the entry point;
see docs/dsir.md.
"""

from selectkit.dsir.model import DsirModel
from selectkit.dsir.pipeline import DsirResult, DsirSettings, run_dsir

__all__ = ["DsirModel", "DsirResult", "DsirSettings", "run_dsir"]
