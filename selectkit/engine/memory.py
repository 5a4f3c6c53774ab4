"""The one place where the process's allocation policy is set (commands and workers call it).

Two defaults of the libraries cost more than the work on the 2-core benchmark machine:

- numpy asks the kernel for transparent huge pages on every array of 4 MiB or more
  (``madvise(MADV_HUGEPAGE)``). Where THP defrag is ``madvise`` (a common default) and memory
  is fragmented, each such allocation stalls in direct compaction: a fresh 470 MiB array took
  2.5-5 s to fill instead of 0.1-0.25 s, and the k-means kernels ran no faster with huge pages.
  Turned off, unless the user chose with numpy's own ``NUMPY_MADVISE_HUGEPAGE``.
- glibc serves an allocation above its mmap threshold (128 KiB until a freed mapping raises
  it) with a fresh mapping, page-faulted on first touch and unmapped when freed. Once polars
  has run, the threshold stayed low, so every 1-2 MiB temporary of a chunked numpy loop was a
  new mapping: the float64 distance pass ran 10-15x slower (0.27-0.39 s against 0.023-0.036 s
  per 131k x 256 block). The threshold is set to 32 MiB (glibc's own ceiling for its dynamic
  threshold), so chunk temporaries reuse heap memory and large arrays still map and unmap.
  Set ``MALLOC_MMAP_THRESHOLD_`` to keep your own.
"""

from __future__ import annotations

import ctypes
import os
import sys

HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"
#: allocations below this come from the heap (glibc's M_MMAP_THRESHOLD)
MMAP_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_allocations() -> dict[str, bool]:
    """Apply the policy above to this process; returns what it set ({"hugepages_off": ...,
    "mmap_threshold": ...}). Idempotent, O(1); a platform without glibc keeps its allocator."""
    done = {"hugepages_off": False, "mmap_threshold": False}
    if os.environ.get(HUGEPAGE_ENV) is None:
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:  # numpy < 2 keeps it under numpy.core
            from numpy.core.multiarray import _set_madvise_hugepage  # type: ignore[no-redef]
        _set_madvise_hugepage(False)
        done["hugepages_off"] = True
    if sys.platform.startswith("linux") and os.environ.get(MMAP_THRESHOLD_ENV) is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            # a fixed threshold also fixes the trim threshold unless set: keep freed heap
            # memory up to twice the threshold before returning it
            ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
            done["mmap_threshold"] = ok
        except (OSError, AttributeError):  # musl or another libc: leave it be
            pass
    return done
