"""The extract's process pool: where its workers come from, started as early as possible.

Workers are forked from a fork server that has already imported the worker code, numpy,
pyarrow and numba's cached compiled code (``pstfast.extraction.forkserver``): ~0.7-1 s of imports paid
once, not per worker. The server starts in the background, so whoever knows early that an
extract will run with several workers and has slow work to do first (``pstfast run``
hashing the job's PST, the extract downloading an S3 input) calls :func:`prestart`, and
those imports overlap that work instead of delaying the workers.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

_PRELOAD = ["pstfast.extraction.forkserver"]


def context() -> BaseContext:
    """The multiprocessing context the extract's pool uses: the preloading fork server
    where the platform has one, else spawn (each worker then imports everything itself)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def prestart(workers: int) -> bool:
    """Start the fork server in the background now when an extract with *workers* processes
    will want it (more than one); it is reused by every later pool of this process. True
    when it is running (started now or before). Returns at once: the server imports on its own."""
    if workers < 2 or context().get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True
