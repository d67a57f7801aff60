"""PostgreSQL connections: where the database is, and errors worth retrying.

DSN resolution: an explicit ``--db`` argument, else ``PSTFAST_DATABASE_URL``, else an
embedded PostgreSQL (the ``pgserver`` package) whose data lives in ``<PSTFAST_HOME>/pg``.
The embedded server is started on first use and left running, so later processes (the
next stage, ``pstfast search``) reuse it instead of paying a start each time.

Every connection failure or dropped connection becomes a :class:`DatabaseError`
(transient: retry with backoff). SQL text comes from ``sql/*.sql`` via :func:`sql_text`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import config
from .errors import DatabaseError

if TYPE_CHECKING:
    import psycopg


def embedded_dsn(home: str | None = None) -> str:
    """DSN of the embedded PostgreSQL under ``config.home()/pg``, starting it if needed."""
    import pgserver  # heavy: only when no DSN is configured

    root = config.home(home)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: keep the server running after this process exits
        server = pgserver.get_server(root / "pg", cleanup_mode=None)
        return str(server.get_uri())
    except Exception as exc:  # pgserver raises bare subprocess / OS errors
        raise DatabaseError(f"embedded PostgreSQL under {root / 'pg'} did not start: {exc}") from exc


def resolve_dsn(db: str | None = None) -> str:
    """The DSN to use: *db*, else ``PSTFAST_DATABASE_URL``, else the embedded server."""
    return config.database_url(db) or embedded_dsn()


def describe(dsn: str) -> str:
    """*dsn* without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


@contextmanager
def translate_errors(dsn: str, what: str = "database") -> Iterator[None]:
    """Turn psycopg connection-level failures into :class:`DatabaseError`."""
    import psycopg

    try:
        yield
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"{what} failed on {describe(dsn)}: {first}") from exc


def connect(db: str | None = None, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A new psycopg connection to the resolved DSN (the caller closes it)."""
    import psycopg

    dsn = resolve_dsn(db)
    with translate_errors(dsn, "connecting to PostgreSQL"):
        conn = psycopg.connect(dsn, autocommit=autocommit, application_name="pstfast")
    return conn


@contextmanager
def connection(db: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection that commits when the block succeeds (rolls back otherwise) and is
    closed afterwards; connection failures raise :class:`DatabaseError`."""
    dsn = resolve_dsn(db)
    conn = connect(dsn, autocommit=autocommit)
    try:
        with translate_errors(dsn):
            yield conn
            conn.commit()
    finally:
        conn.close()


@lru_cache(maxsize=None)
def sql_text(name: str) -> str:
    """The text of ``sql/<name>`` (shipped as the package ``pstfast.sql``)."""
    return resources.files("pstfast.sql").joinpath(name).read_text(encoding="utf-8")


def sql_statements(name: str, **identifiers: str) -> list[Any]:
    """The statements of ``sql/<name>``, split at ``;`` line ends, with ``{placeholders}``
    filled in as quoted identifiers (``schema.table`` allowed)."""
    from psycopg import sql

    idents = {key: sql.Identifier(*value.split(".")) for key, value in identifiers.items()}
    parts = [p.strip() for p in re.split(r";[ \t]*\n", sql_text(name))]
    statements = []
    for part in parts:
        body = "\n".join(line for line in part.splitlines() if not line.lstrip().startswith("--")).strip()
        if body:
            statements.append(sql.SQL(body).format(**idents) if idents else sql.SQL(body))
    return statements
