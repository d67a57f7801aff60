"""``pstfast search``: PostgreSQL full-text search over a project's indexed emails."""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass

from .db import connection, sql_text
from .migrations import apply_migrations


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


def search(query: str, project_id: str, db: str | None = None, *, limit: int = 20) -> list[SearchHit]:
    """Emails of *project_id* matching *query* (web-search syntax), best first."""
    with connection(db) as conn:
        apply_migrations(conn)
        rows = conn.execute(
            sql_text("search.sql"), {"query": query, "project_id": project_id, "limit": limit}
        ).fetchall()
    return [SearchHit(*row) for row in rows]
