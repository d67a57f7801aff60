"""The thread stage: ``build_email_threads(project_id)`` over every PST of the project.

The rules (headers, then conversation index, then subject) are documented and
implemented in ``sql/002_threading.sql``; this module runs them and records the status.
"""

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
class ThreadResult:
    """Counts of one threading run (over the whole project)."""

    project_id: str
    emails: int
    threads: int
    placeholders: int
    loops_broken: int
    updated: int
    seconds: float


def thread(
    root: str | os.PathLike[str] | None,
    pst_file_id: str | None,
    db: Database = None,
    *,
    project_id: str | None = None,
) -> ThreadResult:
    """Thread every email of the project (of *pst_file_id*, or *project_id*); idempotent.

    *root* is accepted so all stages share one signature; threading reads only the database.

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

            raise UsageError("thread needs --pst-file-id or --project-id")
        t0 = time.perf_counter()
        with conn.transaction():
            row = conn.execute("SELECT * FROM build_email_threads(%s)", (project_id,)).fetchone()
            if pst_file_id:
                set_status(conn, pst_file_id, "threaded")
        assert row is not None
        emails, threads, placeholders, loops_broken, updated = (int(v) for v in row)
        return ThreadResult(project_id, emails, threads, placeholders, loops_broken, updated,
                            seconds=round(time.perf_counter() - t0, 6))
