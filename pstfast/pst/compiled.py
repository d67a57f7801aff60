"""The read path of one message, compiled with numba: NDB and LTP over the memory map.

:class:`~pstfast.pst.reader.PstReader` does the same work in Python, one B-tree lookup,
block, heap allocation and property at a time, about 200 µs per message. Here one call
reads a whole message (its property context, its recipient table's rows, its attachment
table and every attachment's property context) into reusable arrays: the B-tree walks,
block trailers, data trees (XBLOCK/XXBLOCK), subnode trees (SLBLOCK/SIBLOCK), heap page
maps, BTHs, property and table contexts.

The compiled code knows no error messages. It does every check the Python reader does and
stops at the first one that fails; the caller then reads that message with the Python
reader, which raises (or records) the specific error. So both readers give the same rows
and the same errors by construction, and ``tests/test_compiled_reader.py`` checks that the
rows are equal on every corpus file and on writer-made PSTs, damaged ones included.

Block checksums are verified after the call, with ISA-L's CRC-32 over the blocks the call
read (about 20x faster than a table-driven loop here); B-tree pages, read many times, are
checked once each, in the compiled code.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

import numpy as np
from numba import njit

from ..errors import CorruptPstError
from .crc import crc32
from .reader import _MPBB_I, _MPBB_R, _MPBB_S, PstReader, _Node

__all__ = ["CompiledMessage", "CompiledReader", "cache_ready", "warm_up"]

OK, FAIL, FULL = 0, 1, 2  # FULL: an output array is too small; the caller grows them and retries
NEED = 3  # a wVer 36 file's compressed block (its bid in n[N_NEED]) is not inflated yet: the caller
# inflates it into the pool and retries

# geometry (an int64 array, so that one compiled function serves ANSI, Unicode and 4 KiB-page files)
G_UNICODE, G_W, G_NBT, G_BBT, G_CRYPT, G_META, G_TRAILER, G_MAXBLOCK, G_PAGE, G_ALIGN, G_4K, G_HID = range(12)
G_POOL = 12  # wVer 36 files: geo[G_POOL + 2 * (bid >> 2)], [... + 1] = start and length of an inflated block
# in tables[POOL_AT:] (the same two arrays as for any file: no argument more to pass per call)
POOL_AT = 768  # tables: MS-PST's R, S and I byte tables, then the pool
# counters (n)
N_BUF, N_BLK, N_PROPS, N_CRCS, N_ATTS, N_SUBS, N_ROWS, N_NEED = range(8)

NID_ATTACHMENT_TABLE = 0x671
NID_RECIPIENT_TABLE = 0x692
OWNER_MESSAGE, OWNER_RECIPIENT, OWNER_ATTACHMENT = 0, 1, 2


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


# --- small readers (everything is int64: numba would turn mixed uint64/int64 into floats) ----


@njit(inline="always")
def _u16(a, p):  # pragma: no cover - compiled
    return np.int64(a[p]) | (np.int64(a[p + 1]) << 8)


@njit(inline="always")
def _u32(a, p):  # pragma: no cover - compiled
    return np.int64(a[p]) | (np.int64(a[p + 1]) << 8) | (np.int64(a[p + 2]) << 16) | (np.int64(a[p + 3]) << 24)


@njit(inline="always")
def _id(a, p, w):  # pragma: no cover - compiled
    """A bid, ib or nid field: 8 bytes in Unicode files, 4 in ANSI ones."""
    if w == 8:
        return _u32(a, p) | (_u32(a, p + 4) << 32)
    return _u32(a, p)


@njit(inline="always")
def _fixed_size(ptype):  # pragma: no cover - compiled
    """The size of a fixed-size property type (MS-OXCDATA 2.11.1), 0 for variable-size ones."""
    if ptype == 0x0B:
        return 1
    if ptype == 0x02:
        return 2
    if ptype == 0x03 or ptype == 0x04 or ptype == 0x0A:
        return 4
    if ptype == 0x05 or ptype == 0x06 or ptype == 0x07 or ptype == 0x14 or ptype == 0x40:
        return 8
    return 0


@njit
def _crc(a, start, end, table):  # pragma: no cover - compiled
    c = np.int64(0)
    for p in range(start, end):
        c = table[(c ^ a[p]) & 0xFF] ^ (c >> 8)
    return c


# --- NDB ----------------------------------------------------------------------------------


@njit
def _find(mm, geo, checked, crc_table, root, ptype, key):  # pragma: no cover - compiled
    """(status, value 1, value 2) of the B-tree leaf entry *key*: NBT (bidData, bidSub) or
    BBT (ib, cb). Mirrors PstReader._btree_find and _page_uncached, checks included."""
    w, meta, page, four_k = geo[G_W], geo[G_META], geo[G_PAGE], geo[G_4K]
    if four_k:
        trailer, crc_at, covered = 4072, 4076, 4072
    elif geo[G_UNICODE]:
        trailer, crc_at, covered = 496, 500, 496
    else:
        trailer, crc_at, covered = 500, 508, 500
    nbt_key64 = ptype == 0x81 and w == 8
    ib = root
    for _ in range(16):
        if ib <= 0 or ib + page > mm.shape[0] or ib & (page - 1):
            return FAIL, 0, 0
        if four_k:  # 16-bit cEnt and cEntMax
            count, ent, level = _u16(mm, ib + meta), np.int64(mm[ib + meta + 4]), mm[ib + meta + 5]
        else:
            count, ent, level = np.int64(mm[ib + meta]), np.int64(mm[ib + meta + 2]), mm[ib + meta + 3]
        if mm[ib + trailer] != ptype or mm[ib + trailer + 1] != ptype:
            return FAIL, 0, 0
        if not checked[ib >> 9]:
            if _u32(mm, ib + crc_at) != _crc(mm, ib, ib + covered, crc_table):
                return FAIL, 0, 0
            checked[ib >> 9] = 1
        if level > 0:
            size = 3 * w
        elif ptype == 0x81:
            size = 3 * w + 4
        else:
            size = 2 * w + 2
        if count * ent > meta or ent < size:
            return FAIL, 0, 0
        lo, hi = 0, count  # bisect_right over the entries' keys
        while lo < hi:
            mid = (lo + hi) // 2
            k = _id(mm, ib + mid * ent, w)
            if nbt_key64:
                k &= 0xFFFFFFFF
            if key < k:
                hi = mid
            else:
                lo = mid + 1
        if lo == 0:
            return FAIL, 0, 0
        e = ib + (lo - 1) * ent
        if level == 0:
            k = _id(mm, e, w)
            if nbt_key64:
                k &= 0xFFFFFFFF
            if k != key:
                return FAIL, 0, 0
            if ptype == 0x81:
                return OK, _id(mm, e + w, w), _id(mm, e + 2 * w, w)
            return OK, _id(mm, e + w, w), _u16(mm, e + 2 * w)
        ib = _id(mm, e + 2 * w, w)
    return FAIL, 0, 0


@njit
def _locate(mm, geo, checked, crc_table, bid, crcs, n):  # pragma: no cover - compiled
    """(status, ib, cb) of block *bid*, its trailer checked; its CRC is queued in *crcs*."""
    st, ib, cb = _find(mm, geo, checked, crc_table, geo[G_BBT], 0x80, bid & ~1)
    if st:
        return st, 0, 0
    size, align = geo[G_TRAILER], geo[G_ALIGN]
    total = (cb + size + align - 1) // align * align
    if ib < 0 or ib + total > mm.shape[0]:
        return FAIL, 0, 0
    t = ib + total - size
    if geo[G_4K] and bid & 2 and _u16(mm, t + 18) != cb and _u16(mm, t + 18) != 0:
        return FAIL, 0, 0  # a compressed internal block: left to the Python reader
    if geo[G_UNICODE]:
        t_crc, t_bid = _u32(mm, t + 4), _id(mm, t + 8, 8)
    else:
        t_bid, t_crc = _u32(mm, t + 4), _u32(mm, t + 8)
    if _u16(mm, t) != cb or (t_bid & ~1) != (bid & ~1):
        return FAIL, 0, 0
    if t_crc or geo[G_UNICODE]:  # old ANSI writers leave the CRC at 0
        if n[N_CRCS] >= crcs.shape[0]:
            return FULL, 0, 0
        crcs[n[N_CRCS], 0], crcs[n[N_CRCS], 1], crcs[n[N_CRCS], 2] = ib, cb, t_crc
        n[N_CRCS] += 1
    return OK, ib, cb


@njit
def _decode(mm, geo, tables, bid, ib, cb, buf, blk, n):  # pragma: no cover - compiled
    """Append the decoded data of block *bid* to *buf* and record it in *blk*."""
    if geo[G_4K]:
        t = ib + (cb + 24 + 511) // 512 * 512 - 24
        inflated = _u16(mm, t + 18)
        if inflated != 0 and inflated != cb:  # zlib-compressed: its inflated, decoded bytes are in the pool
            return _pooled(geo, tables, bid, inflated, buf, blk, n)
    if n[N_BUF] + cb > buf.shape[0] or n[N_BLK] >= blk.shape[0]:
        return FULL
    p = n[N_BUF]
    crypt = geo[G_CRYPT]
    # loops over views indexed from 0: numba then knows no index is negative and the copy
    # vectorizes (a slice assignment, or an index that could be negative, is ~35x slower)
    dst, src = buf[p:p + cb], mm[ib:ib + cb]
    if bid & 2 or crypt == 0:  # internal blocks are never encoded
        for i in range(cb):
            dst[i] = src[i]
    elif crypt == 1:
        inverse = tables[512:768]
        for i in range(cb):
            dst[i] = inverse[src[i]]
    else:  # cyclic, keyed by the low 32 bits of the bid (MS-PST 5.2)
        key = bid & 0xFFFFFFFF
        start = (key ^ (key >> 16)) & 0xFFFF
        r, s, inverse = tables[0:256], tables[256:512], tables[512:768]
        for i in range(cb):
            word = (start + i) & 0xFFFF
            lo, hi = word & 0xFF, word >> 8
            b = np.int64(src[i])
            b = inverse[(np.int64(s[(np.int64(r[(b + lo) & 0xFF]) + hi) & 0xFF]) - hi) & 0xFF]
            dst[i] = (np.int64(b) - lo) & 0xFF
    blk[n[N_BLK], 0], blk[n[N_BLK], 1] = p, cb
    n[N_BLK] += 1
    n[N_BUF] += cb
    return OK


@njit
def _pooled(geo, tables, bid, inflated, buf, blk, n):  # pragma: no cover - compiled
    """Append block *bid*'s inflated bytes from the pool (see G_POOL), or ask for them (NEED)."""
    at = G_POOL + 2 * (bid >> 2)
    if at + 1 >= geo.shape[0] or geo[at + 1] != inflated:
        n[N_NEED] = bid
        return NEED
    if n[N_BUF] + inflated > buf.shape[0] or n[N_BLK] >= blk.shape[0]:
        return FULL
    p, start = n[N_BUF], POOL_AT + geo[at]
    dst, src = buf[p:p + inflated], tables[start:start + inflated]
    for i in range(inflated):
        dst[i] = src[i]
    blk[n[N_BLK], 0], blk[n[N_BLK], 1] = p, inflated
    n[N_BLK] += 1
    n[N_BUF] += inflated
    return OK


@njit(inline="always")
def _data_block(mm, geo, checked, crc_table, tables, bid, buf, blk, crcs, n):  # pragma: no cover - compiled
    """Locate data block *bid* and append it, decoded, to *buf*: the status."""
    st, ib, cb = _locate(mm, geo, checked, crc_table, bid, crcs, n)
    if st:
        return st
    return _decode(mm, geo, tables, bid, ib, cb, buf, blk, n)


@njit
def _tree(mm, geo, checked, crc_table, tables, bid, buf, blk, crcs, n):  # pragma: no cover - compiled
    """Decode the data tree rooted at *bid* into *buf*: (status, first block, block count).
    Mirrors PstReader._data_blocks (XBLOCK and XXBLOCK)."""
    b0 = n[N_BLK]
    if bid == 0:
        return OK, b0, 0
    if not bid & 2:
        st = _data_block(mm, geo, checked, crc_table, tables, bid, buf, blk, crcs, n)
        return st, b0, n[N_BLK] - b0
    w = geo[G_W]
    st, ib, cb = _locate(mm, geo, checked, crc_table, bid, crcs, n)
    if st:
        return st, 0, 0
    if cb < 8 or mm[ib] != 0x01 or (mm[ib + 1] != 1 and mm[ib + 1] != 2):
        return FAIL, 0, 0
    level, count, total = mm[ib + 1], _u16(mm, ib + 2), _u32(mm, ib + 4)
    if 8 + count * w > cb or total > mm.shape[0]:  # more bytes than the file: blocks repeated
        return FAIL, 0, 0
    start = n[N_BUF]
    for i in range(count):
        child = _id(mm, ib + 8 + i * w, w)
        if level == 1:
            if child & 2:
                return FAIL, 0, 0
            st = _data_block(mm, geo, checked, crc_table, tables, child, buf, blk, crcs, n)
            if st:
                return st, 0, 0
            continue
        if not child & 2:
            return FAIL, 0, 0
        st, xib, xcb = _locate(mm, geo, checked, crc_table, child, crcs, n)
        if st:
            return st, 0, 0
        if xcb < 8 or mm[xib] != 0x01 or mm[xib + 1] != 1:  # an XXBLOCK's children are XBLOCKs
            return FAIL, 0, 0
        xcount, xtotal = _u16(mm, xib + 2), _u32(mm, xib + 4)
        if 8 + xcount * w > xcb:
            return FAIL, 0, 0
        xstart = n[N_BUF]
        for j in range(xcount):
            grand = _id(mm, xib + 8 + j * w, w)
            if grand & 2:
                return FAIL, 0, 0
            st = _data_block(mm, geo, checked, crc_table, tables, grand, buf, blk, crcs, n)
            if st:
                return st, 0, 0
        if n[N_BUF] - xstart != xtotal:
            return FAIL, 0, 0
    if n[N_BUF] - start != total:
        return FAIL, 0, 0
    return OK, b0, n[N_BLK] - b0


@njit
def _submap(mm, geo, checked, crc_table, bid, subs, crcs, n):  # pragma: no cover - compiled
    """Append the subnode tree rooted at *bid* to *subs* as (nid, bidData, bidSub) rows:
    (status, first row, row count). Mirrors PstReader._subnode_map_uncached; an SIBLOCK below
    an SIBLOCK is left to the Python reader."""
    s0 = n[N_SUBS]
    if bid == 0:
        return OK, s0, 0
    w = geo[G_W]
    start = 8 if w == 8 else 4
    pending = np.empty(1, dtype=np.int64)
    pending[0] = bid
    todo = 1
    depth = 0
    while todo:
        todo -= 1
        st, ib, cb = _locate(mm, geo, checked, crc_table, pending[todo], crcs, n)
        if st:
            return st, 0, 0
        if cb < 4 or mm[ib] != 0x02 or mm[ib + 1] > 1 or (mm[ib + 1] == 1 and depth > 0):
            return FAIL, 0, 0
        level, count = mm[ib + 1], _u16(mm, ib + 2)
        step = 3 * w if level == 0 else 2 * w
        if start + count * step > cb:
            return FAIL, 0, 0
        if level == 1:  # the SIBLOCK's children, in order: pushed last to first
            pending = np.empty(count, dtype=np.int64)
            for i in range(count):
                pending[count - 1 - i] = _id(mm, ib + start + i * step + w, w)
            todo = count
            depth = 1
            continue
        if n[N_SUBS] + count > subs.shape[0]:
            return FULL, 0, 0
        for i in range(count):
            off = ib + start + i * step
            row = n[N_SUBS]
            subs[row, 0] = _id(mm, off, w) & 0xFFFFFFFF
            subs[row, 1] = _id(mm, off + w, w)
            subs[row, 2] = _id(mm, off + 2 * w, w)
            n[N_SUBS] += 1
    return OK, s0, n[N_SUBS] - s0


@njit(inline="always")
def _subnode(subs, s0, ns, nid):  # pragma: no cover - compiled
    """The row of subnode *nid* (the last one, as a dict built from the rows keeps), or -1."""
    found = -1
    for i in range(s0, s0 + ns):
        if subs[i, 0] == nid:
            found = i
    return found


# --- LTP ----------------------------------------------------------------------------------


@njit
def _heap(buf, blk, b0, nb, hid, hid_shift):  # pragma: no cover - compiled
    """(status, start, end) in *buf* of heap allocation *hid*. Mirrors _Node.heap. *hid_shift*:
    where the HID's block index starts (16; 19 in wVer 36 files, whose allocation indexes have 14 bits)."""
    if hid == 0:
        return OK, 0, 0
    if hid & 0x1F:
        return FAIL, 0, 0
    index, block = (hid >> 5) & ((1 << (hid_shift - 5)) - 1), hid >> hid_shift
    if block >= nb:
        return FAIL, 0, 0
    bs, bl = blk[b0 + block, 0], blk[b0 + block, 1]
    if bl < 2:
        return FAIL, 0, 0
    ibm = _u16(buf, bs)
    if ibm + 4 > bl:
        return FAIL, 0, 0
    count = _u16(buf, bs + ibm)
    if ibm + 4 + 2 * (count + 1) > bl:
        return FAIL, 0, 0
    if index < 1 or index > count:
        return FAIL, 0, 0
    start, end = _u16(buf, bs + ibm + 4 + 2 * (index - 1)), _u16(buf, bs + ibm + 4 + 2 * index)
    if start > end or end > bl:
        return FAIL, 0, 0
    return OK, bs + start, bs + end


@njit
def _heap_root(buf, blk, b0, nb, client, hid_shift):  # pragma: no cover - compiled
    """(status, hidUserRoot) of the heap-on-node in blocks b0..b0+nb. Mirrors _Node.heap_header."""
    if nb == 0 or blk[b0, 1] < 12:
        return FAIL, 0
    p = blk[b0, 0]
    if buf[p + 2] != 0xEC or buf[p + 3] != client:
        return FAIL, 0
    return OK, _u32(buf, p + 4)


@njit
def _bth(buf, blk, b0, nb, hid, leaves, hid_shift):  # pragma: no cover - compiled
    """(status, key size, entry size, leaf count) of the BTH whose header is *hid*; the leaves
    (start, end in *buf*) go to *leaves* in key order. Mirrors _Node.bth_leaves."""
    st, s, e = _heap(buf, blk, b0, nb, hid, hid_shift)
    if st:
        return st, 0, 0, 0
    if e - s < 8 or buf[s] != 0xB5:
        return FAIL, 0, 0, 0
    key_size, ent_size, levels, root = np.int64(buf[s + 1]), np.int64(buf[s + 2]), buf[s + 3], _u32(buf, s + 4)
    if (key_size != 2 and key_size != 4 and key_size != 8 and key_size != 16) or ent_size == 0 or levels > 8:
        return FAIL, 0, 0, 0
    if root == 0:
        return OK, key_size, ent_size, 0
    # breadth first, one level at a time: the leaves come out in the same order as a depth-first walk
    level_hids = np.empty(1, dtype=np.int64)
    level_hids[0] = root
    step = key_size + 4
    for _ in range(levels):
        total = 0
        for index_hid in level_hids:
            st, s, e = _heap(buf, blk, b0, nb, index_hid, hid_shift)
            if st:
                return st, 0, 0, 0
            if e - s >= step:
                total += (e - s - step) // step + 1
        children = np.empty(total, dtype=np.int64)
        k = 0
        for index_hid in level_hids:
            _, s, e = _heap(buf, blk, b0, nb, index_hid, hid_shift)
            i = 0
            while i <= e - s - step:
                children[k] = _u32(buf, s + i + key_size)
                k += 1
                i += step
        ordered = np.sort(children)
        for j in range(1, ordered.shape[0]):
            if ordered[j] == ordered[j - 1]:
                return FAIL, 0, 0, 0  # a node named twice in one level: a loop (as _Node.bth_leaves)
        level_hids = children
    if level_hids.shape[0] > leaves.shape[0]:
        return FULL, 0, 0, 0
    record = key_size + ent_size
    for j in range(level_hids.shape[0]):
        st, s, e = _heap(buf, blk, b0, nb, level_hids[j], hid_shift)
        if st:
            return st, 0, 0, 0
        if (e - s) % record:
            return FAIL, 0, 0, 0
        leaves[j, 0], leaves[j, 1] = s, e
    return OK, key_size, ent_size, level_hids.shape[0]


@njit
def _value(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, n, hnid):  # pragma: no cover
    """(status, start, end) of the variable-size value behind *hnid*: a heap allocation or a
    whole subnode (decoded into *buf*). Mirrors _Node.hnid."""
    if hnid & 0x1F == 0:
        return _heap(buf, blk, b0, nb, hnid, geo[G_HID])
    row = _subnode(subs, s0, ns, hnid)
    if row < 0:
        return FAIL, 0, 0
    start = n[N_BUF]
    st, _, _ = _tree(mm, geo, checked, crc_table, tables, subs[row, 1], buf, blk, crcs, n)
    return st, start, n[N_BUF]


@njit
def _emit(props, n, owner, index, pid, ptype, start, end):  # pragma: no cover - compiled
    if n[N_PROPS] >= props.shape[0]:
        return FULL
    row = n[N_PROPS]
    props[row, 0], props[row, 1], props[row, 2] = owner, index, pid
    props[row, 3], props[row, 4], props[row, 5] = ptype, start, end
    n[N_PROPS] += 1
    return OK


@njit
def _pc(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, props, leaves, wanted, n,
        owner, index):  # pragma: no cover - compiled
    """Emit the wanted properties of the PC in the node (the first of a repeated id wins).
    Mirrors PstReader._pc_bytes."""
    st, root = _heap_root(buf, blk, b0, nb, 0xBC, geo[G_HID])
    if st:
        return st
    st, key_size, ent_size, count = _bth(buf, blk, b0, nb, root, leaves, geo[G_HID])
    if st:
        return st
    if key_size != 2 or ent_size != 6:
        return FAIL
    first = n[N_PROPS]
    for j in range(count):
        for p in range(leaves[j, 0], leaves[j, 1], 8):
            pid, ptype, hnid = _u16(buf, p), _u16(buf, p + 2), _u32(buf, p + 4)
            if not wanted[pid]:
                continue
            repeated = False
            for k in range(first, n[N_PROPS]):
                if props[k, 2] == pid:
                    repeated = True
            if repeated:
                continue
            size = _fixed_size(ptype)
            if size and size <= 4:  # stored in the HNID itself
                if n[N_BUF] + size > buf.shape[0]:
                    return FULL
                start = n[N_BUF]
                for i in range(size):
                    buf[start + i] = (hnid >> (8 * i)) & 0xFF
                n[N_BUF] += size
                end = start + size
            else:
                st, start, end = _value(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, n,
                                        hnid)
                if st:
                    return st
            st = _emit(props, n, owner, index, pid, ptype, start, end)
            if st:
                return st
    return OK


@njit
def _tc(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, props, leaves, wanted, n,
        owner, ids, rows_wanted):  # pragma: no cover - compiled
    """Read the table context in the node: (status, row count). Row ids go to *ids*; with
    *rows_wanted*, each row's wanted cells are emitted as properties of (owner, row number)
    and the count is of rows read (none without a row matrix, as in _tc_cells). Mirrors PstReader._tc_layout and _tc_cells (and _tc_row_ids, which also reads the rows' blocks)."""
    st, root = _heap_root(buf, blk, b0, nb, 0x7C, geo[G_HID])
    if st:
        return st, 0
    st, s, e = _heap(buf, blk, b0, nb, root, geo[G_HID])
    if st:
        return st, 0
    if e - s < 22 or buf[s] != 0x7C:
        return FAIL, 0
    ncols = np.int64(buf[s + 1])
    ceb_start, row_size = _u16(buf, s + 6), _u16(buf, s + 8)
    hid_index, hnid_rows = _u32(buf, s + 10), _u32(buf, s + 14)
    if e - s < 22 + 8 * ncols:
        return FAIL, 0
    if hid_index == 0:
        return OK, 0
    st, key_size, ent_size, count = _bth(buf, blk, b0, nb, hid_index, leaves, geo[G_HID])
    if st:
        return st, 0
    if count and (key_size != 4 or (ent_size != 2 and ent_size != 4)):
        return FAIL, 0
    r0, rn = 0, 0  # the row matrix's blocks
    if count and hnid_rows and row_size:
        if hnid_rows & 0x1F == 0:
            st, hs, he = _heap(buf, blk, b0, nb, hnid_rows, geo[G_HID])
            if st:
                return st, 0
            if n[N_BLK] >= blk.shape[0]:
                return FULL, 0
            r0, rn = n[N_BLK], 1
            blk[r0, 0], blk[r0, 1] = hs, he - hs
            n[N_BLK] += 1
        else:
            row = _subnode(subs, s0, ns, hnid_rows)
            if row < 0:
                return FAIL, 0
            st, r0, rn = _tree(mm, geo, checked, crc_table, tables, subs[row, 1], buf, blk, crcs, n)
            if st:
                return st, 0
    rows = 0
    for j in range(count):
        rows += (leaves[j, 1] - leaves[j, 0]) // (key_size + ent_size)
    if rows > ids.shape[0]:
        return FULL, 0
    k = 0
    for j in range(count):
        for p in range(leaves[j, 0], leaves[j, 1], key_size + ent_size):
            ids[k] = _u32(buf, p)
            k += 1
    if not rows_wanted:
        return OK, rows
    if rn == 0:
        return OK, 0
    # the wanted columns: (tag, offset, fixed size or 0 for an HNID, CEB byte, CEB mask)
    cols = np.empty((ncols, 5), dtype=np.int64)
    nc = 0
    for i in range(ncols):
        c = s + 22 + 8 * i
        tag, ib, cb, bit = _u32(buf, c), _u16(buf, c + 4), np.int64(buf[c + 6]), np.int64(buf[c + 7])
        if not wanted[tag >> 16]:
            continue
        size = _fixed_size(tag & 0xFFFF)
        if not (size and cb >= size) and cb != 4:
            return FAIL, 0
        cols[nc, 0], cols[nc, 1], cols[nc, 2] = tag, ib, size if size and cb >= size else 0
        cols[nc, 3], cols[nc, 4] = ceb_start + (bit >> 3), 0x80 >> (bit & 7)
        nc += 1
    if rn == 1:
        per_block = blk[r0, 1] // row_size
    else:
        per_block = geo[G_MAXBLOCK] // row_size  # rows never span blocks
    number = 0
    for j in range(count):
        for p in range(leaves[j, 0], leaves[j, 1], key_size + ent_size):
            row_index = _u16(buf, p + 4) if ent_size == 2 else _u32(buf, p + 4)
            if per_block == 0:
                return FAIL, 0
            block_no, slot = row_index // per_block, row_index % per_block
            start = slot * row_size
            if block_no >= rn or start + row_size > blk[r0 + block_no, 1]:
                return FAIL, 0
            base = blk[r0 + block_no, 0] + start
            first = n[N_PROPS]
            for c in range(nc):
                tag, ib, size, ceb, mask = cols[c, 0], cols[c, 1], cols[c, 2], cols[c, 3], cols[c, 4]
                if ceb >= row_size:
                    return FAIL, 0
                if not buf[base + ceb] & mask:
                    continue  # the cell existence bitmap says this cell is absent
                if ib + (size if size else 4) > row_size:
                    return FAIL, 0  # Python would read a cut-off cell: left to it
                if size:
                    vs, ve = base + ib, base + ib + size
                else:
                    st, vs, ve = _value(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, n,
                                        _u32(buf, base + ib))
                    if st:
                        return st, 0
                repeated = False
                for k in range(first, n[N_PROPS]):
                    if props[k, 2] == tag >> 16:
                        repeated = True  # read all the same: a bad repeated cell fails in Python too
                if repeated:
                    continue
                st = _emit(props, n, owner, number, tag >> 16, tag & 0xFFFF, vs, ve)
                if st:
                    return st, 0
            number += 1
    return OK, number


@njit
def _open(mm, geo, checked, crc_table, tables, bid_data, bid_sub, buf, blk, crcs, subs, n):  # pragma: no cover
    """A node: its data tree decoded, its subnode tree read: (status, b0, nb, s0, ns)."""
    st, b0, nb = _tree(mm, geo, checked, crc_table, tables, bid_data, buf, blk, crcs, n)
    if st:
        return st, 0, 0, 0, 0
    st, s0, ns = _submap(mm, geo, checked, crc_table, bid_sub, subs, crcs, n)
    return st, b0, nb, s0, ns


@njit
def _table(mm, geo, checked, crc_table, tables, bid_data, bid_sub, buf, blk, subs, crcs, props, leaves, wanted, n,
           owner, ids, rows_wanted):  # pragma: no cover - compiled
    """:func:`_tc` of the table context in the node (bid_data, bid_sub)."""
    st, b0, nb, s0, ns = _open(mm, geo, checked, crc_table, tables, bid_data, bid_sub, buf, blk, crcs, subs, n)
    if st:
        return st, 0
    return _tc(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, props, leaves, wanted, n,
               owner, ids, rows_wanted)


@njit(cache=True)
def _read_message(mm, geo, checked, crc_table, tables, wanted, nid, bid_data, bid_sub,
                  buf, blk, crcs, subs, props, leaves, ids, atts, n):  # pragma: no cover - compiled
    """Read one message: its PC, its recipient rows, its attachments' PCs. *nid* >= 0 looks the
    node up in the NBT; otherwise (bid_data, bid_sub) name it (an embedded message)."""
    n[:] = 0
    if nid >= 0:
        st, bid_data, bid_sub = _find(mm, geo, checked, crc_table, geo[G_NBT], 0x81, nid)
        if st:
            return st
    st, b0, nb, s0, ns = _open(mm, geo, checked, crc_table, tables, bid_data, bid_sub, buf, blk, crcs, subs, n)
    if st:
        return st
    st = _pc(mm, geo, checked, crc_table, tables, buf, blk, b0, nb, subs, s0, ns, crcs, props, leaves, wanted, n,
             OWNER_MESSAGE, 0)
    if st:
        return st
    row = _subnode(subs, s0, ns, NID_RECIPIENT_TABLE)
    if row >= 0:
        st, rows = _table(mm, geo, checked, crc_table, tables, subs[row, 1], subs[row, 2], buf, blk, subs, crcs, props,
                          leaves, wanted, n, OWNER_RECIPIENT, ids, True)
        if st:
            return st
        n[N_ROWS] = rows
    row = _subnode(subs, s0, ns, NID_ATTACHMENT_TABLE)
    if row < 0:
        return OK
    st, count = _table(mm, geo, checked, crc_table, tables, subs[row, 1], subs[row, 2], buf, blk, subs, crcs, props,
                       leaves, wanted, n, OWNER_ATTACHMENT, ids, False)
    if st:
        return st
    if count > atts.shape[0]:
        return FULL
    for i in range(count):
        # the row id is the attachment's subnode id
        row = _subnode(subs, s0, ns, ids[i])
        if row < 0:
            return FAIL
        atts[i, 0], atts[i, 1], atts[i, 2] = ids[i], subs[row, 1], subs[row, 2]
    n[N_ATTS] = count
    for i in range(count):
        st, ab0, anb, as0, ans = _open(mm, geo, checked, crc_table, tables, atts[i, 1], atts[i, 2], buf, blk, crcs,
                                       subs, n)
        if st:
            return st
        st = _pc(mm, geo, checked, crc_table, tables, buf, blk, ab0, anb, subs, as0, ans, crcs, props, leaves, wanted,
                 n, OWNER_ATTACHMENT, i)
        if st:
            return st
    return OK


# --- the Python side ---------------------------------------------------------------------

Values = dict[int, tuple[int, bytes]]


@dataclass
class CompiledMessage:
    """One message as :func:`_read_message` read it: raw values, as PstReader.raw_properties
    and raw_rows give them."""

    values: Values
    recipients: list[Values]
    attachments: list[tuple[Values, _Node]]  # (properties, the attachment's node)


_INITIAL_SIZE = 1 << 16  # 4 MiB of values, 16,384 blocks...: most messages need one call


class _Workspace:
    """The arrays a call writes into, reused from call to call; grown when one is too small."""

    def __init__(self) -> None:
        self.size = _INITIAL_SIZE
        self.n = np.zeros(8, dtype=np.int64)
        self._allocate()

    def _allocate(self) -> None:
        size = self.size
        self.buf = np.empty(size * 64, dtype=np.uint8)  # 4 MiB to start
        self.blk = np.empty((size // 4, 2), dtype=np.int64)
        self.crcs = np.empty((size // 4, 3), dtype=np.int64)
        self.subs = np.empty((size // 16, 3), dtype=np.int64)
        self.props = np.empty((size // 8, 6), dtype=np.int64)
        self.leaves = np.empty((size // 64, 2), dtype=np.int64)
        self.ids = np.empty(size // 16, dtype=np.int64)
        self.atts = np.empty((size // 16, 3), dtype=np.int64)

    def grow(self) -> bool:
        """Four times larger; False past 64 MiB of values: a message that big (huge
        attachments, or a damaged length) is read by the Python reader, which streams
        attachments to scratch instead of holding them."""
        if self.size >= 1 << 20:
            return False
        self.size *= 4
        self._allocate()
        return True

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.buf, self.blk, self.crcs, self.subs, self.props, self.leaves, self.ids, self.atts, self.n


def _constants(wanted: frozenset[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CRC table, MS-PST byte tables, wanted-id flags): the read-only arguments of every call."""
    flags = np.zeros(65536, dtype=np.uint8)
    flags[sorted(wanted)] = 1
    tables = np.frombuffer(_MPBB_R + _MPBB_S + _MPBB_I, dtype=np.uint8)
    return _crc_table(), tables, flags


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False  # the type every call passes: one compiled specialization
    return view


class _Pool:
    """Inflated (and decoded) blocks of a wVer 36 file for the compiled path, which cannot run
    zlib: the compiled call asks for a block (NEED), the Python reader inflates it here, the call
    runs again. The bytes follow the byte tables in ``tables``, their places follow the geometry
    in ``geo`` (indexed by bid >> 2: see G_POOL); emptied past 64 MiB, so a worker's memory stays
    bounded."""

    LIMIT = 64 << 20

    def __init__(self, geo: np.ndarray, tables: np.ndarray) -> None:
        self.geo = np.zeros(G_POOL + 2 * 4096, dtype=np.int64)
        self.geo[:G_POOL] = geo[:G_POOL]
        self.tables = np.empty(POOL_AT + (1 << 20), dtype=np.uint8)
        self.tables[:POOL_AT] = tables[:POOL_AT]
        self.used = 0
        self.resets = 0

    def add(self, bid: int, block: bytes) -> None:
        at, size = G_POOL + 2 * (bid >> 2), len(block)
        if self.used + size > self.LIMIT:
            self.geo[G_POOL:] = 0
            self.used = 0
            self.resets += 1
        if at + 1 >= self.geo.shape[0]:
            grown = np.zeros(max(at + 2, 2 * self.geo.shape[0]), dtype=np.int64)
            grown[:self.geo.shape[0]] = self.geo
            self.geo = grown
        if POOL_AT + self.used + size > self.tables.shape[0]:
            grown_tables = np.empty(max(POOL_AT + self.used + size, 2 * self.tables.shape[0]), dtype=np.uint8)
            grown_tables[:POOL_AT + self.used] = self.tables[:POOL_AT + self.used]
            self.tables = grown_tables
        start = POOL_AT + self.used
        self.tables[start:start + size] = np.frombuffer(block, dtype=np.uint8)
        self.geo[at], self.geo[at + 1] = self.used, size
        self.used += size


class CompiledReader:
    """Reads whole messages of an open :class:`PstReader` with the compiled path."""

    def __init__(self, pst: PstReader, wanted: frozenset[int]) -> None:
        if pst._mm is None:
            raise ValueError(f"PstReader for {pst.path} is closed")
        self.pst = pst
        self.wanted = wanted  # the property ids read (NativeItem reads the same ones)
        self._mm = np.frombuffer(pst._mm, dtype=np.uint8)
        self._view = memoryview(pst._mm)
        geo = np.array([int(pst.unicode), pst._id, pst._nbt_root, pst._bbt_root, pst.crypt, pst._page_meta,
                        pst._block_trailer, pst._max_block, pst._page_size, pst._align, int(pst.four_k),
                        pst._hid_shift],
                       dtype=np.int64)
        checked = np.zeros(len(pst._mm) // 512 + 1, dtype=np.uint8)  # calloc: untouched pages cost nothing
        crc_table, tables, flags = _constants(wanted)
        self._fixed = (self._mm, geo, checked, crc_table, tables, flags)
        self._pool = _Pool(geo, tables) if pst.four_k else None
        self._work = _Workspace()

    def _inflate(self, bid: int, resets: int) -> bool:
        return _inflate_into(self, bid, resets)

    def close(self) -> None:
        """Let go of the memory map (the PstReader can only close once nothing views it)."""
        self._view.release()
        del self._mm, self._fixed
        # numba's first call compiles, and its compiler keeps tracebacks (in reference cycles)
        # whose frames still hold the arguments, this map's array among them
        gc.collect()

    def message(self, nid: int) -> CompiledMessage | None:
        """Top-level message *nid*, or None when the compiled path stopped at a check (the
        Python reader then reads it and says what is wrong)."""
        return self._read(nid, 0, 0)

    def node(self, node: _Node) -> CompiledMessage | None:
        """The message in *node* (an embedded message's subnode), or None as for :meth:`message`."""
        return self._read(-1, node.bid_data, node.bid_sub)

    def _read(self, nid: int, bid_data: int, bid_sub: int) -> CompiledMessage | None:
        work = self._work
        resets = self._pool.resets if self._pool is not None else 0
        while True:
            status = _read_message(*self._fixed, nid, bid_data, bid_sub, *work.arrays())
            if status == NEED:
                if not self._inflate(int(work.n[N_NEED]), resets):
                    return None
                continue
            if status != FULL:
                break
            if not work.grow():
                self._work = _Workspace()  # memory stays flat: the Python reader takes it from here
                self.pst.release_pages()
                return None
        if status != OK:
            return None
        n = work.n
        view = self._view
        for ib, cb, expected in work.crcs[:n[N_CRCS]].tolist():
            if crc32(view[ib:ib + cb]) != expected:
                return None
        data = work.buf[:n[N_BUF]].tobytes()
        # rows come grouped by owner (the message, each recipient row, each attachment), each
        # id once per owner
        groups = {owner: {pid: (ptype, data[start:end]) for _, _, pid, ptype, start, end in rows}
                  for owner, rows in groupby(work.props[:n[N_PROPS]].tolist(), key=_OWNER)}
        nodes = [_Node(self.pst, nid_, bd, bs) for nid_, bd, bs in work.atts[:n[N_ATTS]].tolist()]
        if work.size > _INITIAL_SIZE * 16:  # grown for one huge message: a worker's memory stays flat
            self._work = _Workspace()
        return CompiledMessage(
            groups.get((OWNER_MESSAGE, 0), {}),
            [groups.get((OWNER_RECIPIENT, i), {}) for i in range(n[N_ROWS])],
            [(groups.get((OWNER_ATTACHMENT, i), {}), node) for i, node in enumerate(nodes)],
        )


_OWNER = itemgetter(0, 1)


def _inflate_into(reader: CompiledReader, bid: int, resets: int) -> bool:
    """Put block *bid*, inflated by the Python reader, in the pool; False when it cannot be
    read (the Python reader then says why) or the pool was emptied twice for one message."""
    pool = reader._pool
    if pool is None or pool.resets > resets + 1:
        return False
    try:
        block = reader.pst._block(bid, "compiled read")
    except CorruptPstError:
        return False
    pool.add(bid, block)
    mm, _, checked, crc_table, _, flags = reader._fixed
    reader._fixed = (mm, pool.geo, checked, crc_table, _read_only(pool.tables), flags)
    return True


def warm_up() -> float:
    """Compile the reader (or load it from numba's on-disk cache); return the seconds spent.

    One call over an empty map, with arguments of exactly the types a real reader passes
    (a read-only byte array stands for the memory map): it stops at once, compiled."""
    started = time.perf_counter()
    crc_table, tables, flags = _constants(frozenset())
    empty = np.frombuffer(bytes(512), dtype=np.uint8)
    geo, checked = np.zeros(G_POOL, dtype=np.int64), np.zeros(2, dtype=np.uint8)
    geo[G_PAGE], geo[G_ALIGN], geo[G_HID] = 512, 64, 16
    if _read_message(empty, geo, checked, crc_table, tables, flags, -1, 0, 0, *_Workspace().arrays()) != FAIL:
        raise RuntimeError("the compiled PST reader read a message from an empty file")
    return time.perf_counter() - started


def cache_ready() -> bool:
    """True when the compiled reader is in numba's on-disk cache (``pstfast warm-up``)."""
    from ..jit import in_cache

    return in_cache((_read_message,))
