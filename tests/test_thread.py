"""build_email_threads on a real PostgreSQL: rules, edge cases, ground truth."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import psycopg
from conftest import make_email, table_checksum

import pstfast

H1 = "01" + "ab" * 21          # a 22-byte conversation index header (44 hex digits)
H2 = "01" + "cd" * 21


def _threads(dsn: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT subject, thread_id, (SELECT p.subject FROM email_messages p WHERE p.email_id = m.thread_parent_id),"
            " thread_position FROM email_messages m").fetchall()
    return {r[0]: r[1:] for r in rows}


def _edge_case_rows() -> dict[str, list[dict]]:
    a = {
        # headers across two PSTs: A <- B <- C
        "A": dict(internet_message_id="<a@x>"),
        "C": dict(internet_message_id="<c@x>", in_reply_to="<b@x>", references=["<a@x>", "<b@x>"]),
        # missing parent <gone@x>: D and E are siblings under a placeholder
        "D": dict(internet_message_id="<d@x>", references=["<gone@x>"]),
        # a reference loop f <-> g
        "F": dict(internet_message_id="<f@x>", references=["<g@x>"]),
        # conversation index chain without any Message-ID: H <- I <- J
        "H": dict(internet_message_id=None, conversation_index=H1),
        "J": dict(internet_message_id=None, conversation_index=H1 + "0000000001" + "0000000002"),
        # two replies of one conversation whose root message is absent
        "K": dict(internet_message_id=None, conversation_index=H2 + "0000000001"),
        # subject fallback only for lone messages without reply headers
        "M": dict(internet_message_id="<m@x>", normalized_subject="budget"),
        "O": dict(internet_message_id="<o@x>", normalized_subject="budget", in_reply_to="<elsewhere@x>"),
        "Z": dict(internet_message_id="<z@x>", normalized_subject="unrelated"),
    }
    b = {
        "B": dict(internet_message_id="<b@x>", in_reply_to="<a@x>", references=["<a@x>"]),
        "E": dict(internet_message_id="<e@x>", in_reply_to="<gone@x>"),
        "G": dict(internet_message_id="<g@x>", references=["<f@x>"]),
        "I": dict(internet_message_id=None, conversation_index=H1 + "0000000001"),
        "L": dict(internet_message_id=None, conversation_index=H2 + "0000000009"),
        "N": dict(internet_message_id="<n@x>", normalized_subject="budget"),
    }
    out: dict[str, list[dict]] = {}
    for pst, spec in (("pA", a), ("pB", b)):
        rows = []
        for subject, fields in spec.items():
            n = ord(subject) - ord("A")  # sent_at grows with the letter
            fields = {"normalized_subject": f"s-{subject}", **fields}
            rows.append(make_email(pst, n, subject=subject, **fields))
        out[pst] = rows
    return out


def _load_all(root: Path, dsn: str, write_output, order: tuple[str, ...]) -> None:
    rows = _edge_case_rows()
    for pst in order:
        write_output(root, pst, rows[pst])
        pstfast.load(root, pst, dsn)


def test_threading_rules(tmp_path: Path, pg_dsn: str, write_output) -> None:
    _load_all(tmp_path, pg_dsn, write_output, ("pA", "pB"))
    pstfast.thread(tmp_path, "pA", pg_dsn)  # each PST threads its own emails and what they touch
    result = pstfast.thread(tmp_path, "pB", pg_dsn)
    assert result.loops_broken == 1 and not result.full
    t = _threads(pg_dsn)
    groups = collections.defaultdict(set)
    for subject, (thread_id, _, _) in t.items():
        groups[thread_id].add(subject)
    assert sorted(map(sorted, groups.values())) == sorted(
        [["A", "B", "C"], ["D", "E"], ["F", "G"], ["H", "I", "J"], ["K", "L"], ["M", "N"], ["O"], ["Z"]])
    parents = {s: p for s, (_, p, _) in t.items()}
    assert parents == {"A": None, "B": "A", "C": "B", "D": None, "E": None, "F": None, "G": "F",
                       "H": None, "I": "H", "J": "I", "K": None, "L": None, "M": None, "N": "M",
                       "O": None, "Z": None}
    positions = {s: pos for s, (_, _, pos) in t.items()}
    assert [positions[s] for s in "ABC"] == [1, 2, 3] and [positions[s] for s in "FG"] == [1, 2]


def test_threads_do_not_depend_on_load_order(tmp_path: Path, pg_dsn: str, pg_server_dsn: str, write_output) -> None:
    from psycopg.conninfo import make_conninfo

    _load_all(tmp_path / "one", pg_dsn, write_output, ("pA", "pB"))
    pstfast.thread(None, None, pg_dsn, project_id="p1")
    first = table_checksum(pg_dsn, "email_messages")
    pstfast.thread(None, None, pg_dsn, project_id="p1")  # rerun: identical
    assert table_checksum(pg_dsn, "email_messages") == first
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "pstfast_thread_order"')
    try:
        other = make_conninfo(pg_server_dsn, dbname="pstfast_thread_order")
        _load_all(tmp_path / "two", other, write_output, ("pB", "pA"))
        pstfast.thread(None, "pB", other)  # incrementally, in the other order
        pstfast.thread(None, "pA", other)
        assert table_checksum(other, "email_messages") == first
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute('DROP DATABASE "pstfast_thread_order" WITH (FORCE)')


def _ingest_synth(tmp_path: Path, dsn: str, messages: int, seed: int, pst_ids: tuple[str, ...]) -> dict:
    from pstfast.extraction.run import extract
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=messages, seed=seed), truth=tmp_path / "truth.json")
    for pid in pst_ids:
        manifest = extract(pst, tmp_path / "out", pst_file_id=pid, project_id="synth", workers=1, progress=False)
        result = pstfast.load(tmp_path / "out", pid, dsn)
        assert result.emails == manifest.counts["emails"]
        assert result.attachments == manifest.counts["attachments"]
    return json.loads((tmp_path / "truth.json").read_text())


def test_threads_equal_writer_ground_truth(tmp_path: Path, pg_dsn: str) -> None:
    from pstfast.ids import email_id

    truth = _ingest_synth(tmp_path, pg_dsn, 300, 11, ("c1", "c2"))  # the same mailbox from two custodians
    pstfast.thread(None, "c1", pg_dsn)
    pstfast.thread(None, "c2", pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        thread_of = {str(r[0]): r[1] for r in conn.execute("SELECT email_id, thread_id FROM email_messages")}
        missing = conn.execute("SELECT count(*) FROM email_messages WHERE thread_id IS NULL").fetchone()[0]
    assert missing == 0
    want = sorted(sorted(email_id(pid, m["nid"]) for pid in ("c1", "c2") for m in truth["messages"]
                         if m["thread"] == t) for t in truth["threads"])
    got = collections.defaultdict(list)
    for m in truth["messages"]:
        for pid in ("c1", "c2"):
            eid = email_id(pid, m["nid"])
            got[thread_of[eid]].append(eid)
    assert sorted(sorted(v) for v in got.values()) == want
    assert len(want) == len(truth["threads"]) > 20


def test_thread_on_empty_project(pg_dsn: str) -> None:
    result = pstfast.thread(None, None, pg_dsn, project_id="nothing-here")
    assert (result.emails, result.threads) == (0, 0)
