"""Synthetic PSTs with a ground truth: ``pstfast synth``.

From a seed, :func:`synth` writes a Unicode PST with a nested folder tree (non-ASCII
names), reply threads (Message-ID / In-Reply-To / References and Outlook conversation
indexes that agree), exact duplicates planted across folders, messages without a
Message-ID, attachments by value (shared bytes, some over 1 MB), inline images with a
Content-ID, and embedded messages. The same seed gives the same bytes.

The ground truth (``--truth``) is written from the generator's own values, never read
back from the PST, so tests can hold readers (libpff, readpst, pstfast extract) to it.
It is streamed to disk like the PST itself, so memory stays bounded at any size.
"""

from __future__ import annotations

import base64
import codecs
import datetime as _dt
import hashlib
import html
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import UsageError
from ..pst.props import MAPI_BCC, MAPI_CC, MAPI_TO
from ..pst.rtf import compress_rtf, decompress_rtf, make_fromhtml_rtf, make_native_rtf
from ..pst.write.messaging import Attachment, Message, PstWriter, Recipient
from .kinds import EXCEPTION_CLASS, KindGenerator

_KIND_NAMES = {MAPI_TO: "to", MAPI_CC: "cc", MAPI_BCC: "bcc"}

_PEOPLE = [
    ("Alice Müller", "alice.mueller"), ("Bob O'Neil", "bob.oneil"), ("Carla Núñez", "carla.nunez"),
    ("Dmitri Волков", "dmitri.volkov"), ("Eva Nováková", "eva.novakova"), ("Fatima Zahra", "fatima.zahra"),
    ("Gérard Lefèvre", "gerard.lefevre"), ("Hiro 山田", "hiro.yamada"), ("Ingrid Sørensen", "ingrid.sorensen"),
    ("Jun 王", "jun.wang"), ("Kwame Mensah", "kwame.mensah"), ("Léa Dubois", "lea.dubois"),
    ("Mia Schröder", "mia.schroeder"), ("Nikos Παπαδόπουλος", "nikos.papadopoulos"), ("Olu Adeyemi", "olu.adeyemi"),
    ("Priya Raman", "priya.raman"), ("Quentin \"Q\" Moreau", "quentin.moreau"), ("Rosa García", "rosa.garcia"),
    ("Sven Åberg", "sven.aberg"), ("Tomás Ruiz", "tomas.ruiz"), ("Ümit Yılmaz", "umit.yilmaz"),
    ("Valentina Rossi", "valentina.rossi"), ("Wen 李", "wen.li"), ("Yuki 佐藤 🌸", "yuki.sato"),
]
_DOMAINS = ["example.com", "Example.ORG", "corp.example.net", "mail.example.de", "example.co.jp"]
_WORDS = (
    "contract review schedule budget forecast meeting draft invoice quarterly shipment approval "
    "Übersicht Änderung Besprechung naïve façade résumé señal 会議 見積書 契約 予算 проект отчёт "
    "συνάντηση 계약 rapport réunion acuerdo pagamento 🙂 📎 ✅ deadline minutes attached please "
    "confirm regards thanks update status risk audit legal hold custodian privilege"
).split()
_TOPICS = [
    "Q3 budget", "Vertrag Änderung", "見積書の確認", "Отчёт за квартал", "Réunion d'équipe", "Legal hold notice",
    "Shipment delay", "Board deck 📊", "Propuesta comercial", "Audit findings", "Συνάντηση έργου", "Offsite plan 🏖️",
]
_FOLDER_NAMES = [
    "Projekte", "Übersicht", "営業部", "Клиенты", "Ελληνικά", "Archive", "2019", "2020", "2021",
    "Legal ⚖️", "Finance & Ops", "Réunions", "Ventas", "📁 Misc", "Vendors", "HR", "Board", "Zürich",
]
_MIME = [
    ("txt", "text/plain"), ("pdf", "application/pdf"), ("png", "image/png"), ("csv", "text/csv"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("zip", "application/zip"), ("bin", "application/octet-stream"),
]
_FILE_STEMS = ["report", "Übersicht", "報告書", "résumé", "invoice_2021", "Смета", "scan 📄", "minutes", "plan"]


@dataclass(frozen=True)
class SynthOptions:
    """Size and shape knobs for :func:`synth`."""

    messages: int = 200
    seed: int = 1
    folders: int | None = None  # default grows with messages
    attachment_rate: float = 0.3
    large_attachment_every: int = 500  # one attachment over 1 MB every N messages (0: none)
    body_kib: int = 2
    duplicate_rate: float = 0.03
    no_message_id_rate: float = 0.05
    embedded_rate: float = 0.03
    large_body_every: int = 40  # one body of tens of KB every N messages (0: none)
    # how bodies and attachments are stored, in shares like real mailboxes' (drawn from a
    # random stream of their own, so the rest of a seed's content does not change with them)
    html_only_rate: float = 0.15  # PR_HTML only, no PR_BODY (most non-Outlook clients)
    rtf_html_rate: float = 0.03  # the HTML inside PR_RTF_COMPRESSED (\fromhtml1), PR_BODY blank lines
    rtf_only_rate: float = 0.03  # native RTF only (Outlook "rich text", older Exchange stores)
    ole_rate: float = 0.01  # an OLE object attachment (method 6)
    reference_rate: float = 0.01  # a by-reference attachment (method 2, a file-share path)
    # internal mail as Exchange stores it: sender and recipients as X500 DNs (address type
    # EX), no SMTP property on the sender and no transport headers; the SMTP addresses are on
    # the recipient rows (three in four; the rest carry the DN alone), so a sender's is often
    # only on other messages
    exchange_rate: float = 0.10
    # message node ids a block per folder instead of in arrival order, as Outlook gives them:
    # libpff then opens the file in linear time (see pstfast.pst.write.messaging._MessageIds)
    ids_by_folder: bool = False
    # the file layout (pstfast.pst.write.ndb.LAYOUTS): "unicode" (wVer 23), "unicode4k" (wVer 36,
    # Outlook 2013 OSTs: 4 KiB pages, zlib-compressed blocks) or "ansi" (wVer 14,
    # every string PT_STRING8 in *codepage*: what it lacks is written, and in the truth, as "?");
    # *ost*: client signature SO (an offline store) instead of SM
    layout: str = "unicode"
    codepage: int = 1252
    ost: bool = False
    #: appointments, contacts, distribution lists, tasks and drafts, as a share of messages
    #: (in folders of their own, after the mail, from a random stream of their own)
    other_items_rate: float = 0.05

    def validate(self) -> None:
        from ..pst.write.ndb import LAYOUTS

        if self.layout not in LAYOUTS:
            raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        try:
            codecs.lookup(f"cp{self.codepage}")
        except LookupError:
            raise UsageError(f"--codepage {self.codepage}: not a Windows code page Python knows") from None
        if self.messages < 0:
            raise UsageError(f"--messages must be 0 or more, got {self.messages}")
        if self.folders is not None and self.folders < 1:
            raise UsageError(f"--folders must be 1 or more, got {self.folders}")
        for name in ("attachment_rate", "duplicate_rate", "no_message_id_rate", "embedded_rate", "html_only_rate",
                     "rtf_html_rate", "rtf_only_rate", "ole_rate", "reference_rate", "exchange_rate",
                     "other_items_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.large_attachment_every < 0 or self.body_kib < 0 or self.large_body_every < 0:
            raise UsageError("size knobs must be 0 or more")


@dataclass
class SynthResult:
    """What :func:`synth` wrote."""

    path: Path
    truth: Path | None
    messages: int  # top-level messages, duplicates included
    folders: int
    attachments: int  # top-level attachments (by value and embedded messages)
    size_bytes: int
    seconds: float
    damaged: list[Any] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        mb = self.size_bytes / 1e6
        text = (
            f"wrote {self.path}: {self.messages} messages in {self.folders} folders, "
            f"{self.attachments} attachments, {mb:.1f} MB in {self.seconds:.1f} s "
            f"({rate:,.0f} messages/s, {mb / self.seconds if self.seconds else 0:.1f} MB/s)"
        )
        if self.truth:
            text += f"; truth: {self.truth}"
        for variant in self.damaged:
            text += f"\n  damaged {variant.kind}: {variant.path}"
        return text


def _iso(value: _dt.datetime | None) -> str | None:
    return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _rfc2047(text: str) -> str:
    if text.isascii():
        return text
    return "=?utf-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def x500_dn(email: str, *, lower: bool = False) -> str:
    """The Exchange DN the synthetic organisation gives *email*'s mailbox (X500 names are
    case-insensitive: recipient rows use another case than senders, as stores do)."""
    dn = f"/O=PSTFAST/OU=EXCHANGE ADMINISTRATIVE GROUP (FYDIBOHF23SPDLT)/CN=RECIPIENTS/CN={email.split('@')[0].upper()}"
    return dn.lower() if lower else dn


def _address_header(name: str, email: str) -> str:
    if name.isascii():
        return f'"{name}" <{email}>' if any(c in name for c in ',"') else f"{name} <{email}>"
    return f"{_rfc2047(name)} <{email}>"


class _Generator:
    """Deterministic content: one :class:`random.Random` drives every choice."""

    def __init__(self, options: SynthOptions) -> None:
        self.o = options
        self.rng = random.Random(options.seed)
        self.people = [
            (name, f"{local}@{self.rng.choice(_DOMAINS)}") for name, local in _PEOPLE
        ]
        # a pool of attachments whose bytes recur across messages (logos, disclaimers)
        self.shared = [self._attachment_bytes(self.rng.choice(_MIME)[0], self.rng.randint(200, 40_000))
                       for _ in range(8)]
        self.shared_names = [self._filename(i) for i in range(len(self.shared))]
        self.shapes = random.Random(f"{options.seed}:shapes")

    # --- small pieces -------------------------------------------------------------------

    def _filename(self, salt: int) -> str:
        ext, _ = _MIME[salt % len(_MIME)]
        return f"{self.rng.choice(_FILE_STEMS)}_{salt}.{ext}"

    def _attachment_bytes(self, ext: str, size: int) -> bytes:
        head = {"pdf": b"%PDF-1.7\n", "png": b"\x89PNG\r\n\x1a\n", "zip": b"PK\x03\x04", "docx": b"PK\x03\x04",
                "xlsx": b"PK\x03\x04"}.get(ext, b"")
        return head + self.rng.randbytes(max(size - len(head), 0))

    def words(self, count: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(count))

    def body(self, token: str, kib: int) -> str:
        target = max(kib * 1024, 80)
        paragraphs = [f"Ref {token}."]
        size = 0
        while size < target:
            paragraph = self.words(self.rng.randint(12, 60)).capitalize() + "."
            if self.rng.random() < 0.2:
                paragraph += "  \t Tabs,\ttrailing spaces  and\u00a0NBSP."
            paragraphs.append(paragraph)
            size += len(paragraph.encode("utf-8"))
        return "\r\n\r\n".join(paragraphs)

    def when(self, after: _dt.datetime | None) -> _dt.datetime:
        if after is None:
            base = _dt.datetime(2019, 1, 1, tzinfo=_dt.timezone.utc)
            return base + _dt.timedelta(seconds=self.rng.randint(0, 4 * 365 * 86400))
        return after + _dt.timedelta(seconds=self.rng.randint(60, 3 * 86400))

    def recipients(self, sender: tuple[str, str], pool: list[tuple[str, str]] | None = None) -> list[Recipient]:
        others = [p for p in (pool or self.people) if p != sender]
        chosen = self.rng.sample(others, min(len(others), self.rng.randint(1, 6)))
        out = []
        for i, (name, email) in enumerate(chosen):
            kind = MAPI_TO if i == 0 or self.rng.random() < 0.5 else (MAPI_CC if self.rng.random() < 0.7 else MAPI_BCC)
            out.append(Recipient(name, email, kind))
        return out


@dataclass
class _ThreadState:
    key: str
    topic: str
    guid: bytes
    root_time: _dt.datetime
    last: tuple[str | None, list[str], bytes, _dt.datetime] | None = None  # (message id, references, index, time)
    people: list[tuple[str, str]] | None = None  # who writes in it (a team); None: anyone


def _conversation_index(guid: bytes, when: _dt.datetime) -> bytes:
    ticks = int((when - _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)).total_seconds()) * 10_000_000
    # header: reserved 0x01, 5 bytes of the FILETIME (high bytes), 16-byte GUID
    return b"\x01" + ticks.to_bytes(8, "big")[:5] + guid


def _child_index(parent: bytes, parent_time: _dt.datetime, when: _dt.datetime) -> bytes:
    delta = int((when - parent_time).total_seconds() * 10_000_000) >> 18
    return parent + ((delta & 0x7FFFFFFF) << 8).to_bytes(5, "big")


def _headers(msg: Message, to: list[Recipient], cc: list[Recipient]) -> str:
    lines = [
        "Received: from mx.example.net (mx.example.net [192.0.2.25]) by mail.example.com; "
        + msg.received_at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        f"From: {_address_header(msg.sender_name, msg.sender_email)}",
        "To: " + ", ".join(_address_header(r.name, r.email) for r in to),
    ]
    if cc:
        lines.append("Cc: " + ", ".join(_address_header(r.name, r.email) for r in cc))
    lines.append(f"Subject: {_rfc2047(msg.subject)}")
    if msg.sent_at is not None:
        lines.append("Date: " + msg.sent_at.strftime("%a, %d %b %Y %H:%M:%S +0000"))
    if msg.internet_message_id:
        lines.append(f"Message-ID: {msg.internet_message_id}")
    if msg.in_reply_to:
        lines.append(f"In-Reply-To: {msg.in_reply_to}")
    if msg.references:
        lines.append(f"References: {msg.references}")
    lines += ["MIME-Version: 1.0", 'Content-Type: multipart/alternative; boundary="pstfast-synth"',
              "X-Mailer: pstfast synth"]
    return "\r\n".join(lines) + "\r\n\r\n"


def _writer(path: Path, options: SynthOptions, display_name: str, seed: int) -> PstWriter:
    ansi = options.layout == "ansi"
    return PstWriter(path, display_name=display_name, seed=seed, ids_by_folder=options.ids_by_folder,
                     layout=options.layout, client="ost" if options.ost else "pst",
                     ansi_codepage=options.codepage if ansi else None)


def options_record(options: SynthOptions) -> dict[str, Any]:
    """The options as the truth (and the benchmark corpus cache key) record them: the layout ones
    only when not the default, so a default truth, and a cached corpus name, stay what they were."""
    layout_defaults = {"layout": "unicode", "codepage": 1252, "ost": False}
    return {k: getattr(options, k) for k in options.__dataclass_fields__
            if k not in layout_defaults or getattr(options, k) != layout_defaults[k]}


def _in_codepage(text: str | None, codec: str | None) -> str | None:
    """*text* as an ANSI file stores it: what the code page lacks becomes "?"."""
    if text is None or codec is None:
        return text
    return text.encode(codec, "replace").decode(codec)


def _values_in_codepage(value: Any, codec: str | None) -> Any:
    """*value* (item_properties: dicts, lists, strings) with every string as an ANSI file stores it."""
    if codec is None:
        return value
    if isinstance(value, str):
        return _in_codepage(value, codec)
    if isinstance(value, list):
        return [_values_in_codepage(v, codec) for v in value]
    if isinstance(value, dict):
        # a distribution list's members are one-off entry ids, whose strings are Unicode in any layout
        return {k: v if k == "members" else _values_in_codepage(v, codec) for k, v in value.items()}
    return value


def _html_in_codepage(html: str | None, codec: str | None) -> str | None:
    """PR_HTML as an ANSI file stores it: what the code page lacks becomes a character reference."""
    if html is None or codec is None:
        return html
    return html.encode(codec, "xmlcharrefreplace").decode(codec)


def _message_in_codepage(msg: Message, codec: str | None) -> None:
    """Make *msg*'s strings what an ANSI file in *codec* stores (its truth is then what readers see)."""
    if codec is None:
        return
    for name in ("subject", "sender_name", "sender_email", "body_text", "transport_headers", "internet_message_id",
                 "in_reply_to", "references", "conversation_topic"):
        setattr(msg, name, _in_codepage(getattr(msg, name), codec))
    msg.body_html = _html_in_codepage(msg.body_html, codec)
    msg.sent_representing_name = _in_codepage(msg.sent_representing_name, codec)
    msg.sent_representing_email = _in_codepage(msg.sent_representing_email, codec)
    msg.categories = [_in_codepage(c, codec) or "" for c in msg.categories]
    for r in msg.recipients:
        r.name, r.email = _in_codepage(r.name, codec) or "", _in_codepage(r.email, codec) or ""
    for att in msg.attachments:
        att.filename = _in_codepage(att.filename, codec) or ""
        att.mime_type, att.content_id = _in_codepage(att.mime_type, codec), _in_codepage(att.content_id, codec)
        att.reference = _in_codepage(att.reference, codec)
        if att.message is not None:
            _message_in_codepage(att.message, codec)


def _folder_tree(gen: _Generator, writer: PstWriter, count: int, codec: str | None = None) -> list[tuple[int, str]]:
    """Create *count* user folders; return (nid, path) for each, Inbox first."""
    top = "Top of Personal Folders"
    folders: list[tuple[int, str]] = []
    inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
    folders.append((inbox, f"{top}/Inbox"))
    if count > 1:
        sent = writer.add_folder(writer.ipm_subtree, "Sent Items")
        folders.append((sent, f"{top}/Sent Items"))
    while len(folders) < count:
        parent_nid, parent_path = gen.rng.choice([(writer.ipm_subtree, top), *folders])
        depth = parent_path.count("/")
        if depth >= 5:
            continue
        name = _in_codepage(f"{gen.rng.choice(_FOLDER_NAMES)} {len(folders)}", codec) or ""
        nid = writer.add_folder(parent_nid, name)
        folders.append((nid, f"{parent_path}/{name}"))
    return folders


class _TruthWriter:
    """Streams the ground truth JSON: messages as they are written, summaries at the end."""

    def __init__(self, path: Path | None) -> None:
        self.file: TextIO | None = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115
        self.first = True
        if self.file:
            self.file.write('{"messages": [\n')

    def message(self, record: dict[str, Any]) -> None:
        if self.file:
            self.file.write(("" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
            self.first = False

    def finish(self, tail: dict[str, Any]) -> None:
        if self.file:
            self.file.write("\n]")
            for key, value in tail.items():
                self.file.write(f",\n{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
            self.file.write("}\n")
            self.file.close()


def _message_truth(msg: Message, nid: int | None, folder_path: str | None, atts: list[dict[str, Any]],
                   expected: tuple[str, str, str | None] | None = None,
                   item_properties: dict[str, Any] | None = None) -> dict[str, Any]:
    def people(kind: int) -> list[dict[str, Any]]:
        # email: the SMTP address; x500 and smtp_known: how the row stores it (the row's
        # expected email is the SMTP address unless the whole file never pairs the DN with it)
        return [{"name": r.name, "email": r.email, "x500": r.x500, "smtp_known": r.x500 is None or r.smtp_known}
                for r in msg.recipients if r.kind == kind]

    source, text, html_body = expected or ("plain", msg.body_text, msg.body_html)
    rtf = decompress_rtf(msg.body_rtf_compressed).decode("latin-1") if msg.body_rtf_compressed else None

    return {
        "nid": nid,
        "folder_path": folder_path,
        "message_class": msg.message_class,
        "subject": msg.subject,
        "sender_name": msg.sender_name,
        "sender_email": msg.sender_email,
        "sender_x500": msg.sender_x500,
        "sender_smtp_known": msg.sender_x500 is None or msg.sender_smtp_known,
        "to": people(MAPI_TO),
        "cc": people(MAPI_CC),
        "bcc": people(MAPI_BCC),
        "sent_at": _iso(msg.sent_at),
        "received_at": _iso(msg.received_at),
        "body_text": msg.body_text,  # PR_BODY as written (None: not written)
        "body_html": msg.body_html,  # PR_HTML as written
        "body_rtf": rtf,  # PR_RTF_COMPRESSED as written, decompressed
        # what the row's body fields must be (body_text whitespace-normalised when not plain)
        "expected_body_text": text,
        "expected_body_text_source": source,
        "expected_body_html": html_body,
        "transport_headers": msg.transport_headers,
        "internet_message_id": msg.internet_message_id,
        "in_reply_to": msg.in_reply_to,
        "references": msg.references.split() if msg.references else [],
        "conversation_index": msg.conversation_index.hex() if msg.conversation_index else None,
        "conversation_topic": msg.conversation_topic,
        "importance": msg.importance,
        "attachments": atts,
        # review metadata (every row has it) and, for the other kinds, item_properties
        "flags": (0x01 if msg.read else 0) | (0x08 if msg.draft else 0) | (0x10 if msg.attachments else 0),
        "is_read": msg.read,
        "is_draft": msg.draft,
        "created_at": _iso(msg.created_at or msg.received_at),
        "modified_at": _iso(msg.modified_at or msg.received_at),
        "sensitivity": msg.sensitivity,
        "categories": msg.categories,
        "sent_representing_name": msg.sent_representing_name or msg.sender_name,
        "sent_representing_email": msg.sent_representing_email or msg.sender_email,
        "item_properties": item_properties,
    }


def _attachment_truth(ordinal: int, att: Attachment, embedded: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "ordinal": ordinal,
        "filename": att.filename,
        "mime_type": att.mime_type,
        "size": None if att.message is not None else 0 if att.method == "reference" else len(att.data),
        "sha256": hashlib.sha256(att.data).hexdigest() if att.message is None and att.method != "reference" else None,
        "content_id": att.content_id,
        "is_inline": att.inline,
        "method": "embedded_message" if att.message is not None else att.method,
        "reference": att.reference,
        "message": embedded,
    }


def _build_message(gen: _Generator, index: int, thread: _ThreadState, reply: bool) -> Message:
    o, rng = gen.o, gen.rng
    sender = rng.choice(thread.people or gen.people)
    recipients = gen.recipients(sender, thread.people)
    token = f"{o.seed}-{index}"
    parent = thread.last if reply else None
    sent = gen.when(parent[3] if parent else None)
    received = sent + _dt.timedelta(seconds=rng.randint(1, 600))
    subject = ("RE: " if reply else "") + thread.topic
    if reply and rng.random() < 0.2:
        subject = "AW: " + subject
    has_id = rng.random() >= o.no_message_id_rate
    message_id = f"<{token}.{rng.getrandbits(48):012x}@synth.example.com>" if has_id else None
    in_reply_to = references = None
    if parent:
        parent_id, parent_refs, parent_index, parent_time = parent
        in_reply_to = parent_id
        references = " ".join([*parent_refs, parent_id]) if parent_id else None
        conv_index = _child_index(parent_index, parent_time, sent)
    else:
        conv_index = _conversation_index(thread.guid, sent)
    big = o.large_body_every and index % o.large_body_every == o.large_body_every - 1
    body = gen.body(token, rng.randint(20, 60) if big else max(o.body_kib + rng.randint(-1, 1), 0))
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\r\n\r\n"))
    msg = Message(
        subject=subject, sender_name=sender[0], sender_email=sender[1], sent_at=sent, received_at=received,
        recipients=recipients, body_text=body,
        body_html=f"<html><head><meta charset=\"utf-8\"></head><body>{paragraphs}</body></html>",
        internet_message_id=message_id, in_reply_to=in_reply_to, references=references,
        conversation_index=conv_index, conversation_topic=thread.topic,
        importance=rng.choices((0, 1, 2), (1, 8, 1))[0],
    )
    msg.transport_headers = _headers(
        msg, [r for r in recipients if r.kind == MAPI_TO], [r for r in recipients if r.kind == MAPI_CC]
    )
    if message_id:  # replies chain onto the newest message that has an id
        refs = [*parent[1], parent[0]] if parent and parent[0] else []
        thread.last = (message_id, refs, conv_index, sent)
    return msg


def _add_attachments(gen: _Generator, index: int, msg: Message) -> None:
    o, rng = gen.o, gen.rng
    names: set[str] = set()

    def unique(name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        n = 1
        while name in names:
            name = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
            n += 1
        names.add(name)
        return name

    if rng.random() < o.attachment_rate:
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.35:
                pick = rng.randrange(len(gen.shared))
                data, name = gen.shared[pick], gen.shared_names[pick]
            else:
                name = gen._filename(rng.randrange(1000))
                data = gen._attachment_bytes(name.rsplit(".", 1)[1], rng.randint(0, 60_000))
            ext = name.rsplit(".", 1)[1]
            mime = dict(_MIME)[ext]
            msg.attachments.append(Attachment(unique(name), mime, data))
        if rng.random() < 0.3:  # an inline image referenced from the HTML body
            cid = f"img{index}.{rng.getrandbits(32):08x}@synth"
            msg.attachments.append(
                Attachment(unique(f"logo_{index}.png"), "image/png", gen._attachment_bytes("png", rng.randint(500, 5000)),
                           content_id=cid, inline=True)
            )
            msg.body_html = (msg.body_html or "").replace("</body>", f'<img src="cid:{cid}"></body>')
    if o.large_attachment_every and index % o.large_attachment_every == o.large_attachment_every // 2:
        msg.attachments.append(
            Attachment(unique(f"large_{index}.bin"), "application/octet-stream",
                       gen._attachment_bytes("bin", rng.randint(1_100_000, 1_600_000)))
        )


def _vary_shapes(gen: _Generator, index: int, msg: Message) -> tuple[str, str, str | None] | None:
    """Store *msg* the way a share of real mail is stored: HTML only, HTML inside RTF, native
    RTF only; add an OLE object or a by-reference attachment now and then. Returns the
    (body_text_source, body_text, body_html) its row must have when the body is not plain,
    from the generator's own paragraphs (the truth never runs the extractor's HTML or RTF code)."""
    o, shapes = gen.o, gen.shapes
    paragraphs = (msg.body_text or "").split("\r\n\r\n")
    expected: tuple[str, str, str | None] | None = None
    pick = shapes.random()
    if pick < o.html_only_rate:
        expected = ("html", "\n".join(paragraphs), msg.body_html)
        msg.body_text = None
    elif pick < o.html_only_rate + o.rtf_html_rate + o.rtf_only_rate:
        # compressed RTF is written by a pure-Python compressor: keep these bodies short
        paragraphs = paragraphs[:3]
        text = "\r\n\r\n".join(paragraphs)
        if pick < o.html_only_rate + o.rtf_html_rate:
            # Outlook's HTML-in-RTF: no PR_HTML, PR_BODY a few blank lines
            page = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
            body_html = f"<html><head><meta charset=\"utf-8\"></head><body>{page}</body></html>"
            msg.body_rtf_compressed = compress_rtf(make_fromhtml_rtf(body_html))
            expected = ("html", "\n".join(paragraphs), body_html)
            msg.body_text, msg.body_html = "\r\n\r\n", None
        else:
            msg.body_rtf_compressed = compress_rtf(make_native_rtf(text))
            expected = ("rtf", text, None)
            msg.body_text = msg.body_html = None
    if shapes.random() < o.exchange_rate:
        msg.sender_x500 = x500_dn(msg.sender_email)
        msg.transport_headers = None  # delivered inside Exchange: no Internet headers
        for r in msg.recipients:
            r.x500, r.smtp_known = x500_dn(r.email, lower=True), shapes.random() < 0.75
    if shapes.random() < o.ole_rate:
        data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + shapes.randbytes(shapes.randint(500, 20_000))
        msg.attachments.append(Attachment(f"object_{index}.bin", "application/octet-stream", data, method="ole"))
    if shapes.random() < o.reference_rate:
        name = f"{shapes.choice(_FILE_STEMS)}_{index}.{shapes.choice(_MIME)[0]}"
        msg.attachments.append(Attachment(name, method="reference", reference=f"\\\\files\\shared\\{name}"))
    return expected


def synth(
    out: str | os.PathLike[str],
    *,
    options: SynthOptions | None = None,
    truth: str | os.PathLike[str] | None = None,
    damaged: str | os.PathLike[str] | None = None,
) -> SynthResult:
    """Write a deterministic synthetic Unicode PST to *out* (and its ground truth to *truth*).

    Raises:
        UsageError: bad options, or *out* cannot be written.
    """
    options = options or SynthOptions()
    options.validate()
    path = Path(out)
    _check_writable(path)
    truth_path = Path(truth) if truth else None
    if truth_path:
        _check_writable(truth_path)
    started = time.perf_counter()
    gen = _Generator(options)
    n_folders = options.folders or max(3, min(200, 3 + options.messages // 400))
    tmp = path.with_name(path.name + ".partial")
    truth_tmp = truth_path.with_name(truth_path.name + ".partial") if truth_path else None
    truth_out = _TruthWriter(truth_tmp)
    writer = _writer(tmp, options, f"pstfast synth (seed {options.seed})", options.seed)
    codec = codecs.lookup(f"cp{options.codepage}").name if options.layout == "ansi" else None
    try:
        folders = _folder_tree(gen, writer, n_folders, codec)
        weights = [max(1.0, 40.0 / (i + 1) ** 1.1) for i in range(len(folders))]
        threads: dict[str, list[str]] = {}
        groups: dict[str, list[str]] = {}
        open_threads: list[_ThreadState] = []
        counts = {"messages": 0, "attachments": 0}
        folder_counts = {p: 0 for _, p in folders}
        next_thread = 0
        resolvable: set[str] = set()  # DNs (casefolded) some recipient row pairs with an SMTP address
        other_kinds = KindGenerator(options.seed, gen.people)
        other_items = other_kinds.items(round(options.messages * options.other_items_rate))
        # their folders now, before the first message (with ids_by_folder every folder gets its
        # block of node ids when the first message is added), the items after the mail
        kind_folders: dict[str, tuple[int, str]] = {}
        for name in ("Calendar", "Contacts", "Tasks", "Drafts"):
            if any(item.folder == name for item in other_items):
                container = {"Calendar": "IPF.Appointment", "Contacts": "IPF.Contact", "Tasks": "IPF.Task"}
                nid = writer.add_folder(writer.ipm_subtree, name, container_class=container.get(name, "IPF.Note"))
                kind_folders[name] = (nid, f"Top of Personal Folders/{name}")
                folder_counts[kind_folders[name][1]] = 0

        def emit(msg: Message, folder: tuple[int, str], key: str, thread_key: str, dup: str | None,
                 expected: tuple[str, str, str | None] | None, item_properties: dict[str, Any] | None = None) -> None:
            if expected is not None and msg.body_html is not None:  # PR_HTML (not the HTML inside the RTF)
                expected = (expected[0], expected[1], _html_in_codepage(expected[2], codec))
            _message_in_codepage(msg, codec)
            nid = writer.add_message(folder[0], msg)
            atts = []
            for ordinal, att in enumerate(msg.attachments):
                embedded = None
                if att.message is not None and att.message.message_class == EXCEPTION_CLASS:
                    # a recurring series' exception: part of the series' item_properties, no row
                    atts.append({**_attachment_truth(ordinal, att, None), "is_inline": True, "exception": True})
                    continue
                if att.message is not None:
                    embedded = _message_truth(att.message, None, None, [
                        _attachment_truth(i, a, None) for i, a in enumerate(att.message.attachments)
                    ])
                atts.append(_attachment_truth(ordinal, att, embedded))
            record = {"key": key, **_message_truth(msg, nid, folder[1], atts, expected,
                                                   _values_in_codepage(item_properties, codec)),
                      "thread": thread_key,
                      "duplicate_group": dup}
            truth_out.message(record)
            resolvable.update(r.x500.casefold() for r in msg.recipients if r.x500 and r.smtp_known)
            threads.setdefault(thread_key, []).append(key)
            counts["messages"] += 1
            counts["attachments"] += len(msg.attachments)
            folder_counts[folder[1]] += 1

        for index in range(options.messages):
            rng = gen.rng
            reply = bool(open_threads) and rng.random() < 0.55
            if reply:
                thread = rng.choice(open_threads[-50:])
                if thread.last is None:
                    reply = False
            if not reply:
                next_thread += 1
                topic = f"{rng.choice(_TOPICS)} #{next_thread}"
                thread = _ThreadState(f"t{next_thread:06d}", topic, rng.randbytes(16), gen.when(None))
                open_threads.append(thread)
            msg = _build_message(gen, index, thread, reply)
            _add_attachments(gen, index, msg)
            expected = _vary_shapes(gen, index, msg)
            if rng.random() < options.embedded_rate:
                inner_thread = _ThreadState("", f"Fwd material {index}", rng.randbytes(16), gen.when(None))
                inner = _build_message(gen, index + 10_000_000, inner_thread, False)
                if rng.random() < 0.5:
                    inner.attachments.append(Attachment(f"inner_{index}.txt", "text/plain",
                                                        gen.words(40).encode("utf-8")))
                msg.attachments.append(Attachment(f"{inner.subject}.msg", message=inner))
            folder = folders[rng.choices(range(len(folders)), weights)[0]]
            other_kinds.metadata(msg)
            key = f"m{index:07d}"
            dup = None
            if rng.random() < options.duplicate_rate and len(folders) > 1:
                dup = f"d{index:07d}"
                groups[dup] = [key, key + "-dup"]
            emit(msg, folder, key, thread.key, dup, expected)
            if dup:
                other = rng.choice([f for f in folders if f != folder])
                emit(msg, other, key + "-dup", thread.key, dup, expected)
        # the other kinds: after the mail (in arrival order the mail keeps its node ids)
        for n, item in enumerate(other_items):
            body = item.message.body_text
            emit(item.message, kind_folders[item.folder], f"k{n:07d}", f"k{n:07d}", None,
                 ("plain" if body else None, body, None), item.expected)  # type: ignore[arg-type]
        folders.extend(kind_folders.values())
        truth_out.finish(
            {
                "seed": options.seed,
                "options": options_record(options),
                "folders": [
                    {"path": p, "name": p.rsplit("/", 1)[-1], "message_count": folder_counts.get(p, 0)}
                    for p in ["Top of Personal Folders", "Top of Personal Folders/Deleted Items",
                              *(path for _, path in folders)]
                ],
                "threads": threads,
                "duplicate_groups": groups,
                "exchange_resolvable": sorted(resolvable),
            }
        )
        size = writer.close()
    except BaseException:
        writer.abort()
        truth_out.finish({})
        tmp.unlink(missing_ok=True)
        if truth_tmp:
            truth_tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    if truth_path and truth_tmp:
        os.replace(truth_tmp, truth_path)
    result = SynthResult(path, truth_path, counts["messages"], len(folders) + 2, counts["attachments"], size,
                         time.perf_counter() - started)
    if damaged:
        from .damage import damage

        result.damaged = damage(path, damaged)
    return result


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {path}: folder {parent} is not writable")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder")


def iter_truth_messages(truth: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every message in a loaded truth, embedded messages included (depth first)."""
    for message in truth["messages"]:
        yield message
        stack = [a["message"] for a in message["attachments"] if a.get("message")]
        while stack:
            inner = stack.pop()
            yield inner
            stack.extend(a["message"] for a in inner["attachments"] if a.get("message"))


@dataclass
class FamilyResult:
    """What :func:`synth_family` wrote: one PST per custodian of one organisation."""

    paths: list[Path]
    truth: Path | None
    messages: int  # distinct messages of the organisation that some custodian holds
    copies: list[int]  # messages in each PST (a message is in its sender's and each custodian recipient's)
    size_bytes: int
    seconds: float

    def summary(self) -> str:
        return (f"wrote {len(self.paths)} custodian PSTs to {self.paths[0].parent if self.paths else '-'}: "
                f"{self.messages} messages, {sum(self.copies)} copies ({min(self.copies, default=0)}-"
                f"{max(self.copies, default=0)} per PST), {self.size_bytes / 1e6:.1f} MB in {self.seconds:.1f} s"
                + (f"; truth: {self.truth}" if self.truth else ""))


def family_people(custodians: int) -> list[tuple[str, str]]:
    """(name, local part) of the organisation's custodians, in PST order."""
    people = list(_PEOPLE[:custodians])
    people += [(f"Custodian {i + 1}", f"custodian{i + 1}") for i in range(len(people), custodians)]
    return people


def synth_family(
    out_dir: str | os.PathLike[str],
    custodians: int,
    *,
    options: SynthOptions | None = None,
    truth: str | os.PathLike[str] | None = None,
    team_size: int | None = None,
) -> FamilyResult:
    """Write the mailboxes of *custodians* people of one organisation into *out_dir*
    (``custodian-NNN.pst``), from one stream of ``options.messages`` messages.

    With *team_size*, the staff work in teams of that many: a thread is written by one
    team and the outside partners, and one thread in five also by someone of another team
    (as in an organisation's departments); without it, anyone writes in any thread (every
    thread crosses every mailbox: the densest family).

    Each message is written, byte for byte the same, into its sender's Sent Items and each
    custodian recipient's Inbox, so the PSTs share Message-IDs (cross-PST threads: replies
    come from other mailboxes) and content hashes (duplicates). About one message in ten is
    a forward: ``FW: <subject>`` with the original attached as an embedded message and no
    reply headers (it joins the original's thread by subject). Attachments are drawn from a
    shared pool too. Messages no custodian holds are not written (their replies' references
    then point at a missing parent). The same seed gives the same bytes.

    Raises:
        UsageError: bad options, fewer than one custodian, or *out_dir* cannot be written.
    """
    options = options or SynthOptions()
    options.validate()
    if custodians < 1:
        raise UsageError(f"--custodians must be 1 or more, got {custodians}")
    if team_size is not None and team_size < 2:
        raise UsageError(f"--team-size must be 2 or more, got {team_size}")
    if options.layout == "ansi":
        raise UsageError("--layout ansi writes one PST: not with --custodians")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _check_writable(folder / "custodian-000.pst")
    started = time.perf_counter()
    gen = _Generator(options)
    domain = "corp.example.com"
    staff = [(name, f"{local}@{domain}") for name, local in family_people(custodians)]
    outsiders = [(name, f"{local}@partner.example.org") for name, local in _PEOPLE[-4:]]
    gen.people = staff + [p for p in outsiders if p[1] not in {s[1] for s in staff}]
    index_of = {email: i for i, (_, email) in enumerate(staff)}
    partners = gen.people[len(staff):]
    teams = [staff[i:i + team_size] for i in range(0, len(staff), team_size)] if team_size else []
    paths = [folder / f"custodian-{i + 1:03d}.pst" for i in range(custodians)]
    writers: list[PstWriter] = []
    boxes: list[tuple[int, int]] = []
    copies = [0] * custodians
    records: list[dict[str, Any]] = []
    try:
        for i, path in enumerate(paths):
            w = _writer(path.with_name(path.name + ".partial"), options, f"{staff[i][0]} (synth family)",
                        options.seed * 1000 + i)
            writers.append(w)
            boxes.append((w.add_folder(w.ipm_subtree, "Inbox"), w.add_folder(w.ipm_subtree, "Sent Items")))
        open_threads: list[_ThreadState] = []
        recent: list[tuple[Message, str]] = []
        next_thread = 0
        written = 0
        for index in range(options.messages):
            rng = gen.rng
            forward = bool(recent) and rng.random() < 0.1
            original: Message | None = None
            reply = not forward and bool(open_threads) and rng.random() < 0.55
            if reply:
                thread = rng.choice(open_threads[-50:])
                reply = thread.last is not None
            if not reply:
                next_thread += 1
                if forward:
                    original = rng.choice(recent[-200:])[0]
                    topic = "FW: " + original.subject
                else:
                    topic = f"{rng.choice(_TOPICS)} #{next_thread}"
                thread = _ThreadState(f"t{next_thread:06d}", topic, rng.randbytes(16), gen.when(None))
                if teams:
                    team = list(rng.choice(teams))
                    if rng.random() < 0.2:
                        team.append(rng.choice(staff))
                    thread.people = list(dict.fromkeys(team + partners))
                open_threads.append(thread)
            msg = _build_message(gen, index, thread, reply)
            if original is not None:
                msg.subject = thread.topic
                msg.attachments.append(Attachment(f"{original.subject}.msg", message=original))
            else:
                _add_attachments(gen, index, msg)
            holders = sorted({index_of[msg.sender_email]} if msg.sender_email in index_of else set())
            inbox = sorted({index_of[r.email] for r in msg.recipients if r.email in index_of} - set(holders))
            for i in holders:
                writers[i].add_message(boxes[i][1], msg)
                copies[i] += 1
            for i in inbox:
                writers[i].add_message(boxes[i][0], msg)
                copies[i] += 1
            if holders or inbox:
                written += 1
                recent.append((msg, thread.key))
                if truth:
                    records.append({"key": f"m{index:07d}", "thread": thread.key,
                                    "internet_message_id": msg.internet_message_id,
                                    "custodians": [paths[i].stem for i in sorted({*holders, *inbox})],
                                    "forward": original is not None})
        size = 0
        for w in writers:
            size += w.close()
    except BaseException:
        for w in writers:
            w.abort()
        for path in paths:
            path.with_name(path.name + ".partial").unlink(missing_ok=True)
        raise
    for path in paths:
        os.replace(path.with_name(path.name + ".partial"), path)
    truth_path = Path(truth) if truth else None
    if truth_path:
        truth_path.write_text(json.dumps({"seed": options.seed, "custodians": [p.stem for p in paths],
                                          "people": [e for _, e in staff], "messages": records},
                                         ensure_ascii=False) + "\n", encoding="utf-8")
    return FamilyResult(paths, truth_path, written, copies, size, time.perf_counter() - started)
