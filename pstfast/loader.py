"""The load stage: one PST's extract output into ``email_messages`` / ``email_attachments``.

1. Read ``manifest.json`` (its presence means the extract completed).
2. In ONE transaction, recreate this PST's UNLOGGED staging tables (this also clears what
   a crashed attempt left) and stream ``emails.csv.gz`` / ``attachments.csv.gz`` into them
   with ``COPY ... FROM STDIN (FREEZE)``: compressed bytes are hashed and decompressed
   (isal) block by block and the blocks queued to a writer thread that feeds COPY, so
   Python decompresses while the server parses; no per-row Python. FREEZE is allowed
   because the tables were created in the same transaction: the rows are written frozen
   and all-visible, so the later scans do not rewrite every staging page to set hint bits.
   A crash mid-COPY rolls the whole transaction back (no staging left).
3. Refuse (:class:`ManifestError`, ``pst_files.status = failed``) when a file's sha256 or
   size differs from the manifest. Nothing has touched the targets yet: only the scratch
   staging tables have seen the bytes, and they are rolled back.
4. Check counts and invariants against the manifest in one scan of staging
   (``load_validate_fast.sql``); on any problem, the full ``load_validate.sql`` names them all.
5. In ONE transaction: if this PST has no rows in the targets yet (``load_first.sql``),
   plain ``INSERT ... SELECT`` (``load_insert.sql``), whose primary keys enforce unique
   ids and no collision with other PSTs (a violation aborts the transaction and is
   explained by ``load_validate.sql``); otherwise (a rerun) the full validation and the
   merge ``load_upsert.sql``. Then ``pst_files.status = 'loaded'`` and drop staging. A
   crash before the commit leaves the targets as they were; a rerun gives the same rows.
   ``synchronous_commit = off`` for this one transaction: the commit does not wait for
   its WAL flush; a server crash in the next ~0.6 s can lose it, but the stage's next
   synchronous commit (its ``stage_runs`` row) flushes it first, so a stage that
   reported success never loses its load.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import dataclass, field
from typing import IO, Any

from . import storage
from .db import connection, sql_statements
from .errors import InputError, ManifestError, UsageError
from .manifest import Manifest, read_manifest
from .migrations import apply_migrations
from .stagelog import mark_failed, register_pst_file, set_status

EMAILS_CSV = "emails.csv.gz"
ATTACHMENTS_CSV = "attachments.csv.gz"
_BLOCK = 1 << 20


@dataclass
class LoadResult:
    """What one load did."""

    pst_file_id: str
    project_id: str
    emails: int
    attachments: int
    bytes_compressed: int
    bytes_csv: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.emails + self.attachments


def staging_tables(pst_file_id: str) -> dict[str, str]:
    """The staging table names of one PST (short, identifier-safe, stable)."""
    digest = hashlib.sha256(pst_file_id.encode()).hexdigest()[:16]
    return {"emails": f"pstfast_staging.emails_{digest}", "attachments": f"pstfast_staging.attachments_{digest}"}


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing and counting them."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha.update(data)
        self.size += n
        return n

    def drain(self) -> None:
        while self.read(_BLOCK):
            pass


def _copy_file(conn: Any, url: str, table: str, want: dict[str, Any]) -> tuple[int, int]:
    """COPY one CSV.gz object into *table*; returns (compressed, csv) byte counts."""
    import psycopg
    from isal import igzip
    from psycopg import sql

    from psycopg.copy import QueuedLibpqWriter

    stmt = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true, FREEZE true)").format(
        sql.Identifier(*table.split(".")))
    csv_bytes = 0
    with storage.open_file(url, "rb") as raw:
        hashed = _HashingReader(raw)
        failure: BaseException | None = None
        try:
            # the queued writer sends from a thread: isal decompresses the next block
            # while libpq waits for the server to take the previous one
            with conn.cursor() as cur, cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as copy:
                with igzip.GzipFile(fileobj=hashed, mode="rb") as gz:
                    while block := gz.read(_BLOCK):
                        copy.write(block)
                        csv_bytes += len(block)
        except (OSError, EOFError, psycopg.DataError) as exc:  # bad gzip, or rows COPY rejects
            failure = exc
        hashed.drain()
    if hashed.size != want.get("size") or hashed.sha.hexdigest() != want.get("sha256"):
        raise ManifestError(
            f"{url}: checksum mismatch (sha256 {hashed.sha.hexdigest()}, {hashed.size} bytes; "
            f"manifest says {want.get('sha256')}, {want.get('size')} bytes): refusing to load"
        )
    if failure is not None:
        detail = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        raise ManifestError(f"{url}: not loadable although its checksum matches: {detail}") from failure
    return hashed.size, csv_bytes


def _check(manifest: Manifest, facts: dict[str, int], where: str) -> None:
    problems = []
    if facts["emails"] != manifest.counts.get("emails"):
        problems.append(f"{facts['emails']} email rows, manifest says {manifest.counts.get('emails')}")
    if facts["attachments"] != manifest.counts.get("attachments"):
        problems.append(f"{facts['attachments']} attachment rows, manifest says {manifest.counts.get('attachments')}")
    labels = {
        "distinct_email_ids": None, "null_email_keys": "rows without email_id/project_id/pst_file_id",
        "foreign_pst_rows": "rows of another pst_file_id", "foreign_project_rows": "rows of another project",
        "orphan_embedded": "embedded messages whose parent is missing",
        "null_attachment_keys": "attachments without attachment_id/email_id",
        "orphan_attachments": "attachments whose email is missing",
        "id_collisions": "email_ids already loaded from another PST",
    }
    # the first-load check (load_validate_fast.sql) leaves uniqueness to the primary keys
    if facts.get("distinct_email_ids", facts["emails"]) != facts["emails"]:
        problems.append(f"{facts['emails'] - facts['distinct_email_ids']} duplicate email_ids")
    if facts.get("distinct_attachment_ids", facts["attachments"]) != facts["attachments"]:
        problems.append(f"{facts['attachments'] - facts['distinct_attachment_ids']} duplicate attachment_ids")
    for key, label in labels.items():
        if label and facts.get(key):
            problems.append(f"{facts[key]} {label}")
    if problems:
        raise ManifestError(f"{where}: refusing to load: " + "; ".join(problems))


def load(
    root: str | os.PathLike[str],
    pst_file_id: str,
    db: str | None = None,
    *,
    project_id: str | None = None,
) -> LoadResult:
    """Load one PST's extract output under *root* into PostgreSQL (idempotent)."""
    prefix = storage.output_prefix(root, pst_file_id)
    manifest = read_manifest(prefix)
    if manifest.pst_file_id != pst_file_id:
        raise ManifestError(f"{prefix}manifest.json is for pst_file_id {manifest.pst_file_id!r}, not {pst_file_id!r}")
    if project_id and manifest.project_id and manifest.project_id != project_id:
        raise ManifestError(f"{prefix}manifest.json is for project {manifest.project_id!r}, not {project_id!r}")
    project = project_id or manifest.project_id
    if not project:
        raise UsageError(f"{prefix}: the manifest names no project: pass --project-id")
    with connection(db) as conn:
        apply_migrations(conn)
        register_pst_file(conn, pst_file_id, project, manifest.source)
        conn.commit()
        try:
            return _load(conn, prefix, manifest, pst_file_id, project)
        except InputError as exc:
            conn.rollback()
            mark_failed(conn, pst_file_id, exc, stage="load", project_id=project)
            raise


def _facts(conn: Any, name: str, tables: dict[str, str], params: dict[str, str]) -> dict[str, int]:
    """The one row of a validation query, by column name."""
    with conn.cursor() as cur:
        (stmt,) = sql_statements(name, **tables)
        cur.execute(stmt, params)
        assert cur.description is not None
        return dict(zip([d.name for d in cur.description], cur.fetchone() or ()))


def _load(conn: Any, prefix: str, manifest: Manifest, pst_file_id: str, project_id: str) -> LoadResult:
    import psycopg

    tables = staging_tables(pst_file_id)
    params = {"pst_file_id": pst_file_id, "project_id": project_id}
    timings: dict[str, float] = {}
    for name in (EMAILS_CSV, ATTACHMENTS_CSV):
        if name not in manifest.objects:
            raise ManifestError(f"{prefix}manifest.json lists no {name}")
    # hashes of 100k ids, and the rerun merge, stay in memory (the default 4 MB spills)
    conn.execute("SET work_mem = '64MB'")
    conn.commit()

    t0 = time.perf_counter()
    compressed = csv_bytes = 0
    with conn.transaction():  # create + fill together: COPY FREEZE, and a crash leaves nothing
        for stmt in sql_statements("staging_create.sql", **tables):
            conn.execute(stmt)
        for name, table in ((EMAILS_CSV, tables["emails"]), (ATTACHMENTS_CSV, tables["attachments"])):
            c, u = _copy_file(conn, storage.join(prefix, name), table, manifest.objects[name])
            compressed, csv_bytes = compressed + c, csv_bytes + u
    t1 = time.perf_counter()
    timings["copy"] = t1 - t0

    facts = _facts(conn, "load_validate_fast.sql", tables, params)
    conn.commit()
    try:
        _check(manifest, facts, prefix)
    except ManifestError:
        _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)  # names every problem
        raise
    t2 = time.perf_counter()
    timings["validate"] = t2 - t1

    try:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            (first,) = sql_statements("load_first.sql")
            loaded_before = conn.execute(first, params).fetchone()[0]
            if loaded_before:  # a rerun: full validation, then merge
                _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)
                statements = sql_statements("load_upsert.sql", **tables)
            else:
                statements = sql_statements("load_insert.sql", **tables)
            for stmt in statements:
                conn.execute(stmt, params)
            set_status(conn, pst_file_id, "loaded", email_count=facts["emails"], attachment_count=facts["attachments"])
            for stmt in sql_statements("staging_drop.sql", **tables):
                conn.execute(stmt)
    except psycopg.errors.UniqueViolation as exc:  # first load: a duplicate or colliding id
        _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)
        detail = (exc.diag.message_detail or str(exc)).strip().splitlines()[0]
        raise ManifestError(f"{prefix}: refusing to load: id already loaded from another PST: {detail}") from exc
    timings["upsert" if loaded_before else "insert"] = time.perf_counter() - t2
    return LoadResult(
        pst_file_id=pst_file_id, project_id=project_id, emails=facts["emails"],
        attachments=facts["attachments"], bytes_compressed=compressed, bytes_csv=csv_bytes,
        timings={k: round(v, 6) for k, v in timings.items()},
    )


def drop_staging(pst_file_id: str, db: str | None = None) -> None:
    """Drop a PST's staging tables (what a rerun also does first)."""
    with connection(db) as conn, conn.transaction():
        for stmt in sql_statements("staging_drop.sql", **staging_tables(pst_file_id)):
            conn.execute(stmt)


__all__ = ["LoadResult", "drop_staging", "load", "staging_tables"]
