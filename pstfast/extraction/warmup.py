"""``pstfast warm-up``: compile pstfast's numba code into numba's on-disk cache.

Once per install or image (the Batch image does it at build time): every extract after it
reads with the compiled PST reader and starts with warm kernels.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def warm_up() -> dict[str, float]:
    """Compile (or load from numba's on-disk cache) the kernels and the compiled PST reader;
    return the seconds each took."""
    from ..pst import compiled
    from . import kernels

    if not (kernels.cache_ready() and compiled.cache_ready()):
        log.info("compiling numba kernels and the PST reader into numba's cache (first run only: 30-120 s)")
    seconds = {"kernels": kernels.warm_up(), "reader": compiled.warm_up()}
    log.info("compiled code ready: kernels %.2f s, PST reader %.2f s", seconds["kernels"], seconds["reader"])
    return seconds
