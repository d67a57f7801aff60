"""pstfast.pst.reader: embedded messages read from real and synthetic PSTs.

Expected values come from outside the reader: readpst's rendering of the public corpus,
the synth ground truth (written from the generator's own values), and libpff (pypff).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypff
import pytest

from pstfast.errors import CorruptPstError, NotAPstError
from pstfast.pst.reader import EmbeddedMessage, PstReader, clean_subject
from pst_variants import reencode_cyclic

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus" / "public"

SUBJECT, BODY, HTML = 0x0037001F, 0x1000001F, 0x10130102
SENDER_NAME, SENDER_EMAIL, SENDER_SMTP = 0x0C1A001F, 0x0C1F001F, 0x5D01001F
CLIENT_SUBMIT_TIME, DELIVERY_TIME = 0x00390040, 0x0E060040
DISPLAY_NAME, EMAIL_ADDRESS, SMTP_ADDRESS, RECIPIENT_TYPE = 0x3001001F, 0x3003001F, 0x39FE001F, 0x0C150003
ATTACH_LONG_FILENAME, ATTACH_METHOD = 0x3707001F, 0x37050003


def corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"public PST corpus not found at {CORPUS} (../shared/corpus/public beside the repository)")
    return path


def pypff_messages(path: Path) -> Iterator[Any]:
    pst = pypff.file()
    pst.open(str(path))
    stack = [pst.root_folder]
    while stack:
        folder = stack.pop()
        yield from folder.sub_messages
        stack.extend(folder.sub_folders)


def iso(value: object) -> str:
    assert isinstance(value, dt.datetime) and value.tzinfo is not None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the public corpus ----------------------------------------------------------------------


def test_submessage_embedded_message_matches_readpst() -> None:
    """Expected values from `readpst -j 0 -D -S` of the file: the message/rfc822 part of message 1."""
    path = corpus("pstsdk-submessage.pst")
    (outer,) = [m for m in pypff_messages(path) if m.number_of_attachments]
    with PstReader(path) as reader:
        assert reader.crypt == 1  # permute-encoded
        (inner,) = reader.embedded_messages(outer.identifier)
    assert inner.attachment_index == 0
    assert clean_subject(inner.props[SUBJECT]) == "This is an embedded message"  # Subject:
    assert inner.props[SENDER_NAME] == "Terry Mahaffey"  # From: Terry Mahaffey <terrymah@microsoft.com>
    assert inner.props[SENDER_SMTP] == "terrymah@microsoft.com"
    assert iso(inner.props[CLIENT_SUBMIT_TIME]) == "2010-03-17T23:01:46Z"  # Date: Wed, 17 Mar 2010 16:01:46 -0700
    body = inner.props[BODY]
    assert isinstance(body, str) and body.strip() == "This is the body of an embedded message"
    assert [(r[DISPLAY_NAME], r[SMTP_ADDRESS], r[RECIPIENT_TYPE]) for r in inner.recipients] == [
        ("Terry Mahaffey", "terrymah@microsoft.com", 1)  # To: Terry Mahaffey <terrymah@microsoft.com>
    ]
    assert inner.attachments == []


@pytest.mark.parametrize("name", ["pstsdk-submessage.pst", "pstsdk-sample1.pst", "pstsdk-sample2.pst",
                                  "pstsdk-test_ansi.pst", "pstsdk-test_unicode.pst", "libpst-dist-list.pst",
                                  "libpst-passworded.pst", "hiraoka-contacts.pst"])
def test_corpus_subjects_and_attachment_order_agree_with_pypff(name: str) -> None:
    """The general path (NBT, PC, TC; Unicode and ANSI) against libpff on every top-level message."""
    path = corpus(name)
    checked = 0
    with PstReader(path) as reader:
        for message in pypff_messages(path):
            if not isinstance(message, pypff.message):
                continue  # distribution lists and other non-message items
            props = reader.properties(message.identifier)
            subject = props.get(SUBJECT, props.get(0x0037001E))
            if isinstance(subject, bytes):  # ANSI file: PT_STRING8 in the message's code page
                subject = subject.decode(f"cp{props.get(0x3FFD0003, 1252)}")
            assert clean_subject(subject or "") == (message.subject or "")
            pff_nids = [message.get_attachment(i).identifier for i in range(message.number_of_attachments)]
            assert reader.attachment_nids(message.identifier) == pff_nids
            checked += 1
        file = pypff.file()
        file.open(str(path))
        stack = [file.root_folder]
        while stack:  # contents tables of normal folders (NID type 0x02; search folders have none)
            folder = stack.pop()
            stack.extend(folder.sub_folders)
            if folder.identifier & 0x1F == 0x02:
                rows = reader.table_rows((folder.identifier & ~0x1F) | 0x0E)
                assert sorted(i for i, _ in rows) == sorted(m.identifier for m in folder.sub_messages)
    assert checked > 0


def test_not_a_pst(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pst"
    bad.write_bytes(b"NOPE" + bytes(1000))
    with pytest.raises(NotAPstError, match="signature"):
        PstReader(bad)
    (tmp_path / "tiny.pst").write_bytes(b"!BDN")
    with pytest.raises(NotAPstError, match="too small"):
        PstReader(tmp_path / "tiny.pst")


def test_damaged_btree_and_unknown_node_raise_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "damaged.pst"
    shutil.copy(corpus("pstsdk-submessage.pst"), path)
    (outer,) = [m for m in pypff_messages(path) if m.number_of_attachments]
    with PstReader(path) as reader:
        with pytest.raises(CorruptPstError, match="node 0x7FFFFFE4 is not in the node B-tree"):
            reader.embedded_messages(0x7FFFFFE4)
        bbt_root = reader._bbt_root
    data = bytearray(path.read_bytes())
    data[bbt_root + 496] = 0x55  # the block B-tree root page's type byte
    path.write_bytes(bytes(data))
    with PstReader(path) as reader, pytest.raises(CorruptPstError, match="expected 0x80"):
        reader.embedded_messages(outer.identifier)


def test_random_damage_raises_only_corrupt_pst_error(tmp_path: Path) -> None:
    """Flip bytes inside the pages and blocks an embedded-message read touches: either the read
    still succeeds or it fails with CorruptPstError; never another exception, never a hang."""
    import random

    source = corpus("pstsdk-submessage.pst")
    (outer,) = [m for m in pypff_messages(source) if m.number_of_attachments]
    touched: list[tuple[int, int]] = []
    with PstReader(source) as reader:
        page, bbt = reader._page, reader._bbt_lookup
        reader._page = lambda ib, ptype: touched.append((ib, 512)) or page(ib, ptype)  # type: ignore[method-assign]
        reader._bbt_lookup = lambda bid, where: touched.append(bbt(bid, where)) or bbt(bid, where)  # type: ignore[method-assign]
        reader.embedded_messages(outer.identifier)
    assert len(touched) > 10
    clean = source.read_bytes()
    rng = random.Random(7)
    outcomes = {"ok": 0, "corrupt": 0}
    for trial in range(300):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 4)):
            ib, size = rng.choice(touched)
            data[ib + rng.randrange(max(size, 1))] = rng.randrange(256)
        path = tmp_path / f"d{trial % 4}.pst"
        path.write_bytes(bytes(data))
        try:
            with PstReader(path) as reader:
                reader.embedded_messages(outer.identifier)
            outcomes["ok"] += 1
        except CorruptPstError:
            outcomes["corrupt"] += 1
    assert outcomes["corrupt"] > 20, outcomes


# --- synthetic PSTs with a ground truth -----------------------------------------------------


@pytest.fixture(scope="module")
def synth_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from pstfast.synthetic.corpus import SynthOptions, synth

    folder = tmp_path_factory.mktemp("pst_reader")
    pst, truth = folder / "s.pst", folder / "s.json"
    synth(pst, options=SynthOptions(messages=300, seed=3, embedded_rate=0.3), truth=truth)
    return pst, json.loads(truth.read_text(encoding="utf-8"))


def people(message: EmbeddedMessage, kind: int) -> list[dict[str, str]]:
    return [{"name": r[DISPLAY_NAME], "email": r.get(SMTP_ADDRESS, r.get(EMAIL_ADDRESS))}
            for r in message.recipients if r[RECIPIENT_TYPE] == kind]


def stored(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What the rows store: the SMTP address, or an Exchange recipient's DN when it has none."""
    return [{"name": e["name"], "email": e["email"] if e.get("smtp_known", True) else e["x500"]} for e in entries]


def assert_matches_truth(got: EmbeddedMessage, want: dict[str, Any]) -> None:
    p = got.props
    assert clean_subject(p[SUBJECT]) == want["subject"]
    assert p[SENDER_NAME] == want["sender_name"]
    assert p.get(SENDER_SMTP, p.get(SENDER_EMAIL)) == (
        want["sender_email"] if want.get("sender_smtp_known", True) else want["sender_x500"])
    assert (people(got, 1), people(got, 2), people(got, 3)) == (stored(want["to"]), stored(want["cc"]),
                                                                stored(want["bcc"]))
    assert iso(p[CLIENT_SUBMIT_TIME]) == want["sent_at"]
    assert iso(p[DELIVERY_TIME]) == want["received_at"]
    assert p.get(BODY) == want["body_text"]
    html = p.get(HTML)
    assert (html.decode("utf-8") if isinstance(html, bytes) else html) == want["body_html"]
    assert len(got.attachments) == len(want["attachments"])
    for att, truth_att in zip(got.attachments, want["attachments"]):
        assert att.index == truth_att["ordinal"]
        assert att.props[ATTACH_LONG_FILENAME] == truth_att["filename"]
        assert 0x37010102 not in att.props
        if truth_att["method"] == "by_value":
            assert att.data is not None and att.message is None
            assert hashlib.sha256(att.data).hexdigest() == truth_att["sha256"]
        else:
            assert att.data is None and att.message is not None
            assert_matches_truth(att.message, truth_att["message"])


def test_synth_embedded_messages_equal_truth(synth_pst: tuple[Path, dict[str, Any]]) -> None:
    pst, truth = synth_pst
    seen = nested_attachments = with_plain_only = 0
    with PstReader(pst) as reader:
        for message in truth["messages"]:
            expected = [a for a in message["attachments"] if a["method"] == "embedded_message"]
            got = reader.embedded_messages(message["nid"])
            assert [e.attachment_index for e in got] == [a["ordinal"] for a in expected]
            for em, att in zip(got, expected):
                if att.get("exception"):  # a recurring series' exception: the truth has it in item_properties
                    continue
                assert_matches_truth(em, att["message"])
                seen += 1
                nested_attachments += len(em.attachments)
            if message["attachments"] and not expected:
                with_plain_only += 1
    # the fixture must exercise what it claims to: many embedded messages, some with attachments
    assert seen >= 50 and nested_attachments >= 10 and with_plain_only >= 10


def test_synth_subjects_and_attachment_order_agree_with_pypff(synth_pst: tuple[Path, dict[str, Any]]) -> None:
    pst, truth = synth_pst
    by_nid = {m["nid"]: m for m in truth["messages"]}
    checked = with_several = 0
    with PstReader(pst) as reader:
        for message in pypff_messages(pst):
            props = reader.properties(message.identifier)
            assert clean_subject(props[SUBJECT]) == message.subject == by_nid[message.identifier]["subject"]
            pff_nids = [message.get_attachment(i).identifier for i in range(message.number_of_attachments)]
            assert reader.attachment_nids(message.identifier) == pff_nids
            with_several += len(pff_nids) > 1
            checked += 1
    assert checked == len(truth["messages"]) and with_several >= 10


def test_contents_tables_agree_with_pypff(tmp_path: Path) -> None:
    """Large tables: a multi-level row index, a row matrix in a subnode, heaps over many blocks."""
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "big.pst"
    synth(pst, options=SynthOptions(messages=1000, seed=5, folders=1, attachment_rate=0, embedded_rate=0,
                                    body_kib=0, large_body_every=0, large_attachment_every=0, duplicate_rate=0))
    file = pypff.file()
    file.open(str(pst))
    stack, largest = [file.root_folder], 0
    with PstReader(pst) as reader:
        while stack:
            folder = stack.pop()
            stack.extend(folder.sub_folders)
            rows = reader.table_rows((folder.identifier & ~0x1F) | 0x0E)  # NID_TYPE_CONTENTS_TABLE
            got = sorted((row_id, clean_subject(str(row[SUBJECT]))) for row_id, row in rows)
            assert got == sorted((m.identifier, m.subject) for m in folder.sub_messages)
            largest = max(largest, len(rows))
    assert largest == 1000


def test_cyclic_encoding_agrees_with_pypff(synth_pst: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    pst, truth = synth_pst
    cyclic = tmp_path / "cyclic.pst"
    reencode_cyclic(pst, cyclic)
    with_embedded = [m for m in truth["messages"] if any(a["message"] for a in m["attachments"])][:8]
    with PstReader(cyclic) as reader:
        assert reader.crypt == 2
        for message in pypff_messages(cyclic):  # libpff decodes the same bytes to the same subjects
            assert clean_subject(reader.properties(message.identifier)[SUBJECT]) == message.subject
        for message in with_embedded:
            got = reader.embedded_messages(message["nid"])
            expected = [a for a in message["attachments"] if a["method"] == "embedded_message"]
            for em, att in zip(got, expected, strict=True):
                assert_matches_truth(em, att["message"])
