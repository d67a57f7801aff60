"""Numbered schema migrations (``sql/migrations/NNN_*.sql``), applied in order, once.

``schema_migrations`` records each applied version with the sha256 of its text. A file
that was applied and has changed since is an error (:class:`MigrationError`), never applied
again: a schema change is a new numbered file. An advisory lock serialises concurrent
migrators (several stages starting at once). Only write paths migrate (``pstfast db
migrate``, the stages, ``pstfast run``); read paths (``search``, ``submit``) check that the
schema is current and say to migrate when it is not (:func:`require_current`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseError, UsageError
from .connect import connection

if TYPE_CHECKING:
    from .connect import Database

_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x7073_7466_6173_74  # "pstfast"


@dataclass
class MigrateResult:
    """Which migrations ran now and which were already there."""

    applied: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)


class MigrationError(UsageError):
    """The database's applied migrations do not match this pstfast's files."""


def migration_names() -> list[str]:
    """The migration files in version order."""
    folder = resources.files("pstfast.sql").joinpath("migrations")
    return sorted(p.name for p in folder.iterdir() if _MIGRATION.match(p.name))


def migration_text(name: str) -> str:
    """The text of ``sql/migrations/<name>``."""
    return resources.files("pstfast.sql").joinpath("migrations", name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pending(conn: Any) -> list[str]:
    """The migrations not yet applied on *conn* (raises :class:`MigrationError` when an
    applied one has changed)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    done: dict[str, str] = dict(conn.execute("SELECT version, sha256 FROM schema_migrations").fetchall()) if exists else {}
    todo = []
    for name in migration_names():
        digest = done.get(name[:3])
        if digest is None:
            todo.append(name)
        elif digest != _digest(migration_text(name)):
            raise MigrationError(
                f"migration {name} was applied to this database with different text: a released "
                "migration never changes (add a new numbered file instead); restore the file or "
                "check that this pstfast matches the database")
    return todo


def require_current(conn: Any) -> None:
    """Raise :class:`DatabaseError` naming the command to run when *conn*'s schema lacks a
    migration (read paths call this instead of migrating)."""
    todo = pending(conn)
    if todo:
        raise SchemaNotCurrentError(
            f"the database schema is not current ({len(todo)} migration(s) pending, first {todo[0]}): "
            "run `pstfast db migrate` (or any ingest) first")


class SchemaNotCurrentError(DatabaseError):
    """A read path found pending migrations."""


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
        todo = pending(conn)
        conn.commit()
        result.current = [name for name in migration_names() if name not in todo]
        for name in todo:
            text = migration_text(name)
            with conn.transaction():
                conn.execute(text)  # no parameters: simple protocol, several statements
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (name[:3], name, _digest(text)),
                )
            result.applied.append(name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()
    return result


def migrate(db: Database = None) -> MigrateResult:
    """Bring the database at *db* (or the default) up to date.

    Raises:
        MigrationError: an applied migration's text has changed since.
        DatabaseError: PostgreSQL is unreachable or the connection dropped (transient: retry).
    """
    with connection(db) as conn:
        return apply_migrations(conn)
