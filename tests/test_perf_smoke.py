"""Smoke test of the perf harness: every benchmark once, on tiny inputs, in the default run.

The real suite (perf/, see perf/README.md) is slow and not part of the default run; this
keeps it from rotting: it runs perf/bench_e2e.py, perf/bench_extract.py, perf/bench_load.py
and perf/bench_kernels.py in a subprocess with tiny sizes and one round each, then checks
the saved JSON (throughput, RSS, ratios) and builds the dashboard from it. No timing is
asserted: only that the harness runs and records what it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("perf-smoke")
    out = tmp / "results" / "smoke.json"
    out.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PSTFAST_DATABASE_URL", "PSTFAST_WORKERS")}
    env.update(
        PSTFAST_PERF_CACHE=str(tmp / "cache"), PSTFAST_PERF_SIZES="120", PSTFAST_PERF_WORKERS="1,2",
        PSTFAST_PERF_LEGACY_FULL_MAX="120", PSTFAST_BENCH_MESSAGES="120", PSTFAST_BENCH_ROWS="300",
        PSTFAST_BENCH_PERROW_ROWS="50", PSTFAST_BENCH_THREAD_ROWS="200,400", PSTFAST_HOME=str(tmp / "home"),
        PSTFAST_BENCH_ROUNDS="1", PSTFAST_BENCH_RSS_SIZES="120", PSTFAST_BENCH_EXTRACT_SIZES="120,150",
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
           "perf/bench_e2e.py", "perf/bench_extract.py", "perf/bench_load.py", "perf/bench_kernels.py",
           "-k", "not jit",  # cold numba compile takes minutes: the full suite measures it
           "--benchmark-enable", "--benchmark-min-rounds=1", "--benchmark-max-time=0.000001",
           "--benchmark-warmup=off", f"--benchmark-json={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _benchmarks(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    assert data["commit_info"].get("id"), "the saved JSON carries the commit id"
    assert data["machine_info"].get("cpu"), "the saved JSON carries machine info"
    return {b["fullname"].rsplit("/", 1)[-1]: b for b in data["benchmarks"]}


def test_every_benchmark_ran_and_recorded(smoke_json: Path) -> None:
    benches = _benchmarks(smoke_json)
    for name in ("bench_e2e.py::test_e2e_pstfast[120-w1]", "bench_e2e.py::test_e2e_pstfast[120-w2]",
                 "bench_e2e.py::test_e2e_legacy[120]", "bench_e2e.py::test_db_floor[120]",
                 "bench_extract.py::test_legacy[120]",
                 "bench_extract.py::test_readpst_j2[120]", "bench_extract.py::test_pffexport[120]",
                 "bench_extract.py::test_pstfast[120-1]", "bench_extract.py::test_pstfast[120-2]",
                 "bench_extract.py::test_pstfast_worker_rss[120]",
                 "bench_load.py::test_pstfast_load", "bench_load.py::test_raw_copy_psql",
                 "bench_load.py::test_per_row_insert", "bench_load.py::test_load_toast[pglz]",
                 "bench_kernels.py::test_content_hash[numba]"):
        assert name in benches, f"{name} missing; got {sorted(benches)}"
    for name, b in benches.items():
        assert "peak_rss_main_mb" in b["extra_info"], name
    e2e = benches["bench_e2e.py::test_e2e_pstfast[120-w2]"]["extra_info"]
    assert e2e["messages"] > 120 and e2e["messages_per_s"] > 0 and e2e["mb_per_s"] > 0
    assert set(e2e["stage_seconds"]) == {"extract", "load", "thread", "dedupe", "index"}
    assert e2e["processes"] >= 2, "the 2-worker run's worker processes were seen"
    assert "ratio_vs_legacy_orm" in e2e and "ratio_vs_1_worker" in e2e
    floor = benches["bench_e2e.py::test_db_floor[120]"]["extra_info"]
    assert floor["copy_seconds"] > 0 and floor["vectors_seconds"] > 0 and "ratio_vs_legacy_orm" in floor
    for size in (120, 150):  # each size's tools compared with that size's baselines only
        extract = benches[f"bench_extract.py::test_pstfast[{size}-2]"]
        readpst = benches[f"bench_extract.py::test_readpst_j2[{size}]"]
        assert {"ratio_vs_readpst_j_2", "ratio_vs_legacy_extract", "ratio_vs_1_worker"} <= set(extract["extra_info"])
        assert extract["extra_info"]["messages"] == readpst["extra_info"]["messages"] > size
        by_hand = readpst["stats"]["median"] / extract["stats"]["median"]  # same rows: rates' ratio
        assert abs(extract["extra_info"]["ratio_vs_readpst_j_2"] - by_hand) <= 0.0051  # rounded to 2 places
        assert extract["extra_info"]["speedup_vs_readpst_j2"] == round(by_hand, 2)
    assert (benches["bench_extract.py::test_pstfast[150-2]"]["extra_info"]["messages"]
            > benches["bench_extract.py::test_pstfast[120-2]"]["extra_info"]["messages"])
    assert benches["bench_extract.py::test_pstfast_worker_rss[120]"]["extra_info"]["peak_rss_child_max_mb"] > 0
    assert "ratio_vs_raw_copy" in benches["bench_load.py::test_pstfast_load"]["extra_info"]
    assert "ratio_vs_python_reference" in benches["bench_kernels.py::test_content_hash[numba]"]["extra_info"]


def test_legacy_rows_match_pstfast_counts(smoke_json: Path) -> None:
    benches = _benchmarks(smoke_json)
    legacy = benches["bench_e2e.py::test_e2e_legacy[120]"]["extra_info"]
    pst = benches["bench_e2e.py::test_e2e_pstfast[120-w1]"]["extra_info"]
    assert legacy["legacy_mode"] == "full"
    # pypff cannot open embedded messages: the legacy writes every top-level row, no children
    assert legacy["legacy_rows"]["emails"] == legacy["pst_messages"] < pst["counts"]["emails"]
    assert 0 < legacy["legacy_rows"]["attachments"] <= pst["counts"]["attachments"]


def test_dashboard_builds_from_results(smoke_json: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    data = json.loads(smoke_json.read_text())
    (results / "run1.json").write_text(json.dumps(data))
    (results / "run2.json").write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "pstfast.cli", "dev", "perf-dashboard", "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = results / "dashboard"
    for name in ("dashboard.png", "throughput.png", "ratios.png", "scaling.png"):
        assert (out / name).stat().st_size > 10_000, name
    page = (out / "index.html").read_text()
    assert "test_e2e_pstfast[120-w2]" in page and "legacy ORM" in page


def test_legacy_projection_uses_the_measured_open() -> None:
    from perf import ratios

    # values by hand: fixed = start-up (140 - 139) + open 110 = 111 s; per message =
    # (139 - 110) / 10,000 = 2.9 ms; whole PST = 111 + 103,091 x 0.0029 = 409.96 s
    info = {"legacy_mode": "sampled", "pst_messages": 103_091, "legacy_samples": {
        "10000": {"messages": 10_000, "seconds": 140.0, "run_seconds": 139.0, "open_seconds": 110.0}}}
    projected, fixed, per = ratios.legacy_projection(info)
    assert (round(fixed, 6), round(per, 6), round(projected, 2)) == (111.0, 0.0029, 409.96)
    # runs saved before the open was timed: the line through the two largest samples
    old = {"legacy_mode": "sampled", "pst_messages": 20_000, "legacy_samples": {
        "5000": {"messages": 5_000, "seconds": 60.0}, "10000": {"messages": 10_000, "seconds": 70.0}}}
    assert ratios.legacy_projection(old) == (90.0, 50.0, 0.002)
    assert ratios.legacy_projection({"legacy_mode": "full"}) is None


def _extract_run(when: str, sizes_workers: list[tuple[int | None, int]]) -> object:
    """A saved extract run: pstfast and readpst rows per (size or None, workers), by hand."""
    import datetime as dt

    from perf import dashboard

    def bench(name: str, median: float) -> dict:
        return {"fullname": f"perf/bench_extract.py::{name}", "name": name, "stats": {"median": median},
                "extra_info": {"messages": 1000}}

    benches = []
    for size, workers in sizes_workers:
        tag = "" if size is None else f"[{size}]"
        benches.append(bench(f"test_readpst_j2{tag}", 2.0))
        benches.append(bench(f"test_pstfast[{workers}]" if size is None else f"test_pstfast[{size}-{workers}]", 4.0))
    return dashboard.Run(Path(when), dt.datetime.fromisoformat(when), "c0ffee0", False, "m", benches)


def test_ratio_table_supersedes_unsized_extract_runs() -> None:
    from perf import dashboard

    old = _extract_run("2026-11-01T00:00:00", [(None, 2)])  # saved before sizes were parameters
    both = _extract_run("2026-11-02T00:00:00", [(20000, 2), (50000, 2)])
    small = _extract_run("2026-11-03T00:00:00", [(20000, 2)])
    names = {(r["benchmark"], r["baseline"]): r["ratio"] for r in dashboard.ratio_table([old, both, small])}
    # the unsized row is gone; the 53k row stays although the latest run measured 20k only
    assert names == {("test_pstfast[20000-2]", "readpst -j 2"): 0.5, ("test_pstfast[50000-2]", "readpst -j 2"): 0.5}
    # with no sized run after it, the old row is still the latest word
    assert [r["benchmark"] for r in dashboard.ratio_table([old])] == ["test_pstfast[2]"]


def test_search_benchmarks_run_and_record(tmp_path: Path) -> None:
    """perf/bench_search.py once on 10 e-mails: every format, both embedding modes, the
    index stage per mode, each with the figure perf/README.md quotes."""
    out = tmp_path / "search.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PSTFAST_DATABASE_URL", "PSTFAST_EMBEDDINGS")}
    env.update(PSTFAST_BENCH_SEARCH_EMAILS="10", PSTFAST_BENCH_ROUNDS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "perf/bench_search.py",
           "--benchmark-enable", "--benchmark-min-rounds=1", "--benchmark-max-time=0.000001",
           "--benchmark-warmup=off", f"--benchmark-json={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    benches = _benchmarks(out)
    for kind in ("pdf", "docx", "xlsx", "pptx", "html", "text", "zip"):
        assert benches[f"bench_search.py::test_attachment_text[{kind}]"]["extra_info"]["mb_per_s"] > 0
    for mode in ("fast", "quality"):
        assert benches[f"bench_search.py::test_embeddings[{mode}]"]["extra_info"]["texts_per_s"] > 0
    for mode in ("none", "fast", "quality"):
        info = benches[f"bench_search.py::test_index_stage[{mode}]"]["extra_info"]
        assert info["messages"] == 10 and info["seconds_per_1000"] > 0
