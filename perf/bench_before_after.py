"""Before/after: one extract by an earlier checkout and by this one, interleaved, on the same
writer-made PST (which holds every shape the later work reads: HTML-only, HTML-in-RTF and
native-RTF bodies, OLE and by-reference attachments, Exchange senders).

``PSTFAST_BENCH_BEFORE`` (default ``a234e64``, the last commit before issue 17's bodies,
attachments, code pages and Exchange addresses) is checked out into a temporary git
worktree; each round runs both checkouts in fresh subprocesses, in alternating order, each
timing only its ``pstfast.extract(..., workers=2)`` after a warm-up (kernels loaded). The
result's extra_info holds both medians, the ratio of the medians and the median of the
per-round ratios (a loaded machine moves both sides of a round together).
``PSTFAST_BENCH_MESSAGES`` (default 10000), ``PSTFAST_BENCH_ROUNDS`` (default 5).
Run: ``python -m pytest perf/bench_before_after.py --benchmark-enable -q -s``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

HERE = Path(__file__).resolve().parents[1]
BEFORE = os.environ.get("PSTFAST_BENCH_BEFORE", "a234e64")
MESSAGES = int(os.environ.get("PSTFAST_BENCH_MESSAGES", "10000"))
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "5"))

#: run in a subprocess whose PYTHONPATH is ROOT (so are its workers'): warm up, time one extract
_RUN = """
import sys, time
root, pst, out = sys.argv[1:4]
import pstfast
assert pstfast.__file__.startswith(root), pstfast.__file__
pstfast.warm_up()
started = time.perf_counter()
pstfast.extract(pst, out, workers=2, pst_file_id="bench")
print(time.perf_counter() - started)
"""


@pytest.fixture(scope="module")
def before_checkout() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pstfast-before-"))
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(folder / "src"), BEFORE],
                   check=True, capture_output=True)
    yield folder / "src"
    subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(folder / "src")], check=False)
    shutil.rmtree(folder, ignore_errors=True)


def _extract_seconds(root: Path, pst: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _RUN, str(root), str(pst), str(out)], check=True,
                          capture_output=True, text=True, env=env, cwd=out.parent)  # not this checkout's folder
    shutil.rmtree(out, ignore_errors=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_extract_before_and_after(benchmark, before_checkout: Path, tmp_path: Path) -> None:
    from corpus import bench_pst

    pst = bench_pst(MESSAGES).path
    sides = {"before": before_checkout, "after": HERE}
    for root in sides.values():  # untimed: numba compiles each checkout's kernels once
        _extract_seconds(root, pst, tmp_path / "warm")
    times: dict[str, list[float]] = {"before": [], "after": []}
    rounds = iter(range(ROUNDS))

    def one_round() -> None:
        order = ("before", "after") if next(rounds) % 2 == 0 else ("after", "before")
        for side in order:
            times[side].append(_extract_seconds(sides[side], pst, tmp_path / side))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    medians = {side: statistics.median(values) for side, values in times.items()}
    paired = [a / b for a, b in zip(times["after"], times["before"])]
    benchmark.extra_info.update(
        before=BEFORE, messages=MESSAGES, seconds_before=times["before"], seconds_after=times["after"],
        median_before=round(medians["before"], 3), median_after=round(medians["after"], 3),
        ratio_of_medians=round(medians["after"] / medians["before"], 3),
        median_paired_ratio=round(statistics.median(paired), 3))
    print(f"\nbefore ({BEFORE}) {medians['before']:.2f} s, after {medians['after']:.2f} s: "
          f"x{medians['after'] / medians['before']:.3f} (median of paired rounds x{statistics.median(paired):.3f})")
