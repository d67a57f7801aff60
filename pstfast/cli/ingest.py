"""The user's commands: ``run``, ``extract``, ``search``, ``submit``, ``worker``, ``inspect``, ``warm-up``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from ..errors import EXIT_TRANSIENT, UsageError
from .common import (
    add_codepage,
    add_db,
    add_json,
    emit,
    identifier,
    positive_int,
    stderr,
)

if TYPE_CHECKING:
    from .common import Subcommands


def _run(args: argparse.Namespace) -> int:
    from ..pipeline.runner import demo_source, exit_code, result_json, run

    if args.demo == bool(args.source):
        raise UsageError("give a SOURCE PST or --demo (not both)")
    source = demo_source() if args.demo else args.source
    result = run(source, out=args.out, db=args.db, project_id=args.project_id, pst_file_id=args.pst_file_id,
                 codepage=args.codepage)
    print(result_json(result) if args.json else result.summary())
    if args.demo and not args.db and not args.json:
        stderr("pstfast: the embedded PostgreSQL keeps running for later commands; `pstfast db stop` stops it")
    return exit_code(result)


def _extract(args: argparse.Namespace) -> int:
    from ..extraction.run import extract

    m = extract(args.source, args.out, pst_file_id=args.pst_file_id, project_id=args.project_id,
                workers=args.workers, scratch=args.scratch, reader=args.reader, codepage=args.codepage)
    c = m.counts
    emit(args, f"extracted {m.pst_file_id}: {c['emails']} emails, {c['attachments']} attachments, "
               f"{c['errors']} errors, {c['folders']} folders in {m.timings['total']:.2f}s "
               f"({m.workers} workers, {m.shards['count']} shards)",
         {"pst_file_id": m.pst_file_id, "project_id": m.project_id, "input": m.input, "counts": m.counts,
          "timings": m.timings, "workers": m.workers, "shards": m.shards, "objects": len(m.objects)})
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..enrich.remove import remove

    r = remove(args.pst_file_id, args.db, project_id=args.project_id)
    emit(args, f"removed {r.pst_file_id} from {r.project_id}: {r.emails} emails, {r.attachments} attachments, "
               f"{r.search_entries} search entries; rethreaded {r.thread_scope} emails ({r.thread_updated} changed), "
               f"regrouped {r.dedupe_emails} ({r.dedupe_updated} changed) in {r.seconds:.2f}s", r)
    return 0


def _search(args: argparse.Namespace) -> int:
    from ..enrich.search import search

    hits = search(args.query, args.project_id, args.db, limit=args.limit, mode=args.mode, model=args.model)
    lines = [f"{hit.email_id}  {hit.sent_at.isoformat() if hit.sent_at else '-'}  {hit.sender_email or '-'}  "
             f"{hit.subject or ''}" + (f"  [attachment: {hit.attachment_filename}]" if hit.attachment_id else "")
             for hit in hits]
    emit(args, "\n".join(lines), [dataclasses.asdict(hit) for hit in hits])
    if not args.json:
        stderr(f"{len(hits)} match(es)")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from ..pipeline.sqs import submit

    r = submit(args.project_id, args.source, queue_url=args.queue, pst_file_id=args.pst_file_id, db=args.db)
    if r.message_id is None:
        text = f"project {r.project_id} is routed to the {r.route} pipeline (pipeline_routes): nothing sent"
    else:
        text = f"submitted pst_file_id={r.pst_file_id} project={r.project_id} message={r.message_id}"
    emit(args, text, r)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from ..pipeline.sqs import consume

    stats = consume(args.queue, out=args.out, db=args.db, max_jobs=args.max_jobs, idle_exit=args.idle_exit,
                    dlq_url=args.dlq, docs_bucket=args.docs_bucket, allow_local=args.allow_local_sources)
    emit(args, f"worker: {stats.received} received, {stats.succeeded} succeeded, {stats.failed} failed "
               f"(on the DLQ), {stats.released} left for redelivery",
         {"received": stats.received, "succeeded": stats.succeeded, "failed": stats.failed,
          "released": stats.released})
    return 0 if stats.released == 0 else EXIT_TRANSIENT


def _inspect(args: argparse.Namespace) -> int:
    from ..pst.peers import inspect_pst

    report = inspect_pst(args.pst, readpst=args.readpst)
    emit(args, report.render(), report)
    return 0


def _warm_up(args: argparse.Namespace) -> int:
    from ..extraction.warmup import warm_up

    seconds = warm_up()
    text = (f"pstfast warm-up: compiled code ready in numba's cache (kernels {seconds['kernels']:.2f} s, "
            f"PST reader {seconds['reader']:.2f} s)")
    if args.embeddings:
        import time

        from ..enrich.embed import cache_dir, embedder

        t0 = time.perf_counter()
        embedder("fast")  # builds the fast model's table into the cache folder when missing
        seconds["embeddings"] = round(time.perf_counter() - t0, 3)
        text += f"; fast embedding table ready in {cache_dir()} ({seconds['embeddings']:.2f} s)"
    emit(args, text, seconds)
    return 0


def register(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """Add the user's commands to the top-level parser."""
    p = sub.add_parser(
        "run", parents=[common], help="the whole pipeline on one PST on this machine (same state machine as AWS)",
        description="extract -> load -> thread -> dedupe -> index, with the retry policy of pst_ingest_v2.",
    )
    p.add_argument("source", nargs="?", help="PST path or s3:// URL")
    p.add_argument("--demo", action="store_true", help="run on a writer-made demo PST (written on first use)")
    p.add_argument("--out", help="output root (default: PSTFAST_OUT or <PSTFAST_HOME>/out)")
    add_db(p)
    p.add_argument("--project-id", type=identifier("project_id"),
                   help="project (default: from project_<id>/pst/... or 'local')")
    p.add_argument("--pst-file-id", type=identifier("pst_file_id"),
                   help="pst_file_id (default: from the storage layout or the input's hash)")
    add_codepage(p)
    add_json(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser(
        "extract", parents=[common], help="one PST into NDJSON + CSV + Parquet + attachments + manifest",
        description="Extract one PST (local path or s3:// URL) into ROOT/pst-v2/<pst_file_id>/.",
    )
    p.add_argument("source", metavar="SOURCE", help="PST file: local path or s3:// URL")
    p.add_argument("--out", required=True, metavar="ROOT", help="output root: local folder or s3:// URL")
    p.add_argument("--pst-file-id", metavar="ID", type=identifier("pst_file_id"),
                   help="default: first 16 hex digits of the input's sha256")
    p.add_argument("--project-id", metavar="P", type=identifier("project_id"), help="project id written into every row")
    p.add_argument("--workers", type=positive_int, metavar="N", help="worker processes (default: CPU count)")
    p.add_argument("--scratch", metavar="DIR", help="scratch folder for parts and S3 downloads")
    p.add_argument("--reader", choices=["pstfast", "libpff"],
                   help="what reads the items: pstfast's own reader (default, or PSTFAST_READER), or libpff "
                        "(slower, the same output: a second opinion)")
    add_codepage(p)
    add_json(p)
    p.set_defaults(handler=_extract)

    p = sub.add_parser("search", parents=[common],
                       help="search a project's indexed emails and their attachments (text, semantic, hybrid)")
    p.add_argument("query", help='text mode: web-search syntax (words, "a phrase", -exclude, or); '
                                 'semantic: any sentence')
    p.add_argument("--project-id", required=True, metavar="P", type=identifier("project_id"), help="project id")
    add_db(p)
    p.add_argument("--mode", choices=["text", "semantic", "hybrid"], default="text",
                   help="text (full text, default), semantic (nearest embeddings, pgvector) or hybrid "
                        "(reciprocal-rank fusion of both)")
    p.add_argument("--model", choices=["fast", "quality"], default="fast",
                   help="semantic/hybrid: the embedding mode the index stage used (default fast)")
    p.add_argument("--limit", type=positive_int, default=20, help="most matches to print (default 20)")
    add_json(p)
    p.set_defaults(handler=_search)

    p = sub.add_parser(
        "remove", parents=[common], help="remove one PST from its project (a withdrawn custodian)",
        description="Delete one PST's emails, attachment rows and search entries, then recompute the threads and "
                    "duplicate groups they touched (incrementally: the same as a project that never had the PST). "
                    "Rerunning finishes a removal that stopped half-way.")
    p.add_argument("--pst-file-id", required=True, metavar="ID", type=identifier("pst_file_id"), help="the PST's id")
    p.add_argument("--project-id", metavar="P", type=identifier("project_id"),
                   help="its project (default: from pst_files)")
    add_db(p)
    add_json(p)
    p.set_defaults(handler=_remove)

    p = sub.add_parser("submit", parents=[common], help="send a PST ingest job to the pst_ingest SQS queue")
    p.add_argument("--queue", required=True, help="queue URL")
    p.add_argument("--project-id", required=True, type=identifier("project_id"))
    p.add_argument("--source", required=True, help="s3://<docs-bucket>/project_<id>/pst/<pst_file_id>/<name>.pst")
    p.add_argument("--pst-file-id", type=identifier("pst_file_id"), help="default: from the source's storage layout")
    p.add_argument("--db", help="database holding pipeline_routes (default: PSTFAST_DATABASE_URL; none: v2)")
    add_json(p)
    p.set_defaults(handler=_submit)

    p = sub.add_parser("worker", parents=[common], help="consume the pst_ingest queue and run the pipeline per job")
    p.add_argument("--queue", required=True, help="queue URL")
    p.add_argument("--out", required=True, help="output root, e.g. s3://<pipeline-bucket>")
    add_db(p)
    p.add_argument("--max-jobs", type=positive_int, help="stop after N messages")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help="stop after the queue was empty this long")
    p.add_argument("--dlq", help="dead-letter queue URL (default: the queue's RedrivePolicy target)")
    p.add_argument("--docs-bucket", metavar="BUCKET",
                   help="the bucket every job's PST must be in, under project_<id>/pst/<pst_file_id>/ "
                        "(default PSTFAST_DOCS_BUCKET); other jobs go to the DLQ")
    p.add_argument("--allow-local-sources", action="store_true",
                   help="accept jobs whose source is a local path (one machine only)")
    add_json(p)
    p.set_defaults(handler=_worker)

    p = sub.add_parser("inspect", parents=[common], help="summarise a PST: folders, messages, attachments (libpff)")
    p.add_argument("pst", help="PST file")
    p.add_argument("--readpst", action="store_true", help="cross-check the counts with readpst")
    add_json(p)
    p.set_defaults(handler=_inspect)

    p = sub.add_parser(
        "warm-up", parents=[common],
        help="compile the numba kernels and PST reader into numba's on-disk cache (once per install or image)",
        description="Compile pstfast's numba code (row kernels, PST reader) into numba's on-disk cache "
                    "(NUMBA_CACHE_DIR, else next to the installed package), so that every extract after it "
                    "uses the compiled PST reader and starts with warm kernels. Takes 30-120 s once; "
                    "a few tenths of a second when the cache is already warm.",
    )
    p.add_argument("--embeddings", action="store_true",
                   help="also build the fast embedding model's table (PSTFAST_CACHE_DIR, else ~/.cache/pstfast; "
                        "~35-60 s once; needs pstfast[semantic])")
    add_json(p)
    p.set_defaults(handler=_warm_up)
