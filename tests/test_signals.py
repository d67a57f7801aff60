"""Processes on a bad day (issue 19): a killed worker is transient, a signalled extract stops
its whole process tree and removes its scratch, and a killed one takes its tree with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pstfast.synthetic.corpus import SynthOptions, synth

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _wait_for(predicate, what: str, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll *predicate* (a process state only /proc can tell) until it is true or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def big_pst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sig") / "big.pst"
    synth(path, options=SynthOptions(messages=8000, seed=4, large_attachment_every=0, rtf_html_rate=0,
                                     rtf_only_rate=0))
    return path


def _start(pst: Path, tmp: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """An extract with 2 workers, once both workers run: (process, its workers' pids)."""
    proc = subprocess.Popen([sys.executable, "-m", "pstfast.cli", "extract", str(pst), "--out", str(tmp / "out"),
                             "--workers", "2", "--scratch", str(tmp / "scratch")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the workers are the fork server's children: grandchildren of the extract
    workers = _wait_for(lambda: (lambda d: {p for p in d if p not in _children().get(proc.pid, [])}
                                 if len(d) >= 3 else None)(_alive(descendants(proc.pid))), "two workers")
    return proc, workers


def test_a_killed_worker_is_a_transient_failure(big_pst: Path, tmp_path: Path) -> None:
    proc, workers = _start(big_pst, tmp_path)
    os.kill(min(workers), signal.SIGKILL)  # what the OOM killer does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "extract worker process died" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "pst-v2").exists() or not list((tmp_path / "out").rglob("manifest.json"))


def test_sigterm_stops_the_tree_and_removes_scratch(big_pst: Path, tmp_path: Path) -> None:
    proc, workers = _start(big_pst, tmp_path)
    tree = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    _wait_for(lambda: not _alive(tree), "the fork server and workers to exit", 20)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_sigkill_of_the_extract_takes_its_workers_with_it(big_pst: Path, tmp_path: Path) -> None:
    proc, workers = _start(big_pst, tmp_path)
    tree = descendants(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    _wait_for(lambda: not _alive(tree), "the fork server and workers to die with the extract", 20)
