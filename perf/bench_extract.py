"""Extract throughput, side by side in one run: pstfast (1 and 2 workers), the legacy
baseline, ``readpst -j 2 -e`` and ``pffexport``, on one writer-made PST.

Size: ``PSTFAST_BENCH_MESSAGES`` (default 2000; the issue's target run uses 20000).
Run: ``python -m pytest perf/bench_extract.py --benchmark-enable -q``. Each result's
extra_info holds messages/s, MB/s and the ratio to the legacy baseline (when it ran first
in the same session, as it does in file order).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy_extract import legacy_extract  # noqa: E402

MESSAGES = int(os.environ.get("PSTFAST_BENCH_MESSAGES", "2000"))
_means: dict[str, float] = {}


@pytest.fixture(scope="module")
def bench_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    from pstfast import kernels
    from pstfast.synthetic import SynthOptions, synth

    kernels.warm_up()  # JIT cost is paid once and reported by perf/bench_kernels.py
    path = tmp_path_factory.mktemp("bench") / f"bench-{MESSAGES}.pst"
    synth(path, options=SynthOptions(messages=MESSAGES, seed=7))
    import pstfast

    manifest = pstfast.extract(path, tmp_path_factory.mktemp("count"), workers=2)
    return path, manifest.counts["emails"], path.stat().st_size


def _record(benchmark, name: str, emails: int, size: int) -> None:
    mean = benchmark.stats.stats.mean
    _means[name] = mean
    benchmark.extra_info.update(messages=emails, pst_mb=round(size / 1e6, 1),
                                messages_per_s=round(emails / mean, 1), mb_per_s=round(size / 1e6 / mean, 2))
    if "legacy" in _means and name != "legacy":
        benchmark.extra_info["speedup_vs_legacy"] = round(_means["legacy"] / mean, 2)
    if "pstfast_1" in _means and name == "pstfast_2":
        benchmark.extra_info["speedup_vs_1_worker"] = round(_means["pstfast_1"] / mean, 2)
    if "readpst_j2" in _means and name.startswith("pstfast"):
        benchmark.extra_info["speedup_vs_readpst_j2"] = round(_means["readpst_j2"] / mean, 2)


def _fresh(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.rmtree(out, ignore_errors=True)
    return out


def test_legacy(benchmark, bench_pst, tmp_path: Path) -> None:
    path, emails, size = bench_pst
    benchmark.pedantic(lambda: legacy_extract(path, _fresh(tmp_path, "legacy")), rounds=1, iterations=1)
    _record(benchmark, "legacy", emails, size)


def test_readpst_j2(benchmark, bench_pst, tmp_path: Path) -> None:
    path, emails, size = bench_pst

    def run() -> None:
        out = _fresh(tmp_path, "readpst")
        out.mkdir()
        subprocess.run(["readpst", "-j", "2", "-e", "-q", "-o", str(out), str(path)], check=True)

    benchmark.pedantic(run, rounds=1, iterations=1)
    _record(benchmark, "readpst_j2", emails, size)


def test_pffexport(benchmark, bench_pst, tmp_path: Path) -> None:
    path, emails, size = bench_pst

    def run() -> None:
        out = _fresh(tmp_path, "pffexport")
        subprocess.run(["pffexport", "-q", "-t", str(out), str(path)], check=True,
                       stdout=subprocess.DEVNULL)

    benchmark.pedantic(run, rounds=1, iterations=1)
    _record(benchmark, "pffexport", emails, size)


@pytest.mark.parametrize("workers", [1, 2])
def test_pstfast(benchmark, bench_pst, tmp_path: Path, workers: int) -> None:
    import pstfast

    path, emails, size = bench_pst
    benchmark.pedantic(lambda: pstfast.extract(path, _fresh(tmp_path, f"w{workers}"), workers=workers),
                       rounds=1, iterations=1)
    _record(benchmark, f"pstfast_{workers}", emails, size)
