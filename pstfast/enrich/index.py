"""The index stage: full-text search over one PST's emails.

Backends:

* ``postgres`` (default): compute the search entry (a tsvector, ``pstfast_search_vector``)
  of every email without one into the narrow ``email_search`` table (both from
  ``sql/005_search_table.sql``) on several connections at once (``sql/index_update.sql``),
  then merge its GIN index's pending list in one batch (``sql/index_finish.sql``); query it
  with :func:`pstfast.search`.
* ``opensearch``: build ``_bulk`` NDJSON (deterministic ``_id`` = email_id, documents in
  email_id order, key-sorted JSON), write it under ``stages/index/`` as ``bulk-NNNNN.ndjson``
  files of at most ~10 MB each (each one a valid ``_bulk`` body, listed in ``bulk.json``)
  so it can be replayed, then send the same actions with opensearch-py's
  ``streaming_bulk`` (chunks of ~10 MB).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import storage
from ..db.connect import connection, sql_text
from ..db.migrate import apply_migrations
from ..errors import TransientError, UsageError
from ..pipeline.stagelog import register_pst_file, set_status, stage_prefix

if TYPE_CHECKING:
    from ..db.connect import Database

log = logging.getLogger(__name__)

BACKENDS = ("postgres", "opensearch")
CHUNK_BYTES = 10 * 1024 * 1024
#: body characters sent to OpenSearch per document (its default http.max_content_length is 100 MB)
BODY_CHARS = 1_000_000
#: warnings listed one by one in the stage manifest (the counts give the total)
MAX_WARNINGS = 20

_DOC_SQL = """
SELECT email_id, project_id, pst_file_id, parent_email_id, folder_path, message_class,
       internet_message_id, subject, sender_name, sender_email, "to", cc, bcc, sent_at,
       received_at, left(body_text, %(body_chars)s) AS body_text, attachment_count, importance,
       content_hash, thread_id, thread_parent_id, thread_position, duplicate_of,
       duplicate_pst_file_ids
  FROM email_messages
 WHERE project_id = %(project_id)s AND pst_file_id = %(pst_file_id)s
 ORDER BY email_id
"""


@dataclass
class IndexResult:
    """What one index run did."""

    pst_file_id: str
    project_id: str
    backend: str
    documents: int
    seconds: float
    bulk_files: list[str] = field(default_factory=list)
    bulk_bytes: int = 0
    #: entries (postgres) or documents (opensearch) with a field cut to fit the index
    cut_entries: int = 0
    #: what the stage manifest lists under ``warnings``: cut entries, rejected documents
    warnings: list[str] = field(default_factory=list)


def index_name(project_id: str) -> str:
    """The OpenSearch index of a project (lowercase, safe characters)."""
    return "pstfast-" + re.sub(r"[^a-z0-9_-]+", "-", project_id.lower()).strip("-")


def _jsonable(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if hasattr(value, "hex") and type(value).__name__ == "UUID":
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def documents(conn: Any, project_id: str, pst_file_id: str) -> Iterator[dict[str, Any]]:
    """One JSON-ready document per email of the PST, in email_id order (streamed)."""
    with conn.cursor(name="pstfast_index_docs") as cur:
        cur.itersize = 2000
        cur.execute(_DOC_SQL, {"project_id": project_id, "pst_file_id": pst_file_id, "body_chars": BODY_CHARS})
        names = [d.name for d in cur.description]
        for row in cur:
            yield {name: _jsonable(value) for name, value in zip(names, row)}


def bulk_actions(docs: Iterable[dict[str, Any]], index: str) -> Iterator[dict[str, Any]]:
    """opensearch-py actions: index each document under its email_id."""
    for doc in docs:
        yield {"_op_type": "index", "_index": index, "_id": doc["email_id"], "_source": doc}


def bulk_ndjson_chunks(actions: Iterable[dict[str, Any]], max_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """``_bulk`` request bodies (action line + source line per document), each at most
    *max_bytes* unless a single document is bigger on its own."""
    chunk: list[bytes] = []
    size = 0
    for action in actions:
        head = json.dumps({"index": {"_index": action["_index"], "_id": action["_id"]}}, sort_keys=True)
        body = json.dumps(action["_source"], sort_keys=True, ensure_ascii=False)
        pair = (head + "\n" + body + "\n").encode()
        if chunk and size + len(pair) > max_bytes:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(pair)
        size += len(pair)
    if chunk:
        yield b"".join(chunk)


def write_bulk_files(root: str | os.PathLike[str], pst_file_id: str, chunks: Iterable[bytes]) -> tuple[list[str], int]:
    """Write ``stages/index/bulk-NNNNN.ndjson`` and ``bulk.json`` (the list with sha256s)."""
    prefix = stage_prefix(root, pst_file_id, "index")
    files: list[dict[str, Any]] = []
    total = 0
    for number, chunk in enumerate(chunks, start=1):
        name = f"bulk-{number:05d}.ndjson"
        storage.write_bytes(storage.join(prefix, name), chunk)
        files.append({"name": name, "size": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
        total += len(chunk)
    listing = json.dumps({"files": files}, indent=2, sort_keys=True).encode() + b"\n"
    storage.write_bytes(storage.join(prefix, "bulk.json"), listing)
    return [f["name"] for f in files], total


def send_bulk(url: str, actions: Iterable[dict[str, Any]]) -> int:
    """Send *actions* to OpenSearch at *url* with ``streaming_bulk``; returns documents indexed."""
    from ..extras import require

    OpenSearch = require("opensearchpy", "the OpenSearch index backend").OpenSearch
    from opensearchpy.exceptions import ConnectionError as OsConnectionError
    from opensearchpy.exceptions import TransportError
    from opensearchpy.helpers import BulkIndexError, streaming_bulk

    client = OpenSearch(hosts=[url], timeout=60)
    done = 0
    try:
        for ok, item in streaming_bulk(
            client, actions, chunk_size=10_000, max_chunk_bytes=CHUNK_BYTES, max_retries=3, raise_on_error=True
        ):
            done += 1 if ok else 0
    except (OsConnectionError, BulkIndexError, TransportError) as exc:
        raise TransientError(f"OpenSearch bulk to {url} failed after {done} documents: {exc}") from exc
    return done


def _cut_text(cut: dict[str, list[int]]) -> str:
    return ", ".join(f"{name} {kept:,} of {total:,} characters" for name, (kept, total) in cut.items())


def cut_warnings(conn: Any, project_id: str, pst_file_id: str, limit: int = MAX_WARNINGS) -> tuple[int, list[str]]:
    """How many of the PST's search entries were cut to fit a tsvector, and a warning for
    each of the first *limit* (by email_id) naming the fields cut."""
    rows = conn.execute(sql_text("index_cuts.sql"),
                        {"project_id": project_id, "pst_file_id": pst_file_id, "limit": limit}).fetchall()
    entries = int(rows[0][0]) if rows else 0
    warnings = [f"email {email_id}: search entry cut to fit a tsvector (1 MB): {_cut_text(cut)}"
                for _, email_id, _subject, cut in rows]
    if entries > len(warnings):
        warnings.append(f"... and {entries - len(warnings):,} more search entries cut (email_search.cut)")
    return entries, warnings


def fill_search_vectors(db: Database, project_id: str, pst_file_id: str, parts: int | None = None) -> int:
    """Compute the missing search vectors of one PST on *parts* connections at once (each
    its own transaction over a disjoint part of the rows; a part that fails leaves its rows
    empty for the retry to fill). Returns the rows filled."""
    parts = parts or min(4, os.cpu_count() or 1)

    def fill(part: int) -> int:
        with connection(db) as conn, conn.transaction():
            row = conn.execute(sql_text("index_update.sql"), {"project_id": project_id, "pst_file_id": pst_file_id,
                                                              "part": part, "parts": parts}).fetchone()
            return int(row[0]) if row else 0

    with ThreadPoolExecutor(parts) as pool:
        return sum(pool.map(fill, range(parts)))


def index(
    root: str | os.PathLike[str],
    pst_file_id: str,
    db: Database = None,
    *,
    project_id: str | None = None,
    backend: str = "postgres",
    opensearch_url: str | None = None,
) -> IndexResult:
    """Make one PST's emails searchable with *backend*; idempotent.

    Raises:
        UsageError: an unknown backend, or ``opensearch`` without a URL.
        StorageError: OpenSearch or the bulk files could not be reached (transient).
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown index backend {backend!r} (choose {', '.join(BACKENDS)})")
    if backend == "opensearch" and not opensearch_url:
        raise UsageError("--index-backend opensearch needs --opensearch-url")
    t0 = time.perf_counter()
    with connection(db) as conn:
        apply_migrations(conn)
        project = register_pst_file(conn, pst_file_id, project_id)
        conn.commit()
        if backend == "postgres":
            fill_search_vectors(db, project, pst_file_id)
            with conn.transaction():
                row = conn.execute(sql_text("index_finish.sql"),
                                   {"project_id": project, "pst_file_id": pst_file_id}).fetchone()
                count = int(row[0]) if row else 0
                cut, warnings = cut_warnings(conn, project, pst_file_id)
                set_status(conn, pst_file_id, "indexed")
            for warning in warnings:
                log.warning("index %s: %s", pst_file_id, warning)
            return IndexResult(pst_file_id, project, backend, count, round(time.perf_counter() - t0, 6),
                               cut_entries=cut, warnings=warnings)

        with conn.transaction():
            names, size = write_bulk_files(
                root, pst_file_id, bulk_ndjson_chunks(bulk_actions(documents(conn, project, pst_file_id), index_name(project)))
            )
        with conn.transaction():
            sent = send_bulk(str(opensearch_url), bulk_actions(documents(conn, project, pst_file_id), index_name(project)))
            set_status(conn, pst_file_id, "indexed")
        return IndexResult(pst_file_id, project, backend, sent, round(time.perf_counter() - t0, 6), names, size)
