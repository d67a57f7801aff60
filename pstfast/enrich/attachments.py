"""The attachment text step of the index stage: every distinct attachment content of a PST
becomes text once per project (``attachment_texts``), then a search entry per attachment
(``attachment_search``).

It runs inside the index stage, before the search entries are sent, because only the index
reads the text: a stage of its own would add a Batch job, a state and a retry block for no
reader of its own, and the cache per sha256 already makes a retried index stage skip what it
has read. Each content is read in a sandboxed worker process (:func:`_worker_main`: an
address-space limit, a wall-clock limit after which the parent kills it) so a hostile file
costs one ``failed: ...`` row and never the stage.
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import storage
from ..errors import InputError, WorkerDiedError
from ..db.connect import connection, sql_text
from .textract import VERSION, Extracted, Limits

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from ..db.connect import Database

log = logging.getLogger(__name__)

#: seconds a fresh worker may take to start (spawn and import the libraries)
STARTUP_SECONDS = 120
#: the modules of the ``[text]`` extra (textract.py's libraries)
TEXT_MODULES = ("pypdfium2", "docx", "openpyxl", "pptx", "xlrd", "charset_normalizer")
#: reasons listed one by one in the stage manifest's warnings
MAX_WARNINGS = 20


@dataclass
class TextResult:
    """What the attachment text step did for one PST."""

    #: distinct contents read now (the rest were in the project's cache)
    extracted: int = 0
    #: bytes read now
    bytes: int = 0
    #: attachment search entries added
    entries: int = 0
    seconds: float = 0.0
    #: contents of the PST by status (ok, empty, encrypted, unsupported, too_large, failed)
    statuses: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _worker_main(conn: Connection, limits: Limits) -> None:
    """A sandboxed extractor: (sha256, bytes, filename, mime) in, (Extracted, kind) out,
    until it reads None. Its address space is capped, so a decompression bomb raises
    MemoryError here (a ``too_large`` row) instead of taking memory from the host."""
    import resource

    from .textract import extract, sniff

    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    for module in TEXT_MODULES:  # loaded before "ready": the time limit counts only the reading
        importlib.import_module(module)
    conn.send("ready")
    while True:
        task = conn.recv()
        if task is None:
            return
        data, filename, mime = task
        kind = sniff(data, filename, mime)
        conn.send((extract(data, filename, mime, limits), kind))


class Sandbox:
    """One worker process, restarted after it is killed or dies."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # spawn, not fork: the index stage has database threads, and a forked child of a
        # threaded process may inherit a lock held by one of them
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker_main, args=(child, self.limits), daemon=True,
                                       name="pstfast-textract")
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(STARTUP_SECONDS) or parent.recv() != "ready":
            self._kill()
            raise WorkerDiedError(f"the attachment text worker did not start in {STARTUP_SECONDS} s")
        return parent

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def run(self, data: bytes, filename: str | None, mime: str | None) -> tuple[Extracted, str | None]:
        """The text of one attachment, within the limits; a hang is killed after
        ``limits.seconds`` (the worker's start-up is not counted) and a crash is its status.

        Raises:
            WorkerDiedError: a fresh worker did not start (transient: the stage retries).
        """
        conn = self._conn or self._start()
        conn.send((data, filename, mime))
        try:
            if conn.poll(self.limits.seconds):
                extracted, kind = conn.recv()
                return extracted, kind
            self._kill()
            return Extracted("failed", "", "sandbox", f"timed out after {self.limits.seconds:g} s (killed)"), None
        except (EOFError, OSError, ConnectionError):
            code = self._proc.exitcode if self._proc is not None else None
            self._kill()
            return Extracted("failed", "", "sandbox", f"the extractor process died (exit {code})"), None

    def close(self) -> None:
        """Stop the worker."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
        if self._proc is not None:
            self._proc.join(5)
        self._kill()


def _status_key(status: str) -> str:
    return status.split(":", 1)[0]


def extract_texts(
    root: str | os.PathLike[str], pst_file_id: str, project_id: str, db: Database = None, *,
    limits: Limits | None = None, workers: int | None = None,
) -> TextResult:
    """Extract the text of the PST's attachment contents the project has not read yet, in
    *workers* sandboxes at once, then add the PST's attachment search entries.

    Raises:
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
        StorageError: an attachment object could not be read (transient: retry; a missing
            object is that content's ``failed: object missing`` instead).
    """
    limits = limits or Limits()
    t0 = time.perf_counter()
    result = TextResult()
    missing = [m for m in TEXT_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        # not a failure: the emails are indexed as before; the contents are read by a later
        # index run once the extra is installed (nothing was cached for them)
        result.warnings.append(f"attachment text not extracted: {', '.join(missing)} missing "
                               "(pip install 'pstfast[text]')")
        log.warning("attachment text %s: %s", pst_file_id, result.warnings[0])
        return result
    prefix = storage.output_prefix(root, pst_file_id)
    with connection(db) as conn:
        todo = conn.execute(sql_text("attachment_texts_todo.sql"),
                            {"project_id": project_id, "pst_file_id": pst_file_id, "version": VERSION}).fetchall()
        conn.commit()
    if todo:
        result.extracted, result.bytes = _extract_all(db, project_id, prefix, todo, limits,
                                                      workers or min(len(todo), os.cpu_count() or 1))
    with connection(db) as conn, conn.transaction():
        row = conn.execute(sql_text("attachment_index.sql"), {"project_id": project_id, "pst_file_id": pst_file_id}
                           ).fetchone()
        result.entries = int(row[0]) if row else 0
        for status, contents, examples in conn.execute(
                sql_text("attachment_status.sql"),
                {"project_id": project_id, "pst_file_id": pst_file_id, "limit": MAX_WARNINGS}).fetchall():
            key = _status_key(status)
            result.statuses[key] = result.statuses.get(key, 0) + int(contents)
            if key in ("encrypted", "too_large", "failed"):
                result.warnings += [f"attachment {e}" for e in examples or ()]
    del result.warnings[MAX_WARNINGS:]
    result.seconds = round(time.perf_counter() - t0, 6)
    log.info("attachment text %s: %d contents read (%d bytes), %d entries, %s", pst_file_id, result.extracted,
             result.bytes, result.entries, result.statuses)
    return result


def _extract_all(db: Database, project_id: str, prefix: str, todo: list[Any], limits: Limits,
                 workers: int) -> tuple[int, int]:
    """Run *todo* (rows of attachment_texts_todo.sql) through *workers* sandboxes, writing
    each result as it comes (a retry after a crash resumes). Returns (contents, bytes)."""
    tasks: queue.Queue[Any] = queue.Queue()
    for row in todo:
        tasks.put(row)
    done: queue.Queue[dict[str, Any]] = queue.Queue()
    errors: list[BaseException] = []

    def slot() -> None:
        box = Sandbox(limits)
        try:
            while not errors:
                try:
                    sha256, size, filename, mime, key = tasks.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                if size is not None and size > limits.max_bytes:
                    extracted = Extracted("too_large", "", "none", f"{size:,} bytes > {limits.max_bytes:,}")
                    kind, nbytes = None, int(size)
                else:
                    try:
                        data = storage.read_bytes(storage.join(prefix, key))
                    except InputError as exc:  # gone from storage: retrying cannot bring it back
                        data, exc_text = b"", str(exc)
                        extracted, kind = Extracted("failed", "", "none", f"object missing: {exc_text}"), None
                    else:
                        extracted, kind = box.run(data, filename, mime)
                    nbytes = len(data)
                status = extracted.status if extracted.status != "failed" else f"failed: {extracted.reason}"
                done.put({"project_id": project_id, "sha256": sha256, "status": status[:1000],
                          "reason": extracted.reason, "extractor": extracted.extractor, "version": VERSION,
                          "kind": kind, "bytes": nbytes, "chars": len(extracted.text),
                          "seconds": round(time.perf_counter() - started, 4), "text": extracted.text or None})
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            errors.append(exc)
        finally:
            box.close()

    threads = [threading.Thread(target=slot, name=f"pstfast-textract-{n}", daemon=True) for n in range(workers)]
    for t in threads:
        t.start()
    contents = total = 0
    with connection(db) as conn:
        while any(t.is_alive() for t in threads) or not done.empty():
            try:
                row = done.get(timeout=0.5)
            except queue.Empty:
                continue
            conn.execute(sql_text("attachment_texts_upsert.sql"), row)
            conn.commit()
            contents += 1
            total += int(row["bytes"] or 0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return contents, total
