"""dedupe_emails on a real PostgreSQL: master rule, custodians, ground truth."""

from __future__ import annotations

import collections
import datetime as _dt
from pathlib import Path

import psycopg
from conftest import make_email, table_checksum
from test_thread import _ingest_synth

import pstfast

T0 = _dt.datetime(2022, 5, 1, tzinfo=_dt.timezone.utc)


def test_master_is_earliest_then_smallest_id(tmp_path: Path, pg_dsn: str, write_output) -> None:
    h = "f" * 32
    a = [make_email("pA", 1, content_hash=h, sent_at=T0 + _dt.timedelta(hours=1)),
         make_email("pA", 2, content_hash=h, sent_at=T0),  # earliest: master
         make_email("pA", 3, content_hash=None)]
    b = [make_email("pB", 1, content_hash=h, sent_at=T0),  # same time: smaller email_id decides
         make_email("pB", 2, content_hash=h, sent_at=None)]
    write_output(tmp_path, "pA", a)
    write_output(tmp_path, "pB", b)
    pstfast.load(tmp_path, "pB", pg_dsn)
    pstfast.load(tmp_path, "pA", pg_dsn)
    result = pstfast.dedupe(tmp_path, "pA", pg_dsn)
    assert (result.groups, result.duplicates) == (1, 3)
    master = min([a[1], b[0]], key=lambda r: r["email_id"])["email_id"]
    with psycopg.connect(pg_dsn) as conn:
        rows = {str(r[0]): (r[1] and str(r[1]), r[2]) for r in conn.execute(
            "SELECT email_id, duplicate_of, duplicate_pst_file_ids FROM email_messages")}
    assert rows[master] == (None, ["pA", "pB"])
    for r in (a[0], a[1], b[0], b[1]):
        if r["email_id"] != master:
            assert rows[r["email_id"]] == (master, None)
    assert rows[a[2]["email_id"]] == (None, ["pA"])  # no content_hash: never a duplicate
    first = table_checksum(pg_dsn, "email_messages")
    assert pstfast.dedupe(None, None, pg_dsn, project_id="p1").updated == 0
    assert table_checksum(pg_dsn, "email_messages") == first


def test_planted_duplicates_are_exactly_the_groups(tmp_path: Path, pg_dsn: str) -> None:
    from pstfast.ids import email_id

    truth = _ingest_synth(tmp_path, pg_dsn, 400, 5, ("c1", "c2"))
    pstfast.dedupe(None, "c1", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT email_id, duplicate_of, duplicate_pst_file_ids FROM email_messages"
                            " WHERE parent_email_id IS NULL").fetchall()
    groups = collections.defaultdict(set)
    for eid, dup, pids in rows:
        groups[str(dup or eid)].add(str(eid))
        if dup is None:
            assert pids == ["c1", "c2"]  # the same mailbox from two custodians
    # every message of custodian c1 is duplicated in c2; planted duplicates join 2 x 2
    want = []
    planted = {k for ks in truth["duplicate_groups"].values() for k in ks}
    for keys in truth["duplicate_groups"].values():
        want.append(sorted(email_id(p, m["nid"]) for p in ("c1", "c2") for m in truth["messages"] if m["key"] in keys))
    for m in truth["messages"]:
        if m["key"] not in planted:
            want.append(sorted(email_id(p, m["nid"]) for p in ("c1", "c2")))
    assert sorted(sorted(g) for g in groups.values()) == sorted(want)
    assert truth["duplicate_groups"]
