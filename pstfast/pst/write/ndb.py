"""NDB layer of a Unicode PST (MS-PST 2.2): blocks, B-tree pages, allocation maps, header.

The writer appends blocks to the file as they come (memory stays bounded by the index
entries, not by the data), then writes the node and block B-trees, the allocation maps
and finally the header, whose CRC makes the file valid. Data blocks are stored without
encoding (``bCryptMethod = NDB_CRYPT_NONE``), which every reader accepts.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
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


class NdbWriter:
    """Appends blocks to a PST file and finalises its B-trees, maps and header."""

    def __init__(self, path: str | os.PathLike[str], *, unique: int = 0) -> None:
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
        if cb > MAX_BLOCK_DATA:
            raise ValueError(f"block data of {cb} bytes exceeds {MAX_BLOCK_DATA}")
        bid = (self._next_bid << 2) | (2 if internal else 0)
        self._next_bid += 1
        size = -(-(cb + BLOCK_TRAILER.size) // BLOCK_ALIGN) * BLOCK_ALIGN
        ib = self._allocate(size, BLOCK_ALIGN)
        trailer = BLOCK_TRAILER.pack(cb, block_signature(ib, bid), crc32(data), bid)
        self._write_at(ib, b"".join((data, b"\0" * (size - cb - BLOCK_TRAILER.size), trailer)))
        self._blocks.append((bid, ib, cb))
        return bid

    def write_data(self, data: bytes | bytearray | memoryview) -> int:
        """Write a node's data of any size as a data tree; return the root bid (0 if empty)."""
        if not data:
            return 0
        if len(data) <= MAX_BLOCK_DATA:
            return self.write_block(bytes(data))
        view = memoryview(data)
        chunks = [view[i : i + MAX_BLOCK_DATA] for i in range(0, len(view), MAX_BLOCK_DATA)]
        return self.write_blocks(chunks)

    def write_blocks(self, chunks: Sequence[bytes | bytearray | memoryview]) -> int:
        """Write pre-split data blocks (each at most 8,176 bytes) as one data tree."""
        if not chunks:
            return 0
        bids = [self.write_block(chunk) for chunk in chunks]
        if len(bids) == 1:
            return bids[0]
        sizes = [len(chunk) for chunk in chunks]
        xbids = []
        for i in range(0, len(bids), X_MAX):
            part = bids[i : i + X_MAX]
            part_total = sum(sizes[i : i + X_MAX])  # lcbTotal: bytes under this XBLOCK
            xbids.append(
                self.write_block(
                    struct.pack("<BBHI", 0x01, 1, len(part), part_total) + struct.pack(f"<{len(part)}Q", *part),
                    internal=True,
                )
            )
        if len(xbids) == 1:
            return xbids[0]
        if len(xbids) > X_MAX:
            raise ValueError("data larger than an XXBLOCK can address")
        return self.write_block(
            struct.pack("<BBHI", 0x01, 2, len(xbids), sum(sizes)) + struct.pack(f"<{len(xbids)}Q", *xbids),
            internal=True,
        )

    def write_subnodes(self, entries: Iterable[tuple[int, int, int]]) -> int:
        """Write a subnode B-tree of (nid, bidData, bidSub); return its root bid (0 if empty)."""
        rows = sorted(entries)
        if not rows:
            return 0
        leaves = []
        for i in range(0, len(rows), SL_MAX):
            part = rows[i : i + SL_MAX]
            body = struct.pack("<BBHI", 0x02, 0, len(part), 0) + b"".join(_SL_ENTRY.pack(*r) for r in part)
            leaves.append((part[0][0], self.write_block(body, internal=True)))
        if len(leaves) == 1:
            return leaves[0][1]
        if len(leaves) > SI_MAX:
            raise ValueError("too many subnodes for a two-level subnode B-tree")
        body = struct.pack("<BBHI", 0x02, 1, len(leaves), 0) + b"".join(_SI_ENTRY.pack(*e) for e in leaves)
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
        entries, entry_keys, per_page, cb = leaves, keys, leaf_max, cb_leaf
        while True:
            parents: list[bytes] = []
            parent_keys: list[int] = []
            pages = range(0, max(len(entries), 1), per_page)
            for start in pages:
                chunk = entries[start : start + per_page]
                bid = self._next_page_bid
                self._next_page_bid += 1
                ib = self._allocate(PAGE_SIZE, PAGE_SIZE)
                payload = b"".join(chunk).ljust(488, b"\0") + struct.pack("<BBBBI", len(chunk), per_page, cb, level, 0)
                self._write_at(ib, _page(payload, ptype, block_signature(ib, bid), bid))
                key = entry_keys[start] if chunk else 0
                parents.append(_BT_ENTRY.pack(key, bid, ib))
                parent_keys.append(key)
            if len(parents) == 1:
                _, bid, ib = _BT_ENTRY.unpack(parents[0])
                return bid, ib
            entries, entry_keys, per_page, cb = parents, parent_keys, 20, _BT_ENTRY.size
            level += 1

    def finish(self, header_fields: dict[str, object] | None = None) -> int:
        """Write the B-trees, maps and header; close the file; return its size."""
        nodes = sorted(self._nodes.items())
        nbt = self._btree(
            [_NBT_ENTRY.pack(nid, d, s, p, 0) for nid, (d, s, p) in nodes],
            [nid for nid, _ in nodes],
            PTYPE_NBT,
            15,
            _NBT_ENTRY.size,
        )
        blocks = self._blocks
        # The BBT does not list its own pages, so its size is known before writing it.
        bbt = self._btree(
            [_BBT_ENTRY.pack(bid, ib, cb, 2, 0) for bid, ib, cb in blocks],
            [bid for bid, _, _ in blocks],
            PTYPE_BBT,
            20,
            _BBT_ENTRY.size,
        )
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
        for index in range(amap_count):
            page_bits = bytes(bits[index * 496 : (index + 1) * 496])
            ib = amap_offset(index)
            self._write_at(ib, _page(page_bits, PTYPE_AMAP, 0, ib))
            as_text = format(int.from_bytes(page_bits, "big"), "03968b")
            free_total += as_text.count("0") * BLOCK_ALIGN
            longest.append(min(max(map(len, as_text.split("1"))), 0xFF))
            if index % 8 == 0:  # PMaps are deprecated: every page marked allocated
                self._write_at(ib + PAGE_SIZE, _page(b"\xff" * 496, PTYPE_PMAP, 0, ib + PAGE_SIZE))
        for index in range(FMAP_FIRST_INDEX, amap_count, FMAP_EVERY):
            ib = amap_offset(index) + 2 * PAGE_SIZE
            self._write_at(ib, _page(bytes(longest[index : index + FMAP_EVERY]), PTYPE_FMAP, 0, ib))
        for index in range(FPMAP_FIRST_INDEX, amap_count, FPMAP_EVERY):
            ib = amap_offset(index) + 3 * PAGE_SIZE
            self._write_at(ib, _page(b"\xff" * 496, PTYPE_FPMAP, 0, ib))
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
        head = bytearray(564)
        head[0:4] = b"!BDN"
        struct.pack_into("<2sHHBBII", head, 8, b"SM", 23, 19, 1, 1, 0, 0)
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
