"""Beyond mail (issue 20): named properties, item_properties, review metadata, folders.

Writer PSTs with every item kind are read by pstfast's reader, its compiled path and libpff
(identical bytes); appointments and contacts are cross-checked with readpst's iCalendar and
vCard output and pffexport's item text, on writer PSTs and on the public corpus.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import pstfast
from pstfast import ids, storage
from pstfast.extraction.kinds import _multi, one_off
from pstfast.pst import namemap
from pstfast.pst import recurrence as rc
from pstfast.pst.props import NAMED_PROPERTIES, PS_PUBLIC_STRINGS, PSETID_ADDRESS, PSETID_APPOINTMENT
from pstfast.pst.write.messaging import Message, PstWriter, Recipient
from pstfast.synthetic.corpus import SynthOptions, synth
from pstfast.synthetic.kinds import ZONE, one_off_entry_id

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "public"
CORPUS_KINDS = [CORPUS / n for n in ("hiraoka-contacts.pst", "libpst-dist-list.pst", "libpst-passworded.pst",
                                     "pstsdk-sample1.pst", "pstsdk-sample2.pst")]
needs_readpst = pytest.mark.skipif(shutil.which("readpst") is None, reason="readpst (pst-utils) is not installed")
needs_pffexport = pytest.mark.skipif(shutil.which("pffexport") is None, reason="pffexport (pff-tools) is not installed")


def _rows(prefix: Path, name: str = "emails.ndjson.gz") -> list[dict]:
    return [json.loads(line) for line in gzip.open(prefix / name, "rt", encoding="utf-8")]


def _extract(pst: Path, out: Path, **kw: object) -> Path:
    manifest = pstfast.extract(pst, out, pst_file_id="items", **kw)  # type: ignore[arg-type]
    return Path(storage.output_prefix(out, manifest.pst_file_id))


@pytest.fixture(scope="module")
def kinds_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """A 400-message writer PST (20 items of the other kinds) and its extract."""
    tmp = tmp_path_factory.mktemp("kinds")
    synth(tmp / "k.pst", options=SynthOptions(messages=400, seed=20), truth=tmp / "k.json")
    prefix = _extract(tmp / "k.pst", tmp / "out", workers=2, items_per_shard=50)
    return tmp / "k.pst", json.loads((tmp / "k.json").read_text(encoding="utf-8")), prefix


# --- the name-to-id map ----------------------------------------------------------------------


def test_name_map_round_trip_by_lid_and_by_name() -> None:
    builder = namemap.NameMapBuilder()
    common = builder.id(NAMED_PROPERTIES["common_start"][0], 0x8516)
    start = builder.named("appt_start")
    keywords = builder.named("keywords")
    custom = builder.id(PS_PUBLIC_STRINGS, "X-Custom")
    assert len({common, start, keywords, custom}) == 4 and min(common, start, keywords, custom) >= 0x8000
    assert builder.named("appt_start") == start  # allocated once
    values = {tag >> 16: (tag & 0xFFFF, value if isinstance(value, bytes) else struct.pack("<I", value))
              for tag, value in builder.properties().items()}
    parsed = namemap.parse(values)
    assert parsed[(PSETID_APPOINTMENT, 0x820D)] == start
    assert parsed[(PS_PUBLIC_STRINGS, "Keywords")] == keywords
    assert parsed[(PS_PUBLIC_STRINGS, "X-Custom")] == custom
    resolved = namemap.resolve(parsed)
    assert resolved["appt_start"] == start and resolved["keywords"] == keywords
    assert "task_due" not in resolved  # never named in this file


def test_name_map_skips_damaged_records() -> None:
    entries = struct.pack("<IHH", 0x820D, 3 << 1, 0) + struct.pack("<IHH", 0x820E, 9 << 1, 1) \
        + struct.pack("<IHH", 5000, (2 << 1) | 1, 2)  # GUID index 9 and string offset 5000: out of range
    parsed = namemap.parse({2: (0x102, PSETID_APPOINTMENT), 3: (0x102, entries), 4: (0x102, b"")})
    assert parsed == {(PSETID_APPOINTMENT, 0x820D): 0x8000}


def test_keywords_resolve_case_insensitively() -> None:
    assert namemap.resolve({(PS_PUBLIC_STRINGS, "keywords"): 0x8123})["keywords"] == 0x8123


# --- recurrence --------------------------------------------------------------------------------


def _pattern(ptype: int, freq: int, period: int, specific: tuple[int, ...], end: int, count: int = 0,
             end_date: int = 0) -> rc.Recurrence:
    return rc.Recurrence(freq, ptype, period, specific, end, count, 1, [], [], rc.to_minutes(dt.datetime(2021, 3, 1)),
                         end_date, 540, 600)


@pytest.mark.parametrize(("pattern", "rule"), [
    (_pattern(rc.PATTERN_DAY, rc.FREQ_DAILY, 2 * 1440, (), rc.END_COUNT, 5), "FREQ=DAILY;INTERVAL=2;COUNT=5"),
    (_pattern(rc.PATTERN_WEEK, rc.FREQ_WEEKLY, 1, (0b0111110,), rc.END_NEVER),
     "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TU,WE,TH,FR"),
    (_pattern(rc.PATTERN_MONTH, rc.FREQ_MONTHLY, 3, (15,), rc.END_COUNT, 4),
     "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=15;COUNT=4"),
    (_pattern(rc.PATTERN_MONTH_NTH, rc.FREQ_MONTHLY, 1, (0b0000100, 5), rc.END_NEVER),
     "FREQ=MONTHLY;INTERVAL=1;BYDAY=TU;BYSETPOS=-1"),
    (_pattern(rc.PATTERN_MONTH, rc.FREQ_YEARLY, 12, (1,), rc.END_DATE,
              end_date=rc.to_minutes(dt.datetime(2025, 3, 1))),
     "FREQ=YEARLY;INTERVAL=1;BYMONTHDAY=1;BYMONTH=3;UNTIL=20250301T090000Z"),
])
def test_rrule_of_each_pattern_survives_the_blob(pattern: rc.Recurrence, rule: str) -> None:
    parsed = rc.parse(rc.build(pattern))
    assert parsed is not None
    assert rc.rrule(parsed) == rule


def test_exception_texts_and_damaged_blobs() -> None:
    rec = _pattern(rc.PATTERN_WEEK, rc.FREQ_WEEKLY, 1, (2,), rc.END_COUNT, 3)
    rec.exceptions = [rc.ExceptionInfo(100, 160, 90, "Müller 会議", "Raum Ä")]
    blob = rc.build(rec)
    parsed = rc.parse(blob)
    assert parsed is not None and parsed.exceptions[0].subject == "Müller 会議"  # the Unicode text wins
    assert parsed.exceptions[0].location == "Raum Ä"
    for cut in (0, 10, 30, len(blob) - 3):
        rc.parse(blob[:cut])  # never raises
    assert rc.parse(b"\x00" * 64) is None


def test_time_zone_rule_follows_daylight_saving() -> None:
    assert ZONE.to_utc(dt.datetime(2021, 1, 15, 9, 0)) == dt.datetime(2021, 1, 15, 8, 0)  # CET
    assert ZONE.to_utc(dt.datetime(2021, 7, 15, 9, 0)) == dt.datetime(2021, 7, 15, 7, 0)  # CEST
    assert ZONE.to_utc(dt.datetime(2021, 3, 28, 1, 0)) == dt.datetime(2021, 3, 28, 0, 0)  # before the switch
    assert ZONE.to_utc(dt.datetime(2021, 3, 28, 3, 0)) == dt.datetime(2021, 3, 28, 1, 0)  # after it
    assert rc.TimeZone.parse(ZONE.to_bytes()) == ZONE


def test_one_off_entry_ids() -> None:
    assert one_off(one_off_entry_id("Zoë 李", "zoe@example.com")) == {
        "name": "Zoë 李", "email": "zoe@example.com", "type": "SMTP"}
    assert one_off(b"\0" * 30) is None
    assert _multi(b"\x05\x00\x00\x00") == []  # a count the value cannot hold


# --- writer PSTs: both readers, the truth -------------------------------------------------------


def test_every_kind_is_in_the_corpus_and_read_identically(kinds_pst: tuple[Path, dict, Path],
                                                          tmp_path: Path) -> None:
    pst, truth, prefix = kinds_pst
    rows = _rows(prefix)
    kinds = {r["item_properties"]["kind"] for r in rows if r["item_properties"]}
    assert kinds == {"appointment", "contact", "distribution_list", "task"}
    assert any(r["is_draft"] for r in rows) and any(r["categories"] for r in rows)
    assert any(r["is_read"] is False for r in rows)
    series = [r for r in rows if r["item_properties"] and r["item_properties"].get("exceptions")]
    assert series and all(len(r["item_properties"]["exceptions"]) == 2 for r in series)
    # exceptions are part of their series: no row without subject or time comes of them
    assert not [r for r in rows if (r["message_class"] or "").startswith("IPM.OLE.CLASS")]
    # both readers and the compiled path: the same bytes (one worker, two, libpff)
    objects = json.loads((prefix / "manifest.json").read_text())["objects"]
    for kw, compiled in ((dict(workers=1), "0"), (dict(workers=2, reader="libpff"), "0"), (dict(workers=2), "1")):
        os.environ["PSTFAST_COMPILED_READER"] = compiled
        try:
            found = _extract(pst, tmp_path / f"{compiled}{len(kw)}", items_per_shard=50, **kw)
            other = json.loads((found / "manifest.json").read_text())
        finally:
            del os.environ["PSTFAST_COMPILED_READER"]
        for key in ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet", "folders.csv.gz", "folders.ndjson.gz"):
            assert other["objects"][key] == objects[key], (kw, compiled, key)


def test_item_properties_equal_the_truth(kinds_pst: tuple[Path, dict, Path]) -> None:
    _, truth, prefix = kinds_pst
    by_id = {r["email_id"]: r for r in _rows(prefix)}
    checked = 0
    for want in truth["messages"]:
        got = by_id[ids.email_id("items", want["nid"])]
        assert got["item_properties"] == want["item_properties"], want["key"]
        for name in ("is_draft", "is_read", "flags", "categories", "sensitivity", "created_at", "modified_at"):
            assert got[name] == want[name], (want["key"], name)
        checked += want["item_properties"] is not None or want["is_draft"]
    assert checked == 20  # 5 % of 400: the other kinds and the drafts


def test_a_draft_never_sent_has_no_sent_at(tmp_path: Path) -> None:
    when = dt.datetime(2022, 5, 1, 12, 0)
    with PstWriter(tmp_path / "d.pst") as w:
        drafts = w.add_folder(w.ipm_subtree, "Drafts")
        # the draft carries a client submit time and a Date header: neither is a sending
        w.add_message(drafts, Message(subject="unsent", sender_name="A", sender_email="a@example.com",
                                      sent_at=when, received_at=when, draft=True,
                                      transport_headers="Date: Sun, 1 May 2022 12:00:00 +0000\r\n",
                                      recipients=[Recipient("B", "b@example.com")]))
        w.add_message(drafts, Message(subject="sent", sender_name="A", sender_email="a@example.com",
                                      sent_at=when, received_at=when, read=False))
    rows = {r["subject"]: r for r in _rows(_extract(tmp_path / "d.pst", tmp_path / "out"))}
    assert rows["unsent"]["is_draft"] is True and rows["unsent"]["sent_at"] is None
    assert rows["unsent"]["flags"] & 0x08
    assert rows["sent"]["is_draft"] is False and rows["sent"]["sent_at"] == "2022-05-01T12:00:00Z"
    assert rows["sent"]["is_read"] is False


def test_sibling_folders_of_one_name_and_a_slash_in_a_name(tmp_path: Path) -> None:
    when = dt.datetime(2022, 5, 1, 12, 0)
    with PstWriter(tmp_path / "f.pst") as w:
        first, second = w.add_folder(w.ipm_subtree, "Inbox"), w.add_folder(w.ipm_subtree, "Inbox")
        slash = w.add_folder(w.ipm_subtree, "a/b")
        a = w.add_folder(w.ipm_subtree, "a")
        b = w.add_folder(a, "b")
        for n, folder in enumerate((first, second, slash, b)):
            w.add_message(folder, Message(subject=f"m{n}", sender_name="A", sender_email="a@example.com",
                                          sent_at=when, received_at=when, read=n != 1))
    prefix = _extract(tmp_path / "f.pst", tmp_path / "out")
    folders = _rows(prefix, "folders.ndjson.gz")
    assert len({f["folder_id"] for f in folders}) == len(folders)
    assert len({f["path"] for f in folders}) == len(folders)
    paths = {f["path"] for f in folders}
    top = "Top of Personal Folders"
    assert {f"{top}/Inbox", f"{top}/Inbox\\2", f"{top}/a\\/b", f"{top}/a/b"} <= paths
    rows = {r["subject"]: r for r in _rows(prefix)}
    assert len({rows[f"m{n}"]["folder_id"] for n in range(4)}) == 4
    by_id = {f["folder_id"]: f for f in folders}
    assert by_id[rows["m1"]["folder_id"]]["unread_count"] == 1 and by_id[rows["m0"]["folder_id"]]["unread_count"] == 0
    assert by_id[rows["m3"]["folder_id"]]["parent_folder_id"] == next(f["folder_id"] for f in folders
                                                                      if f["path"] == f"{top}/a")
    manifest = json.loads((prefix / "manifest.json").read_text())
    assert {"folders.ndjson.gz", "folders.csv.gz", "folders.parquet"} <= set(manifest["objects"])
    assert manifest["counts"]["folders"] == len(folders)


# --- readpst and pffexport --------------------------------------------------------------------


def _readpst(pst: Path, out: Path) -> tuple[list[dict[str, list[str]]], list[dict[str, list[str]]]]:
    """(VEVENTs, VCARDs) readpst writes, each as {property name: [values]}."""
    out.mkdir()
    subprocess.run(["readpst", "-j", "0", "-q", "-o", str(out), str(pst)], check=True, capture_output=True)
    events, cards = [], []
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").replace("\n ", "")
        for kind, found in (("VEVENT", events), ("VCARD", cards)):
            for block in re.findall(rf"BEGIN:{kind}\n(.*?)END:{kind}", text, re.S):
                entry: dict[str, list[str]] = {}
                for line in block.splitlines():
                    name, _, value = line.partition(":")
                    entry.setdefault(name.split(";")[0], []).append(value)
                found.append(entry)
    return events, cards


def _ics_time(value: str) -> str:
    return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")


def _rule(text: str | None) -> dict[str, str]:
    parts = dict(p.split("=", 1) for p in (text or "").split(";") if p)
    parts.setdefault("INTERVAL", "1")
    parts.pop("WKST", None)  # readpst leaves the week start out
    return parts


def _vcard_unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\")


def _check_with_readpst(pst: Path, tmp: Path) -> int:
    rows = _rows(_extract(pst, tmp / "out"))
    events, cards = _readpst(pst, tmp / "readpst")
    checked = 0
    appointments = {r["subject"]: r["item_properties"] for r in rows
                    if r["item_properties"] and r["item_properties"]["kind"] == "appointment"
                    and r["message_class"] == "IPM.Appointment"}
    for event in events:
        mine = appointments.get(_vcard_unescape(event["SUMMARY"][0]))
        if mine is None:
            continue
        assert _ics_time(event["DTSTART"][0]) == mine["start"]
        assert _ics_time(event["DTEND"][0]) == mine["end"]
        assert _vcard_unescape(event.get("LOCATION", [""])[0]) == (mine["location"] or "")
        assert _rule(event.get("RRULE", [None])[0]) == (_rule(mine["recurrence"]) if mine["recurrence"] else
                                                         {"INTERVAL": "1"})
        checked += 1
    assert checked == len(appointments)
    contacts = {r["item_properties"]["surname"]: r["item_properties"] for r in rows
                if r["item_properties"] and r["item_properties"]["kind"] == "contact"}
    for card in cards:
        mine = contacts[_vcard_unescape(card["N"][0].split(";")[0])]
        assert card.get("EMAIL", []) == [e["email"] for e in mine["email_addresses"]]
        assert sorted(card.get("TEL", [])) == sorted(mine["phone_numbers"].values())
        assert _vcard_unescape(card.get("ORG", [""])[0]) == (mine["company"] or "")
        assert _vcard_unescape(card.get("TITLE", [""])[0]) == (mine["job_title"] or "")
        assert card.get("BDAY", [None])[0] == mine["birthday"]
        labels = [_vcard_unescape(v) for v in card.get("LABEL", [])]
        assert labels == [a["text"].replace("\r\n", "\n") for a in mine["postal_addresses"]]
        checked += 1
    assert len(cards) == len(contacts)
    return checked


@needs_readpst
def test_appointments_and_contacts_agree_with_readpst(kinds_pst: tuple[Path, dict, Path], tmp_path: Path) -> None:
    assert _check_with_readpst(kinds_pst[0], tmp_path) >= 8


@needs_readpst
@pytest.mark.parametrize("pst", CORPUS_KINDS, ids=lambda p: p.name)
def test_corpus_items_agree_with_readpst(pst: Path, tmp_path: Path) -> None:
    if not pst.exists():
        pytest.skip(f"{pst} is not here (the public corpus lives beside the repository)")
    _check_with_readpst(pst, tmp_path)


def _pff_time(value: str) -> str:
    return dt.datetime.strptime(value.split(".")[0], "%b %d, %Y %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_with_pffexport(pst: Path, tmp: Path) -> int:
    rows = [r for r in _rows(_extract(pst, tmp / "out")) if r["parent_email_id"] is None]
    subprocess.run(["pffexport", "-q", "-t", str(tmp / "pff"), str(pst)], check=True, capture_output=True)
    mine = {(r["folder_path"], r["subject"] or ""): r for r in rows}
    checked = 0
    for text_file in sorted((tmp / "pff.export").rglob("*.txt")):
        # (pffexport prints no times of a meeting request: Meeting.txt is left out)
        if text_file.name not in ("Appointment.txt", "Contact.txt", "Task.txt") \
                or "Attachments" in text_file.parts:
            continue
        fields: dict[str, str] = {}
        for line in text_file.read_text(encoding="utf-8", errors="replace").splitlines():
            name, sep, value = line.partition(":")
            if sep and value.strip() and name not in fields:
                fields[name.strip()] = value.strip()
        folder = text_file.parent.parent.relative_to(tmp / "pff.export").as_posix()
        row = mine[(folder, fields.get("Subject", ""))]
        props = row["item_properties"]
        if text_file.name == "Appointment.txt":
            assert _pff_time(fields["Start time"]) == props["start"]
            assert _pff_time(fields["End time"]) == props["end"]
            assert fields.get("Location", "") == (props["location"] or "")
        elif text_file.name == "Contact.txt":
            assert fields.get("Given name") == props["given_name"]
            assert fields.get("Surname") == props["surname"]
            assert fields.get("Company name") == props["company"]
            assert fields.get("Email address 1") == (props["email_addresses"][0]["email"]
                                                     if props["email_addresses"] else None)
            assert fields.get("Mobile phone number") == props["phone_numbers"].get("mobile")
            assert fields.get("Business phone number 1") == props["phone_numbers"].get("business")
        else:
            assert _pff_time(fields["Due date"]) == props["due"]
            assert _pff_time(fields["Start date"]) == props["start"]
            assert float(fields["Percentage complete"]) == props["percent_complete"]
        if "Flags" in fields:
            assert int(fields["Flags"].split()[0], 16) == row["flags"]
        checked += 1
    return checked


@needs_pffexport
def test_items_agree_with_pffexport(kinds_pst: tuple[Path, dict, Path], tmp_path: Path) -> None:
    assert _check_with_pffexport(kinds_pst[0], tmp_path) >= 12


@needs_pffexport
@pytest.mark.parametrize("pst", CORPUS_KINDS[:2], ids=lambda p: p.name)
def test_corpus_items_agree_with_pffexport(pst: Path, tmp_path: Path) -> None:
    if not pst.exists():
        pytest.skip(f"{pst} is not here (the public corpus lives beside the repository)")
    assert _check_with_pffexport(pst, tmp_path) >= 1


def test_corpus_contacts_and_lists_by_value(tmp_path: Path) -> None:
    """What the public files hold, as readpst/pffexport print it (checked above too)."""
    if not CORPUS_KINDS[1].exists():
        pytest.skip("the public corpus lives beside the repository")
    rows = {r["message_class"]: r for r in _rows(_extract(CORPUS_KINDS[1], tmp_path / "o1"))}
    members = rows["IPM.DistList"]["item_properties"]["members"]
    assert [m["email"] for m in members] == ["contact1@rjohnson.id.au", "dist1@rjohnson.id.au", "dist2@rjohnson.id.au"]
    appointment = rows["IPM.Appointment"]["item_properties"]
    assert appointment["is_recurring"] and _rule(appointment["recurrence"]) == {"FREQ": "WEEKLY", "BYDAY": "TU",
                                                                                 "INTERVAL": "1"}
    assert [e["deleted"] for e in appointment["exceptions"]].count(True) >= 1
    assert all(e["subject"] == "Test appointment" for e in appointment["exceptions"] if not e["deleted"])
    sample = _rows(_extract(CORPUS / "pstsdk-sample1.pst", tmp_path / "o2"))[0]
    assert sample["categories"] == ["Green Category", "Blue Category"]


def test_writer_map_names_what_the_messages_use(tmp_path: Path) -> None:
    with PstWriter(tmp_path / "m.pst") as w:
        w.add_message(w.add_folder(w.ipm_subtree, "Contacts", container_class="IPF.Contact"), Message(
            subject="x", sender_name="A", sender_email="a@example.com", sent_at=None,
            received_at=dt.datetime(2022, 1, 1), message_class="IPM.Contact",
            named={"email1_address": "x@example.com"}, categories=["Blue"]))
    from pstfast.extraction.items import ItemReader

    reader = ItemReader(tmp_path / "m.pst")
    try:
        assert set(reader.named) == {"email1_address", "keywords"}
        assert namemap.parse(reader.pst.raw_properties(reader.pst.node(0x61)))[(PSETID_ADDRESS, 0x8083)] == \
            reader.named["email1_address"]  # type: ignore[arg-type]
    finally:
        reader.close()


# --- PostgreSQL: load, validation, search -------------------------------------------------------


def test_load_folders_metadata_and_search(kinds_pst: tuple[Path, dict, Path], pg_dsn: str, tmp_path: Path) -> None:
    import psycopg

    pst, truth, _ = kinds_pst
    out = tmp_path / "out"
    pstfast.extract(pst, out, pst_file_id="kinds", project_id="p20", workers=2)
    pstfast.load(out, "kinds", pg_dsn)
    pstfast.load(out, "kinds", pg_dsn)  # a rerun (the merge path) gives the same rows
    prefix = Path(storage.output_prefix(out, "kinds"))
    rows = _rows(prefix)
    folders = _rows(prefix, "folders.ndjson.gz")
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM email_folders WHERE pst_file_id = 'kinds'").fetchone()[0] == len(folders)
        found = dict(conn.execute("SELECT email_id::text, item_properties FROM email_messages "
                                  "WHERE item_properties IS NOT NULL").fetchall())
        assert found == {r["email_id"]: r["item_properties"] for r in rows if r["item_properties"]}
        drafts = conn.execute("SELECT count(*) FROM email_messages WHERE is_draft AND sent_at IS NULL").fetchone()[0]
        assert drafts == sum(1 for r in rows if r["is_draft"]) > 0
        unjoined = conn.execute("SELECT count(*) FROM email_messages m WHERE NOT EXISTS "
                                "(SELECT 1 FROM email_folders f WHERE f.folder_id = m.folder_id)").fetchone()[0]
        assert unjoined == 0
        tagged = conn.execute("SELECT count(*) FROM email_messages WHERE categories @> ARRAY['Privileged']").fetchone()[0]
        assert tagged == sum(1 for r in rows if "Privileged" in r["categories"])
    pstfast.index(out, "kinds", pg_dsn)
    contact = next(r for r in rows if r["item_properties"] and r["item_properties"]["kind"] == "contact")
    phone = contact["item_properties"]["phone_numbers"]["mobile"]
    email = contact["item_properties"]["email_addresses"][0]["email"]
    meeting = next(r for r in rows if r["item_properties"] and r["item_properties"].get("attendees"))
    attendee = meeting["item_properties"]["attendees"][-1]["email"]
    category = next(c for r in rows for c in r["categories"])
    for query, expected in ((f'"{email}"', contact["email_id"]), (f'"{attendee}"', meeting["email_id"]),
                            (f'"{phone}"', contact["email_id"]), (f'"{category}"', None)):
        hits = {str(h.email_id) for h in pstfast.search(query, "p20", pg_dsn, limit=200)}
        assert hits, query
        if expected is not None:
            assert expected in hits, query
    with_category = {r["email_id"] for r in rows if category in r["categories"]}
    assert with_category <= {str(h.email_id) for h in pstfast.search(f'"{category}"', "p20", pg_dsn, limit=500)}


def test_load_refuses_rows_of_an_unknown_folder(kinds_pst: tuple[Path, dict, Path], pg_dsn: str,
                                                tmp_path: Path) -> None:
    from pstfast.errors import ManifestError
    from pstfast.extraction.writers import csv_header_member, gzip_bytes
    from pstfast.manifest import read_manifest, write_manifest
    from pstfast.records import FOLDER_FIELDS

    out = tmp_path / "out"
    pstfast.extract(kinds_pst[0], out, pst_file_id="kinds", project_id="p20", workers=1)
    prefix = Path(storage.output_prefix(out, "kinds"))
    lines = gzip.open(prefix / "folders.csv.gz", "rt", encoding="utf-8").read().splitlines()[1:]
    kept = [line for line in lines if "Inbox" not in line]  # the Inbox's rows now name no folder
    data = csv_header_member(FOLDER_FIELDS) + gzip_bytes(("\n".join(kept) + "\n").encode("utf-8"))
    (prefix / "folders.csv.gz").write_bytes(data)
    manifest = read_manifest(str(prefix))
    manifest.objects["folders.csv.gz"] = {"sha256": __import__("hashlib").sha256(data).hexdigest(), "size": len(data)}
    write_manifest(str(prefix), manifest)
    with pytest.raises(ManifestError, match="folder"):
        pstfast.load(out, "kinds", pg_dsn)
