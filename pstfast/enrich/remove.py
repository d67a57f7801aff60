"""Remove one PST from its project (a withdrawn custodian): ``pstfast remove``.

``pstfast_remove_pst`` (``sql/007_incremental.sql``) records what the PST's rows were,
deletes its search entries, attachment rows, emails and ``pst_files`` row; then the
threads and duplicate groups it touched are recomputed incrementally, exactly as a
rebuild of the project without it would give. Rerunning it finishes a removal that
stopped half-way. Attachment files in storage are content-addressed and may be shared, so
they stay; an OpenSearch index is not touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..db.connect import connection, run_retrying, sql_statements, sql_text
from ..db.migrate import apply_migrations
from ..errors import UsageError
from .dedupe import dedupe_rows
from .thread import thread_rows

if TYPE_CHECKING:
    from ..db.connect import Database


@dataclass
class RemoveResult:
    """What one removal deleted and recomputed."""

    pst_file_id: str
    project_id: str
    emails: int  #: email rows deleted (embedded ones included)
    attachments: int  #: attachment rows deleted
    search_entries: int  #: email_search rows deleted
    thread_scope: int  #: top-level emails rethreaded
    thread_updated: int  #: rows whose thread columns changed
    dedupe_emails: int  #: emails in the recomputed duplicate groups
    dedupe_updated: int  #: rows whose dedupe columns changed
    seconds: float


def _project_of(conn: Any, pst_file_id: str, project_id: str | None) -> str:
    if project_id:
        return project_id
    for query in ("SELECT project_id FROM pst_files WHERE pst_file_id = %s",
                  "SELECT project_id FROM email_messages WHERE pst_file_id = %s LIMIT 1",
                  "SELECT project_id FROM email_change_log WHERE pst_file_id = %s LIMIT 1"):
        row = conn.execute(query, (pst_file_id,)).fetchone()
        if row is not None:
            return str(row[0])
    raise UsageError(f"pst_file_id {pst_file_id!r} is unknown: nothing to remove (pass --project-id to be sure)")


def remove(pst_file_id: str, db: Database = None, *, project_id: str | None = None) -> RemoveResult:
    """Remove one PST's rows from its project and recompute what they touched; idempotent.

    Raises:
        UsageError: the PST is unknown and no *project_id* is given.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    t0 = time.perf_counter()
    with connection(db) as conn:
        apply_migrations(conn)
        project = _project_of(conn, pst_file_id, project_id)
        conn.commit()

        def delete() -> tuple[int, ...]:
            params = {"project_id": project, "pst_file_id": pst_file_id}
            conn.execute(sql_text("remove_attachment_search.sql"), params)
            vectors = conn.execute("SELECT to_regclass('email_vectors') IS NOT NULL").fetchone()
            if vectors and vectors[0]:
                conn.execute(sql_text("remove_vectors.sql"), params)
            row = conn.execute("SELECT * FROM pstfast_remove_pst(%s, %s)", (project, pst_file_id)).fetchone()
            assert row is not None
            for stmt in sql_statements("remove_folders.sql"):
                conn.execute(stmt, {"project_id": project, "pst_file_id": pst_file_id})
            return tuple(int(v) for v in row)

        (emails, attachments, search), _ = run_retrying(conn, delete, f"remove {pst_file_id}")
        trow, _ = thread_rows(conn, project, pst_file_id, False)
        drow, _ = dedupe_rows(conn, project, pst_file_id, False)
    return RemoveResult(pst_file_id, project, emails, attachments, search, thread_scope=trow[5], thread_updated=trow[4],
                        dedupe_emails=drow[0], dedupe_updated=drow[3], seconds=round(time.perf_counter() - t0, 6))
