"""The record contracts: email and attachment rows.

One list of columns per record drives every writer and the loader, so that NDJSON keys,
CSV columns, Parquet columns and staging-table columns cannot drift apart.

CSV dialect (PostgreSQL ``COPY ... (FORMAT csv, HEADER true)``):

* a header line with the column names, then one line per row, ``\\n`` line ends;
* NULL is an empty, unquoted field; every non-NULL text value is double-quoted
  (``""`` inside), so an empty string stays distinguishable from NULL;
* lists (``references``, ``to``, ``cc``, ``bcc``) are PostgreSQL array literals
  (``{"a@x","b@y"}``, ``\\`` and ``"`` backslash-escaped) holding addresses only;
  NDJSON carries the same lists as objects with names;
* timestamps are UTC ISO-8601 with a ``Z`` suffix; booleans are ``true``/``false``.

Text is cleaned once, when a record is built (:func:`clean_text`): PostgreSQL text cannot
hold NUL, so NUL becomes U+FFFD, as do unpaired surrogates. Every output format carries
the same cleaned text.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Sequence
from typing import Any

# (name, PostgreSQL type) in the exact order the loader COPYs.
EMAIL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("email_id", "uuid"),
    ("parent_email_id", "uuid"),
    ("project_id", "text"),
    ("pst_file_id", "text"),
    ("folder_path", "text"),
    ("message_class", "text"),
    ("internet_message_id", "text"),
    ("in_reply_to", "text"),
    ("references", "text[]"),
    ("conversation_index", "text"),
    ("conversation_topic", "text"),
    ("subject", "text"),
    ("normalized_subject", "text"),
    ("sender_name", "text"),
    ("sender_email", "text"),
    ("to", "text[]"),
    ("cc", "text[]"),
    ("bcc", "text[]"),
    ("sent_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("body_text", "text"),
    ("body_html", "text"),
    ("transport_headers", "text"),
    ("attachment_count", "integer"),
    ("size_bytes", "bigint"),
    ("importance", "smallint"),
    ("content_hash", "text"),
    ("extractor_version", "text"),
    # added with migration 006 (appended: the CSV column order is the COPY order)
    ("body_text_source", "text"),
    ("body_rtf", "text"),
    # migration 009: Exchange DNs (sender_email and "to"/cc/bcc hold the SMTP addresses)
    ("sender_x500", "text"),
    ("recipient_x500", "text[]"),
    # added with migration 010 (appended, as above): review metadata, folders, item kinds
    ("flags", "integer"),
    ("is_read", "boolean"),
    ("is_draft", "boolean"),
    ("created_at", "timestamptz"),
    ("modified_at", "timestamptz"),
    ("sensitivity", "smallint"),
    ("categories", "text[]"),
    ("sent_representing_name", "text"),
    ("sent_representing_email", "text"),
    ("folder_id", "uuid"),
    ("item_properties", "jsonb"),
)

#: one row per folder (folders.ndjson.gz / folders.csv.gz / folders.parquet; email_folders)
FOLDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("folder_id", "uuid"),
    ("parent_folder_id", "uuid"),
    ("project_id", "text"),
    ("pst_file_id", "text"),
    ("name", "text"),
    ("path", "text"),
    ("container_class", "text"),
    ("item_count", "integer"),
    ("unread_count", "integer"),
)

ATTACHMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("attachment_id", "uuid"),
    ("email_id", "uuid"),
    ("ordinal", "integer"),
    ("filename", "text"),
    ("mime_type", "text"),
    ("size", "bigint"),
    ("content_id", "text"),
    ("is_inline", "boolean"),
    ("method", "text"),
    ("sha256", "text"),
    ("storage_key", "text"),
    ("reference", "text"),  # migration 006: the path or URL of a by-reference attachment
)

EMAIL_FIELDS: tuple[str, ...] = tuple(name for name, _ in EMAIL_COLUMNS)
ATTACHMENT_FIELDS: tuple[str, ...] = tuple(name for name, _ in ATTACHMENT_COLUMNS)
FOLDER_FIELDS: tuple[str, ...] = tuple(name for name, _ in FOLDER_COLUMNS)
#: list columns: objects ``{"name", "email", "x500"}`` in NDJSON, addresses in CSV/Parquet
ADDRESS_LIST_FIELDS = ("to", "cc", "bcc")
ATTACHMENT_METHODS = ("by_value", "embedded_message", "ole", "reference")

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str | None) -> str | None:
    """Replace NUL and unpaired surrogates with U+FFFD (PostgreSQL text cannot hold them)."""
    if value is None or (value.isascii() and "\x00" not in value):  # the common case, checked in C
        return value
    return _BAD_TEXT.sub("\ufffd", value)


def format_timestamp(value: _dt.datetime | None) -> str | None:
    """UTC ISO-8601 with a ``Z`` suffix (microseconds only when present)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    text = value.isoformat()
    return text + "Z"


def _csv_quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def pg_array(items: Iterable[str | None]) -> str:
    """A PostgreSQL array literal of text items (a NULL item becomes an empty string)."""
    return "{" + ",".join(['"' + (item or "").replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items]) + "}"


def csv_field(value: Any) -> str:
    """One value in the CSV dialect described in the module docstring."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _csv_quote(value)
    if isinstance(value, _dt.datetime):
        return format_timestamp(value)  # type: ignore[return-value]
    if isinstance(value, dict):  # a jsonb value
        return _csv_quote(json_text(value))
    if isinstance(value, (list, tuple)):
        addresses = [v["email"] if isinstance(v, dict) else v for v in value]
        return _csv_quote(pg_array(addresses))
    raise TypeError(f"no CSV form for {type(value).__name__}")


def json_text(value: Any) -> str:
    """A jsonb value as the JSON text CSV and Parquet carry (timestamps ``...Z``, keys in order)."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode("utf-8")


def folder_path_text(names: Sequence[str]) -> str:
    """A folder's path in the folders output: its names joined by ``/``, a ``/`` or ``\\``
    inside a name escaped with ``\\`` (so ``a/b`` the folder and ``a``/``b`` differ)."""
    return "/".join(name.replace("\\", "\\\\").replace("/", "\\/") for name in names)


def csv_line(row: dict[str, Any], fields: Sequence[str]) -> str:
    """A whole CSV line (with its ``\\n``) for *row* in the order of *fields*."""
    return ",".join(csv_field(row.get(name)) for name in fields) + "\n"


def csv_header(fields: Sequence[str]) -> str:
    """The header line for *fields*."""
    return ",".join(fields) + "\n"
