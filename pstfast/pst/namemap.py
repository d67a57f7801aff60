"""The name-to-id map (MS-PST 2.4.7): named properties by property set and LID or name.

Properties with ids 0x8000 and up are *named*: what such an id means differs from file to
file, and node ``NID_NAME_TO_ID_MAP`` (0x61) says it. Its property context holds three
streams: PidTagNameidStreamGuid (16-byte property-set GUIDs), PidTagNameidStreamEntry
(8-byte NAMEID records: ``dwPropertyID`` — a LID, or the offset of a name in the string
stream — then ``wGuid`` = GUID index << 1 | N (N: a string name), then ``wPropIdx``: the
property's id is 0x8000 + wPropIdx) and PidTagNameidStreamString (4-byte length, UTF-16LE
name, padded to 4 bytes). GUID index 1 is PS_MAPI, 2 PS_PUBLIC_STRINGS, 3 and up the
GUID stream's entries.

Readers resolve the map once per file (:func:`resolve`); :class:`NameMapBuilder` writes one
the way Outlook does (the streams plus the hash buckets, PidTagNameidBucketCount 251).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping

from .crc import crc32
from .props import (
    NAMED_PROPERTIES,
    PR_NAMEID_STREAM_ENTRY,
    PR_NAMEID_STREAM_GUID,
    PR_NAMEID_STREAM_STRING,
    PS_MAPI,
    PS_PUBLIC_STRINGS,
)

log = logging.getLogger(__name__)

NameKey = tuple[bytes, "int | str"]  # (property set GUID as stored, LID or name)
BUCKET_COUNT = 251  # what Outlook writes (MS-PST 2.4.7.5)


def parse(values: Mapping[int, tuple[int, bytes | None]]) -> dict[NameKey, int]:
    """(property set, LID or name) -> property id, from the raw properties of node 0x61.

    A damaged record (a GUID index or a string offset out of range) is skipped, never
    fatal: the properties it names stay unresolved."""
    guids = (values.get(PR_NAMEID_STREAM_GUID) or (0, b""))[1] or b""
    entries = (values.get(PR_NAMEID_STREAM_ENTRY) or (0, b""))[1] or b""
    strings = (values.get(PR_NAMEID_STREAM_STRING) or (0, b""))[1] or b""
    out: dict[NameKey, int] = {}
    skipped = 0
    for offset in range(0, len(entries) - 7, 8):
        ident, wguid, index = struct.unpack_from("<IHH", entries, offset)
        guid_index = wguid >> 1
        if guid_index == 1:
            guid = PS_MAPI
        elif guid_index == 2:
            guid = PS_PUBLIC_STRINGS
        elif 16 * (guid_index - 3) + 16 <= len(guids) and guid_index >= 3:
            guid = guids[16 * (guid_index - 3):16 * (guid_index - 2)]
        else:
            skipped += 1
            continue
        name: int | str = ident
        if wguid & 1:
            if ident + 4 > len(strings):
                skipped += 1
                continue
            size = struct.unpack_from("<I", strings, ident)[0]
            raw = strings[ident + 4:ident + 4 + size]
            if len(raw) != size:
                skipped += 1
                continue
            name = raw.decode("utf-16-le", "replace")
        out.setdefault((guid, name), 0x8000 + index)
    if skipped:
        log.debug("name-to-id map: %d damaged records skipped", skipped)
    return out


def resolve(name_map: Mapping[NameKey, int]) -> dict[str, int]:
    """pstfast's names of the named properties it reads (:data:`NAMED_PROPERTIES`) -> this
    file's property ids; a property the file never names is absent. String names match
    case-insensitively (MAPI compares them so)."""
    folded = {(guid, name.lower() if isinstance(name, str) else name): pid for (guid, name), pid in name_map.items()}
    out: dict[str, int] = {}
    for key, (guid, name, _) in NAMED_PROPERTIES.items():
        pid = folded.get((guid, name.lower() if isinstance(name, str) else name))
        if pid is not None:
            out[key] = pid
    return out


class NameMapBuilder:
    """Allocates named-property ids as the writer first uses them and builds node 0x61."""

    def __init__(self) -> None:
        self._ids: dict[NameKey, int] = {}
        self._guids: list[bytes] = []

    def id(self, guid: bytes, name: int | str) -> int:
        """The property id (0x8000 + n) of (*guid*, *name*), allocated on first use."""
        key = (guid, name)
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = 0x8000 + len(self._ids)
            if guid not in (PS_MAPI, PS_PUBLIC_STRINGS) and guid not in self._guids:
                self._guids.append(guid)
        return found

    def named(self, key: str) -> int:
        """The id of :data:`NAMED_PROPERTIES` entry *key*."""
        guid, name, _ = NAMED_PROPERTIES[key]
        return self.id(guid, name)

    def tag(self, key: str) -> int:
        """The full property tag (id << 16 | type) of :data:`NAMED_PROPERTIES` entry *key*."""
        return (self.named(key) << 16) | NAMED_PROPERTIES[key][2]

    def properties(self) -> dict[int, object]:
        """The property context of node 0x61: streams and buckets (tags with types)."""
        guid_stream = b"".join(self._guids)
        entry_stream = bytearray()
        string_stream = bytearray()
        buckets: dict[int, bytearray] = {}
        for (guid, name), pid in self._ids.items():
            if guid == PS_MAPI:
                guid_index = 1
            elif guid == PS_PUBLIC_STRINGS:
                guid_index = 2
            else:
                guid_index = 3 + self._guids.index(guid)
            if isinstance(name, str):
                encoded = name.encode("utf-16-le")
                ident = len(string_stream)
                string_stream += struct.pack("<I", len(encoded)) + encoded
                string_stream += b"\0" * (-len(string_stream) % 4)
                key = (guid_index << 1) | 1
                bucket_hash = crc32(encoded)  # MS-PST 2.4.7.4: the name's CRC
            else:
                ident, key, bucket_hash = name, guid_index << 1, name
            record = struct.pack("<IHH", ident, key, pid - 0x8000)
            entry_stream += record
            buckets.setdefault((bucket_hash ^ key) % BUCKET_COUNT, bytearray()).extend(record)
        props: dict[int, object] = {
            (0x0001 << 16) | 0x0003: BUCKET_COUNT,
            (PR_NAMEID_STREAM_GUID << 16) | 0x0102: guid_stream,
            (PR_NAMEID_STREAM_ENTRY << 16) | 0x0102: bytes(entry_stream),
            (PR_NAMEID_STREAM_STRING << 16) | 0x0102: bytes(string_stream),
        }
        for bucket, records in sorted(buckets.items()):
            props[((0x1000 + bucket) << 16) | 0x0102] = bytes(records)
        return props


__all__ = ["BUCKET_COUNT", "NameKey", "NameMapBuilder", "parse", "resolve"]
