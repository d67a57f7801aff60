"""Extract throughput, side by side in one run: pstfast (1 and 2 workers), the legacy
baseline, ``readpst -j 2 -e`` and ``pffexport``, on one writer-made PST.

Size: ``PSTFAST_BENCH_MESSAGES`` (default 2000; the issue's target run uses 20000), from
the cached corpus (``perf/corpus.py``). Rounds: ``PSTFAST_BENCH_ROUNDS`` (default 3) for
pstfast, readpst and pffexport, ``PSTFAST_BENCH_LEGACY_ROUNDS`` (default 1) for the legacy
baseline; every rate and ratio uses medians. ``PSTFAST_BENCH_RSS_SIZES`` (e.g.
``20000,100000``) adds one 2-worker extract per size, to compare the workers' peak RSS.
Run: ``python -m pytest perf/bench_extract.py --benchmark-enable -q``. Each result's
extra_info holds messages/s, MB/s and the ratio to the legacy baseline (when it ran first
in the same session, as it does in file order).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy_extract import legacy_extract  # noqa: E402

from perf import leftovers  # noqa: E402

MESSAGES = int(os.environ.get("PSTFAST_BENCH_MESSAGES", "2000"))
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "3"))
LEGACY_ROUNDS = int(os.environ.get("PSTFAST_BENCH_LEGACY_ROUNDS", "1"))
RSS_SIZES = [int(x) for x in os.environ.get("PSTFAST_BENCH_RSS_SIZES", "").split(",") if x.strip()]
_medians: dict[str, float] = {}


def _counted(messages: int, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    from corpus import bench_pst as cached_pst

    import pstfast

    pst = cached_pst(messages)
    out = tmp_path_factory.mktemp("count")
    manifest = pstfast.extract(pst.path, out, workers=2)
    leftovers.set_aside(out)
    return pst.path, manifest.counts["emails"], pst.size_bytes


@pytest.fixture(scope="module")
def bench_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    import pstfast

    # as after `pstfast warm-up`: kernels loaded, the compiled PST reader in use (JIT cost is
    # paid once and reported by perf/bench_kernels.py)
    pstfast.warm_up()
    return _counted(MESSAGES, tmp_path_factory)


def _record(benchmark, name: str, emails: int, size: int) -> None:
    median = benchmark.stats.stats.median
    _medians[name] = median
    benchmark.extra_info.update(messages=emails, pst_mb=round(size / 1e6, 1),
                                messages_per_s=round(emails / median, 1), mb_per_s=round(size / 1e6 / median, 2))
    if "legacy" in _medians and name != "legacy":
        benchmark.extra_info["speedup_vs_legacy"] = round(_medians["legacy"] / median, 2)
    if "pstfast_1" in _medians and name == "pstfast_2":
        benchmark.extra_info["speedup_vs_1_worker"] = round(_medians["pstfast_1"] / median, 2)
    if "readpst_j2" in _medians and name.startswith("pstfast"):
        benchmark.extra_info["speedup_vs_readpst_j2"] = round(_medians["readpst_j2"] / median, 2)


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
    path, emails, size = bench_pst
    out = tmp_path / "legacy"
    _bench(benchmark, lambda: legacy_extract(path, out), out, LEGACY_ROUNDS)
    _record(benchmark, "legacy", emails, size)


def test_readpst_j2(benchmark, bench_pst, tmp_path: Path) -> None:
    path, emails, size = bench_pst
    out = tmp_path / "readpst"

    def run() -> None:
        out.mkdir()
        subprocess.run(["readpst", "-j", "2", "-e", "-q", "-o", str(out), str(path)], check=True)

    _bench(benchmark, run, out, ROUNDS)
    _record(benchmark, "readpst_j2", emails, size)


def test_pffexport(benchmark, bench_pst, tmp_path: Path) -> None:
    path, emails, size = bench_pst
    out = tmp_path / "pffexport"  # pffexport writes out.export

    def run() -> None:
        subprocess.run(["pffexport", "-q", "-t", str(out), str(path)], check=True, stdout=subprocess.DEVNULL)

    _bench(benchmark, run, out, ROUNDS)
    _record(benchmark, "pffexport", emails, size)


@pytest.mark.parametrize("workers", [1, 2])
def test_pstfast(benchmark, bench_pst, tmp_path: Path, workers: int) -> None:
    import pstfast

    path, emails, size = bench_pst
    out = tmp_path / f"w{workers}"
    manifests = []
    _bench(benchmark, lambda: manifests.append(pstfast.extract(path, out, workers=workers)), out, ROUNDS)
    _record(benchmark, f"pstfast_{workers}", emails, size)
    benchmark.extra_info["compiled_reader"] = all(m.extra["compiled_reader"] for m in manifests)


@pytest.mark.skipif(not RSS_SIZES, reason="set PSTFAST_BENCH_RSS_SIZES=20000,100000 to compare worker RSS")
@pytest.mark.parametrize("messages", RSS_SIZES or [0])
def test_pstfast_worker_rss(benchmark, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                            messages: int) -> None:
    """One 2-worker extract per size: peak_rss_child_max_mb is a worker's peak (perf/conftest.py)."""
    import pstfast

    path, emails, size = _counted(messages, tmp_path_factory)
    out = tmp_path / "rss"
    _bench(benchmark, lambda: pstfast.extract(path, out, workers=2), out, 1)
    _record(benchmark, f"pstfast_2_rss_{messages}", emails, size)
