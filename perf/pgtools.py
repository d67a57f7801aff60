"""Fresh, migrated benchmark databases on one PostgreSQL server (shared by the benchmarks)."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.conninfo import make_conninfo


class Databases:
    """Fresh, migrated databases on one server (dropped at the end)."""

    def __init__(self, server: str) -> None:
        self.server, self.names = server, []

    def fresh(self) -> str:
        from pstfast.db.migrate import migrate

        name = f"pstfast_perf_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        dsn = make_conninfo(self.server, dbname=name)
        migrate(dsn)
        return dsn

    def drop(self, dsn: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
