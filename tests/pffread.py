"""Test helper: every message of a PST as plain dicts, read with libpff's record sets.

Independent of pstfast's extractor (it reads raw MAPI properties), so tests can hold
both the PST writer and the extractor to a ground truth.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pypff

_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def props(record_set: Any) -> dict[int, Any]:
    """{property id: record entry} of one record set."""
    out = {}
    for i in range(record_set.number_of_entries):
        entry = record_set.get_entry(i)
        out[entry.entry_type] = entry
    return out


def text(entries: dict[int, Any], prop_id: int) -> str | None:
    entry = entries.get(prop_id)
    if entry is None or entry.data is None:
        return None
    return entry.data.decode("utf-16-le") if entry.value_type == 0x1F else entry.data.decode("latin-1")


def time(entries: dict[int, Any], prop_id: int) -> str | None:
    entry = entries.get(prop_id)
    if entry is None:
        return None
    ticks = int.from_bytes(entry.data, "little")
    value = _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _address(addrtype: str | None, address: str | None, smtp: str | None) -> dict[str, Any]:
    """An address as stored: the SMTP address (None when an Exchange entry has none), the
    Exchange DN when the address type is EX, and whether the item holds an SMTP address."""
    if (addrtype or "").upper() == "EX":
        return {"email": smtp, "x500": address, "smtp_known": smtp is not None}
    return {"email": smtp or address, "x500": None, "smtp_known": True}


def message(m: Any) -> dict[str, Any]:
    """The fields the synth truth holds, read from libpff."""
    p = props(m.get_record_set(0))
    recipients: dict[str, list[dict[str, str]]] = {"to": [], "cc": [], "bcc": []}
    if m.recipients is not None:
        for i in range(m.recipients.number_of_record_sets):
            r = props(m.recipients.get_record_set(i))
            kind = {1: "to", 2: "cc", 3: "bcc"}[r[0x0C15].data_as_integer]
            recipients[kind].append({"name": text(r, 0x3001), **_address(text(r, 0x3002), text(r, 0x3003),
                                                                          text(r, 0x39FE))})
    attachments = []
    for i in range(m.number_of_attachments):
        a = m.get_attachment(i)
        ap = props(a.get_record_set(0))
        method = ap[0x3705].data_as_integer
        row: dict[str, Any] = {
            "ordinal": i,
            "filename": text(ap, 0x3707),
            "mime_type": text(ap, 0x370E),
            "content_id": text(ap, 0x3712),
            "method": {5: "embedded_message", 6: "ole", 2: "reference"}.get(method, "by_value"),
            "reference": text(ap, 0x370D) or text(ap, 0x3708) if method == 2 else None,
        }
        if method == 2:  # by reference: libpff has no bytes for it
            row["size"], row["sha256"] = 0, None
        elif method != 5:  # libpff's Python binding cannot open embedded messages
            data = a.read_buffer(a.size) if a.size else b""
            row["size"] = len(data)
            row["sha256"] = hashlib.sha256(data).hexdigest()
            row["is_inline"] = bool(ap[0x7FFE].data_as_boolean) if 0x7FFE in ap else False
        attachments.append(row)
    html = m.html_body
    return {
        "nid": m.identifier,
        "message_class": text(p, 0x001A),
        "subject": text(p, 0x0037),
        "sender_name": text(p, 0x0C1A),
        **{f"sender_{k}": v for k, v in _address(text(p, 0x0C1E), text(p, 0x0C1F), text(p, 0x5D01)).items()},
        **recipients,
        "sent_at": time(p, 0x0039),
        "received_at": time(p, 0x0E06),
        "body_text": text(p, 0x1000),
        "body_html": html.decode("utf-8") if html else None,
        "body_rtf": _rtf(m),
        "transport_headers": text(p, 0x007D),
        "internet_message_id": text(p, 0x1035),
        "in_reply_to": text(p, 0x1042),
        "references": (text(p, 0x1039) or "").split(),
        "conversation_index": p[0x0071].data.hex() if 0x0071 in p else None,
        "conversation_topic": text(p, 0x0070),
        "importance": p[0x0017].data_as_integer if 0x0017 in p else None,
        "attachments": attachments,
    }


def _rtf(message: Any) -> str | None:
    """libpff's decompressed RTF body (pypff decompresses PR_RTF_COMPRESSED itself)."""
    try:
        body = message.get_rtf_body()
    except OSError:
        return None
    return bytes(body).rstrip(b"\x00").decode("latin-1") if body else None


def walk(path: str) -> Iterator[tuple[str, Any]]:
    """(folder path, pypff message) for every message, folders depth first."""
    handle = pypff.file()
    handle.open(path)
    try:
        root = handle.get_root_folder()
        stack = [(root.get_sub_folder(i), "") for i in range(root.number_of_sub_folders)]
        while stack:
            folder, parent = stack.pop()
            here = f"{parent}/{folder.name}" if parent else folder.name
            for i in range(folder.number_of_sub_messages):
                yield here, folder.get_sub_message(i)
            stack.extend((folder.get_sub_folder(i), here) for i in range(folder.number_of_sub_folders))
    finally:
        handle.close()
