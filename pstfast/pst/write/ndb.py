"""NDB layer of a PST (MS-PST 2.2): blocks, B-tree pages, allocation maps, header.

The writer appends blocks to the file as they come (memory stays bounded by the index
entries, not by the data), then writes the node and block B-trees, the allocation maps
and finally the header, whose CRC makes the file valid. Data blocks are stored without
encoding (``bCryptMethod = NDB_CRYPT_NONE``), which every reader accepts.

Layouts (:data:`LAYOUTS`): ``unicode`` (wVer 23, Outlook 2003 and later; the default, and
its bytes never change), ``ansi`` (wVer 14, Outlook 97-2002: 32-bit block ids and file
offsets, the 512-byte ANSI header with only dwCRCPartial, 12-byte page and block trailers,
41/31-entry B-tree pages, map pages with their 4 bytes of padding) and ``unicode4k``
(wVer 36, Outlook 2013's OST layout, :class:`Ndb4kWriter`). The client signature (``SM``
for a PST, ``SO`` for an OST) is the caller's choice in any layout.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from ..crc import crc32
from ..props import (
    NID_TYPE_ASSOC_MESSAGE,
    NID_TYPE_NORMAL_MESSAGE,
    NID_TYPE_SEARCH_FOLDER,
)

PAGE_SIZE = 512
BLOCK_ALIGN = 64
MAX_BLOCK_DATA = 8176  # 8192 minus the 16-byte block trailer
BLOCK_TRAILER = struct.Struct("<HHIQ")  # cb, wSig, dwCRC, bid

AMAP_FIRST = 0x4400
AMAP_SPAN = 496 * 8 * 64  # bytes mapped by one AMap page (253,952)
FMAP_FIRST_INDEX = 128  # the header's rgbFM covers the first 128 AMaps
FMAP_EVERY = 496  # one FMap byte per AMap
FPMAP_FIRST_INDEX = 128 * 64  # the header's rgbFP covers the first 8,192 AMaps
FPMAP_EVERY = 496 * 64  # one FPMap bit per PMap, one PMap per 8 AMaps

PTYPE_BBT = 0x80
PTYPE_NBT = 0x81
PTYPE_FMAP = 0x82
PTYPE_PMAP = 0x83
PTYPE_AMAP = 0x84
PTYPE_FPMAP = 0x85

NID_TYPE_LTP = 0x1F

_SL_ENTRY = struct.Struct("<QQQ")  # nid, bidData, bidSub
_SI_ENTRY = struct.Struct("<QQ")  # nid, bid
_BT_ENTRY = struct.Struct("<QQQ")  # btkey, bref.bid, bref.ib
_BBT_ENTRY = struct.Struct("<QQHHI")  # bref.bid, bref.ib, cb, cRef, dwPadding
_NBT_ENTRY = struct.Struct("<QQQII")  # nid, bidData, bidSub, nidParent, dwPadding
_PAGE_TRAILER = struct.Struct("<BBHIQ")  # ptype, ptypeRepeat, wSig, dwCRC, bid

SL_MAX = (MAX_BLOCK_DATA - 8) // _SL_ENTRY.size  # 340 entries per SLBLOCK
SI_MAX = (MAX_BLOCK_DATA - 8) // _SI_ENTRY.size  # 510 entries per SIBLOCK
X_MAX = (MAX_BLOCK_DATA - 8) // 8  # 1021 block ids per XBLOCK/XXBLOCK


@dataclass(frozen=True)
class Layout:
    """What differs between the file formats, at the NDB level."""

    name: str
    wver: int
    wide: bool  # 64-bit block ids and file offsets (Unicode), else 32-bit (ANSI)
    max_block: int  # most data bytes in one block (8,192 minus the trailer)

    @property
    def id_format(self) -> str:
        return "Q" if self.wide else "I"

    @property
    def x_max(self) -> int:
        """Block ids per XBLOCK/XXBLOCK."""
        return (self.max_block - 8) // (8 if self.wide else 4)


UNICODE = Layout("unicode", 23, True, MAX_BLOCK_DATA)
ANSI = Layout("ansi", 14, False, 8180)
# Outlook 2013's OST layout: 4 KiB pages, 512-byte block alignment, zlib-compressed data
# blocks. Blocks hold at most 8,176 bytes of (inflated) data here, as in a wVer 23 file.
UNICODE_4K = Layout("unicode4k", 36, True, MAX_BLOCK_DATA)
LAYOUTS = {layout.name: layout for layout in (UNICODE, ANSI, UNICODE_4K)}
CLIENTS = {"pst": b"SM", "ost": b"SO"}

_ANSI_BLOCK_TRAILER = struct.Struct("<HHII")  # cb, wSig, bid, dwCRC
_ANSI_PAGE_TRAILER = struct.Struct("<BBHII")  # ptype, ptypeRepeat, wSig, bid, dwCRC
_ANSI_BT_ENTRY = struct.Struct("<III")  # btkey, bref.bid, bref.ib
_ANSI_BBT_ENTRY = struct.Struct("<IIHH")  # bref.bid, bref.ib, cb, cRef
_ANSI_NBT_ENTRY = struct.Struct("<IIII")  # nid, bidData, bidSub, nidParent
_ANSI_SL_ENTRY = struct.Struct("<III")
_ANSI_SI_ENTRY = struct.Struct("<II")
ANSI_MAX_FILE = 0x7FFFFFFF  # 32-bit offsets; Outlook 97-2002 stopped at 2 GB


def block_signature(ib: int, bid: int) -> int:
    """wSig of a block or B-tree page (MS-PST 5.5)."""
    value = (ib ^ bid) & 0xFFFFFFFF
    return ((value >> 16) ^ value) & 0xFFFF


def make_nid(nid_type: int, index: int) -> int:
    """A node id from its type and index."""
    return (index << 5) | nid_type


def amap_offset(index: int) -> int:
    """File offset of the AMap page number *index*."""
    return AMAP_FIRST + index * AMAP_SPAN


def reserved_pages(index: int) -> int:
    """Map pages at the start of AMap range *index*: AMap, PMap, FMap, FPMap."""
    count = 1
    if index % 8 == 0:
        count += 1
        if index >= FMAP_FIRST_INDEX and (index - FMAP_FIRST_INDEX) % FMAP_EVERY == 0:
            count += 1
        if index >= FPMAP_FIRST_INDEX and (index - FPMAP_FIRST_INDEX) % FPMAP_EVERY == 0:
            count += 1
    return count


def _page(payload: bytes, ptype: int, sig: int, bid: int) -> bytes:
    body = payload.ljust(496, b"\0")
    return body + _PAGE_TRAILER.pack(ptype, ptype, sig, crc32(body), bid)


def _ansi_page(payload: bytes, ptype: int, sig: int, bid: int) -> bytes:
    """An ANSI page: 500 bytes of data (the CRC covers them all), a 12-byte trailer."""
    body = payload.ljust(500, b"\0")
    return body + _ANSI_PAGE_TRAILER.pack(ptype, ptype, sig, bid, crc32(body))


class NdbWriter:
    """Appends blocks to a PST file and finalises its B-trees, maps and header."""

    def __init__(self, path: str | os.PathLike[str], *, unique: int = 0, layout: str = "unicode",
                 client: str = "pst") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown PST layout {layout!r} (one of {', '.join(LAYOUTS)})")
        if client not in CLIENTS:
            raise ValueError(f"unknown PST client {client!r} (one of {', '.join(CLIENTS)})")
        self.layout = LAYOUTS[layout]
        self._client = CLIENTS[client]
        self._file: BinaryIO = open(path, "w+b")  # noqa: SIM115 - closed in finish()/abort()
        self._cursor = AMAP_FIRST + PAGE_SIZE * reserved_pages(0)
        self._written_to = 0
        self._next_bid = 1  # block ids are counter * 4 (+2 for internal blocks)
        self._next_page_bid = 1
        self._blocks: list[tuple[int, int, int]] = []  # (bid, ib, cb), bids ascending
        self._nodes: dict[int, tuple[int, int, int]] = {}  # nid -> (bidData, bidSub, parent)
        self._allocated: list[tuple[int, int]] = []  # (ib, size) of every block and page
        self._unique = unique & 0xFFFFFFFF
        self.bytes_written = 0

    # --- space ----------------------------------------------------------------------

    def _allocate(self, size: int, align: int) -> int:
        ib = -(-self._cursor // align) * align
        index = (ib - AMAP_FIRST) // AMAP_SPAN
        ib = max(ib, amap_offset(index) + PAGE_SIZE * reserved_pages(index))  # skip map pages
        if ib + size > amap_offset(index + 1):  # never straddle two AMap ranges
            index += 1
            ib = amap_offset(index) + PAGE_SIZE * reserved_pages(index)
        self._cursor = ib + size
        if not self.layout.wide and self._cursor > ANSI_MAX_FILE:
            raise ValueError("an ANSI PST cannot grow past 2 GB (32-bit file offsets)")
        self._allocated.append((ib, size))
        return ib

    def _write_at(self, ib: int, data: bytes) -> None:
        if ib != self._written_to:
            self._file.seek(ib)
        self._file.write(data)
        self._written_to = ib + len(data)
        self.bytes_written += len(data)

    # --- blocks ---------------------------------------------------------------------

    def write_block(self, data: bytes | bytearray | memoryview, *, internal: bool = False) -> int:
        """Write one block (at most 8,176 bytes of data); return its bid."""
        cb = len(data)
        layout = self.layout
        if cb > layout.max_block:
            raise ValueError(f"block data of {cb} bytes exceeds {layout.max_block}")
        bid = (self._next_bid << 2) | (2 if internal else 0)
        self._next_bid += 1
        if layout.wide:
            size = -(-(cb + BLOCK_TRAILER.size) // BLOCK_ALIGN) * BLOCK_ALIGN
            ib = self._allocate(size, BLOCK_ALIGN)
            trailer = BLOCK_TRAILER.pack(cb, block_signature(ib, bid), crc32(data), bid)
        else:
            size = -(-(cb + _ANSI_BLOCK_TRAILER.size) // BLOCK_ALIGN) * BLOCK_ALIGN
            ib = self._allocate(size, BLOCK_ALIGN)
            trailer = _ANSI_BLOCK_TRAILER.pack(cb, block_signature(ib, bid), bid, crc32(data))
        self._write_at(ib, b"".join((data, b"\0" * (size - cb - len(trailer)), trailer)))
        self._blocks.append((bid, ib, cb))
        return bid

    def write_data(self, data: bytes | bytearray | memoryview) -> int:
        """Write a node's data of any size as a data tree; return the root bid (0 if empty)."""
        if not data:
            return 0
        step = self.layout.max_block
        if len(data) <= step:
            return self.write_block(bytes(data))
        view = memoryview(data)
        chunks = [view[i : i + step] for i in range(0, len(view), step)]
        return self.write_blocks(chunks)

    def write_blocks(self, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
        """Write pre-split data blocks (each at most 8,176 bytes) as one data tree."""
        if not chunks:
            return 0
        bids = [self.write_block(chunk) for chunk in chunks]
        if len(bids) == 1:
            return bids[0]
        sizes = [len(chunk) for chunk in chunks]
        x_max, w = self.layout.x_max, self.layout.id_format
        xbids = []
        for i in range(0, len(bids), x_max):
            part = bids[i : i + x_max]
            part_total = sum(sizes[i : i + x_max])  # lcbTotal: bytes under this XBLOCK
            xbids.append(
                self.write_block(
                    struct.pack("<BBHI", 0x01, 1, len(part), part_total) + struct.pack(f"<{len(part)}{w}", *part),
                    internal=True,
                )
            )
        if len(xbids) == 1:
            return xbids[0]
        if len(xbids) > x_max:
            raise ValueError("data larger than an XXBLOCK can address")
        return self.write_block(
            struct.pack("<BBHI", 0x01, 2, len(xbids), sum(sizes)) + struct.pack(f"<{len(xbids)}{w}", *xbids),
            internal=True,
        )

    def write_subnodes(self, entries: Iterable[tuple[int, int, int]]) -> int:
        """Write a subnode B-tree of (nid, bidData, bidSub); return its root bid (0 if empty)."""
        rows = sorted(entries)
        if not rows:
            return 0
        if self.layout.wide:
            head, sl, si = struct.Struct("<BBHI"), _SL_ENTRY, _SI_ENTRY
        else:  # ANSI: no dwPadding, 32-bit entries
            head, sl, si = struct.Struct("<BBH"), _ANSI_SL_ENTRY, _ANSI_SI_ENTRY
        sl_max = (self.layout.max_block - head.size) // sl.size
        si_max = (self.layout.max_block - head.size) // si.size
        leaves = []
        for i in range(0, len(rows), sl_max):
            part = rows[i : i + sl_max]
            body = head.pack(0x02, 0, len(part), *head_pad(head)) + b"".join(sl.pack(*r) for r in part)
            leaves.append((part[0][0], self.write_block(body, internal=True)))
        if len(leaves) == 1:
            return leaves[0][1]
        if len(leaves) > si_max:
            raise ValueError("too many subnodes for a two-level subnode B-tree")
        body = head.pack(0x02, 1, len(leaves), *head_pad(head)) + b"".join(si.pack(*e) for e in leaves)
        return self.write_block(body, internal=True)

    def add_node(self, nid: int, bid_data: int, bid_sub: int = 0, parent: int = 0) -> None:
        """Record a node in the node B-tree."""
        if nid in self._nodes:
            raise ValueError(f"node 0x{nid:x} written twice")
        self._nodes[nid] = (bid_data, bid_sub, parent)

    # --- finishing ------------------------------------------------------------------

    def _btree(self, leaves: list[bytes], keys: list[int], ptype: int, leaf_max: int, cb_leaf: int) -> tuple[int, int]:
        """Write a B-tree bottom-up from sorted leaf entries; return the root's (bid, ib)."""
        level = 0
        branch, branch_max = self._branch()
        entries, entry_keys, per_page, cb = leaves, keys, leaf_max, cb_leaf
        while True:
            parents: list[bytes] = []
            parent_keys: list[int] = []
            for start in range(0, max(len(entries), 1), per_page):
                chunk = entries[start : start + per_page]
                bid = self._next_page_bid
                self._next_page_bid += 1
                ib = self._btree_page(chunk, per_page, cb, level, ptype, bid)
                key = entry_keys[start] if chunk else 0
                parents.append(branch.pack(key, bid, ib))
                parent_keys.append(key)
            if len(parents) == 1:
                _, bid, ib = branch.unpack(parents[0])
                return bid, ib
            entries, entry_keys, per_page, cb = parents, parent_keys, branch_max, branch.size
            level += 1

    def _branch(self) -> tuple[struct.Struct, int]:
        """The branch entry of this layout's B-tree pages and how many fit in one."""
        return (_BT_ENTRY, 20) if self.layout.wide else (_ANSI_BT_ENTRY, 41)

    def _btree_page(self, chunk: list[bytes], per_page: int, cb: int, level: int, ptype: int, bid: int) -> int:
        """Write one B-tree page holding *chunk*; return its offset."""
        ib = self._allocate(PAGE_SIZE, PAGE_SIZE)
        if self.layout.wide:
            payload = b"".join(chunk).ljust(488, b"\0") + struct.pack("<BBBBI", len(chunk), per_page, cb, level, 0)
            self._write_at(ib, _page(payload, ptype, block_signature(ib, bid), bid))
        else:  # ANSI: 496 bytes of entries, the four counts, no padding
            payload = b"".join(chunk).ljust(496, b"\0") + struct.pack("<BBBB", len(chunk), per_page, cb, level)
            self._write_at(ib, _ansi_page(payload, ptype, block_signature(ib, bid), bid))
        return ib

    def finish(self, header_fields: dict[str, object] | None = None) -> int:
        """Write the B-trees, maps and header; close the file; return its size."""
        nodes = sorted(self._nodes.items())
        blocks = self._blocks
        if self.layout.wide:
            nbt_leaves = [_NBT_ENTRY.pack(nid, d, s, p, 0) for nid, (d, s, p) in nodes]
            bbt_leaves = [_BBT_ENTRY.pack(bid, ib, cb, 2, 0) for bid, ib, cb in blocks]
            nbt_max, nbt_size, bbt_max, bbt_size = 15, _NBT_ENTRY.size, 20, _BBT_ENTRY.size
        else:
            nbt_leaves = [_ANSI_NBT_ENTRY.pack(nid, d, s, p) for nid, (d, s, p) in nodes]
            bbt_leaves = [_ANSI_BBT_ENTRY.pack(bid, ib, cb, 2) for bid, ib, cb in blocks]
            nbt_max, nbt_size, bbt_max, bbt_size = 31, _ANSI_NBT_ENTRY.size, 41, _ANSI_BBT_ENTRY.size
        nbt = self._btree(nbt_leaves, [nid for nid, _ in nodes], PTYPE_NBT, nbt_max, nbt_size)
        # The BBT does not list its own pages, so its size is known before writing it.
        bbt = self._btree(bbt_leaves, [bid for bid, _, _ in blocks], PTYPE_BBT, bbt_max, bbt_size)
        amap_count = (self._cursor - AMAP_FIRST - 1) // AMAP_SPAN + 1
        eof = amap_offset(amap_count)
        free_total, first_fmap = self._write_maps(amap_count)
        self._file.truncate(eof)
        self._write_header(
            eof=eof,
            amap_last=amap_offset(amap_count - 1),
            amap_free=free_total,
            nbt=nbt,
            bbt=bbt,
            first_fmap=first_fmap,
        )
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return eof

    def abort(self) -> None:
        """Close the file without finishing it."""
        self._file.close()

    def _write_maps(self, amap_count: int) -> tuple[int, bytes]:
        # One bitmap for all AMaps: AMap i's 496 bytes are bits[i * 496 : (i + 1) * 496].
        bits = bytearray(496 * amap_count)
        for index in range(amap_count):
            _mark(bits, amap_offset(index), PAGE_SIZE * reserved_pages(index))
        for ib, size in self._allocated:
            _mark(bits, ib, size)

        free_total = 0
        longest: list[int] = []
        if self.layout.wide:
            page = _page
        else:  # ANSI map pages: 4 bytes of padding, then the same 496 bytes
            def page(payload: bytes, ptype: int, sig: int, bid: int) -> bytes:
                return _ansi_page(b"\0\0\0\0" + payload, ptype, sig, bid)
        for index in range(amap_count):
            page_bits = bytes(bits[index * 496 : (index + 1) * 496])
            ib = amap_offset(index)
            self._write_at(ib, page(page_bits, PTYPE_AMAP, 0, ib))
            as_text = format(int.from_bytes(page_bits, "big"), "03968b")
            free_total += as_text.count("0") * BLOCK_ALIGN
            longest.append(min(max(map(len, as_text.split("1"))), 0xFF))
            if index % 8 == 0:  # PMaps are deprecated: every page marked allocated
                self._write_at(ib + PAGE_SIZE, page(b"\xff" * 496, PTYPE_PMAP, 0, ib + PAGE_SIZE))
        for index in range(FMAP_FIRST_INDEX, amap_count, FMAP_EVERY):
            ib = amap_offset(index) + 2 * PAGE_SIZE
            self._write_at(ib, page(bytes(longest[index : index + FMAP_EVERY]), PTYPE_FMAP, 0, ib))
        for index in range(FPMAP_FIRST_INDEX, amap_count, FPMAP_EVERY):
            ib = amap_offset(index) + 3 * PAGE_SIZE
            self._write_at(ib, page(b"\xff" * 496, PTYPE_FPMAP, 0, ib))
        first_fmap = bytes(longest[:FMAP_FIRST_INDEX]).ljust(FMAP_FIRST_INDEX, b"\0")
        return free_total, first_fmap

    def _write_header(
        self,
        *,
        eof: int,
        amap_last: int,
        amap_free: int,
        nbt: tuple[int, int],
        bbt: tuple[int, int],
        first_fmap: bytes,
    ) -> None:
        rgnid = [0x400] * 32
        rgnid[NID_TYPE_SEARCH_FOLDER] = 0x4000
        rgnid[NID_TYPE_NORMAL_MESSAGE] = 0x10000
        rgnid[NID_TYPE_ASSOC_MESSAGE] = 0x8000
        for nid in self._nodes:
            kind, index = nid & 0x1F, nid >> 5
            rgnid[kind] = max(rgnid[kind], index + 1)
        if not self.layout.wide:
            self._write_ansi_header(rgnid, eof=eof, amap_last=amap_last, amap_free=amap_free, nbt=nbt, bbt=bbt,
                                    first_fmap=first_fmap)
            return
        head = bytearray(564)
        head[0:4] = b"!BDN"
        struct.pack_into("<2sHHBBII", head, 8, self._client, self.layout.wver, 19, 1, 1, 0, 0)
        struct.pack_into("<QQI", head, 24, 0, self._next_page_bid, self._unique)
        struct.pack_into("<32I", head, 44, *rgnid)
        # ROOT
        struct.pack_into("<IQQQQ", head, 180, 0, eof, amap_last, amap_free, 0)
        struct.pack_into("<QQQQ", head, 216, nbt[0], nbt[1], bbt[0], bbt[1])
        struct.pack_into("<BBH", head, 248, 0x02, 0, 0)  # fAMapValid = VALID_AMAP2
        head[256:384] = first_fmap
        head[384:512] = b"\xff" * 128  # rgbFP: deprecated, filled with 0xFF
        struct.pack_into("<BBH", head, 512, 0x80, 0x00, 0)  # bSentinel, bCryptMethod = none
        struct.pack_into("<Q", head, 516, self._next_bid << 2)  # bidNextB
        struct.pack_into("<I", head, 4, crc32(head[8 : 8 + 471]))
        struct.pack_into("<I", head, 524, crc32(head[8 : 8 + 516]))
        self._file.seek(0)
        self._file.write(head)

    def _write_ansi_header(
        self,
        rgnid: list[int],
        *,
        eof: int,
        amap_last: int,
        amap_free: int,
        nbt: tuple[int, int],
        bbt: tuple[int, int],
        first_fmap: bytes,
    ) -> None:
        """The 512-byte ANSI HEADER (MS-PST 2.2.2.6): 32-bit fields, dwCRCPartial only."""
        head = bytearray(512)
        head[0:4] = b"!BDN"
        struct.pack_into("<2sHHBBII", head, 8, self._client, self.layout.wver, 19, 1, 1, 0, 0)
        struct.pack_into("<III", head, 24, self._next_bid << 2, self._next_page_bid, self._unique)  # bidNextB, bidNextP
        struct.pack_into("<32I", head, 36, *rgnid)
        # ROOT: dwReserved, ibFileEof, ibAMapLast, cbAMapFree, cbPMapFree, BREFNBT, BREFBBT
        struct.pack_into("<IIIIIIIII", head, 164, 0, eof, amap_last, amap_free, 0, nbt[0], nbt[1], bbt[0], bbt[1])
        struct.pack_into("<BBH", head, 200, 0x01, 0, 0)  # fAMapValid = VALID_AMAP1, as Outlook 97-2002 wrote it
        head[204:332] = first_fmap
        head[332:460] = b"\xff" * 128  # rgbFP
        struct.pack_into("<BB", head, 460, 0x80, 0x00)  # bSentinel, bCryptMethod = none
        struct.pack_into("<I", head, 4, crc32(head[8 : 8 + 471]))
        self._file.seek(0)
        self._file.write(head)


def head_pad(head: struct.Struct) -> tuple[int, ...]:
    """The dwPadding of an SLBLOCK/SIBLOCK header, when the layout has one."""
    return (0,) if head.size == 8 else ()


def _mark(bits: bytearray, ib: int, size: int) -> None:
    """Set the AMap bits (most significant bit first) of the 64-byte slots of [ib, ib+size)."""
    first = (ib - AMAP_FIRST) // BLOCK_ALIGN
    end = first + size // BLOCK_ALIGN
    while first < end and first & 7:
        bits[first >> 3] |= 0x80 >> (first & 7)
        first += 1
    whole = (end - first) >> 3
    if whole:
        bits[first >> 3 : (first >> 3) + whole] = b"\xff" * whole
        first += whole * 8
    while first < end:
        bits[first >> 3] |= 0x80 >> (first & 7)
        first += 1


# --- the 4 KiB-page layout (wVer 36) ------------------------------------------------------

PAGE_4K = 4096
ALIGN_4K = 512  # blocks start on 512-byte boundaries; one AMap bit maps 512 bytes
AMAP_FIRST_4K = 0x22000
AMAP_SPAN_4K = 4072 * 8 * ALIGN_4K  # bytes mapped by one 4 KiB AMap page (16,678,912)
#: cb, wSig, dwCRC, bid, (2 bytes unknown), cbInflated, (4 bytes unknown): libpff's format
#: document's block footer of a 4 KiB-page file; the CRC covers the bytes as stored
BLOCK_TRAILER_4K = struct.Struct("<HHIQHHI")
_PAGE_TRAILER_4K = struct.Struct("<BBHIQQ")  # ptype, ptypeRepeat, wSig, dwCRC, bid, (unknown)


def _page_4k(payload: bytes, ptype: int, sig: int, bid: int) -> bytes:
    body = payload.ljust(4072, b"\0")
    return body + _PAGE_TRAILER_4K.pack(ptype, ptype, sig, crc32(body), bid, 0)


class Ndb4kWriter(NdbWriter):
    """The NDB layer of a wVer 36 file (Outlook 2013 OSTs; libpff's format document, "64-bit
    4k page"): 4,096-byte B-tree and AMap pages with a 24-byte trailer (the CRC covers the
    4,072 bytes before it), B-tree pages whose entry count and maximum are 16-bit, 512-byte
    block alignment, and data blocks compressed with zlib when that saves space: the block
    footer then gives the inflated size (cbInflated, equal to cb when the block is stored
    as is). No PMap, FMap or FPMap pages (Outlook 2013 writes none at these sizes)."""

    def __init__(self, path: str | os.PathLike[str], *, unique: int = 0, client: str = "pst") -> None:
        super().__init__(path, unique=unique, layout="unicode4k", client=client)
        self._cursor = AMAP_FIRST_4K + PAGE_4K

    def _allocate(self, size: int, align: int) -> int:
        ib = -(-self._cursor // align) * align
        index = (ib - AMAP_FIRST_4K) // AMAP_SPAN_4K
        ib = max(ib, AMAP_FIRST_4K + index * AMAP_SPAN_4K + PAGE_4K)  # skip the AMap page
        if ib + size > AMAP_FIRST_4K + (index + 1) * AMAP_SPAN_4K:
            index += 1
            ib = AMAP_FIRST_4K + index * AMAP_SPAN_4K + PAGE_4K
        self._cursor = ib + size
        self._allocated.append((ib, size))
        return ib

    def write_block(self, data: bytes | bytearray | memoryview, *, internal: bool = False) -> int:
        """Write one block of at most 8,176 bytes (inflated); return its bid."""
        inflated = len(data)
        if inflated > self.layout.max_block:
            raise ValueError(f"block data of {inflated} bytes exceeds {self.layout.max_block}")
        stored = bytes(data)
        if not internal and inflated:
            packed = zlib.compress(stored, 6)
            if len(packed) < inflated:
                stored = packed
        bid = (self._next_bid << 2) | (2 if internal else 0)
        self._next_bid += 1
        cb = len(stored)
        size = -(-(cb + BLOCK_TRAILER_4K.size) // ALIGN_4K) * ALIGN_4K
        ib = self._allocate(size, ALIGN_4K)
        trailer = BLOCK_TRAILER_4K.pack(cb, block_signature(ib, bid), crc32(stored), bid, 0, inflated, 0)
        self._write_at(ib, b"".join((stored, b"\0" * (size - cb - len(trailer)), trailer)))
        self._blocks.append((bid, ib, cb))
        return bid

    def _branch(self) -> tuple[struct.Struct, int]:
        return _BT_ENTRY, 4056 // _BT_ENTRY.size

    def _btree_page(self, chunk: list[bytes], per_page: int, cb: int, level: int, ptype: int, bid: int) -> int:
        ib = self._allocate(PAGE_4K, PAGE_4K)
        payload = b"".join(chunk).ljust(4056, b"\0") + struct.pack("<HHBB10x", len(chunk), per_page, cb, level)
        self._write_at(ib, _page_4k(payload, ptype, block_signature(ib, bid), bid))
        return ib

    def finish(self, header_fields: dict[str, object] | None = None) -> int:
        nodes = sorted(self._nodes.items())
        blocks = self._blocks
        nbt = self._btree([_NBT_ENTRY.pack(nid, d, s, p, 0) for nid, (d, s, p) in nodes], [nid for nid, _ in nodes],
                          PTYPE_NBT, 4056 // _NBT_ENTRY.size, _NBT_ENTRY.size)
        bbt = self._btree([_BBT_ENTRY.pack(bid, ib, cb, 2, 0) for bid, ib, cb in blocks], [b for b, _, _ in blocks],
                          PTYPE_BBT, 4056 // _BBT_ENTRY.size, _BBT_ENTRY.size)
        amap_count = (self._cursor - AMAP_FIRST_4K - 1) // AMAP_SPAN_4K + 1
        eof = AMAP_FIRST_4K + amap_count * AMAP_SPAN_4K
        bits = bytearray(4072 * amap_count)
        for index in range(amap_count):
            _mark_slots(bits, AMAP_FIRST_4K + index * AMAP_SPAN_4K - AMAP_FIRST_4K, PAGE_4K, ALIGN_4K)
        for ib, size in self._allocated:
            _mark_slots(bits, ib - AMAP_FIRST_4K, size, ALIGN_4K)
        free_total = 0
        for index in range(amap_count):
            page_bits = bytes(bits[index * 4072 : (index + 1) * 4072])
            ib = AMAP_FIRST_4K + index * AMAP_SPAN_4K
            self._write_at(ib, _page_4k(page_bits, PTYPE_AMAP, 0, ib))
            free_total += (4072 * 8 - sum(bin(b).count("1") for b in page_bits)) * ALIGN_4K
        self._file.truncate(eof)
        self._write_header(eof=eof, amap_last=AMAP_FIRST_4K + (amap_count - 1) * AMAP_SPAN_4K, amap_free=free_total,
                           nbt=nbt, bbt=bbt, first_fmap=b"\xff" * FMAP_FIRST_INDEX)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return eof


def _mark_slots(bits: bytearray, offset: int, size: int, slot: int) -> None:
    """Set the bits (most significant first) of the *slot*-byte slots of [offset, offset+size)."""
    for i in range(offset // slot, (offset + size + slot - 1) // slot):
        bits[i >> 3] |= 0x80 >> (i & 7)


def ndb_writer(path: str | os.PathLike[str], *, unique: int = 0, layout: str = "unicode",
               client: str = "pst") -> NdbWriter:
    """The NDB writer of *layout*."""
    if layout == UNICODE_4K.name:
        return Ndb4kWriter(path, unique=unique, client=client)
    return NdbWriter(path, unique=unique, layout=layout, client=client)
