"""The pipelined first load (big emails.csv.gz: COPY of chunk n+1 overlaps the INSERT of
chunk n, on two connections), forced onto small data: same rows as the serial load, row
splitting that never cuts inside a quoted value, refusal and crash safety."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import psycopg
import pytest
from conftest import make_attachment, make_email, table_checksum
from test_extract_s3 import s3_endpoint  # noqa: F401 (the moto S3 server fixture)
from test_load import _backend_pid, _load_in_thread, _staging_exists, _status

import pstfast
from pstfast.loading import load as loader
from pstfast.errors import DatabaseError, ManifestError

TABLES = ("email_messages", "email_attachments")
NASTY = 'a "quoted" line\nsecond line, with comma\r\n""\n"\nend\\'


def _checksums(dsn: str) -> dict[str, tuple[int, str]]:
    return {t: table_checksum(dsn, t) for t in TABLES}


def _rows(n: int, pst: str) -> tuple[list[dict], list[dict]]:
    emails = [make_email(pst, i, body_text=NASTY * (i % 7), subject=f'subj "{i}"\n' if i % 3 else None)
              for i in range(n)]
    return emails, [make_attachment(e, 0) for e in emails[::4]]


@pytest.fixture
def pipelined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "PIPELINE_MIN_BYTES", 0)
    monkeypatch.setattr(loader, "_CHUNK", 4000)  # many parts
    monkeypatch.setattr(loader, "_BLOCK", 1500)  # blocks end inside rows and quoted values


def _other_db(server: str, tag: str) -> str:
    from psycopg.conninfo import make_conninfo

    name = f"pstfast_{tag}_" + os.urandom(4).hex()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(server, dbname=name)


def _drop_db(server: str, dsn: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_row_chunks_cut_only_between_rows() -> None:
    rng = random.Random(7)
    rows = [[rng.choice(["", "x", 'q"q', "a\nb", "c,d", '""\n"', "\r\n", "é"]) * rng.randrange(4)
             for _ in range(5)] for _ in range(400)]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode()
    for block in (1, 7, 64, 1000):
        blocks = (data[i:i + block] for i in range(0, len(data), block))
        chunks = [b"".join(c) for c in loader._row_chunks(blocks, 300)]
        assert b"".join(chunks) == data
        assert len(chunks) > 3
        parsed = [r for c in chunks for r in csv.reader(io.StringIO(c.decode()))]
        assert parsed == rows  # each chunk parses alone into whole rows


def test_pipelined_load_equals_serial_load(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output,
                                           monkeypatch: pytest.MonkeyPatch, pipelined: None) -> None:
    emails, atts = _rows(300, "pP")
    write_output(tmp_path, "pP", emails, atts)
    result = pstfast.load(tmp_path, "pP", pg_dsn)
    assert "copy_insert" in result.timings  # the pipelined path ran
    assert (result.emails, result.attachments) == (300, len(atts))
    assert not _staging_exists(pg_dsn, "pP")
    got = _checksums(pg_dsn)
    assert pstfast.load(tmp_path, "pP", pg_dsn).timings.get("copy_insert") is None  # a rerun merges
    assert _checksums(pg_dsn) == got
    monkeypatch.setattr(loader, "PIPELINE_MIN_BYTES", 1 << 40)
    serial = _other_db(pg_server_dsn, "serial")
    try:
        assert "copy_insert" not in pstfast.load(tmp_path, "pP", serial).timings
        assert _checksums(serial) == got
    finally:
        _drop_db(pg_server_dsn, serial)


def test_pipelined_load_refuses_duplicates_and_orphans(tmp_path: Path, pg_dsn: str, write_output,
                                                       pipelined: None) -> None:
    emails, atts = _rows(100, "pD")
    orphan = make_attachment(make_email("pD", 999), 0)
    write_output(tmp_path, "pD", [*emails, dict(emails[5])], [*atts, orphan])
    with pytest.raises(ManifestError) as info:
        pstfast.load(tmp_path, "pD", pg_dsn)
    assert "1 duplicate email_ids" in str(info.value) and "1 attachments whose email is missing" in str(info.value)
    assert _status(pg_dsn, "pD")[0] == "failed"
    assert _checksums(pg_dsn) == {"email_messages": (0, ""), "email_attachments": (0, "")}
    # only a duplicate: caught by the primary key during the pipelined insert
    write_output(tmp_path, "pD", [*emails, dict(emails[5])], atts)
    with pytest.raises(ManifestError, match="1 duplicate email_ids"):
        pstfast.load(tmp_path, "pD", pg_dsn)
    assert _checksums(pg_dsn) == {"email_messages": (0, ""), "email_attachments": (0, "")}


def test_pipelined_load_killed_mid_insert(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output,
                                          pipelined: None) -> None:
    base_e, base_a = _rows(20, "p0")
    write_output(tmp_path, "p0", base_e, base_a)
    pstfast.load(tmp_path, "p0", pg_dsn)
    before = _checksums(pg_dsn)
    emails, atts = _rows(300, "pK")
    write_output(tmp_path, "pK", emails, atts)
    with psycopg.connect(pg_dsn) as blocker:
        # the first part's INSERT waits here; the COPY connection goes on filling parts
        blocker.execute("LOCK TABLE email_messages IN SHARE MODE")
        thread, errors = _load_in_thread(tmp_path, "pK", pg_dsn)
        pid = _backend_pid(pg_dsn, "wait_event_type = 'Lock' AND query LIKE 'INSERT INTO email_messages%%'")
        with psycopg.connect(pg_dsn, autocommit=True) as killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        thread.join(60)
        blocker.rollback()
    assert len(errors) == 1 and isinstance(errors[0], DatabaseError), errors
    assert _checksums(pg_dsn) == before
    assert _status(pg_dsn, "pK")[0] != "loaded"
    result = pstfast.load(tmp_path, "pK", pg_dsn)  # the retry drops the parts left behind
    assert "copy_insert" in result.timings and not _staging_exists(pg_dsn, "pK")
    clean = _other_db(pg_server_dsn, "clean")
    try:
        pstfast.load(tmp_path, "p0", clean)
        pstfast.load(tmp_path, "pK", clean)
        assert _checksums(pg_dsn) == _checksums(clean)
    finally:
        _drop_db(pg_server_dsn, clean)


@pytest.mark.usefixtures("s3_endpoint", "pipelined")
def test_pipelined_load_from_s3(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from pstfast import storage

    emails, atts = _rows(120, "pS")
    local = write_output(tmp_path / "local", "pS", emails, atts)
    boto3.client("s3").create_bucket(Bucket="load-bucket")
    remote = storage.output_prefix("s3://load-bucket/out", "pS")
    for f in local.iterdir():
        storage.upload(f, storage.join(remote, f.name))
    monkeypatch.setenv("PSTFAST_SCRATCH", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    result = pstfast.load("s3://load-bucket/out", "pS", pg_dsn)
    assert "copy_insert" in result.timings and (result.emails, result.attachments) == (120, len(atts))
    assert not any((tmp_path / "scratch").iterdir())  # the local copy is removed
    serial = _other_db(pg_server_dsn, "s3serial")
    try:
        pstfast.load(tmp_path / "local", "pS", serial)
        assert _checksums(serial) == _checksums(pg_dsn)
    finally:
        _drop_db(pg_server_dsn, serial)
