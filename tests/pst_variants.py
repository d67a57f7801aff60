"""Test helper: variants of a writer-made PST that the writer itself does not produce."""

from __future__ import annotations

import struct
from pathlib import Path

from pstfast.pst.crc import crc32
from pstfast.pst.reader import _decrypt_cyclic


def blocks(data: bytes | bytearray) -> list[tuple[int, int, int]]:
    """(bid, ib, cb) of every block of an (undamaged) Unicode PST, from its block B-tree."""
    assert struct.unpack_from("<H", data, 10)[0] == 23
    out = []
    stack = [struct.unpack_from("<Q", data, 240)[0]]  # the block B-tree root page
    while stack:
        ib = stack.pop()
        count, _, size, level = data[ib + 488:ib + 492]
        for i in range(count):
            entry = ib + i * size
            if level:
                stack.append(struct.unpack_from("<Q", data, entry + 16)[0])
            else:
                out.append(struct.unpack_from("<QQH", data, entry))
    return sorted(out)


def rewrite_block(data: bytearray, ib: int, cb: int, content: bytes) -> None:
    """Replace the *cb* bytes of the block at *ib* and fix its trailer's CRC (Unicode PST)."""
    data[ib:ib + cb] = content
    trailer = ib + (cb + 16 + 63) // 64 * 64 - 16
    struct.pack_into("<I", data, trailer + 4, crc32(content))


def reencode_cyclic(src: Path, dst: Path) -> None:
    """Copy *src* (an unencoded Unicode PST) to *dst* with every data block cyclic-encoded.

    Cyclic encoding is its own inverse, so the reader's decoder doubles as the encoder;
    libpff then reads the result independently (and checks the block CRCs we rewrite).
    """
    data = bytearray(src.read_bytes())
    assert data[513] == 0
    data[513] = 2
    struct.pack_into("<I", data, 4, crc32(data[8:8 + 471]))
    struct.pack_into("<I", data, 524, crc32(data[8:8 + 516]))
    for bid, ib, cb in blocks(data):
        if not bid & 2:  # internal blocks are never encoded
            rewrite_block(data, ib, cb, _decrypt_cyclic(bytes(data[ib:ib + cb]), bid & 0xFFFFFFFF))
    dst.write_bytes(bytes(data))
