"""Incremental thread / dedupe (007_incremental.sql) against the whole-project definition.

The oracle is the original text of ``002_threading.sql`` and ``003_dedupe.sql``, installed
under other names (``ref_build_email_threads``, ``ref_dedupe_emails``): after any sequence
of loads, reloads with changed content and removals, each followed by that PST's
incremental thread / dedupe / index, the rows must equal what the original whole-project
functions give. Plus: any load order gives identical rows; four PSTs run concurrently give
the rows four serial runs give; a removal leaves no trace of the PST.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import make_attachment, make_email, table_checksum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pstfast
from pstfast.db.migrate import migration_text

T0 = _dt.datetime(2022, 3, 1, tzinfo=_dt.timezone.utc)
HEADERS = ["01" + "ab" * 21, "01" + "cd" * 21]
BLOCKS = ["0000000001", "0000000002", "00000000ff"]
MIDS = [f"<m{i}@x>" for i in range(7)]
RESULT_COLUMNS = "thread_id, thread_parent_id, thread_position, duplicate_of, duplicate_pst_file_ids"


def install_oracle(dsn: str) -> None:
    """The released whole-project functions, under names of their own."""
    pstfast.migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(migration_text("002_threading.sql").replace("build_email_threads", "ref_build_email_threads"))
        conn.execute(migration_text("003_dedupe.sql").replace("dedupe_emails", "ref_dedupe_emails"))


def results(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT email_id, {RESULT_COLUMNS} FROM email_messages ORDER BY email_id").fetchall()


def oracle(dsn: str, project_id: str = "p1") -> list[tuple[Any, ...]]:
    """What the released functions give over the whole project (rolled back afterwards)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE email_messages SET thread_id = NULL, thread_parent_id = NULL, thread_position = NULL,"
                     " duplicate_of = NULL, duplicate_pst_file_ids = NULL")
        conn.execute("SELECT * FROM ref_build_email_threads(%s)", (project_id,))
        conn.execute("SELECT * FROM ref_dedupe_emails(%s)", (project_id,))
        rows = conn.execute(f"SELECT email_id, {RESULT_COLUMNS} FROM email_messages ORDER BY email_id").fetchall()
        conn.rollback()
    return rows


# --- small PST families --------------------------------------------------------------------

@st.composite
def email_specs(draw: Any) -> dict[str, Any]:
    """One email's threading / dedupe fields, from a small shared vocabulary: ids, headers,
    subjects and hashes collide across PSTs on purpose."""
    ci = None
    if draw(st.booleans()):
        ci = draw(st.sampled_from(HEADERS)) + "".join(draw(st.lists(st.sampled_from(BLOCKS), max_size=2)))
    return {
        "internet_message_id": draw(st.sampled_from([None, *MIDS])),
        "in_reply_to": draw(st.sampled_from([None, None, *MIDS])),
        "references": draw(st.lists(st.sampled_from(MIDS), max_size=3)),
        "conversation_index": ci,
        "normalized_subject": draw(st.sampled_from(["a", "b", "c", ""])),
        "content_hash": draw(st.sampled_from([None, "h0", "h1", "h2", "h3"])),
        "sent_at": draw(st.sampled_from([None, T0, T0 + _dt.timedelta(hours=1), T0 + _dt.timedelta(hours=2)])),
        "embedded": draw(st.booleans()) and draw(st.booleans()),
    }


def pst_rows(pst: str, specs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Email rows (slot n keeps its email_id across versions) and one attachment row per
    embedded message (it hangs under the slot before it)."""
    emails, attachments = [], []
    for n, spec in enumerate(specs):
        fields = {k: v for k, v in spec.items() if k != "embedded"}
        row = make_email(pst, n, subject=f"{pst}-{n}", **fields)
        if spec["embedded"] and n > 0:
            row["parent_email_id"] = emails[n - 1]["email_id"]
            attachments.append(make_attachment(emails[n - 1], n, method="embedded_message"))
        emails.append(row)
    return emails, attachments


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("load"), st.sampled_from(["pA", "pB", "pC", "pD"]),
                  st.lists(email_specs(), min_size=1, max_size=5)),
        st.tuples(st.just("remove"), st.sampled_from(["pA", "pB", "pC", "pD"]), st.just([])),
    ),
    min_size=1, max_size=7,
)


def ingest(root: Path, dsn: str, pst: str, specs: list[dict[str, Any]]) -> None:
    """What the pipeline does for one PST after extract: load, thread, dedupe, index."""
    from conftest import _write_output

    emails, attachments = pst_rows(pst, specs)
    _write_output(root, pst, emails, attachments)
    pstfast.load(root, pst, dsn)
    pstfast.thread(root, pst, dsn)
    pstfast.dedupe(root, pst, dsn)
    pstfast.index(root, pst, dsn)


def reset(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE email_messages, email_attachments, email_search, pst_files, email_thread_roots,"
                     " email_thread_subjects, email_change_log, stage_runs")


@pytest.fixture
def oracle_dsn(pg_dsn: str) -> str:
    install_oracle(pg_dsn)
    return pg_dsn


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=OPS)
def test_incremental_equals_whole_project(oracle_dsn: str, ops: list[tuple[str, str, list[dict[str, Any]]]]) -> None:
    reset(oracle_dsn)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for op, pst, specs in ops:
            if op == "load":
                ingest(root, oracle_dsn, pst, specs)
            else:
                with psycopg.connect(oracle_dsn) as conn:
                    known = conn.execute("SELECT 1 FROM pst_files WHERE pst_file_id = %s", (pst,)).fetchone()
                if known:
                    pstfast.remove(pst, oracle_dsn)
            assert results(oracle_dsn) == oracle(oracle_dsn), f"after {op} {pst}"
    with psycopg.connect(oracle_dsn) as conn:
        # every email has exactly its search entry; nothing is left of a removed PST
        assert conn.execute("SELECT count(*) FROM email_search s WHERE NOT EXISTS"
                            " (SELECT 1 FROM email_messages m WHERE m.email_id = s.email_id)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM email_messages m WHERE NOT EXISTS"
                            " (SELECT 1 FROM email_search s WHERE s.email_id = m.email_id)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM email_attachments a WHERE NOT EXISTS"
                            " (SELECT 1 FROM email_messages m WHERE m.email_id = a.email_id)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM email_change_log").fetchone()[0] == 0
    before = results(oracle_dsn)
    pstfast.thread(None, None, oracle_dsn, project_id="p1", full=True)  # the full rebuild agrees, too
    pstfast.dedupe(None, None, oracle_dsn, project_id="p1", full=True)
    assert results(oracle_dsn) == before


# --- load order and concurrency on a writer-made family -------------------------------------

def _family(tmp: Path, custodians: int = 4, messages: int = 120, seed: int = 3) -> list[tuple[Path, str]]:
    from pstfast.extraction.run import extract
    from pstfast.synthetic.corpus import SynthOptions, synth_family

    family = synth_family(tmp / "pst", custodians, options=SynthOptions(messages=messages, seed=seed))
    out = []
    for path in family.paths:
        pid = path.stem
        extract(path, tmp / "out", pst_file_id=pid, project_id="fam", workers=1, progress=False)
        out.append((tmp / "out", pid))
    return out


def _run_pst(root: Path, pid: str, dsn: str) -> None:
    pstfast.load(root, pid, dsn)
    pstfast.thread(root, pid, dsn)
    pstfast.dedupe(root, pid, dsn)
    pstfast.index(root, pid, dsn)


def _new_db(server: str, name: str) -> str:
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(server, dbname=name)


def _checksums(dsn: str) -> tuple[Any, ...]:
    return (table_checksum(dsn, "email_messages"), table_checksum(dsn, "email_search"),
            table_checksum(dsn, "email_attachments"))


def test_family_has_cross_pst_threads_and_duplicates(tmp_path: Path, pg_dsn: str) -> None:
    psts = _family(tmp_path)
    for root, pid in psts:
        _run_pst(root, pid, pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        cross_threads = conn.execute(
            "SELECT count(*) FROM (SELECT thread_id FROM email_messages GROUP BY thread_id"
            " HAVING count(DISTINCT pst_file_id) > 1 AND count(DISTINCT coalesce(internet_message_id, '')) > 1) t"
        ).fetchone()[0]
        cross_dups = conn.execute("SELECT count(*) FROM email_messages WHERE cardinality(duplicate_pst_file_ids) > 1"
                                  ).fetchone()[0]
        forwards = conn.execute("SELECT count(*) FROM email_messages WHERE parent_email_id IS NOT NULL").fetchone()[0]
    assert cross_threads > 5 and cross_dups > 20 and forwards > 0
    install_oracle(pg_dsn)
    assert results(pg_dsn) == oracle(pg_dsn, "fam")


def test_any_load_order_and_concurrent_runs_give_identical_rows(tmp_path: Path, pg_server_dsn: str) -> None:
    psts = _family(tmp_path)
    orders = {"serial": psts, "reversed": psts[::-1], "interleaved": [psts[2], psts[0], psts[3], psts[1]]}
    sums = {}
    for name, order in orders.items():
        dsn = _new_db(pg_server_dsn, f"pstfast_order_{name}")
        try:
            for root, pid in order:
                _run_pst(root, pid, dsn)
            sums[name] = _checksums(dsn)
        finally:
            _new_db(pg_server_dsn, f"pstfast_order_{name}")  # (emptied)
    dsn = _new_db(pg_server_dsn, "pstfast_order_concurrent")
    try:
        pstfast.migrate(dsn)
        start = threading.Barrier(len(psts))
        errors: list[BaseException] = []

        def worker(root: Path, pid: str) -> None:
            try:
                start.wait()
                _run_pst(root, pid, dsn)
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=worker, args=pst) for pst in psts]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors
        sums["concurrent"] = _checksums(dsn)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            for name in [*orders, "concurrent"]:
                conn.execute(f'DROP DATABASE IF EXISTS "pstfast_order_{name}" WITH (FORCE)')
    assert len(set(sums.values())) == 1, sums
    assert sums["serial"][0][0] > 300


def test_remove_leaves_what_a_project_without_the_pst_gives(tmp_path: Path, pg_server_dsn: str) -> None:
    psts = _family(tmp_path, custodians=3, messages=80, seed=8)
    without = _new_db(pg_server_dsn, "pstfast_rm_without")
    removed = _new_db(pg_server_dsn, "pstfast_rm_removed")
    try:
        for root, pid in psts[1:]:
            _run_pst(root, pid, without)
        for root, pid in psts:
            _run_pst(root, pid, removed)
        result = pstfast.remove(psts[0][1], removed)
        assert result.emails > 0 and result.search_entries == result.emails
        assert result.project_id == "fam" and result.thread_updated > 0
        assert _checksums(removed) == _checksums(without)
        again = pstfast.remove(psts[0][1], removed, project_id="fam")  # idempotent
        assert (again.emails, again.thread_updated, again.dedupe_updated) == (0, 0, 0)
        with psycopg.connect(removed) as conn:
            assert conn.execute("SELECT count(*) FROM pst_files WHERE pst_file_id = %s",
                                (psts[0][1],)).fetchone()[0] == 0
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            for name in ("without", "removed"):
                conn.execute(f'DROP DATABASE IF EXISTS "pstfast_rm_{name}" WITH (FORCE)')


def test_unknown_pst_cannot_be_removed(pg_dsn: str) -> None:
    with pytest.raises(pstfast.UsageError, match="unknown"):
        pstfast.remove("nope", pg_dsn)


def test_thread_run_scope_is_the_pst_and_what_it_touches(tmp_path: Path, pg_dsn: str, write_output) -> None:
    """A PST whose emails touch nothing recomputes only itself, however large the project."""
    big = [make_email("big", n) for n in range(300)]
    write_output(tmp_path, "big", big)
    pstfast.load(tmp_path, "big", pg_dsn)
    pstfast.thread(tmp_path, "big", pg_dsn)
    small = [make_email("small", n, normalized_subject=f"own {n}") for n in range(5)]
    small.append(make_email("small", 9, internet_message_id=None, in_reply_to=big[7]["internet_message_id"],
                            normalized_subject="reply"))
    write_output(tmp_path, "small", small)
    pstfast.load(tmp_path, "small", pg_dsn)
    result = pstfast.thread(tmp_path, "small", pg_dsn)
    assert result.scope == 6 + 1 and not result.full  # its 6 emails + the one it replies to
    full = pstfast.thread(None, None, pg_dsn, project_id="p1")
    assert full.full and full.scope == 306 and full.updated == 0
