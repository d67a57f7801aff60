"""The index stage: full-text search over one PST's emails.

Backends:

* ``postgres`` (default): compute the search entry (a tsvector, ``pstfast_search_vector``)
  of every email without one into the narrow ``email_search`` table (both from
  ``sql/005_search_table.sql``) on several connections at once (``sql/index_update.sql``),
  then merge its GIN index's pending list in one batch (``sql/index_finish.sql``); query it
  with :func:`pstfast.search`.
* ``opensearch``: build ``_bulk`` NDJSON (deterministic ``_id`` = email_id, documents in
  email_id order, then one document per attachment with text, ``_id`` = attachment_id;
  key-sorted JSON; with *embeddings*, each with its ``embedding``), write it under
  ``stages/index/`` as ``bulk-NNNNN.ndjson`` files of at most ~10 MB each (each one a valid
  ``_bulk`` body, listed in ``bulk.json``) so it can be replayed, then send what the files
  hold with opensearch-py's ``streaming_bulk`` (chunks of ~10 MB), into an index created
  with :func:`index_mapping` (a ``knn_vector`` field) when it does not exist.

Both backends first run the attachment text step (:mod:`pstfast.enrich.attachments`); the
postgres backend then embeds with *embeddings* into pgvector (:mod:`pstfast.enrich.vectors`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
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
from .attachments import extract_texts
from .embed import MODES as EMBEDDING_MODES
from .vectors import embed_pst

if TYPE_CHECKING:
    from ..db.connect import Database

log = logging.getLogger(__name__)

BACKENDS = ("postgres", "opensearch")
CHUNK_BYTES = 10 * 1024 * 1024
#: body characters sent to OpenSearch per document: its index.highlight.max_analyzed_offset
#: (highlighting refuses longer fields); its http.max_content_length is 100 MB
BODY_CHARS = 1_000_000
#: characters of the other fields per document, as for a PostgreSQL search entry
#: (008_search_limits.sql); recipients are kept whole, in order, while they fit
SUBJECT_CHARS = 10_000
SENDER_CHARS = 10_000
RECIPIENT_CHARS = 1_000_000
#: item statuses of a bulk response worth another try (the stage retries); any other
#: failed item is a document the server rejected (a mapping conflict, a bad value)
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
#: warnings listed one by one in the stage manifest (the counts give the total)
MAX_WARNINGS = 20

_DOC_SQL = """
SELECT email_id, project_id, pst_file_id, parent_email_id, folder_path, message_class,
       internet_message_id, subject, sender_name, sender_email, "to", cc, bcc, sent_at,
       received_at, left(body_text, %(body_chars)s) AS body_text, length(body_text) AS body_chars,
       attachment_count, importance,
       content_hash, thread_id, thread_parent_id, thread_position, duplicate_of,
       duplicate_pst_file_ids,
       -- 010: review metadata, and what PostgreSQL's entries add to the recipients field
       folder_id, categories, is_read, is_draft, sensitivity,
       pstfast_item_search_terms(categories, item_properties) AS item_terms
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
    #: documents the OpenSearch server refused (a mapping conflict, a bad value): not indexed
    rejected: int = 0
    #: what the stage manifest lists under ``warnings``: cut entries, rejected documents,
    #: attachments that gave no text (encrypted, too large, failed)
    warnings: list[str] = field(default_factory=list)
    #: attachment contents whose text was extracted by this run (the project's cache had the rest)
    attachment_texts: int = 0
    #: attachment search entries added (postgres) or attachment documents sent (opensearch)
    attachment_entries: int = 0
    #: the PST's attachment contents by text status: ok, empty, encrypted, unsupported, too_large, failed
    attachment_statuses: dict[str, int] = field(default_factory=dict)
    #: the embedding mode of this run (``none``, ``fast``, ``quality``)
    embeddings: str = "none"
    #: emails and attachment text chunks embedded by this run
    embedded_emails: int = 0
    embedded_chunks: int = 0
    #: seconds of the parts: attachment_text, embeddings
    timings: dict[str, float] = field(default_factory=dict)


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


def _cut_list(values: list[str], budget: int) -> tuple[list[str], int, int]:
    """The leading *values* whose lengths (plus one separator each) fit in *budget*
    characters; with the characters kept and the characters there were."""
    kept: list[str] = []
    used = total = 0
    full = False
    for value in values:
        size = len(value) + 1
        total += size
        full = full or used + size > budget
        if not full:
            kept.append(value)
            used += size
    return kept, used, total


def cut_fields(doc: dict[str, Any]) -> dict[str, list[int]] | None:
    """Cut *doc*'s fields in place to the limits above (the body is already cut by the
    query, which gives its length as ``body_chars``); returns what was cut as
    ``{field: [characters kept, characters]}`` (the shape of ``email_search.cut``), or None."""
    cut: dict[str, list[int]] = {}
    body_chars = doc.pop("body_chars", None)
    subject = doc.get("subject")
    if isinstance(subject, str) and len(subject) > SUBJECT_CHARS:
        cut["subject"] = [SUBJECT_CHARS, len(subject)]
        doc["subject"] = subject[:SUBJECT_CHARS]
    sender_total = sum(len(doc.get(k) or "") for k in ("sender_name", "sender_email"))
    if any(len(doc.get(k) or "") > SENDER_CHARS for k in ("sender_name", "sender_email")):
        for key in ("sender_name", "sender_email"):
            if doc.get(key):
                doc[key] = doc[key][:SENDER_CHARS]
        cut["sender"] = [sum(len(doc.get(k) or "") for k in ("sender_name", "sender_email")), sender_total]
    budget, kept_chars, total_chars = RECIPIENT_CHARS, 0, 0
    for key in ("to", "cc", "bcc", "item_terms"):  # item_terms: in the recipients' budget, as in PostgreSQL
        values = doc.get(key)
        if isinstance(values, list):
            kept, used, total = _cut_list(values, budget)
            doc[key] = kept
            budget -= used
            kept_chars += used
            total_chars += total
    if kept_chars < total_chars:
        cut["recipients"] = [kept_chars, total_chars]
    if isinstance(body_chars, int) and body_chars > len(doc.get("body_text") or ""):
        cut["body"] = [len(doc.get("body_text") or ""), body_chars]
    return cut or None


def documents(
    conn: Any, project_id: str, pst_file_id: str, cuts: list[tuple[str, dict[str, list[int]]]] | None = None
) -> Iterator[dict[str, Any]]:
    """One JSON-ready document per email of the PST, in email_id order (streamed), each field
    cut to its limit (:func:`cut_fields`; a cut document carries ``cut``, and is appended
    to *cuts* as (email_id, cut) when given)."""
    with conn.cursor(name="pstfast_index_docs") as cur:
        cur.itersize = 2000
        cur.execute(_DOC_SQL, {"project_id": project_id, "pst_file_id": pst_file_id, "body_chars": BODY_CHARS})
        names = [d.name for d in cur.description]
        for row in cur:
            doc = {name: _jsonable(value) for name, value in zip(names, row)}
            doc["doc_type"] = "email"
            cut = cut_fields(doc)
            if cut:
                doc["cut"] = cut
                if cuts is not None:
                    cuts.append((str(doc["email_id"]), cut))
            yield doc


def attachment_documents(conn: Any, project_id: str, pst_file_id: str) -> Iterator[dict[str, Any]]:
    """One JSON-ready document per attachment of the PST whose content has text
    (``doc_type`` ``attachment``, ``_id`` = attachment_id), naming its e-mail and thread; the
    text cut to :data:`BODY_CHARS` (a cut document carries ``cut``)."""
    with conn.cursor(name="pstfast_index_attachment_docs") as cur:
        cur.itersize = 200
        cur.execute(sql_text("index_attachment_docs.sql"),
                    {"project_id": project_id, "pst_file_id": pst_file_id, "text_chars": BODY_CHARS})
        names = [d.name for d in cur.description]
        for row in cur:
            doc = {name: _jsonable(value) for name, value in zip(names, row)}
            doc["doc_type"] = "attachment"
            chars = doc.pop("text_chars")
            if isinstance(chars, int) and chars > len(doc["attachment_text"] or ""):
                doc["cut"] = {"attachment_text": [len(doc["attachment_text"]), chars]}
            yield doc


def with_embeddings(docs: Iterable[dict[str, Any]], mode: str, batch: int = 256) -> Iterator[dict[str, Any]]:
    """*docs* with an ``embedding`` (the ``knn_vector`` field) each: an e-mail's of its
    subject and body, an attachment's the normalised mean of its text chunks' vectors."""
    import numpy as np

    from .embed import chunks, embedder
    from .vectors import EMAIL_CHARS

    model = embedder(mode)

    def flush(pending: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for doc in pending:
            if doc["doc_type"] == "attachment":
                pieces = chunks(doc.get("attachment_text") or "") or [""]
            else:
                pieces = ["\n".join(filter(None, (doc.get("subject"), (doc.get("body_text") or "")[:EMAIL_CHARS])))]
            spans.append((len(texts), len(texts) + len(pieces)))
            texts += pieces
        vectors = model.encode(texts)
        for doc, (start, end) in zip(pending, spans):
            mean = vectors[start:end].mean(0)
            norm = float(np.linalg.norm(mean))
            doc["embedding"] = [round(float(x), 6) for x in (mean / norm if norm else mean)]
            yield doc

    pending: list[dict[str, Any]] = []
    for doc in docs:
        pending.append(doc)
        if len(pending) >= batch:
            yield from flush(pending)
            pending = []
    if pending:
        yield from flush(pending)


def index_mapping(dimensions: int = 384) -> dict[str, Any]:
    """The mapping a new project index is created with: the id fields as keywords and
    ``embedding`` a ``knn_vector`` (HNSW, cosine, Lucene engine) for k-NN queries."""
    keyword = {"type": "keyword"}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {"properties": {
            "doc_type": keyword, "email_id": keyword, "attachment_id": keyword, "thread_id": keyword,
            "pst_file_id": keyword, "project_id": keyword, "sha256": keyword,
            "attachment_text": {"type": "text"}, "filename": {"type": "text"},
            "embedding": {"type": "knn_vector", "dimension": dimensions,
                          "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"}},
        }},
    }


def bulk_actions(docs: Iterable[dict[str, Any]], index: str) -> Iterator[dict[str, Any]]:
    """opensearch-py actions: index each document under its attachment_id (an attachment
    document) or email_id."""
    for doc in docs:
        yield {"_op_type": "index", "_index": index, "_id": doc.get("attachment_id") or doc["email_id"],
               "_source": doc}


def actions_from_bulk_files(root: str | os.PathLike[str], pst_file_id: str, names: list[str]) -> Iterator[dict[str, Any]]:
    """The actions of the ``bulk-NNNNN.ndjson`` files written by :func:`write_bulk_files`:
    what is sent is exactly what was written (embeddings are computed once)."""
    prefix = stage_prefix(root, pst_file_id, "index")
    for name in names:
        lines = storage.read_bytes(storage.join(prefix, name)).decode().splitlines()
        for head, body in zip(lines[0::2], lines[1::2]):
            meta = json.loads(head)["index"]
            yield {"_op_type": "index", "_index": meta["_index"], "_id": meta["_id"], "_source": json.loads(body)}


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


@dataclass
class BulkOutcome:
    """What the server did with the documents of one send."""

    indexed: int
    #: (email_id, "<error type>: <reason>") of each document the server refused
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _item_error(item: dict[str, Any]) -> tuple[str, int, str]:
    """(_id, status, "type: reason") of one failed ``streaming_bulk`` item (never its data)."""
    info: dict[str, Any] = next(iter(item.values()), {}) if item else {}
    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
    else:
        reason = str(error or info.get("exception") or "unknown error")
    return str(info.get("_id")), int(info.get("status") or 0), reason[:500]


def send_bulk(url: str, actions: Iterable[dict[str, Any]], index: str | None = None,
              mapping: dict[str, Any] | None = None) -> BulkOutcome:
    """Send *actions* to OpenSearch at *url* with ``streaming_bulk`` (429s retried), then
    refresh *index* so what was sent is searchable when this returns. A missing *index* is
    first created with *mapping* (an existing one is left as it is).

    A document the server refuses (status 4xx: a mapping conflict, a value it cannot
    parse) is returned in :attr:`BulkOutcome.rejected`: sending it again would not help.

    Raises:
        TransientError: the server could not be reached, refused a whole request, or
            answered an item with 429/5xx after the retries (the stage retry sends all
            again; documents are indexed by email_id, so that is idempotent).
    """
    from ..extras import require

    OpenSearch = require("opensearchpy", "the OpenSearch index backend").OpenSearch
    from opensearchpy.exceptions import TransportError
    from opensearchpy.helpers import streaming_bulk

    client = OpenSearch(hosts=[url], timeout=60)
    outcome = BulkOutcome(0)
    retryable: list[tuple[str, int, str]] = []
    try:
        if index is not None and mapping is not None and not client.indices.exists(index=index):
            client.indices.create(index=index, body=mapping)
        for ok, item in streaming_bulk(
            client, actions, chunk_size=10_000, max_chunk_bytes=CHUNK_BYTES, max_retries=3,
            raise_on_error=False, raise_on_exception=True,
        ):
            if ok:
                outcome.indexed += 1
                continue
            doc_id, status, reason = _item_error(item)
            if status in _RETRYABLE_STATUS or status == 0:
                retryable.append((doc_id, status, reason))
            else:
                outcome.rejected.append((doc_id, reason))
        if index is not None:
            client.indices.refresh(index=index)
    except TransportError as exc:  # ConnectionError (unreachable) is one
        raise TransientError(f"OpenSearch bulk to {url} failed after {outcome.indexed} documents: "
                             f"{type(exc).__name__}: {str(exc)[:500]}") from exc
    if retryable:
        doc_id, status, reason = retryable[0]
        raise TransientError(f"OpenSearch bulk to {url}: {len(retryable)} document(s) not indexed, e.g. {doc_id} "
                             f"(status {status}: {reason})")
    return outcome


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
    embeddings: str | None = None,
) -> IndexResult:
    """Make one PST's emails and their attachments' text searchable with *backend*, and with
    *embeddings* (``fast`` or ``quality``; default ``PSTFAST_EMBEDDINGS``, else none) their
    vectors too; idempotent.

    Raises:
        UsageError: an unknown backend or embedding mode, or ``opensearch`` without a URL.
        MissingDependencyError: *embeddings* without the ``[semantic]`` extra, or pgvector
            missing on the server (postgres backend).
        StorageError: OpenSearch or the bulk files could not be reached (transient).
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown index backend {backend!r} (choose {', '.join(BACKENDS)})")
    if backend == "opensearch" and not opensearch_url:
        raise UsageError("--index-backend opensearch needs --opensearch-url")
    embeddings = embeddings if embeddings is not None else os.environ.get("PSTFAST_EMBEDDINGS") or None
    if embeddings in ("none", ""):
        embeddings = None
    if embeddings is not None and embeddings not in EMBEDDING_MODES:
        raise UsageError(f"unknown embedding mode {embeddings!r} (choose {', '.join(EMBEDDING_MODES)} or none)")
    t0 = time.perf_counter()
    with connection(db) as conn:
        apply_migrations(conn)
        project = register_pst_file(conn, pst_file_id, project_id)
        conn.commit()
        texts = extract_texts(root, pst_file_id, project, db)
        vectors = embed_pst(db, project, pst_file_id, embeddings) if embeddings and backend == "postgres" else None
        if backend == "postgres":
            fill_search_vectors(db, project, pst_file_id)
            with conn.transaction():
                row = conn.execute(sql_text("index_finish.sql"),
                                   {"project_id": project, "pst_file_id": pst_file_id}).fetchone()
                count = int(row[0]) if row else 0
                cut, warnings = cut_warnings(conn, project, pst_file_id)
                set_status(conn, pst_file_id, "indexed")
            warnings += texts.warnings
            for warning in warnings:
                log.warning("index %s: %s", pst_file_id, warning)
            return IndexResult(pst_file_id, project, backend, count, round(time.perf_counter() - t0, 6),
                               cut_entries=cut, warnings=warnings, attachment_texts=texts.extracted,
                               attachment_entries=texts.entries, attachment_statuses=texts.statuses,
                               embeddings=embeddings or "none", embedded_emails=vectors.emails if vectors else 0,
                               embedded_chunks=vectors.chunks if vectors else 0,
                               timings={"attachment_text": texts.seconds,
                                        "embeddings": vectors.seconds if vectors else 0.0})

        name = index_name(project)
        cuts: list[tuple[str, dict[str, list[int]]]] = []
        with conn.transaction():
            docs: Iterator[dict[str, Any]] = itertools.chain(documents(conn, project, pst_file_id, cuts),
                                   attachment_documents(conn, project, pst_file_id))
            if embeddings:
                docs = with_embeddings(docs, embeddings)
            names, size = write_bulk_files(root, pst_file_id, bulk_ndjson_chunks(bulk_actions(docs, name)))
        attachment_ids = {a["_id"] for a in actions_from_bulk_files(root, pst_file_id, names)
                          if a["_source"].get("doc_type") == "attachment"}
        with conn.transaction():
            sent = send_bulk(str(opensearch_url), actions_from_bulk_files(root, pst_file_id, names), name,
                             index_mapping())
            set_status(conn, pst_file_id, "indexed")
        attachments_sent = len(attachment_ids - {doc_id for doc_id, _ in sent.rejected})
        warnings = [f"email {email_id}: document cut to the OpenSearch field limits: {_cut_text(cut)}"
                    for email_id, cut in cuts[:MAX_WARNINGS]]
        if len(cuts) > MAX_WARNINGS:
            warnings.append(f"... and {len(cuts) - MAX_WARNINGS:,} more documents cut")
        warnings += [f"email {email_id}: rejected by OpenSearch ({name}): {reason}"
                     for email_id, reason in sent.rejected[:MAX_WARNINGS]]
        if len(sent.rejected) > MAX_WARNINGS:
            warnings.append(f"... and {len(sent.rejected) - MAX_WARNINGS:,} more documents rejected")
        warnings += texts.warnings
        for warning in warnings:
            log.warning("index %s: %s", pst_file_id, warning)
        return IndexResult(pst_file_id, project, backend, sent.indexed - attachments_sent,
                           round(time.perf_counter() - t0, 6), names, size, cut_entries=len(cuts),
                           rejected=len(sent.rejected), warnings=warnings, attachment_texts=texts.extracted,
                           attachment_entries=attachments_sent, attachment_statuses=texts.statuses,
                           embeddings=embeddings or "none",
                           timings={"attachment_text": texts.seconds})
