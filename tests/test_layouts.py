"""File layouts the writer makes and both readers read: ANSI (wVer 14, Outlook 97-2002), OSTs
(client signature SO) and Outlook 2013's OST layout (wVer 36: 4 KiB pages, zlib-compressed
blocks), each held to the synth truth and cross-checked with libpff (pypff, pffexport) and
readpst (which reads no wVer 36 file: libpst has no 4 KiB-page support)."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

import pstfast
from pstfast import storage
from pstfast.extraction.items import check_signature
from pstfast.pst.compiled import CompiledReader
from pstfast.pst.peers import libpff_summary, readpst_summary
from pstfast.pst.reader import PstReader
from pstfast.synthetic.corpus import SynthOptions, synth

sys.path.insert(0, str(Path(__file__).parent))
import test_extract_truth as truth_checks  # noqa: E402

needs_readpst = pytest.mark.skipif(shutil.which("readpst") is None, reason="readpst (apt-get install pst-utils) missing")

OPTIONS = {"messages": 150, "seed": 11}


def _extract(pst: Path, out: Path, **kw: Any) -> tuple[pstfast.Manifest, Path, list[dict], list[dict]]:
    manifest = pstfast.extract(pst, out, progress=False, **kw)
    prefix = Path(storage.output_prefix(out, manifest.pst_file_id))
    emails = [json.loads(line) for line in gzip.open(prefix / "emails.ndjson.gz", "rt", encoding="utf-8")]
    atts = [json.loads(line) for line in gzip.open(prefix / "attachments.ndjson.gz", "rt", encoding="utf-8")]
    return manifest, prefix, emails, atts


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """One seed written as a Unicode PST, an ANSI PST and a Unicode OST, each with its truth."""
    tmp = tmp_path_factory.mktemp("layouts")
    out = {}
    variants = {"unicode": {}, "ansi": {"layout": "ansi"}, "ost": {"ost": True},
                "ost2013": {"layout": "unicode4k", "ost": True}}
    for name, extra in variants.items():
        pst, truth = tmp / f"{name}.pst", tmp / f"{name}.json"
        synth(pst, options=SynthOptions(**OPTIONS, **extra), truth=truth)  # type: ignore[arg-type]
        out[name] = (pst, json.loads(truth.read_text(encoding="utf-8")))
    return out


def test_headers_say_what_layout_they_are(files) -> None:
    heads = {name: path.read_bytes()[:12] for name, (path, _) in files.items()}
    assert {name: (h[8:10], struct.unpack_from("<H", h, 10)[0]) for name, h in heads.items()} == {
        "unicode": (b"SM", 23), "ansi": (b"SM", 14), "ost": (b"SO", 23), "ost2013": (b"SO", 36)}
    for path, _ in files.values():
        check_signature(path)  # an OST is read, not refused
    with PstReader(files["ansi"][0]) as reader:
        assert not reader.unicode and reader._id == 4
    with PstReader(files["ost2013"][0]) as reader:
        assert reader.four_k and reader._page_size == 4096


def test_wver36_blocks_are_compressed_and_pages_4k(files) -> None:
    """Most data blocks are stored deflated (cbInflated in the footer differs from cb), and the
    B-tree roots are 4 KiB pages with the 24-byte trailer whose CRC covers 4,072 bytes."""
    from pstfast.pst.crc import crc32

    pst, _ = files["ost2013"]
    data = pst.read_bytes()
    with PstReader(pst) as reader:
        root = reader._bbt_root
        assert root % 4096 == 0 and data[root + 4072] == 0x80 and data[root + 4073] == 0x80
        assert struct.unpack_from("<I", data, root + 4076)[0] == crc32(data[root:root + 4072])
        compressed = stored = 0
        stack = [root]
        while stack:
            level, _, values = reader._page_uncached(stack.pop(), 0x80)
            if level:
                stack += [ib for ib, _ in values]
                continue
            for ib, cb in values:
                assert ib % 512 == 0
                footer = ib + (cb + 24 + 511) // 512 * 512 - 24
                inflated = struct.unpack_from("<H", data, footer + 18)[0]
                compressed += inflated != cb
                stored += inflated == cb
    assert compressed > stored > 0

@pytest.mark.parametrize("name", ["ansi", "ost", "ost2013"])
@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_every_field_equals_the_truth(files, tmp_path: Path, name: str, reader: str) -> None:
    pst, truth = files[name]
    _, prefix, emails, atts = _extract(pst, tmp_path / "out", workers=2, items_per_shard=40, reader=reader)
    truth_checks.check_rows(truth, emails, atts)


def test_ansi_strings_are_the_code_pages(files) -> None:
    """What cp1252 lacks (the synth corpus's Japanese, Greek, emoji) is "?" in the file and its truth."""
    _, truth = files["ansi"]
    subjects = [m["subject"] for m in truth["messages"]]
    assert all(s.encode("cp1252") for s in subjects)
    assert any("?" in m["sender_name"] or "?" in m["subject"] for m in truth["messages"])


@pytest.mark.parametrize("name", ["ansi", "ost2013"])
def test_the_compiled_reader_reads_every_message_itself(files, name: str) -> None:
    pst, truth = files[name]
    with PstReader(pst) as reader:
        compiled = CompiledReader(reader, frozenset(range(0x10000)))
        try:
            assert all(compiled.message(m["nid"]) is not None for m in truth["messages"])  # no fallback
        finally:
            compiled.close()


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_ost_rows_equal_the_psts(files, tmp_path: Path, reader: str) -> None:
    """One writer PST and its SO and wVer 36 variants: the same rows, ids aside (they derive from
    the input's sha256 unless a pst_file_id is given; given one, the bytes are the same)."""
    given = {}
    for name in ("unicode", "ost", "ost2013"):
        manifest, prefix, _, _ = _extract(files[name][0], tmp_path / name, workers=2, items_per_shard=40,
                                          pst_file_id="same", reader=reader)
        given[name] = {p.name: p.read_bytes() for p in prefix.iterdir() if p.name.endswith(".gz")}
        assert given[name]
    assert given["unicode"] == given["ost"] == given["ost2013"]
    derived = {name: _extract(files[name][0], tmp_path / f"{name}-sha", workers=1, reader=reader)[0].pst_file_id
               for name in ("unicode", "ost", "ost2013")}
    assert len(set(derived.values())) == 3


@pytest.mark.parametrize("name", ["ansi", "ost", "ost2013"])
def test_libpff_agrees(files, name: str) -> None:
    import pypff

    pst, truth = files[name]
    counts = {f.path: f.messages for f in libpff_summary(pst).folders if f.messages}
    want: dict[str, int] = {}
    for m in truth["messages"]:
        path = m["folder_path"].partition("/")[2]
        want[path] = want.get(path, 0) + 1
    assert {p.partition("/")[2]: n for p, n in counts.items()} == want
    handle = pypff.file()
    handle.set_ascii_codepage("cp1252")
    handle.open(str(pst))
    try:
        subjects: list[str] = []
        stack = [handle.root_folder]
        while stack:
            folder = stack.pop()
            subjects += [folder.get_sub_message(i).subject for i in range(folder.number_of_sub_messages)]
            stack += [folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders)]
    finally:
        handle.close()
    assert sorted(subjects) == sorted(m["subject"] for m in truth["messages"])


@needs_readpst
@pytest.mark.parametrize("name", ["ansi", "ost"])
def test_readpst_agrees(files, name: str) -> None:
    pst, truth = files[name]
    seen = {p: f.messages for p, f in readpst_summary(pst).by_subtree_path().items() if f.messages}
    want: dict[str, int] = {}
    for m in truth["messages"]:
        if m["message_class"] in ("IPM.Task", "IPM.DistList"):  # readpst writes neither
            continue
        path = m["folder_path"].partition("/")[2]
        want[path] = want.get(path, 0) + 1
    assert seen == want


@pytest.mark.skipif(shutil.which("pffexport") is None, reason="pffexport (apt-get install pff-tools) missing")
def test_pffexport_exports_every_wver36_message(files, tmp_path: Path) -> None:
    import subprocess

    pst, truth = files["ost2013"]
    subprocess.run(["pffexport", "-q", "-t", str(tmp_path / "x"), str(pst)], check=True, capture_output=True)
    root = tmp_path / "x.export"
    kinds = ("Message", "Appointment", "Meeting", "Contact", "DistributionList", "Task")  # pffexport's folder names
    exported = [p for p in root.rglob("*")  # embedded messages are exported inside their attachments
                if p.is_dir() and p.name.rstrip("0123456789") in kinds
                and not any(part.startswith("Attachment") for part in p.relative_to(root).parts)]
    subjects = []
    for folder in exported:
        # mail: the headers pffexport rebuilds; other kinds: their item text (Meeting.txt, Task.txt, ...)
        text = folder / "OutlookHeaders.txt"
        if not text.exists():
            text = folder / f"{folder.name.rstrip('0123456789')}.txt"
        lines = text.read_text(encoding="utf-8", errors="replace").splitlines()
        subjects += [line.split(":", 1)[1].strip() for line in lines if line.startswith("Subject:")][:1]
    assert len(exported) == len(truth["messages"])
    assert len(subjects) == len(truth["messages"])
    # pffexport (20180714) writes characters outside the BMP (the corpus's emoji) wrongly: the
    # ASCII of every subject must be there
    def ascii_part(text: str) -> str:
        return "".join(c for c in text if c.isascii())

    assert sorted(map(ascii_part, subjects)) == sorted(ascii_part(m["subject"]) for m in truth["messages"])


@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_a_wver36_block_that_does_not_inflate_loses_only_its_message(files, tmp_path: Path, reader: str) -> None:
    """Garbage in one compressed data block (its CRC fixed, so the damage reaches zlib): that
    message is an error row, every other message is extracted, the counts reconcile."""
    from pstfast.pst.crc import crc32

    pst, truth = files["ost2013"]
    data = bytearray(pst.read_bytes())
    with PstReader(pst) as r:
        first = truth["messages"][0]["nid"]
        bid = r._nbt_lookup(first)[0]
        ib, cb = r._bbt_lookup(bid, "test")
    footer = ib + (cb + 24 + 511) // 512 * 512 - 24
    assert struct.unpack_from("<H", data, footer + 18)[0] != cb  # a compressed block
    data[ib:ib + cb] = bytes(cb)
    struct.pack_into("<I", data, footer + 4, crc32(bytes(cb)))
    damaged = tmp_path / "damaged.ost"
    damaged.write_bytes(data)
    manifest, prefix, emails, _ = _extract(damaged, tmp_path / "out", workers=1, reader=reader)
    errors = [json.loads(line) for line in (prefix / "errors.ndjson").read_text().splitlines()]
    assert [e["item_index"] is not None for e in errors] == [True]
    assert len([e for e in emails if e["parent_email_id"] is None]) == len(truth["messages"]) - 1
