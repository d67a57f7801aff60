"""Stage bookkeeping: ``stages/<name>/manifest.json``, ``log.ndjson``, ``stage_runs``, status.

Every stage (extract included) runs inside a :class:`StageRun`, which writes the stage
manifest when it starts (``running``) and when it ends (``succeeded``; ``rejected`` for a
terminal :class:`~pstfast.errors.InputError`; ``failed`` otherwise), appends one event per
line to ``log.ndjson``, and, given a database, records a ``stage_runs`` row. The files
live under ``<root>/pst-v2/<pst_file_id>/stages/<name>/`` (local or ``s3://``).

``pst_files.status`` moves queued -> extracted -> loaded -> threaded -> deduped ->
indexed, or to ``failed`` with the reason (:func:`set_status`, :func:`mark_failed`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import config, storage
from ..errors import InputError, PstfastError, UsageError

STAGES = ("extract", "load", "thread", "dedupe", "index")
#: pst_files.status after each stage succeeds
STATUS_AFTER = {"extract": "extracted", "load": "loaded", "thread": "threaded", "dedupe": "deduped", "index": "indexed"}

if TYPE_CHECKING:
    from ..db.connect import Database

log = logging.getLogger(__name__)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StageReport:
    """The content of one ``stages/<name>/manifest.json``."""

    stage: str
    pst_file_id: str
    project_id: str | None
    status: str  # running | succeeded | rejected | failed
    attempt: int
    started_at: str
    finished_at: str | None = None
    seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None
    #: what the stage did not fail on but a reviewer should know (e.g. a search entry cut to fit)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        """Pretty, key-sorted JSON bytes."""
        return (json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def stage_prefix(root: str | os.PathLike[str], pst_file_id: str, stage: str) -> str:
    """``<root>/pst-v2/<pst_file_id>/stages/<stage>/``."""
    return storage.join(storage.output_prefix(root, pst_file_id), "stages", stage) + "/"


def read_stage_manifest(root: str | os.PathLike[str], pst_file_id: str, stage: str) -> StageReport | None:
    """The last written stage manifest, or None when the stage never ran."""
    url = storage.join(stage_prefix(root, pst_file_id, stage), "manifest.json")
    if not storage.exists(url):
        return None
    try:
        raw = json.loads(storage.read_bytes(url))
        names = {f.name for f in dataclasses.fields(StageReport)}
        return StageReport(**{k: v for k, v in raw.items() if k in names})
    except (ValueError, TypeError) as exc:
        # written atomically now; one torn by an older pstfast or by hand is bookkeeping
        # that cannot be read: the stage runs again as if it never had
        log.warning("%s is unreadable (%s): treated as absent", url, exc)
        return None


def write_stage_manifest(root: str | os.PathLike[str], report: StageReport) -> str:
    """Write (replace) the stage manifest; returns its URL."""
    url = storage.join(stage_prefix(root, report.pst_file_id, report.stage), "manifest.json")
    storage.write_bytes(url, report.to_json())
    return url


def append_log(root: str | os.PathLike[str], pst_file_id: str, stage: str, event: dict[str, Any]) -> None:
    """Append one JSON line to ``stages/<stage>/log.ndjson`` (S3: read, extend, rewrite)."""
    url = storage.join(stage_prefix(root, pst_file_id, stage), "log.ndjson")
    line = (json.dumps({"ts": _now(), **event}, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode()
    if storage.is_s3(url):
        old = storage.read_bytes(url) if storage.exists(url) else b""
        storage.write_bytes(url, old + line)
    else:
        with storage.open_file(url, "ab") as handle:
            handle.write(line)


def record_stage_run(conn: Any, report: StageReport) -> None:
    """Insert the ``stage_runs`` row for a finished stage."""
    from psycopg.types.json import Jsonb

    from ..db.connect import sql_text

    conn.execute(
        sql_text("stage_run_insert.sql"),
        {
            **dataclasses.asdict(report),
            "counts": Jsonb(report.counts),
            "timings": Jsonb(report.timings),
            "metrics": Jsonb(report.metrics),
        },
    )


def register_pst_file(conn: Any, pst_file_id: str, project_id: str | None, source: str | None = None) -> str:
    """Make sure ``pst_files`` has this PST; returns its project_id (the stored one wins)."""
    from ..db.connect import sql_text

    if project_id is None:
        row = conn.execute("SELECT project_id FROM pst_files WHERE pst_file_id = %s", (pst_file_id,)).fetchone()
        if row is None:
            raise UsageError(f"pst_file_id {pst_file_id!r} is unknown: pass --project-id")
        return str(row[0])
    row = conn.execute(
        sql_text("pst_file_register.sql"), {"pst_file_id": pst_file_id, "project_id": project_id, "source": source}
    ).fetchone()
    if row[0] != project_id and row[0] != "":
        raise InputError(f"pst_file_id {pst_file_id!r} belongs to project {row[0]!r}, not {project_id!r}: "
                         "give this file its own --pst-file-id in the other project")
    if row[0] == "":
        conn.execute("UPDATE pst_files SET project_id = %s WHERE pst_file_id = %s", (project_id, pst_file_id))
    return project_id


def set_status(
    conn: Any,
    pst_file_id: str,
    status: str,
    *,
    email_count: int | None = None,
    attachment_count: int | None = None,
    manifest_sha256: str | None = None,
) -> None:
    """Move a PST to *status* (success path; clears any earlier error)."""
    from ..db.connect import sql_text

    conn.execute(
        sql_text("pst_file_status.sql"),
        {
            "pst_file_id": pst_file_id,
            "status": status,
            "email_count": email_count,
            "attachment_count": attachment_count,
            "manifest_sha256": manifest_sha256,
        },
    )


def mark_failed(
    conn: Any, pst_file_id: str, reason: BaseException | str, *, stage: str | None = None, project_id: str | None = None
) -> None:
    """Set ``pst_files.status = 'failed'`` with the reason (and its kind) and commit."""
    from ..db.connect import sql_text

    kind = reason.kind if isinstance(reason, PstfastError) else ("error" if isinstance(reason, BaseException) else None)
    conn.execute(
        sql_text("pst_file_failed.sql"),
        {"pst_file_id": pst_file_id, "project_id": project_id, "error": str(reason), "error_kind": kind, "stage": stage},
    )
    conn.commit()


class StageRun:
    """Context manager around one stage attempt: manifest, log, and ``stage_runs`` row.

    Fill ``counts`` / ``timings`` / ``metrics`` while the stage runs. With *db* set, the
    ``stage_runs`` row is written on exit and a terminal :class:`InputError` marks the PST
    failed. Exceptions always propagate.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        stage: str,
        pst_file_id: str,
        *,
        project_id: str | None = None,
        attempt: int | None = None,
        db: Database = None,
        record: bool = True,
    ) -> None:
        self.root = root
        self.db = db
        self.record = record
        if attempt is None:
            previous = read_stage_manifest(root, pst_file_id, stage)
            attempt = previous.attempt + 1 if previous else 1
        self.report = StageReport(
            stage=stage, pst_file_id=pst_file_id, project_id=project_id, status="running",
            attempt=attempt, started_at=_now(),
        )
        self._t0 = 0.0

    @property
    def counts(self) -> dict[str, int]:
        return self.report.counts

    @property
    def timings(self) -> dict[str, float]:
        return self.report.timings

    @property
    def metrics(self) -> dict[str, float]:
        return self.report.metrics

    def __enter__(self) -> StageRun:
        self._t0 = time.perf_counter()
        write_stage_manifest(self.root, self.report)
        append_log(self.root, self.report.pst_file_id, self.report.stage,
                   {"event": "started", "attempt": self.report.attempt})
        log.info("stage %s started for %s (attempt %d)", self.report.stage, self.report.pst_file_id,
                 self.report.attempt)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        r = self.report
        r.seconds = round(time.perf_counter() - self._t0, 6)
        r.finished_at = _now()
        if exc is None:
            r.status = "succeeded"
        else:
            r.status = "rejected" if isinstance(exc, InputError) else "failed"
            r.error = str(exc) or type(exc).__name__
            r.error_kind = exc.kind if isinstance(exc, PstfastError) else type(exc).__name__
        db_error = self._record_in_db(exc) if self.record else None
        if db_error is not None and exc is None:
            # the work is done but could not be recorded: report the attempt as failed
            r.status, r.error, r.error_kind = "failed", str(db_error), db_error.kind
        write_stage_manifest(self.root, r)
        counts = ", ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))
        (log.info if r.status == "succeeded" else log.warning)(
            "stage %s %s for %s in %.2f s%s%s", r.stage, r.status, r.pst_file_id, r.seconds,
            f": {counts}" if counts else "", f" ({r.error_kind}: {r.error})" if r.error else "")
        if os.environ.get("AWS_BATCH_JOB_ID") or config.env("METRICS") == "emf":
            # in Batch, the log is CloudWatch Logs: one EMF record becomes the stage's metrics
            from .metrics import emit

            emit(r)
        append_log(self.root, r.pst_file_id, r.stage, {
            "event": r.status, "attempt": r.attempt, "seconds": r.seconds, "counts": r.counts,
            "error": r.error, "error_kind": r.error_kind, **({"warnings": r.warnings} if r.warnings else {}),
        })
        if db_error is not None and exc is None:
            raise db_error

    def _record_in_db(self, exc: BaseException | None) -> PstfastError | None:
        from ..db.connect import connection
        from ..db.migrate import apply_migrations

        r = self.report
        try:
            with connection(self.db) as conn:
                apply_migrations(conn)
                if isinstance(exc, InputError):
                    mark_failed(conn, r.pst_file_id, exc, stage=r.stage, project_id=r.project_id)
                record_stage_run(conn, r)
                conn.commit()
        except PstfastError as db_exc:
            # the database may be what failed: the stage's own error (if any) stays the
            # one raised; this one goes to the log
            append_log(self.root, r.pst_file_id, r.stage, {
                "event": "stage_runs_not_recorded", "error": str(db_exc), "error_kind": db_exc.kind,
            })
            return db_exc
        return None
