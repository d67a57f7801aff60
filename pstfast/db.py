"""PostgreSQL connections: where the database is, and errors worth retrying.

DSN resolution: an explicit ``--db`` argument, else ``PSTFAST_DATABASE_URL``, else an
embedded PostgreSQL (the ``pgserver`` package) whose data lives in ``<PSTFAST_HOME>/pg``.
The embedded server is started on first use and left running, so later processes (the
next stage, ``pstfast search``) reuse it instead of paying a start each time. Being ours,
it is tuned for bulk loads on first start (:func:`tune_embedded_server`).

Every connection failure or dropped connection becomes a :class:`DatabaseError`
(transient: retry with backoff). SQL text comes from ``sql/*.sql`` via :func:`sql_text`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import config
from .errors import DatabaseError, UsageError

if TYPE_CHECKING:
    import psycopg


def embedded_dsn(home: str | None = None) -> str:
    """DSN of the embedded PostgreSQL under ``config.home()/pg``, starting it if needed."""
    with warnings.catch_warnings():
        # platformdirs warns on hosts without XDG_RUNTIME_DIR (containers, CI); harmless here
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # heavy: only when no DSN is configured

    root = config.home(home)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: keep the server running after this process exits
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            server = pgserver.get_server(root / "pg", cleanup_mode=None)
        tune_embedded_server(server)
        return str(server.get_uri())
    except DatabaseError:
        raise
    except Exception as exc:  # pgserver raises bare subprocess / OS errors
        raise DatabaseError(f"embedded PostgreSQL under {root / 'pg'} did not start: {exc}") from exc


def embedded_settings() -> dict[str, str]:
    """Server settings for the embedded PostgreSQL (only the server we start ourselves).

    ``max_wal_size`` / ``checkpoint_timeout``: a load writes its rows twice (staging, then
    the WAL-logged target), ~2 KB of WAL per 1 KB-body email; with the defaults (1 GB,
    5 min) a checkpoint lands inside long loads and every page touched after it is logged
    again as a full-page image. ``work_mem``: the validation's and the thread/dedupe
    stages' hashes over 100k+ ids stay in memory. Measured and NOT kept (no gain in
    perf/bench_load.py on 2 cores, and they need a restart): larger ``shared_buffers`` /
    ``wal_buffers``, ``wal_compression`` (it only shrinks full-page images).
    """
    return {
        "max_wal_size": "8GB",
        "min_wal_size": "1GB",
        "checkpoint_timeout": "30min",
        "work_mem": "64MB",
        "maintenance_work_mem": "512MB",
    }


def tune_embedded_server(server: Any, settings: dict[str, str] | None = None) -> None:
    """Apply :func:`embedded_settings` to a running pgserver instance (``ALTER SYSTEM`` +
    reload: all of them take effect without a restart). Cheap when already applied."""
    import psycopg

    wanted = settings if settings is not None else embedded_settings()
    uri = str(server.get_uri())
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            current: dict[str, str] = dict(conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", (list(wanted),)).fetchall())
            changed = [name for name, value in wanted.items() if _norm(current.get(name)) != _norm(value)]
            for name in changed:
                conn.execute(f"ALTER SYSTEM SET {name} = '{wanted[name]}'")
            if changed:
                conn.execute("SELECT pg_reload_conf()")
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"tuning the embedded PostgreSQL at {describe(uri)} failed: {exc}") from exc


def _norm(value: str | None) -> str:
    """A setting as PostgreSQL shows it ("2GB", "64MB", "30min") in one spelling."""
    if value is None:
        return ""
    units = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "s": 1, "min": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", value.strip())
    if m and m.group(2) in units:
        return str(int(m.group(1)) * units[m.group(2)])
    return value.strip()


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
    return str(conn.execute("SHOW default_toast_compression").fetchone()[0])


@cache
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
