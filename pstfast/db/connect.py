"""PostgreSQL connections: where the database is, and errors worth retrying.

DSN resolution: an explicit ``--db`` argument, else ``PSTFAST_DATABASE_URL``, else the
embedded PostgreSQL (:mod:`pstfast.db.embedded`).

Every connection failure or dropped connection becomes a :class:`DatabaseError`
(transient: retry with backoff). SQL text comes from ``sql/*.sql`` via :func:`sql_text`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from .. import config
from ..errors import DatabaseError, UsageError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    from typing_extensions import TypeAlias

    #: where a stage's database is: a DSN, a psycopg connection or pool (whose conninfo
    #: names the database; the stage opens its own connections there), or None: the default
    Database: TypeAlias = "str | psycopg.Connection[Any] | psycopg_pool.ConnectionPool[Any] | None"


def resolve_dsn(db: Database = None) -> str:
    """The DSN to use: *db* (a DSN, or the conninfo of a psycopg connection or pool), else
    ``PSTFAST_DATABASE_URL``, else the embedded server.

    Stages run COPY and their own transactions on connections of their own (the load and
    the index stage on two at once), so a connection or pool given to them names the
    database; it is not used for their work."""
    if db is not None and not isinstance(db, str):
        db = _conninfo(db)
    dsn = config.database_url(db)
    if dsn:
        return dsn
    from .embedded import embedded_dsn

    return embedded_dsn()


def _conninfo(db: Any) -> str:
    conninfo = getattr(db, "conninfo", None)  # psycopg_pool.ConnectionPool
    if isinstance(conninfo, str):
        return conninfo
    info = getattr(db, "info", None)  # psycopg.Connection: its DSN lacks the password
    if info is not None and hasattr(info, "dsn"):
        from psycopg.conninfo import make_conninfo

        password = getattr(info, "password", None)
        return make_conninfo(info.dsn, password=password) if password else str(info.dsn)
    raise UsageError(f"db: expected a DSN, a psycopg connection or pool, got {type(db).__name__}")


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


def connect(db: Database = None, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A new psycopg connection to the resolved DSN (the caller closes it).

    Raises:
        MissingDependencyError: psycopg is not installed (``pstfast[postgres]``).
        DatabaseError: the server cannot be reached.
    """
    from ..extras import require

    psycopg = require("psycopg", "PostgreSQL")
    dsn = resolve_dsn(db)
    with translate_errors(dsn, "connecting to PostgreSQL"):
        conn = psycopg.connect(dsn, autocommit=autocommit, application_name="pstfast")
    return conn  # type: ignore[no-any-return]  # psycopg is imported by name, as an optional extra


@contextmanager
def connection(db: Database = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
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


def set_toast_compression(conn: psycopg.Connection[Any], choice: str) -> str:
    """Make this session compress long values it writes with *choice* (``auto``: lz4 when
    the server offers it, else leave the server's default) and return the method in effect.

    Rows keep the compression they were first written with (an ``INSERT ... SELECT`` from
    staging does not recompress), so it is set on every connection that COPYs. lz4 on
    PostgreSQL 15 (perf/bench_load.py, ``toast``): 21,272 writer-made emails load in 2.6 s
    instead of 3.8 s with pglz, into a table 12 % larger (97 MB instead of 87)."""
    row = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
    offered = list(row[0]) if row else ["pglz"]  # before PostgreSQL 14: pglz, and no setting
    wanted = ("lz4" if "lz4" in offered else None) if choice == "auto" else choice
    if wanted is not None and wanted not in offered:
        raise UsageError(f"PSTFAST_TOAST_COMPRESSION={wanted}: this server offers {', '.join(offered)}: use auto")
    if row is None:
        return "pglz"
    if wanted is not None:
        conn.execute(f"SET default_toast_compression = {wanted}")  # one of the server's own names
    shown = conn.execute("SHOW default_toast_compression").fetchone()
    return str(shown[0]) if shown else "pglz"


_T = TypeVar("_T")
_log = logging.getLogger("pstfast.db")

#: SQLSTATEs of a transaction that lost a race and is worth running again at once:
#: serialization_failure, deadlock_detected, lock_not_available
CONFLICTS = ("40001", "40P01", "55P03")


def run_retrying(conn: psycopg.Connection[Any], work: Callable[[], _T], what: str, attempts: int = 12) -> tuple[_T, int]:
    """Run *work* in a transaction of its own on *conn* (which must be idle); when it ends
    in a serialization failure, a deadlock or a lock it would not wait for, roll back and
    run it again. Returns (its result, attempts used).

    Raises:
        DatabaseError: still conflicting after *attempts* (transient: the stage retry
            tries again later), or the connection failed.
    """
    import psycopg

    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            with conn.transaction():
                return work(), attempt
        except psycopg.errors.OperationalError as exc:
            if getattr(exc, "sqlstate", None) not in CONFLICTS:
                raise
            last = exc
            _log.info("%s: attempt %d lost a race (%s); running it again", what, attempt, exc.sqlstate)
    raise DatabaseError(f"{what}: still conflicting with concurrent runs after {attempts} attempts: {last}") from last


@cache
def sql_text(name: str) -> str:
    """The text of ``sql/queries/<name>`` (shipped as package data of ``pstfast.sql``)."""
    return resources.files("pstfast.sql").joinpath("queries", name).read_text(encoding="utf-8")


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
