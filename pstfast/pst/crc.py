"""The CRC-32 of PST blocks and pages (MS-PST 5.3: the CRC-32 of RFC 1952 without its
final inversion, seeded with 0)."""

from __future__ import annotations

from isal.isal_zlib import crc32 as _crc32


def crc32(data: bytes | bytearray | memoryview) -> int:
    """The PST CRC (MS-PST 5.3): CRC-32 with a zero seed and no final inversion."""
    return _crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF  # isal: ~4x zlib's speed here, the same CRC-32
