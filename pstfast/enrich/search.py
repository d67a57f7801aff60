"""``pstfast search``: PostgreSQL full-text search over a project's indexed emails."""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..db.connect import connection, sql_text
from ..db.migrate import require_current

if TYPE_CHECKING:
    from ..db.connect import Database


@dataclass(frozen=True)
class SearchHit:
    """One matching email."""

    email_id: uuid.UUID
    pst_file_id: str
    subject: str | None
    sender_email: str | None
    sent_at: _dt.datetime | None
    thread_id: uuid.UUID | None
    duplicate_of: uuid.UUID | None
    rank: float


def search(query: str, project_id: str, db: Database = None, *, limit: int = 20) -> list[SearchHit]:
    """Emails of *project_id* matching *query* (web-search syntax), best first.

    Raises:
        SchemaNotCurrentError: the schema lacks a migration (run ``pstfast db migrate``).
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    with connection(db) as conn:
        require_current(conn)
        rows = conn.execute(
            sql_text("search.sql"), {"query": query, "project_id": project_id, "limit": limit}
        ).fetchall()
    return [SearchHit(*row) for row in rows]
