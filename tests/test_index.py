"""The index stage and `pstfast search` on a real PostgreSQL; OpenSearch bulk NDJSON."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psycopg
import pytest
from conftest import make_email, table_checksum

import pstfast
from pstfast.cli import main
from pstfast.errors import TransientError
from pstfast.enrich.index import bulk_actions, bulk_ndjson_chunks, index_name

PHRASE = "zebracorn quintessential"


def _load(tmp_path: Path, dsn: str, write_output, n: int = 40, **extra) -> list[dict]:
    rows = [make_email("pA", i) for i in range(n)]
    rows[7]["body_text"] = f"hello {PHRASE} world"
    rows[8]["body_text"] = "zebracorn alone"
    rows[9]["body_text"] = "quintessential alone"
    for key, value in extra.items():
        rows[int(key[1:])]["body_text"] = value
    write_output(tmp_path, "pA", rows)
    pstfast.load(tmp_path, "pA", dsn)
    return rows


def test_search_finds_planted_phrase_in_exactly_its_email(tmp_path: Path, pg_dsn: str, write_output, capsys) -> None:
    rows = _load(tmp_path, pg_dsn, write_output)
    result = pstfast.index(tmp_path, "pA", pg_dsn)
    assert result.documents == 40
    hits = pstfast.search(f'"{PHRASE}"', "p1", pg_dsn)
    assert [str(h.email_id) for h in hits] == [rows[7]["email_id"]]
    assert len(pstfast.search("zebracorn", "p1", pg_dsn)) == 2
    assert pstfast.search(f'"{PHRASE}"', "other-project", pg_dsn) == []
    assert main(["search", f'"{PHRASE}"', "--project-id", "p1", "--db", pg_dsn]) == 0
    assert rows[7]["email_id"] in capsys.readouterr().out
    first = table_checksum(pg_dsn, "email_messages")
    pstfast.index(tmp_path, "pA", pg_dsn)
    assert table_checksum(pg_dsn, "email_messages") == first


def test_index_fills_every_part_and_a_rerun_fills_only_what_is_missing(
        tmp_path: Path, pg_dsn: str, write_output) -> None:
    rows = _load(tmp_path, pg_dsn, write_output)
    assert pstfast.search(f'"{PHRASE}"', "p1", pg_dsn) == []  # not searchable before the index stage
    assert pstfast.index(tmp_path, "pA", pg_dsn).documents == 40
    with psycopg.connect(pg_dsn) as conn:  # every part was filled, with the function's value
        same = conn.execute("SELECT s.search_vector = pstfast_search_vector(subject, sender_name, sender_email, "
                            "\"to\", cc, bcc, body_text) FROM email_messages JOIN email_search s USING (email_id)"
                            ).fetchall()
        assert same == [(True,)] * 40
        conn.execute("DELETE FROM email_search WHERE email_id = %s", (rows[7]["email_id"],))
    assert pstfast.search(f'"{PHRASE}"', "p1", pg_dsn) == []
    from pstfast.enrich.index import fill_search_vectors

    assert fill_search_vectors(pg_dsn, "p1", "pA", parts=3) == 1  # only the email without an entry
    assert [str(h.email_id) for h in pstfast.search(f'"{PHRASE}"', "p1", pg_dsn)] == [rows[7]["email_id"]]


def test_a_changed_email_loses_its_search_entry_until_the_index_stage_runs(
        tmp_path: Path, pg_dsn: str, write_output) -> None:
    rows = _load(tmp_path, pg_dsn, write_output)
    pstfast.index(tmp_path, "pA", pg_dsn)
    assert len(pstfast.search("zebracorn", "p1", pg_dsn)) == 2
    rows[8]["body_text"] = "now about something else"  # a re-extract changed one email...
    removed = rows.pop(20)  # ...and no longer has another
    write_output(tmp_path, "pA", rows)
    pstfast.load(tmp_path, "pA", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        left = {str(r[0]) for r in conn.execute("SELECT email_id FROM email_search")}
    assert len(left) == 38 and rows[8]["email_id"] not in left and removed["email_id"] not in left
    pstfast.index(tmp_path, "pA", pg_dsn)
    assert [str(h.email_id) for h in pstfast.search("zebracorn", "p1", pg_dsn)] == [rows[7]["email_id"]]


def test_huge_body_stays_under_tsvector_limit(tmp_path: Path, pg_dsn: str, write_output) -> None:
    # 2.4 MB of distinct words: an untruncated tsvector of this would exceed 1 MB
    huge = " ".join(f"w{i:07d}x" for i in range(250_000))
    _load(tmp_path, pg_dsn, write_output, n=12, b3=huge)
    with psycopg.connect(pg_dsn) as conn, pytest.raises(psycopg.errors.ProgramLimitExceeded):
        conn.execute("SELECT to_tsvector('simple', %s)", (huge,))
    pstfast.index(tmp_path, "pA", pg_dsn)
    assert pstfast.search("w0000005x", "p1", pg_dsn)  # the start of the body is indexed


def test_opensearch_bulk_ndjson_is_deterministic_and_chunked() -> None:
    docs = [{"email_id": f"id-{i:04d}", "subject": "ü" * 50, "body_text": "x" * 1000} for i in range(100)]
    chunks = list(bulk_ndjson_chunks(bulk_actions(docs, index_name("Proj 1")), max_bytes=20_000))
    assert chunks == list(bulk_ndjson_chunks(bulk_actions(docs, index_name("Proj 1")), max_bytes=20_000))
    assert len(chunks) > 1 and all(len(c) <= 20_000 for c in chunks)
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 200
    for i in range(100):
        action, source = json.loads(lines[2 * i]), json.loads(lines[2 * i + 1])
        assert action == {"index": {"_index": "pstfast-proj-1", "_id": f"id-{i:04d}"}}
        assert source == docs[i]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_opensearch_backend_writes_replayable_bulk_files_then_fails_transiently(
    tmp_path: Path, pg_dsn: str, write_output
) -> None:
    """No OpenSearch server here: the NDJSON is written, the send fails as retryable."""
    rows = _load(tmp_path, pg_dsn, write_output)
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TransientError, match="OpenSearch"):
        pstfast.index(tmp_path, "pA", pg_dsn, backend="opensearch", opensearch_url=url)
    stage = tmp_path / "pst-v2" / "pA" / "stages" / "index"
    listing = json.loads((stage / "bulk.json").read_text())
    body = b"".join((stage / f["name"]).read_bytes() for f in listing["files"])
    lines = body.decode().splitlines()
    ids = [json.loads(x)["index"]["_id"] for x in lines[0::2]]
    assert ids == sorted(r["email_id"] for r in rows)
    assert json.loads(lines[1])["pst_file_id"] == "pA"
