"""The extract worker: one process, one PST reader, whole shards into part files.

:func:`init_worker` runs once per process (the pool initializer) and opens the PST;
:func:`read_shard` reads every item of a shard (it needs no destination, so it can run
while the input is still being hashed); :func:`write_shard` builds the rows, normalises and
hashes them in batches with the kernels, writes the part files and attachment objects, and
returns only counters; :func:`run_shards` is the pool task doing both for a few shards.
Nothing per-message crosses the process boundary.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from .. import config, ids
from ..errors import ItemBudgetExceeded
from ..records import (
    ATTACHMENT_COLUMNS,
    ATTACHMENT_FIELDS,
    EMAIL_COLUMNS,
    EMAIL_FIELDS,
    clean_text,
    format_timestamp,
)
from . import exchange
from .items import ItemReader, ReadMessage, open_pypff
from .plan import Shard
from .pool import die_with_parent
from .writers import arrow_tables, csv_lines, gzip_bytes, ndjson_lines, write_arrow_part

PART_KINDS = ("emails.ndjson.gz", "emails.csv.gz", "emails.arrow", "attachments.ndjson.gz",
              "attachments.csv.gz", "errors.ndjson")
_SEP = "\x1f"  # between the parts of the canonical form
_ITEM_SEP = "\x1e"  # between the items of a list part
_CANONICAL_VERSION = "pstfast-content-v3"


@dataclass(frozen=True)
class WorkerContext:
    """Everything a worker needs; plain values only (pickled to each process).

    ``attachments_dir`` (and ``pst_file_id``, when the caller gave none: the default is the
    input's sha256, still being computed) is empty when the shard is submitted: the worker
    reads its items, then takes both from the :class:`Destination` the main process
    publishes once the output folder is ready.
    """

    pst_path: str
    pst_file_id: str
    project_id: str | None
    parts_dir: str
    attachments_dir: str
    extractor_version: str
    reader: str = "pstfast"  # or "libpff": every item read by pypff (config.READERS)
    #: what one item may take (config.item_budget): seconds to read it, bytes of a value
    item_seconds: float = 300.0
    item_max_bytes: int = 1 << 30


class Destination:
    """Where the rows go (pst_file_id and attachments folder), published once by the main
    process to every worker: an event plus a shared buffer, created before the pool."""

    def __init__(self, context: Any) -> None:
        self.event = context.Event()
        self.payload = context.Array("c", 8192)

    def publish(self, pst_file_id: str, attachments_dir: str) -> None:
        self.payload.value = orjson.dumps({"pst_file_id": pst_file_id, "attachments_dir": attachments_dir})
        self.event.set()

    def abort(self, reason: str) -> None:
        """Release waiting workers when the extract failed before publishing."""
        if not self.event.is_set():
            self.payload.value = orjson.dumps({"error": reason[:4000]})
            self.event.set()

    def complete(self, ctx: WorkerContext) -> WorkerContext:
        self.event.wait()
        found = orjson.loads(self.payload.value)
        if "error" in found:
            raise RuntimeError(f"extract abandoned: {found['error']}")
        return replace(ctx, pst_file_id=found["pst_file_id"], attachments_dir=found["attachments_dir"])


@dataclass
class ShardResult:
    """Counters of one shard (the only thing a worker sends back)."""

    index: int
    items_seen: int = 0
    emails: int = 0
    attachments: int = 0
    errors: int = 0
    warnings: int = 0
    objects: dict[str, int] = field(default_factory=dict)  # sha256 -> size
    compiled: bool = False  # read by the compiled path (the manifest says which path ran)
    #: Exchange (DN key, SMTP) pairs the shard holds, and the DN keys its rows need resolved
    address_pairs: exchange.Pairs = field(default_factory=Counter)
    needs: set[str] = field(default_factory=set)
    #: read but not written: its rows need the file's address map (write it again with it)
    deferred: bool = False


log = logging.getLogger(__name__)
_STATE: dict[str, Any] = {}
RELEASE_EVERY = 256  # items between drops of the file pages a worker has touched (flat RSS)


def part_path(parts_dir: str | Path, index: int, kind: str) -> Path:
    """Where shard *index* writes its part of *kind*."""
    return Path(parts_dir) / f"{index:06d}.{kind}"


#: (gen 0, 1, 2) thresholds while rows are built: the default collects generation 0 every 700
#: allocations, which cost ~5 % of a worker's time (0.4 s per 20,000 items) and found nothing
#: to free (rows are dicts and lists without reference cycles); 5 collections instead of 830
GC_THRESHOLDS = (50_000, 50, 1000)


@contextmanager
def few_collections() -> Iterator[None]:
    """Collect garbage rarely inside the block (items read in this process), as before after it."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def init_pool_worker(*args: Any) -> None:
    """Pool initializer: :func:`init_worker` in a process of pstfast's own, which collects
    garbage rarely for good (see :data:`GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)
    die_with_parent()
    init_worker(*args)


def init_worker(pst_path: str, destination: Destination | None = None, reader: ItemReader | None = None,
                engine: str = "pstfast", compiled: bool | None = False, codepage: int | None = None) -> None:
    """Set this process up to read shards: open the PST once (unless given a reader), to read
    with the compiled path when *compiled* (None: when numba's cache holds it, decided here,
    where it is loaded); with *engine* ``libpff`` also open it with pypff, whose folders are
    found by node id."""
    _STATE.clear()
    _STATE["reader"] = reader if reader is not None else ItemReader(
        pst_path, compiled=config.resolve_compiled_reader(compiled), codepage=codepage)
    _STATE["destination"] = destination
    if engine == "libpff":
        folders: dict[int, Any] = {}
        pypff_file = open_pypff(pst_path)
        _STATE["reader"].use_libpff_name_map(pypff_file)  # once per worker, as pstfast's reader does
        stack = [pypff_file.get_root_folder()]
        while stack:
            folder = stack.pop()
            folders[folder.identifier] = folder
            try:
                stack.extend(folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders))
            except OSError as exc:  # a damaged hierarchy table: what libpff cannot reach is an error item
                log.debug("libpff cannot list the subfolders of folder 0x%X: %s", folder.identifier, exc)
        _STATE["pypff_folders"] = folders


def _read_item(reader: ItemReader, ctx: WorkerContext, folder_nid: int, index: int, nid: int) -> ReadMessage:
    """Item *index* of folder *folder_nid* (node *nid*), read by the context's reader."""
    if ctx.reader == "pstfast":
        return reader.read(reader.message(nid))
    folder = _STATE["pypff_folders"].get(folder_nid)
    if folder is None:
        raise ValueError(f"libpff cannot reach folder 0x{folder_nid:X} (its parent's subfolders are unreadable)")
    item = folder.get_sub_message(index)
    if item.identifier != nid:  # the plan comes from the folder's contents table
        raise ValueError(f"libpff has node 0x{item.identifier:X} at index {index}, the contents table 0x{nid:X}")
    return reader.read(reader.pypff_item(item))


#: the first task of each pool worker holds this many shards: it reads them all before it
#: needs the destination, so the worker keeps reading while the input is still being hashed
PREREAD_SHARDS = 2

#: (folder path, index, nid, the item or its failure: an exception, or its reason once
#: deferred, folder nid)
ShardRead = list[tuple[str, int, int, ReadMessage | Exception | str, int]]


def read_shard(ctx: WorkerContext, shard: Shard) -> ShardRead:
    """Read every item of *shard* (a failure is kept in place of its item).

    Needs neither the pst_file_id nor the output folder: it can run while the input is hashed."""
    reader: ItemReader = _STATE["reader"]
    reader.spool = ctx.parts_dir  # big attachments stream to scratch, not into memory
    reader.pst.max_value = ctx.item_max_bytes
    read: ShardRead = []
    with _ItemTimer(ctx.item_seconds) as timer:
        for sl in shard.slices:
            for index, nid in enumerate(sl.nids, sl.start):
                if len(read) % RELEASE_EVERY == RELEASE_EVERY - 1:
                    reader.pst.release_pages()
                try:
                    timer.start()
                    try:
                        item: ReadMessage | Exception | str = _read_item(reader, ctx, sl.folder_nid, index, nid)
                    finally:
                        timer.stop()
                except Exception as exc:  # one bad item never stops the file: it is recorded
                    item = exc
                except ItemBudgetExceeded as exc:
                    item = f"ItemBudgetExceeded: {exc}"
                read.append((sl.folder_path, index, nid, item, sl.folder_nid))
    reader.pst.release_pages()
    return read


class _ItemTimer:
    """Interrupts the item being read after *seconds* (SIGALRM: in a process's main thread,
    where shards are read; Python code is interrupted, a native call when it returns)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        self.previous: Any = None

    def __enter__(self) -> _ItemTimer:
        if self.active:
            self.previous = signal.signal(signal.SIGALRM, self._expired)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def _expired(self, signum: int, frame: Any) -> None:
        raise ItemBudgetExceeded(f"reading the item took more than {self.seconds:g} s (PSTFAST_ITEM_SECONDS)")

    def start(self) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)


def write_shard(ctx: WorkerContext, shard: Shard, read: ShardRead,
                address_map: exchange.AddressMap | None = None) -> ShardResult:
    """Turn the items :func:`read_shard` read into the shard's part files; returns the counters.
    *ctx* must be complete (pst_file_id and attachments folder known).

    Without *address_map*, a shard with Exchange DNs to resolve is not written but kept for
    :func:`write_deferred`: its result is ``deferred`` and says what it needs (see
    :mod:`.exchange`); with it, they are resolved."""
    result = ShardResult(shard.index, items_seen=len(read), compiled=_STATE["reader"].compiled is not None)
    messages = [m for _, _, _, m, _ in read if isinstance(m, ReadMessage)]
    result.address_pairs, result.needs = exchange.scan(messages)
    if result.needs:
        if address_map is None:
            _defer(ctx, shard, read, messages)
            result.deferred = True
            return result
        exchange.resolve(messages, address_map)
    emails: list[dict[str, Any]] = []
    attachments: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for folder_path, index, nid, message, folder_nid in read:
        if not isinstance(message, ReadMessage):  # its failure (a reason, once deferred)
            errors.append(_error(ctx, folder_path, index, None, None, "item", message))
            result.errors += 1
            continue
        email_id = ids.email_id(ctx.pst_file_id, nid)
        _flatten(ctx, message, email_id, None, folder_path, index, 0, emails, attachments, errors, result,
                 ids.folder_id(ctx.pst_file_id, folder_nid))

    _finish_rows(emails)
    _write_parts(ctx, shard.index, emails, attachments, errors)
    result.emails = len(emails)
    result.attachments = len(attachments)
    return result


def _defer(ctx: WorkerContext, shard: Shard, read: ShardRead, messages: list[ReadMessage]) -> None:
    """Keep what the shard read in a scratch file until the address map is known: its
    attachments' bytes are stored now (their names do not depend on the map) and dropped."""
    for msg in exchange.walk(messages):
        for att in msg.attachments:
            if att.data is not None and att.sha256:
                _store_blob(ctx, att.sha256, att.data)
                att.data, att.stored = None, True
    kept = [(f, i, n, _reason(m) if isinstance(m, Exception) else m, fn) for f, i, n, m, fn in read]
    with open(part_path(ctx.parts_dir, shard.index, "deferred.pickle"), "wb") as handle:
        pickle.dump(kept, handle, protocol=pickle.HIGHEST_PROTOCOL)


def write_deferred(ctx: WorkerContext, shards: list[tuple[Shard, exchange.AddressMap]]) -> list[ShardResult]:
    """A pool task: write shards :func:`write_shard` deferred, each with its part of the map."""
    results = []
    for shard, address_map in shards:
        path = part_path(ctx.parts_dir, shard.index, "deferred.pickle")
        with open(path, "rb") as handle:
            read: ShardRead = pickle.load(handle)  # noqa: S301 - this extract's own scratch file
        path.unlink()
        results.append(write_shard(ctx, shard, read, address_map))
    return results


def run_shards(ctx: WorkerContext, shards: list[Shard]) -> list[ShardResult]:
    """A pool task: read every shard, then, once the destination is published (when *ctx*
    lacks it), write each one's part files (or defer it: see :func:`write_shard`)."""
    reads = [read_shard(ctx, shard) for shard in shards]
    if not ctx.attachments_dir:  # known only once the output folder is ready (after the hash)
        ctx = _STATE["destination"].complete(ctx)
    return [write_shard(ctx, shard, read) for shard, read in zip(shards, reads)]


def _error(ctx: WorkerContext, folder_path: str, index: int, email_id: str | None, ordinal: int | None,
           kind: str, exc: BaseException | str, severity: str = "error") -> dict[str, Any]:
    reason = exc if isinstance(exc, str) else _reason(exc)
    return {"pst_file_id": ctx.pst_file_id, "severity": severity, "kind": kind, "folder_path": folder_path,
            "item_index": index, "email_id": email_id, "ordinal": ordinal, "reason": clean_text(reason)}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _flatten(ctx: WorkerContext, msg: ReadMessage, email_id: str, parent_id: str | None, folder_path: str,
             index: int, depth: int, emails: list[dict[str, Any]], attachments: list[dict[str, Any]],
             errors: list[dict[str, Any]], result: ShardResult, folder_id: str | None = None) -> None:
    """Append the rows of *msg* and (depth-first, after it) of its embedded messages (in
    the container's folder, *folder_id*).

    Text goes in as read: the reader hands it over clean (see ``ReadMessage``)."""
    row: dict[str, Any] = {
        "email_id": email_id,
        "parent_email_id": parent_id,
        "project_id": ctx.project_id,
        "pst_file_id": ctx.pst_file_id,
        "folder_path": folder_path,
        "message_class": msg.message_class,
        "internet_message_id": msg.internet_message_id,
        "in_reply_to": msg.in_reply_to,
        "references": msg.references,
        "conversation_index": msg.conversation_index,
        "conversation_topic": msg.conversation_topic,
        "subject": msg.subject,
        "normalized_subject": None,
        "sender_name": msg.sender_name,
        "sender_email": msg.sender_email,
        "to": msg.to,
        "cc": msg.cc,
        "bcc": msg.bcc,
        "sent_at": msg.sent_at,
        "received_at": msg.received_at,
        "body_text": msg.body_text,
        "body_html": msg.body_html,
        "transport_headers": msg.transport_headers,
        "attachment_count": len(msg.attachments),
        "size_bytes": msg.size_bytes,
        "importance": msg.importance,
        "content_hash": None,
        "extractor_version": ctx.extractor_version,
        "body_text_source": msg.body_text_source,
        "body_rtf": msg.body_rtf,
        "sender_x500": msg.sender_x500,
        "recipient_x500": [e["x500"] for kind in (msg.to, msg.cc, msg.bcc) for e in kind if e.get("x500")],
        "flags": msg.flags,
        "is_read": msg.is_read,
        "is_draft": msg.is_draft,
        "created_at": msg.created_at,
        "modified_at": msg.modified_at,
        "sensitivity": msg.sensitivity,
        "categories": msg.categories,
        "sent_representing_name": msg.sent_representing_name,
        "sent_representing_email": msg.sent_representing_email,
        "folder_id": folder_id,
        "item_properties": msg.item_properties,
        "_depth": depth,
        "_children": [],  # (ordinal, child row) of embedded messages
        "_att_sha": [],
    }
    emails.append(row)
    for ordinal, kind, reason in msg.problems:
        counted = kind == "embedded_message"
        errors.append(_error(ctx, folder_path, index, email_id, ordinal, kind, reason,
                             "error" if counted else "warning"))
        if counted:
            result.items_seen += 1
            result.errors += 1
        else:
            result.warnings += 1
    for att in msg.attachments:
        storage_key = None
        if att.sha256 and (att.data is not None or att.stored or att.spooled):
            storage_key = f"attachments/{att.sha256}"
            if att.data is not None:
                _store_blob(ctx, att.sha256, att.data)
            elif att.spooled:
                _store_spooled(ctx, att.sha256, att.spooled)
            result.objects[att.sha256] = att.size or 0
            row["_att_sha"].append(att.sha256)
        attachments.append({
            "attachment_id": ids.attachment_id(email_id, att.ordinal),
            "email_id": email_id,
            "ordinal": att.ordinal,
            "filename": att.filename,
            "mime_type": att.mime_type,
            "size": att.size,
            "content_id": att.content_id,
            "is_inline": att.is_inline,
            "method": att.method,
            "sha256": att.sha256,
            "storage_key": storage_key,
            "reference": att.reference,
        })
        if att.message is not None:
            child_id = ids.embedded_email_id(email_id, att.ordinal)
            result.items_seen += 1
            child_index = len(emails)
            _flatten(ctx, att.message, child_id, email_id, folder_path, index, depth + 1, emails, attachments,
                     errors, result, folder_id)
            row["_children"].append(emails[child_index])


def _store_blob(ctx: WorkerContext, sha256: str, data: bytes) -> None:
    """Write attachment bytes once per distinct content.

    Created exclusively under the final name (no temporary file and rename: a tenth of the
    cost per file); when the name exists, a file of the right size is the same content (the
    name is its sha256) and a short one, left by a crashed run, is rewritten atomically.
    """
    written: set[str] = _STATE.setdefault("blobs", set())
    if sha256 in written:
        return
    path = os.path.join(ctx.attachments_dir, sha256)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if os.stat(path).st_size != len(data):
            tmp = os.path.join(ctx.attachments_dir, f".{sha256}.{os.getpid()}.tmp")
            Path(tmp).write_bytes(data)
            os.replace(tmp, path)
    else:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    written.add(sha256)


def _store_spooled(ctx: WorkerContext, sha256: str, path: str) -> None:
    """Move a spooled attachment's file to its object name (once per distinct content)."""
    written: set[str] = _STATE.setdefault("blobs", set())
    target = os.path.join(ctx.attachments_dir, sha256)
    if sha256 in written or (os.path.exists(target) and os.stat(target).st_size == os.stat(path).st_size):
        os.unlink(path)
    else:
        os.chmod(path, 0o644)  # as _store_blob's objects (a temporary file is private)
        shutil.move(path, target)  # a rename on one filesystem, a copy from scratch to another
    written.add(sha256)


def _finish_rows(rows: list[dict[str, Any]]) -> None:
    """Fill ``normalized_subject`` and ``content_hash`` for a batch of rows (kernels).

    The content hash is XXH3-128 over this canonical form (UTF-8)::

        "pstfast-content-v3" US sender US recipients US sent_at US subject US attachments US body

    where US is U+001F, and
      sender      = normalize_addresses(sender_email), "" when absent;
      recipients  = the normalized to + cc + bcc addresses, sorted, joined by U+001E;
      sent_at     = sent_at as in the CSV ("2021-03-04T05:06:07Z"), "" when absent;
      subject     = normalize_subjects(subject), "" when absent;
      body        = normalize_whitespace(body_text), "" when absent: body_text is PR_BODY, else
                    the text of the HTML body, else of the RTF body (extraction/bodies.py),
                    so messages that differ only in their HTML or RTF never share a hash;
      attachments = the sha256 of every by-value attachment plus the content_hash of every
                    embedded message, sorted, joined by U+001E.
    U+001E and U+001F are removed from every part but the body first, so the separators are
    unambiguous (the body comes last). The body is normalized and hashed in one pass by
    ``kernels.content_hashes``: the normalized text never becomes a Python string.
    Names, folders, headers and ids are deliberately left out: the same message filed twice
    or received by two custodians hashes the same.
    """
    if not rows:
        return
    from . import (
        kernels,  # numba: only in the processes that build rows (the fork server preloads it)
    )

    subjects = kernels.normalize_subjects([r["subject"] for r in rows])
    senders = kernels.normalize_addresses([r["sender_email"] for r in rows])
    flat: list[str | None] = []
    for r in rows:
        for kind in ("to", "cc", "bcc"):
            flat.extend(p["email"] for p in r[kind])
    normalized = kernels.normalize_addresses(flat)
    pos = 0
    recipients: list[list[str]] = []
    for r in rows:
        n = len(r["to"]) + len(r["cc"]) + len(r["bcc"])
        recipients.append(sorted(a for a in normalized[pos:pos + n] if a))
        pos += n
    for r, subject in zip(rows, subjects):
        r["normalized_subject"] = subject

    # children before parents: a parent's canonical form holds its children's hashes
    by_depth: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_depth.setdefault(r["_depth"], []).append(i)
    for depth in sorted(by_depth, reverse=True):
        batch = by_depth[depth]
        heads = []
        for i in batch:
            r = rows[i]
            atts = r["_att_sha"] + [c["content_hash"] for c in r["_children"]]
            parts = (
                senders[i] or "",
                _ITEM_SEP.join(_strip(a) for a in recipients[i]),
                format_timestamp(r["sent_at"]) or "",
                subjects[i] or "",
                _ITEM_SEP.join(sorted(atts)),
            )
            heads.append(_SEP.join((_CANONICAL_VERSION, *(_strip(p) for p in parts))) + _SEP)
        digests = kernels.content_hashes(heads, [rows[i]["body_text"] for i in batch])
        for i, digest in zip(batch, digests):
            rows[i]["content_hash"] = digest
    for r in rows:
        del r["_depth"], r["_children"], r["_att_sha"]


def _strip(text: str) -> str:
    return text.replace(_SEP, "").replace(_ITEM_SEP, "") if (_SEP in text or _ITEM_SEP in text) else text


def _write_parts(ctx: WorkerContext, index: int, emails: list[dict[str, Any]], attachments: list[dict[str, Any]],
                 errors: list[dict[str, Any]]) -> None:
    """Write the shard's part files (gzip members are compressed here, in the worker)."""
    def put(kind: str, data: bytes) -> None:
        part_path(ctx.parts_dir, index, kind).write_bytes(data)

    if emails:
        parquet, csv = arrow_tables(emails, EMAIL_COLUMNS)
        put("emails.ndjson.gz", gzip_bytes(ndjson_lines(emails, EMAIL_FIELDS)))
        put("emails.csv.gz", gzip_bytes(csv_lines(csv)))
        write_arrow_part(part_path(ctx.parts_dir, index, "emails.arrow"), parquet)
    if attachments:
        put("attachments.ndjson.gz", gzip_bytes(ndjson_lines(attachments, ATTACHMENT_FIELDS)))
        put("attachments.csv.gz", gzip_bytes(csv_lines(arrow_tables(attachments, ATTACHMENT_COLUMNS)[1])))
    if errors:
        put("errors.ndjson", b"".join(orjson.dumps(e) + b"\n" for e in errors))


__all__ = ["WorkerContext", "ShardResult", "few_collections", "init_pool_worker", "init_worker", "read_shard",
           "write_shard", "write_deferred", "run_shards", "part_path",
           "PART_KINDS", "PREREAD_SHARDS"]
