"""Reading PST items: folders, messages, recipients, attachments, embedded messages.

The extract stage reads with pstfast's own read-only PST reader (:mod:`pstfast.pst.reader`;
whole messages at a time through its compiled path, :mod:`pstfast.pst.compiled`, when set):
it opens a file in a millisecond whatever its size, where libpff first builds an item tree
of the whole file (quadratic in the number of items, about two minutes for 100,000
messages, and memory that grows with the file). libpff (pypff) stays the reference: the
same field logic runs over pypff items (:class:`PypffItem`), and the tests check that both
readers give identical rows on every corpus file and on writer-made PSTs.

Every field comes from the item's MAPI properties first (record set 0) and from the
transport headers only when the property is absent. Unicode strings (PT_UNICODE) are
UTF-16LE; ANSI strings (PT_STRING8) are decoded with the message's code page
(PR_MESSAGE_CODEPAGE, then PR_INTERNET_CPID), then the store's, then the code page of the
message's locale, and only then Windows-1252.

Named properties (ids 0x8000 and up) are resolved once per file from its name-to-id map
(:mod:`pstfast.pst.namemap`; ``--reader libpff``: from the map as libpff reads it) and read
like any other property; :mod:`.kinds` turns them into ``item_properties``.

Messages embedded as attachments are the one thing libpff's Python binding cannot open:
for pypff items those are read with pstfast's reader too.

Readers never cross a process boundary: each worker opens the PST itself.
"""

from __future__ import annotations

import builtins
import codecs
import datetime as dt
import email.utils
import hashlib
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import HeaderParser
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorruptPstError, ItemBudgetExceeded, NotAPstError
from ..pst.props import (
    ATTACH_BY_VALUE,
    ATTACH_EMBEDDED_MSG,
    ATTACH_FLAG_MHTML_REF,
    ATTACH_OLE,
    MSGFLAG_READ,
    MSGFLAG_UNSENT,
    NID_MESSAGE_STORE,
    NID_NAME_TO_ID_MAP,
    NID_ROOT_FOLDER,
    NID_TYPE_CONTENTS_TABLE,
    NID_TYPE_HIERARCHY_TABLE,
    NID_TYPE_NORMAL_FOLDER,
    PR_ADDRTYPE,
    PR_ATTACH_CONTENT_ID,
    PR_ATTACH_DATA,
    PR_ATTACH_FILENAME,
    PR_ATTACH_FLAGS,
    PR_ATTACH_LONG_FILENAME,
    PR_ATTACH_LONG_PATHNAME,
    PR_ATTACH_METHOD,
    PR_ATTACH_MIME_TAG,
    PR_ATTACH_PATHNAME,
    PR_ATTACH_SIZE,
    PR_ATTACHMENT_HIDDEN,
    PR_BODY,
    PR_CLIENT_SUBMIT_TIME,
    PR_CONTAINER_CLASS,
    PR_CONTENT_COUNT,
    PR_CONTENT_UNREAD_COUNT,
    PR_CONVERSATION_INDEX,
    PR_CONVERSATION_TOPIC,
    PR_CREATION_TIME,
    PR_LAST_MODIFICATION_TIME,
    PR_MESSAGE_FLAGS,
    PR_RECIPIENT_FLAGS,
    PR_RECIPIENT_TRACK_STATUS,
    PR_SENSITIVITY,
    PR_DISPLAY_NAME,
    PR_EMAIL_ADDRESS,
    PR_HTML,
    PR_IMPORTANCE,
    PR_IN_REPLY_TO_ID,
    PR_INTERNET_CPID,
    PR_INTERNET_MESSAGE_ID,
    PR_INTERNET_REFERENCES,
    PR_MESSAGE_CLASS,
    PR_MESSAGE_CODEPAGE,
    PR_MESSAGE_DELIVERY_TIME,
    PR_MESSAGE_LOCALE_ID,
    PR_MESSAGE_SIZE,
    PR_RECIPIENT_DISPLAY_NAME,
    PR_RECIPIENT_TYPE,
    PR_RTF_COMPRESSED,
    PR_SENDER_ADDRTYPE,
    PR_SENDER_EMAIL_ADDRESS,
    PR_SENDER_NAME,
    PR_SENDER_SMTP_ADDRESS,
    PR_SENT_REPRESENTING_ADDRTYPE,
    PR_SENT_REPRESENTING_EMAIL_ADDRESS,
    PR_SENT_REPRESENTING_NAME,
    PR_SENT_REPRESENTING_SMTP_ADDRESS,
    PR_SMTP_ADDRESS,
    PR_SUBJECT,
    PR_TRANSPORT_MESSAGE_HEADERS,
    PT_BINARY,
    PT_BOOLEAN,
    PT_LONG,
    PT_LONGLONG,
    PT_OBJECT,
    PT_SHORT,
    PT_STRING8,
    PT_SYSTIME,
    PT_UNICODE,
)
from ..pst import namemap
from ..pst.reader import PstReader
from ..records import clean_text
from . import kinds
from .bodies import body_text

if TYPE_CHECKING:  # the compiled reader imports numba: only when it is used
    from ..pst.compiled import CompiledMessage, CompiledReader

PST_MAGIC = b"!BDN"
log = logging.getLogger(__name__)

#: every property the field logic reads (pstfast's reader skips the rest of each object)
READ_PROPERTIES = frozenset(value for name, value in list(globals().items()) if name.startswith("PR_")) | kinds.READ_PROPERTIES

RECIPIENT_KINDS = {1: "to", 2: "cc", 3: "bcc"}

# Internet code pages that never hold ANSI PST strings map to the Windows code page of
# the same script (an ANSI PST written on a Japanese Windows uses cp932, even when the
# message declares iso-2022-jp for the wire).
_CPID_TO_ANSI = {
    20127: 1252, 28591: 1252, 28605: 1252, 50220: 932, 50221: 932, 50222: 932,
    51932: 932, 20932: 932, 52936: 936, 20936: 936, 51936: 936, 50225: 949, 51949: 949,
    28592: 1250, 28595: 1251, 20866: 1251, 21866: 1251, 28597: 1253, 28599: 1254,
    28598: 1255, 38598: 1255, 28596: 1256, 28594: 1257, 28603: 1257, 1200: 0, 1201: 0,
}
# primary language id of an LCID -> ANSI code page (the store's locale fallback)
_LANG_TO_ANSI = {
    0x11: 932, 0x04: 936, 0x12: 949, 0x1E: 874, 0x2A: 1258, 0x19: 1251, 0x22: 1251,
    0x02: 1251, 0x1C: 1251, 0x05: 1250, 0x0E: 1250, 0x15: 1250, 0x18: 1250, 0x1A: 1250,
    0x1B: 1250, 0x24: 1250, 0x08: 1253, 0x1F: 1254, 0x0D: 1255, 0x01: 1256, 0x25: 1257,
    0x26: 1257, 0x27: 1257,
}
_FILETIME_EPOCH = dt.datetime(1601, 1, 1)


_MAX_DEPTH = 16  # nesting of folders or embedded messages; deeper means a loop in a damaged file
#: what reading a damaged item can raise (pypff raises OSError, pstfast's reader CorruptPstError)
READ_ERRORS = (OSError, MemoryError, ValueError, CorruptPstError)


@dataclass(frozen=True)
class FolderInfo:
    """One folder: its path below the root, its node id, and its messages' node ids in order."""

    folder_path: str
    node_id: int
    message_nids: tuple[int, ...]
    #: for the folders output: the parent's node id (None for the root), the names from the
    #: root down, PR_CONTAINER_CLASS and PR_CONTENT_UNREAD_COUNT
    parent_id: int | None = None
    names: tuple[str, ...] = ()
    container_class: str | None = None
    unread_count: int | None = None

    @property
    def item_count(self) -> int:
        return len(self.message_nids)


def _libpff() -> Any:
    from ..extras import require

    return require("pypff", "reading with libpff (--reader libpff)")  # a C extension: on first use only


def libpff_version() -> str:
    """The libpff version string, or ``none`` when libpff is not installed (pstfast reads without it)."""
    try:
        import pypff
    except ModuleNotFoundError:
        return "none"
    return str(pypff.get_version())


def check_signature(path: str | Path) -> None:
    """Raise :class:`NotAPstError` unless *path* starts with the PST magic."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        size = os.fstat(handle.fileno()).st_size
    if not head:
        raise NotAPstError(f"{path}: empty file (0 bytes), not a PST")
    if len(head) < 16 or head[:4] != PST_MAGIC:
        raise NotAPstError(f"{path}: not a PST file (no !BDN signature)")
    if head[8:10] not in (b"SM", b"SO"):  # SO: an OST (offline store), read exactly like a PST
        raise NotAPstError(f"{path}: not a PST file (client magic {head[8:10]!r})")
    # the header records the file's size (ROOT.ibFileEof): a shorter file was truncated
    version = int.from_bytes(head[10:12], "little")
    if len(head) < 200:
        raise CorruptPstError(f"{path}: truncated PST: only {size} bytes, shorter than its header")
    eof = int.from_bytes(head[168:172], "little") if version in (14, 15) else int.from_bytes(head[184:192], "little")
    if size < eof:
        raise CorruptPstError(f"{path}: truncated PST: {size} bytes, its header says {eof}")


def open_pypff(path: str | Path) -> Any:
    """Open *path* with libpff (the reference reader); :class:`CorruptPstError` when it cannot."""
    check_signature(path)
    pst = _libpff().file()
    try:
        pst.open(str(path))
        pst.get_root_folder()
    except (OSError, MemoryError, ValueError) as exc:
        raise CorruptPstError(f"{path}: cannot open PST: {_first_line(exc)}") from exc
    return pst


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split(". ")[0].splitlines()[0] if text else type(exc).__name__


def list_folders(reader: ItemReader) -> tuple[list[FolderInfo], list[dict[str, Any]]]:
    """Every folder in depth-first order (hierarchy-table order), and the folders that could not be read.

    A folder's messages are the rows of its contents table, in table order: the order
    libpff's ``folder.get_sub_message(i)`` uses. A folder whose name cannot be read keeps
    its messages under ``<folder 0x...>``; one whose tables cannot be read is a failure.
    """
    pst = reader.pst
    folders: list[FolderInfo] = []
    failures: list[dict[str, Any]] = []
    try:
        pst.node(NID_ROOT_FOLDER)
    except CorruptPstError as exc:
        raise CorruptPstError(f"{exc} (while looking up the root folder)") from exc

    def table(nid: int, nid_type: int) -> list[int]:
        return pst.row_ids(pst.node((nid & ~0x1F) | nid_type))

    visited = {NID_ROOT_FOLDER}

    def walk(nid: int, names: tuple[str, ...], parent: int | None = None) -> None:
        path = "/".join(names)
        # the contents and the hierarchy table separately: one unreadable table must not
        # hide what the other reaches (a folder's messages, or its subfolders and theirs)
        try:
            messages = tuple(table(nid, NID_TYPE_CONTENTS_TABLE))
        except CorruptPstError as exc:
            if nid == NID_ROOT_FOLDER:  # nothing below it can be reached: not an empty mailbox, a broken file
                raise CorruptPstError(f"{exc} (the root folder's tables: the file's B-trees are damaged)") from exc
            # its items are lost: count them (the folder's own PR_CONTENT_COUNT says how
            # many) so that the counts still add up to what the file holds
            failures.append({"folder_path": path, "node_id": nid, "error": str(exc),
                             "items": _content_count(pst, nid)})
            messages = None
        try:
            children = table(nid, NID_TYPE_HIERARCHY_TABLE)
        except CorruptPstError as exc:
            if nid == NID_ROOT_FOLDER:
                raise CorruptPstError(f"{exc} (the root folder's tables: the file's B-trees are damaged)") from exc
            failures.append({"folder_path": path, "node_id": nid, "error": f"subfolders unreadable: {exc}",
                             "items": None})  # what its subfolders held cannot be known
            children = []
        if messages is not None:
            container_class, unread = reader.folder_details(nid)
            folders.append(FolderInfo(path, nid, messages, parent, names, container_class, unread))
        for child in children:
            if child & 0x1F != NID_TYPE_NORMAL_FOLDER:
                continue  # search folders hold links to messages filed elsewhere
            if child in visited or len(names) >= _MAX_DEPTH * 4:
                failures.append({"folder_path": path, "node_id": child, "error": "folder tree loops back on itself"})
                continue
            visited.add(child)
            try:
                name = reader.folder_name(child)
            except CorruptPstError as exc:
                failures.append({"folder_path": path, "node_id": child, "error": f"folder name unreadable: {exc}"})
                name = f"<folder 0x{child:X}>"
            walk(child, names + (name,), nid)

    walk(NID_ROOT_FOLDER, ())
    return folders, failures


#: messages whose code pages are counted when the store names none (spread over the folders)
CODEPAGE_SAMPLE = 512
_CODEPAGE_PROPERTIES = frozenset((PR_MESSAGE_CODEPAGE, PR_INTERNET_CPID, PR_MESSAGE_LOCALE_ID))


def message_codepage(props: Props) -> int | None:
    """The ANSI code page a message's own properties name: PR_MESSAGE_CODEPAGE, else its
    PR_INTERNET_CPID mapped to the Windows code page of the same script, else its locale's."""
    for cp in (props.int(PR_MESSAGE_CODEPAGE), _CPID_TO_ANSI.get(props.int(PR_INTERNET_CPID) or 0,
                                                                   props.int(PR_INTERNET_CPID))):
        if cp and cp not in (65001, 1200, 1201) and codec_for(cp):
            return cp
    return codepage_for_locale(props.int(PR_MESSAGE_LOCALE_ID))


def decide_codepage(reader: ItemReader, folders: list[FolderInfo], override: int | None = None) -> tuple[int, str]:
    """The file's default code page for ANSI strings that name none (folder names, the store,
    messages without one) and where it came from: *override* (``--codepage``,
    ``PSTFAST_CODEPAGE``), else the store's, else the most common among up to
    :data:`CODEPAGE_SAMPLE` messages (taken round-robin over the folders, so the answer does
    not depend on how the work is split), else 1252."""
    if override:
        return override, "override"
    store = reader.store_codepage()
    if store:
        return store, "store"
    votes: Counter[int] = Counter()
    queues = [list(f.message_nids[:CODEPAGE_SAMPLE]) for f in folders]
    taken = 0
    for depth in range(CODEPAGE_SAMPLE):
        for queue in queues:
            if depth < len(queue) and taken < CODEPAGE_SAMPLE:
                taken += 1
                try:
                    values = reader.pst.raw_properties(reader.pst.node(queue[depth]), _CODEPAGE_PROPERTIES)
                except CorruptPstError:
                    continue  # the item is read (and its damage recorded) later
                cp = message_codepage(Props(values))
                if cp:
                    votes[cp] += 1
        if taken >= CODEPAGE_SAMPLE:
            break
    if votes:
        best = max(votes.values())
        return min(cp for cp, n in votes.items() if n == best), "messages"
    return 1252, "default"


def _content_count(pst: PstReader, nid: int) -> int | None:
    """How many items folder *nid* says it holds (PR_CONTENT_COUNT), None when unreadable too
    or when the count is past what the file could hold (an item takes 64 bytes at least)."""
    try:
        count = Props(pst.raw_properties(pst.node(nid), frozenset((PR_CONTENT_COUNT,)))).int(PR_CONTENT_COUNT)
    except CorruptPstError:
        return None
    return count if count is not None and 0 <= count <= pst._size // 64 else None


# --- property access -------------------------------------------------------------------


@lru_cache(maxsize=256)
def codec_for(codepage: int | None) -> str | None:
    """A Python codec name for a Windows/Internet code page, or None when unknown."""
    if not codepage:
        return None
    if codepage == 65001:
        return "utf-8"
    codepage = _CPID_TO_ANSI.get(codepage, codepage)
    if not codepage:
        return None
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return None


def codepage_for_locale(lcid: int | None) -> int | None:
    """The ANSI code page of a Windows locale id (by its primary language)."""
    if not lcid:
        return None
    return _LANG_TO_ANSI.get(lcid & 0x3FF, 1252)


def filetime(data: bytes | None) -> dt.datetime | None:
    """A FILETIME (100 ns ticks since 1601) as a naive UTC datetime; None when unset."""
    if not data or len(data) < 8:
        return None
    ticks = int.from_bytes(data[:8], "little")
    if ticks == 0 or ticks >= 0x7FFF_FFFF_FFFF_0000:
        return None
    try:
        return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def pypff_values(record_set: Any, defer: int | None = None) -> dict[int, tuple[int, bytes | None]]:
    """property id -> (type, stored bytes) of a pypff record set (the first of a repeated id
    wins); a PT_BINARY value of id *defer* is (PT_BINARY, None), left for a streamed read."""
    values: dict[int, tuple[int, bytes | None]] = {}
    if record_set is not None:
        for entry in record_set.entries:
            tag = entry.entry_type
            if tag in values:
                continue
            if tag == defer and entry.value_type == PT_BINARY:
                values[tag] = (PT_BINARY, None)
                continue
            try:
                data = entry.data
            except OSError:
                values[tag] = (entry.value_type, None)
                continue
            if data is None and entry.value_type in (PT_UNICODE, PT_STRING8, PT_BINARY):
                data = b""  # libpff gives None for a zero-length value; the file holds an empty one
            values[tag] = (entry.value_type, data)
    return values


class Props:
    """The MAPI properties of one object: property id -> (value type, stored bytes)."""

    __slots__ = ("values", "codec")

    def __init__(self, values: dict[int, tuple[int, bytes | None]], codec: str | None = None) -> None:
        self.values = values
        self.codec = codec or "cp1252"

    def __contains__(self, tag: int) -> bool:
        return tag in self.values and self.values[tag][1] is not None

    def raw(self, tag: int) -> bytes | None:
        item = self.values.get(tag)
        return None if item is None else item[1]

    def int(self, tag: int) -> int | None:
        item = self.values.get(tag)
        if item is None or item[1] is None:
            return None
        vtype, data = item
        if vtype == PT_BOOLEAN:
            return 1 if data and data[0] else 0
        if vtype in (PT_SHORT, PT_LONG, PT_LONGLONG) and data:
            return int.from_bytes(data, "little", signed=True)
        return None

    # the methods int/bool/str shadow the builtins inside this class: annotations say builtins.*
    def bool(self, tag: builtins.int) -> builtins.bool:
        return bool(self.int(tag))

    def time(self, tag: builtins.int) -> dt.datetime | None:
        item = self.values.get(tag)
        if item is None or item[0] != PT_SYSTIME:
            return None
        return filetime(item[1])

    def str(self, tag: builtins.int) -> builtins.str | None:
        """The text of a string (or binary) property: clean, as a row needs it (NUL and
        unpaired surrogates replaced, see :func:`~pstfast.records.clean_text`)."""
        item = self.values.get(tag)
        if item is None:
            return None
        vtype, data = item
        if data is None:
            return None
        if vtype == PT_UNICODE:
            try:  # strict first: success proves there is no unpaired surrogate (the usual case)
                text = _utf16(data, "strict", True)[0].rstrip("\x00")
            except UnicodeDecodeError:
                return clean_text(data.decode("utf-16-le", "surrogatepass").rstrip("\x00"))
            return _no_nul(text)
        if vtype in (PT_STRING8, PT_BINARY):
            return _no_nul(data.decode(self.codec, "replace").rstrip("\x00"))
        return None


_utf16 = codecs.utf_16_le_decode  # what bytes.decode("utf-16-le") calls, without the codec lookup


def _no_nul(text: str) -> str:
    """*text* with NUL replaced by U+FFFD: all :func:`~pstfast.records.clean_text` has to do
    for text a codec decoded strictly or with "replace", which never yields a lone surrogate."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _unwrap_subject(text: str | None) -> str | None:
    # PR_SUBJECT may start with a 0x01 marker and the length of the "RE: " style prefix
    if text and text[0] == "\x01":
        return text[2:]
    return text


def _addr(addrtype: str | None, address: str | None) -> str | None:
    if address and (addrtype or "").upper() == "SMTP":
        return address
    return None


def _within(value: int | None, bits: int, name: str, problems: list[tuple[int, str, str]]) -> int | None:
    """*value* when it fits its column's signed *bits*; else None, and a warning: a damaged
    property (a wrong type or size) must not stop the rows' writers."""
    if value is None or -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        return value
    problems.append((-1, "property", f"{name} {value} does not fit its {bits}-bit column: left empty"))
    return None


def _x500(addrtype: str | None, address: str | None) -> str | None:
    """*address* when it is an Exchange DN (address type EX)."""
    if address and (addrtype or "").upper() == "EX":
        return address
    return None


@dataclass
class Headers:
    """Transport headers parsed lazily: the fallback for absent MAPI properties."""

    text: str | None
    _parsed: Any = None
    _lower: str | None = None

    def get(self, name: str) -> str | None:
        # most lookups are for a header that is absent: skip the parse when the name
        # does not occur at all (case-insensitively) in the text
        if not self.text:
            return None
        if self._lower is None:
            self._lower = self.text.lower()
        if name.lower() not in self._lower:
            return None
        if self._parsed is None:
            self._parsed = HeaderParser().parsestr(self.text, headersonly=True)
        value = self._parsed.get(name)
        return None if value is None else " ".join(str(value).split())

    def addresses(self, name: str) -> list[dict[str, str | None]]:
        value = self.get(name)
        if not value:
            return []
        return [{"name": n or None, "email": a or None, "x500": None} for n, a in email.utils.getaddresses([value])]


# --- the two sources of items: pstfast's reader and pypff ------------------------------


class NativeItem:
    """A message (or any item) read by pstfast's reader; embedded messages are NativeItems too."""

    __slots__ = ("pst", "node", "identifier", "_attachments", "wanted")

    def __init__(self, pst: PstReader, node: Any, wanted: frozenset[int] = READ_PROPERTIES) -> None:
        self.pst = pst
        self.node = node
        self.identifier: int = node.nid
        self._attachments: list[Any] | None = None
        #: the property ids read: READ_PROPERTIES and this file's named properties
        self.wanted = wanted

    def values(self) -> dict[int, tuple[int, bytes | None]]:
        return self.pst.raw_properties(self.node, self.wanted)

    def recipient_values(self) -> list[dict[int, tuple[int, bytes | None]]]:
        table = self.pst.recipients_table(self.node)
        return [] if table is None else self.pst.raw_rows(table, self.wanted)  # type: ignore[return-value]

    def attachment_count(self) -> int:
        if self._attachments is None:
            self._attachments = self.pst.attachments(self.node)
        return len(self._attachments)

    def attachment(self, ordinal: int) -> tuple[dict[int, tuple[int, bytes | None]], Any]:
        """(properties, a handle for :meth:`data` / :meth:`embedded`) of attachment *ordinal*."""
        self.attachment_count()
        assert self._attachments is not None
        node = self._attachments[ordinal]
        return self.pst.raw_properties(node, self.wanted, defer=PR_ATTACH_DATA), node

    def data(self, values: dict[int, tuple[int, bytes | None]], handle: Any, spool: str | None) -> bytes | Spooled:
        return _attached_bytes(self.pst, values, handle, spool)

    def embedded(self, ordinal: int, values: dict[int, tuple[int, bytes | None]], handle: Any) -> NativeItem:
        return NativeItem(self.pst, self.pst.embedded(handle, values), self.wanted)


#: attachments over this many bytes stream to a scratch file (see Spooled) when the reader
#: has a spool folder: a worker's memory stays flat whatever an attachment's size
SPOOL_OVER = 8 << 20


@dataclass(frozen=True)
class Spooled:
    """An attachment's bytes written to a scratch file as they were read, never all in memory."""

    path: str
    size: int
    sha256: str


def _gather(size: int, chunks: Iterable[bytes], spool: str | None,
            release: Callable[[], None] | None = None) -> bytes | Spooled:
    """The bytes of *chunks* (*size* declared): in memory, or in a file in *spool* when big
    (calling *release* every SPOOL_OVER bytes: the file pages read so far leave memory)."""
    if spool is None or size <= SPOOL_OVER:
        return b"".join(chunks)
    digest, written = hashlib.sha256(), 0
    fd, path = tempfile.mkstemp(prefix="attachment-", dir=spool)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
                if release is not None and (written + len(chunk)) // SPOOL_OVER != written // SPOOL_OVER:
                    release()
                written += len(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return Spooled(path, written, digest.hexdigest())


def _attached_bytes(pst: PstReader, values: dict[int, tuple[int, bytes | None]], node: Any,
                    spool: str | None) -> bytes | Spooled:
    """The bytes of an attachment: PidTagAttachDataBinary (by value), or the data of the
    subnode PidTagAttachDataObject names (an OLE object, method 6); streamed when big."""
    found = values.get(PR_ATTACH_DATA)
    if found and found[0] == PT_OBJECT:
        return _gather(*pst.object_stream(node, values), spool, pst.release_pages)
    if found and found[0] == PT_BINARY and found[1] is None:  # in a subnode, left for here
        stream = pst.value_stream(node, PR_ATTACH_DATA)
        return b"" if stream is None else _gather(*stream, spool, pst.release_pages)
    return (found[1] or b"") if found and found[0] == PT_BINARY else b""


class PypffItem:
    """A pypff (libpff) item, for the legacy baseline and for cross-checking pstfast's reader."""

    __slots__ = ("item", "pst", "identifier", "wanted")

    def __init__(self, item: Any, pst: PstReader, wanted: frozenset[int] = READ_PROPERTIES) -> None:
        self.item = item
        self.pst = pst  # for embedded messages, which pypff cannot open
        self.identifier: int = item.identifier
        self.wanted = wanted

    def values(self) -> dict[int, tuple[int, bytes | None]]:
        item = self.item
        values = pypff_values(item.get_record_set(0) if item.number_of_record_sets else None)
        limit = self.pst.max_value  # libpff reads a value whole: the same budget, checked after
        if limit is not None:
            for _, data in values.values():
                if data is not None and len(data) > limit:  # the words of PstReader's own check
                    raise ItemBudgetExceeded(f"a value of {len(data):,} bytes, over the {limit:,} allowed "
                                             "(PSTFAST_ITEM_MAX_MB)")
        return values

    def recipient_values(self) -> list[dict[int, tuple[int, bytes | None]]]:
        table = getattr(self.item, "recipients", None)  # reads the table: once, not twice
        return [] if table is None else [pypff_values(rs) for rs in table.record_sets]

    def attachment_count(self) -> int:
        return int(self.item.number_of_attachments) if hasattr(self.item, "get_number_of_attachments") else 0

    def attachment(self, ordinal: int) -> tuple[dict[int, tuple[int, bytes | None]], Any]:
        att = self.item.get_attachment(ordinal)
        return pypff_values(att.get_record_set(0) if att.number_of_record_sets else None, PR_ATTACH_DATA), att

    def data(self, values: dict[int, tuple[int, bytes | None]], handle: Any, spool: str | None) -> bytes | Spooled:
        length = handle.get_size()
        if not length:
            return b""

        def chunks() -> Iterator[bytes]:
            handle.seek_offset(0)
            left = length
            while left > 0:
                chunk = handle.read_buffer(min(left, SPOOL_OVER))
                if not chunk:
                    raise CorruptPstError(f"libpff stops {left} bytes short of the attachment's {length}")
                left -= len(chunk)
                yield chunk

        return _gather(length, chunks(), spool)

    def embedded(self, ordinal: int, values: dict[int, tuple[int, bytes | None]], handle: Any) -> NativeItem:
        message = self.pst.node(self.identifier)
        node = self.pst.attachments(message)[ordinal]
        return NativeItem(self.pst, self.pst.embedded(node, self.pst.raw_properties(node)), self.wanted)


class CompiledItem:
    """A message read in one call by the compiled path (:mod:`pstfast.pst.compiled`)."""

    __slots__ = ("pst", "compiled", "identifier", "read")

    def __init__(self, pst: PstReader, compiled: CompiledReader, identifier: int, read: CompiledMessage) -> None:
        self.pst = pst
        self.compiled = compiled
        self.identifier = identifier
        self.read = read

    def values(self) -> dict[int, tuple[int, bytes | None]]:
        return self.read.values  # type: ignore[return-value]

    def recipient_values(self) -> list[dict[int, tuple[int, bytes | None]]]:
        return self.read.recipients  # type: ignore[return-value]

    def attachment_count(self) -> int:
        return len(self.read.attachments)

    def attachment(self, ordinal: int) -> tuple[dict[int, tuple[int, bytes | None]], Any]:
        return self.read.attachments[ordinal]  # type: ignore[return-value]

    def data(self, values: dict[int, tuple[int, bytes | None]], handle: Any, spool: str | None) -> bytes | Spooled:
        return _attached_bytes(self.pst, values, handle, spool)

    def embedded(self, ordinal: int, values: dict[int, tuple[int, bytes | None]], handle: Any) -> Item:
        node = self.pst.embedded(handle, values)
        read = self.compiled.node(node)
        if read is None:
            return NativeItem(self.pst, node, self.compiled.wanted)
        return CompiledItem(self.pst, self.compiled, node.nid, read)


Item = NativeItem | PypffItem | CompiledItem


# --- items -----------------------------------------------------------------------------


@dataclass
class ReadAttachment:
    """One attachment as read: its row fields, bytes (by value) or embedded message."""

    ordinal: int
    filename: str | None
    mime_type: str | None
    size: int | None
    content_id: str | None
    is_inline: bool
    method: str
    data: bytes | None
    sha256: str | None
    message: ReadMessage | None
    reference: str | None = None  # the path or URL of a by-reference attachment
    stored: bool = False  # its bytes are stored already and dropped from *data* (a deferred shard)
    spooled: str | None = None  # its bytes are in this scratch file instead of *data* (Spooled)


@dataclass
class ReadMessage:
    """The fields of one item before ids, normalisation and hashing are added.

    Its text (and its attachments') is clean already: every string is decoded by
    :meth:`Props.str` or :meth:`ItemReader._html`, which replace what PostgreSQL text
    cannot hold, or parsed from such a string (transport headers).
    """

    node_id: int | None
    message_class: str | None
    internet_message_id: str | None
    in_reply_to: str | None
    references: list[str]
    conversation_index: str | None
    conversation_topic: str | None
    subject: str | None
    sender_name: str | None
    #: the SMTP address; the DN (== sender_x500) until exchange.resolve finds its address
    sender_email: str | None
    sender_x500: str | None  # the sender's Exchange DN, when its address type is EX
    to: list[dict[str, str | None]]
    cc: list[dict[str, str | None]]
    bcc: list[dict[str, str | None]]
    sent_at: dt.datetime | None
    received_at: dt.datetime | None
    body_text: str | None
    body_html: str | None
    body_text_source: str | None  # plain | html | rtf | None: where body_text came from
    body_rtf: str | None  # the decompressed PR_RTF_COMPRESSED
    transport_headers: str | None
    size_bytes: int | None
    importance: int | None
    attachments: list[ReadAttachment]
    #: problems below the message: (ordinal or -1, "attachment" | "embedded_message" |
    #: "recipients", reason); the message itself was read
    problems: list[tuple[int, str, str]]
    #: (Exchange DN, SMTP address) pairs the message holds: the input of exchange.build
    address_pairs: list[tuple[str, str]]
    # review metadata (migration 010)
    flags: int | None = None  # PR_MESSAGE_FLAGS
    is_read: bool | None = None  # mfRead
    is_draft: bool = False  # mfUnsent: never sent (then no sent_at)
    created_at: dt.datetime | None = None
    modified_at: dt.datetime | None = None
    sensitivity: int | None = None  # PR_SENSITIVITY: 0 normal, 1 personal, 2 private, 3 confidential
    categories: list[str] = field(default_factory=list)  # PS_PUBLIC_STRINGS "Keywords"
    sent_representing_name: str | None = None
    sent_representing_email: str | None = None
    item_properties: dict[str, Any] | None = None  # by kind (extraction/kinds.py)
    #: the sent-representing Exchange DN (for exchange.resolve; sender_x500 is the column)
    representing_x500: str | None = None


class ItemReader:
    """Reads the items of one PST (one per worker process).

    With *compiled*, messages are read by the compiled path (:mod:`pstfast.pst.compiled`,
    ~2.5x faster; :func:`pstfast.config.compiled_reader_setting` says when to use it); a message
    it stops at is read again by the Python reader, which says what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], *, compiled: bool = False, codepage: int | None = None) -> None:
        self.path = os.fspath(path)
        self.pst = PstReader(self.path)
        self.compiled: CompiledReader | None = None
        #: where attachments over SPOOL_OVER bytes go as they are read (None: into memory)
        self.spool: str | None = None
        try:
            #: the code page of ANSI strings that name none of their own (see decide_codepage)
            self.default_codepage = codepage or self.store_codepage()
            #: pstfast's names of the named properties (NAMED_PROPERTIES) -> this file's ids,
            #: resolved once per file (and per worker) from the name-to-id map
            self.named: dict[str, int] = self._named_properties()
            self.wanted: frozenset[int] = READ_PROPERTIES | frozenset(self.named.values())
            if compiled:
                from ..pst.compiled import CompiledReader

                self.compiled = CompiledReader(self.pst, self.wanted)
        except BaseException:
            self.pst.close()
            raise

    def close(self) -> None:
        """Release the file."""
        if self.compiled is not None:
            self.compiled.close()
            self.compiled = None
        self.pst.close()

    def message(self, nid: int) -> Item:
        """Top-level item *nid* (raises :class:`CorruptPstError` when it is not in the node B-tree)."""
        if self.compiled is not None:
            read = self.compiled.message(nid)
            if read is not None:
                return CompiledItem(self.pst, self.compiled, nid, read)
        return NativeItem(self.pst, self.pst.node(nid), self.wanted)

    def pypff_item(self, item: Any) -> PypffItem:
        """Wrap a pypff item so that :meth:`read` reads it with the same field logic."""
        return PypffItem(item, self.pst, self.wanted)

    def use_libpff_name_map(self, pst: Any) -> None:
        """Resolve the named properties from the map as libpff reads it (``--reader libpff``:
        every field from libpff), in place of pstfast's reading of node 0x61."""
        try:
            found = pst.get_name_to_id_map()
            values = pypff_values(found.get_record_set(0) if found is not None and found.number_of_record_sets else None)
        except READ_ERRORS as exc:
            log.warning("%s: libpff cannot read the name-to-id map, named properties not read: %s", self.path, exc)
            values = {}
        self.named = namemap.resolve(namemap.parse(values))
        self.wanted = READ_PROPERTIES | frozenset(self.named.values())

    def _named_properties(self) -> dict[str, int]:
        """The file's ids of the named properties pstfast reads (:mod:`pstfast.pst.namemap`);
        none when the map is missing or unreadable (named fields then stay empty)."""
        try:
            values = self.pst.raw_properties(self.pst.node(NID_NAME_TO_ID_MAP))
        except CorruptPstError as exc:
            # debug: a file this damaged usually fails as a whole right after (one error line)
            log.debug("%s: name-to-id map unreadable, named properties not read: %s", self.path, exc)
            return {}
        return namemap.resolve(namemap.parse(values))

    def folder_name(self, nid: int) -> str:
        """The display name of folder *nid*."""
        props = Props(self.pst.raw_properties(self.pst.node(nid), READ_PROPERTIES),
                      codec_for(self.default_codepage))
        return props.str(PR_DISPLAY_NAME) or ""

    def folder_details(self, nid: int) -> tuple[str | None, int | None]:
        """(PR_CONTAINER_CLASS, PR_CONTENT_UNREAD_COUNT) of folder *nid*; Nones when unreadable."""
        try:
            props = Props(self.pst.raw_properties(self.pst.node(nid), READ_PROPERTIES),
                          codec_for(self.default_codepage))
        except CorruptPstError:
            return None, None
        unread = props.int(PR_CONTENT_UNREAD_COUNT)
        return props.str(PR_CONTAINER_CLASS), unread if unread is None or 0 <= unread < 1 << 31 else None

    def store_codepage(self) -> int | None:
        """The message store's own code page (PR_MESSAGE_CODEPAGE, PR_INTERNET_CPID, its locale's)."""
        try:
            props = Props(self.pst.raw_properties(self.pst.node(NID_MESSAGE_STORE), READ_PROPERTIES))
        except CorruptPstError:
            return None
        for tag in (PR_MESSAGE_CODEPAGE, PR_INTERNET_CPID):
            cp = props.int(tag)
            if codec_for(cp):
                return cp
        return codepage_for_locale(props.int(PR_MESSAGE_LOCALE_ID))

    def _codec(self, props: Props) -> str:
        return (codec_for(props.int(PR_MESSAGE_CODEPAGE)) or codec_for(props.int(PR_INTERNET_CPID))
                or codec_for(self.default_codepage) or codec_for(codepage_for_locale(props.int(PR_MESSAGE_LOCALE_ID)))
                or "cp1252")

    def read(self, item: Item, *, depth: int = 0) -> ReadMessage:
        """Read every row field of *item* (a message or any other item)."""
        if depth > _MAX_DEPTH:
            raise CorruptPstError(f"{self.path}: embedded messages nested deeper than {_MAX_DEPTH}")
        props = Props(item.values())
        props.codec = self._codec(props)
        headers = Headers(props.str(PR_TRANSPORT_MESSAGE_HEADERS))

        sender_name = props.str(PR_SENDER_NAME) or props.str(PR_SENT_REPRESENTING_NAME)
        sender_smtp = props.str(PR_SENDER_SMTP_ADDRESS)
        representing_smtp = props.str(PR_SENT_REPRESENTING_SMTP_ADDRESS)
        sender_dn = _x500(props.str(PR_SENDER_ADDRTYPE), props.str(PR_SENDER_EMAIL_ADDRESS))
        representing_dn = _x500(props.str(PR_SENT_REPRESENTING_ADDRTYPE), props.str(PR_SENT_REPRESENTING_EMAIL_ADDRESS))
        pairs = [(dn, smtp) for dn, smtp in ((sender_dn, sender_smtp), (representing_dn, representing_smtp))
                 if dn and smtp]
        sender_email = (
            sender_smtp
            or _addr(props.str(PR_SENDER_ADDRTYPE), props.str(PR_SENDER_EMAIL_ADDRESS))
            or representing_smtp
            or _addr(props.str(PR_SENT_REPRESENTING_ADDRTYPE), props.str(PR_SENT_REPRESENTING_EMAIL_ADDRESS))
        )
        if not sender_email:
            header_from = headers.addresses("From")
            if header_from:
                sender_email = header_from[0]["email"]
                sender_name = sender_name or header_from[0]["name"]
        if not sender_email:  # a DN (resolved later, from the whole file) or another address type
            sender_email = props.str(PR_SENDER_EMAIL_ADDRESS) or props.str(PR_SENT_REPRESENTING_EMAIL_ADDRESS)
        sender_x500 = sender_dn or representing_dn

        problems: list[tuple[int, str, str]] = []
        kind = kinds.kind_of(props.str(PR_MESSAGE_CLASS))
        attendees: list[dict[str, Any]] | None = [] if kind == "appointment" else None
        try:
            recipients = self._recipients(item, props.codec, pairs, attendees)
        except READ_ERRORS as exc:
            problems.append((-1, "recipients", f"recipient table unreadable: {_first_line(exc)}"))
            recipients = {"to": [], "cc": [], "bcc": []}
        if not any(recipients.values()) and headers.text:
            recipients = {"to": headers.addresses("To"), "cc": headers.addresses("Cc"), "bcc": headers.addresses("Bcc")}

        references_text = props.str(PR_INTERNET_REFERENCES) or headers.get("References")
        conversation_index = props.raw(PR_CONVERSATION_INDEX) if PR_CONVERSATION_INDEX in props else None
        flags = _within(props.int(PR_MESSAGE_FLAGS), 32, "PR_MESSAGE_FLAGS", problems)
        is_draft = bool(flags is not None and flags & MSGFLAG_UNSENT)
        sent_at = props.time(PR_CLIENT_SUBMIT_TIME)
        if sent_at is None and headers.get("Date"):
            sent_at = _header_date(headers.get("Date"))
        if is_draft:
            sent_at = None  # a draft was never sent: whatever time it carries is not a sending

        attachments, attachment_problems = self._attachments(item, props.codec, depth)
        problems.extend(attachment_problems)
        exceptions = []
        if kind == "appointment":  # exceptions belong to their series: never rows of their own
            for att in attachments:
                if att.message is not None and kinds.is_exception(att.message.message_class):
                    exceptions.append(att.message)
                    att.message = None
        sent_representing_email = (
            props.str(PR_SENT_REPRESENTING_SMTP_ADDRESS)
            or _addr(props.str(PR_SENT_REPRESENTING_ADDRTYPE), props.str(PR_SENT_REPRESENTING_EMAIL_ADDRESS))
            or props.str(PR_SENT_REPRESENTING_EMAIL_ADDRESS)
        )
        sent_representing_name = props.str(PR_SENT_REPRESENTING_NAME)
        organizer = {"name": sent_representing_name or sender_name,
                     "email": sent_representing_email or sender_email}
        item_properties = kinds.item_properties(kind, props, self.named, attendees or [], organizer, exceptions)
        keywords = self.named.get("keywords")
        body = body_text(props.str(PR_BODY), self._html(props), props.raw(PR_RTF_COMPRESSED))
        if body.problem:
            problems.append((-1, "body", body.problem))
        return ReadMessage(
            node_id=item.identifier if depth == 0 else None,
            message_class=props.str(PR_MESSAGE_CLASS),
            internet_message_id=props.str(PR_INTERNET_MESSAGE_ID) or headers.get("Message-ID"),
            in_reply_to=props.str(PR_IN_REPLY_TO_ID) or headers.get("In-Reply-To"),
            references=references_text.split() if references_text else [],
            conversation_index=conversation_index.hex() if conversation_index else None,
            conversation_topic=props.str(PR_CONVERSATION_TOPIC),
            subject=_unwrap_subject(props.str(PR_SUBJECT)) if PR_SUBJECT in props else headers.get("Subject"),
            sender_name=sender_name,
            sender_email=sender_email,
            sender_x500=sender_x500,
            representing_x500=representing_dn,
            to=recipients["to"],
            cc=recipients["cc"],
            bcc=recipients["bcc"],
            sent_at=sent_at,
            received_at=props.time(PR_MESSAGE_DELIVERY_TIME),
            body_text=body.text,
            body_html=body.html,
            body_text_source=body.source,
            body_rtf=body.rtf,
            transport_headers=headers.text,
            size_bytes=props.int(PR_MESSAGE_SIZE),
            importance=_within(props.int(PR_IMPORTANCE), 16, "PR_IMPORTANCE", problems),
            attachments=attachments,
            problems=problems,
            address_pairs=pairs,
            flags=flags,
            is_read=bool(flags & MSGFLAG_READ) if flags is not None else None,
            is_draft=is_draft,
            created_at=props.time(PR_CREATION_TIME),
            modified_at=props.time(PR_LAST_MODIFICATION_TIME),
            sensitivity=_within(props.int(PR_SENSITIVITY), 16, "PR_SENSITIVITY", problems),
            categories=kinds.multi_strings(props, keywords) if keywords is not None else [],
            sent_representing_name=sent_representing_name,
            sent_representing_email=sent_representing_email,
            item_properties=item_properties,
        )

    def _html(self, props: Props) -> str | None:
        item = props.values.get(PR_HTML)
        if item is None:
            return None
        vtype, data = item
        if data is None:
            return None
        if vtype == PT_UNICODE:
            return props.str(PR_HTML)
        # binary HTML is in the message's Internet code page (usually UTF-8)
        codec = codec_for(props.int(PR_INTERNET_CPID)) if props.int(PR_INTERNET_CPID) != 20127 else None
        codec = codec or "utf-8"
        return _no_nul(data.decode(codec, "replace").rstrip("\x00"))

    def _recipients(self, item: Item, codec: str,
                    pairs: list[tuple[str, str]],
                    attendees: list[dict[str, Any]] | None = None) -> dict[str, list[dict[str, str | None]]]:
        """to/cc/bcc of *item*; the (DN, SMTP) pairs of EX rows go to *pairs*, and every recipient
        row also goes to *attendees* when given (an appointment's: with its type,
        PidTagRecipientFlags and PidTagRecipientTrackStatus)."""
        out: dict[str, list[dict[str, str | None]]] = {"to": [], "cc": [], "bcc": []}
        for values in item.recipient_values():
            props = Props(values, codec)
            code = (props.int(PR_RECIPIENT_TYPE) or 1) & 0x0F
            kind = RECIPIENT_KINDS.get(code)
            if attendees is not None:
                attendees.append({
                    "name": props.str(PR_DISPLAY_NAME) or props.str(PR_RECIPIENT_DISPLAY_NAME),
                    "email": (props.str(PR_SMTP_ADDRESS) or _addr(props.str(PR_ADDRTYPE), props.str(PR_EMAIL_ADDRESS))
                              or props.str(PR_EMAIL_ADDRESS)),
                    "type": code, "flags": props.int(PR_RECIPIENT_FLAGS) or 0,
                    "track": props.int(PR_RECIPIENT_TRACK_STATUS)})
            if kind is None:
                continue
            addrtype, smtp = props.str(PR_ADDRTYPE), props.str(PR_SMTP_ADDRESS)
            dn = _x500(addrtype, props.str(PR_EMAIL_ADDRESS))
            if dn and smtp:
                pairs.append((dn, smtp))
            address = smtp or _addr(addrtype, props.str(PR_EMAIL_ADDRESS)) or props.str(PR_EMAIL_ADDRESS)
            name = props.str(PR_DISPLAY_NAME) or props.str(PR_RECIPIENT_DISPLAY_NAME)
            out[kind].append({"name": name, "email": address, "x500": dn})
        return out

    def _attachments(self, item: Item, codec: str, depth: int) -> tuple[list[ReadAttachment], list[tuple[int, str, str]]]:
        attachments: list[ReadAttachment] = []
        problems: list[tuple[int, str, str]] = []
        try:
            count = item.attachment_count()
        except READ_ERRORS as exc:
            return [], [(-1, "attachment", f"cannot list attachments: {_first_line(exc)}")]
        for ordinal in range(count):
            try:
                attachments.append(self._attachment(item, ordinal, codec, depth, problems))
            except READ_ERRORS as exc:
                problems.append((ordinal, "attachment", _first_line(exc)))
        return attachments, problems

    def _attachment(
        self, item: Item, ordinal: int, codec: str, depth: int, problems: list[tuple[int, str, str]]
    ) -> ReadAttachment:
        values, handle = item.attachment(ordinal)
        props = Props(values, codec)
        method_code = props.int(PR_ATTACH_METHOD) or ATTACH_BY_VALUE
        filename = props.str(PR_ATTACH_LONG_FILENAME) or props.str(PR_ATTACH_FILENAME) or props.str(PR_DISPLAY_NAME)
        data: bytes | None = None
        spooled = sha256 = None
        message: ReadMessage | None = None
        size = props.int(PR_ATTACH_SIZE)
        if method_code == ATTACH_EMBEDDED_MSG:
            method = "embedded_message"
            try:
                message = self.read(item.embedded(ordinal, values, handle), depth=depth + 1)
            except READ_ERRORS as exc:
                problems.append((ordinal, "embedded_message", _first_line(exc)))
        else:
            method = {ATTACH_BY_VALUE: "by_value", ATTACH_OLE: "ole"}.get(method_code, "reference")
            if method != "reference":
                got = item.data(values, handle, self.spool)
                if isinstance(got, Spooled):
                    spooled, size, sha256 = got.path, got.size, got.sha256
                else:
                    data, size, sha256 = got, len(got), hashlib.sha256(got).hexdigest()
                if not size and PR_ATTACH_DATA not in props:
                    problems.append((ordinal, "attachment_data", f"{method} attachment without data"
                                     f" (PR_ATTACH_SIZE {props.int(PR_ATTACH_SIZE)})" if props.int(PR_ATTACH_SIZE)
                                     else f"{method} attachment without data"))
        return ReadAttachment(
            ordinal=ordinal,
            filename=filename,
            mime_type=props.str(PR_ATTACH_MIME_TAG),
            size=size,
            content_id=props.str(PR_ATTACH_CONTENT_ID),
            is_inline=props.bool(PR_ATTACHMENT_HIDDEN) or bool((props.int(PR_ATTACH_FLAGS) or 0) & ATTACH_FLAG_MHTML_REF),
            method=method,
            data=data,
            sha256=sha256,
            message=message,
            reference=(props.str(PR_ATTACH_LONG_PATHNAME) or props.str(PR_ATTACH_PATHNAME)
                       if method == "reference" else None),
            spooled=spooled,
        )


def _header_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is not None:  # 31 Dec 9999 -0100 is past datetime's range in UTC
            parsed = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        return None  # an unusable Date header: the message keeps no sent_at, not lost
    return parsed
