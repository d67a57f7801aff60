"""``pstfast search``: search a project's indexed emails and their attachments.

Modes: ``text`` (PostgreSQL full text over ``email_search`` and ``attachment_search``),
``semantic`` (nearest vectors in pgvector, :mod:`pstfast.enrich.vectors`), ``hybrid``
(reciprocal-rank fusion of the two lists).
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..db.connect import connection, sql_text
from ..db.migrate import require_current
from ..errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    from ..db.connect import Database

log = logging.getLogger(__name__)

SEARCH_MODES = ("text", "semantic", "hybrid")
#: reciprocal-rank fusion's constant (Cormack et al. 2009): a hit at rank r scores 1/(k + r)
RRF_K = 60


@dataclass(frozen=True)
class SearchHit:
    """One matching email; for a match in an attachment, the attachment too."""

    email_id: uuid.UUID
    pst_file_id: str
    subject: str | None
    sender_email: str | None
    sent_at: _dt.datetime | None
    thread_id: uuid.UUID | None
    duplicate_of: uuid.UUID | None
    #: text: ts_rank; semantic: cosine similarity; hybrid: the fused RRF score
    rank: float
    #: the best-matching attachment of the email (None when only the email's own text matched)
    attachment_id: uuid.UUID | None = None
    attachment_filename: str | None = None
    #: the mode whose list the hit came from (hybrid: ``hybrid``)
    mode: str = "text"


def _hit(row: tuple[Any, ...], mode: str) -> SearchHit:
    """A hit from a row of search.sql / search_semantic.sql (same first ten columns)."""
    return SearchHit(row[0], row[1], row[2], row[3], row[4], row[5], row[6], float(row[7]), row[8], row[9], mode)


def _text(conn: object, query: str, project_id: str, limit: int) -> list[SearchHit]:
    rows = conn.execute(sql_text("search.sql"),  # type: ignore[attr-defined]
                        {"query": query, "project_id": project_id, "limit": limit}).fetchall()
    return [_hit(row, "text") for row in rows]


def _semantic(conn: object, query: str, project_id: str, limit: int, model: str) -> list[SearchHit]:
    from .embed import embedder
    from .vectors import NO_PGVECTOR, literal

    exists = conn.execute("SELECT to_regclass('email_vectors') IS NOT NULL, "  # type: ignore[attr-defined]
                          "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')").fetchone()
    if not exists[1]:
        raise MissingDependencyError(NO_PGVECTOR)
    if not exists[0]:
        log.warning("semantic search: nothing of any project is embedded yet (index with --embeddings %s)", model)
        return []
    vector = literal(embedder(model).encode([query])[0])
    with conn.transaction():  # type: ignore[attr-defined]
        # the project / mode filters would drop candidates from a plain HNSW scan
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")  # type: ignore[attr-defined]
        rows = conn.execute(sql_text("search_semantic.sql"),  # type: ignore[attr-defined]
                            {"vector": vector, "project_id": project_id, "model": model,
                             "k": max(limit * 4, 40), "limit": limit}).fetchall()
    return [_hit(row, "semantic") for row in rows]


def fuse(lists: list[list[SearchHit]], limit: int, k: int = RRF_K) -> list[SearchHit]:
    """Reciprocal-rank fusion: each email scores the sum of 1/(k + rank) over the lists it
    is in; it keeps the attachment its best-placed hit named."""
    scores: dict[uuid.UUID, float] = {}
    first: dict[uuid.UUID, tuple[int, SearchHit]] = {}
    for hits in lists:
        for place, hit in enumerate(hits, start=1):
            scores[hit.email_id] = scores.get(hit.email_id, 0.0) + 1.0 / (k + place)
            seen = first.get(hit.email_id)
            if seen is None or place < seen[0] or (seen[1].attachment_id is None and hit.attachment_id):
                first[hit.email_id] = (place, hit)
    order = sorted(scores, key=lambda e: (-scores[e], str(e)))[:limit]
    return [replace(first[e][1], rank=round(scores[e], 6), mode="hybrid") for e in order]


def search(query: str, project_id: str, db: Database = None, *, limit: int = 20, mode: str = "text",
           model: str = "fast") -> list[SearchHit]:
    """Emails of *project_id* matching *query*, best first, by *mode*: ``text`` (web-search
    syntax: words, "a phrase", -exclude, or), ``semantic`` (meaning, with embedding *model*
    ``fast`` or ``quality``: the one the index stage embedded with) or ``hybrid``.

    Raises:
        UsageError: an unknown mode or model.
        SchemaNotCurrentError: the schema lacks a migration (run ``pstfast db migrate``).
        MissingDependencyError: semantic/hybrid without the ``[semantic]`` extra or pgvector.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    if mode not in SEARCH_MODES:
        raise UsageError(f"unknown search mode {mode!r} (choose {', '.join(SEARCH_MODES)})")
    with connection(db) as conn:
        require_current(conn)
        if mode == "text":
            return _text(conn, query, project_id, limit)
        semantic = _semantic(conn, query, project_id, limit if mode == "semantic" else limit * 3, model)
        if mode == "semantic":
            return semantic
        return fuse([_text(conn, query, project_id, limit * 3), semantic], limit)
