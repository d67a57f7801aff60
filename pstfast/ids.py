"""Deterministic identifiers: the same PST always yields the same ids.

``email_id`` is a UUIDv5 of the pst_file_id and the item's node id; an embedded message's
id derives from its parent's id and the attachment ordinal path, so ids never depend on
the worker count or the order in which shards finish.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid

from .errors import UsageError

#: fixed namespace for every pstfast UUIDv5 (never change: ids are stored in databases)
NAMESPACE = uuid.UUID("6f1c3a52-2b8e-5d3f-9a41-7c0e5b2d8f10")


_NAMESPACE_BYTES = NAMESPACE.bytes

#: the one rule for every identifier that comes from outside (CLI, library, queue body) and
#: becomes part of a path, an object key or a query: 1-64 of letters, digits, '.', '_', '-',
#: starting with a letter or digit (so never '..', never an option like '-x', never a NUL)
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_identifier(value: object, what: str = "pst_file_id") -> str:
    """*value* as a valid identifier, else :class:`UsageError` saying what is allowed.

    Raises:
        UsageError: *value* is not a string of 1-64 letters, digits, '.', '_' or '-' that
            starts with a letter or digit.
    """
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value) or ".." in value:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:80]) + "..."
        raise UsageError(f"{what} {shown}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` (RFC 4122), without building UUID objects: it runs
    for every row and attachment."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def email_id(pst_file_id: str, node_id: int) -> str:
    """Id of a top-level item (message, contact, ...) identified by its node id."""
    return uuid5(f"email:{pst_file_id}:{node_id}")


def folder_id(pst_file_id: str, node_id: int) -> str:
    """Id of a folder: from its node id, unique in the PST whatever the folder names."""
    return uuid5(f"folder:{pst_file_id}:{node_id}")


def embedded_email_id(parent_email_id: str, ordinal: int) -> str:
    """Id of the message embedded in attachment *ordinal* of *parent_email_id*."""
    return uuid5(f"embedded:{parent_email_id}/{ordinal}")


def attachment_id(email_id_: str, ordinal: int) -> str:
    """Id of attachment *ordinal* of *email_id_*."""
    return uuid5(f"attachment:{email_id_}/{ordinal}")


def default_pst_file_id(sha256_hex: str) -> str:
    """The pst_file_id of an input nobody named: the first 16 hex digits of its sha256."""
    return sha256_hex[:16]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
