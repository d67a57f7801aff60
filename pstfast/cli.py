"""The ``pstfast`` command line: a few lines per command over the library.

Exit codes: 0 success; 2 bad arguments; 65 bad input (not a PST, corrupt, checksum
mismatch); 75 transient failure (storage, database): retry later; 1 anything else.
Errors print one line, never a traceback (set ``PSTFAST_DEBUG=1`` to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import InputError, PstfastError, TransientError, UsageError

EXIT_USAGE = 2
EXIT_INPUT = 65
EXIT_TRANSIENT = 75

Handler = Callable[[argparse.Namespace], int]


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _nonnegative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, got 0")
    return value


# --- commands ---------------------------------------------------------------------------


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synthetic import SynthOptions, synth

    options = SynthOptions(
        messages=args.messages,
        seed=args.seed,
        folders=args.folders,
        attachment_rate=args.attachment_rate,
        large_attachment_every=args.large_attachment_every,
        body_kib=args.body_kib,
        ids_by_folder=args.ids_by_folder,
    )
    result = synth(args.out, options=options, truth=args.truth, damaged=args.damaged)
    print(result.summary())
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_pst

    report = inspect_pst(args.pst, readpst=args.readpst)
    print(report.render())
    return 0


def _cmd_damage(args: argparse.Namespace) -> int:
    from .faults import damage

    for variant in damage(args.pst, args.out_dir, kinds=args.kind):
        print(f"{variant.kind}: {variant.path}  ({variant.description})")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from .extractor import extract

    m = extract(args.source, args.out, pst_file_id=args.pst_file_id, project_id=args.project_id,
                workers=args.workers, scratch=args.scratch, reader=args.reader)
    c = m.counts
    print(f"extracted {m.pst_file_id}: {c['emails']} emails, {c['attachments']} attachments, "
          f"{c['errors']} errors, {c['folders']} folders in {m.timings['total']:.2f}s "
          f"({m.workers} workers, {m.shards['count']} shards)")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    from .stages import run_stage

    outcome = run_stage(
        args.stage, pst_file_id=args.pst_file_id, out=args.out, project_id=args.project_id,
        source=args.source, db=args.db, index_backend=args.index_backend,
        opensearch_url=args.opensearch_url, attempt=args.attempt,
    )
    r = outcome.report
    counts = ", ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))
    print(f"stage {r.stage} {r.status} for {r.pst_file_id} (attempt {r.attempt}) in {r.seconds:.2f}s: {counts}")
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from .migrations import migrate

    result = migrate(args.db)
    print(f"applied {len(result.applied)} migration(s){': ' + ', '.join(result.applied) if result.applied else ''};"
          f" {len(result.current)} already current")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .searcher import search

    hits = search(args.query, args.project, args.db, limit=args.limit)
    for hit in hits:
        sent = hit.sent_at.isoformat() if hit.sent_at else "-"
        print(f"{hit.email_id}  {sent}  {hit.sender_email or '-'}  {hit.subject or ''}")
    print(f"{len(hits)} match(es)", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import demo_source, exit_code, result_json, run

    if args.demo == bool(args.source):
        raise UsageError("give a SOURCE PST or --demo (not both)")
    source = demo_source() if args.demo else args.source
    log = (lambda msg: print(msg, file=sys.stderr)) if args.verbose else None
    result = run(source, out=args.out, db=args.db, project_id=args.project_id, pst_file_id=args.pst_file_id, log=log)
    print(result_json(result) if args.json else result.summary())
    return exit_code(result)


def _cmd_mark_failed(args: argparse.Namespace) -> int:
    from .runner import mark_failed

    reason = mark_failed(args.pst_file_id, out=args.out, error=args.error, project_id=args.project_id, db=args.db)
    print(f"pst_file {args.pst_file_id} marked failed: {reason}")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from .queue import submit

    r = submit(args.project_id, args.source, queue_url=args.queue, pst_file_id=args.pst_file_id, db=args.db)
    if r.message_id is None:
        print(f"project {r.project_id} is routed to the {r.route} pipeline (pipeline_routes): nothing sent")
        return 0
    print(f"submitted pst_file_id={r.pst_file_id} project={r.project_id} message={r.message_id}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from .queue import worker

    stats = worker(args.queue, out=args.out, db=args.db, max_jobs=args.max_jobs, idle_exit=args.idle_exit,
                   dlq_url=args.dlq)
    print(f"worker: {stats.received} received, {stats.succeeded} succeeded, {stats.failed} failed (on the DLQ), "
          f"{stats.released} left for redelivery")
    return 0 if stats.released == 0 else EXIT_TRANSIENT


def _cmd_perf_dashboard(args: argparse.Namespace) -> int:
    # the dashboard lives in the source checkout's perf/ (not shipped in the wheel)
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "perf" / "dashboard.py").exists():
        raise UsageError(f"perf-dashboard needs a source checkout: no perf/dashboard.py under {root}")
    sys.path.insert(0, str(root))
    from perf.dashboard import main as dashboard_main

    argv = [] if args.results is None else ["--results", args.results]
    return dashboard_main(argv + ([] if args.out is None else ["--out", args.out]))


def _cmd_warm_up(args: argparse.Namespace) -> int:
    from .jit import warm_up

    seconds = warm_up()
    print(f"pstfast warm-up: compiled code ready in numba's cache (kernels {seconds['kernels']:.2f} s, "
          f"PST reader {seconds['reader']:.2f} s)")
    return 0


def _cmd_shadow(args: argparse.Namespace) -> int:
    from .shadow import shadow

    report = shadow(args.source, v2_prefix=args.v2_out, workers=args.workers)
    print(report.render())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``pstfast`` command."""
    parser = argparse.ArgumentParser(
        prog="pstfast",
        description="Fast, staged ingestion of Outlook PST files into PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"pstfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "synth",
        help="write a deterministic synthetic Unicode PST (with an optional ground truth)",
        description="Write a synthetic Unicode PST from a seed: same seed, same bytes.",
    )
    p.add_argument("out", metavar="OUT.pst", help="PST file to write")
    p.add_argument("--messages", type=_nonnegative_int, default=200, help="top-level messages (default 200)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--folders", type=_positive_int, default=None, help="user folders (default: grows with --messages)")
    p.add_argument("--attachment-rate", type=float, default=0.3, help="share of messages with attachments (default 0.3)")
    p.add_argument(
        "--large-attachment-every", type=_nonnegative_int, default=500,
        help="one >1 MB attachment every N messages (0: none; default 500)",
    )
    p.add_argument("--body-kib", type=_nonnegative_int, default=2, help="typical body size in KiB (default 2)")
    p.add_argument(
        "--ids-by-folder", action="store_true",
        help="message node ids in a block per folder, not in arrival order as Outlook's: libpff and readpst "
             "open big files fast",
    )
    p.add_argument("--truth", metavar="OUT.json", help="also write the ground truth as JSON")
    p.add_argument(
        "--damaged", metavar="DIR",
        help="also write damaged variants (truncated, flipped data block, broken B-tree page) into DIR",
    )
    p.set_defaults(handler=_cmd_synth)

    p = sub.add_parser("inspect", help="summarise a PST: folders, messages, attachments (via libpff)")
    p.add_argument("pst", help="PST file")
    p.add_argument("--readpst", action="store_true", help="cross-check the counts with readpst")
    p.set_defaults(handler=_cmd_inspect)

    p = sub.add_parser("damage", help="derive damaged variants of a good PST for reliability tests")
    p.add_argument("pst", help="a good PST file")
    p.add_argument("out_dir", help="folder to write the variants into")
    p.add_argument(
        "--kind", action="append", choices=["truncated", "flipped_block", "broken_btree"],
        help="variant to write (repeatable; default all)",
    )
    p.set_defaults(handler=_cmd_damage)

    p = sub.add_parser(
        "extract",
        help="extract one PST into NDJSON + CSV + Parquet + attachments + manifest",
        description="Extract one PST (local path or s3:// URL) into ROOT/pst-v2/<pst_file_id>/.",
    )
    p.add_argument("source", metavar="SOURCE", help="PST file: local path or s3:// URL")
    p.add_argument("--out", required=True, metavar="ROOT", help="output root: local folder or s3:// URL")
    p.add_argument("--pst-file-id", metavar="ID", help="default: first 16 hex digits of the input's sha256")
    p.add_argument("--project-id", metavar="P", help="project id written into every row")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="worker processes (default: CPU count)")
    p.add_argument("--scratch", metavar="DIR", help="scratch folder for parts and S3 downloads")
    p.add_argument("--reader", choices=["pstfast", "libpff"],
                   help="what reads the items: pstfast's own reader (default, or PSTFAST_READER), or libpff "
                        "(slower, the same output: a second opinion)")
    p.set_defaults(handler=_cmd_extract)

    p = sub.add_parser(
        "stage",
        help="run one pipeline stage for one PST (what each Batch job runs)",
        description="Run one stage (extract, load, thread, dedupe, index) for one PST, with its "
        "stage manifest, log and stage_runs row. Every stage takes the same arguments.",
    )
    p.add_argument("stage", choices=["extract", "load", "thread", "dedupe", "index"])
    p.add_argument("--pst-file-id", required=True, metavar="ID", help="the PST's id")
    p.add_argument("--out", required=True, metavar="ROOT", help="output root (local folder or s3:// URL)")
    p.add_argument("--project-id", metavar="P", help="project (default: from the manifest or pst_files)")
    p.add_argument("--source", metavar="URL", help="the PST (path or s3:// URL; extract needs it)")
    p.add_argument("--db", metavar="DSN", help="PostgreSQL DSN (default PSTFAST_DATABASE_URL, else embedded)")
    p.add_argument("--index-backend", choices=["postgres", "opensearch"], default="postgres",
                   help="index stage backend (default postgres)")
    p.add_argument("--opensearch-url", metavar="URL", help="OpenSearch endpoint for --index-backend opensearch")
    p.add_argument("--attempt", type=_positive_int, metavar="N",
                   help="attempt number to record (default: previous attempt + 1)")
    p.set_defaults(handler=_cmd_stage)

    p = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    q = db_sub.add_parser("migrate", help="apply the numbered schema migrations in sql/")
    q.add_argument("--db", metavar="DSN", help="PostgreSQL DSN (default PSTFAST_DATABASE_URL, else embedded)")
    q.set_defaults(handler=_cmd_db)

    p = sub.add_parser("search", help="full-text search over a project's loaded emails")
    p.add_argument("query", help='web-search syntax: words, "a phrase", -exclude, or')
    p.add_argument("--project", required=True, metavar="P", help="project id")
    p.add_argument("--db", metavar="DSN", help="PostgreSQL DSN (default PSTFAST_DATABASE_URL, else embedded)")
    p.add_argument("--limit", type=_positive_int, default=20, help="most matches to print (default 20)")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser(
        "run", help="run the whole pipeline on one PST on this machine (same state machine as AWS)",
        description="extract -> load -> thread -> dedupe -> index, with the retry policy of pst_ingest_v2.",
    )
    p.add_argument("source", nargs="?", help="PST path or s3:// URL")
    p.add_argument("--demo", action="store_true", help="run on a writer-made demo PST (written on first use)")
    p.add_argument("--out", help="output root (default: PSTFAST_OUT or <PSTFAST_HOME>/out)")
    p.add_argument("--db", help="PostgreSQL DSN (default: PSTFAST_DATABASE_URL or the embedded server)")
    p.add_argument("--project-id", help="project (default: from project_<id>/pst/... or 'local')")
    p.add_argument("--pst-file-id", help="pst_file_id (default: from the storage layout or the source URL)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.add_argument("-v", "--verbose", action="store_true", help="print each stage command")
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("mark-failed", help="set pst_files.status = failed (the state machine's MarkFailed step)")
    p.add_argument("--pst-file-id", required=True)
    p.add_argument("--project-id")
    p.add_argument("--out", required=True, help="output root holding the stage manifests")
    p.add_argument("--error", default="pstfast.Failed", help="the state machine's error name")
    p.add_argument("--db", help="PostgreSQL DSN")
    p.set_defaults(handler=_cmd_mark_failed)

    p = sub.add_parser("submit", help="send a PST ingest job to the pst_ingest SQS queue")
    p.add_argument("--queue", required=True, help="queue URL")
    p.add_argument("--project-id", required=True)
    p.add_argument("--source", required=True, help="s3://<docs-bucket>/project_<id>/pst/<pst_file_id>/<name>.pst")
    p.add_argument("--pst-file-id", help="default: from the source's storage layout")
    p.add_argument("--db", help="database holding pipeline_routes (default: PSTFAST_DATABASE_URL; none: v2)")
    p.set_defaults(handler=_cmd_submit)

    p = sub.add_parser("worker", help="consume the pst_ingest queue and run the pipeline per job")
    p.add_argument("--queue", required=True, help="queue URL")
    p.add_argument("--out", required=True, help="output root, e.g. s3://<pipeline-bucket>")
    p.add_argument("--db", help="PostgreSQL DSN")
    p.add_argument("--max-jobs", type=_positive_int, help="stop after N messages")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help="stop after the queue was empty this long")
    p.add_argument("--dlq", help="dead-letter queue URL (default: the queue's RedrivePolicy target)")
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser("shadow", help="shadow run: legacy (pypff, one process) vs V2 on the same PST; exit 1 on a mismatch")
    p.add_argument("source", help="PST path or s3:// URL")
    p.add_argument("--v2-out", metavar="PREFIX", help="compare an existing V2 output folder instead of extracting now")
    p.add_argument("--workers", type=_positive_int, help="V2 extractor processes")
    p.set_defaults(handler=_cmd_shadow)

    p = sub.add_parser(
        "warm-up",
        help="compile the numba kernels and PST reader into numba's on-disk cache (once per install or image)",
        description="Compile pstfast's numba code (row kernels, PST reader) into numba's on-disk cache "
                    "(NUMBA_CACHE_DIR, else next to the installed package), so that every extract after it "
                    "uses the compiled PST reader and starts with warm kernels. Takes 30-120 s once; "
                    "a few tenths of a second when the cache is already warm.",
    )
    p.set_defaults(handler=_cmd_warm_up)

    p = sub.add_parser("perf-dashboard", help="build the perf dashboard (HTML + PNG) from perf/results (source checkout)")
    p.add_argument("--results", metavar="DIR", help="benchmark JSON folder (default perf/results)")
    p.add_argument("--out", metavar="DIR", help="output folder (default RESULTS/dashboard)")
    p.set_defaults(handler=_cmd_perf_dashboard)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pstfast`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("pstfast: interrupted", file=sys.stderr)
        return 130
    except PstfastError as exc:
        if os.environ.get("PSTFAST_DEBUG"):
            raise
        print(f"pstfast {args.command}: error: {exc}", file=sys.stderr)
        if isinstance(exc, UsageError):
            return EXIT_USAGE
        if isinstance(exc, InputError):
            return EXIT_INPUT
        if isinstance(exc, TransientError):
            return EXIT_TRANSIENT
        return 1
    except Exception as exc:  # a bug or an unexpected environment: one line, not a traceback
        if os.environ.get("PSTFAST_DEBUG"):
            raise
        print(
            f"pstfast {args.command}: unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " (set PSTFAST_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
