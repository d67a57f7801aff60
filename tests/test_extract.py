"""Extract stage on the public corpus: counts vs pypff and readpst, decoding, round trip,
manifest, determinism, and bad input (file-level and item-level)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pstfast
from pstfast import storage
from pstfast.errors import CorruptPstError, InputError, ManifestError, NotAPstError, UsageError
from pstfast.manifest import read_manifest, verify
from pstfast.extraction.items import codec_for, codepage_for_locale, Props, PT_STRING8, PT_UNICODE
from pstfast.records import ATTACHMENT_FIELDS, EMAIL_COLUMNS, EMAIL_FIELDS, format_timestamp, json_text

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "public"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"public corpus not found at {CORPUS}")
PSTS = sorted(p.name for p in CORPUS.glob("*.pst")) if CORPUS.is_dir() else []
# message classes that readpst converts (it skips posts, distribution lists, free/busy)
READPST_CLASSES = re.compile(r"^IPM\.(Note|Contact|Appointment|Schedule\.|Task|Activity)")


def _extract(pst: str | Path, out: Path, **kw):
    manifest = pstfast.extract(pst, out, **kw)
    return manifest, Path(storage.output_prefix(out, manifest.pst_file_id))


def _ndjson(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]


# --- independent counts ------------------------------------------------------------------


def _pypff_counts(path: Path) -> tuple[int, int]:
    """(all top-level items, items under the IPM subtree) counted with pypff directly."""
    import pypff

    f = pypff.file()
    f.open(str(path))
    store = f.get_message_store().get_record_set(0)
    ipm = next(e.data for e in store.entries if e.entry_type == 0x35E0)
    ipm_nid = int.from_bytes(ipm[-4:], "little")

    def walk(folder, inside: bool) -> tuple[int, int]:
        inside = inside or folder.identifier == ipm_nid
        total = folder.number_of_sub_messages
        ipm_total = total if inside else 0
        for i in range(folder.number_of_sub_folders):
            t, it = walk(folder.get_sub_folder(i), inside)
            total, ipm_total = total + t, ipm_total + it
        return total, ipm_total

    return walk(f.get_root_folder(), False)


def _readpst_items(path: Path, tmp: Path) -> int:
    """Items readpst writes (one file per item with -S; attachments are N-name files)."""
    out = tmp / "readpst"
    out.mkdir()
    # -j 0: readpst's forked workers share one file offset and now and then skip an item
    subprocess.run(["readpst", "-j", "0", "-D", "-S", "-q", "-o", str(out), str(path)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sum(1 for p in out.rglob("*") if p.is_file() and p.name.isdigit())


@needs_corpus
@pytest.mark.parametrize("name", PSTS)
def test_corpus_counts_match_pypff_and_readpst(name: str, tmp_path: Path) -> None:
    if shutil.which("readpst") is None:
        pytest.fail("readpst is not installed (apt-get install pst-utils)")
    pst = CORPUS / name
    manifest, prefix = _extract(pst, tmp_path / "out", workers=1)
    rows = _ndjson(prefix / "emails.ndjson.gz")
    top = [r for r in rows if r["parent_email_id"] is None]
    all_items, ipm_items = _pypff_counts(pst)
    assert len(top) == all_items
    assert manifest.counts["emails"] == len(rows)
    assert manifest.counts["items_seen"] == manifest.counts["emails"] + manifest.counts["errors"]
    ipm_rows = [r for r in top if r["folder_path"].split("/")[0].startswith(("Top of", "Outlook"))]
    assert len(ipm_rows) == ipm_items
    converted = [r for r in ipm_rows if READPST_CLASSES.match(r["message_class"] or "")]
    assert len(converted) == _readpst_items(pst, tmp_path)


@needs_corpus
def test_japanese_contact_names(tmp_path: Path) -> None:
    _, prefix = _extract(CORPUS / "hiraoka-contacts.pst", tmp_path, workers=1)
    (row,) = _ndjson(prefix / "emails.ndjson.gz")
    assert row["message_class"] == "IPM.Contact"
    assert row["subject"] == "コム ドット イグザンプル 殿"
    assert row["folder_path"] == "Outlook データ ファイルのトップ/連絡先 (Contact dedicated)"


def test_text_is_clean_when_read() -> None:
    # rows are built from Props.str as is: what PostgreSQL text cannot hold (NUL, an
    # unpaired surrogate from broken UTF-16) must already be U+FFFD; trailing NULs go
    broken = "x\ud800y\x00z".encode("utf-16-le", "surrogatepass") + b"\x00\x00"
    props = Props({1: (PT_UNICODE, broken), 2: (PT_UNICODE, "fine\x00".encode("utf-16-le")),
                   3: (PT_UNICODE, "nul\x00inside".encode("utf-16-le")), 4: (PT_STRING8, b"a\x00b\x00")})
    assert props.str(1) == "x\ufffdy\ufffdz"
    assert props.str(2) == "fine"
    assert props.str(3) == "nul\ufffdinside"
    assert props.str(4) == "a\ufffdb"


def test_ansi_strings_decode_with_the_message_code_page() -> None:
    subject = "テスト件名".encode("cp932")
    props = Props({0x0037: (PT_STRING8, subject + b"\x00")})
    props.codec = codec_for(932)
    assert props.str(0x0037) == "テスト件名"
    # an Internet code page for Japanese mail maps to the Windows ANSI code page cp932
    assert codec_for(50220) == codec_for(932) == "cp932"
    assert codec_for(65001) == "utf-8"
    # a Japanese locale (0x0411) means cp932 when no code page property is present
    assert codepage_for_locale(0x0411) == 932
    assert codec_for(None) is None


@needs_corpus
def test_ansi_pst_and_embedded_message(tmp_path: Path) -> None:
    _, prefix = _extract(CORPUS / "pstsdk-test_ansi.pst", tmp_path / "a", workers=1)
    (row,) = _ndjson(prefix / "emails.ndjson.gz")
    assert (row["subject"], row["message_class"], row["sender_name"]) == ("Post", "IPM.Post", "Terry Mahaffey")
    _, prefix = _extract(CORPUS / "pstsdk-submessage.pst", tmp_path / "b", workers=1)
    parent, child = _ndjson(prefix / "emails.ndjson.gz")
    assert child["parent_email_id"] == parent["email_id"]
    assert child["subject"] == "This is an embedded message"
    assert child["body_text"].startswith("This is the body of an embedded message")
    (att,) = _ndjson(prefix / "attachments.ndjson.gz")
    assert (att["email_id"], att["method"]) == (parent["email_id"], "embedded_message")
    assert parent["sender_email"] == "terrymah@microsoft.com"
    # an Exchange recipient: the SMTP address, the DN kept beside it
    assert parent["to"] == [{"name": "Terry Mahaffey", "email": "terrymah@microsoft.com",
                             "x500": "/O=MICROSOFT/OU=Northamerica/cn=Recipients/cn=terrymah1"}]
    assert parent["sender_x500"] == "/O=MICROSOFT/OU=NORTHAMERICA/CN=RECIPIENTS/CN=TERRYMAH1"


@needs_corpus
def test_attachment_bytes_stored_once_by_sha256(tmp_path: Path) -> None:
    import hashlib

    manifest, prefix = _extract(CORPUS / "pstsdk-sample1.pst", tmp_path, workers=1)
    (att,) = _ndjson(prefix / "attachments.ndjson.gz")
    assert att["filename"] == "leah_thumper.jpg"
    data = (prefix / att["storage_key"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == att["sha256"] and len(data) == att["size"]
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG
    assert manifest.objects[att["storage_key"]]["size"] == len(data)


@needs_corpus
def test_round_trip_csv_ndjson_parquet(tmp_path: Path) -> None:
    import csv
    import io

    import fastparquet

    _, prefix = _extract(CORPUS / "pstsdk-submessage.pst", tmp_path, workers=1, project_id="p7")
    nd = _ndjson(prefix / "emails.ndjson.gz")
    text = gzip.open(prefix / "emails.csv.gz", "rt", encoding="utf-8", newline="").read()
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == list(EMAIL_FIELDS)
    csv_rows = list(reader)
    table = pq.read_table(prefix / "emails.parquet").to_pylist()
    fp = fastparquet.ParquetFile(str(prefix / "emails.parquet")).to_pandas()
    assert len(nd) == len(csv_rows) == len(table) == len(fp) == 2

    def addresses(value):
        return [p["email"] for p in value]

    types = dict(EMAIL_COLUMNS)
    for n, c, t, (_, f) in zip(nd, csv_rows, table, fp.iterrows()):
        for i, name in enumerate(EMAIL_FIELDS):
            want = n[name]
            if name in ("to", "cc", "bcc"):
                want = addresses(want)
            if types[name] == "jsonb" and want is not None:  # an object in NDJSON, its JSON text elsewhere
                want = json_text(want)
            # CSV: NULL is empty, text is quoted (csv module drops the quotes)
            if want is None:
                assert c[i] == ""
            elif isinstance(want, list):
                assert c[i] == "{" + ",".join('"' + v + '"' for v in want) + "}"
            else:
                assert c[i] == (str(want).lower() if isinstance(want, bool) else str(want))
            got = t[name]
            if types[name] == "timestamptz" and got is not None:
                got = format_timestamp(got)
            assert got == want, name
            fv = f[name]
            if isinstance(want, list):
                assert list(fv) == want, name
            elif want is None:
                assert fv is None or fv != fv, name  # None or NaN/NaT
            elif types[name] != "timestamptz":
                assert fv == want, name
    att_text = gzip.open(prefix / "attachments.csv.gz", "rt", encoding="utf-8").read()
    assert att_text.splitlines()[0] == ",".join(ATTACHMENT_FIELDS)


@needs_corpus
def test_manifest_written_last_and_verifies(tmp_path: Path) -> None:
    manifest, prefix = _extract(CORPUS / "pstsdk-sample1.pst", tmp_path, workers=1, pst_file_id="f1")
    assert prefix.name == "f1" and prefix.parent.name == "pst-v2"
    again = read_manifest(str(prefix))
    assert again == manifest
    verify(str(prefix), again)
    for key in ("emails.ndjson.gz", "emails.csv.gz", "emails.parquet", "attachments.csv.gz",
                "attachments.ndjson.gz", "errors.ndjson"):
        assert key in manifest.objects
    assert set(manifest.counts) >= {"folders", "items_seen", "emails", "attachments", "errors"}
    assert manifest.input["sha256"] == "9e77f0f7937768506f85eb33b7c114e23ddf3bc7fd5d85226fce56586a8e3618"
    assert manifest.libpff_version and manifest.extractor_version and manifest.workers >= 1
    mtimes = {p: p.stat().st_mtime_ns for p in prefix.rglob("*") if p.is_file()}
    assert max(mtimes, key=mtimes.get).name == "manifest.json"
    # a changed object no longer verifies
    with open(prefix / "errors.ndjson", "ab") as handle:
        handle.write(b"{}\n")
    with pytest.raises(ManifestError):
        verify(str(prefix), again)
    with pytest.raises(ManifestError):
        read_manifest(str(tmp_path / "nowhere"))


@needs_corpus
def test_a_given_pst_file_id_does_not_wait_for_the_input_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a pst_file_id (as every pipeline stage is), rows are written while the input is
    still being hashed: the hash is the default id, otherwise only the manifest needs it."""
    import hashlib
    import threading

    from pstfast.extraction import run as extractor

    merged = threading.Event()
    real_add, real_hash = extractor._Merger.add, extractor._hash
    waited: list[bool] = []

    def add(self: object, index: int) -> None:
        real_add(self, index)
        merged.set()

    def hash_after_a_merge(source: str, local: Path) -> tuple[str, int]:
        waited.append(merged.wait(timeout=60))  # never set if the rows waited for this hash
        return real_hash(source, local)

    monkeypatch.setattr(extractor._Merger, "add", add)
    monkeypatch.setattr(extractor, "_hash", hash_after_a_merge)
    pst = CORPUS / "pstsdk-sample1.pst"
    manifest, _ = _extract(pst, tmp_path, workers=1, pst_file_id="given", items_per_shard=1)
    assert waited == [True]
    assert manifest.input == {"name": pst.name, "sha256": hashlib.sha256(pst.read_bytes()).hexdigest(),
                              "size": pst.stat().st_size}


@needs_corpus
def test_byte_identical_for_1_2_4_workers(tmp_path: Path) -> None:
    outputs = []
    for workers in (1, 2, 4):
        _, prefix = _extract(CORPUS / "libpst-dist-list.pst", tmp_path / str(workers), workers=workers,
                             items_per_shard=1)
        outputs.append({p.relative_to(prefix): p.read_bytes() for p in sorted(prefix.rglob("*"))
                        if p.is_file() and p.name != "manifest.json"})
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) >= 6


@needs_corpus
def test_passworded_pst_is_extracted(tmp_path: Path) -> None:
    manifest, prefix = _extract(CORPUS / "libpst-passworded.pst", tmp_path, workers=1)
    classes = sorted(r["message_class"] for r in _ndjson(prefix / "emails.ndjson.gz"))
    assert classes == ["IPM.Contact", "IPM.DistList", "IPM.Microsoft.ScheduleData.FreeBusy"]
    assert manifest.counts["errors"] == 0


# --- bad input -----------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["pstfast", *args], capture_output=True, text=True)


def _no_manifest(root: Path) -> bool:
    return not list(root.rglob("manifest.json")) if root.exists() else True


@pytest.mark.parametrize("content, error", [(b"", NotAPstError), (b"From: a@b\n\nnot a pst\n" * 40, NotAPstError)])
def test_not_a_pst(tmp_path: Path, content: bytes, error: type) -> None:
    pst = tmp_path / "x.pst"
    pst.write_bytes(content)
    with pytest.raises(error):
        pstfast.extract(pst, tmp_path / "out", workers=1)
    result = _cli("extract", str(pst), "--out", str(tmp_path / "out"))
    assert result.returncode == 65
    assert len(result.stderr.strip().splitlines()) == 1 and "not a PST" in result.stderr
    assert _no_manifest(tmp_path / "out")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        pstfast.extract(tmp_path / "nope.pst", tmp_path / "out", workers=1)
    result = _cli("extract", str(tmp_path / "nope.pst"), "--out", str(tmp_path / "out"))
    assert result.returncode == 65 and len(result.stderr.strip().splitlines()) == 1
    assert _no_manifest(tmp_path / "out")


@needs_corpus
@pytest.mark.parametrize("keep", [100, 4096, 200_000])
def test_truncated_pst(tmp_path: Path, keep: int) -> None:
    pst = tmp_path / "t.pst"
    pst.write_bytes((CORPUS / "pstsdk-submessage.pst").read_bytes()[:keep])
    with pytest.raises(CorruptPstError, match="truncated"):
        pstfast.extract(pst, tmp_path / "out", workers=1)
    result = _cli("extract", str(pst), "--out", str(tmp_path / "out"))
    assert result.returncode == 65 and "truncated" in result.stderr
    assert _no_manifest(tmp_path / "out")


def _damaged(tmp_path: Path, offset: int) -> Path:
    """pstsdk-submessage.pst with 512 bytes at *offset* XOR-ed (offsets found by scanning)."""
    data = bytearray((CORPUS / "pstsdk-submessage.pst").read_bytes())
    for i in range(offset, offset + 512):
        data[i] ^= 0x5A
    path = tmp_path / f"damaged-{offset}.pst"
    path.write_bytes(bytes(data))
    return path


@needs_corpus
@pytest.mark.parametrize("offset", [512, 36864, 37376])  # the header, the two B-tree roots
def test_corrupt_header_or_btree_fails_cleanly(tmp_path: Path, offset: int) -> None:
    pst = _damaged(tmp_path, offset)
    with pytest.raises(CorruptPstError):
        pstfast.extract(pst, tmp_path / "out", workers=1)
    result = _cli("extract", str(pst), "--out", str(tmp_path / "out"))
    assert result.returncode == 65 and len(result.stderr.strip().splitlines()) == 1
    assert _no_manifest(tmp_path / "out")


@needs_corpus
@pytest.mark.parametrize("offset, kind", [(44544, "item"), (56320, "embedded_message"), (18432, "folder"),
                                          (24064, "attachment"), (51200, "recipients")])
def test_item_level_damage_goes_to_errors(tmp_path: Path, offset: int, kind: str) -> None:
    manifest, prefix = _extract(_damaged(tmp_path, offset), tmp_path / "out", workers=1)
    errors = [json.loads(line) for line in (prefix / "errors.ndjson").read_text().splitlines()]
    assert kind in {e["kind"] for e in errors}
    c = manifest.counts
    assert c["items_seen"] == c["emails"] + c["errors"]
    assert c["errors"] == sum(1 for e in errors if e["severity"] == "error")
    verify(str(prefix), manifest)


@needs_corpus
def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(UsageError):
        pstfast.extract(CORPUS / "pstsdk-sample1.pst", blocker / "out", workers=1)
    result = _cli("extract", str(CORPUS / "pstsdk-sample1.pst"), "--out", str(blocker / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1  # UsageError
    assert "not writable" in result.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-2"])
def test_a_bad_worker_count_in_the_environment_is_a_usage_error(tmp_path: Path, monkeypatch, value: str) -> None:
    monkeypatch.setenv("PSTFAST_WORKERS", value)
    with pytest.raises(UsageError, match="PSTFAST_WORKERS"):
        pstfast.extract(CORPUS / "pstsdk-sample1.pst", tmp_path / "out")
    result = _cli("extract", str(CORPUS / "pstsdk-sample1.pst"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"PSTFAST_WORKERS={value!r}" in result.stderr and _no_manifest(tmp_path / "out")


def test_output_failing_after_the_workers_started_fails_cleanly(tmp_path: Path) -> None:
    """Workers start reading before the input's hash (the default pst_file_id) is known; when
    the output folder then turns out to be unusable, they are released and nothing hangs."""
    from pstfast import ids
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=120, seed=4))
    blocker = tmp_path / "out" / "pst-v2" / ids.default_pst_file_id(ids.file_sha256(pst))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(UsageError, match="not writable"):
        pstfast.extract(pst, tmp_path / "out", workers=2, items_per_shard=16)
    assert _no_manifest(tmp_path / "out")
    manifest, prefix = _extract(pst, tmp_path / "elsewhere", workers=2, items_per_shard=16)  # and it still works
    assert manifest.counts["emails"] == manifest.counts["items_seen"] > 120


def test_given_pst_file_id_with_workers_writes_attachments_under_the_output(tmp_path: Path, monkeypatch) -> None:
    """Workers learn the output folder after they start: with a caller's pst_file_id too."""
    from pstfast.synthetic.corpus import SynthOptions, synth

    pst = tmp_path / "s.pst"
    synth(pst, options=SynthOptions(messages=200, seed=6))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    manifest, prefix = _extract(pst, tmp_path / "out", workers=2, items_per_shard=32, pst_file_id="given-id")
    assert manifest.counts["attachment_objects"] > 10
    assert list(cwd.iterdir()) == []  # nothing written beside the caller
    verify(str(prefix), manifest)  # every attachments/<sha256> is where the manifest says


@needs_corpus
def test_cli_summary_line(tmp_path: Path) -> None:
    result = _cli("extract", str(CORPUS / "pstsdk-submessage.pst"), "--out", str(tmp_path),
                  "--pst-file-id", "sub", "--project-id", "p1", "--workers", "1", "--scratch", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("extracted sub: 2 emails, 1 attachments, 0 errors")
    assert "\r" not in result.stderr and "#" not in result.stderr  # no progress bar when not a TTY
    assert result.stderr.startswith("pstfast: extract pstsdk-submessage.pst: 1 items in")  # one plan line
    assert (tmp_path / "pst-v2" / "sub" / "manifest.json").exists()
    assert not any((tmp_path / "s").iterdir())  # scratch cleaned up
