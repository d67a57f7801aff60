"""``pstfast stage <name>``: run one pipeline stage with its bookkeeping.

Every stage takes the same arguments (so one Batch command shape serves all five):
``--pst-file-id ID --out ROOT [--project-id P] [--source URL] [--db DSN]``. Each runs inside
a :class:`~pstfast.pipeline.stagelog.StageRun` (stage manifest, ``log.ndjson``, ``stage_runs`` row)
and, on success, moves ``pst_files.status`` to the stage's status.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PstfastError, UsageError
from .stagelog import (
    STAGES,
    STATUS_AFTER,
    StageReport,
    StageRun,
    mark_failed,
    read_stage_manifest,
    register_pst_file,
    set_status,
)

if TYPE_CHECKING:
    from ..db.connect import Database


@dataclass
class StageOutcome:
    """The stage's own result object and its stage manifest."""

    stage: str
    result: Any
    report: StageReport


def _numbers(result: Any) -> tuple[dict[str, int], dict[str, float]]:
    """Integer fields of a result dataclass as counts, and its timings."""
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    if dataclasses.is_dataclass(result):
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                counts[f.name] = value
            elif f.name == "seconds" and isinstance(value, float):
                timings["total"] = value
            elif f.name == "timings" and isinstance(value, dict):
                timings.update(value)
            elif f.name == "counts" and isinstance(value, dict):
                counts.update({k: v for k, v in value.items() if isinstance(v, int)})
    return counts, timings


def _extract(source: str | None, out: str | os.PathLike[str], pst_file_id: str, project_id: str | None,
             codepage: int | None) -> Any:
    if not source:
        raise UsageError("stage extract needs --source (the PST's path or s3:// URL)")
    from ..extraction.run import extract

    return extract(source, out, pst_file_id=pst_file_id, project_id=project_id, codepage=codepage)


def run_stage(
    name: str,
    *,
    pst_file_id: str,
    out: str | os.PathLike[str],
    project_id: str | None = None,
    source: str | None = None,
    db: Database = None,
    index_backend: str = "postgres",
    opensearch_url: str | None = None,
    attempt: int | None = None,
    codepage: int | None = None,
    full: bool = False,
    embeddings: str | None = None,
) -> StageOutcome:
    """Run stage *name* for one PST with manifest, log, ``stage_runs`` and status updates
    (*full*: thread and dedupe recompute the whole project instead of what the PST touches;
    *embeddings*: the index stage's embedding mode, ``fast``/``quality``/``none``, default
    ``PSTFAST_EMBEDDINGS``).

    Raises:
        UsageError: an unknown stage, or arguments the stage needs are missing.
        InputError: the stage rejected its input (recorded as ``rejected``; never retried).
        TransientError: storage or the database failed (recorded as ``failed``; retry).
    """
    if name not in STAGES:
        raise UsageError(f"unknown stage {name!r} (choose {', '.join(STAGES)})")
    with StageRun(out, name, pst_file_id, project_id=project_id, attempt=attempt, db=db) as run:
        if name == "extract":
            result = _extract(source, out, pst_file_id, project_id, codepage)
            _mark_extracted(db, pst_file_id, project_id or getattr(result, "project_id", None), source, result)
        elif name == "load":
            from ..loading.load import load

            result = load(out, pst_file_id, db, project_id=project_id)
        elif name == "thread":
            from ..enrich.thread import thread

            result = thread(out, pst_file_id, db, project_id=project_id, full=full)
        elif name == "dedupe":
            from ..enrich.dedupe import dedupe

            result = dedupe(out, pst_file_id, db, project_id=project_id, full=full)
        else:
            from ..enrich.index import index

            result = index(out, pst_file_id, db, project_id=project_id, backend=index_backend,
                           opensearch_url=opensearch_url, embeddings=embeddings)
        counts, timings = _numbers(result)
        run.counts.update(counts)
        run.report.warnings.extend(str(w) for w in getattr(result, "warnings", None) or ())
        run.timings.update(timings)
        if run.report.project_id is None:
            run.report.project_id = getattr(result, "project_id", None)
        rows = counts.get("rows") or counts.get("emails") or counts.get("documents") or 0
        seconds = timings.get("total") or sum(timings.values()) or 0.0
        run.metrics.update({"rows": rows, "seconds": round(seconds, 6)})
        if seconds:
            run.metrics["rows_per_second"] = round(rows / seconds, 1)
        if "bytes_compressed" in counts:
            run.metrics["bytes"] = counts["bytes_compressed"]
    return StageOutcome(name, result, run.report)


def _mark_extracted(db: Database, pst_file_id: str, project_id: str | None, source: str | None, result: Any) -> None:
    from ..db.connect import connection
    from ..db.migrate import apply_migrations

    if not project_id:
        raise UsageError("stage extract needs --project-id (the manifest names none)")
    counts = getattr(result, "counts", {}) or {}
    with connection(db) as conn:
        apply_migrations(conn)
        register_pst_file(conn, pst_file_id, project_id, source)
        set_status(conn, pst_file_id, STATUS_AFTER["extract"], email_count=counts.get("emails"),
                   attachment_count=counts.get("attachments"))
        conn.commit()


def mark_pst_failed(
    pst_file_id: str,
    *,
    out: str,
    error: str,
    project_id: str | None = None,
    db: Database = None,
) -> str:
    """``pst_files.status = failed`` with the most specific reason the stage manifests give.

    This is the state machine's ``MarkFailed`` step (``pipeline mark-failed``). Returns
    the reason recorded.
    """
    from ..db.connect import connection
    from ..db.migrate import apply_migrations

    reason, stage = error, None
    for name in reversed(STAGES):
        try:
            report = read_stage_manifest(out, pst_file_id, name)
        except (PstfastError, ValueError):
            continue
        if report is not None and report.status in ("rejected", "failed", "running"):
            stage = name
            detail = report.error or f"stage {report.status} (the job ended without a result)"
            reason = f"{name} {report.status}: {detail} [{error}]"
            break
    with connection(db) as conn:
        apply_migrations(conn)
        mark_failed(conn, pst_file_id, reason, stage=stage, project_id=project_id)
    return reason


__all__ = ["StageOutcome", "mark_pst_failed", "run_stage"]
