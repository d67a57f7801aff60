"""Wall time and peak RSS of every process of a command, without psutil.

A thread polls ``/proc`` while the command runs, follows its process tree (the pstfast
main process, its extract workers, helper tools) and keeps each process's ``VmHWM``: the
kernel's own peak resident set size, so short polls miss nothing but processes that live
shorter than the poll interval. PostgreSQL backends are not descendants of the command
(the server runs on its own) and are not counted.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measured:
    """One measured command."""

    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    #: pid -> (process name, peak RSS in MB)
    peaks: dict[int, tuple[str, float]] = field(default_factory=dict)
    root_pid: int = 0

    @property
    def rss_main_mb(self) -> float:
        return self.peaks.get(self.root_pid, ("", 0.0))[1]

    @property
    def rss_children_max_mb(self) -> float:
        return max((mb for pid, (_, mb) in self.peaks.items() if pid != self.root_pid), default=0.0)

    def rss_info(self) -> dict[str, Any]:
        """The ``extra_info`` keys every benchmark records."""
        return {"peak_rss_main_mb": round(self.rss_main_mb, 1),
                "peak_rss_child_max_mb": round(self.rss_children_max_mb, 1),
                "processes": len(self.peaks)}

    def check(self) -> Measured:
        if self.returncode != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"{' '.join(self.argv[:3])} exited {self.returncode}: {' | '.join(tail)}")
        return self


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(root: int) -> list[int]:
    """*root* and every live descendant."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def peak_rss(pid: int) -> tuple[str, float] | None:
    """(name, VmHWM in MB) of *pid*, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    name, hwm = "?", None
    for line in text.splitlines():
        if line.startswith("Name:"):
            name = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else "?"
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return None if hwm is None else (name, hwm)


class TreeWatcher:
    """Polls the process tree under *root* and keeps each process's peak RSS."""

    def __init__(self, root: int, interval: float = 0.2, include_root: bool = True) -> None:
        self.root, self.interval, self.include_root = root, interval, include_root
        self.peaks: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        for pid in tree(self.root):
            if pid == self.root and not self.include_root:
                continue
            got = peak_rss(pid)
            if got is not None and got[1] >= self.peaks.get(pid, ("", 0.0))[1]:
                self.peaks[pid] = got

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()


def reset_own_peak() -> bool:
    """Reset this process's VmHWM (``clear_refs`` 5), so a later read is this span's peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
        interval: float = 0.2) -> Measured:
    """Run *argv*, timing it and recording the peak RSS of each process in its tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    watcher = TreeWatcher(proc.pid, interval)
    with watcher:
        out, err = proc.communicate()
        # the root's /proc entry vanishes once reaped: its peak is from the last poll
    seconds = time.perf_counter() - t0
    return Measured(list(argv), seconds, proc.returncode, out, err, watcher.peaks, proc.pid)
