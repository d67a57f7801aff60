"""Real-mailbox shapes (issue 17): HTML-only and RTF-only bodies, OLE and by-reference
attachments, written the way Outlook writes them and cross-checked against libpff,
readpst and pffexport, never only against the writer."""

from __future__ import annotations

import datetime as dt
import email
import gzip
import hashlib
import json
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import corpus_pst

import pstfast
from pstfast.pst.rtf import compress_rtf, make_fromhtml_rtf, make_native_rtf
from pstfast.pst.write.messaging import Attachment, Message, PstWriter, Recipient

T0 = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(range(256)) * 20  # an OLE compound file's magic, then data
FROMHTML = "<html><body><p>Only in the <i>RTF's</i> HTML: marmoset</p></body></html>"
SHARE = "\\\\fileserver\\share\\plan.docx"


def _msg(subject: str, **kw: Any) -> Message:
    return Message(subject=subject, sender_name="Ann", sender_email="ann@example.com", sent_at=T0, received_at=T0,
                   recipients=[Recipient("Bob", "bob@example.com")], **kw)


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("real") / "real.pst"
    with PstWriter(path) as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        # two HTML-only messages that differ only in their HTML
        pst.add_message(inbox, _msg("plan", body_html="<html><body><p>The <b>zanzibar</b> plan</p></body></html>"))
        pst.add_message(inbox, _msg("plan", body_html="<html><body><p>The <b>quokka</b> plan</p></body></html>"))
        # PR_BODY a few blank lines, the real body HTML inside the RTF (\fromhtml1)
        pst.add_message(inbox, _msg("fromhtml", body_text="\r\n\r\n",
                                    body_rtf_compressed=compress_rtf(make_fromhtml_rtf(FROMHTML))))
        # native RTF only (Outlook "rich text", older Exchange stores)
        pst.add_message(inbox, _msg("rich text", body_rtf_compressed=compress_rtf(make_native_rtf("native words: wombat"))))
        pst.add_message(inbox, _msg("attachments", body_text="see attached", attachments=[
            Attachment("drawing.bin", data=OLE, method="ole"),
            Attachment("plan.docx", method="reference", reference=SHARE),
            Attachment("plain.txt", data=b"hello"),
        ]))
    return path


def _rows(out: Path, pst_file_id: str, kind: str) -> list[dict[str, Any]]:
    with gzip.open(out / "pst-v2" / pst_file_id / f"{kind}.ndjson.gz", "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def extracted(mailbox: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[dict], list[dict]]]:
    found = {}
    for reader in ("pstfast", "libpff"):
        out = tmp_path_factory.mktemp(reader)
        m = pstfast.extract(mailbox, out, project_id="p17", workers=1, reader=reader, progress=False)
        found[reader] = (_rows(out, m.pst_file_id, "emails"), _rows(out, m.pst_file_id, "attachments"))
    return found


def _by_subject(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["subject"]].append(r)
    return out


def test_both_readers_give_the_same_rows(extracted) -> None:
    assert extracted["pstfast"] == extracted["libpff"]


def test_html_only_bodies_are_text_and_hash_apart(extracted) -> None:
    emails, _ = extracted["pstfast"]
    a, b = _by_subject(emails)["plan"]
    assert {a["body_text"], b["body_text"]} == {"The zanzibar plan", "The quokka plan"}
    assert a["body_text_source"] == b["body_text_source"] == "html"
    assert a["content_hash"] != b["content_hash"]


def test_fromhtml_rtf_gives_its_html_back(extracted) -> None:
    emails, _ = extracted["pstfast"]
    (row,) = _by_subject(emails)["fromhtml"]
    assert row["body_html"].replace("\r\n", "\n") == FROMHTML
    assert row["body_text_source"] == "html" and row["body_text"] == "Only in the RTF's HTML: marmoset"


def test_native_rtf_gives_its_text(extracted) -> None:
    emails, _ = extracted["pstfast"]
    (row,) = _by_subject(emails)["rich text"]
    assert (row["body_text_source"], row["body_text"], row["body_html"]) == ("rtf", "native words: wombat", None)


def _readpst(pst: Path, tmp: Path) -> dict[str, dict[str, bytes]]:
    if shutil.which("readpst") is None:
        pytest.fail("readpst is not installed (apt-get install pst-utils)")
    out = tmp / "readpst"
    out.mkdir()
    subprocess.run(["readpst", "-j", "0", "-e", "-o", str(out), str(pst)], check=True, capture_output=True)
    found: dict[str, dict[str, bytes]] = {}
    for eml in out.rglob("*.eml"):
        message = email.message_from_bytes(eml.read_bytes())
        found[str(message["Subject"])] = {part.get_filename(): part.get_payload(decode=True)
                                         for part in message.walk() if part.get_filename()}
    return found


def test_rtf_bodies_and_ole_bytes_equal_readpst_and_pffexport(mailbox: Path, extracted, tmp_path: Path) -> None:
    emails, attachments = extracted["pstfast"]
    rtf = {r["subject"]: r["body_rtf"].encode("latin-1") for r in emails if r["body_rtf"]}
    ole = next(a for a in attachments if a["method"] == "ole")
    assert ole["sha256"] == hashlib.sha256(OLE).hexdigest() and ole["size"] == len(OLE)
    seen = _readpst(mailbox, tmp_path)
    assert seen["rich text"]["rtf-body.rtf"] == rtf["rich text"]
    assert seen["fromhtml"]["rtf-body.rtf"] == rtf["fromhtml"]
    assert seen["attachments"]["drawing.bin"] == OLE
    if shutil.which("pffexport") is None:
        pytest.fail("pffexport is not installed (apt-get install pff-tools)")
    subprocess.run(["pffexport", "-q", "-t", str(tmp_path / "px"), str(mailbox)], check=True, capture_output=True)
    (native,) = [p for p in (tmp_path / "px.export").rglob("Message.rtf")]
    assert native.read_bytes().rstrip(b"\x00") == rtf["rich text"]
    (drawing,) = (tmp_path / "px.export").rglob("*_drawing.bin")
    assert drawing.read_bytes() == OLE


def test_ole_bytes_equal_libpffs(mailbox: Path, extracted) -> None:
    import pypff

    handle = pypff.file()
    handle.open(str(mailbox))
    try:
        inbox = handle.root_folder.get_sub_folder(0)
        inbox = next(inbox.get_sub_folder(i) for i in range(inbox.number_of_sub_folders)
                     if inbox.get_sub_folder(i).name == "Inbox")
        message = next(inbox.get_sub_message(i) for i in range(inbox.number_of_sub_messages)
                       if inbox.get_sub_message(i).subject == "attachments")
        attachment = message.get_attachment(0)
        assert attachment.read_buffer(attachment.get_size()) == OLE
    finally:
        handle.close()


def test_a_reference_attachment_keeps_its_path(extracted) -> None:
    _, attachments = extracted["pstfast"]
    (ref,) = [a for a in attachments if a["method"] == "reference"]
    assert (ref["filename"], ref["reference"], ref["sha256"], ref["storage_key"]) == ("plan.docx", SHARE, None, None)


def test_words_only_in_html_or_rtf_are_found_and_html_twins_are_not_duplicates(mailbox: Path, tmp_path: Path,
                                                                                 pg_dsn: str) -> None:
    result = pstfast.run(str(mailbox), out=str(tmp_path / "out"), db=pg_dsn, project_id="p17")
    assert result.ok, result.summary()
    for word, subject in (("zanzibar", "plan"), ("quokka", "plan"), ("marmoset", "fromhtml"),
                          ("wombat", "rich text")):
        hits = pstfast.search(word, "p17", pg_dsn)
        assert [h.subject for h in hits] == [subject], word
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        dupes = conn.execute("SELECT count(*) FROM email_messages WHERE project_id = 'p17'"
                             " AND duplicate_of IS NOT NULL").fetchone()[0]
    assert dupes == 0


def test_a_real_html_mailbox_has_a_body_for_every_message(tmp_path: Path) -> None:
    pst = corpus_pst("gopst-support.pst")
    m = pstfast.extract(pst, tmp_path, workers=1, project_id="g", progress=False)
    rows = _rows(tmp_path, m.pst_file_id, "emails")
    assert len(rows) == m.counts["emails"] == 17
    assert all((r["body_text"] or "").strip() for r in rows)
    assert Counter(r["body_text_source"] for r in rows) == {"html": 16, "plain": 1}
    html_by_hash: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        html_by_hash[r["content_hash"]].add(r["body_html"])
    assert all(len(htmls) == 1 for htmls in html_by_hash.values())
