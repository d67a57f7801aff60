"""File layouts the writer makes and both readers read: ANSI (wVer 14, Outlook 97-2002) and OSTs
(client signature SO), each held to the synth truth and cross-checked with libpff and readpst."""

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
from pstfast import ids, storage
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
    for name, extra in {"unicode": {}, "ansi": {"layout": "ansi"}, "ost": {"ost": True}}.items():
        pst, truth = tmp / f"{name}.pst", tmp / f"{name}.json"
        synth(pst, options=SynthOptions(**OPTIONS, **extra), truth=truth)  # type: ignore[arg-type]
        out[name] = (pst, json.loads(truth.read_text(encoding="utf-8")))
    return out


def test_headers_say_what_layout_they_are(files) -> None:
    heads = {name: path.read_bytes()[:12] for name, (path, _) in files.items()}
    assert {name: (h[8:10], struct.unpack_from("<H", h, 10)[0]) for name, h in heads.items()} == {
        "unicode": (b"SM", 23), "ansi": (b"SM", 14), "ost": (b"SO", 23)}
    for path, _ in files.values():
        check_signature(path)  # an OST is read, not refused
    with PstReader(files["ansi"][0]) as reader:
        assert not reader.unicode and reader._id == 4


@pytest.mark.parametrize("name", ["ansi", "ost"])
@pytest.mark.parametrize("reader", ["pstfast", "libpff"])
def test_every_field_equals_the_truth(files, tmp_path: Path, name: str, reader: str) -> None:
    pst, truth = files[name]
    _, prefix, emails, atts = _extract(pst, tmp_path / "out", workers=2, items_per_shard=40, reader=reader)
    by_email: dict[str, list[dict]] = {}
    for a in atts:
        by_email.setdefault(a["email_id"], []).append(a)
    children: dict[str, list[dict]] = {}
    for e in emails:
        if e["parent_email_id"]:
            children.setdefault(e["parent_email_id"], []).append(e)
    top = {e["email_id"]: e for e in emails if e["parent_email_id"] is None}
    assert len(top) == len(truth["messages"])
    checked = sum(truth_checks._check(want, top[ids.email_id(emails[0]["pst_file_id"], want["nid"])], by_email,
                                      children) for want in truth["messages"])
    assert checked == len(emails)


def test_ansi_strings_are_the_code_pages(files) -> None:
    """What cp1252 lacks (the synth corpus's Japanese, Greek, emoji) is "?" in the file and its truth."""
    _, truth = files["ansi"]
    subjects = [m["subject"] for m in truth["messages"]]
    assert all(s.encode("cp1252") for s in subjects)
    assert any("?" in m["sender_name"] or "?" in m["subject"] for m in truth["messages"])


def test_the_compiled_reader_reads_every_ansi_message_itself(files) -> None:
    pst, truth = files["ansi"]
    with PstReader(pst) as reader:
        compiled = CompiledReader(reader, frozenset(range(0x10000)))
        try:
            assert all(compiled.message(m["nid"]) is not None for m in truth["messages"])  # no fallback
        finally:
            compiled.close()


def test_ost_rows_equal_the_psts(files, tmp_path: Path) -> None:
    """The same messages as a PST and as an OST: the same rows, ids aside (they derive from the
    input's sha256 unless a pst_file_id is given; given one, the bytes are the same)."""
    given = {}
    for name in ("unicode", "ost"):
        manifest, prefix, _, _ = _extract(files[name][0], tmp_path / name, workers=1, pst_file_id="same")
        given[name] = {p.name: p.read_bytes() for p in prefix.iterdir() if p.name.endswith(".gz")}
    assert given["unicode"] == given["ost"]
    derived = {name: _extract(files[name][0], tmp_path / f"{name}-sha", workers=1)[0].pst_file_id
               for name in ("unicode", "ost")}
    assert derived["unicode"] != derived["ost"]


@pytest.mark.parametrize("name", ["ansi", "ost"])
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
        path = m["folder_path"].partition("/")[2]
        want[path] = want.get(path, 0) + 1
    assert seen == want
