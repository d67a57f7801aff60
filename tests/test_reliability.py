"""Bad days and hostile input (issue 19): no silent loss, honest exit codes."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import pytest

import pstfast
from pstfast.cli import main
from pstfast.pst.crc import crc32
from pstfast.synthetic.corpus import SynthOptions, synth


def _with_header(good: Path, out: Path, offset: int, value: int) -> Path:
    """*good* with the 8-byte header field at *offset* set to *value* and the header CRCs fixed."""
    data = bytearray(good.read_bytes())
    struct.pack_into("<Q", data, offset, value)
    struct.pack_into("<I", data, 4, crc32(data[8:8 + 471]))
    struct.pack_into("<I", data, 524, crc32(data[8:8 + 516]))
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.pst"
    synth(path, options=SynthOptions(messages=30, seed=2))
    return path


@pytest.mark.parametrize("where", ["nbt_root", "outside"])
def test_a_damaged_block_btree_root_is_a_corrupt_file_not_an_empty_mailbox(good: Path, tmp_path: Path,
                                                                         where: str, capsys) -> None:
    nbt_root = struct.unpack_from("<Q", good.read_bytes(), 224)[0]
    bad = _with_header(good, tmp_path / "bad.pst", 240, nbt_root if where == "nbt_root" else 1 << 40)
    with pytest.raises(pstfast.CorruptPstError, match="root folder"):
        pstfast.extract(bad, tmp_path / "out", workers=1, progress=False)
    assert main(["extract", str(bad), "--out", str(tmp_path / "cli")]) == 65
    assert "B-trees are damaged" in capsys.readouterr().err
    import pypff  # libpff, the independent reader, refuses the file too

    handle = pypff.file()
    with pytest.raises(OSError):
        handle.open(str(bad))
        root = handle.get_root_folder()
        [root.get_sub_folder(i) for i in range(root.number_of_sub_folders)]


GOOD_SOURCE = "s3://docs/project_p42/pst/a1b2/mail.pst"


@pytest.mark.parametrize("body, reason", [
    ({"project_id": "p42", "source": "/etc/passwd"}, "is not an s3:// object"),
    ({"project_id": "evil", "source": GOOD_SOURCE}, "belongs to project 'p42', the job says 'evil'"),
    ({"project_id": "p42", "pst_file_id": "zz", "source": GOOD_SOURCE}, "is pst_file_id 'a1b2', the job says 'zz'"),
    ({"project_id": "-x", "source": GOOD_SOURCE}, "project_id '-x'"),
    ({"project_id": "p\x0042", "source": GOOD_SOURCE}, "project_id"),
    ({"project_id": "p42", "source": "s3://other/project_p42/pst/a1b2/mail.pst"}, "not in the docs bucket 'docs'"),
    ({"project_id": "p42", "source": "s3://docs/project_p42/pst/../x/mail.pst"}, "is not under project_"),
    ({"project_id": "p42", "source": "s3://docs/project_p42/pst/../mail.pst"}, "pst_file_id '..'"),
    ({"project_id": "p42", "source": "s3://docs/elsewhere/mail.pst"}, "is not under project_"),
    (["not", "a", "job"], "not a pstfast job"),
])
def test_a_job_body_is_never_trusted(body: object, reason: str) -> None:
    from pstfast.pipeline.sqs import checked_job

    with pytest.raises(pstfast.UsageError, match=reason.replace("(", r"\(").replace("'", "'")):
        checked_job(body, "docs")


def test_a_good_job_gets_its_ids_from_the_layout() -> None:
    from pstfast.pipeline.sqs import checked_job

    job = checked_job({"job": {"project_id": "p42", "source": GOOD_SOURCE}}, "docs")
    assert (job["project_id"], job["pst_file_id"], job["source"]) == ("p42", "a1b2", GOOD_SOURCE)
    local = checked_job({"project_id": 7, "source": "/data/mail.pst"}, None, allow_local=True)
    assert (local["project_id"], local["pst_file_id"]) == ("7", None)


def test_ids_are_checked_where_paths_are_made(tmp_path: Path) -> None:
    from pstfast import storage

    with pytest.raises(pstfast.UsageError, match="pst_file_id '../../x'"):
        storage.output_prefix(tmp_path, "../../x")
    with pytest.raises(pstfast.UsageError):
        pstfast.run_stage("load", pst_file_id="../../x", out=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_a_manifest_write_that_fails_leaves_the_previous_manifest(good: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from pstfast import manifest as manifests

    m = pstfast.extract(good, tmp_path, pst_file_id="g1", workers=1, progress=False)
    url = tmp_path / "pst-v2" / "g1" / "manifest.json"
    before = url.read_bytes()

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(pstfast.StorageError, match="No space left"):
        manifests.write_manifest(str(url.parent), m)
    assert url.read_bytes() == before and list(url.parent.glob(".*.tmp")) == []


def test_a_torn_stage_manifest_does_not_stop_the_stage(good: Path, tmp_path: Path, pg_dsn: str) -> None:
    common = ["--pst-file-id", "t1", "--project-id", "pt", "--source", str(good), "--out", str(tmp_path),
              "--db", pg_dsn]
    assert main(["pipeline", "stage", "extract", *common]) == 0
    torn = tmp_path / "pst-v2" / "t1" / "stages" / "load" / "manifest.json"
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(b'{"stage": "load", "status": "runn')  # what a full disk used to leave
    assert main(["pipeline", "stage", "load", *common]) == 0
    assert json.loads(torn.read_text())["status"] == "succeeded"


def test_a_date_header_past_the_range_of_datetime_keeps_the_message(tmp_path: Path) -> None:
    import datetime as dt
    import gzip

    from pstfast.pst.write.messaging import Message, PstWriter

    t0 = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)
    with PstWriter(tmp_path / "d.pst") as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        for date in ("Fri, 31 Dec 9999 23:59:59 -0100", "Mon, 1 Jan 2024 10:00:00 +0200"):
            pst.add_message(inbox, Message(subject=date, sender_name="a", sender_email="a@example.com", sent_at=None,
                                           received_at=t0, body_text="b", transport_headers=f"Date: {date}\r\n"))
    m = pstfast.extract(tmp_path / "d.pst", tmp_path / "out", workers=1, progress=False)
    assert (m.counts["emails"], m.counts["errors"]) == (2, 0)
    with gzip.open(tmp_path / "out" / "pst-v2" / m.pst_file_id / "emails.ndjson.gz", "rt") as lines:
        sent = {r["subject"]: r["sent_at"] for r in map(json.loads, lines)}
    assert sent == {"Fri, 31 Dec 9999 23:59:59 -0100": None, "Mon, 1 Jan 2024 10:00:00 +0200": "2024-01-01T08:00:00Z"}


def test_a_forged_reload_cannot_repoint_another_projects_attachment(tmp_path: Path, pg_dsn: str,
                                                                    write_output) -> None:
    import psycopg

    from conftest import make_attachment, make_email

    victim = make_email("pA", 1, project_id="pa")
    victim_att = make_attachment(victim, 0)
    write_output(tmp_path / "a", "pA", [victim], [victim_att], project_id="pa")
    pstfast.load(tmp_path / "a", "pA", pg_dsn, project_id="pa")
    mine = make_email("pB", 1, project_id="pb")
    write_output(tmp_path / "b", "pB", [mine], [make_attachment(mine, 0)], project_id="pb")
    pstfast.load(tmp_path / "b", "pB", pg_dsn, project_id="pb")
    # the reload: pB's attachment row forged to carry pA's attachment_id (manifest consistent)
    forged = {**make_attachment(mine, 0), "attachment_id": victim_att["attachment_id"]}
    write_output(tmp_path / "b", "pB", [mine], [forged], project_id="pb")
    with pytest.raises(pstfast.ManifestError, match="attachment_ids already loaded under another PST"):
        pstfast.load(tmp_path / "b", "pB", pg_dsn, project_id="pb")
    with psycopg.connect(pg_dsn) as conn:
        owner = conn.execute("SELECT email_id::text FROM email_attachments WHERE attachment_id = %s",
                             (victim_att["attachment_id"],)).fetchone()
    assert owner == (victim["email_id"],)


def test_a_bth_index_that_names_itself_is_damage_not_a_hang() -> None:
    from pstfast.errors import CorruptPstError
    from pstfast.pst.reader import _Node

    class Heap:
        """A heap whose BTH root index (0x40) names itself 400 times, 8 levels deep."""

        def heap(self, hid: int) -> bytes:
            if hid == 0x20:  # the BTH header: key 2 bytes, entry 6, 8 index levels, root 0x40
                return bytes([0xB5, 2, 6, 8]) + struct.pack("<I", 0x40)
            return b"".join(struct.pack("<HI", k, 0x40) for k in range(400))

        def where(self) -> str:
            return "node 0x1"

    with pytest.raises(CorruptPstError, match="names an index node twice"):
        _Node.bth_leaves(Heap(), 0x20)  # type: ignore[arg-type]  # the walk needs heap() and where() only


def test_an_unreadable_folder_counts_the_items_it_held(tmp_path: Path) -> None:
    from pstfast.pst.props import NID_TYPE_CONTENTS_TABLE
    from pstfast.pst.reader import PstReader

    pst = tmp_path / "f.pst"
    synth(pst, options=SynthOptions(messages=120, seed=9), truth=tmp_path / "f.json")
    truth = json.loads((tmp_path / "f.json").read_text())
    folder = max(truth["folders"], key=lambda f: f["message_count"])
    good = pstfast.extract(pst, tmp_path / "good", workers=1, progress=False)
    folder_nid = next(nid for nid in _folder_nids(pst) if nid[1] == folder["path"])[0]
    with PstReader(pst) as reader:
        table = reader.node((folder_nid & ~0x1F) | NID_TYPE_CONTENTS_TABLE)
        ib, _ = reader._bbt_lookup(table.bid_data, "test")
    data = bytearray(pst.read_bytes())
    data[ib + 16] ^= 0xFF  # the contents table's block: its CRC no longer matches
    bad = tmp_path / "bad.pst"
    bad.write_bytes(bytes(data))
    m = pstfast.extract(bad, tmp_path / "bad", workers=1, progress=False)
    lost = folder["message_count"]
    import gzip

    with gzip.open(tmp_path / "good" / "pst-v2" / good.pst_file_id / "emails.ndjson.gz", "rt") as lines:
        elsewhere = sum(1 for r in map(json.loads, lines) if r["folder_path"] != folder["path"])
    # its subfolders are still read; its own items are error items, as many as it said it held
    assert m.counts["emails"] == elsewhere and m.counts["errors"] == lost
    assert m.counts["items_seen"] == m.counts["emails"] + m.counts["errors"]
    assert m.counts["folders_unreadable"] == 1 and m.counts["folders_uncounted"] == 0
    errors = [json.loads(line) for line in (tmp_path / "bad" / "pst-v2" / m.pst_file_id / "errors.ndjson").open()]
    assert [e["kind"] for e in errors] == ["folder"] * lost  # one row per lost item, as counted
    assert [e["item_index"] for e in errors] == list(range(lost)) and "checksum" in errors[0]["reason"]


def _folder_nids(pst: Path) -> list[tuple[int, str]]:
    from pstfast.extraction.items import ItemReader, list_folders

    reader = ItemReader(pst)
    try:
        folders, _ = list_folders(reader)
        return [(f.node_id, f.folder_path) for f in folders]
    finally:
        reader.close()


def test_loading_an_extract_made_without_a_project_is_one_clear_refusal(good: Path, tmp_path: Path, pg_dsn: str,
                                                                       capsys) -> None:
    pstfast.extract(good, tmp_path, pst_file_id="np1", workers=1, progress=False)  # no project_id
    with pytest.raises(pstfast.ManifestError, match="extract it again with --project-id"):
        pstfast.load(tmp_path, "np1", pg_dsn, project_id="p1")
    assert main(["pipeline", "stage", "load", "--pst-file-id", "np1", "--project-id", "p1", "--out", str(tmp_path),
                 "--db", pg_dsn]) == 65
    assert "extracted without a project id" in capsys.readouterr().err


def _pst_file(dsn: str, pst_file_id: str) -> tuple:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT project_id, status, error FROM pst_files WHERE pst_file_id = %s",
                            (pst_file_id,)).fetchone()


def test_a_refused_run_of_another_projects_pst_leaves_the_owner_alone(good: Path, tmp_path: Path, pg_dsn: str) -> None:
    first = pstfast.run(str(good), out=str(tmp_path / "a"), db=pg_dsn, project_id="owner", pst_file_id="shared1")
    assert first.ok and _pst_file(pg_dsn, "shared1") == ("owner", "indexed", None)
    # another project's job with the same pst_file_id: refused, and the owner's PST untouched
    # (it used to be set back to extracted by the intruder's extract, then to failed)
    second = pstfast.run(str(good), out=str(tmp_path / "b"), db=pg_dsn, project_id="intruder", pst_file_id="shared1",
                         sleep=lambda s: None)
    assert not second.ok and "belongs to project 'owner'" in (second.error or "")
    assert _pst_file(pg_dsn, "shared1") == ("owner", "indexed", None)
    # the state machine's path: the intruder's load stage is refused, then its MarkFailed runs
    pstfast.extract(good, tmp_path / "c", pst_file_id="shared1", project_id="intruder", workers=1, progress=False)
    assert main(["pipeline", "stage", "load", "--pst-file-id", "shared1", "--project-id", "intruder",
                 "--out", str(tmp_path / "c"), "--db", pg_dsn]) == 65
    assert main(["pipeline", "mark-failed", "--pst-file-id", "shared1", "--project-id", "intruder",
                 "--out", str(tmp_path / "c"), "--db", pg_dsn]) == 0
    assert _pst_file(pg_dsn, "shared1") == ("owner", "indexed", None)


def test_a_load_racing_a_re_extract_is_transient_and_leaves_the_status(good: Path, tmp_path: Path, pg_dsn: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pstfast.extraction import run as extract_run
    from pstfast.manifest import RUNNING_NAME

    out, prefix = tmp_path / "o", tmp_path / "o" / "pst-v2" / "race1"
    assert pstfast.run(str(good), out=str(out), db=pg_dsn, project_id="p1", pst_file_id="race1").ok
    # a re-extract marks the folder before it rewrites it, and unmarks it after its manifest
    seen = []
    real_run = extract_run._run

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(((prefix / RUNNING_NAME).exists(), (prefix / "manifest.json").exists()))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(extract_run, "_run", spy)
    pstfast.extract(good, out, pst_file_id="race1", project_id="p1", workers=1, progress=False)
    assert seen == [(True, False)] and not (prefix / RUNNING_NAME).exists()
    # the load meets that state (the old manifest gone, the marker there): a retry, not a failure
    manifest = (prefix / "manifest.json").read_bytes()
    (prefix / "manifest.json").unlink()
    (prefix / RUNNING_NAME).write_text('{"started_at": "now", "host": "h", "pid": 1}')
    with pytest.raises(pstfast.ExtractRunningError, match="an extract is rewriting"):
        pstfast.load(out, "race1", pg_dsn, project_id="p1")
    assert main(["pipeline", "stage", "load", "--pst-file-id", "race1", "--project-id", "p1", "--out", str(out),
                 "--db", pg_dsn]) == 75
    assert _pst_file(pg_dsn, "race1") == ("p1", "indexed", None)
    # objects rewritten under a load that read the old manifest: the same
    (prefix / "manifest.json").write_bytes(manifest)
    (prefix / "emails.csv.gz").write_bytes(b"rewritten")
    with pytest.raises(pstfast.ExtractRunningError):
        pstfast.load(out, "race1", pg_dsn, project_id="p1")
    assert _pst_file(pg_dsn, "race1") == ("p1", "indexed", None)
    # without the marker the same damage is bad input, as before
    (prefix / RUNNING_NAME).unlink()
    with pytest.raises(pstfast.ManifestError):
        pstfast.load(out, "race1", pg_dsn, project_id="p1")


def _one_heavy_message(path: Path, **heavy: object) -> Path:
    from pstfast.pst.write.messaging import Message, PstWriter, Recipient

    at = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)
    with PstWriter(path) as pst:
        inbox = pst.add_folder(pst.ipm_subtree, "Inbox")
        for i in range(3):
            pst.add_message(inbox, Message(subject=f"light {i}", sender_name="a", sender_email="a@example.com",
                                           sent_at=at, received_at=at, recipients=[Recipient("b", "b@example.com")],
                                           body_text=f"light {i}"))
        pst.add_message(inbox, Message(subject="heavy", sender_name="a", sender_email="a@example.com", sent_at=at,
                                       received_at=at, recipients=[Recipient("b", "b@example.com")], **heavy))
    return path


def _rows_and_errors(prefix: Path) -> tuple[list[str], list[dict]]:
    import gzip

    with gzip.open(prefix / "emails.ndjson.gz", "rt", encoding="utf-8") as lines:
        subjects = [json.loads(line)["subject"] for line in lines]
    errors = [json.loads(line) for line in (prefix / "errors.ndjson").read_text().splitlines()]
    return subjects, errors


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_an_item_over_its_time_budget_is_an_error_row(tmp_path: Path, reader: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # 40 MB of HTML to turn into text: seconds, against a budget of a fraction of one
    page = "<html><body>" + "<p>slow words for the budget</p>" * 1_300_000 + "</body></html>"
    pst = _one_heavy_message(tmp_path / "slow.pst", body_html=page)
    # read once without a budget: this process loads what reading needs (numba's cache, the
    # HTML parser), which is not the items' time
    pstfast.extract(pst, tmp_path / "warm", pst_file_id="slow", workers=1, reader=reader, progress=False)
    monkeypatch.setenv("PSTFAST_ITEM_SECONDS", "0.3")
    manifest = pstfast.extract(pst, tmp_path / "o", pst_file_id="slow", workers=1, reader=reader, progress=False)
    subjects, errors = _rows_and_errors(tmp_path / "o" / "pst-v2" / "slow")
    assert sorted(subjects) == ["light 0", "light 1", "light 2"]
    assert [(e["kind"], e["item_index"]) for e in errors] == [("item", 3)]
    assert "took more than 0.3 s (PSTFAST_ITEM_SECONDS)" in errors[0]["reason"]
    assert manifest.counts["items_seen"] == 4 and manifest.counts["errors"] == 1


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_an_item_over_its_memory_budget_is_an_error_row(tmp_path: Path, reader: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # 45 MB of text, 90 in UTF-16: over the smallest budget, under libpff's own limit (128 MiB)
    pst = _one_heavy_message(tmp_path / "big.pst", body_text="big body " * 5_000_000)
    monkeypatch.setenv("PSTFAST_ITEM_MAX_MB", "64")
    pstfast.extract(pst, tmp_path / "o", pst_file_id="big", workers=1, reader=reader, progress=False)
    subjects, errors = _rows_and_errors(tmp_path / "o" / "pst-v2" / "big")
    assert sorted(subjects) == ["light 0", "light 1", "light 2"]
    assert len(errors) == 1 and "a value of 90,000,000 bytes, over the 67,108,864 allowed" in errors[0]["reason"]
    monkeypatch.setenv("PSTFAST_ITEM_MAX_MB", "10")
    with pytest.raises(pstfast.UsageError, match="give 64 or more"):
        pstfast.extract(pst, tmp_path / "o2", workers=1)


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_a_property_too_large_for_its_column_is_a_warning_not_a_crash(tmp_path: Path, reader: str) -> None:
    # found by the fuzz harness (mutant 377): a damaged PR_IMPORTANCE past a smallint stopped
    # the Arrow writer (exit 1)
    pst = _one_heavy_message(tmp_path / "odd.pst", importance=1_929_379_841)
    manifest = pstfast.extract(pst, tmp_path / "o", pst_file_id="odd", workers=1, reader=reader, progress=False)
    subjects, errors = _rows_and_errors(tmp_path / "o" / "pst-v2" / "odd")
    assert sorted(subjects) == ["heavy", "light 0", "light 1", "light 2"] and manifest.counts["errors"] == 0
    assert [(e["severity"], e["kind"]) for e in errors] == [("warning", "property")]
    assert "PR_IMPORTANCE 1929379841 does not fit its 16-bit column" in errors[0]["reason"]
