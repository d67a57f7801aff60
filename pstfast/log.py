"""Logging: the ``pstfast.*`` loggers, how the command line sets them up, and progress.

The library only ever logs (``logging.getLogger(__name__)`` in each module) and never
prints; :func:`configure` is for the ``pstfast`` command (``-v``/``-q``, ``--log-format
json`` for Batch and CloudWatch, or ``PSTFAST_LOG_FORMAT``). A host application that
configures logging itself gets pstfast's records like any other library's.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

_ROOT = "pstfast"
_bar_stream: TextIO | None = None  # set by configure() when progress may be drawn as a bar

# attributes every LogRecord has: whatever else a record carries came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras.

    A record with an ``emf`` extra (a CloudWatch Embedded Metric Format document) has that
    document's keys at the top level, which is what makes CloudWatch read it as metrics.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {}
        emf = getattr(record, "emf", None)
        if isinstance(emf, dict):
            doc.update(emf)
        doc.update({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        })
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "emf" and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False, sort_keys=False)


def configure(verbosity: int = 0, fmt: str = "text", stream: TextIO | None = None) -> Callable[[], None]:
    """Route ``pstfast.*`` records to *stream* (stderr): -1 warnings only, 0 info, 1+ debug.
    Returns a function that puts the previous set-up back (the command line calls it when it
    returns, so a program that calls it twice, or a test, keeps no stale handler).

    Raises:
        ValueError: *fmt* is neither ``text`` nor ``json``.
    """
    global _bar_stream
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: choose text or json")
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("pstfast: %(message)s" if verbosity <= 0
                                               else "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger(_ROOT)
    before = (list(root.handlers), root.level, root.propagate, _bar_stream)
    for old in before[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    root.propagate = False
    _bar_stream = out if fmt == "text" and verbosity >= 0 and _isatty(out) else None

    def restore() -> None:
        global _bar_stream
        root.removeHandler(handler)
        for old in before[0]:
            root.addHandler(old)
        root.setLevel(before[1])
        root.propagate = before[2]
        _bar_stream = before[3]

    return restore


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Items done out of a total: a bar redrawn on a terminal (when the command line set
    one up), else a log line every *every* seconds."""

    def __init__(self, total: int, label: str = "extract", *, enabled: bool = True, every: float = 10.0,
                 logger: logging.Logger | None = None) -> None:
        self.total, self.label, self.done, self.enabled = total, label, 0, enabled
        self.log = logger or logging.getLogger(f"{_ROOT}.progress")
        self.stream = _bar_stream
        self.every = 0.2 if self.stream is not None else every
        self.started = time.perf_counter()
        self._shown = self.started

    def update(self, items: int) -> None:
        """Count *items* more as done."""
        self.done += items
        now = time.perf_counter()
        if self.enabled and now - self._shown >= self.every:
            self._shown = now
            self._show(now)

    def _show(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        share = self.done / self.total if self.total else 1.0
        if self.stream is None:
            self.log.info("%s: %d/%d items (%.0f %%), %.0f items/s", self.label, self.done, self.total,
                          100 * min(share, 1.0), rate)
            return
        width = 30
        filled = int(width * min(share, 1.0))
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} items  {rate:,.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar's line (on a terminal)."""
        if not self.enabled or self.stream is None:
            return  # without a bar, the caller's own summary line ends the work
        self._show(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()
