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


# ---------------------------------------------------------------------------------------------
# Per-row randomness from (seed, row id): the same row gets the same variate wherever it sits in
# the input, so a shuffled or re-sharded pool draws the same values for the same rows.
#
# The hash is splitmix64's finaliser (Steele, Lea & Flood 2014) applied to 64-bit words of the
# id's canonical bytes: integers as their int64 two's-complement value, strings as UTF-8, read
# little-endian. It is defined here on uint64 arithmetic alone, so it gives the same bits on every
# platform, numpy, polars and Python version (unlike polars' own hash, which may change).

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STRING_TAG = np.uint64(0x5354524E47000000)  # keeps string ids from colliding with int ids


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a uint64 array: a bijection with full avalanche."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def derive_salt(seed: int, *keys: str | int) -> int:
    """A 64-bit salt for ``id_hashes`` from ``seed`` and the purpose ``keys``; O(1)."""
    return int(derive_rng(seed, "salt", *keys).integers(0, 1 << 64, dtype=np.uint64))


def salt_of(rng: np.random.Generator) -> int:
    """A 64-bit salt drawn from ``rng`` (a strategy's seeded generator): per-row variates then
    depend on the seed and the purpose that made ``rng``, not on any row's position."""
    return int(rng.integers(0, 1 << 64, dtype=np.uint64))


def id_hashes(ids: object, salt: int) -> np.ndarray:
    """uint64 hash of each id with ``salt``: integer ids (any width) or string ids, as a polars
    Series, a numpy array or a list. Distinct integer ids never collide (the hash is a bijection of
    the int64 value); string ids collide with probability ~n^2 / 2^65. Vectorised: O(n) for
    integers, O(total bytes) for strings, memory O(n + 16 MiB)."""
    import polars as pl

    series = ids if isinstance(ids, pl.Series) else pl.Series(values=ids)
    salt64 = np.uint64(salt % (1 << 64))
    if series.dtype.is_integer():
        if series.dtype == pl.UInt64:
            words = series.to_numpy().astype(np.uint64, copy=True)
        else:  # every signed or narrower id is its int64 value, whatever column type holds it
            words = series.cast(pl.Int64).to_numpy().astype(np.int64).view(np.uint64).copy()
        words ^= salt64
        return _mix64(_mix64(words) + _GOLDEN)
    if series.dtype == pl.String:
        return _string_hashes(series, salt64)
    raise TypeError(f"ids must be integers or strings to be hashed, not {series.dtype}")


def _string_hashes(series: object, salt64: np.uint64) -> np.ndarray:
    """``id_hashes`` of UTF-8 ids: each id's bytes, zero-padded to whole 64-bit words, absorbed
    word by word (h = mix(h ^ word)), then its byte length (so padding cannot alias). Reads the
    Arrow buffers of the column directly: no Python object per row."""
    import pyarrow as pa

    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    _validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    data = np.concatenate((raw[: offsets[-1]], np.zeros(8, np.uint8)))  # 8 spare bytes to read
    starts, lengths = offsets[:-1], np.diff(offsets)
    # every 8-byte window of the data, without a copy: row i's word j is window starts[i] + 8 j
    windows = np.lib.stride_tricks.as_strided(data, shape=(data.size - 7, 8), strides=(1, 1))
    byte_pos = np.arange(8, dtype=np.int64)
    h = np.full(starts.size, salt64 ^ _STRING_TAG, dtype=np.uint64)
    for j in range(int((lengths.max(initial=0) + 7) // 8)):  # a loop over 8-byte words
        live = np.flatnonzero(lengths > 8 * j)  # finished rows keep their hash
        chunk = windows[starts[live] + 8 * j]
        chunk = np.where(byte_pos[None, :] < (lengths[live] - 8 * j)[:, None], chunk, 0)
        word = np.ascontiguousarray(chunk, dtype=np.uint8).view("<u8")[:, 0].astype(np.uint64)
        h[live] = _mix64(h[live] ^ word)
    h ^= lengths.astype(np.uint64)
    return _mix64(_mix64(h) + _GOLDEN)


def id_uniforms(ids: object, salt: int) -> np.ndarray:
    """Float64 uniform variates in the open interval (0, 1), one per id, from ``id_hashes``: the
    top 53 bits, centred in their cell so neither 0 nor 1 occurs (safe under log)."""
    bits = id_hashes(ids, salt) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def id_gumbels(ids: object, salt: int) -> np.ndarray:
    """Standard Gumbel variates, one per id (``-log(-log(u))`` of ``id_uniforms``)."""
    return -np.log(-np.log(id_uniforms(ids, salt)))


def smallest_keys(keys: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` smallest ``keys``, smallest first; O(n + count log count).

    Hashes of distinct ids are distinct for integer ids and almost surely for strings; a tie is
    broken by position, which callers make canonical (``select`` runs on the rows in id order).
    """
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    if count >= keys.size:
        return np.argsort(keys, kind="stable")
    part = np.argpartition(keys, count - 1)[:count]
    bound = keys[part].max()
    part = np.flatnonzero(keys <= bound)  # every row tied with the bound: resolve ties exactly
    return part[np.argsort(keys[part], kind="stable")][:count]
