"""Messaging layer of a Unicode PST (MS-PST 2.4): store, folders, messages, attachments.

Usage::

    with PstWriter(path, display_name="Custodian A") as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        pst.add_message(inbox, Message(subject="Hello", ...))

Messages are written to disk as they are added; folders (whose properties and tables
summarise their messages) are written when the writer closes.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import hashlib
import itertools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..props import (
    ATTACH_BY_REFERENCE,
    ATTACH_BY_VALUE,
    ATTACH_EMBEDDED_MSG,
    ATTACH_OLE,
    MAPI_BCC,
    MAPI_CC,
    MAPI_TO,
    NID_ATTACHMENT_TABLE,
    NID_MESSAGE_STORE,
    NID_NAME_TO_ID_MAP,
    NID_RECIPIENT_TABLE,
    NID_ROOT_FOLDER,
    NID_TYPE_ASSOC_CONTENTS_TABLE,
    NID_TYPE_ATTACHMENT,
    NID_TYPE_CONTENTS_TABLE,
    NID_TYPE_HIERARCHY_TABLE,
    NID_TYPE_NORMAL_FOLDER,
    NID_TYPE_NORMAL_MESSAGE,
    PR_RECIPIENT_FLAGS,
    PR_RECIPIENT_TRACK_STATUS,
    PSETID_COMMON,
    PT_LONG,
)
from ..namemap import NameMapBuilder
from . import tags as T
from .ltp import Built, PidTagLtpRowId, PidTagLtpRowVer, SubnodeIds, build_pc, build_tc
from .ndb import NID_TYPE_LTP, make_nid, ndb_writer

# nodes MS-PST 2.7.1 lists as present in every PST, written empty
_EMPTY_SEARCH_NODES = (0x1E1, 0x201, 0x261, 0x281, 0x321)
_TEMPLATES = {0x60D: "hierarchy", 0x60E: "contents", 0x60F: "assoc", 0x610: "contents", 0x671: "attachments", 0x692: "recipients"}

_RECIPIENT_FLAGS = (PR_RECIPIENT_FLAGS << 16) | PT_LONG
_RECIPIENT_TRACK_STATUS = (PR_RECIPIENT_TRACK_STATUS << 16) | PT_LONG
_FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)

HIERARCHY_COLUMNS = (
    PidTagLtpRowId, PidTagLtpRowVer, T.DISPLAY_NAME, T.CONTENT_COUNT, T.CONTENT_UNREAD_COUNT,
    T.SUBFOLDERS, T.CONTAINER_CLASS,
)
CONTENTS_COLUMNS = (
    PidTagLtpRowId, PidTagLtpRowVer, T.MESSAGE_CLASS, T.SUBJECT, T.SENT_REPRESENTING_NAME, T.DISPLAY_TO,
    T.MESSAGE_DELIVERY_TIME, T.CLIENT_SUBMIT_TIME, T.MESSAGE_FLAGS, T.MESSAGE_SIZE, T.IMPORTANCE,
    T.CONVERSATION_TOPIC,
)
_METHODS = {"by_value": ATTACH_BY_VALUE, "ole": ATTACH_OLE, "reference": ATTACH_BY_REFERENCE}

RECIPIENT_COLUMNS = (
    PidTagLtpRowId, PidTagLtpRowVer, T.RECIPIENT_TYPE, T.DISPLAY_NAME, T.ADDRTYPE, T.EMAIL_ADDRESS,
    T.SMTP_ADDRESS, T.RESPONSIBILITY, T.SEND_RICH_INFO, T.DISPLAY_TYPE, T.OBJECT_TYPE, T.ROWID,
)
ATTACHMENT_COLUMNS = (
    PidTagLtpRowId, PidTagLtpRowVer, T.ATTACH_SIZE, T.ATTACH_FILENAME, T.ATTACH_METHOD, T.RENDERING_POSITION,
)


def filetime(value: _dt.datetime) -> int:
    """100-nanosecond ticks since 1601-01-01 UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


@dataclass
class Recipient:
    """One row of a message's recipient table.

    With *x500*, an Exchange recipient as Exchange stores it: address type ``EX``, the DN as
    PR_EMAIL_ADDRESS and *email* as PR_SMTP_ADDRESS, or no SMTP address at all when
    *smtp_known* is false (older stores)."""

    name: str
    email: str
    kind: int = MAPI_TO  # MAPI_TO, MAPI_CC or MAPI_BCC (an attendee: required, optional, resource)
    x500: str | None = None
    smtp_known: bool = True
    #: a meeting's: PidTagRecipientFlags (0x2: the organizer) and PidTagRecipientTrackStatus
    flags: int | None = None
    track_status: int | None = None


@dataclass
class Attachment:
    """An attachment: bytes by value, an OLE object, a reference to a file, or an embedded message.

    *method*: ``by_value`` (PidTagAttachDataBinary), ``ole`` (attach method 6: the bytes in a
    subnode that a PT_OBJECT PidTagAttachDataObject names, as Outlook stores OLE objects) or
    ``reference`` (method 2, ATTACH_BY_REFERENCE: no bytes, *reference* is the path);
    *message* makes it an embedded message whatever *method* says.
    """

    filename: str
    mime_type: str | None = None
    data: bytes = b""
    content_id: str | None = None
    inline: bool = False
    message: Message | None = None  # set for an embedded message
    method: str = "by_value"
    reference: str | None = None
    extra: dict[int, object] = field(default_factory=dict)  # further properties (full tags)


@dataclass
class Message:
    """The properties pstfast writes for one message."""

    subject: str
    sender_name: str
    sender_email: str
    sent_at: _dt.datetime | None
    received_at: _dt.datetime
    message_class: str = "IPM.Note"
    recipients: list[Recipient] = field(default_factory=list)
    body_text: str | None = None
    body_html: str | None = None
    #: PR_RTF_COMPRESSED as stored (pstfast.pst.rtf.compress_rtf of the RTF)
    body_rtf_compressed: bytes | None = None
    transport_headers: str | None = None
    internet_message_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    conversation_index: bytes | None = None
    conversation_topic: str | None = None
    importance: int = 1
    attachments: list[Attachment] = field(default_factory=list)
    #: an Exchange sender: address type EX, this DN as PR_SENDER_EMAIL_ADDRESS (and sent
    #: representing), and no SMTP property unless *sender_smtp_known*: its SMTP address
    #: is then only where other items pair the DN with it
    sender_x500: str | None = None
    sender_smtp_known: bool = False
    # review metadata and the other item kinds (appointments, contacts, ...)
    draft: bool = False  # never sent: mfUnsent, no PR_CLIENT_SUBMIT_TIME
    read: bool = True
    created_at: _dt.datetime | None = None  # default: received_at
    modified_at: _dt.datetime | None = None  # default: received_at
    sensitivity: int = 0
    categories: list[str] = field(default_factory=list)  # PS_PUBLIC_STRINGS "Keywords"
    sent_representing_name: str | None = None  # default: the sender
    sent_representing_email: str | None = None
    #: named properties: pstfast.pst.props.NAMED_PROPERTIES key -> value (datetimes for
    #: PT_SYSTIME, lists for multi-valued types), ids from the file's name-to-id map
    named: dict[str, object] = field(default_factory=dict)
    extra: dict[int, object] = field(default_factory=dict)  # further properties (full tags)


@dataclass
class _Folder:
    nid: int
    name: str
    parent: int
    container_class: str | None
    children: list[int] = field(default_factory=list)
    rows: list[tuple[int, dict[int, object]]] = field(default_factory=list)


def _unread(folder: _Folder) -> int:
    """How many of *folder*'s messages lack mfRead (PidTagContentUnreadCount)."""
    unread = 0
    for _, row in folder.rows:
        flags = row.get(T.MESSAGE_FLAGS)
        unread += not (isinstance(flags, int) and flags & 0x01)
    return unread


def _entry_id(store_uid: bytes, nid: int) -> bytes:
    return b"\0\0\0\0" + store_uid + struct.pack("<I", nid)


class _MessageIds:
    """Message node indexes, in one of two orders.

    ``arrival`` (Outlook's): one counter, so the messages of all folders interleave in node
    id order as they were added. ``by_folder``: a block of indexes per folder, the blocks in
    the reverse order of libpff's walk of the folder tree (depth first, children by node id).
    Why the second exists: libpff builds its item tree in node id order and finds each
    node's parent by that walk from the root, so a message costs a visit of every message
    already placed in the folders walked before its own: interleaved, that is quadratic
    (~20 s for libpff to open 50,000 messages); by folder, every walk passes folders only
    (0.2 s). libpst (readpst) builds its tree the same way. Readers otherwise do not care:
    node ids are opaque, and a folder's contents table keeps the order its messages were
    added in.
    """

    FIRST, END = 0x10001, 1 << 27  # a NID's index has 27 bits

    def __init__(self, folders: dict[int, _Folder], by_folder: bool) -> None:
        self._folders = folders
        self._by_folder = by_folder
        self._next: dict[int, int] = {}  # folder -> next index of its block
        self._end: dict[int, int] = {}  # folder -> end of its block
        self._spill = -1  # the last block: for folders made after the first message, full blocks, arrival order

    def _plan(self) -> None:
        walk: list[int] = []
        stack = [NID_ROOT_FOLDER] if self._by_folder else []
        while stack:
            nid = stack.pop()
            walk.append(nid)
            stack.extend(sorted(self._folders[nid].children, reverse=True))
        size = (self.END - self.FIRST) // (len(walk) + 1)
        for block, nid in enumerate(reversed(walk)):
            self._next[nid] = self.FIRST + block * size
            self._end[nid] = self._next[nid] + size
        self._spill = self.FIRST + len(walk) * size

    def next(self, folder: int) -> int:
        """The next free message index for a message (or an embedded one) filed in *folder*."""
        if self._spill < 0:
            self._plan()
        index, end = self._next.get(folder, 0), self._end.get(folder, 0)
        if index < end:
            self._next[folder] = index + 1
            return index
        if self._spill >= self.END:
            raise ValueError(f"no message node ids left (at most {self.END - self.FIRST:,} messages)")
        self._spill += 1
        return self._spill - 1


class PstWriter:
    """Writes a PST (or OST) file, Unicode or ANSI; see the module docstring. *ids_by_folder*: message node ids
    in a block per folder instead of in arrival order (see :class:`_MessageIds`)."""

    def __init__(self, path: str | os.PathLike[str], *, display_name: str = "Personal Folders", seed: int = 0,
                 ids_by_folder: bool = False, ansi_codepage: int | None = None,
                 declare_codepage: bool = True, layout: str = "unicode", client: str = "pst") -> None:
        self.path = os.fspath(path)
        # *layout*: the file format (pstfast.pst.write.ndb.LAYOUTS): "unicode" (wVer 23), "ansi"
        # (wVer 14, Outlook 97-2002: every string PT_STRING8, cp1252 unless *ansi_codepage*),
        # "unicode4k" (wVer 36, Outlook 2013 OSTs: 4 KiB pages, zlib-compressed blocks);
        # *client*: "pst" (client signature SM) or "ost" (SO, an offline store)
        if layout == "ansi" and not ansi_codepage:
            ansi_codepage = 1252
        # ANSI strings (PT_STRING8) in that Windows code page, as Outlook 97-2002 wrote them;
        # the store and folders then say nothing of the code page, as theirs did not, and
        # messages declare it (PR_MESSAGE_CODEPAGE, PR_INTERNET_CPID) only if *declare_codepage*
        self._ansi = codecs.lookup(f"cp{ansi_codepage}").name if ansi_codepage else None
        self._codepage = ansi_codepage if ansi_codepage else 65001
        self._declare_codepage = declare_codepage
        self._ndb = ndb_writer(path, unique=seed, layout=layout, client=client)
        self._row_index_size = 4 if self._ndb.layout.wide else 2  # dwRowIndex: 2 bytes in ANSI files
        self._hid_block_shift = 19 if self._ndb.layout.wver == 36 else 16  # wVer 36 HIDs: 14-bit indexes
        self._display_name = display_name
        self._store_uid = hashlib.sha256(f"pstfast-store-{seed}".encode()).digest()[:16]
        self._folders: dict[int, _Folder] = {}
        self._folder_index = itertools.count(0x401)
        self._message_ids = _MessageIds(self._folders, ids_by_folder)
        self._closed = False
        #: named-property ids, allocated as messages use them; PidLidReminderDelta first (an
        #: Outlook map always names it, and readers require a non-empty map)
        self.names = NameMapBuilder()
        self.names.id(PSETID_COMMON, 0x8501)
        self.message_count = 0
        self.root = NID_ROOT_FOLDER
        self._folders[NID_ROOT_FOLDER] = _Folder(NID_ROOT_FOLDER, "", NID_ROOT_FOLDER, None)
        self.ipm_subtree = self.add_folder(NID_ROOT_FOLDER, "Top of Personal Folders")
        self.deleted_items = self.add_folder(self.ipm_subtree, "Deleted Items")

    # --- public -----------------------------------------------------------------------

    def add_folder(self, parent: int, name: str, *, container_class: str | None = "IPF.Note") -> int:
        """Create a folder under *parent*; return its node id."""
        if parent not in self._folders:
            raise ValueError(f"no folder 0x{parent:x}")
        nid = make_nid(NID_TYPE_NORMAL_FOLDER, next(self._folder_index))
        self._folders[nid] = _Folder(nid, name, parent, container_class)
        if parent != nid:
            self._folders[parent].children.append(nid)
        return nid

    def add_message(self, folder: int, message: Message) -> int:
        """Write *message* into *folder*; return its node id."""
        target = self._folders.get(folder)
        if target is None:
            raise ValueError(f"no folder 0x{folder:x}")
        nid = make_nid(NID_TYPE_NORMAL_MESSAGE, self._message_ids.next(folder))
        bid_data, bid_sub, props = self._message(nid, message, folder)
        self._ndb.add_node(nid, bid_data, bid_sub, folder)
        target.rows.append((nid, {tag: props.get(tag) for tag in CONTENTS_COLUMNS[2:]}))
        self.message_count += 1
        return nid

    def close(self) -> int:
        """Write folders, store and indexes; return the file size."""
        if self._closed:
            return os.path.getsize(self.path)
        self._closed = True
        for folder in self._folders.values():
            self._write_folder(folder)
        self._write_store()
        return self._ndb.finish()

    def abort(self) -> None:
        """Stop without finishing (the file is left incomplete)."""
        self._closed = True
        self._ndb.abort()

    def __enter__(self) -> PstWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    @property
    def bytes_written(self) -> int:
        return self._ndb.bytes_written

    # --- nodes ------------------------------------------------------------------------

    def _build_tc(self, columns: Sequence[int], rows: Sequence[tuple[int, dict[int, object]]],
                  next_nid: SubnodeIds) -> Built:
        """A table context in this file's strings and layout."""
        return build_tc(columns, rows, next_nid, ansi=self._ansi, block_size=self._ndb.layout.max_block,
                        row_index_size=self._row_index_size, hid_block_shift=self._hid_block_shift)

    def _build_pc(self, props: Iterable[tuple[int, object]], next_nid: SubnodeIds, *, ansi: bool = True) -> Built:
        """A property context in this file's strings (ANSI ones unless *ansi* is False) and layout."""
        return build_pc(props, next_nid, ansi=self._ansi if ansi else None, hid_block_shift=self._hid_block_shift)

    def _write_built(self, built: Built) -> tuple[int, int]:
        """Write a heap and its value subnodes; return (bidData, bidSub)."""
        bid_data = self._ndb.write_blocks(built.blocks)
        entries = []
        for nid, value in built.subnodes:
            bid = self._ndb.write_blocks(value) if isinstance(value, list) else self._ndb.write_data(value)
            entries.append((nid, bid, 0))
        return bid_data, self._ndb.write_subnodes(entries)

    def _message(self, nid: int, msg: Message, folder: int) -> tuple[int, int, dict[int, object]]:
        """Write a message (filed in *folder*) and its subnodes; return (bidData, bidSub, props)."""
        ltp_ids = (make_nid(NID_TYPE_LTP, i) for i in itertools.count(0x400))
        next_ltp = ltp_ids.__next__
        subnodes: list[tuple[int, int, int]] = []

        rows = []
        meeting = any(r.flags is not None or r.track_status is not None for r in msg.recipients)
        for index, r in enumerate(msg.recipients):
            row: dict[int, object] = {
                T.RECIPIENT_TYPE: r.kind, T.DISPLAY_NAME: r.name, T.ADDRTYPE: "EX" if r.x500 else "SMTP",
                T.EMAIL_ADDRESS: r.x500 or r.email,
                T.SMTP_ADDRESS: r.email if r.x500 is None or r.smtp_known else None, T.RESPONSIBILITY: False,
                T.SEND_RICH_INFO: False, T.DISPLAY_TYPE: 0, T.OBJECT_TYPE: 6, T.ROWID: index,
            }
            if meeting:
                row[_RECIPIENT_FLAGS] = r.flags if r.flags is not None else 1  # recipSendable
                row[_RECIPIENT_TRACK_STATUS] = r.track_status or 0
            rows.append((index, row))
        columns = RECIPIENT_COLUMNS + ((_RECIPIENT_FLAGS, _RECIPIENT_TRACK_STATUS) if meeting else ())
        subnodes.append((NID_RECIPIENT_TABLE, *self._write_built(self._build_tc(columns, rows, next_ltp))))

        attach_rows = []
        attach_size_total = 0
        for ordinal, att in enumerate(msg.attachments):
            anid = make_nid(NID_TYPE_ATTACHMENT, 0x400 + ordinal)
            bid_data, bid_sub, size = self._attachment(anid, ordinal, att, folder)
            subnodes.append((anid, bid_data, bid_sub))
            attach_size_total += size
            method = ATTACH_EMBEDDED_MSG if att.message is not None else _METHODS[att.method]
            attach_rows.append(
                (anid, {T.ATTACH_SIZE: size, T.ATTACH_FILENAME: att.filename, T.ATTACH_METHOD: method,
                        T.RENDERING_POSITION: 0xFFFFFFFF})
            )
        if attach_rows:
            subnodes.append(
                (NID_ATTACHMENT_TABLE, *self._write_built(self._build_tc(ATTACHMENT_COLUMNS, attach_rows, next_ltp)))
            )

        props = self._message_props(nid, msg, attach_size_total)
        pc = self._build_pc(props.items(), next_ltp)
        bid_data = self._ndb.write_blocks(pc.blocks)
        for sub_nid, value in pc.subnodes:
            subnodes.append((sub_nid, self._ndb.write_data(value), 0))  # type: ignore[arg-type]
        return bid_data, self._ndb.write_subnodes(subnodes), props

    def _message_props(self, nid: int, msg: Message, attach_size: int) -> dict[int, object]:
        to = [r.name for r in msg.recipients if r.kind == MAPI_TO]
        cc = [r.name for r in msg.recipients if r.kind == MAPI_CC]
        bcc = [r.name for r in msg.recipients if r.kind == MAPI_BCC]
        # PR_HTML in the code page the message declares (characters it lacks as character references)
        html = msg.body_html.encode(self._ansi or "utf-8", "xmlcharrefreplace") if msg.body_html is not None else None
        smtp = msg.sender_email if msg.sender_x500 is None or msg.sender_smtp_known else None
        props: dict[int, object] = {
            T.MESSAGE_CLASS: msg.message_class,
            T.SUBJECT: msg.subject,
            T.IMPORTANCE: msg.importance,
            T.PRIORITY: 0,
            T.SENSITIVITY: msg.sensitivity,
            T.MESSAGE_DELIVERY_TIME: filetime(msg.received_at),
            T.CREATION_TIME: filetime(msg.created_at or msg.received_at),
            T.LAST_MODIFICATION_TIME: filetime(msg.modified_at or msg.received_at),
            T.SENDER_NAME: msg.sender_name,
            T.SENDER_EMAIL: msg.sender_x500 or msg.sender_email,
            T.SENDER_ADDRTYPE: "EX" if msg.sender_x500 else "SMTP",
            T.SENDER_SMTP_ADDRESS: smtp,
            T.SENT_REPRESENTING_NAME: msg.sent_representing_name or msg.sender_name,
            T.SENT_REPRESENTING_EMAIL: msg.sent_representing_email or msg.sender_x500 or msg.sender_email,
            T.SENT_REPRESENTING_ADDRTYPE: "EX" if msg.sender_x500 and not msg.sent_representing_email else "SMTP",
            T.SENT_REPRESENTING_SMTP_ADDRESS: msg.sent_representing_email or smtp,
            T.DISPLAY_TO: "; ".join(to),
            T.DISPLAY_CC: "; ".join(cc),
            T.DISPLAY_BCC: "; ".join(bcc),
            # read, unsent (a draft), has attachments
            T.MESSAGE_FLAGS: (0x01 if msg.read else 0) | (0x08 if msg.draft else 0) | (0x10 if msg.attachments else 0),
            T.HAS_ATTACHMENTS: bool(msg.attachments),
            T.RTF_IN_SYNC: msg.body_rtf_compressed is not None,
            **({T.INTERNET_CODEPAGE: self._codepage, T.MESSAGE_CODEPAGE: self._codepage}
               if self._declare_codepage else {}),
            T.SEARCH_KEY: hashlib.md5(struct.pack("<QQ", nid, len(msg.subject))).digest(),  # noqa: S324
        }
        optional = {
            T.BODY: msg.body_text,
            T.HTML: html,
            T.RTF_COMPRESSED: msg.body_rtf_compressed,
            T.TRANSPORT_HEADERS: msg.transport_headers,
            T.INTERNET_MESSAGE_ID: msg.internet_message_id,
            T.IN_REPLY_TO_ID: msg.in_reply_to,
            T.INTERNET_REFERENCES: msg.references,
            T.CONVERSATION_INDEX: msg.conversation_index,
            T.CONVERSATION_TOPIC: msg.conversation_topic,
        }
        for tag in (T.SENDER_SMTP_ADDRESS, T.SENT_REPRESENTING_SMTP_ADDRESS):
            if props[tag] is None:  # an Exchange sender stored without its SMTP address
                del props[tag]
        props.update({tag: value for tag, value in optional.items() if value})
        if msg.sent_at is not None and not msg.draft:  # a draft, or a message only its headers date, has none
            props[T.CLIENT_SUBMIT_TIME] = filetime(msg.sent_at)
        named = dict(msg.named)
        if msg.categories:
            named["keywords"] = msg.categories
        for key, value in named.items():
            if value is not None:
                props[self.names.tag(key)] = filetime(value) if isinstance(value, _dt.datetime) else value
        props.update(msg.extra)
        size = sum(len(str(v)) * 2 if isinstance(v, str) else len(v) if isinstance(v, bytes) else 8 for v in props.values())
        props[T.MESSAGE_SIZE] = size + attach_size
        return props

    def _attachment(self, nid: int, ordinal: int, att: Attachment, folder: int) -> tuple[int, int, int]:
        """Write an attachment object (of a message in *folder*); return (bidData, bidSub, size)."""
        ltp_ids = (make_nid(NID_TYPE_LTP, i) for i in itertools.count(0x400))
        next_ltp = ltp_ids.__next__
        dot = att.filename.rfind(".")
        props: dict[int, object] = {
            T.ATTACH_FILENAME: att.filename,
            T.ATTACH_LONG_FILENAME: att.filename,
            T.DISPLAY_NAME: att.filename,
            T.ATTACH_NUMBER: ordinal,
            T.RENDERING_POSITION: 0xFFFFFFFF,
            T.OBJECT_TYPE: 7,  # MAPI_ATTACH
            T.ATTACH_FLAGS: 4 if att.inline else 0,  # attRenderedInBody
        }
        if dot > 0:
            props[T.ATTACH_EXTENSION] = att.filename[dot:]
        if att.mime_type:
            props[T.ATTACH_MIME_TAG] = att.mime_type
        if att.content_id:
            props[T.ATTACH_CONTENT_ID] = att.content_id
        if att.inline:
            props[T.ATTACHMENT_HIDDEN] = True
        props.update(att.extra)
        extra: list[tuple[int, int, int]] = []
        if att.message is not None:
            embedded_nid = make_nid(NID_TYPE_NORMAL_MESSAGE, self._message_ids.next(folder))
            bid_data, bid_sub, emb_props = self._message(embedded_nid, att.message, folder)
            size = int(emb_props[T.MESSAGE_SIZE])  # type: ignore[call-overload]
            extra.append((embedded_nid, bid_data, bid_sub))
            props[T.ATTACH_METHOD] = ATTACH_EMBEDDED_MSG
            props[T.ATTACH_DATA_OBJECT] = struct.pack("<II", embedded_nid, size)
        elif att.method == "ole":
            # Outlook keeps an OLE object's storage in a subnode of the attachment
            ole_nid = make_nid(NID_TYPE_LTP, 0x3FF)  # below the heap's value subnodes (0x400 on)
            extra.append((ole_nid, self._ndb.write_data(att.data), 0))
            size = len(att.data)
            props[T.ATTACH_METHOD] = ATTACH_OLE
            props[T.ATTACH_DATA_OBJECT] = struct.pack("<II", ole_nid, size)
        elif att.method == "reference":
            size = 0
            props[T.ATTACH_METHOD] = ATTACH_BY_REFERENCE
            if att.reference:
                props[T.ATTACH_LONG_PATHNAME] = att.reference
                props[T.ATTACH_PATHNAME] = att.reference
        else:
            size = len(att.data)
            props[T.ATTACH_METHOD] = ATTACH_BY_VALUE
            props[T.ATTACH_DATA_BINARY] = att.data
        props[T.ATTACH_SIZE] = size
        pc = self._build_pc(props.items(), next_ltp)
        bid_data = self._ndb.write_blocks(pc.blocks)
        for sub_nid, value in pc.subnodes:
            extra.append((sub_nid, self._ndb.write_data(value), 0))  # type: ignore[arg-type]
        return bid_data, self._ndb.write_subnodes(extra), size

    # --- folders and store ------------------------------------------------------------

    def _write_folder(self, folder: _Folder) -> None:
        index = folder.nid >> 5
        no_subnodes = self._no_subnodes
        props: dict[int, object] = {
            T.DISPLAY_NAME: folder.name,
            T.CONTENT_COUNT: len(folder.rows),
            T.CONTENT_UNREAD_COUNT: _unread(folder),
            T.SUBFOLDERS: bool(folder.children),
        }
        if folder.container_class:
            props[T.CONTAINER_CLASS] = folder.container_class
        bid_data, bid_sub = self._write_built(self._build_pc(props.items(), no_subnodes))
        self._ndb.add_node(folder.nid, bid_data, bid_sub, folder.parent)

        children = []
        for child_nid in folder.children:
            child = self._folders[child_nid]
            children.append(
                (child_nid, {T.DISPLAY_NAME: child.name, T.CONTENT_COUNT: len(child.rows),
                             T.CONTENT_UNREAD_COUNT: _unread(child),
                             T.SUBFOLDERS: bool(child.children), T.CONTAINER_CLASS: child.container_class})
            )
        tables: tuple[tuple[int, Sequence[int], list[Any]], ...] = (
            (NID_TYPE_HIERARCHY_TABLE, HIERARCHY_COLUMNS, children),
            (NID_TYPE_CONTENTS_TABLE, CONTENTS_COLUMNS, folder.rows),
            (NID_TYPE_ASSOC_CONTENTS_TABLE, CONTENTS_COLUMNS[:3], []),
        )
        for nid_type, columns, rows in tables:
            ltp_ids = (make_nid(NID_TYPE_LTP, i) for i in itertools.count(0x400))
            bid_data, bid_sub = self._write_built(self._build_tc(columns, rows, ltp_ids.__next__))
            self._ndb.add_node(make_nid(nid_type, index), bid_data, bid_sub, 0)
        folder.rows = []  # written: free the memory

    @staticmethod
    def _no_subnodes() -> int:
        raise ValueError("folder properties never need subnodes")

    def _write_store(self) -> None:
        uid = self._store_uid
        store = {
            T.RECORD_KEY: uid,
            T.DISPLAY_NAME: self._display_name,
            T.IPM_SUBTREE_ENTRYID: _entry_id(uid, self.ipm_subtree),
            T.IPM_WASTEBASKET_ENTRYID: _entry_id(uid, self.deleted_items),
            T.VALID_FOLDER_MASK: 0x09,  # IPM subtree and wastebasket entry ids are valid
            T.PST_PASSWORD: 0,
        }
        self._add(NID_MESSAGE_STORE, self._build_pc(store.items(), self._no_subnodes))
        # the name-to-id map (MS-PST 2.4.7): every named property the messages used
        self._add(NID_NAME_TO_ID_MAP, self._build_pc(self.names.properties().items(), self._no_subnodes, ansi=False))
        for nid in _EMPTY_SEARCH_NODES:
            self._ndb.add_node(nid, 0, 0, 0)
        columns = {
            "hierarchy": HIERARCHY_COLUMNS,
            "contents": CONTENTS_COLUMNS,
            "assoc": CONTENTS_COLUMNS[:3],
            "attachments": ATTACHMENT_COLUMNS,
            "recipients": RECIPIENT_COLUMNS,
        }
        for nid, kind in _TEMPLATES.items():
            self._add(nid, self._build_tc(columns[kind], [], self._no_subnodes))

    def _add(self, nid: int, built: Built) -> None:
        bid_data, bid_sub = self._write_built(built)
        self._ndb.add_node(nid, bid_data, bid_sub, 0)

