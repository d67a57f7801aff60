"""Attachment text on a real PostgreSQL: a writer PST whose attachments are real documents
(PDF, DOCX, XLSX, PPTX, HTML, text, zip) with planted phrases goes through extract, load and
the index stage; every phrase is found by text and hybrid search and attributed to its
attachment; an encrypted PDF, a corrupt DOCX, a hang and a crash get their status and the
PST succeeds; each content is read once per project."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import psycopg
import pytest

import pstfast
from pstfast.cli import main
from pstfast.enrich.attachments import Sandbox
from pstfast.enrich.textract import Limits, extract, sniff
from pstfast.pipeline.stage import run_stage
from pstfast.pst.write.messaging import Attachment, Message, PstWriter, Recipient
from pstfast.synthetic import documents

T0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
PROJECT = "att-proj"
#: kind -> the phrase planted in that attachment (words found nowhere else)
PHRASES = {
    "pdf": "heliotrope anchovy settlement",
    "docx": "marzipan viaduct indemnity",
    "xlsx": "tangerine glacier invoice",
    "pptx": "obsidian pelican roadmap",
    "html": "saffron tortoise memorandum",
    "text": "juniper catapult deposition",
    "zip": "vermilion lantern escrow",
}


def _message(subject: str, body: str, attachments: list[Attachment]) -> Message:
    return Message(subject=subject, sender_name="Ann", sender_email="ann@example.com", sent_at=T0, received_at=T0,
                   body_text=body, recipients=[Recipient("Bob", "bob@example.com")], attachments=attachments)


def write_pst(path: Path) -> Path:
    """One message per document kind, plus one with an encrypted PDF and a corrupt DOCX."""
    with PstWriter(path) as writer:
        inbox = writer.add_folder(writer.ipm_subtree, "Inbox")
        for kind, phrase in PHRASES.items():
            ext, mime = documents.KINDS[kind]
            writer.add_message(inbox, _message(f"about the {kind}", "see attached",
                                               [Attachment(f"{kind}-file.{ext}", mime, documents.make(kind, phrase, 3))]))
        bad_docx = documents.docx("never readable")[:2000]
        writer.add_message(inbox, _message("locked", "two broken files", [
            Attachment("locked.pdf", "application/pdf", documents.pdf("hidden words", password="s3cret")),
            Attachment("broken.docx", documents.KINDS["docx"][1], bad_docx),
        ]))
    return path


@pytest.fixture(scope="module")
def pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pst(tmp_path_factory.mktemp("att") / "att.pst")


def _ingest(pst: Path, root: Path, dsn: str, pst_file_id: str = "att1") -> None:
    pstfast.extract(pst, root, pst_file_id=pst_file_id, project_id=PROJECT, workers=1, progress=False)
    pstfast.load(root, pst_file_id, dsn)
    pstfast.thread(root, pst_file_id, dsn)


def test_every_planted_phrase_is_found_in_its_attachment(pst: Path, tmp_path: Path, pg_dsn: str, capsys) -> None:
    _ingest(pst, tmp_path, pg_dsn)
    outcome = run_stage("index", pst_file_id="att1", out=tmp_path, db=pg_dsn)
    result = outcome.result
    assert result.attachment_statuses == {"ok": 7, "encrypted": 1, "failed": 1}
    assert result.attachment_texts == 9 and result.attachment_entries == 7
    assert outcome.report.status == "succeeded"
    assert any("locked.pdf: " in w for w in outcome.report.warnings)
    assert any("broken.docx: " in w and "BadZipFile" in w for w in outcome.report.warnings)
    for kind, phrase in PHRASES.items():
        for mode in ("text", "hybrid"):
            hits = pstfast.search(f'"{phrase}"', PROJECT, pg_dsn, mode=mode)
            assert hits, (kind, mode)
            top = hits[0]
            assert top.subject == f"about the {kind}", (kind, mode)
            assert top.attachment_filename == f"{kind}-file.{documents.KINDS[kind][0]}", (kind, mode)
            assert top.attachment_id is not None and top.thread_id is not None
    # the script of the HTML page and the encrypted PDF's words are not text
    assert pstfast.search("scriptword", PROJECT, pg_dsn) == []
    assert pstfast.search("hidden", PROJECT, pg_dsn) == []
    with psycopg.connect(pg_dsn) as conn:
        rows = dict(conn.execute("SELECT status, extractor FROM attachment_texts").fetchall())
    assert rows["encrypted"] == "pypdfium2"
    assert any(s.startswith("failed: BadZipFile") for s in rows)
    manifest = json.loads((tmp_path / "pst-v2" / "att1" / "stages" / "index" / "manifest.json").read_text())
    assert manifest["counts"]["attachment_texts"] == 9
    assert main(["search", f'"{PHRASES["zip"]}"', "--project-id", PROJECT, "--db", pg_dsn, "--json"]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert hit["attachment_filename"] == "zip-file.zip" and hit["thread_id"]


def test_each_content_is_read_once_per_project(pst: Path, tmp_path: Path, pg_dsn: str) -> None:
    _ingest(pst, tmp_path, pg_dsn, "att1")
    assert pstfast.index(tmp_path, "att1", pg_dsn).attachment_texts == 9
    again = pstfast.index(tmp_path, "att1", pg_dsn)
    assert (again.attachment_texts, again.attachment_entries) == (0, 0)
    _ingest(pst, tmp_path, pg_dsn, "att2")  # the same attachments in a second PST of the project
    second = pstfast.index(tmp_path, "att2", pg_dsn)
    assert second.attachment_texts == 0 and second.attachment_entries == 7
    assert len(pstfast.search(f'"{PHRASES["pdf"]}"', PROJECT, pg_dsn)) == 2
    pstfast.remove("att2", pg_dsn)  # its attachment entries go; the project's texts stay
    assert len(pstfast.search(f'"{PHRASES["pdf"]}"', PROJECT, pg_dsn)) == 1
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM attachment_search").fetchone() == (7,)
        assert conn.execute("SELECT count(*) FROM attachment_texts").fetchone() == (9,)


def test_the_sandbox_kills_a_hang_and_survives_a_crash() -> None:
    slow = documents.xlsx("slow sheet", filler=20_000)  # takes far longer than the limit to read
    box = Sandbox(Limits(seconds=0.01))
    try:
        extracted, _ = box.run(slow, "slow.xlsx", None)
        assert extracted.status == "failed" and "timed out" in (extracted.reason or "")
        assert box._proc is None  # killed
    finally:
        box.close()
    box = Sandbox(Limits(seconds=30))
    try:
        box._start()
        assert box._conn is not None
        box._conn.send(None)  # the worker exits: its answer to the next file is EOF, "died"
        extracted, _ = box.run(b"x", "a.txt", None)
        assert extracted.status == "failed" and "died" in (extracted.reason or "")
        # after a death the next file gets a fresh worker
        assert box.run(documents.plain("after the crash"), "b.txt", None)[0].text.startswith("after the crash")
    finally:
        box.close()


def test_formats_statuses_and_limits() -> None:
    assert sniff(documents.docx("x"), "renamed.bin", None) == "docx"  # the bytes decide
    assert sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.doc", None) == "doc"
    assert extract(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.doc", None).status == "unsupported"
    assert extract(b"\x89PNG\r\n\x1a\n" + bytes(200), "logo.png", "image/png").status == "unsupported"
    assert extract(b"", "empty.txt", "text/plain").status == "empty"
    noise = extract(random.Random(21).randbytes(5000), "noise.txt", "text/plain")  # binary behind a text name
    assert noise.status == "unsupported" and "binary data" in (noise.reason or "")
    assert extract(b"x" * 2000, "big.txt", None, Limits(max_bytes=1000)).status == "too_large"
    assert extract("Grüße aus Köln, naïve café".encode("cp1252"), "latin.txt", None).text.startswith("Grüße")
    nested = documents.zip_of({"a.zip": documents.zip_of({"b.zip": documents.zip_of({"c.txt": b"deep words"})})})
    result = extract(nested, "nested.zip", None, Limits(zip_depth=2))
    assert "deep words" not in result.text and "nested deeper" in (result.reason or "")
    assert extract(documents.zip_of({"c.txt": b"shallow words"}), "z.zip", None).text.endswith("shallow words")
    from pstfast.pst.rtf import make_fromhtml_rtf, make_native_rtf

    assert extract(make_native_rtf("ocelot rtf words"), "a.rtf", None).text == "ocelot rtf words"
    assert extract(make_fromhtml_rtf("<p>ocelot html</p>"), "b.doc", None).text == "ocelot html"  # bytes decide
    long_pdf = extract(documents.pdf("first page words", filler=200), "long.pdf", None, Limits(max_pages=1))
    assert long_pdf.status == "ok" and "first page words" in long_pdf.text
