"""What every ``pstfast`` command shares: argument types, JSON output, the global options."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

from ..pipeline.commands import codepage, identifier, nonnegative_int, positive_int

if TYPE_CHECKING:
    #: what each command group's ``register`` receives: the top-level subcommands
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_codepage", "codepage", "identifier", "positive_int", "nonnegative_int", "emit", "common_options", "add_db", "add_json"]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print a command's result: *text* for people, or *data* as one JSON line with ``--json``."""
    if getattr(args, "json", False):
        print(json.dumps(_plain(data), sort_keys=True, default=str))
    elif text:
        print(text)


def common_options() -> argparse.ArgumentParser:
    """-v / -q / --log-format, accepted before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="debug log lines (each stage command, phases)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="warnings and errors only")
    p.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS,
                   help="log lines as text (default) or JSON objects (Batch, CloudWatch; or PSTFAST_LOG_FORMAT)")
    return p


def add_db(p: argparse.ArgumentParser) -> None:
    """``--db DSN``."""
    p.add_argument("--db", metavar="DSN", help="PostgreSQL DSN (default PSTFAST_DATABASE_URL, else the embedded server)")


def add_codepage(p: argparse.ArgumentParser) -> None:
    """``--codepage CP``: the code page of ANSI strings that name none of their own."""
    p.add_argument("--codepage", metavar="CP", type=codepage,
                   help="code page of ANSI strings that name none (folder names, old messages), e.g. 932 or 1251; "
                        "default: PSTFAST_CODEPAGE, else the store's, else the most common among the messages")


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``: the result as one JSON line on stdout."""
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")


def stderr(text: str) -> None:
    """A line for people on stderr (counts after a listing)."""
    print(text, file=sys.stderr)
