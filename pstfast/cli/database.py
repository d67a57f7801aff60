"""``pstfast db migrate|status|stop``: the schema and the embedded server."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .common import add_db, add_json, emit

if TYPE_CHECKING:
    from .common import Subcommands


def _migrate(args: argparse.Namespace) -> int:
    from ..db.migrate import migrate

    result = migrate(args.db)
    applied = ": " + ", ".join(result.applied) if result.applied else ""
    emit(args, f"applied {len(result.applied)} migration(s){applied}; {len(result.current)} already current", result)
    return 0


def _status(args: argparse.Namespace) -> int:
    from ..db.embedded import status

    s = status()
    if s.running:
        text = f"embedded PostgreSQL running (pid {s.pid}, socket {s.socket_dir}, port {s.port}), data {s.data_dir}"
    else:
        text = f"embedded PostgreSQL not running ({'data' if s.initialised else 'no data yet'} in {s.data_dir})"
    emit(args, text, s)
    return 0


def _stop(args: argparse.Namespace) -> int:
    from ..db.embedded import stop

    stopped = stop()
    emit(args, "embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running",
         {"stopped": stopped})
    return 0


def register(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    """Add ``db`` and its actions."""
    p = sub.add_parser("db", parents=[common], help="the database: migrations and the embedded server",
                       description="Schema migrations, and the embedded PostgreSQL pstfast starts when no DSN is set.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("migrate", parents=[common], help="apply the numbered schema migrations (sql/migrations)")
    add_db(q)
    add_json(q)
    q.set_defaults(handler=_migrate)
    q = actions.add_parser("status", parents=[common], help="is the embedded PostgreSQL running, and where")
    add_json(q)
    q.set_defaults(handler=_status)
    q = actions.add_parser("stop", parents=[common], help="stop the embedded PostgreSQL (later commands restart it)")
    add_json(q)
    q.set_defaults(handler=_stop)
