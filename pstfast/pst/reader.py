"""pstfast's read-only PST reader (MS-PST NDB and LTP layers): what the extract stage reads with.

It handles Unicode (wVer 23), ANSI (wVer 14/15) and Outlook 2013's 4 KiB-page (wVer 36,
zlib-compressed blocks) files, PSTs and OSTs alike, the three block encodings (none,
permute, cyclic), multi-level B-trees, data trees (XBLOCK and XXBLOCK), nested subnode
trees, multi-block heaps, multi-level BTHs, property contexts and table contexts, and
checks the CRC of the header, of every B-tree page and of every block it reads. Everything
is parsed lazily from a read-only memory map: opening costs a millisecond whatever the
file's size (libpff first builds an item tree of the whole file, quadratic in the number
of items), and a worker's memory stays flat (:meth:`PstReader.release_pages`).

Two views: the raw one the extract stage uses (:meth:`PstReader.raw_properties`,
:meth:`~PstReader.raw_rows`: values as stored, only the properties asked for, decoded by
``pstfast.extraction.items``), and a decoded one (:meth:`~PstReader.properties`,
:meth:`~PstReader.table_rows`, :meth:`~PstReader.embedded_messages`) that the tests check
against libpff, readpst and the writer's ground truth.

Attachment order: rows of the attachment table (nid 0x671) in the order of its row index
(the BTH keyed by row id, as stored), which is the order libpff's
``message.get_attachment(i)`` uses; folders' messages likewise follow their contents
table. ``tests/test_pst_reader.py`` and ``tests/test_reader_crosscheck.py`` check both.
"""

from __future__ import annotations

import datetime as _dt
import mmap
import os
import struct
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import CorruptPstError, ItemBudgetExceeded, NotAPstError
from .crc import crc32
from .props import (
    ATTACH_EMBEDDED_MSG,
    MV_FLAG,
    NID_ATTACHMENT_TABLE,
    NID_RECIPIENT_TABLE,
    PR_ATTACH_DATA,
    PR_ATTACH_METHOD,
    PT_APPTIME,
    PT_BINARY,
    PT_BOOLEAN,
    PT_CLSID,
    PT_CURRENCY,
    PT_DOUBLE,
    PT_ERROR,
    PT_FLOAT,
    PT_LONG,
    PT_LONGLONG,
    PT_OBJECT,
    PT_SHORT,
    PT_STRING8,
    PT_SYSTIME,
    PT_UNICODE,
)
from .props import tag as prop_tag

__all__ = ["EmbeddedAttachment", "EmbeddedMessage", "PstReader", "clean_subject"]

# MS-PST 5.1 mpbbCrypt: R (encode), S (cyclic middle rotor), I (the inverse of R).
_MPBB_R = bytes.fromhex(
    "41361362a8216ebbf416cc047f64e85d1ef2cb2a74c55e35d295479e962d9a884c7d843fdbac31b6485ff6c4d8398be7"
    "233b388ec8c1df25b120a546604e9cfbaad35651457c550007c92b9d859b09a08fadb30f63ab894bd7a7155a716642bf"
    "264a6b98faea7753b270052cfd593a867ece06eb827857c78d43afb41cd45bcde2e9274fc3087280cfb0eff5286dbe30"
    "4d3492d50e3c2232e5e4f99fc2d10a8112e1ee918376e397e6618a1779a4b7dc907a5c8c02a6ca69de501a1193b95287"
    "58fced1d37491b6ae0293399bd6cd994f340546ff0c673b8d63e6518441fdd6710f10c19ecae03a1147ba90bfff8a3c0"
    "a201f72ebc2468750dfeba2fb5d0da3d"
)
_MPBB_S = bytes.fromhex(
    "14530f56b3c87a9ceb65481716159f02cc547c83000d0c0ba262a876dbd9edc7c5a4dcac8574d6d0a79bae9a967166c3"
    "6399b8dd73928e847da55ed15d93b1575150808952944f4e0a6bbc8d7f6e47464140440111cb033ff7f4e1a98f3c3af9"
    "fbf0193082092ec99da08649ee6f4d6dc42d813425871b88aafc06a11238fd4c4272641337246a757743ffe6b44b365c"
    "e4d8353d45b92cecb7312b290768a30e697b189e2139be281a5b78f523ca2ab0af3efe048ce7e5983295d3f64ae8a6ea"
    "e9f3d52f7020f21f0567ad5510cecde3273bdabad7c226d4911dd21c2233f8faf15aefcf90b68bb5bdc0bf08971e6ce2"
    "61e0c6c159abbb58de5fdf60797eb28a"
)
_MPBB_I = bytes(_MPBB_R.index(i) for i in range(256))

CRYPT_NONE, CRYPT_PERMUTE, CRYPT_CYCLIC = 0, 1, 2


TAG_ATTACH_DATA_BINARY = prop_tag(PR_ATTACH_DATA, PT_BINARY)
TAG_ATTACH_DATA_OBJECT = prop_tag(PR_ATTACH_DATA, PT_OBJECT)
TAG_ATTACH_METHOD = prop_tag(PR_ATTACH_METHOD, PT_LONG)

_MAX_DEPTH = 16  # nesting of embedded messages; deeper means a cycle in a damaged file

# property types (MS-OXCDATA 2.11.1)

# fixed-size types and their sizes; everything else is variable-size (stored behind an HNID)
_FIXED = {
    PT_SHORT: 2, PT_LONG: 4, PT_FLOAT: 4, PT_ERROR: 4, PT_BOOLEAN: 1,
    PT_DOUBLE: 8, PT_CURRENCY: 8, PT_APPTIME: 8, PT_LONGLONG: 8, PT_SYSTIME: 8,
}
_MV_FIXED = {**{t: s for t, s in _FIXED.items() if t != PT_BOOLEAN}, PT_CLSID: 16}
_FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


@dataclass
class EmbeddedAttachment:
    """An attachment of an embedded message."""

    index: int  # position among the parent's attachments (attachment-table row order)
    props: dict[int, object]  # the attachment's properties, without PidTagAttachDataBinary
    data: bytes | None  # PidTagAttachDataBinary (attached by value), else None
    message: EmbeddedMessage | None = None  # a nested embedded message (method 5), else None


@dataclass
class EmbeddedMessage:
    """A message stored inside an attachment (PidTagAttachMethod 5)."""

    attachment_index: int  # index among ALL attachments of the parent (pypff's get_attachment(i))
    nid: int  # the embedded message's subnode id (in the attachment's subnode tree)
    props: dict[int, object]  # full tag (id << 16 | type) -> decoded value
    recipients: list[dict[int, object]] = field(default_factory=list)  # recipient table rows
    attachments: list[EmbeddedAttachment] = field(default_factory=list)


def clean_subject(value: str) -> str:
    """PidTagSubject without its stored prefix marker ("\\x01" + prefix length), as libpff returns it."""
    return value[2:] if len(value) >= 2 and value[0] == "\x01" else value


def _filetime(value: int) -> _dt.datetime | None:
    try:
        return _FILETIME_EPOCH + _dt.timedelta(microseconds=value // 10)
    except OverflowError:  # e.g. 0x7FFF... ("never"): not representable as a datetime
        return None


def _decode_fixed(ptype: int, raw: bytes) -> Any:
    if ptype == PT_LONG:
        return struct.unpack_from("<i", raw)[0]
    if ptype == PT_BOOLEAN:
        return raw[0] != 0
    if ptype == PT_SHORT:
        return struct.unpack_from("<h", raw)[0]
    if ptype == PT_SYSTIME:
        return _filetime(struct.unpack_from("<Q", raw)[0])
    if ptype in (PT_LONGLONG, PT_CURRENCY):
        return struct.unpack_from("<q", raw)[0]
    if ptype == PT_ERROR:
        return struct.unpack_from("<I", raw)[0]
    if ptype == PT_FLOAT:
        return struct.unpack_from("<f", raw)[0]
    if ptype in (PT_DOUBLE, PT_APPTIME):
        return struct.unpack_from("<d", raw)[0]
    return bytes(raw)


def _decode_variable(ptype: int, raw: bytes) -> Any:
    """Decode a variable-size value (or a fixed one that was stored behind an HNID)."""
    if ptype == PT_UNICODE:
        # lone surrogates occur in real files; "replace" keeps the text encodable downstream
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    if ptype == PT_STRING8:
        return bytes(raw).rstrip(b"\x00")
    if ptype in _FIXED:
        if len(raw) < _FIXED[ptype]:
            raise ValueError(f"{len(raw)} bytes for property type 0x{ptype:04X}")
        return _decode_fixed(ptype, raw)
    if ptype & MV_FLAG:
        return _decode_multi(ptype & ~MV_FLAG, raw)
    return bytes(raw)


def _decode_multi(base: int, raw: bytes) -> list[Any]:
    if base in _MV_FIXED:
        size = _MV_FIXED[base]
        return [_decode_fixed(base, raw[i:i + size]) if base != PT_CLSID else bytes(raw[i:i + size])
                for i in range(0, len(raw) - size + 1, size)]
    if not raw:
        return []
    count = struct.unpack_from("<I", raw)[0]
    if 4 + 4 * count > len(raw):
        raise ValueError(f"multi-valued property claims {count} values in {len(raw)} bytes")
    offsets = list(struct.unpack_from(f"<{count}I", raw, 4)) + [len(raw)]
    return [_decode_variable(base, raw[offsets[i]:offsets[i + 1]]) for i in range(count)]


@lru_cache(maxsize=1)
def _cyclic_tables() -> tuple[Any, Any, Any]:
    import numpy as np  # only cyclic-encoded files need it

    r, s, inv = (np.frombuffer(t, dtype=np.uint8).astype(np.int32) for t in (_MPBB_R, _MPBB_S, _MPBB_I))
    return r, s, inv


def _decrypt_cyclic(data: bytes, key: int) -> bytes:
    """MS-PST 5.2 cyclic ("high") encoding, keyed by the block id; the transform is its own inverse."""
    import numpy as np

    r, s, inv = _cyclic_tables()
    b = np.frombuffer(data, dtype=np.uint8).astype(np.int32)
    w = (((key ^ (key >> 16)) & 0xFFFF) + np.arange(len(b), dtype=np.int32)) & 0xFFFF
    lo, hi = w & 0xFF, w >> 8
    b = inv[(s[(r[(b + lo) & 0xFF] + hi) & 0xFF] - hi) & 0xFF]
    return bytes(((b - lo) & 0xFF).astype(np.uint8).tobytes())


_PERMUTE_TABLE = bytes.maketrans(bytes(range(256)), _MPBB_I)


class _Node:
    """A node (top-level or subnode): its data blocks, heap, and subnode map, read lazily."""

    __slots__ = ("reader", "nid", "bid_data", "bid_sub", "_blocks", "_subnodes", "_maps")

    def __init__(self, reader: PstReader, nid: int, bid_data: int, bid_sub: int) -> None:
        self.reader = reader
        self.nid = nid
        self.bid_data = bid_data
        self.bid_sub = bid_sub
        self._blocks: list[bytes] | None = None
        self._subnodes: dict[int, tuple[int, int]] | None = None
        self._maps: dict[int, tuple[int, ...]] = {}

    def where(self) -> str:
        return f"node 0x{self.nid:X}"

    @property
    def blocks(self) -> list[bytes]:
        if self._blocks is None:
            self._blocks = self.reader._data_blocks(self.bid_data, self.where())
        return self._blocks

    def subnode(self, nid: int) -> _Node | None:
        if self._subnodes is None:
            self._subnodes = self.reader._subnode_map(self.bid_sub, self.where())
        entry = self._subnodes.get(nid)
        if entry is None:
            return None
        return _Node(self.reader, nid, entry[0], entry[1])

    def data(self) -> bytes:
        blocks = self.blocks
        return blocks[0] if len(blocks) == 1 else b"".join(blocks)

    # --- heap-on-node (MS-PST 2.3.1) ------------------------------------------------------

    def heap_header(self, client_sig: int) -> int:
        """Check the HNHDR; return hidUserRoot."""
        blocks = self.blocks
        if not blocks or len(blocks[0]) < 12:
            raise CorruptPstError(f"{self.where()}: heap is empty")
        sig, client = blocks[0][2], blocks[0][3]
        if sig != 0xEC:
            raise CorruptPstError(f"{self.where()}: heap signature 0x{sig:02X}, expected 0xEC")
        if client != client_sig:
            raise CorruptPstError(f"{self.where()}: heap client signature 0x{client:02X}, expected 0x{client_sig:02X}")
        root: int = struct.unpack_from("<I", blocks[0], 4)[0]
        return root

    def page_map(self, block: int) -> tuple[int, ...]:
        """The allocation offsets of heap block *block* (its HNPAGEMAP)."""
        offsets = self._maps.get(block)
        if offsets is not None:
            return offsets
        blocks = self.blocks
        if block >= len(blocks):
            raise CorruptPstError(f"{self.where()}: heap block {block} of {len(blocks)} does not exist")
        data = blocks[block]
        ib = struct.unpack_from("<H", data, 0)[0]
        if ib + 4 > len(data):
            raise CorruptPstError(f"{self.where()}: heap page map of block {block} lies outside the block")
        count = struct.unpack_from("<H", data, ib)[0]
        if ib + 4 + 2 * (count + 1) > len(data):
            raise CorruptPstError(f"{self.where()}: heap page map of block {block} is truncated")
        offsets = struct.unpack_from(f"<{count + 1}H", data, ib + 4)
        self._maps[block] = offsets
        return offsets

    def heap(self, hid: int) -> bytes:
        """The heap allocation *hid* (empty for hid 0)."""
        if hid == 0:
            return b""
        if hid & 0x1F:
            raise CorruptPstError(f"{self.where()}: 0x{hid:X} is not a heap id")
        index, block = (hid >> 5) & self.reader._hid_mask, hid >> self.reader._hid_shift
        offsets = self._maps.get(block) or self.page_map(block)
        if not 1 <= index < len(offsets):
            raise CorruptPstError(f"{self.where()}: heap id 0x{hid:X}: no allocation {index} in block {block}")
        start, end = offsets[index - 1], offsets[index]
        data = self.blocks[block]
        if not start <= end <= len(data):
            raise CorruptPstError(f"{self.where()}: heap id 0x{hid:X} has bad bounds {start}..{end}")
        return data[start:end]

    def hnid(self, hnid: int) -> bytes:
        """A value behind an HNID: a heap allocation or a whole subnode (at most the reader's
        ``max_value`` bytes: a larger one raises ItemBudgetExceeded before it is read)."""
        if hnid & 0x1F == 0:
            return self.heap(hnid)
        sub = self.subnode(hnid)
        if sub is None:
            raise CorruptPstError(f"{self.where()}: value subnode 0x{hnid:X} is missing")
        reader = self.reader
        if reader.max_value is not None and sub.bid_data & 2:  # a data tree: its declared size first
            size = reader._data_size(sub.bid_data, sub.where())
            if size > reader.max_value:
                raise ItemBudgetExceeded(f"a value of {size:,} bytes, over the {reader.max_value:,} allowed "
                                         "(PSTFAST_ITEM_MAX_MB)")
        return sub.data()

    # --- BTH (MS-PST 2.3.2) ---------------------------------------------------------------

    def bth_leaves(self, hid: int) -> tuple[int, int, list[bytes]]:
        """The leaf records of the BTH whose header is *hid*: (cbKey, cbEnt, [leaf bytes]), in key order."""
        head = self.heap(hid)
        if len(head) < 8 or head[0] != 0xB5:
            raise CorruptPstError(f"{self.where()}: BTH header 0x{hid:X} is not a BTH")
        key_size, ent_size, levels, root = head[1], head[2], head[3], struct.unpack_from("<I", head, 4)[0]
        if key_size not in (2, 4, 8, 16) or ent_size == 0:
            raise CorruptPstError(f"{self.where()}: BTH with key size {key_size}, entry size {ent_size}")
        if levels > 8:  # real BTHs have a few levels; more means damage (and a walk that never ends)
            raise CorruptPstError(f"{self.where()}: BTH claims {levels} index levels")
        out: list[bytes] = []
        if not root:
            return key_size, ent_size, out
        # level by level (the leaves come out in depth-first order): a node named twice in
        # one level is a loop in a damaged file, whose walk would otherwise never end
        level_hids = [root]
        step = key_size + 4
        for _ in range(levels):
            children: list[int] = []
            for index_hid in level_hids:
                data = self.heap(index_hid)
                children.extend(struct.unpack_from("<I", data, i + key_size)[0]
                                for i in range(0, len(data) - step + 1, step))
            if len(set(children)) != len(children):
                raise CorruptPstError(f"{self.where()}: BTH 0x{hid:X} names an index node twice (a loop)")
            level_hids = children
        for leaf in level_hids:
            data = self.heap(leaf)
            if len(data) % (key_size + ent_size):
                raise CorruptPstError(
                    f"{self.where()}: BTH leaf 0x{leaf:X} of {len(data)} bytes is not a whole number of records")
            out.append(data)
        return key_size, ent_size, out


class _Structure:
    """The context of :meth:`PstReader._structure` (a class: entered several times per item,
    a generator-based context manager costs four times as much)."""

    __slots__ = ("path", "nid")

    def __init__(self, path: str, nid: int) -> None:
        self.path, self.nid = path, nid

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, (struct.error, IndexError, ValueError)):
            raise CorruptPstError(f"{self.path}: node 0x{self.nid:X}: malformed structure: {exc}") from exc


class PstReader:
    """Read-only NDB/LTP access to a PST (Unicode wVer 23 and ANSI wVer 14/15), for embedded messages."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        #: the largest value (bytes) read into memory; None: no limit (see _Node.hnid)
        self.max_value: int | None = None
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < 564:
                raise NotAPstError(f"{self.path}: {size} bytes is too small for a PST")
            self._mm: mmap.mmap | None = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._read_header()
        except BaseException:
            self.close()
            raise
        self._size = size
        self._page = lru_cache(maxsize=4096)(self._page_uncached)
        self._subnode_map_cached = lru_cache(maxsize=1024)(self._subnode_map_uncached)
        self._last_leaf: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the memory map and the file."""
        mm = getattr(self, "_mm", None)
        if mm is not None:
            mm.close()
            self._mm = None
        self._file.close()

    def release_pages(self) -> None:
        """Drop the file pages this process has touched from its memory (they stay in the OS
        page cache): a worker's resident memory then stays flat however large the PST."""
        if self._mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._mm.madvise(mmap.MADV_DONTNEED)

    def __enter__(self) -> PstReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public -----------------------------------------------------------------------------

    def embedded_messages(self, message_nid: int) -> list[EmbeddedMessage]:
        """Every attachment of top-level message *message_nid* that is an embedded message (method 5)."""
        with self._structure(message_nid):
            bid_data, bid_sub = self._nbt_lookup(message_nid)
            node = _Node(self, message_nid, bid_data, bid_sub)
            out = []
            for index, att in enumerate(self._attachment_nodes(node)):
                props = self._pc_raw(att)
                method = props.get(TAG_ATTACH_METHOD)
                if method is not None and self._pc_value(att, TAG_ATTACH_METHOD, method) == ATTACH_EMBEDDED_MSG:
                    out.append(self._embedded(att, props, index, 1))
            return out

    def attachment_nids(self, message_nid: int) -> list[int]:
        """Subnode ids of every attachment of *message_nid*, in pypff's ``get_attachment(i)`` order."""
        with self._structure(message_nid):
            bid_data, bid_sub = self._nbt_lookup(message_nid)
            return [att.nid for att in self._attachment_nodes(_Node(self, message_nid, bid_data, bid_sub))]

    def properties(self, nid: int) -> dict[int, object]:
        """The decoded property context of node *nid* of the node B-tree (a folder, a message...)."""
        with self._structure(nid):
            bid_data, bid_sub = self._nbt_lookup(nid)
            return self._pc(_Node(self, nid, bid_data, bid_sub))

    def table_rows(self, nid: int) -> list[tuple[int, dict[int, object]]]:
        """(row id, row) of the table context in NBT node *nid* (e.g. a folder's contents table)."""
        with self._structure(nid):
            bid_data, bid_sub = self._nbt_lookup(nid)
            return self._tc(_Node(self, nid, bid_data, bid_sub))

    # --- raw access for the extract stage: values stay as stored, decoded by the caller ---------

    def node(self, nid: int) -> _Node:
        """Node *nid* of the node B-tree."""
        with self._structure(nid):
            bid_data, bid_sub = self._nbt_lookup(nid)
        return _Node(self, nid, bid_data, bid_sub)

    def raw_properties(self, node: _Node, wanted: frozenset[int] | None = None,
                       defer: int | None = None) -> dict[int, tuple[int, bytes | None]]:
        """Property id -> (type, stored bytes) of the property context in *node*; only the ids
        in *wanted* when given (reading a value costs: skip the ones nobody asked for). The
        value of property id *defer* is (type, None) when it lives in a subnode: read it
        with :meth:`value_stream` (an attachment's bytes, streamed)."""
        with self._structure(node.nid):
            return self._pc_bytes(node, wanted, defer)

    def value_stream(self, node: _Node, pid: int) -> tuple[int, Iterator[bytes]] | None:
        """(declared size, the bytes in blocks) of property *pid* of the PC in *node* when
        its value lives in a subnode (else None)."""
        with self._structure(node.nid):
            hnid = next((h for tag, h in self._pc_raw(node).items() if tag >> 16 == pid), None)
            if hnid is None or not hnid & 0x1F:
                return None
            sub = node.subnode(hnid)
            if sub is None:
                raise CorruptPstError(f"{node.where()}: value subnode 0x{hnid:X} is missing")
            return self._data_size(sub.bid_data, sub.where()), self._iter_data_blocks(sub.bid_data, sub.where())

    def object_stream(self, attachment: _Node, props: dict[int, tuple[int, bytes | None]]) -> tuple[int, Iterator[bytes]]:
        """(declared size, the bytes in blocks) of *attachment*'s PT_OBJECT value: what
        :meth:`object_data` returns, streamed."""
        value = props.get(TAG_ATTACH_DATA_OBJECT >> 16)
        with self._structure(attachment.nid):
            node = self._embedded_node(attachment, value[1] if value and value[0] == PT_OBJECT else None)
            return self._data_size(node.bid_data, node.where()), self._iter_data_blocks(node.bid_data, node.where())

    def raw_rows(self, node: _Node, wanted: frozenset[int] | None = None) -> list[dict[int, tuple[int, bytes]]]:
        """Each row of the table context in *node* as property id -> (type, stored bytes)."""
        with self._structure(node.nid):
            rows = []
            for _, cells in self._tc_cells(node, wanted):
                row: dict[int, tuple[int, bytes]] = {}
                for tag, ptype, raw in cells:
                    row.setdefault(tag >> 16, (ptype, raw))
                rows.append(row)
            return rows

    def row_ids(self, node: _Node) -> list[int]:
        """The row ids of the table context in *node* (a folder's contents table: message nids)."""
        with self._structure(node.nid):
            return self._tc_row_ids(node)

    def attachments(self, message: _Node) -> list[_Node]:
        """The attachment nodes of *message*, in pypff's ``get_attachment(i)`` order."""
        with self._structure(message.nid):
            return self._attachment_nodes(message)

    def recipients_table(self, message: _Node) -> _Node | None:
        """The recipient table of *message* (None when it has none)."""
        with self._structure(message.nid):
            return message.subnode(NID_RECIPIENT_TABLE)

    def embedded(self, attachment: _Node, props: dict[int, tuple[int, bytes | None]]) -> _Node:
        """The message stored inside *attachment* (attach method 5), given its raw properties."""
        value = props.get(TAG_ATTACH_DATA_OBJECT >> 16)
        with self._structure(attachment.nid):
            return self._embedded_node(attachment, value[1] if value and value[0] == PT_OBJECT else None)

    def object_data(self, attachment: _Node, props: dict[int, tuple[int, bytes | None]]) -> bytes:
        """The bytes of *attachment*'s PT_OBJECT value (an OLE object, attach method 6): the
        data of the subnode that PidTagAttachDataObject names, as libpff returns them."""
        value = props.get(TAG_ATTACH_DATA_OBJECT >> 16)
        with self._structure(attachment.nid):
            return self._embedded_node(attachment, value[1] if value and value[0] == PT_OBJECT else None).data()

    def _embedded_node(self, attachment: _Node, data_object: bytes | None) -> _Node:
        """The subnode named by an attachment's PidTagAttachDataObject value (dwNid, ulSize)."""
        if data_object is None:
            raise CorruptPstError(f"{attachment.where()}: embedded-message attachment without PidTagAttachDataObject")
        if len(data_object) < 4:
            raise CorruptPstError(f"{attachment.where()}: PidTagAttachDataObject is {len(data_object)} bytes, expected 8")
        nid = struct.unpack_from("<I", data_object)[0]
        node = attachment.subnode(nid)
        if node is None:
            raise CorruptPstError(f"{attachment.where()}: embedded message subnode 0x{nid:X} is missing")
        return node

    def _structure(self, nid: int) -> _Structure:
        """Turn a parse failure on damaged bytes (short buffer, bad index) into CorruptPstError."""
        if self._mm is None:
            raise ValueError(f"PstReader for {self.path} is closed")
        return _Structure(self.path, nid)

    # --- header and NDB ---------------------------------------------------------------------

    def _read_header(self) -> None:
        mm = self._mm
        assert mm is not None
        if mm[0:4] != b"!BDN":
            raise NotAPstError(f"{self.path}: not a PST (signature {bytes(mm[0:4])!r}, expected b'!BDN')")
        if mm[8:10] not in (b"SM", b"SO"):
            raise NotAPstError(f"{self.path}: client signature {bytes(mm[8:10])!r} is not a PST or OST")
        ver = struct.unpack_from("<H", mm, 10)[0]
        self.four_k = ver == 36  # Outlook 2013's OST layout: 4 KiB pages, zlib-compressed blocks
        self._page_size, self._align = (4096, 512) if self.four_k else (512, 64)
        # an HID's allocation index and block index: 11 and 16 bits, or 14 and 13 in wVer 36 files
        self._hid_shift, self._hid_mask = (19, 0x3FFF) if self.four_k else (16, 0x7FF)
        if ver in (14, 15):
            self.unicode = False
            self._nbt_root = struct.unpack_from("<I", mm, 188)[0]
            self._bbt_root = struct.unpack_from("<I", mm, 196)[0]
            self.crypt = mm[461]
            # page: entries end at 496, trailer at 500; block trailer 12 bytes
            self._id, self._page_meta, self._block_trailer, self._max_block = 4, 496, 12, 8180
        elif ver in (21, 23, 36):
            self.unicode = True
            self._nbt_root = struct.unpack_from("<Q", mm, 224)[0]
            self._bbt_root = struct.unpack_from("<Q", mm, 240)[0]
            self.crypt = mm[513]
            self._id, self._page_meta, self._block_trailer, self._max_block = 8, 488, 16, 8176
            if self.four_k:  # entries end at 4056 (16-bit counts), trailer at 4072; 24-byte block trailer
                self._page_meta, self._block_trailer = 4056, 24
        else:
            raise NotAPstError(f"{self.path}: unsupported PST version wVer={ver}")
        if self.crypt not in (CRYPT_NONE, CRYPT_PERMUTE, CRYPT_CYCLIC):
            raise CorruptPstError(f"{self.path}: unknown block encoding bCryptMethod={self.crypt}")
        # dwCRCPartial covers the 471 bytes after the magic; Unicode files add dwCRCFull
        checks = [(4, 471)] + ([(524, 516)] if self.unicode else [])
        for at, length in checks:
            if struct.unpack_from("<I", mm, at)[0] != crc32(mm[8:8 + length]):
                raise CorruptPstError(f"{self.path}: header checksum mismatch (the PST header is damaged)")

    def _page_uncached(self, ib: int, ptype: int) -> tuple[int, list[int], list[tuple[int, int]]]:
        """A B-tree page at *ib*: (level, the entries' keys, their values), values decoded once:
        child page offsets (level > 0), (bidData, bidSub) of NBT leaves, (ib, cb) of BBT leaves."""
        mm = self._mm
        if mm is None:
            raise ValueError("PstReader is closed")
        if ib <= 0 or ib + self._page_size > len(mm):
            raise CorruptPstError(f"{self.path}: B-tree page offset {ib} is outside the file")
        meta = self._page_meta
        if self.four_k:  # 16-bit cEnt and cEntMax; the trailer's CRC covers 4,072 bytes
            count, _, ent_size, level = struct.unpack_from("<HHBB", mm, ib + meta)
            trailer, crc_at, covered = ib + 4072, ib + 4076, 4072
        else:
            count, ent_size, level = mm[ib + meta], mm[ib + meta + 2], mm[ib + meta + 3]
            if self.unicode:
                trailer, crc_at, covered = ib + 496, ib + 500, 496
            else:
                trailer, crc_at, covered = ib + 500, ib + 508, 500
        if mm[trailer] != ptype or mm[trailer + 1] != ptype:
            raise CorruptPstError(f"{self.path}: page at {ib} has type 0x{mm[trailer]:02X}, expected 0x{ptype:02X}")
        if struct.unpack_from("<I", mm, crc_at)[0] != crc32(mm[ib:ib + covered]):
            raise CorruptPstError(f"{self.path}: B-tree page at {ib} fails its checksum (damaged)")
        w = self._id
        # entry layouts (MS-PST 2.2.2.7.7): BTENTRY key, BREF(bid, ib); NBTENTRY nid, bidData,
        # bidSub, nidParent; BBTENTRY BREF(bid, ib), cb, cRef
        want: tuple[int, ...]
        if level > 0:
            layout, want = ("<QQQ", (0, 2)) if w == 8 else ("<III", (0, 2))
        elif ptype == 0x81:
            layout, want = ("<QQQI", (0, 1, 2)) if w == 8 else ("<IIII", (0, 1, 2))
        else:
            layout, want = ("<QQH", (0, 1, 2)) if w == 8 else ("<IIH", (0, 1, 2))
        size = struct.calcsize(layout)
        if count * ent_size > meta or ent_size < size:
            raise CorruptPstError(f"{self.path}: page at {ib} claims {count} entries of {ent_size} bytes")
        rows = [struct.unpack_from(layout, mm, ib + i * ent_size) for i in range(count)]
        if ptype == 0x81 and w == 8:
            keys = [r[0] & 0xFFFFFFFF for r in rows]  # NBT keys are 64-bit fields holding a 32-bit nid
        else:
            keys = [r[0] for r in rows]
        if level > 0:
            values = [(r[want[1]], 0) for r in rows]
        else:
            values = [(r[want[1]], r[want[2]]) for r in rows]  # type: ignore[misc]  # mypy narrows want to its first layout
        return level, keys, values

    def _btree_find(self, root: int, ptype: int, key: int, what: str) -> tuple[int, int] | None:
        """The value of the leaf entry whose key is *key*, walking down from the page at *root*."""
        # an item's blocks and nodes sit close together in key order: try the last leaf first
        last = self._last_leaf.get(ptype)
        if last is not None:
            keys, values = last
            if keys[0] <= key <= keys[-1]:
                i = bisect_right(keys, key) - 1
                return values[i] if keys[i] == key else None
        ib = root
        for _ in range(16):  # a B-tree deeper than this is a loop in a damaged file
            level, keys, values = self._page(ib, ptype)
            i = bisect_right(keys, key) - 1  # the last entry whose key is <= key
            if i < 0:
                return None
            if level == 0:
                if keys:
                    self._last_leaf[ptype] = (keys, values)
                return values[i] if keys[i] == key else None
            ib = values[i][0]
        raise CorruptPstError(f"{self.path}: {what} B-tree is deeper than 16 levels")

    def _nbt_lookup(self, nid: int) -> tuple[int, int]:
        found = self._btree_find(self._nbt_root, 0x81, nid, "node")
        if found is None:
            raise CorruptPstError(f"{self.path}: node 0x{nid:X} is not in the node B-tree")
        return found

    def _bbt_lookup(self, bid: int, where: str) -> tuple[int, int]:
        found = self._btree_find(self._bbt_root, 0x80, bid & ~1, "block")
        if found is None:
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} is not in the block B-tree")
        return found

    def _block(self, bid: int, where: str) -> bytes:
        """The decoded data of block *bid*."""
        ib, cb = self._bbt_lookup(bid, where)
        mm = self._mm
        if mm is None:
            raise ValueError("PstReader is closed")
        trailer_size, align = self._block_trailer, self._align
        total = (cb + trailer_size + align - 1) // align * align
        if ib + total > len(mm):
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} at {ib} (+{total}) runs past the end of the file")
        t = ib + total - trailer_size
        if self.four_k:
            return self._block_4k(bid, ib, cb, t, where)
        if self.unicode:
            t_cb, _, t_crc, t_bid = struct.unpack_from("<HHIQ", mm, t)
        else:
            t_cb, _, t_bid, t_crc = struct.unpack_from("<HHII", mm, t)
        if t_cb != cb or (t_bid & ~1) != (bid & ~1):
            raise CorruptPstError(
                f"{self.path}: {where}: block 0x{bid:X} at {ib}: trailer says {t_cb} bytes of block 0x{t_bid:X}"
            )
        data = mm[ib:ib + cb]
        if t_crc != crc32(data) and (t_crc or self.unicode):  # old ANSI writers leave the CRC at 0
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} at {ib} fails its checksum (damaged data)")
        if bid & 2 or self.crypt == CRYPT_NONE:  # internal blocks (XBLOCK, SLBLOCK...) are never encoded
            return data
        if self.crypt == CRYPT_PERMUTE:
            return data.translate(_PERMUTE_TABLE)
        return _decrypt_cyclic(data, bid & 0xFFFFFFFF)

    def _block_4k(self, bid: int, ib: int, cb: int, t: int, where: str) -> bytes:
        """A block of a wVer 36 file: its trailer names the inflated size (cbInflated), and a
        block whose stored size differs from it is zlib-compressed; the CRC covers the stored bytes."""
        mm = self._mm
        assert mm is not None
        t_cb, _, t_crc, t_bid, _, inflated = struct.unpack_from("<HHIQHH", mm, t)
        if t_cb != cb or (t_bid & ~1) != (bid & ~1):
            raise CorruptPstError(
                f"{self.path}: {where}: block 0x{bid:X} at {ib}: trailer says {t_cb} bytes of block 0x{t_bid:X}"
            )
        data = mm[ib:ib + cb]
        if t_crc != crc32(data):
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} at {ib} fails its checksum (damaged data)")
        if inflated and inflated != cb:
            inflater = zlib.decompressobj()
            try:
                data = inflater.decompress(data, inflated)
            except zlib.error as exc:
                raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} at {ib} does not inflate ({exc})") from None
            if len(data) != inflated or not inflater.eof:
                raise CorruptPstError(
                    f"{self.path}: {where}: block 0x{bid:X} at {ib} inflates to {len(data)} bytes, not {inflated}")
        if bid & 2 or self.crypt == CRYPT_NONE:
            return data
        if self.crypt == CRYPT_PERMUTE:
            return data.translate(_PERMUTE_TABLE)
        return _decrypt_cyclic(data, bid & 0xFFFFFFFF)

    def _data_blocks(self, bid: int, where: str) -> list[bytes]:
        """The data blocks of the data tree rooted at *bid*, in order."""
        return list(self._iter_data_blocks(bid, where))

    def _data_size(self, bid: int, where: str) -> int:
        """The bytes the data tree rooted at *bid* declares (its root block's, or the
        XBLOCK's total), without reading the data."""
        if bid == 0:
            return 0
        if not bid & 2:
            return self._bbt_lookup(bid, where)[1]
        block = self._block(bid, where)
        if len(block) < 8:
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} is not an XBLOCK/XXBLOCK")
        total: int = struct.unpack_from("<I", block, 4)[0]
        return total

    def _iter_data_blocks(self, bid: int, where: str, parent_level: int = 3) -> Iterator[bytes]:
        """The data blocks of the data tree rooted at *bid*, in order, one at a time (a big
        attachment streams: its blocks are never all in memory)."""
        if bid == 0:
            return
        if not bid & 2:
            yield self._block(bid, where)
            return
        block = self._block(bid, where)
        if len(block) < 8 or block[0] != 0x01 or block[1] not in (1, 2):
            raise CorruptPstError(f"{self.path}: {where}: block 0x{bid:X} is not an XBLOCK/XXBLOCK")
        level, count, total = block[1], *struct.unpack_from("<HI", block, 2)
        assert self._mm is not None
        if total > len(self._mm):  # the bytes of a data tree are in the file: more is a tree that repeats blocks
            raise CorruptPstError(f"{self.path}: {where}: data tree 0x{bid:X} claims {total} bytes, more than the file")
        if level >= parent_level:
            raise CorruptPstError(f"{self.path}: {where}: XXBLOCK 0x{bid:X} points at a block of level {level}")
        w = self._id
        if 8 + count * w > len(block):
            raise CorruptPstError(f"{self.path}: {where}: XBLOCK 0x{bid:X} claims {count} children in {len(block)} bytes")
        bids = struct.unpack_from(f"<{count}{'Q' if w == 8 else 'I'}", block, 8)
        got = 0
        for child in bids:
            if level == 1:
                if child & 2:
                    raise CorruptPstError(f"{self.path}: {where}: XBLOCK 0x{bid:X} points at internal block 0x{child:X}")
                data = self._block(child, where)
                got += len(data)
                if got > total:  # never more than declared, even before the end
                    break
                yield data
            else:
                if not child & 2:
                    raise CorruptPstError(f"{self.path}: {where}: XXBLOCK 0x{bid:X} points at data block 0x{child:X}")
                for data in self._iter_data_blocks(child, where, level):
                    got += len(data)
                    if got > total:
                        break
                    yield data
                if got > total:
                    break
        if got != total:
            raise CorruptPstError(f"{self.path}: {where}: data tree 0x{bid:X} holds {'more than' if got > total else got} "
                                  f"bytes, expected {total}")

    def _subnode_map(self, bid: int, where: str) -> dict[int, tuple[int, int]]:
        if bid == 0:
            return {}
        try:
            return self._subnode_map_cached(bid)
        except CorruptPstError as exc:
            raise CorruptPstError(f"{exc} (subnodes of {where})") from None

    def _subnode_map_uncached(self, bid: int, depth: int = 0) -> dict[int, tuple[int, int]]:
        """nid -> (bidData, bidSub) for the subnode tree rooted at *bid* (SLBLOCK/SIBLOCK)."""
        where = f"subnode block 0x{bid:X}"
        block = self._block(bid, where)
        if len(block) < 4 or block[0] != 0x02 or block[1] > 1 or depth > 1:
            raise CorruptPstError(f"{self.path}: {where} is not an SLBLOCK/SIBLOCK")
        level, count = block[1], struct.unpack_from("<H", block, 2)[0]
        w = self._id
        start = 8 if w == 8 else 4
        fmt = "<Q" if w == 8 else "<I"
        step = 3 * w if level == 0 else 2 * w
        if start + count * step > len(block):
            raise CorruptPstError(f"{self.path}: {where} claims {count} entries in {len(block)} bytes")
        out: dict[int, tuple[int, int]] = {}
        for i in range(count):
            off = start + i * step
            # SLENTRY/SIENTRY nids are 8 bytes wide in Unicode files; only the low 32 bits are the nid
            nid = struct.unpack_from(fmt, block, off)[0] & 0xFFFFFFFF
            if level == 0:
                out[nid] = (struct.unpack_from(fmt, block, off + w)[0], struct.unpack_from(fmt, block, off + 2 * w)[0])
            else:
                out.update(self._subnode_map_uncached(struct.unpack_from(fmt, block, off + w)[0], depth + 1))
        return out

    # --- LTP: property and table contexts ---------------------------------------------------

    def _pc_raw(self, node: _Node) -> dict[int, int]:
        """tag -> dwValueHnid for every property of the PC in *node*."""
        root = node.heap_header(0xBC)
        key_size, ent_size, leaves = node.bth_leaves(root)
        if key_size != 2 or ent_size != 6:
            raise CorruptPstError(f"{node.where()}: property context BTH has key/entry sizes {key_size}/{ent_size}")
        return {(pid << 16) | ptype: hnid for leaf in leaves for pid, ptype, hnid in struct.iter_unpack("<HHI", leaf)}

    def _pc_value(self, node: _Node, tag: int, hnid: int) -> Any:
        ptype = tag & 0xFFFF
        size = _FIXED.get(ptype)
        if size is not None and size <= 4:
            return _decode_fixed(ptype, struct.pack("<I", hnid))
        try:
            return _decode_variable(ptype, node.hnid(hnid))
        except ValueError as exc:
            raise CorruptPstError(f"{node.where()}: property 0x{tag:08X}: {exc}") from None

    def _pc(self, node: _Node, skip: int = -1) -> dict[int, object]:
        return {tag: self._pc_value(node, tag, hnid) for tag, hnid in self._pc_raw(node).items() if tag != skip}

    def _pc_bytes(self, node: _Node, wanted: frozenset[int] | None = None,
                  defer: int | None = None) -> dict[int, tuple[int, bytes | None]]:
        """property id -> (type, stored bytes) for the PC in *node* (only ids in *wanted*, when
        given; *defer*: see :meth:`raw_properties`); the first of a repeated id wins."""
        out: dict[int, tuple[int, bytes | None]] = {}
        root = node.heap_header(0xBC)
        key_size, ent_size, leaves = node.bth_leaves(root)
        if key_size != 2 or ent_size != 6:
            raise CorruptPstError(f"{node.where()}: property context BTH has key/entry sizes {key_size}/{ent_size}")
        blocks, maps = node.blocks, node._maps
        hid_shift, hid_mask = self._hid_shift, self._hid_mask
        for leaf in leaves:
            for pid, ptype, hnid in struct.iter_unpack("<HHI", leaf):
                if pid in out or (wanted is not None and pid not in wanted):
                    continue
                size = _FIXED.get(ptype)
                if size is not None and size <= 4:
                    out[pid] = (ptype, hnid.to_bytes(4, "little")[:size])
                elif hnid & 0x1F and pid == defer:
                    out[pid] = (ptype, None)
                elif hnid & 0x1F or not hnid:
                    out[pid] = (ptype, node.hnid(hnid))
                else:  # node.heap(hnid), inlined: this loop runs for every property of every item
                    block, index = hnid >> hid_shift, (hnid >> 5) & hid_mask
                    offsets = maps.get(block) or node.page_map(block)
                    if 1 <= index < len(offsets) and offsets[index - 1] <= offsets[index] <= len(blocks[block]):
                        out[pid] = (ptype, blocks[block][offsets[index - 1]:offsets[index]])
                    else:
                        out[pid] = (ptype, node.heap(hnid))  # raises the specific error
        return out

    def _tc_layout(self, node: _Node) -> tuple[list[tuple[int, int, int, int]], int, int, list[bytes], int, int, list[bytes]]:
        """(columns, row size, CEB offset, row-index leaves, key size, entry size, row blocks) of a TC."""
        root = node.heap_header(0x7C)
        info = node.heap(root)
        if len(info) < 22 or info[0] != 0x7C:
            raise CorruptPstError(f"{node.where()}: TCINFO is missing or not a table (0x7C)")
        ncols = info[1]
        rgib = struct.unpack_from("<4H", info, 2)
        hid_index, hnid_rows = struct.unpack_from("<II", info, 10)
        if len(info) < 22 + 8 * ncols:
            raise CorruptPstError(f"{node.where()}: TCINFO is truncated ({ncols} columns)")
        cols = [struct.unpack_from("<IHBB", info, 22 + 8 * i) for i in range(ncols)]
        row_size, ceb_start = rgib[3], rgib[2]
        if hid_index == 0:
            return cols, row_size, ceb_start, [], 4, 4, []
        key_size, ent_size, leaves = node.bth_leaves(hid_index)
        if leaves and (key_size != 4 or ent_size not in (2, 4)):
            raise CorruptPstError(f"{node.where()}: table row index has key/entry sizes {key_size}/{ent_size}")
        blocks: list[bytes] = []
        if leaves and hnid_rows and row_size:
            if hnid_rows & 0x1F == 0:
                blocks = [node.heap(hnid_rows)]
            else:
                sub = node.subnode(hnid_rows)
                if sub is None:
                    raise CorruptPstError(f"{node.where()}: row matrix subnode 0x{hnid_rows:X} is missing")
                blocks = sub.blocks
        return cols, row_size, ceb_start, leaves, key_size, ent_size, blocks

    def _tc_row_ids(self, node: _Node) -> list[int]:
        """The row ids (dwRowID) of the TC in *node*, in row-index order, without reading any row."""
        _, _, _, leaves, _, ent_size, _ = self._tc_layout(node)
        fmt = "<IH" if ent_size == 2 else "<II"
        return [row_id for leaf in leaves for row_id, _ in struct.iter_unpack(fmt, leaf)]

    def _tc_cells(
        self, node: _Node, wanted: frozenset[int] | None = None
    ) -> Iterator[tuple[int, list[tuple[int, int, bytes]]]]:
        """(row id, [(tag, type, stored bytes)]) for every row of the TC in *node*, in row-index
        order; only the columns whose property id is in *wanted*, when given."""
        cols, row_size, ceb_start, leaves, _, ent_size, blocks = self._tc_layout(node)
        if wanted is not None:
            cols = [c for c in cols if c[0] >> 16 in wanted]
        if not blocks:
            return
        per_block = len(blocks[0]) // row_size if len(blocks) == 1 else self._max_block // row_size  # rows never span blocks
        fmt = "<IH" if ent_size == 2 else "<II"
        # per column, once: (tag, type, offset, width, CEB byte, CEB mask, fixed size or 0)
        plan = []
        for tag, ib, cb, bit in cols:
            size = _FIXED.get(tag & 0xFFFF)
            if size is not None and cb >= size:
                plan.append((tag, tag & 0xFFFF, ib, size, ceb_start + (bit >> 3), 0x80 >> (bit & 7), True))
            elif cb != 4:
                raise CorruptPstError(f"{node.where()}: column 0x{tag:08X} is {cb} bytes, expected an HNID")
            else:
                plan.append((tag, tag & 0xFFFF, ib, 4, ceb_start + (bit >> 3), 0x80 >> (bit & 7), False))
        heap_blocks, maps = node.blocks, node._maps
        hid_shift, hid_mask = self._hid_shift, self._hid_mask
        for leaf in leaves:
            for row_id, row_index in struct.iter_unpack(fmt, leaf):
                block_no, slot = divmod(row_index, per_block) if per_block else (len(blocks), 0)
                start = slot * row_size
                if block_no >= len(blocks) or start + row_size > len(blocks[block_no]):
                    raise CorruptPstError(f"{node.where()}: table row {row_index} lies outside the row matrix")
                row = blocks[block_no][start:start + row_size]
                cells = []
                for tag, ptype, ib, width, ceb, mask, fixed in plan:
                    if not row[ceb] & mask:
                        continue  # the cell existence bitmap says this cell is absent
                    if fixed:
                        cells.append((tag, ptype, row[ib:ib + width]))
                        continue
                    hnid = int.from_bytes(row[ib:ib + 4], "little")
                    if hnid & 0x1F or not hnid:
                        cells.append((tag, ptype, node.hnid(hnid)))
                        continue
                    block, index = hnid >> hid_shift, (hnid >> 5) & hid_mask  # node.heap(hnid), inlined
                    offsets = maps.get(block) or node.page_map(block)
                    if 1 <= index < len(offsets) and offsets[index - 1] <= offsets[index] <= len(heap_blocks[block]):
                        cells.append((tag, ptype, heap_blocks[block][offsets[index - 1]:offsets[index]]))
                    else:
                        cells.append((tag, ptype, node.heap(hnid)))  # raises the specific error
                yield row_id, cells

    def _tc(self, node: _Node) -> list[tuple[int, dict[int, object]]]:
        """(row id, row) for every row of the table context in *node*, in row-index order."""
        rows = []
        for row_id, cells in self._tc_cells(node):
            values: dict[int, object] = {}
            for tag, ptype, raw in cells:
                try:
                    values[tag] = _decode_fixed(ptype, raw) if ptype in _FIXED and len(raw) == _FIXED[ptype] \
                        else _decode_variable(ptype, raw)
                except ValueError as exc:
                    raise CorruptPstError(f"{node.where()}: column 0x{tag:08X}: {exc}") from None
            rows.append((row_id, values))
        return rows

    # --- messaging --------------------------------------------------------------------------

    def _attachment_nodes(self, message: _Node) -> list[_Node]:
        """The attachment subnodes of *message*, in attachment-table row order."""
        table = message.subnode(NID_ATTACHMENT_TABLE)
        if table is None:
            return []
        out = []
        for row_id in self._tc_row_ids(table):
            # the row id is the attachment's subnode id (libpff reads the same value from PidTagLtpRowId)
            att = message.subnode(row_id)
            if att is None:
                raise CorruptPstError(f"{message.where()}: attachment subnode 0x{row_id:X} is missing")
            out.append(att)
        return out

    def _embedded(
        self, att: _Node, raw: dict[int, int], index: int, depth: int, seen: frozenset[int] = frozenset()
    ) -> EmbeddedMessage:
        """The message inside attachment node *att* (whose PC entries are *raw*)."""
        if depth > _MAX_DEPTH:
            raise CorruptPstError(f"{att.where()}: embedded messages nested deeper than {_MAX_DEPTH}")
        if att.bid_sub in seen:  # a damaged subnode tree that contains itself
            raise CorruptPstError(f"{att.where()}: embedded message contains itself (subnode block 0x{att.bid_sub:X})")
        seen = seen | {att.bid_sub}
        hnid = raw.get(TAG_ATTACH_DATA_OBJECT)
        node = self._embedded_node(att, att.hnid(hnid) if hnid is not None else None)
        recipients_node = node.subnode(NID_RECIPIENT_TABLE)
        attachments = []
        for i, child in enumerate(self._attachment_nodes(node)):
            child_raw = self._pc_raw(child)
            props = {t: self._pc_value(child, t, h) for t, h in child_raw.items() if t != TAG_ATTACH_DATA_BINARY}
            data_hnid = child_raw.get(TAG_ATTACH_DATA_BINARY)
            data = self._pc_value(child, TAG_ATTACH_DATA_BINARY, data_hnid) if data_hnid is not None else None
            nested = None
            if props.get(TAG_ATTACH_METHOD) == ATTACH_EMBEDDED_MSG:
                nested = self._embedded(child, child_raw, i, depth + 1, seen)
            attachments.append(EmbeddedAttachment(i, props, data, nested))
        return EmbeddedMessage(
            attachment_index=index,
            nid=node.nid,
            props=self._pc(node),
            recipients=[row for _, row in self._tc(recipients_node)] if recipients_node is not None else [],
            attachments=attachments,
        )
