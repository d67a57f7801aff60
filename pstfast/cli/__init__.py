"""The ``pstfast`` command line: a few lines per command over the library.

Commands: the user's (:mod:`.ingest`: run, extract, search, submit, worker, inspect,
warm-up), ``db`` (:mod:`.database`), ``pipeline`` (:mod:`.pipeline`: what the Batch jobs
run) and ``dev`` (:mod:`.dev`: test PSTs and rollout tools).

Exit codes (:func:`pstfast.errors.exit_code`): 0 success; 2 bad arguments or a missing
extra; 65 bad input (not a PST, corrupt, checksum mismatch); 75 transient failure
(storage, database, a worker killed): retry later; 130/143 interrupted/terminated; 1 a bug.
Errors print one line, never a traceback (``PSTFAST_DEBUG=1`` shows one).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from .. import config
from .._version import __version__
from ..errors import EXIT_BUG, EXIT_TERMINATED, EXIT_USAGE, PstfastError, exit_code
from ..log import configure
from . import database, dev, ingest, pipeline
from .common import common_options

log = logging.getLogger("pstfast.cli")

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``pstfast`` command."""
    common = common_options()
    parser = argparse.ArgumentParser(prog="pstfast", parents=[common],
                     description="Fast, staged ingestion of Outlook PST files into PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"pstfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    ingest.register(sub, common)
    database.register(sub, common)
    pipeline.register(sub, common)
    dev.register(sub, common)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(EXIT_TERMINATED)  # unwinds like ^C: pools shut down, scratch removed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pstfast`` console script."""
    args = build_parser().parse_args(argv)
    verbosity = -1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0)
    fmt = getattr(args, "log_format", None) or config.env("LOG_FORMAT") or "text"
    if fmt not in ("text", "json"):
        print(f"pstfast: error: PSTFAST_LOG_FORMAT={fmt!r}: choose text or json", file=sys.stderr)
        return EXIT_USAGE
    restore = configure(verbosity, fmt)
    try:
        return _dispatch(args)
    finally:
        restore()


def _dispatch(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    if threading.current_thread() is threading.main_thread():  # only there may handlers be set
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return handler(args)
    except SystemExit as exc:
        if exc.code != EXIT_TERMINATED:
            raise
        log.error("terminated")
        return EXIT_TERMINATED
    except KeyboardInterrupt as exc:
        log.error("interrupted")
        return exit_code(exc)
    except PstfastError as exc:
        if os.environ.get("PSTFAST_DEBUG"):
            raise
        log.error("%s: error: %s", args.command, exc)
        return exit_code(exc)
    except Exception as exc:  # a bug: one line, not a traceback
        if os.environ.get("PSTFAST_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        log.error("%s: unexpected error (a bug; please report it): %s: %s (PSTFAST_DEBUG=1 shows the traceback)",
                  args.command, type(exc).__name__, first)
        return EXIT_BUG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
