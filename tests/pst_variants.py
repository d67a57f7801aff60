"""Test helper: variants of a writer-made PST that the writer itself does not produce."""

from __future__ import annotations

import struct
from pathlib import Path

from pstfast.pst.ndb import crc32
from pstfast.pst.reader import _decrypt_cyclic


def reencode_cyclic(src: Path, dst: Path) -> None:
    """Copy *src* (an unencoded Unicode PST) to *dst* with every data block cyclic-encoded.

    Cyclic encoding is its own inverse, so the reader's decoder doubles as the encoder;
    libpff then reads the result independently (and checks the block CRCs we rewrite).
    """
    data = bytearray(src.read_bytes())
    assert struct.unpack_from("<H", data, 10)[0] == 23 and data[513] == 0
    data[513] = 2
    struct.pack_into("<I", data, 4, crc32(data[8:8 + 471]))
    struct.pack_into("<I", data, 524, crc32(data[8:8 + 516]))
    stack = [struct.unpack_from("<Q", data, 240)[0]]  # the block B-tree root page
    while stack:
        ib = stack.pop()
        count, _, size, level = data[ib + 488:ib + 492]
        for i in range(count):
            entry = ib + i * size
            if level:
                stack.append(struct.unpack_from("<Q", data, entry + 16)[0])
                continue
            bid, block_ib, cb = struct.unpack_from("<QQH", data, entry)
            if bid & 2:  # internal blocks are never encoded
                continue
            encoded = _decrypt_cyclic(bytes(data[block_ib:block_ib + cb]), bid & 0xFFFFFFFF)
            data[block_ib:block_ib + cb] = encoded
            trailer = block_ib + (cb + 16 + 63) // 64 * 64 - 16
            struct.pack_into("<I", data, trailer + 4, crc32(encoded))
    dst.write_bytes(bytes(data))
