"""What the thread and dedupe stages share: one SQL function run over one PST's scope (or,
*full*, the whole project), with the project resolved, the PST's status moved and lost
races retried."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..db.connect import connection, run_retrying
from ..db.migrate import apply_migrations
from ..errors import UsageError
from ..pipeline.stagelog import register_pst_file, set_status

if TYPE_CHECKING:
    from ..db.connect import Database


def run_scoped(stage: str, function: str, status: str, db: Database, pst_file_id: str | None,
               project_id: str | None, full: bool) -> tuple[str, tuple[int, ...], bool, float, int]:
    """Run ``SELECT * FROM <function>(project, pst_file_id, full)`` for *stage*; return
    (project_id, the function's row, full, seconds, attempts).

    Raises:
        UsageError: no project is given and none is recorded for *pst_file_id*.
        DatabaseError: PostgreSQL is unreachable, or lost races outlasted the retries.
    """
    with connection(db) as conn:
        apply_migrations(conn)
        if pst_file_id:
            project_id = register_pst_file(conn, pst_file_id, project_id)
        if not project_id:
            raise UsageError(f"{stage} needs --pst-file-id or --project-id")
        conn.commit()
        full = full or not pst_file_id
        t0 = time.perf_counter()
        project = project_id

        def work() -> tuple[int, ...]:
            # the function name is one of this package's two, never from outside
            row = conn.execute(f"SELECT * FROM {function}(%s, %s, %s)", (project, pst_file_id, full)).fetchone()
            if pst_file_id:
                set_status(conn, pst_file_id, status)
            assert row is not None
            return tuple(int(v) for v in row)

        row, attempts = run_retrying(conn, work, f"{stage} {pst_file_id or project_id}")
        return project, row, full, round(time.perf_counter() - t0, 6), attempts
