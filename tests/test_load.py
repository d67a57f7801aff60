"""The load stage against a real PostgreSQL: contract, idempotency, refusal, crash safety."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import psycopg
import pytest
from conftest import corpus_pst, make_attachment, make_email, table_checksum

import pstfast
from pstfast.errors import DatabaseError, ManifestError
from pstfast.loading.load import staging_tables

TABLES = ("email_messages", "email_attachments")


def _checksums(dsn: str) -> dict[str, tuple[int, str]]:
    return {t: table_checksum(dsn, t) for t in TABLES}


def _rows(n: int, pst: str = "pA", every_attachment: int = 3) -> tuple[list[dict], list[dict]]:
    emails = [make_email(pst, i) for i in range(n)]
    atts = [make_attachment(e, k) for i, e in enumerate(emails) if i % every_attachment == 0 for k in range(2)]
    return emails, atts


def _status(dsn: str, pst: str) -> tuple[str, str | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status, error FROM pst_files WHERE pst_file_id = %s", (pst,)).fetchone()
    assert row is not None
    return row[0], row[1]


def _staging_exists(dsn: str, pst: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (staging_tables(pst)["emails"],)).fetchone()[0]


def test_load_counts_rerun_identical(tmp_path: Path, pg_dsn: str, write_output) -> None:
    emails, atts = _rows(50)
    write_output(tmp_path, "pA", emails, atts)
    result = pstfast.load(tmp_path, "pA", pg_dsn)
    assert (result.emails, result.attachments) == (50, len(atts))
    first = _checksums(pg_dsn)
    assert first["email_messages"][0] == 50 and first["email_attachments"][0] == len(atts)
    assert _status(pg_dsn, "pA") == ("loaded", None)
    assert not _staging_exists(pg_dsn, "pA")
    pstfast.load(tmp_path, "pA", pg_dsn)
    assert _checksums(pg_dsn) == first


def test_reload_of_changed_output_converges(tmp_path: Path, pg_dsn: str, write_output, pg_server_dsn) -> None:
    emails, atts = _rows(20)
    write_output(tmp_path, "pA", emails, atts)
    pstfast.load(tmp_path, "pA", pg_dsn)
    # a newer extract: one email gone (with its attachments), one subject changed
    emails2 = [dict(e) for e in emails if e["email_id"] != emails[0]["email_id"]]
    emails2[0]["subject"] = "changed"
    atts2 = [a for a in atts if a["email_id"] != emails[0]["email_id"]]
    write_output(tmp_path, "pA", emails2, atts2)
    pstfast.load(tmp_path, "pA", pg_dsn)
    # same contents as a clean load of the new output into a fresh database
    clean_root = tmp_path / "clean"
    write_output(clean_root, "pA", emails2, atts2)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "pstfast_clean_reload"')
    try:
        from psycopg.conninfo import make_conninfo

        clean = make_conninfo(pg_server_dsn, dbname="pstfast_clean_reload")
        pstfast.load(clean_root, "pA", clean)
        assert _checksums(pg_dsn) == _checksums(clean)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute('DROP DATABASE "pstfast_clean_reload" WITH (FORCE)')


def test_text_with_special_characters_survives(tmp_path: Path, pg_dsn: str, write_output) -> None:
    from pstfast.records import clean_text

    nasty = 'quote " double "" back\\slash \\N tab\there\nnew line\r\ncrlf, comma; NUL\x00 lone \ud800 surrogate {brace} é 日本 😀'
    cleaned = clean_text(nasty)
    # the documented replacement, spelled out independently of the code under test
    assert cleaned == nasty.replace("\x00", "\ufffd").replace("\ud800", "\ufffd")
    row = make_email(
        "pA", 1, subject=cleaned, folder_path="Top/" + cleaned, body_text=cleaned,
        to=['a"b@x', "c\\d@y", "e,f@z", "{g}@w", ""], references=["<r1@x>", 'q"uote'],
        sender_name="", body_html=None,
    )
    att = make_attachment(row, 0, filename=cleaned)
    write_output(tmp_path, "pA", [row], [att])
    pstfast.load(tmp_path, "pA", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        got = conn.execute(
            'SELECT subject, folder_path, body_text, "to", "references", sender_name, body_html FROM email_messages'
        ).fetchone()
        fname = conn.execute("SELECT filename FROM email_attachments").fetchone()[0]
    assert got == (cleaned, "Top/" + cleaned, cleaned, ['a"b@x', "c\\d@y", "e,f@z", "{g}@w", ""],
                   ["<r1@x>", 'q"uote'], "", None)
    assert fname == cleaned


def test_checksum_mismatch_is_refused_and_marks_failed(tmp_path: Path, pg_dsn: str, write_output) -> None:
    emails, atts = _rows(10)
    prefix = write_output(tmp_path, "pA", emails, atts)
    data = bytearray((prefix / "emails.csv.gz").read_bytes())
    data[-12] ^= 0xFF  # inside the deflate stream / trailer: same size, other bytes
    (prefix / "emails.csv.gz").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="checksum mismatch"):
        pstfast.load(tmp_path, "pA", pg_dsn)
    status, error = _status(pg_dsn, "pA")
    assert status == "failed" and "checksum mismatch" in (error or "")
    assert _checksums(pg_dsn) == {"email_messages": (0, ""), "email_attachments": (0, "")}


def test_count_and_invariant_violations_are_refused(tmp_path: Path, pg_dsn: str, write_output) -> None:
    emails, atts = _rows(5)
    write_output(tmp_path, "pA", emails, atts,
                 counts={"folders": 1, "items_seen": 6, "emails": 6, "attachments": len(atts), "errors": 0})
    with pytest.raises(ManifestError, match="5 email rows, manifest says 6"):
        pstfast.load(tmp_path, "pA", pg_dsn)
    orphan = make_attachment(make_email("pA", 99), 0)
    dup = dict(emails[1])
    write_output(tmp_path, "pB", [dict(e, pst_file_id="pB") for e in emails[:3]] + [dict(dup, pst_file_id="pB")],
                 [orphan])
    with pytest.raises(ManifestError) as info:
        pstfast.load(tmp_path, "pB", pg_dsn)
    assert "1 duplicate email_ids" in str(info.value) and "1 attachments whose email is missing" in str(info.value)
    assert _checksums(pg_dsn)["email_messages"] == (0, "")
    assert _status(pg_dsn, "pB")[0] == "failed"


def _backend_pid(dsn: str, predicate: str, timeout: float = 30.0) -> int:
    """Poll pg_stat_activity until the loader's backend matches *predicate* (bounded)."""
    deadline = time.monotonic() + timeout
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                f"SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'pstfast'"
                f" AND pid <> pg_backend_pid() AND {predicate}", (dbname,)).fetchone()
            if row:
                return int(row[0])
            time.sleep(0.01)
    raise AssertionError(f"the loader never reached: {predicate}")


def _load_in_thread(root: Path, pst: str, dsn: str) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            pstfast.load(root, pst, dsn)
        except BaseException as exc:  # collected for the assertion in the main thread
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    return t, errors


def _clean_run_checksums(tmp_path: Path, pg_server_dsn: str, outputs: list[tuple[str, list, list]], write_output):
    from psycopg.conninfo import make_conninfo

    name = "pstfast_clean_" + os.urandom(4).hex()
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = make_conninfo(pg_server_dsn, dbname=name)
        for pst, emails, atts in outputs:
            write_output(tmp_path / "clean", pst, emails, atts)
            pstfast.load(tmp_path / "clean", pst, dsn)
        return _checksums(dsn)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_connection_killed_mid_copy(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output) -> None:
    base_e, base_a = _rows(30, "p0")
    write_output(tmp_path, "p0", base_e, base_a)
    pstfast.load(tmp_path, "p0", pg_dsn)
    before = _checksums(pg_dsn)

    emails, atts = _rows(3000, "pA")
    prefix = write_output(tmp_path, "pA", emails, atts)
    good = (prefix / "emails.csv.gz").read_bytes()
    (prefix / "emails.csv.gz").unlink()
    os.mkfifo(prefix / "emails.csv.gz")  # the loader reads what we feed, when we feed it
    thread, errors = _load_in_thread(tmp_path, "pA", pg_dsn)
    with open(prefix / "emails.csv.gz", "wb") as fifo:
        fifo.write(good[: len(good) // 2])
        fifo.flush()
        pid = _backend_pid(pg_dsn, "query LIKE 'COPY%%' AND state = 'active'")
        with psycopg.connect(pg_dsn, autocommit=True) as killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        fifo.write(good[len(good) // 2:])
    thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], DatabaseError), errors
    assert _checksums(pg_dsn) == before
    assert _status(pg_dsn, "pA")[0] != "loaded"

    (prefix / "emails.csv.gz").unlink()
    (prefix / "emails.csv.gz").write_bytes(good)
    pstfast.load(tmp_path, "pA", pg_dsn)
    assert not _staging_exists(pg_dsn, "pA")
    assert _checksums(pg_dsn) == _clean_run_checksums(
        tmp_path, pg_server_dsn, [("p0", base_e, base_a), ("pA", emails, atts)], write_output)


def test_connection_killed_mid_upsert(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output) -> None:
    base_e, base_a = _rows(30, "p0")
    write_output(tmp_path, "p0", base_e, base_a)
    pstfast.load(tmp_path, "p0", pg_dsn)
    before = _checksums(pg_dsn)

    emails, atts = _rows(500, "pA")
    write_output(tmp_path, "pA", emails, atts)
    with psycopg.connect(pg_dsn) as blocker:
        # load_upsert.sql writes email_messages first, then waits here for email_attachments
        blocker.execute("LOCK TABLE email_attachments IN SHARE MODE")
        thread, errors = _load_in_thread(tmp_path, "pA", pg_dsn)
        pid = _backend_pid(pg_dsn, "wait_event_type = 'Lock' AND query LIKE '%%email_attachments%%'")
        with psycopg.connect(pg_dsn, autocommit=True) as killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        thread.join(60)
        blocker.rollback()
    assert len(errors) == 1 and isinstance(errors[0], DatabaseError), errors
    assert _checksums(pg_dsn) == before
    assert _staging_exists(pg_dsn, "pA")  # left behind by the crash ...
    pstfast.load(tmp_path, "pA", pg_dsn)
    assert not _staging_exists(pg_dsn, "pA")  # ... and cleaned up by the retry
    assert _checksums(pg_dsn) == _clean_run_checksums(
        tmp_path, pg_server_dsn, [("p0", base_e, base_a), ("pA", emails, atts)], write_output)


def test_load_real_extract_output(tmp_path: Path, pg_dsn: str) -> None:
    from pstfast.extraction.run import extract

    for name in ("pstsdk-submessage.pst", "pstsdk-test_unicode.pst", "hiraoka-contacts.pst"):
        pst = corpus_pst(name)
        pid = name.removesuffix(".pst")
        manifest = extract(pst, tmp_path, pst_file_id=pid, project_id="corpus", workers=1, progress=False)
        result = pstfast.load(tmp_path, pid, pg_dsn)
        assert (result.emails, result.attachments) == (manifest.counts["emails"], manifest.counts["attachments"])
    with psycopg.connect(pg_dsn) as conn:
        per_pst = dict(conn.execute("SELECT pst_file_id, count(*) FROM email_messages GROUP BY 1").fetchall())
        folders = [r[0] for r in conn.execute(
            "SELECT folder_path FROM email_messages WHERE pst_file_id = 'hiraoka-contacts'").fetchall()]
    assert per_pst["pstsdk-submessage"] == 2  # the message and its embedded message
    assert any(any("\u3040" <= ch <= "\u9fff" for ch in f) for f in folders), folders
    first = _checksums(pg_dsn)
    pstfast.load(tmp_path, "pstsdk-submessage", pg_dsn)
    assert _checksums(pg_dsn) == first


def _offered(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
    return list(row[0]) if row else ["pglz"]


def _stored_compression(dsn: str, pst: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT DISTINCT pg_column_compression(body_text) FROM email_messages WHERE pst_file_id = %s", (pst,))}


@pytest.mark.parametrize("path", ["serial", "pipelined"])
@pytest.mark.parametrize("choice", ["auto", "pglz"])
def test_bodies_are_compressed_as_configured(tmp_path: Path, pg_dsn: str, write_output,
                                             monkeypatch: pytest.MonkeyPatch, path: str, choice: str) -> None:
    """Long bodies are stored with lz4 when the server offers it (``auto``; the embedded
    server does not, Aurora does), with pglz when asked; a rerun keeps them as they are."""
    from pstfast.loading import load as loader

    if path == "pipelined":  # the second connection COPYs, in parts
        monkeypatch.setattr(loader, "PIPELINE_MIN_BYTES", 0)
        monkeypatch.setattr(loader, "_CHUNK", 40_000)
    monkeypatch.setenv("PSTFAST_TOAST_COMPRESSION", choice)
    # ~6 KB of varied text per body: compressible, above the ~2 KB TOAST threshold
    emails = [make_email("pZ", i, body_text=" ".join(f"w{i}x{k % 97}" for k in range(900))) for i in range(40)]
    write_output(tmp_path, "pZ", emails, [])
    expected = "lz4" if choice == "auto" and "lz4" in _offered(pg_dsn) else "pglz"
    result = pstfast.load(tmp_path, "pZ", pg_dsn)
    assert ("copy_insert" in result.timings) is (path == "pipelined")
    assert result.toast_compression == expected
    assert _stored_compression(pg_dsn, "pZ") == {expected}


def test_toast_compression_setting_is_checked(tmp_path: Path, pg_dsn: str, write_output,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pstfast.errors import UsageError

    write_output(tmp_path, "pY", [make_email("pY", 0)], [])
    monkeypatch.setenv("PSTFAST_TOAST_COMPRESSION", "zstd")
    with pytest.raises(UsageError, match=r"PSTFAST_TOAST_COMPRESSION='zstd': choose auto, lz4, pglz"):
        pstfast.load(tmp_path, "pY", pg_dsn)
    monkeypatch.setenv("PSTFAST_TOAST_COMPRESSION", "lz4")
    if "lz4" in _offered(pg_dsn):
        assert pstfast.load(tmp_path, "pY", pg_dsn).toast_compression == "lz4"
    else:  # the embedded server: built without lz4
        with pytest.raises(UsageError, match=r"PSTFAST_TOAST_COMPRESSION=lz4: this server offers pglz: use auto"):
            pstfast.load(tmp_path, "pY", pg_dsn)
