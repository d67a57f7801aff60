"""Benchmarks: pstfast load vs raw COPY vs a per-row loader; thread + dedupe scaling.

Run with ``python -m pytest perf/bench_load.py --benchmark-enable -q`` (benchmarks are
disabled by default in pyproject's addopts). Sizes come from the environment so CI stays
small and a full run is one variable away::

    PSTFAST_BENCH_ROWS=100000 PSTFAST_BENCH_PERROW_ROWS=5000 \\
    PSTFAST_BENCH_THREAD_ROWS=25000,100000 python -m pytest perf/bench_load.py --benchmark-enable -q

``load`` group, the same ``emails.csv.gz`` (one email per row, ~1 KB bodies):

* ``pstfast_load``: ``pstfast.load`` of a first load = checksum, COPY into UNLOGGED staging
  overlapped with the INSERT into the targets (two connections), validation, one commit
  (its phase timings are in ``extra_info``);
* ``raw_copy_psql``: ``psql \\copy`` of the same gzip CSV (``FROM PROGRAM 'gzip -dc'``) into
  an empty table with no indexes: the physical limit here;
* ``per_row_insert``: one INSERT per row through psycopg, committing per row (what an ORM
  loader does), on ``PSTFAST_BENCH_PERROW_ROWS`` rows (its rate is what is compared; it is
  bound by the WAL fsync per commit, so it moves with the disk's latency: 3 rounds).

Each entry records ``rows_per_s`` in ``extra_info``; the ratios are printed at the end.
``pstfast_load`` also runs one raw COPY in each round's untimed setup (``raw_copy_paired_s``):
on a shared machine whose load drifts between tests, the paired ratio is the fair one.
``toast`` group: ``pstfast.load`` of a writer-made PST's extract (``PSTFAST_BENCH_MESSAGES``,
default 2000: bodies of several KB, compressed by the server) with lz4 and with pglz (lz4
only where the server offers it: not the embedded one; point ``PSTFAST_TEST_DATABASE_URL``
at a PostgreSQL >= 14 built with lz4, as Debian's and Aurora's are).
``thread_dedupe`` group: ``build_email_threads`` + ``dedupe_emails`` at each size of
``PSTFAST_BENCH_THREAD_ROWS`` (threads of 1-6 messages with References, 3 % duplicates).
Uses ``PSTFAST_TEST_DATABASE_URL`` when set, else an embedded server in a temp folder
with the settings ``pstfast`` gives its own embedded server (``db.tune_embedded_server``);
every entry, the raw COPY baseline included, runs against that same server. The machine
is shared: ``PSTFAST_BENCH_ROUNDS`` (default 5) rounds each, compare medians.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from isal import igzip
from psycopg.conninfo import conninfo_to_dict

import pstfast
import pstfast.db.connect
import pstfast.db.embedded
from pstfast import records
from pstfast.manifest import Manifest, write_manifest
from pstfast.storage import output_prefix

from perf.pgtools import Databases

ROWS = int(os.environ.get("PSTFAST_BENCH_ROWS", "20000"))
PERROW_ROWS = int(os.environ.get("PSTFAST_BENCH_PERROW_ROWS", str(min(ROWS, 1000))))
THREAD_ROWS = [int(x) for x in os.environ.get("PSTFAST_BENCH_THREAD_ROWS", "5000,20000").split(",")]
ROUNDS = int(os.environ.get("PSTFAST_BENCH_ROUNDS", "5"))
MAIL_MESSAGES = int(os.environ.get("PSTFAST_BENCH_MESSAGES", "2000"))
_rates: dict[str, float] = {}

_WORDS = ["budget", "contract", "review", "meeting", "schedule", "invoice", "approval", "draft", "réunion", "会議", "forecast", "legal"]


def _emails(n: int, pst: str, seed: int = 1) -> list[dict[str, Any]]:
    """n rows: reply threads of 1-6 messages (References chains), ~3 % duplicates."""
    rng = random.Random(seed)
    t0 = _dt.datetime(2020, 1, 1, tzinfo=_dt.UTC)
    rows: list[dict[str, Any]] = []
    thread_ids: list[str] = []
    while len(rows) < n:
        if rows and rng.random() < 0.03:  # an exact duplicate in another folder
            src = dict(rows[rng.randrange(len(rows))])
            src["email_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pst}/{len(rows)}"))
            src["folder_path"] = "Top of Personal Folders/Archive"
            rows.append(src)
            continue
        i = len(rows)
        reply = thread_ids and rng.random() < 0.6 and len(thread_ids[-1].split()) < 6
        refs = thread_ids[-1].split() if reply else []
        mid = f"<{pst}.{i}@bench.example>"
        subject = f"topic {i if not reply else refs[0][1:12]}"
        body = " ".join(rng.choice(_WORDS) for _ in range(150))
        rows.append({
            "email_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{pst}/{i}")), "parent_email_id": None,
            "project_id": "bench", "pst_file_id": pst, "folder_path": "Top of Personal Folders/Inbox",
            "message_class": "IPM.Note", "internet_message_id": mid,
            "in_reply_to": refs[-1] if refs else None, "references": refs,
            "conversation_index": None, "conversation_topic": subject, "subject": subject,
            "normalized_subject": subject, "sender_name": "Ann", "sender_email": f"user{rng.randrange(500)}@x.example",
            "to": [f"user{rng.randrange(500)}@x.example"], "cc": [], "bcc": [],
            "sent_at": t0 + _dt.timedelta(seconds=i * 37), "received_at": None, "body_text": body,
            "body_html": None, "transport_headers": None, "attachment_count": 0, "size_bytes": len(body),
            "importance": 1, "content_hash": hashlib.md5(body.encode()).hexdigest(), "extractor_version": "bench",
            "body_text_source": "plain", "body_rtf": None,
        })
        thread_ids.append(" ".join([*refs, mid]) if reply else mid)
    return rows


def _write(root: Path, pst: str, rows: list[dict[str, Any]]) -> Path:
    prefix = Path(output_prefix(root, pst))
    prefix.mkdir(parents=True, exist_ok=True)
    objects = {}
    for name, fields, items in (("emails.csv.gz", records.EMAIL_FIELDS, rows),
                                ("attachments.csv.gz", records.ATTACHMENT_FIELDS, [])):
        data = igzip.compress((records.csv_header(fields) + "".join(records.csv_line(r, fields) for r in items)).encode())
        (prefix / name).write_bytes(data)
        objects[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    write_manifest(str(prefix), Manifest(
        pst_file_id=pst, project_id="bench", source="bench", input={}, timings={}, objects=objects,
        counts={"folders": 1, "items_seen": len(rows), "emails": len(rows), "attachments": 0, "errors": 0},
        extractor_version="bench", libpff_version="-", workers=1, shards={}, created_at="2024-01-01T00:00:00Z"))
    return prefix


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("bench-out")
    rows = _emails(ROWS, "bench1")
    _write(root, "bench1", rows)
    return root, rows


def _rate(benchmark: Any, key: str, rows: int) -> None:
    rate = rows / benchmark.stats.stats.median
    benchmark.extra_info["rows"] = rows
    benchmark.extra_info["rows_per_s"] = round(rate)
    _rates[key] = rate


def _raw_target(dbs: Databases) -> str:
    """A fresh database with an empty, index-free, logged table for the raw COPY."""
    ddl = "\n".join(line for line in pstfast.db.connect.sql_text("staging_create.sql").split(";")[2].splitlines()
                    if not line.lstrip().startswith("--"))
    dsn = dbs.fresh()
    with psycopg.connect(dsn) as conn:
        conn.execute(ddl.replace("CREATE UNLOGGED TABLE {emails}", "CREATE TABLE raw_emails"))
    return dsn


def _raw_copy(dsn: str, csv: Path) -> None:
    """``psql \\copy`` of the gzip CSV into raw_emails: the physical limit here."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed (apt-get install postgresql-client)")
    params = conninfo_to_dict(dsn)
    env = {**os.environ, "PGHOST": str(params.get("host", "")), "PGDATABASE": str(params["dbname"]),
           "PGUSER": str(params.get("user", "postgres"))}
    if params.get("port"):
        env["PGPORT"] = str(params["port"])
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    subprocess.run([psql, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                    f"\\copy raw_emails FROM PROGRAM 'gzip -dc {csv}' (FORMAT csv, HEADER true)"],
                   env=env, check=True)


@pytest.mark.benchmark(group="load")
def test_pstfast_load(benchmark: Any, dbs: Databases, output: tuple[Path, list]) -> None:
    """Each round's (untimed) setup also runs one raw COPY, timed here: paired rounds, so
    the ratio compares runs seconds apart on a shared machine whose load drifts."""
    root, rows = output
    csv = Path(output_prefix(root, "bench1")) / "emails.csv.gz"
    target: dict[str, str] = {}
    paired: list[float] = []

    def setup() -> None:
        raw = _raw_target(dbs)
        t = time.perf_counter()
        _raw_copy(raw, csv)
        paired.append(time.perf_counter() - t)
        target["dsn"] = dbs.fresh()

    result = benchmark.pedantic(lambda: pstfast.load(root, "bench1", target["dsn"]), setup=setup, rounds=ROUNDS)
    assert result.emails == len(rows)
    benchmark.extra_info["timings"] = result.timings
    benchmark.extra_info["raw_copy_paired_s"] = [round(x, 3) for x in paired]
    _rate(benchmark, "pstfast_load", len(rows))
    _rates["raw_copy_paired"] = len(rows) / statistics.median(paired)


@pytest.mark.benchmark(group="load")
def test_raw_copy_psql(benchmark: Any, dbs: Databases, output: tuple[Path, list]) -> None:
    root, rows = output
    csv = Path(output_prefix(root, "bench1")) / "emails.csv.gz"
    target: dict[str, str] = {}

    def setup() -> None:
        target["dsn"] = _raw_target(dbs)

    benchmark.pedantic(lambda: _raw_copy(target["dsn"], csv), setup=setup, rounds=ROUNDS)
    with psycopg.connect(target["dsn"]) as conn:
        assert conn.execute("SELECT count(*) FROM raw_emails").fetchone()[0] == len(rows)
    _rate(benchmark, "raw_copy_psql", len(rows))


@pytest.mark.benchmark(group="load")
def test_per_row_insert(benchmark: Any, dbs: Databases, output: tuple[Path, list]) -> None:
    _, rows = output
    subset = rows[:PERROW_ROWS]
    cols = [name for name, _ in records.EMAIL_COLUMNS]
    insert = (f"INSERT INTO email_messages ({', '.join(chr(34) + c + chr(34) for c in cols)})"
              f" VALUES ({', '.join(['%s'] * len(cols))})")
    target: dict[str, str] = {}

    def setup() -> None:
        dsn = dbs.fresh()
        with psycopg.connect(dsn) as conn:
            conn.execute("INSERT INTO pst_files (pst_file_id, project_id) VALUES ('bench1', 'bench')")
        target["dsn"] = dsn

    def run() -> None:
        with psycopg.connect(target["dsn"]) as conn:
            for row in subset:
                conn.execute(insert, [row.get(c) for c in cols])  # columns a row leaves out are NULL
                conn.commit()

    benchmark.pedantic(run, setup=setup, rounds=3)
    _rate(benchmark, "per_row_insert", len(subset))


@pytest.fixture(scope="module")
def mail_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The extract of a writer-made PST (``PSTFAST_BENCH_MESSAGES`` messages, from the
    cached corpus): text and HTML bodies of several KB, as in real mail, so PostgreSQL
    compresses them (TOAST), unlike the ~1 KB bodies of ``output``."""
    from perf import corpus

    pst = corpus.bench_pst(MAIL_MESSAGES)
    root = tmp_path_factory.mktemp("mail-out")
    manifest = pstfast.extract(pst.path, root, pst_file_id="mail1", project_id="bench")
    return root, manifest.counts["emails"]


@pytest.mark.benchmark(group="toast")
@pytest.mark.parametrize("method", ["pglz", "lz4"])
def test_load_toast(benchmark: Any, dbs: Databases, mail_output: tuple[Path, int],
                    monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """``pstfast.load`` of real-sized mail with each TOAST compression: pglz (PostgreSQL's
    default) and lz4 (what the load picks where the server offers it). ``table_mb``: the
    size of ``email_messages`` afterwards, the price of the faster one."""
    root, emails = mail_output
    with psycopg.connect(dbs.server) as conn:
        row = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
    if row is None or method not in row[0]:
        pytest.skip(f"this server offers no {method}: set PSTFAST_TEST_DATABASE_URL to a PostgreSQL >= 14 with lz4")
    monkeypatch.setenv("PSTFAST_TOAST_COMPRESSION", method)
    target: dict[str, str] = {}

    def setup() -> None:
        target["dsn"] = dbs.fresh()

    result = benchmark.pedantic(lambda: pstfast.load(root, "mail1", target["dsn"]), setup=setup, rounds=ROUNDS)
    assert result.emails == emails and result.toast_compression == method
    with psycopg.connect(target["dsn"]) as conn:
        size = conn.execute("SELECT pg_total_relation_size('email_messages')").fetchone()[0]
    benchmark.extra_info.update(messages=emails, timings=result.timings, table_mb=round(size / 1e6, 1))


@pytest.mark.benchmark(group="thread_dedupe")
@pytest.mark.parametrize("n", THREAD_ROWS)
def test_thread_and_dedupe(benchmark: Any, dbs: Databases, tmp_path: Path, n: int) -> None:
    dsn = dbs.fresh()
    # two custodians: half the mailbox each, so threads and duplicates span PSTs
    rows = _emails(n, "t1", seed=n)
    half = n // 2
    _write(tmp_path, "t1", rows[:half])
    _write(tmp_path, "t2", [dict(r, pst_file_id="t2") for r in rows[half:]])
    pstfast.load(tmp_path, "t1", dsn)
    pstfast.load(tmp_path, "t2", dsn)

    def run() -> tuple[Any, Any]:
        return pstfast.thread(None, None, dsn, project_id="bench"), pstfast.dedupe(None, None, dsn, project_id="bench")

    threads, dupes = benchmark.pedantic(run, rounds=2)
    assert threads.emails == n and dupes.emails == n
    benchmark.extra_info.update({"threads": threads.threads, "duplicates": dupes.duplicates})
    _rate(benchmark, f"thread_dedupe_{n}", n)


def teardown_module() -> None:
    if {"pstfast_load", "raw_copy_psql"} <= _rates.keys():
        print(f"\npstfast load / raw COPY: {_rates['pstfast_load'] / _rates['raw_copy_psql']:.2f}x")
    if {"pstfast_load", "raw_copy_paired"} <= _rates.keys():
        print(f"pstfast load / raw COPY in the same rounds (paired medians): "
              f"{_rates['pstfast_load'] / _rates['raw_copy_paired']:.2f}x")
    if {"pstfast_load", "per_row_insert"} <= _rates.keys():
        print(f"pstfast load / per-row INSERT+commit: {_rates['pstfast_load'] / _rates['per_row_insert']:.0f}x")
    sizes = sorted(int(k.rsplit("_", 1)[1]) for k in _rates if k.startswith("thread_dedupe_"))
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        ta, tb = a / _rates[f"thread_dedupe_{a}"], b / _rates[f"thread_dedupe_{b}"]
        print(f"thread+dedupe {a} -> {b} rows: {ta:.2f}s -> {tb:.2f}s ({tb / ta:.2f}x time for {b / a:.1f}x rows)")
    for key, rate in sorted(_rates.items()):
        print(f"  {key}: {rate:,.0f} rows/s")
