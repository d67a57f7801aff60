"""The semantic part of the index stage: embeddings of a PST's emails and attachment texts
into pgvector (``email_vectors``, ``attachment_vectors``: ``sql/queries/vectors_setup.sql``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..db.connect import connection, sql_text
from ..errors import MissingDependencyError
from .embed import chunks, embedder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..db.connect import Database

log = logging.getLogger(__name__)

#: body characters one email vector reads (quality mode sees ~1,000 of them anyway)
EMAIL_CHARS = 4000
#: texts embedded per batch (and rows written per round trip)
BATCH = 256
NO_PGVECTOR = ("semantic search needs the PostgreSQL extension 'vector' (pgvector), which this server does not "
               "have: install it on the server (e.g. Debian's postgresql-<major>-pgvector, or build "
               "https://github.com/pgvector/pgvector), or use the embedded server (pstfast[embedded]); "
               "text search works without it")


@dataclass
class VectorResult:
    """What one embedding run did for a PST."""

    mode: str
    emails: int = 0
    chunks: int = 0
    seconds: float = 0.0


def ensure_schema(conn: Any) -> None:
    """Create the vector tables (and the extension) if missing.

    Raises:
        MissingDependencyError: the server has no pgvector extension to create.
    """
    present = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if present is None:
        raise MissingDependencyError(NO_PGVECTOR)
    conn.execute(sql_text("vectors_setup.sql"))


def literal(vector: npt.NDArray[np.float32]) -> str:
    """pgvector's text form of one vector."""
    return "[" + ",".join(f"{x:.6g}" for x in vector.tolist()) + "]"


def embed_pst(db: Database, project_id: str, pst_file_id: str, mode: str) -> VectorResult:
    """Embed the PST's emails that have no current vector of *mode*, and the chunks of its
    attachment contents that the project has no vectors of; idempotent.

    Raises:
        MissingDependencyError: the ``[semantic]`` extra or the server's pgvector is missing.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    t0 = time.perf_counter()
    model = embedder(mode)
    result = VectorResult(mode)
    params = {"project_id": project_id, "pst_file_id": pst_file_id, "model": mode, "chars": EMAIL_CHARS}
    with connection(db) as conn:
        with conn.transaction():
            ensure_schema(conn)
        emails = conn.execute(sql_text("vectors_todo_emails.sql"), params).fetchall()
        for start in range(0, len(emails), BATCH):
            rows = emails[start:start + BATCH]
            vectors = model.encode([text or "" for _, _, text in rows])
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql_text("vectors_upsert_email.sql"), [
                    {"email_id": email_id, "model": mode, "project_id": project_id, "content_hash": content_hash,
                     "embedding": literal(vector)} for (email_id, content_hash, _), vector in zip(rows, vectors)])
            result.emails += len(rows)
        for sha256, text in conn.execute(sql_text("vectors_todo_attachments.sql"), params).fetchall():
            pieces = chunks(text or "")
            if not pieces:
                continue
            vectors = model.encode(pieces)
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql_text("vectors_insert_attachment.sql"), [
                    {"project_id": project_id, "sha256": sha256, "model": mode, "chunk": n,
                     "embedding": literal(vector)} for n, vector in enumerate(vectors)])
            result.chunks += len(pieces)
    result.seconds = round(time.perf_counter() - t0, 6)
    log.info("embeddings %s (%s): %d emails, %d attachment chunks in %.2f s", pst_file_id, mode, result.emails,
             result.chunks, result.seconds)
    return result
