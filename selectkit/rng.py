"""The one place where randomness is derived.

Every random draw in selectkit comes from a numpy ``Generator`` made here from the user's seed
and a tuple of string/int keys that name the purpose (``("select", "kcenter")``,
``("embed", "projection")``, ``("shard", 3)``). Different purposes get independent streams, and a
stream does not depend on thread or worker counts.
"""

from __future__ import annotations

import hashlib

import numpy as np

DEFAULT_SEED = 0


def _key_to_int(key: str | int) -> int:
    if isinstance(key, int):
        if key < 0:
            raise ValueError(f"rng keys must be non-negative, got {key}")
        return key
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def derive_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """Return a PCG64 generator for ``seed`` and the purpose ``keys``; O(1)."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    entropy = [seed, *(_key_to_int(k) for k in keys)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
