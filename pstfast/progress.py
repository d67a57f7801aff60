"""A tiny progress bar: items done / total and rate on a TTY, silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Redraws one stderr line at most every 0.2 s; does nothing when not a TTY."""

    def __init__(self, total: int, label: str = "extract", enabled: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.done = total, label, 0
        self.started = time.perf_counter()
        self._drawn = 0.0

    def update(self, items: int) -> None:
        """Count *items* more as done."""
        self.done += items
        now = time.perf_counter()
        if self.enabled and (now - self._drawn >= 0.2 or self.done >= self.total):
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        width = 30
        share = self.done / self.total if self.total else 1.0
        filled = int(width * min(share, 1.0))
        rate = self.done / max(now - self.started, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                          f"{self.done}/{self.total} items  {rate:,.0f}/s")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
