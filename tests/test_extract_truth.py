"""Ground truth: on a PST written by pstfast.synth, every field of every row equals the truth."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import pstfast
from pstfast import ids, storage

FIELDS = ("folder_path", "message_class", "subject", "sender_name",
          "sent_at", "received_at", "transport_headers", "internet_message_id",
          "in_reply_to", "references", "conversation_index", "conversation_topic", "importance", "body_rtf",
          # review metadata and the other kinds (issue 20)
          "flags", "is_read", "is_draft", "created_at", "modified_at", "sensitivity", "categories",
          "sent_representing_name", "item_properties")
ATTACHMENT_FIELDS = ("ordinal", "filename", "mime_type", "size", "sha256", "content_id", "is_inline", "method",
                     "reference")


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.fixture(scope="module")
def synth_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict], list[dict], Path]:
    synth = pytest.importorskip("pstfast.synthetic.corpus", reason="pstfast.synthetic.corpus (the PST writer) is not available")
    tmp = tmp_path_factory.mktemp("truth")
    pst, truth_path = tmp / "t.pst", tmp / "t.json"
    synth.synth(pst, options=synth.SynthOptions(messages=300, seed=11), truth=truth_path)
    manifest = pstfast.extract(pst, tmp / "out", workers=2, items_per_shard=40)
    prefix = Path(storage.output_prefix(tmp / "out", manifest.pst_file_id))
    emails = [json.loads(line) for line in gzip.open(prefix / "emails.ndjson.gz", "rt", encoding="utf-8")]
    atts = [json.loads(line) for line in gzip.open(prefix / "attachments.ndjson.gz", "rt", encoding="utf-8")]
    return json.loads(truth_path.read_text(encoding="utf-8")), emails, atts, prefix


def _address(email: str, x500: str | None, smtp_known: bool, resolvable: set[str]) -> str:
    """The address a row must show: the SMTP address, unless the item stores only an Exchange
    DN that no recipient row of the file pairs with one (DNs compare case-insensitively)."""
    return email if smtp_known or (x500 or "").casefold() in resolvable else x500  # type: ignore[return-value]


def _check(want: dict, got: dict, by_email: dict[str, list[dict]], children: dict[str, list[dict]],
           resolvable: set[str]) -> int:
    """Compare one message (and, recursively, its embedded messages); returns rows checked."""
    for name in FIELDS:
        if name in want and not (name == "folder_path" and want[name] is None):
            assert got[name] == want[name], (want.get("key"), name)
    assert got["sender_email"] == _address(want["sender_email"], want["sender_x500"], want["sender_smtp_known"],
                                           resolvable), want.get("key")
    assert got["sender_x500"] == want["sender_x500"]
    # an Exchange sender's sent-representing address is the same DN (the writer's default)
    assert got["sent_representing_email"] == (
        want["sent_representing_email"] if want["sent_representing_email"] != want["sender_email"]
        else _address(want["sender_email"], want["sender_x500"], want["sender_smtp_known"], resolvable)), want.get("key")
    for kind in ("to", "cc", "bcc"):
        assert got[kind] == [{"name": r["name"], "email": _address(r["email"], r["x500"], r["smtp_known"], resolvable),
                              "x500": r["x500"]} for r in want[kind]], (want.get("key"), kind)
    # the body a reviewer searches: PR_BODY exactly, else the HTML's or RTF's text (its words)
    source = want["expected_body_text_source"]
    assert got["body_text_source"] == source, want.get("key")
    if source == "plain":
        assert got["body_text"] == want["expected_body_text"], want.get("key")
    else:
        assert _words(got["body_text"]) == _words(want["expected_body_text"]), want.get("key")
    assert (got["body_html"] or "").replace("\r\n", "\n") == (want["expected_body_html"] or ""), want.get("key")
    rows = 1
    got_atts = sorted(by_email.get(got["email_id"], []), key=lambda a: a["ordinal"])
    assert len(got_atts) == len(want["attachments"]) == got["attachment_count"], want.get("key")
    kids = {c["email_id"]: c for c in children.get(got["email_id"], [])}
    for w, g in zip(want["attachments"], got_atts):
        for name in ATTACHMENT_FIELDS:
            if name in w and not (name in ("sha256", "size") and w["method"] == "embedded_message"):
                assert g[name] == w[name], (want.get("key"), w["ordinal"], name)
        if w.get("exception"):  # a recurring series' exception: in the series' item_properties, no row
            assert not any(c for c in kids if c == ids.embedded_email_id(got["email_id"], w["ordinal"]))
            continue
        if w["method"] == "embedded_message":
            child = kids[ids.embedded_email_id(got["email_id"], w["ordinal"])]
            assert child["parent_email_id"] == got["email_id"]
            assert child["folder_path"] == got["folder_path"]  # embedded rows carry their container's
            rows += _check(w["message"], child, by_email, children, resolvable)
    return rows


def check_rows(truth: dict, emails: list[dict], atts: list[dict]) -> None:
    """Every row of an extract equals the truth, embedded messages and attachments included."""
    by_email: dict[str, list[dict]] = {}
    for a in atts:
        by_email.setdefault(a["email_id"], []).append(a)
    children: dict[str, list[dict]] = {}
    for e in emails:
        if e["parent_email_id"]:
            children.setdefault(e["parent_email_id"], []).append(e)
    top = {e["email_id"]: e for e in emails if e["parent_email_id"] is None}
    assert len(top) == len(truth["messages"])
    resolvable = set(truth["exchange_resolvable"])
    # the truth names each message's node id; the email_id contract derives from it
    checked = sum(_check(want, top[ids.email_id(emails[0]["pst_file_id"], want["nid"])], by_email, children,
                         resolvable) for want in truth["messages"])
    assert checked == len(emails)


def test_every_field_equals_the_truth(synth_output) -> None:
    truth, emails, atts, prefix = synth_output
    check_rows(truth, emails, atts)
    for a in atts:
        if a["sha256"]:
            assert (prefix / a["storage_key"]).stat().st_size == a["size"]


def test_duplicates_share_a_content_hash(synth_output) -> None:
    truth, emails, _, _ = synth_output
    pst_file_id = emails[0]["pst_file_id"]
    by_id = {e["email_id"]: e for e in emails}
    key_hash = {m["key"]: by_id[ids.email_id(pst_file_id, m["nid"])]["content_hash"] for m in truth["messages"]}
    groups = truth["duplicate_groups"]
    assert groups, "the synthetic corpus should contain duplicates"
    for members in groups.values():
        assert len({key_hash[k] for k in members}) == 1
    grouped = {k for members in groups.values() for k in members}
    singles = [h for k, h in key_hash.items() if k not in grouped]
    assert len(set(singles)) == len(singles)
