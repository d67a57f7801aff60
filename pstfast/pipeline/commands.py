"""The commands the state machine runs: ``pipeline stage <name> ...`` and ``pipeline mark-failed ...``.

Each Batch job's ``ContainerOverrides.Command`` is one of these argument lists; the Batch
image runs it as ``pstfast <command>``, and the local runner (:mod:`pstfast.pipeline.runner`)
runs the very same list in-process through :func:`run_command`. The ``pstfast`` command
line builds its ``pipeline`` group from :func:`add_stage_arguments` and
:func:`add_mark_failed_arguments`, so the two cannot drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..errors import PstfastError, UsageError, exit_code
from ..ids import check_identifier
from .stagelog import STAGES

log = logging.getLogger(__name__)


def identifier(what: str) -> Callable[[str], str]:
    """An argparse ``type=`` that applies :func:`pstfast.ids.check_identifier`."""

    def parse(text: str) -> str:
        try:
            return check_identifier(text, what)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in its error message
    return parse


def nonnegative_int(text: str) -> int:
    """An argparse ``type=`` for a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type=`` for a whole number >= 1."""
    value = nonnegative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, got 0")
    return value


def codepage(text: str) -> int:
    """An argparse ``type=`` for a Windows code page (:func:`pstfast.config.codepage`)."""
    from .. import config

    try:
        value = config.codepage(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert value is not None
    return value


def add_stage_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``pipeline stage``: every stage takes the same ones."""
    p.add_argument("stage", choices=list(STAGES))
    p.add_argument("--pst-file-id", required=True, metavar="ID", type=identifier("pst_file_id"), help="the PST's id")
    p.add_argument("--out", required=True, metavar="ROOT", help="output root (local folder or s3:// URL)")
    p.add_argument("--project-id", metavar="P", type=identifier("project_id"),
                   help="project (default: from the manifest or pst_files)")
    p.add_argument("--source", metavar="URL", help="the PST (path or s3:// URL; extract needs it)")
    p.add_argument("--db", metavar="DSN", help="PostgreSQL DSN (default PSTFAST_DATABASE_URL, else embedded)")
    p.add_argument("--index-backend", choices=["postgres", "opensearch"], default="postgres",
                   help="index stage backend (default postgres)")
    p.add_argument("--opensearch-url", metavar="URL", help="OpenSearch endpoint for --index-backend opensearch")
    p.add_argument("--embeddings", choices=["none", "fast", "quality"],
                   help="index: also embed emails and attachment text for semantic search (default "
                        "PSTFAST_EMBEDDINGS, else none; needs pstfast[semantic] and pgvector on the server)")
    p.add_argument("--attempt", type=positive_int, metavar="N",
                   help="attempt number to record (default: previous attempt + 1)")
    p.add_argument("--codepage", metavar="CP", type=codepage,
                   help="extract: code page of ANSI strings that name none (default PSTFAST_CODEPAGE, else decided "
                        "from the file)")
    p.add_argument("--full", action="store_true",
                   help="thread / dedupe: recompute the whole project, not only what this PST touches "
                        "(audits and repairs; the result is the same)")


def add_mark_failed_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``pipeline mark-failed`` (the state machine's MarkFailed step)."""
    p.add_argument("--pst-file-id", required=True, metavar="ID", type=identifier("pst_file_id"))
    p.add_argument("--project-id", metavar="P", type=identifier("project_id"))
    p.add_argument("--out", required=True, metavar="ROOT", help="output root holding the stage manifests")
    p.add_argument("--error", default="pstfast.Failed", help="the state machine's error name")
    p.add_argument("--db", metavar="DSN", help="PostgreSQL DSN")


def stage(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Run ``pipeline stage`` from parsed arguments; return its one-line report and its stage manifest."""
    from .stage import run_stage

    outcome = run_stage(
        args.stage, pst_file_id=args.pst_file_id, out=args.out, project_id=args.project_id,
        source=args.source, db=args.db, index_backend=args.index_backend,
        opensearch_url=args.opensearch_url, attempt=args.attempt, codepage=args.codepage, full=args.full,
        embeddings=args.embeddings,
    )
    r = outcome.report
    counts = ", ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))
    text = f"stage {r.stage} {r.status} for {r.pst_file_id} (attempt {r.attempt}) in {r.seconds:.2f}s: {counts}"
    return text, dataclasses.asdict(r)


def mark_failed(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Run ``pipeline mark-failed`` from parsed arguments; return its one-line report and the reason."""
    from .stage import mark_pst_failed

    reason = mark_pst_failed(args.pst_file_id, out=args.out, error=args.error, project_id=args.project_id, db=args.db)
    return f"pst_file {args.pst_file_id} marked failed: {reason}", {"pst_file_id": args.pst_file_id, "reason": reason}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    """A parser of exactly the state machine's command lists (raises UsageError on bad ones)."""
    top = _Parser(prog="pstfast", add_help=False)
    groups = top.add_subparsers(dest="group", required=True, parser_class=_Parser)
    pipeline = groups.add_parser("pipeline", add_help=False)
    sub = pipeline.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_stage_arguments(sub.add_parser("stage", add_help=False))
    sub.choices["stage"].set_defaults(call=stage)
    add_mark_failed_arguments(sub.add_parser("mark-failed", add_help=False))
    sub.choices["mark-failed"].set_defaults(call=mark_failed)
    return top


def run_command(argv: Sequence[str]) -> int:
    """Run one state-machine command list (``["pipeline", "stage", "load", ...]``) in this
    process, as the Batch image would; return its exit code (see :func:`pstfast.errors.exit_code`)."""
    try:
        args = parser().parse_args(list(argv))
        text, _ = args.call(args)
        log.debug("%s", text)  # the stage has logged its own end: this is the command's summary
        return 0
    except PstfastError as exc:
        log.warning("pstfast %s: %s", " ".join(argv[:3]), exc)
        return exit_code(exc)
