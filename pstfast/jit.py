"""numba's on-disk cache: whether pstfast's compiled code is in it.

Two sets of compiled code: the per-row kernels (:mod:`pstfast.extraction.kernels`) and the PST read
path (:mod:`pstfast.pst.compiled`); :mod:`pstfast.extraction.warmup` compiles both. numba keeps both in its on-disk cache
(``NUMBA_CACHE_DIR``, else ``__pycache__`` next to the source). The kernels compile on
first use by a large batch; the read path only ever runs from the cache, since compiling
it (15-60 s) costs more than it saves on one PST of 100,000 messages. Warming up once per
install or image (the Batch image does it at build time) makes every extract use both.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any


def in_cache(dispatchers: Iterable[Any]) -> bool:
    """True when every ``@njit(cache=True)`` function given is in numba's on-disk cache, fresh
    (this numba, this source): calling it then loads (tenths of a second), never compiles."""
    try:
        # the index numba itself reads: empty when absent, from another numba or stale
        return all(d._cache._cache_file._load_index() for d in dispatchers)
    except (AttributeError, OSError, EOFError, ValueError, pickle.UnpicklingError):
        return False  # numba's cache internals moved, or a damaged index: treated as not cached
