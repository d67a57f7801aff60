"""The load stage: one PST's extract output into ``email_messages`` / ``email_attachments``.

1. Read ``manifest.json`` (its presence means the extract completed); drop what a crashed
   attempt left in staging; note whether this PST already has rows (``load_first.sql``).
2. COPY: in ONE transaction, create this PST's UNLOGGED, index-free staging tables and
   stream ``attachments.csv.gz`` / ``emails.csv.gz`` into them with ``COPY ... FROM STDIN
   (FREEZE)``: compressed bytes are hashed and decompressed (isal) block by block and the
   blocks queued to psycopg's writer thread, so Python decompresses while the server
   parses; no per-row Python. FREEZE is allowed because the tables were created in the
   same transaction: rows are written frozen and all-visible, so later scans do not
   rewrite every staging page to set hint bits. A crash mid-COPY rolls it all back.
3. Refuse (:class:`ManifestError`, ``pst_files.status = failed``) when a file's sha256 or
   size differs from the manifest: the targets have not been touched.
4. Validate against the manifest in one scan of staging (``load_validate_fast.sql``: row
   counts, non-null keys, this PST/project only, no orphan attachment or embedded
   message); on any problem the full ``load_validate.sql`` names them all.
5. In ONE transaction: a first load is a plain ``INSERT ... SELECT`` (``load_insert.sql``)
   whose primary keys enforce unique ids and no collision with other PSTs (a violation
   aborts the transaction and ``load_validate.sql`` explains it); a rerun gets the full
   validation and the merge ``load_upsert.sql``. Then ``pst_files.status = 'loaded'`` and
   staging dropped. A crash before the commit leaves the targets as they were; a rerun
   gives the same rows.

Pipelined first load (a local ``emails.csv.gz`` of >= ``PIPELINE_MIN_BYTES``): its
checksum is verified up front, then steps 2 (emails), 4 and 5 overlap on two connections:
a second connection COPYs ~16 MB chunks of whole rows into staging parts (each committed,
attached under the staging emails table) while the load transaction inserts each finished
part into the target; validation runs over all parts before that transaction commits. The
server parses chunk n+1 while it writes chunk n: two cores instead of one.

The final transaction runs with ``synchronous_commit = off`` (no wait for its own WAL
flush). Through ``pstfast stage load`` nothing can be lost: the stage's next commit (its
``stage_runs`` row) is synchronous and flushes the load's WAL first, and if it fails the
stage fails and is retried. A direct ``pstfast.load()`` caller can lose a load that just
returned if the server crashes within ~0.6 s (the rerun then loads it again).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .. import config, storage
from ..db.connect import (
    connect,
    connection,
    resolve_dsn,
    set_toast_compression,
    sql_statements,
    translate_errors,
)
from ..db.migrate import apply_migrations
from ..errors import InputError, ManifestError
from ..manifest import Manifest, check_not_running, read_manifest
from ..pipeline.stagelog import mark_failed, register_pst_file, set_status

if TYPE_CHECKING:
    from ..db.connect import Database

EMAILS_CSV = "emails.csv.gz"
ATTACHMENTS_CSV = "attachments.csv.gz"
FOLDERS_CSV = "folders.csv.gz"  # extracts before pstfast 0.3 (migration 010) have none
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
    toast_compression: str = "pglz"  # how the server compressed the bodies (config.toast_compression)

    @property
    def rows(self) -> int:
        return self.emails + self.attachments


# A first load whose local emails.csv.gz is at least this big (compressed) is pipelined.
PIPELINE_MIN_BYTES = 4 << 20
_CHUNK = 16 << 20  # CSV bytes per pipelined staging part


def staging_tables(pst_file_id: str) -> dict[str, str]:
    """The staging table names of one PST (short, identifier-safe, stable). A pipelined
    load adds parts ``<emails>_p<n>``, inheritance children of ``emails`` (dropped with it)."""
    digest = hashlib.sha256(pst_file_id.encode()).hexdigest()[:16]
    return {"emails": f"pstfast_staging.emails_{digest}", "attachments": f"pstfast_staging.attachments_{digest}",
            "folders": f"pstfast_staging.folders_{digest}"}


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


def _row_cut(data: bytes) -> int:
    """Index just past the last row end in *data* (which starts at a row start), or 0.

    A newline ends a row when an even number of double quotes precede it (the CSV dialect
    quotes every text value and doubles embedded quotes, so quote parity says whether a
    newline sits inside a value). bytes.count/rfind run in C; each byte is counted once."""
    pos = data.rfind(b"\n")
    quotes = data.count(b'"', 0, pos) if pos >= 0 else 0
    while pos >= 0 and quotes % 2:
        prev = data.rfind(b"\n", 0, pos)
        quotes -= data.count(b'"', prev + 1 if prev >= 0 else 0, pos)
        pos = prev
    return pos + 1


def _row_chunks(blocks: Iterator[bytes], target: int) -> Iterator[list[bytes]]:
    """Regroup CSV *blocks* into chunks of about *target* bytes that end at a row end."""
    pending: list[bytes] = []
    size, carry = 0, b""
    for block in blocks:
        data = carry + block if carry else block
        cut = _row_cut(data)
        carry = data[cut:]
        if cut:
            pending.append(data[:cut])
            size += cut
        if size >= target:
            yield pending
            pending, size = [], 0
    if carry:
        pending.append(carry)
    if pending:
        yield pending


def _stream(url: str, want: dict[str, Any], feed: Callable[[Iterator[bytes]], None],
            name: str | None = None) -> tuple[int, int]:
    """Decompress one CSV.gz object into *feed* (an iterator of blocks), hashing the
    compressed bytes; refuse when they differ from the manifest. Returns (compressed,
    csv) byte counts. *name*: the object's URL in messages when *url* is a local copy."""
    name = name or url
    import psycopg
    from isal import igzip

    csv_bytes = 0
    with storage.open_file(url, "rb") as raw:
        hashed = _HashingReader(raw)
        failure: BaseException | None = None
        try:
            with igzip.GzipFile(fileobj=hashed, mode="rb") as gz:  # type: ignore[no-untyped-call]
                def blocks() -> Iterator[bytes]:
                    nonlocal csv_bytes
                    while block := gz.read(_BLOCK):
                        csv_bytes += len(block)
                        yield block

                feed(blocks())
        except (OSError, EOFError, psycopg.DataError) as exc:  # bad gzip, or rows COPY rejects
            failure = exc
        hashed.drain()
    if hashed.size != want.get("size") or hashed.sha.hexdigest() != want.get("sha256"):
        raise _mismatch(name, hashed.sha.hexdigest(), hashed.size, want)
    if failure is not None:
        detail = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
        raise ManifestError(f"{name}: not loadable although its checksum matches: {detail}") from failure
    return hashed.size, csv_bytes


def _mismatch(url: str, sha: str, size: int, want: dict[str, Any]) -> ManifestError:
    return ManifestError(
        f"{url}: checksum mismatch (sha256 {sha}, {size} bytes; "
        f"manifest says {want.get('sha256')}, {want.get('size')} bytes): refusing to load")


def _copy_into(conn: Any, table: str, blocks: Iterable[bytes], *, header: bool = True) -> None:
    """COPY CSV *blocks* into *table*, which was created or truncated in the current
    transaction (so FREEZE applies: rows are written frozen and all-visible, and later
    scans do not rewrite every staging page to set hint bits)."""
    from psycopg import sql
    from psycopg.copy import QueuedLibpqWriter

    stmt = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER {}, FREEZE true)").format(
        sql.Identifier(*table.split(".")), sql.SQL("true" if header else "false"))
    # the queued writer sends from a thread: isal decompresses the next block while
    # libpq waits for the server to take the previous one
    with conn.cursor() as cur, cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as copy:
        for block in blocks:
            copy.write(block)


def _check(manifest: Manifest, facts: dict[str, int], where: str) -> None:
    problems = []
    if FOLDERS_CSV in manifest.objects and facts.get("folders") != manifest.counts.get("folders"):
        problems.append(f"{facts.get('folders')} folder rows, manifest says {manifest.counts.get('folders')}")
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
        "attachment_id_collisions": "attachment_ids already loaded under another PST's emails",
        "orphan_folder_refs": "emails whose folder_id is not among the PST's folders",
        "foreign_folder_rows": "folders of another pst_file_id or project",
        "null_folder_keys": "folders without folder_id",
        "folder_id_collisions": "folder_ids already loaded from another PST",
    }
    if FOLDERS_CSV not in manifest.objects:  # an older extract: its rows name no folder
        labels["orphan_folder_refs"] = None
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
    db: Database = None,
    *,
    project_id: str | None = None,
) -> LoadResult:
    """Load one PST's extract output under *root* into PostgreSQL (idempotent).

    Raises:
        ManifestError: the output has no manifest, or its objects do not match it.
        InputError: the rows break an invariant (counts, ids, another project's PST).
        StorageError: an object could not be read (transient).
        ExtractRunningError: an extract is rewriting the output (transient).
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    prefix = storage.output_prefix(root, pst_file_id)
    try:
        manifest = read_manifest(prefix)
    except ManifestError as exc:
        check_not_running(prefix, exc)
        raise
    if manifest.pst_file_id != pst_file_id:
        raise ManifestError(f"{prefix}manifest.json is for pst_file_id {manifest.pst_file_id!r}, not {pst_file_id!r}")
    if project_id and manifest.project_id and manifest.project_id != project_id:
        raise ManifestError(f"{prefix}manifest.json is for project {manifest.project_id!r}, not {project_id!r}")
    if not manifest.project_id:
        # its rows carry no project: whatever the size, refuse before copying anything
        raise ManifestError(f"{prefix}: extracted without a project id, so its rows name none: extract it again "
                            "with --project-id")
    project = project_id or manifest.project_id
    toast = config.toast_compression()
    dsn = resolve_dsn(db)
    with connection(dsn) as conn:
        apply_migrations(conn)
        register_pst_file(conn, pst_file_id, project, manifest.source)
        conn.commit()
        try:
            return _load(conn, dsn, prefix, manifest, pst_file_id, project, toast)
        except InputError as exc:
            conn.rollback()
            if isinstance(exc, ManifestError):  # objects rewritten under the load: a race, not damage
                check_not_running(prefix, exc)
            mark_failed(conn, pst_file_id, exc, stage="load", project_id=project)
            raise


def _facts(conn: Any, name: str, tables: dict[str, str], params: dict[str, str]) -> dict[str, int]:
    """The one row of a validation query, by column name."""
    with conn.cursor() as cur:
        (stmt,) = sql_statements(name, **tables)
        cur.execute(stmt, params)
        assert cur.description is not None
        return dict(zip([d.name for d in cur.description], cur.fetchone() or ()))


def _load(conn: Any, dsn: str, prefix: str, manifest: Manifest, pst_file_id: str, project_id: str,
          toast_choice: str) -> LoadResult:
    tables = staging_tables(pst_file_id)
    params = {"pst_file_id": pst_file_id, "project_id": project_id}
    timings: dict[str, float] = {}
    for name in (EMAILS_CSV, ATTACHMENTS_CSV):
        if name not in manifest.objects:
            raise ManifestError(f"{prefix}manifest.json lists no {name}")
    emails_url = storage.join(prefix, EMAILS_CSV)
    # hashes of 100k ids, and the rerun merge, stay in memory (the default 4 MB spills)
    conn.execute("SET work_mem = '64MB'")
    toast = set_toast_compression(conn, toast_choice)
    conn.commit()  # (the SETs stay for the session) so each block below is its own transaction
    t0 = time.perf_counter()
    with conn.transaction():  # what a crashed attempt left
        for stmt in sql_statements("staging_drop.sql", **tables):
            conn.execute(stmt)
        (first,) = sql_statements("load_first.sql")
        loaded_before = bool(conn.execute(first, params).fetchone()[0])
    want = manifest.objects[EMAILS_CSV]
    pipelined = not loaded_before and int(want.get("size") or 0) >= PIPELINE_MIN_BYTES
    if not pipelined:
        return _load_staged(conn, dsn, prefix, manifest, tables, params, timings, t0,
                            loaded_before=loaded_before, pipelined=False, emails_local=emails_url, toast=toast)
    # the pipeline inserts before the whole file has been read, so its checksum is
    # verified first (~20 ms per 30 MB); an S3 object is fetched once to local scratch
    local = emails_url
    if storage.is_s3(emails_url):
        fd, local = tempfile.mkstemp(prefix="pstfast-load-", suffix=".csv.gz", dir=config.scratch())
        os.close(fd)
    try:
        if local != emails_url:
            storage.download(emails_url, local)
        sha, size = storage.sha256_and_size(local)
        if sha != want.get("sha256") or size != want.get("size"):
            raise _mismatch(emails_url, sha, size, want)
        return _load_staged(conn, dsn, prefix, manifest, tables, params, timings, t0,
                            loaded_before=False, pipelined=True, emails_local=local, toast=toast)
    finally:
        if local != emails_url:
            os.unlink(local)


def _load_staged(conn: Any, dsn: str, prefix: str, manifest: Manifest, tables: dict[str, str],
                 params: dict[str, str], timings: dict[str, float], t0: float, *,
                 loaded_before: bool, pipelined: bool, emails_local: str, toast: str) -> LoadResult:
    """Steps 2-5 (see the module docstring); *emails_local* may be a verified local copy;
    *toast*: the compression *conn* writes long values with."""
    import psycopg

    pst_file_id = params["pst_file_id"]
    emails_url, attachments_url = storage.join(prefix, EMAILS_CSV), storage.join(prefix, ATTACHMENTS_CSV)
    want = manifest.objects[EMAILS_CSV]
    invalid = False
    try:
        with conn.transaction():  # create + fill together: COPY FREEZE, and a crash leaves nothing
            for stmt in sql_statements("staging_create.sql", **tables):
                conn.execute(stmt)
            compressed, csv_bytes = _stream(attachments_url, manifest.objects[ATTACHMENTS_CSV],
                                            lambda blocks: _copy_into(conn, tables["attachments"], blocks))
            if FOLDERS_CSV in manifest.objects:
                c, u = _stream(storage.join(prefix, FOLDERS_CSV), manifest.objects[FOLDERS_CSV],
                               lambda blocks: _copy_into(conn, tables["folders"], blocks))
                compressed, csv_bytes = compressed + c, csv_bytes + u
            if not pipelined:
                c, u = _stream(emails_local, want, lambda blocks: _copy_into(conn, tables["emails"], blocks),
                               emails_url)
                compressed, csv_bytes = compressed + c, csv_bytes + u
        t1 = time.perf_counter()
        timings["copy"] = t1 - t0
        if not pipelined:
            facts = _facts(conn, "load_validate_fast.sql", tables, params)
            conn.commit()
            invalid = True
            _check(manifest, facts, prefix)
            invalid = False
            t1 = time.perf_counter()
            timings["validate"] = t1 - t0 - timings["copy"]

        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            if pipelined:
                c, u = _pipeline_emails(conn, dsn, emails_local, want, tables, emails_url, toast)
                compressed, csv_bytes = compressed + c, csv_bytes + u
                t2 = time.perf_counter()
                timings["copy_insert"] = t2 - t1
                facts = _facts(conn, "load_validate_fast.sql", tables, params)
                invalid = True
                _check(manifest, facts, prefix)
                invalid = False
                timings["validate"] = time.perf_counter() - t2
                statements = sql_statements("load_insert.sql", **tables)[1:]  # the attachments
            elif loaded_before:  # a rerun: full validation, then merge
                _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)
                statements = sql_statements("load_upsert.sql", **tables)
            else:
                statements = sql_statements("load_insert.sql", **tables)
            t3 = time.perf_counter()
            for stmt in statements:
                conn.execute(stmt, params)
            set_status(conn, pst_file_id, "loaded", email_count=facts["emails"], attachment_count=facts["attachments"])
            for stmt in sql_statements("staging_drop.sql", **tables):
                conn.execute(stmt)
    except psycopg.errors.UniqueViolation as exc:  # first load: a duplicate or colliding id
        _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)
        detail = (exc.diag.message_detail or str(exc)).strip().splitlines()[0]
        raise ManifestError(f"{prefix}: refusing to load: id already loaded from another PST: {detail}") from exc
    except ManifestError:
        if invalid:  # name every problem, not only those the one-scan check counts
            _check(manifest, _facts(conn, "load_validate.sql", tables, params), prefix)
        raise
    timings["upsert" if loaded_before else "insert"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    with conn.transaction():  # statistics for the next stages' plans, when this load changed a lot
        (analyzed,) = conn.execute("SELECT pstfast_analyze_after_load(%s)", (facts["emails"],)).fetchone()
    if analyzed:
        timings["analyze"] = time.perf_counter() - t4
    return LoadResult(
        pst_file_id=pst_file_id, project_id=params["project_id"], emails=facts["emails"],
        attachments=facts["attachments"], bytes_compressed=compressed, bytes_csv=csv_bytes,
        timings={k: round(v, 6) for k, v in timings.items()}, toast_compression=toast,
    )


def _pipeline_emails(conn: Any, dsn: str, url: str, want: dict[str, Any], tables: dict[str, str],
                     name: str, toast: str) -> tuple[int, int]:
    """First load of a big emails.csv.gz: COPY and INSERT overlap, on two connections.

    A second connection COPYs ~16 MB chunks of whole rows, each into its own part table
    created, filled (FREEZE) and attached under the staging ``emails`` table in one
    committed transaction; meanwhile *conn*, inside the caller's still-open load
    transaction, inserts each finished part into ``email_messages``. So the server parses
    chunk n+1 while it writes chunk n to the target (two cores instead of one). Nothing is
    visible until the caller validates and commits; a crash rolls the inserts back and
    leaves only staging parts, which the next attempt drops."""
    import queue
    import threading

    ready: queue.Queue[str | None] = queue.Queue()
    errors: list[BaseException] = []

    def consume() -> None:
        for part in iter(ready.get, None):
            if errors:
                continue  # keep draining so the producer never blocks
            try:
                (stmt,) = sql_statements("load_insert.sql", emails=part, attachments=part, folders=part)[:1]  # emails only
                conn.execute(stmt)
            except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread below)
                errors.append(exc)

    worker = threading.Thread(target=consume, name="pstfast-load-insert", daemon=True)
    worker.start()
    try:
        with translate_errors(dsn), connect(dsn) as second:
            set_toast_compression(second, toast)  # it writes the rows: they keep its compression
            second.commit()  # (the SET stays for the session) so each part below commits on its own

            def feed(blocks: Iterator[bytes]) -> None:
                for n, chunk in enumerate(_row_chunks(blocks, _CHUNK)):
                    if errors:
                        raise errors[0]
                    part = f"{tables['emails']}_p{n}"
                    ids = {"emails": tables["emails"], "part": part}
                    with second.transaction():
                        for stmt in sql_statements("staging_part_create.sql", **ids):
                            second.execute(stmt)
                        _copy_into(second, part, chunk, header=n == 0)
                        for stmt in sql_statements("staging_part_attach.sql", **ids):
                            second.execute(stmt)
                    ready.put(part)

            result = _stream(url, want, feed, name)
    finally:
        ready.put(None)
        worker.join()
    if errors:
        raise errors[0]
    return result


def drop_staging(pst_file_id: str, db: str | None = None) -> None:
    """Drop a PST's staging tables (what a rerun also does first)."""
    with connection(db) as conn, conn.transaction():
        for stmt in sql_statements("staging_drop.sql", **staging_tables(pst_file_id)):
            conn.execute(stmt)


__all__ = ["LoadResult", "drop_staging", "load", "staging_tables"]
