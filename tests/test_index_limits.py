"""One huge message never fails the index stage (issue 21): every field of a search entry is
cut to what a tsvector holds (1 MB, lexemes < 2 KB, positions ≤ 16383), and the cut is a
warning in the index stage's manifest. A writer-made PST through the whole pipeline on a
real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

import pstfast
from pstfast.pst.write.messaging import Message, PstWriter, Recipient

T0 = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
RECIPIENTS = 100_000
NORMAL = [("budget review", "the quarterly marmalade figures"), ("lunch", "shall we try the new okapi cafe"),
          ("travel", "flights to reykjavik booked")]


def _huge_body() -> str:
    # ~5 MB: a planted word at the start, then distinct words (a tsvector of all of it is far over 1 MB)
    words = " ".join(f"w{i:07d}z" for i in range(560_000))
    return "aardvarkstart " + words


def _write(path: Path) -> None:
    with PstWriter(path) as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        for subject, body in NORMAL:
            pst.add_message(inbox, Message(subject=subject, sender_name="Ann", sender_email="ann@example.com",
                                           sent_at=T0, received_at=T0, body_text=body,
                                           recipients=[Recipient("Bob", "bob@example.com")]))
        pst.add_message(inbox, Message(
            subject="all hands announcement", sender_name="Comms", sender_email="comms@example.com",
            sent_at=T0, received_at=T0, body_text=_huge_body(),
            recipients=[Recipient(f"Person {i:06d}", f"person{i:06d}@staff.example.com")
                        for i in range(RECIPIENTS)]))


@pytest.fixture(scope="module")
def huge_pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.pst"
    _write(path)
    return path


def test_a_message_of_100k_recipients_and_5mb_body_is_indexed_with_a_warning(
        huge_pst: Path, tmp_path: Path, pg_dsn: str) -> None:
    result = pstfast.run(str(huge_pst), out=str(tmp_path), db=pg_dsn, project_id="limits",
                         pst_file_id="huge1", sleep=lambda _s: None)
    assert result.ok, result.error
    index_stage = next(s for s in result.stages if s.stage == "index")
    assert index_stage.attempts == 1
    assert result.counts()["indexed"] == len(NORMAL) + 1

    with psycopg.connect(pg_dsn) as conn:  # the huge message really is huge in the database
        to_count, body_len = conn.execute(
            "SELECT cardinality(\"to\"), length(body_text) FROM email_messages"
            " WHERE subject = 'all hands announcement'").fetchone()
    assert to_count == RECIPIENTS and body_len > 5_000_000

    for word, subject in [("marmalade", "budget review"), ("okapi", "lunch"), ("reykjavik", "travel"),
                          ("aardvarkstart", "all hands announcement"), ("w0000001z", "all hands announcement"),
                          ("person000001@staff.example.com", "all hands announcement"),
                          ("announcement", "all hands announcement")]:
        assert [h.subject for h in pstfast.search(word, "limits", pg_dsn)] == [subject], word

    manifest = json.loads((tmp_path / "pst-v2" / "huge1" / "stages" / "index" / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert manifest["counts"]["cut_entries"] == 1
    [warning] = manifest["warnings"]
    assert "recipients" in warning and "body" in warning and "subject" not in warning
    with psycopg.connect(pg_dsn) as conn:
        size, cut = conn.execute(
            "SELECT pg_column_size(s.search_vector), s.cut FROM email_search s JOIN email_messages m USING (email_id)"
            " WHERE m.subject = 'all hands announcement'").fetchone()
        assert size <= 1_048_575 and sorted(cut) == ["body", "recipients"]
        assert conn.execute("SELECT count(*) FROM email_search WHERE cut IS NULL").fetchone() == (len(NORMAL),)
