"""Extract throughput, side by side in one run: pstfast (1 and 2 workers), the legacy
baseline, ``readpst -j 2 -e`` and ``pffexport``, on writer-made PSTs of one or more sizes.

Sizes: ``PSTFAST_BENCH_EXTRACT_SIZES`` ("20000,50000": every tool on each size, the
smaller first), else ``PSTFAST_BENCH_MESSAGES`` (default 2000), from the cached corpus
(``perf/corpus.py``). Sizes matter here: readpst's cost grows faster than the file (see
README, "Extract alone"). Rounds: ``PSTFAST_BENCH_ROUNDS`` (default 3) for pstfast,
readpst and pffexport, ``PSTFAST_BENCH_LEGACY_ROUNDS`` (default 1) for the legacy baseline;
every rate and ratio uses medians. ``PSTFAST_BENCH_RSS_SIZES`` (e.g. ``20000,100000``) adds
one 2-worker extract per size, to compare the workers' peak RSS.
Run: ``python -m pytest perf/bench_extract.py --benchmark-enable -q``. Each result's
extra_info holds messages/s, MB/s and the ratios to the tools that ran before it on the
same size (file order: legacy, readpst, pffexport, pstfast).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy_extract import legacy_extract  # noqa: E402

from perf import leftovers  # noqa: E402

SIZES = [int(x) for x in (os.environ.get("PSTFAST_BENCH_EXTRACT_SIZES")
                          or os.environ.get("PSTFAST_BENCH_MESSAGES", "2000")).split(",") if x.strip()]
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "3"))
LEGACY_ROUNDS = int(os.environ.get("PSTFAST_BENCH_LEGACY_ROUNDS", "1"))
RSS_SIZES = [int(x) for x in os.environ.get("PSTFAST_BENCH_RSS_SIZES", "").split(",") if x.strip()]
_medians: dict[tuple[int, str], float] = {}  # (size, tool) -> median seconds


def _counted(messages: int, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int, int]:
    from corpus import bench_pst as cached_pst

    import pstfast

    pst = cached_pst(messages)
    out = tmp_path_factory.mktemp("count")
    manifest = pstfast.extract(pst.path, out, workers=2)
    leftovers.set_aside(out)
    return pst.path, manifest.counts["emails"], pst.size_bytes, messages


@pytest.fixture(scope="module", params=SIZES, ids=str)
def bench_pst(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, int, int]]:
    """(path, email rows, bytes, messages asked for) of one size; every test of that size
    runs before the next size's (pytest groups a module fixture's parameters)."""
    import pstfast

    # as after `pstfast warm-up`: kernels loaded, the compiled PST reader in use (JIT cost is
    # paid once and reported by perf/bench_kernels.py)
    pstfast.warm_up()
    yield _counted(request.param, tmp_path_factory)
    # this size's outputs go now, not at the end of the session: a bigger size's would
    # otherwise fill the disk; the next size's first tool (legacy, two files per round)
    # is the one that follows the deletion
    leftovers.delete_all()


def _record(benchmark, name: str, pst: tuple[Path, int, int, int]) -> None:
    _, emails, size, messages = pst
    median = benchmark.stats.stats.median
    _medians[messages, name] = median
    benchmark.extra_info.update(messages=emails, pst_mb=round(size / 1e6, 1),
                                messages_per_s=round(emails / median, 1), mb_per_s=round(size / 1e6 / median, 2))
    before = {tool: seconds for (n, tool), seconds in _medians.items() if n == messages}
    if "legacy" in before and name != "legacy":
        benchmark.extra_info["speedup_vs_legacy"] = round(before["legacy"] / median, 2)
    if "pstfast_1" in before and name == "pstfast_2":
        benchmark.extra_info["speedup_vs_1_worker"] = round(before["pstfast_1"] / median, 2)
    if "readpst_j2" in before and name.startswith("pstfast"):
        benchmark.extra_info["speedup_vs_readpst_j2"] = round(before["readpst_j2"] / median, 2)


def _bench(benchmark, run, out: Path, rounds: int) -> None:
    """Time *run* for *rounds* rounds; before each (untimed): move *out* (and pffexport's
    ``out.export``) aside (perf/leftovers.py) and flush dirty pages, so no round pays for the
    previous one's files."""
    def setup() -> None:
        leftovers.set_aside(out, Path(f"{out}.export"))
        os.sync()

    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1)
    setup()  # the last round's output goes with the others at the end of the session


def test_legacy(benchmark, bench_pst, tmp_path: Path) -> None:
    out = tmp_path / "legacy"
    _bench(benchmark, lambda: legacy_extract(bench_pst[0], out), out, LEGACY_ROUNDS)
    _record(benchmark, "legacy", bench_pst)


def test_readpst_j2(benchmark, bench_pst, tmp_path: Path) -> None:
    out = tmp_path / "readpst"

    def run() -> None:
        out.mkdir()
        subprocess.run(["readpst", "-j", "2", "-e", "-q", "-o", str(out), str(bench_pst[0])], check=True)

    _bench(benchmark, run, out, ROUNDS)
    _record(benchmark, "readpst_j2", bench_pst)


def test_pffexport(benchmark, bench_pst, tmp_path: Path) -> None:
    out = tmp_path / "pffexport"  # pffexport writes out.export

    def run() -> None:
        subprocess.run(["pffexport", "-q", "-t", str(out), str(bench_pst[0])], check=True,
                       stdout=subprocess.DEVNULL)

    _bench(benchmark, run, out, ROUNDS)
    _record(benchmark, "pffexport", bench_pst)


@pytest.mark.parametrize("workers", [1, 2])
def test_pstfast(benchmark, bench_pst, tmp_path: Path, workers: int) -> None:
    import pstfast

    out = tmp_path / f"w{workers}"
    manifests = []
    _bench(benchmark, lambda: manifests.append(pstfast.extract(bench_pst[0], out, workers=workers)), out, ROUNDS)
    _record(benchmark, f"pstfast_{workers}", bench_pst)
    benchmark.extra_info["compiled_reader"] = all(m.extra["compiled_reader"] for m in manifests)


@pytest.mark.skipif(not RSS_SIZES, reason="set PSTFAST_BENCH_RSS_SIZES=20000,100000 to compare worker RSS")
@pytest.mark.parametrize("messages", RSS_SIZES or [0])
def test_pstfast_worker_rss(benchmark, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                            messages: int) -> None:
    """One 2-worker extract per size: peak_rss_child_max_mb is a worker's peak (perf/conftest.py)."""
    import pstfast

    pst = _counted(messages, tmp_path_factory)
    out = tmp_path / "rss"
    _bench(benchmark, lambda: pstfast.extract(pst[0], out, workers=2), out, 1)
    _record(benchmark, "pstfast_2_rss", pst)
