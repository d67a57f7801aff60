"""The extract's process pool: where its workers come from, started as early as possible.

Workers are forked from a fork server that has already imported the worker code, numpy,
pyarrow and numba's cached compiled code (``pstfast.extraction.forkserver``): ~0.7-1 s of imports paid
once, not per worker. The server starts in the background, so whoever knows early that an
extract will run with several workers and has slow work to do first (``pstfast run``
hashing the job's PST, the extract downloading an S3 input) calls :func:`prestart`, and
those imports overlap that work instead of delaying the workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext

log = logging.getLogger(__name__)

_PRELOAD = ["pstfast.extraction.forkserver"]


def context() -> BaseContext:
    """The multiprocessing context the extract's pool uses: the preloading fork server
    where the platform has one, else spawn (each worker then imports everything itself)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    The fork server calls it (its parent: the extract's process) and so does every worker
    (theirs: the fork server): a SIGKILL of the extract, which runs no handler, then takes
    the whole tree with it instead of leaving workers reading a PST for nobody. Elsewhere a
    no-op. The parent must be the thread that started the server: prestart runs on the
    caller's thread, the extract's main thread.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("PR_SET_PDEATHSIG failed (errno %d): extract workers may outlive a killed extract",
                    ctypes.get_errno())
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def stop(pool: ProcessPoolExecutor) -> None:
    """Stop *pool*'s workers now (an interrupted extract): pending tasks cancelled, running
    ones killed rather than waited for; the processes are reaped."""
    processes = list(getattr(pool, "_processes", {}).values())  # CPython's executor keeps them there
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(10)


def prestart(workers: int) -> bool:
    """Start the fork server in the background now when an extract with *workers* processes
    will want it (more than one); it is reused by every later pool of this process. True
    when it is running (started now or before). Returns at once: the server imports on its own."""
    if workers < 2 or context().get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return True
