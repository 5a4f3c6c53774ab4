"""DSIR (Xie et al., NeurIPS 2023) at corpus scale: hashed n-gram features (``features``), raw and
target distributions (``model``), per-batch weighing in worker processes (``weigh``,
``parallel``), exact streaming selection (``resample``), inputs (``sources``) and the two-pass
driver (``pipeline``). The ``dsir`` strategy (``selectkit.strategies.dsir``) is the entry point;
see docs/dsir.md.
"""

from selectkit.dsir.model import DsirModel
from selectkit.dsir.pipeline import DsirResult, DsirSettings, run_dsir

__all__ = ["DsirModel", "DsirResult", "DsirSettings", "run_dsir"]
