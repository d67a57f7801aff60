"""Numbered, idempotent schema migrations (``sql/NNN_*.sql``), applied in order.

``schema_migrations`` records each applied version with the sha256 of its text. Every
file is written to be re-runnable (``IF NOT EXISTS``, ``CREATE OR REPLACE``), so a file
whose text changed is applied again. An advisory lock serialises concurrent migrators
(several stages starting at once).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .db import connection, sql_text

_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x7073_7466_6173_74  # "pstfast"


@dataclass
class MigrateResult:
    """Which migrations ran now and which were already there."""

    applied: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)


def migration_names() -> list[str]:
    """The migration files in version order."""
    names = [p.name for p in resources.files("pstfast.sql").iterdir() if _MIGRATION.match(p.name)]
    return sorted(names)


def apply_migrations(conn: Any) -> MigrateResult:
    """Apply pending migrations on an open connection (each in its own transaction)."""
    result = MigrateResult()
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    conn.commit()
    try:
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        done = dict(conn.execute("SELECT version, sha256 FROM schema_migrations").fetchall())
        conn.commit()
        for name in migration_names():
            text = sql_text(name)
            digest = hashlib.sha256(text.encode()).hexdigest()
            version = name[:3]
            if done.get(version) == digest:
                result.current.append(name)
                continue
            with conn.transaction():
                conn.execute(text)  # no parameters: simple protocol, several statements
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)"
                    " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name,"
                    " sha256 = EXCLUDED.sha256, applied_at = now()",
                    (version, name, digest),
                )
            result.applied.append(name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()
    return result


def migrate(db: str | None = None) -> MigrateResult:
    """Bring the database at *db* (or the default) up to date."""
    with connection(db) as conn:
        return apply_migrations(conn)
