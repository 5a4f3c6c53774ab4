"""The one place where the process's large-allocation policy is set.

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more
(``madvise(MADV_HUGEPAGE)``). Where the kernel's THP defrag setting is ``madvise`` (a common
default) and memory is fragmented, each such allocation then stalls in direct compaction: on
the 2-core benchmark machine a fresh 470 MiB array took 2.5-5 s to fill instead of 0.1-0.25 s
(benchmarks/README.md, "huge pages"), and the k-means kernels ran no faster with huge pages.
selectkit's commands therefore turn the request off, unless the user chose with numpy's own
``NUMPY_MADVISE_HUGEPAGE`` variable.
"""

from __future__ import annotations

import os

HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"


def use_plain_pages() -> bool:
    """Stop numpy asking for huge pages in this process (unless $NUMPY_MADVISE_HUGEPAGE is set,
    which numpy honours itself). Returns whether huge pages are requested after the call. O(1)."""
    if os.environ.get(HUGEPAGE_ENV) is not None:
        return os.environ[HUGEPAGE_ENV] not in ("0", "")
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2 keeps it under numpy.core
        from numpy.core.multiarray import _set_madvise_hugepage  # type: ignore[no-redef]
    _set_madvise_hugepage(False)
    return False
