"""The dedupe stage: ``dedupe_emails(project_id)`` (rules in ``sql/003_dedupe.sql``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..db.connect import connection
from ..db.migrate import apply_migrations
from ..pipeline.stagelog import register_pst_file, set_status

if TYPE_CHECKING:
    from ..db.connect import Database


@dataclass
class DedupeResult:
    """Counts of one dedupe run (over the whole project)."""

    project_id: str
    emails: int
    groups: int
    duplicates: int
    updated: int
    seconds: float


def dedupe(
    root: str | os.PathLike[str] | None,
    pst_file_id: str | None,
    db: Database = None,
    *,
    project_id: str | None = None,
) -> DedupeResult:
    """Mark exact duplicates across every PST of the project; idempotent.

    Raises:
        UsageError: no project is given and none is recorded for *pst_file_id*.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    with connection(db) as conn:
        apply_migrations(conn)
        if pst_file_id:
            project_id = register_pst_file(conn, pst_file_id, project_id)
        if not project_id:
            from ..errors import UsageError

            raise UsageError("dedupe needs --pst-file-id or --project-id")
        t0 = time.perf_counter()
        with conn.transaction():
            row = conn.execute("SELECT * FROM dedupe_emails(%s)", (project_id,)).fetchone()
            if pst_file_id:
                set_status(conn, pst_file_id, "deduped")
        assert row is not None
        emails, groups, duplicates, updated = (int(v) for v in row)
        return DedupeResult(project_id, emails, groups, duplicates, updated, seconds=round(time.perf_counter() - t0, 6))
