"""LTP layer of a Unicode PST (MS-PST 2.3): heap-on-node, BTH, property and table contexts.

Builders here produce bytes only; the messaging layer decides where nodes and subnodes
live. A builder returns the heap's blocks plus any values too large for the heap, which
must become subnodes (``NID_TYPE_LTP``) of the node that owns the heap.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..props import (
    MV_FLAG,
    PT_BINARY,
    PT_BOOLEAN,
    PT_DOUBLE,
    PT_LONG,
    PT_LONGLONG,
    PT_MV_BINARY,
    PT_MV_STRING8,
    PT_MV_UNICODE,
    PT_OBJECT,
    PT_SHORT,
    PT_STRING8,
    PT_SYSTIME,
    PT_UNICODE,
)
from .ndb import MAX_BLOCK_DATA

MAX_ALLOC = 3580  # largest heap allocation (MS-PST 2.3.1.1)
HN_SIG = 0xEC
CLIENT_PC = 0xBC
CLIENT_TC = 0x7C
CLIENT_BTH = 0xB5

_FIXED_SIZE = {PT_SHORT: 2, PT_LONG: 4, PT_BOOLEAN: 1, PT_LONGLONG: 8, PT_SYSTIME: 8}

PidTagLtpRowId = (0x67F2 << 16) | PT_LONG
PidTagLtpRowVer = (0x67F3 << 16) | PT_LONG


def prop_type(tag: int) -> int:
    return tag & 0xFFFF


def ansi_tag(tag: int, ansi: str | None) -> int:
    """*tag* as written: a PT_UNICODE string becomes PT_STRING8 when the file is written with
    ANSI strings (as Outlook 97-2002 wrote them, in the machine's code page *ansi*)."""
    if ansi and prop_type(tag) == PT_MV_UNICODE:
        return (tag & ~0xFFFF) | PT_MV_STRING8
    return (tag & ~0xFFFF) | PT_STRING8 if ansi and prop_type(tag) == PT_UNICODE else tag


def encode_value(tag: int, value: object, ansi: str | None = None) -> bytes:
    """The on-disk bytes of a property value of the type in *tag* (PT_STRING8 in codec *ansi*)."""
    kind = prop_type(tag)
    if kind == PT_UNICODE:
        return str(value).encode("utf-16-le", "surrogatepass")
    if kind == PT_STRING8:
        return value if isinstance(value, bytes) else str(value).encode(ansi or "cp1252", "replace")
    if kind in (PT_BINARY, PT_OBJECT):
        assert isinstance(value, (bytes, bytearray, memoryview)), type(value)
        return bytes(value)
    if kind == PT_LONG:
        return struct.pack("<i" if int(value) < 0 else "<I", int(value))  # type: ignore[call-overload]
    if kind == PT_SHORT:
        return struct.pack("<H", int(value) & 0xFFFF)  # type: ignore[call-overload]
    if kind == PT_BOOLEAN:
        return b"\x01" if value else b"\x00"
    if kind in (PT_LONGLONG, PT_SYSTIME):
        return struct.pack("<q", int(value))  # type: ignore[call-overload]
    if kind == PT_DOUBLE:
        return struct.pack("<d", float(value))  # type: ignore[arg-type]
    if kind in (PT_MV_UNICODE, PT_MV_STRING8, PT_MV_BINARY):
        # MS-PST 2.3.3.4.2: ulCount, then each value's offset from the start, then the values
        assert isinstance(value, (list, tuple)), type(value)
        base = (tag & ~0xFFFF) | (kind & ~MV_FLAG)
        items = [encode_value(base, item, ansi) for item in value]
        offsets, at = [], 4 + 4 * len(items)
        for item in items:
            offsets.append(at)
            at += len(item)
        return struct.pack(f"<I{len(items)}I", len(items), *offsets) + b"".join(items)
    raise ValueError(f"unsupported property type 0x{kind:04x}")


def _fill_level(free: int) -> int:
    thresholds = (3584, 2560, 2048, 1792, 1536, 1280, 1024, 768, 512, 256, 128, 64, 32, 16, 8)
    for level, limit in enumerate(thresholds):
        if free >= limit:
            return level
    return 15


class Heap:
    """A heap-on-node under construction (MS-PST 2.3.1)."""

    def __init__(self, client_sig: int, hid_block_shift: int = 16) -> None:
        self.client_sig = client_sig
        self.hid_block_shift = hid_block_shift  # 19 in wVer 36 files (14-bit allocation indexes)
        self.root = 0
        self._blocks: list[list[bytes]] = [[]]
        self._used = [self._header_size(0)]

    @staticmethod
    def _header_size(index: int) -> int:
        if index == 0:
            return 12  # HNHDR
        if index % 128 == 8:
            return 66  # HNBITMAPHDR
        return 2  # HNPAGEHDR

    def alloc(self, data: bytes) -> int:
        """Store *data* (at most 3,580 bytes); return its HID."""
        if len(data) > MAX_ALLOC:
            raise ValueError(f"heap allocation of {len(data)} bytes exceeds {MAX_ALLOC}")
        index = len(self._blocks) - 1
        allocs = self._blocks[index]
        # page map: cAlloc, cFree, rgibAlloc[cAlloc + 1]; +1 for alignment to 2 bytes
        if self._used[index] + len(data) + 4 + 2 * (len(allocs) + 2) + 1 > MAX_BLOCK_DATA:
            self._blocks.append([])
            index += 1
            self._used.append(self._header_size(index))
            allocs = self._blocks[index]
        allocs.append(data)
        self._used[index] += len(data)
        return (index << self.hid_block_shift) | (len(allocs) << 5)

    def blocks(self) -> list[bytes]:
        """The heap's data blocks, in order."""
        out = []
        fills = []
        for index, allocs in enumerate(self._blocks):
            header = self._header_size(index)
            offsets = [header]
            for data in allocs:
                offsets.append(offsets[-1] + len(data))
            ib_hnpm = offsets[-1] + (offsets[-1] & 1)
            page_map = struct.pack(f"<HH{len(offsets)}H", len(allocs), 0, *offsets)
            size = ib_hnpm + len(page_map)
            fills.append(_fill_level(MAX_BLOCK_DATA - size))
            body = bytearray(size)
            pos = header
            for data in allocs:
                body[pos : pos + len(data)] = data
                pos += len(data)
            body[ib_hnpm:] = page_map
            struct.pack_into("<H", body, 0, ib_hnpm)
            out.append(body)
        # fill levels: the HNHDR holds blocks 0-7, each HNBITMAPHDR the next 128
        out[0][2:12] = struct.pack("<BBI", HN_SIG, self.client_sig, self.root) + _nibbles(fills[0:8], 4)
        for index in range(8, len(out), 128):
            out[index][2:66] = _nibbles(fills[index : index + 128], 64)
        return [bytes(b) for b in out]


def _nibbles(levels: Sequence[int], size: int) -> bytes:
    out = bytearray(size)
    for i, level in enumerate(levels):
        out[i >> 1] |= level << (4 * (i & 1))
    return bytes(out)


def build_bth(heap: Heap, cb_key: int, cb_ent: int, records: Sequence[tuple[bytes, bytes]]) -> int:
    """Store a BTH over sorted (key, data) records in *heap*; return the header's HID."""
    hid_root = 0
    levels = 0
    if records:
        per = MAX_ALLOC // (cb_key + cb_ent)
        nodes = []
        for i in range(0, len(records), per):
            chunk = records[i : i + per]
            nodes.append((chunk[0][0], heap.alloc(b"".join(k + v for k, v in chunk))))
        while len(nodes) > 1:
            per = MAX_ALLOC // (cb_key + 4)
            nodes = [
                (nodes[i][0], heap.alloc(b"".join(k + struct.pack("<I", hid) for k, hid in nodes[i : i + per])))
                for i in range(0, len(nodes), per)
            ]
            levels += 1
        hid_root = nodes[0][1]
    return heap.alloc(struct.pack("<BBBBI", CLIENT_BTH, cb_key, cb_ent, levels, hid_root))


@dataclass
class Built:
    """A heap's blocks plus the values that had to go to subnodes (nid -> bytes)."""

    blocks: list[bytes]
    subnodes: list[tuple[int, bytes | list[bytes]]] = field(default_factory=list)


SubnodeIds = Callable[[], int]


def _store(heap: Heap, data: bytes, subnodes: list[tuple[int, bytes | list[bytes]]], next_nid: SubnodeIds) -> int:
    """HNID of a variable-size value: in the heap when it fits, else in a subnode."""
    if not data:
        return 0
    if len(data) <= MAX_ALLOC:
        return heap.alloc(data)
    nid = next_nid()
    subnodes.append((nid, data))
    return nid


def build_pc(props: Iterable[tuple[int, object]], next_nid: SubnodeIds, *, ansi: str | None = None,
             hid_block_shift: int = 16) -> Built:
    """A property context (MS-PST 2.3.3) from (tag, value) pairs (strings as PT_STRING8 in
    codec *ansi* when given)."""
    heap = Heap(CLIENT_PC, hid_block_shift)
    subnodes: list[tuple[int, bytes | list[bytes]]] = []
    records = []
    for given, value in sorted(props, key=lambda p: p[0] >> 16):
        tag = ansi_tag(given, ansi)
        kind = prop_type(tag)
        raw = encode_value(tag, value, ansi)
        if kind in (PT_SHORT, PT_LONG, PT_BOOLEAN):
            hnid = int.from_bytes(raw.ljust(4, b"\0"), "little")
        else:
            hnid = _store(heap, raw, subnodes, next_nid)
        records.append((struct.pack("<H", tag >> 16), struct.pack("<HI", kind, hnid)))
    heap.root = build_bth(heap, 2, 6, records)
    return Built(heap.blocks(), subnodes)


@dataclass(frozen=True)
class _Column:
    tag: int
    ib: int
    cb: int
    bit: int


def table_layout(tags: Sequence[int]) -> tuple[list[_Column], tuple[int, int, int, int]]:
    """Column placement in a row: row id and version first, then 8/4-, 2- and 1-byte cells."""
    others = [t for t in tags if t not in (PidTagLtpRowId, PidTagLtpRowVer)]
    size = {t: _FIXED_SIZE.get(prop_type(t), 4) for t in others}
    ordered = [PidTagLtpRowId, PidTagLtpRowVer]
    ordered += [t for t in others if size[t] == 8] + [t for t in others if size[t] == 4]
    ordered += [t for t in others if size[t] == 2] + [t for t in others if size[t] == 1]
    size[PidTagLtpRowId] = size[PidTagLtpRowVer] = 4
    columns = []
    ib = 0
    ends = {}
    for bit, tag in enumerate(ordered):
        columns.append(_Column(tag, ib, size[tag], bit))
        ib += size[tag]
        ends[size[tag]] = ib
    end4 = max(ends.get(8, 0), ends.get(4, 0))
    end2 = ends.get(2, end4)
    end1 = ends.get(1, end2)
    bitmap = end1 + (len(columns) + 7) // 8
    return columns, (end4, end2, end1, bitmap)


def build_tc(
    tags: Sequence[int],
    rows: Sequence[tuple[int, dict[int, object]]],
    next_nid: SubnodeIds,
    *,
    ansi: str | None = None,
    block_size: int = MAX_BLOCK_DATA,
    row_index_size: int = 4,
    hid_block_shift: int = 16,
) -> Built:
    """A table context (MS-PST 2.3.4): *rows* are (row id, {tag: value}) in row order (string
    columns as PT_STRING8 in codec *ansi* when given). *block_size*: the data bytes of a
    block in the file's layout (a row matrix in a subnode fills its blocks with whole rows);
    *row_index_size*: dwRowIndex's size in the row index (4, or 2 in ANSI files);
    *hid_block_shift*: where an HID's block index starts (bit 16, or 19 in wVer 36 files)."""
    heap = Heap(CLIENT_TC, hid_block_shift)
    subnodes: list[tuple[int, bytes | list[bytes]]] = []
    columns, rgib = table_layout(tags)
    row_size = rgib[3]
    matrix = bytearray(row_size * len(rows))
    for index, (row_id, values) in enumerate(rows):
        base = index * row_size
        ceb = bytearray((len(columns) + 7) // 8)
        for col in columns:
            if col.tag == PidTagLtpRowId:
                value: object = row_id
            elif col.tag == PidTagLtpRowVer:
                value = index + 1
            else:
                if col.tag not in values or values[col.tag] is None:
                    continue
                value = values[col.tag]
            tag = ansi_tag(col.tag, ansi)
            if prop_type(tag) in _FIXED_SIZE:
                cell = encode_value(tag, value)
            else:
                cell = struct.pack("<I", _store(heap, encode_value(tag, value, ansi), subnodes, next_nid))
            matrix[base + col.ib : base + col.ib + col.cb] = cell
            ceb[col.bit >> 3] |= 0x80 >> (col.bit & 7)
        matrix[base + rgib[2] : base + row_size] = ceb
    index_format = "<H" if row_index_size == 2 else "<I"
    records = sorted((struct.pack("<I", row_id), struct.pack(index_format, i)) for i, (row_id, _) in enumerate(rows))
    hid_rows_index = build_bth(heap, 4, row_index_size, records)
    if not rows:
        hnid_rows = 0
    elif len(matrix) <= MAX_ALLOC:
        hnid_rows = heap.alloc(bytes(matrix))
    else:
        # rows never span blocks: each block holds as many whole rows as fit
        per_block = block_size // row_size
        step = per_block * row_size
        hnid_rows = next_nid()
        subnodes.append((hnid_rows, [bytes(matrix[i : i + step]) for i in range(0, len(matrix), step)]))
    coldescs = b"".join(
        struct.pack("<IHBB", ansi_tag(c.tag, ansi), c.ib, c.cb, c.bit) for c in sorted(columns, key=lambda c: c.tag)
    )
    info = struct.pack("<BB4HIII", CLIENT_TC, len(columns), *rgib, hid_rows_index, hnid_rows, 0) + coldescs
    heap.root = heap.alloc(info)
    return Built(heap.blocks(), subnodes)
