"""Damaged variants of a good PST, for reliability tests: ``pstfast damage``.

Each variant is derived deterministically from a good file and says what a careful
reader should still recover from it:

``truncated``
    The file cut to half its length. The node and block B-trees (written last) are gone,
    so nothing can be listed: a reader must fail with one clear file-level error.
``flipped_block``
    The first 16 bytes of one message's property block flipped (its node id is in
    ``details["nid"]``): the heap header is gone and the block's CRC no longer matches,
    so that message cannot be read; every other message, folder and attachment must
    still come out.
``broken_btree``
    A node B-tree leaf page that indexes only messages, with the block ids of every
    entry scrambled and its CRC left stale (node ids and parents stay). The messages it
    lists (``details["nids"]``) are still listed in their folders but cannot be read;
    the folders and every message indexed by other pages must still come out.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..pst.peers import check_pst_file
from ..pst.props import NID_TYPE_NORMAL_MESSAGE

KINDS = ("truncated", "flipped_block", "broken_btree")


@dataclass
class DamagedVariant:
    """One damaged copy of a PST and what a reader should recover from it."""

    kind: str
    path: Path
    description: str
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class _Page:
    ib: int
    level: int
    entries: list[bytes]


def _pages(data: bytes | bytearray | memoryview, ib: int) -> Iterator[_Page]:
    """Every page of the B-tree rooted at *ib* (Unicode layout), depth first."""
    page = data[ib : ib + 512]
    count, _, size, level = page[488], page[489], page[490], page[491]
    entries = [bytes(page[i * size : (i + 1) * size]) for i in range(count)]
    yield _Page(ib, level, entries)
    if level:
        for entry in entries:
            yield from _pages(data, struct.unpack_from("<Q", entry, 16)[0])


def _btree_roots(data: bytes) -> tuple[int, int]:
    if struct.unpack_from("<H", data, 10)[0] < 23:
        raise UsageError("damage works on Unicode PSTs (wVer 23) only")
    nbt_ib = struct.unpack_from("<Q", data, 224)[0]
    bbt_ib = struct.unpack_from("<Q", data, 240)[0]
    return nbt_ib, bbt_ib


def damage(
    pst: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, kinds: Sequence[str] | None = None
) -> list[DamagedVariant]:
    """Write the damaged variants of *pst* into *out_dir*; return what was written.

    Raises:
        InputError: *pst* is not a readable PST.
        UsageError: an unknown kind, or *out_dir* cannot be written.
    """
    source = check_pst_file(pst)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    if not os.access(target, os.W_OK):
        raise UsageError(f"cannot write into {target}: not writable")
    chosen = list(kinds or KINDS)
    unknown = [k for k in chosen if k not in KINDS]
    if unknown:
        raise UsageError(f"unknown damage kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    data = source.read_bytes()
    nbt_ib, bbt_ib = _btree_roots(data)
    stem = source.stem
    variants = []
    if "truncated" in chosen:
        path = target / f"{stem}.truncated.pst"
        path.write_bytes(data[: len(data) // 2])
        variants.append(DamagedVariant("truncated", path, "cut to half its length: B-trees lost; expect a file-level error"))
    if "flipped_block" in chosen:
        variants.append(_flipped_block(data, nbt_ib, bbt_ib, target / f"{stem}.flipped_block.pst"))
    if "broken_btree" in chosen:
        variants.append(_broken_btree(data, nbt_ib, target / f"{stem}.broken_btree.pst"))
    return variants


def _message_entries(data: bytes, nbt_ib: int) -> list[tuple[int, int, int]]:
    """(nid, bidData, parent) of every top-level message, in node id order."""
    out = []
    for page in _pages(data, nbt_ib):
        if page.level:
            continue
        for entry in page.entries:
            nid, bid_data, _, parent, _ = struct.unpack("<QQQII", entry)
            if nid & 0x1F == NID_TYPE_NORMAL_MESSAGE:
                out.append((nid & 0xFFFFFFFF, bid_data, parent))
    return sorted(out)


def _flipped_block(data: bytes, nbt_ib: int, bbt_ib: int, path: Path) -> DamagedVariant:
    messages = _message_entries(data, nbt_ib)
    if not messages:
        raise UsageError("flipped_block needs a PST with at least one message")
    nid, bid_data, _ = messages[len(messages) // 2]
    blocks = {}
    for page in _pages(data, bbt_ib):
        if not page.level:
            for entry in page.entries:
                bid, ib, cb, _, _ = struct.unpack("<QQHHI", entry)
                blocks[bid & ~1] = (ib, cb)
    ib, cb = blocks[bid_data & ~1]
    damaged = bytearray(data)
    for i in range(ib, ib + min(16, cb)):
        damaged[i] ^= 0xA5
    path.write_bytes(damaged)
    return DamagedVariant(
        "flipped_block", path,
        f"heap header of message 0x{nid:x} flipped: that message is lost, the rest must come out",
        {"nid": nid},
    )


def _broken_btree(data: bytes, nbt_ib: int, path: Path) -> DamagedVariant:
    candidates = [
        page for page in _pages(data, nbt_ib)
        if page.level == 0 and page.entries
        and all(struct.unpack_from("<Q", e)[0] & 0x1F == NID_TYPE_NORMAL_MESSAGE for e in page.entries)
    ]
    if not candidates:
        raise UsageError("broken_btree needs a PST with a node B-tree page of messages only (write more messages)")
    page = candidates[len(candidates) // 2]
    nids = [struct.unpack_from("<Q", e)[0] & 0xFFFFFFFF for e in page.entries]
    damaged = bytearray(data)
    for index in range(len(page.entries)):
        start = page.ib + index * 32 + 8  # bidData and bidSub of entry *index*
        for i in range(start, start + 16):
            damaged[i] ^= 0x5A
    path.write_bytes(damaged)
    return DamagedVariant(
        "broken_btree", path,
        f"node B-tree page at 0x{page.ib:x} scrambled (CRC stale): its {len(nids)} messages cannot be read, "
        "the rest must come out",
        {"nids": nids, "page_offset": page.ib},
    )

