"""The two bag-of-n-grams distributions DSIR compares, and the per-bucket log-importance ratio.

``raw_counts`` (B,) are n-gram counts summed over the raw corpus; ``target_counts`` (J, B) over
each target. The target distribution is smoothed: p_j = (counts_j + s) / (sum_j + s * B); the raw
one is not (every bucket a raw document can hit has been counted when the raw corpus was fitted).
The log-ratio per bucket is w_j = log(p_j + 1e-8) - log(q + 1e-8), exactly the reference
package's (with s = 0, its behaviour); a document's log-importance weight is sum_b c_b(x) w_j[b].

Models are saved as ``.npz`` holding plain arrays and a JSON header (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selectkit.errors import SelectkitError, param_option
from selectkit.io.write import atomic_path

EPS = 1e-8
FORMAT = "selectkit-dsir-model/1"


@dataclass
class DsirModel:
    """Fitted raw and target n-gram counts plus the feature settings that produced them."""

    ngrams: int
    buckets: int
    hash_name: str
    smoothing: float
    raw_counts: np.ndarray
    target_counts: np.ndarray
    target_names: list[str] = field(default_factory=list)
    target_tokens: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        return self.target_counts.shape[0]

    def raw_probs(self) -> np.ndarray:
        """q: the raw corpus's n-gram distribution (B,)."""
        total = self.raw_counts.sum()
        if total <= 0:
            raise SelectkitError("the raw corpus has no tokens; every input document is empty")
        return self.raw_counts / total

    def target_probs(self) -> np.ndarray:
        """p_j: each target's smoothed n-gram distribution (J, B)."""
        counts = self.target_counts + self.smoothing
        return counts / counts.sum(axis=1, keepdims=True)

    def log_ratio(self) -> np.ndarray:
        """w_j[b] = log(p_j[b] + 1e-8) - log(q[b] + 1e-8), float64 (J, B)."""
        return np.log(self.target_probs() + EPS) - np.log(self.raw_probs() + EPS)[None, :]

    def fingerprints(self) -> dict[str, Any]:
        """blake2b-64 fingerprints of the fitted counts (raw, and each target), for provenance."""

        def fp(a: np.ndarray) -> str:
            return hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=8).hexdigest()

        return {"raw": fp(self.raw_counts), "targets": [fp(t) for t in self.target_counts]}

    def header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "ngrams": self.ngrams,
            "buckets": self.buckets,
            "hash": self.hash_name,
            "smoothing": self.smoothing,
            "target_names": self.target_names,
        }

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` (.npz, atomically); about 8 * B * (J + 1) bytes."""
        header = np.frombuffer(json.dumps(self.header()).encode(), dtype=np.uint8)
        tokens = self.target_tokens if self.target_tokens is not None else np.zeros(0)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                header=header,
                raw_counts=self.raw_counts,
                target_counts=self.target_counts,
                target_tokens=np.asarray(tokens, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | Path) -> DsirModel:
        """Read a model written by ``save``; a clear error for anything else."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                raw, target = data["raw_counts"], data["target_counts"]
                tokens = data["target_tokens"]
        except (OSError, ValueError, KeyError) as exc:
            raise SelectkitError(
                f"'{path}' is not a DSIR model written by {param_option('save_model')} ({exc}); "
                "re-create it"
            ) from None
        if header.get("format") != FORMAT:
            raise SelectkitError(
                f"'{path}' is not a {FORMAT} file; re-create it with {param_option('save_model')}"
            )
        return cls(
            ngrams=int(header["ngrams"]),
            buckets=int(header["buckets"]),
            hash_name=str(header["hash"]),
            smoothing=float(header["smoothing"]),
            raw_counts=raw.astype(np.float64),
            target_counts=target.astype(np.float64),
            target_names=list(header.get("target_names", [])),
            target_tokens=tokens if tokens.size else None,
        )


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats over the buckets where p > 0, with q floored by 1e-8 as in the weights."""
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask] + EPS))))
