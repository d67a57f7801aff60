"""Writer throughput: ``pstfast synth`` messages/s and MB/s at two sizes.

Run: ``python -m pytest perf/bench_synth.py --benchmark-enable``. The messages/s and MB/s
of the median round are in each benchmark's ``extra_info``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pstfast.synthetic.corpus import SynthOptions, synth


@pytest.mark.parametrize("messages", [2_000, 10_000])
def test_synth_throughput(benchmark, tmp_path: Path, messages: int) -> None:  # type: ignore[no-untyped-def]
    options = SynthOptions(messages=messages, seed=1)
    results = []

    def run() -> None:
        results.append(synth(tmp_path / "bench.pst", options=options))

    benchmark.pedantic(run, rounds=3, iterations=1)
    median = benchmark.stats.stats.median
    size = results[-1].size_bytes
    benchmark.extra_info.update(
        {
            "messages": results[-1].messages,
            "mb": round(size / 1e6, 1),
            "messages_per_s": round(results[-1].messages / median),
            "mb_per_s": round(size / 1e6 / median, 1),
        }
    )
