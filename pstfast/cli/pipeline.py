"""``pstfast pipeline stage|mark-failed``: what each Batch job of the state machine runs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..pipeline import commands
from .common import emit

if TYPE_CHECKING:
    from .common import Subcommands


def _stage(args: argparse.Namespace) -> int:
    emit(args, *commands.stage(args))
    return 0


def _mark_failed(args: argparse.Namespace) -> int:
    emit(args, *commands.mark_failed(args))
    return 0


def register(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """Add ``pipeline`` and its two commands."""
    p = sub.add_parser("pipeline", parents=[common], help="one step of the state machine (what each Batch job runs)",
                       description="The commands pst_ingest_v2 runs, one per Batch job; `pstfast run` runs them too.")
    steps = p.add_subparsers(dest="step", metavar="STEP", required=True)
    q = steps.add_parser(
        "stage", parents=[common], help="run one stage (extract, load, thread, dedupe, index) for one PST",
        description="Run one stage for one PST, with its stage manifest, log and stage_runs row. "
                    "Every stage takes the same arguments.")
    commands.add_stage_arguments(q)
    q.add_argument("--json", action="store_true", help="print the result as one JSON line")
    q.set_defaults(handler=_stage)
    q = steps.add_parser("mark-failed", parents=[common],
                         help="set pst_files.status = failed (the state machine's MarkFailed step)")
    commands.add_mark_failed_arguments(q)
    q.add_argument("--json", action="store_true", help="print the result as one JSON line")
    q.set_defaults(handler=_mark_failed)
