"""The legacy baseline: the pipeline pstfast replaces, re-created faithfully.

One process; libpff through ``pypff`` directly (not pstfast's reader); a depth-first folder
walk; for every message one SQLAlchemy ORM object (``session.add`` + ``session.commit``
per row, as the Django-style legacy code did), and the same for every attachment, whose
bytes are written to a content-addressed folder. The ORM classes map onto pstfast's own
``email_messages`` / ``email_attachments`` tables (created by ``pstfast db migrate``), and
fill the same loader columns: ids, folder path, message class, Message-ID / In-Reply-To /
References, conversation index/topic, subject and normalized subject, sender, to/cc/bcc,
dates, bodies, transport headers, counts, size, importance, content hash.

Kept honest: nothing is slowed on purpose; properties are read once per record set into a
dict; the content hash uses the same canonical form as pstfast with the plain-Python
normalizers and the ``xxhash`` package. What it cannot do, and therefore does not spend
time on: pypff has no API for the message inside an embedded-message attachment, so those
attachments become attachment rows but no child email rows (this only makes the baseline
cheaper), and it does not thread, dedupe or index.

Run: ``python -m perf.legacy PST --db DSN [--attachments DIR] [--limit N]`` (``--limit``
stops after the first N top-level messages, for sampled runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import xxhash
from sqlalchemy import BigInteger, Boolean, DateTime, Integer, SmallInteger, Text, create_engine
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pstfast.extraction.kernels import ref_normalize_address, ref_normalize_subject, ref_normalize_whitespace

EXTRACTOR_VERSION = "legacy-pypff-orm"
_NS = uuid.UUID("6f1c3a52-2b8e-5d3f-9a41-7c0e5b2d8f10")  # pstfast.ids.NAMESPACE: same ids, comparable rows

# MAPI property tags read from record set 0
PR_IMPORTANCE, PR_MESSAGE_CLASS, PR_SENDER_EMAIL_ADDRESS, PR_SENDER_SMTP = 0x0017, 0x001A, 0x0C1F, 0x5D01
PR_CONVERSATION_INDEX, PR_ATTACH_SIZE = 0x0071, 0x0E20
PR_MESSAGE_SIZE, PR_INTERNET_MESSAGE_ID, PR_IN_REPLY_TO, PR_REFERENCES = 0x0E08, 0x1035, 0x1042, 0x1039
PR_RECIPIENT_TYPE, PR_DISPLAY_NAME, PR_EMAIL_ADDRESS, PR_SMTP_ADDRESS = 0x0C15, 0x3001, 0x3003, 0x39FE
PR_ATTACH_METHOD, PR_ATTACH_FILENAME, PR_ATTACH_LONG_FILENAME = 0x3705, 0x3704, 0x3707
PR_ATTACH_MIME_TAG, PR_ATTACH_CONTENT_ID, PR_ATTACH_FLAGS, PR_ATTACHMENT_HIDDEN = 0x370E, 0x3712, 0x3714, 0x7FFE
_STRING_TYPES = (0x001E, 0x001F)
_INT_TYPES = (0x0002, 0x0003, 0x0014, 0x000B)
_METHODS = {1: "by_value", 5: "embedded_message", 6: "ole", 2: "reference", 3: "reference", 4: "reference"}


class Base(DeclarativeBase):
    pass


class EmailMessage(Base):
    """An ``email_messages`` row (the loader's columns; stage columns stay NULL)."""

    __tablename__ = "email_messages"
    email_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    parent_email_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    project_id: Mapped[str] = mapped_column(Text)
    pst_file_id: Mapped[str] = mapped_column(Text)
    folder_path: Mapped[str | None] = mapped_column(Text)
    message_class: Mapped[str | None] = mapped_column(Text)
    internet_message_id: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[list[str] | None] = mapped_column("references", ARRAY(Text))
    conversation_index: Mapped[str | None] = mapped_column(Text)
    conversation_topic: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    normalized_subject: Mapped[str | None] = mapped_column(Text)
    sender_name: Mapped[str | None] = mapped_column(Text)
    sender_email: Mapped[str | None] = mapped_column(Text)
    to: Mapped[list[str] | None] = mapped_column("to", ARRAY(Text))
    cc: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    bcc: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    transport_headers: Mapped[str | None] = mapped_column(Text)
    attachment_count: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    importance: Mapped[int | None] = mapped_column(SmallInteger)
    content_hash: Mapped[str | None] = mapped_column(Text)
    extractor_version: Mapped[str | None] = mapped_column(Text)


class EmailAttachment(Base):
    """An ``email_attachments`` row."""

    __tablename__ = "email_attachments"
    attachment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    ordinal: Mapped[int | None] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    content_id: Mapped[str | None] = mapped_column(Text)
    is_inline: Mapped[bool | None] = mapped_column(Boolean)
    method: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(Text)
    storage_key: Mapped[str | None] = mapped_column(Text)


def _props(record_set: Any) -> dict[int, Any]:
    """tag -> Python value for one record set (strings, integers, raw bytes otherwise)."""
    out: dict[int, Any] = {}
    for entry in record_set.entries:
        tag, vtype = entry.get_entry_type(), entry.get_value_type()
        if tag in out:
            continue
        try:
            if vtype in _STRING_TYPES:
                out[tag] = (entry.get_data_as_string() or "").rstrip("\x00")
            elif vtype in _INT_TYPES:
                out[tag] = entry.get_data_as_integer()
            else:
                out[tag] = entry.get_data()
        except (OSError, ValueError):
            out[tag] = None
    return out


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL (pstfast.records.clean_text does the same)
    if text is None:
        return None
    return text.replace("\x00", "\ufffd").encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def _content_hash(sender: str | None, recipients: list[str], sent_at: dt.datetime | None, subject: str | None,
                  attachment_hashes: list[str], body: str | None) -> str:
    """pstfast's canonical form (see pstfast/worker.py ``_finish_rows``), one row at a time."""
    def strip(text: str) -> str:
        return text.replace("\x1f", "").replace("\x1e", "")

    when = ""
    if sent_at is not None:
        when = sent_at.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z"
    parts = (
        ref_normalize_address(sender) if sender else "",
        "\x1e".join(strip(a) for a in sorted(filter(None, (ref_normalize_address(r) for r in recipients)))),
        when,
        ref_normalize_subject(subject) if subject else "",
        "\x1e".join(sorted(attachment_hashes)),
    )
    head = "\x1f".join(("pstfast-content-v3", *(strip(p) for p in parts))) + "\x1f"
    return xxhash.xxh3_128_hexdigest((head + ref_normalize_whitespace(body or "")).encode("utf-8", "surrogatepass"))


class LegacyIngest:
    """One PST into the database, one ORM row at a time."""

    def __init__(self, pst_path: str | Path, dsn: str, attachments_dir: str | Path, *,
                 project_id: str = "legacy", pst_file_id: str | None = None) -> None:
        self.pst_path = Path(pst_path)
        self.engine = create_engine(_sqlalchemy_url(dsn))
        self.attachments_dir = Path(attachments_dir)
        self.attachments_dir.mkdir(parents=True, exist_ok=True)
        self.project_id = project_id
        self.pst_file_id = pst_file_id or hashlib.sha256(str(self.pst_path.resolve()).encode()).hexdigest()[:16]
        self.emails = 0
        self.attachments = 0

    def run(self, limit: int | None = None) -> dict[str, Any]:
        import pypff

        t0 = time.perf_counter()
        pst = pypff.file()
        pst.open(str(self.pst_path))
        opened = time.perf_counter() - t0  # libpff's open: quadratic in the item count, paid once
        with Session(self.engine) as session:
            self._limit = limit
            self._seen = 0
            try:
                self._walk(session, pst.get_root_folder(), ())
            except _Done:
                pass
        pst.close()
        self.engine.dispose()
        return {"emails": self.emails, "attachments": self.attachments, "top_level": self._seen,
                "seconds": time.perf_counter() - t0, "open_seconds": opened}

    def _walk(self, session: Session, folder: Any, names: tuple[str, ...]) -> None:
        path = "/".join(names)
        for index in range(folder.get_number_of_sub_messages()):
            if self._limit is not None and self._seen >= self._limit:
                raise _Done
            self._message(session, folder.get_sub_message(index), path)
            self._seen += 1
        for i in range(folder.get_number_of_sub_folders()):
            child = folder.get_sub_folder(i)
            self._walk(session, child, names + (child.get_name() or "",))

    def _message(self, session: Session, msg: Any, folder_path: str) -> None:
        props = _props(msg.get_record_set(0)) if msg.get_number_of_record_sets() else {}
        email_id = uuid.uuid5(_NS, f"email:{self.pst_file_id}:{msg.get_identifier()}")
        recipients: dict[int, list[str]] = {1: [], 2: [], 3: []}
        table = msg.recipients
        if table is not None:
            for record_set in table.record_sets:
                rp = _props(record_set)
                kind = (rp.get(PR_RECIPIENT_TYPE) or 1) & 0x0F
                address = rp.get(PR_SMTP_ADDRESS) or rp.get(PR_EMAIL_ADDRESS)
                if kind in recipients:
                    recipients[kind].append(_clean(address) or "")

        # attachments first: the content hash covers their sha256
        hashes: list[str] = []
        att_rows: list[EmailAttachment] = []
        count = msg.get_number_of_attachments()
        for ordinal in range(count):
            att = msg.get_attachment(ordinal)
            ap = _props(att.get_record_set(0)) if att.get_number_of_record_sets() else {}
            method = _METHODS.get(ap.get(PR_ATTACH_METHOD) or 1, "by_value")
            sha = key = None
            size = ap.get(PR_ATTACH_SIZE)
            if method == "by_value":
                size = att.get_size()
                data = att.read_buffer(size) if size else b""
                sha = hashlib.sha256(data).hexdigest()
                blob = self.attachments_dir / sha
                if not blob.exists():
                    blob.write_bytes(data)
                key = f"attachments/{sha}"
                hashes.append(sha)
            att_rows.append(EmailAttachment(
                attachment_id=uuid.uuid5(_NS, f"attachment:{email_id}/{ordinal}"), email_id=email_id,
                ordinal=ordinal, filename=_clean(ap.get(PR_ATTACH_LONG_FILENAME) or ap.get(PR_ATTACH_FILENAME)),
                mime_type=_clean(ap.get(PR_ATTACH_MIME_TAG)), size=size,
                content_id=_clean(ap.get(PR_ATTACH_CONTENT_ID)),
                is_inline=bool(ap.get(PR_ATTACH_CONTENT_ID)) or bool((ap.get(PR_ATTACH_FLAGS) or 0) & 0x4),
                method=method, sha256=sha, storage_key=key))

        subject = msg.get_subject()
        sender = props.get(PR_SENDER_SMTP) or props.get(PR_SENDER_EMAIL_ADDRESS)
        sent_at, body = _utc(msg.get_client_submit_time()), msg.get_plain_text_body()
        body_text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        html = msg.get_html_body()
        html_text = html.decode("utf-8", "replace") if isinstance(html, bytes) else html
        references = props.get(PR_REFERENCES)
        conv_index = props.get(PR_CONVERSATION_INDEX)  # pypff's accessor drops the last byte
        all_recipients = recipients[1] + recipients[2] + recipients[3]

        row = EmailMessage(
            email_id=email_id, parent_email_id=None, project_id=self.project_id, pst_file_id=self.pst_file_id,
            folder_path=_clean(folder_path), message_class=_clean(props.get(PR_MESSAGE_CLASS)),
            internet_message_id=_clean(props.get(PR_INTERNET_MESSAGE_ID)),
            in_reply_to=_clean(props.get(PR_IN_REPLY_TO)),
            references=[_clean(r) for r in references.split()] if references else [],
            conversation_index=conv_index.hex() if conv_index else None,
            conversation_topic=_clean(msg.get_conversation_topic()), subject=_clean(subject),
            normalized_subject=ref_normalize_subject(_clean(subject)) if subject else None,
            sender_name=_clean(msg.get_sender_name()), sender_email=_clean(sender),
            to=recipients[1], cc=recipients[2], bcc=recipients[3],
            sent_at=sent_at, received_at=_utc(msg.get_delivery_time()),
            body_text=_clean(body_text), body_html=_clean(html_text),
            transport_headers=_clean(msg.get_transport_headers()), attachment_count=count,
            size_bytes=props.get(PR_MESSAGE_SIZE), importance=props.get(PR_IMPORTANCE),
            content_hash=_content_hash(_clean(sender), all_recipients, sent_at, _clean(subject), hashes,
                                       _clean(body_text)),
            extractor_version=EXTRACTOR_VERSION)
        session.add(row)
        session.commit()  # the legacy code committed every row
        self.emails += 1
        for att_row in att_rows:
            session.add(att_row)
            session.commit()
            self.attachments += 1


class _Done(Exception):
    pass


def _sqlalchemy_url(dsn: str) -> str:
    """A libpq URI or key=value DSN as a SQLAlchemy URL for the psycopg 3 driver."""
    if dsn.startswith("postgresql://") or dsn.startswith("postgres://"):
        return "postgresql+psycopg://" + dsn.split("://", 1)[1]
    if dsn.startswith("postgresql+"):
        return dsn
    from urllib.parse import quote

    return "postgresql+psycopg:///?" + "&".join(
        f"{k}={quote(v)}" for k, v in (part.split("=", 1) for part in dsn.split()))


def legacy_ingest(pst_path: str | Path, dsn: str, attachments_dir: str | Path, *, limit: int | None = None,
                  project_id: str = "legacy", pst_file_id: str | None = None) -> dict[str, Any]:
    """Run the legacy pipeline on *pst_path* into *dsn* (schema already migrated)."""
    return LegacyIngest(pst_path, dsn, attachments_dir, project_id=project_id, pst_file_id=pst_file_id).run(limit)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.legacy", description=__doc__.splitlines()[0])
    p.add_argument("pst")
    p.add_argument("--db", required=True, help="PostgreSQL DSN (the schema must exist: pstfast db migrate)")
    p.add_argument("--attachments", default=None, help="folder for attachment bytes (default: a temp folder)")
    p.add_argument("--limit", type=int, default=None, help="stop after N top-level messages")
    p.add_argument("--project-id", default="legacy")
    args = p.parse_args(argv)
    import tempfile

    folder = args.attachments or tempfile.mkdtemp(prefix="legacy-att-")
    print(json.dumps(legacy_ingest(args.pst, args.db, folder, limit=args.limit, project_id=args.project_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
