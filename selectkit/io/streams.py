"""Open an input as a stream of bytes: files, FIFOs, ``<(...)``, stdin; compression told by content.

Every table reader opens its input as an ``Input`` so that each command sees the same bytes: gzip, bz2
and xz are recognised by their magic bytes (a ``.gz`` name is not needed, and stdin may be
compressed), a UTF-8 byte-order mark is dropped, and a truncated or corrupt archive is one clear
error naming the file. FIFOs and character devices are read once, front to back, never sized or
sought.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import sys
import zlib
from typing import BinaryIO

from selectkit.errors import SelectkitDataError
from selectkit.io.formats import STDIO

BOM = b"\xef\xbb\xbf"
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_DECOMPRESS_ERRORS = (EOFError, zlib.error, OSError, lzma.LZMAError, ValueError)


def where_of(path: str) -> str:
    """How messages name an input: 'path' in quotes, or stdin."""
    return "stdin" if path == STDIO else f"'{path}'"


def is_stream(path: str) -> bool:
    """True for stdin, a FIFO (``<(...)``, ``mkfifo``), a socket or a character device: inputs
    that can be read only once, from the front, and whose size is unknown."""
    if path == STDIO:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def compression_of(head: bytes) -> str | None:
    """Which compression ``head`` (the first bytes of an input) starts with, if any."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class _Hashing(io.RawIOBase):
    """Pass reads through from ``raw`` and hash every byte read (a stream's fingerprint)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hasher = hashlib.blake2b(digest_size=16)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hasher.update(data)
        return n


class _Guarded(io.RawIOBase):
    """Decompressed bytes whose decoding errors become one ``SelectkitDataError`` naming the file."""

    def __init__(self, inner: BinaryIO, where: str, kind: str) -> None:
        self.inner = inner
        self.where = where
        self.kind = kind

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            data = self.inner.read(len(buffer))
        except _DECOMPRESS_ERRORS as exc:
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "truncated"
            raise SelectkitDataError(
                f"{self.where} is not a complete {self.kind} file ({detail}); it may be truncated: "
                "re-create or re-download it"
            ) from None
        n = len(data)
        buffer[:n] = data
        return n


class Input:
    """An opened input: ``stream`` yields its decompressed bytes (BOM removed); ``fingerprint()``
    is the hash of the raw bytes read, for inputs that cannot be read twice."""

    def __init__(self, path: str, stdin: BinaryIO | None = None) -> None:
        self.path = path
        self.where = where_of(path)
        if path == STDIO:
            raw: BinaryIO = stdin or sys.stdin.buffer
            self._owned: BinaryIO | None = None
        else:
            raw = open(path, "rb")  # noqa: SIM115 - closed by close()
            self._owned = raw
        self._hashing = _Hashing(raw)
        buffered = io.BufferedReader(self._hashing, 1 << 20)
        self.compression = compression_of(buffered.peek(8)[:8])
        self.stream: BinaryIO = self._decompressed(buffered)
        if self.stream.peek(3)[:3] == BOM:  # type: ignore[attr-defined]
            self.stream.read(3)

    def _decompressed(self, buffered: io.BufferedReader) -> io.BufferedReader:
        if self.compression is None:
            return buffered
        opener = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}[self.compression]
        inner = (
            opener(fileobj=buffered, mode="rb") if self.compression == "gzip" else opener(buffered)
        )
        return io.BufferedReader(_Guarded(inner, self.where, self.compression), 1 << 20)

    def head(self, n: int = 64) -> bytes:
        """The first ``n`` decompressed bytes, without consuming them."""
        return self.stream.peek(n)[:n]  # type: ignore[attr-defined]

    def fingerprint(self) -> str:
        """blake2b-128 of the raw bytes read so far (the whole input once it is exhausted)."""
        return "blake2b-128:" + self._hashing.hasher.hexdigest()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Input:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sniff_format(head: bytes) -> str | None:
    """The table format that decompressed bytes ``head`` start with, when it is unambiguous."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return None
