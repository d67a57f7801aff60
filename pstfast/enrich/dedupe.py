"""The dedupe stage: the ``content_hash`` groups of one PST (``sql/007_incremental.sql``).

The rule is that of ``sql/003_dedupe.sql`` (master = earliest sent_at, then smallest
email_id: independent of load order); only the groups the PST's emails (and the old
hashes of rows a reload or removal changed) belong to are recomputed. ``full=True`` (or no
*pst_file_id*) dedupes the whole project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..db.connect import run_retrying
from .scoped import run_scoped

if TYPE_CHECKING:
    from ..db.connect import Database


@dataclass
class DedupeResult:
    """Counts of one dedupe run (over the groups it recomputed)."""

    project_id: str
    emails: int  #: emails in the recomputed groups
    groups: int  #: of them, groups with more than one member
    duplicates: int
    updated: int  #: rows whose dedupe columns changed
    seconds: float
    full: bool = False  #: the whole project was deduped
    attempts: int = 1  #: transactions it took (a concurrent run can make one start again)


def dedupe_rows(conn: Any, project_id: str, pst_file_id: str | None, full: bool) -> tuple[tuple[int, ...], int]:
    """Run ``pstfast_dedupe`` on *conn* (idle) with retries; (its row, attempts)."""

    def work() -> tuple[int, ...]:
        row = conn.execute("SELECT * FROM pstfast_dedupe(%s, %s, %s)", (project_id, pst_file_id, full)).fetchone()
        assert row is not None
        return tuple(int(v) for v in row)

    return run_retrying(conn, work, f"dedupe {pst_file_id or project_id}")


def dedupe(
    root: str | os.PathLike[str] | None,
    pst_file_id: str | None,
    db: Database = None,
    *,
    project_id: str | None = None,
    full: bool = False,
) -> DedupeResult:
    """Mark exact duplicates of one PST's emails across the project (*full*, or no
    *pst_file_id*: the whole project of *project_id*); idempotent.

    Raises:
        UsageError: no project is given and none is recorded for *pst_file_id*.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    project_id, row, full, seconds, attempts = run_scoped("dedupe", "pstfast_dedupe", "deduped", db, pst_file_id,
                                                          project_id, full)
    emails, groups, duplicates, updated, _rounds = row
    return DedupeResult(project_id, emails, groups, duplicates, updated,
                        seconds=seconds, full=full, attempts=attempts)
