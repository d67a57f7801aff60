"""The thread stage: incremental threading of one PST (``sql/007_incremental.sql``).

The rules (headers, then conversation index, then subject) are those of
``sql/002_threading.sql``; ``pstfast_thread`` applies them to the PST's emails and
everything they touch (shared ids, conversation-index headers, old threads, roots of the
same subject), which gives exactly what threading the whole project gives. ``full=True``
(or no *pst_file_id*) rethreads the whole project: for audits and repairs.
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
class ThreadResult:
    """Counts of one threading run (over the emails it recomputed)."""

    project_id: str
    emails: int  #: emails recomputed (embedded ones included)
    threads: int  #: distinct threads among them
    placeholders: int
    loops_broken: int
    updated: int  #: rows whose thread columns changed
    seconds: float
    full: bool = False  #: the whole project was rethreaded
    scope: int = 0  #: top-level emails in the recomputed scope
    attempts: int = 1  #: transactions it took (a concurrent run can make one start again)


def thread_rows(conn: Any, project_id: str, pst_file_id: str | None, full: bool) -> tuple[tuple[int, ...], int]:
    """Run ``pstfast_thread`` on *conn* (idle) with retries; (its row, attempts)."""

    def work() -> tuple[int, ...]:
        row = conn.execute("SELECT * FROM pstfast_thread(%s, %s, %s)", (project_id, pst_file_id, full)).fetchone()
        assert row is not None
        return tuple(int(v) for v in row)

    return run_retrying(conn, work, f"thread {pst_file_id or project_id}")


def thread(
    root: str | os.PathLike[str] | None,
    pst_file_id: str | None,
    db: Database = None,
    *,
    project_id: str | None = None,
    full: bool = False,
) -> ThreadResult:
    """Thread one PST's emails into its project (*full*, or no *pst_file_id*: rethread the
    whole project of *project_id*); idempotent.

    *root* is accepted so all stages share one signature; threading reads only the database.

    Raises:
        UsageError: no project is given and none is recorded for *pst_file_id*.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    project_id, row, full, seconds, attempts = run_scoped("thread", "pstfast_thread", "threaded", db, pst_file_id,
                                                          project_id, full)
    emails, threads, placeholders, loops_broken, updated, scope, _rounds = row
    return ThreadResult(project_id, emails, threads, placeholders, loops_broken, updated,
                        seconds=seconds, full=full, scope=scope, attempts=attempts)
