"""ANSI strings that name no code page of their own (issue 17): folder names and the store of
an Outlook 97-2002 style file, messages without PR_MESSAGE_CODEPAGE.

The writer stores every string as PT_STRING8 in the chosen code page, the store and folders
saying nothing of it, in a true ANSI file (wVer 14: 32-bit block ids and offsets, the ANSI
header, B-tree pages and block trailers), as those Outlooks wrote them; libpff (pypff and
pffexport) and readpst, told the code page, are the independent checks."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import gzip
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

import pstfast
from pstfast.cli import main
from pstfast.pst.write.messaging import Message, PstWriter, Recipient

T0 = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)


def _write(path: Path, codepage: int, declare: bool, folder: str, subject: str, sender: str,
           layout: str = "ansi") -> Path:
    with PstWriter(path, ansi_codepage=codepage, declare_codepage=declare, layout=layout) as pst:
        inbox = pst.add_folder(pst.ipm_subtree, folder)
        for i in range(3):
            pst.add_message(inbox, Message(subject=f"{subject} {i}", sender_name=sender, sender_email="a@example.com",
                                           sent_at=T0, received_at=T0, recipients=[Recipient(sender, "b@example.com")],
                                           body_text=f"{subject} body"))
    return path


def _extract(path: Path, out: Path, **kw: Any) -> tuple[pstfast.Manifest, list[dict[str, Any]]]:
    m = pstfast.extract(path, out, project_id="cp", workers=1, progress=False, **kw)
    with gzip.open(out / "pst-v2" / m.pst_file_id / "emails.ndjson.gz", "rt", encoding="utf-8") as lines:
        return m, [json.loads(line) for line in lines]


def _libpff_folders(path: Path, codepage: str) -> list[str]:
    import pypff

    handle = pypff.file()
    handle.set_ascii_codepage(codepage)
    handle.open(str(path))
    try:
        top = handle.root_folder.get_sub_folder(0)
        return [top.get_sub_folder(i).name for i in range(top.number_of_sub_folders)]
    finally:
        handle.close()


def _readpst(path: Path, out: Path, codepage: str) -> dict[str, list[str]]:
    """{folder name: subjects} as readpst (-C: the code page of strings that name none) sees them."""
    if shutil.which("readpst") is None:
        pytest.fail("readpst is not installed (apt-get install pst-utils)")
    out.mkdir()
    subprocess.run(["readpst", "-j", "0", "-e", "-C", codepage, "-o", str(out), str(path)], check=True,
                   capture_output=True)
    seen: dict[str, list[str]] = {}
    for eml in sorted(out.rglob("*.eml")):
        parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        seen.setdefault(eml.parent.name, []).append(str(parsed["Subject"]))
    return seen


def _pffexport(path: Path, out: Path, codepage: str) -> dict[str, list[str]]:
    """{folder name: subjects} as pffexport (-c: the code page of ASCII strings) exports them."""
    if shutil.which("pffexport") is None:
        pytest.fail("pffexport is not installed (apt-get install pff-tools)")
    subprocess.run(["pffexport", "-q", "-c", codepage, "-t", str(out), str(path)], check=True, capture_output=True)
    seen: dict[str, list[str]] = {}
    for headers in sorted(out.with_name(out.name + ".export").rglob("OutlookHeaders.txt")):
        for line in headers.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Subject:"):
                seen.setdefault(headers.parent.parent.name, []).append(line.split(":", 1)[1].strip())
    return seen


def test_the_writer_makes_a_true_ansi_file(tmp_path: Path) -> None:
    pst = _write(tmp_path / "jp.pst", 932, True, "連絡先", "会議", "山田")
    head = pst.read_bytes()[:512]
    assert head[8:10] == b"SM" and struct.unpack_from("<H", head, 10)[0] == 14
    from pstfast.pst.crc import crc32
    assert struct.unpack_from("<I", head, 4)[0] == crc32(head[8:479])  # dwCRCPartial (no dwCRCFull in ANSI)
    from pstfast.pst.reader import PstReader
    with PstReader(pst) as reader:
        assert not reader.unicode


@pytest.mark.parametrize("layout", ["ansi", "unicode"])
def test_a_cp932_file_whose_folders_name_no_code_page_decodes(tmp_path: Path, layout: str) -> None:
    pst = _write(tmp_path / "jp.pst", 932, True, "連絡先", "会議", "山田", layout)
    manifest, rows = _extract(pst, tmp_path / "out")
    assert manifest.extra["codepage"] == {"default": 932, "source": "messages"}
    assert {r["folder_path"] for r in rows} == {"Top of Personal Folders/連絡先"}
    assert sorted(r["subject"] for r in rows) == ["会議 0", "会議 1", "会議 2"]
    assert {r["sender_name"] for r in rows} == {"山田"}
    assert "連絡先" in _libpff_folders(pst, "cp932")
    # readpst decodes the folder name with -C; a message that declares code page 932 gets its
    # PT_STRING8 subject copied unconverted into a header labelled utf-8 (readpst's own quirk:
    # the cp1251 case below, whose messages declare none, checks its subjects)
    assert list(_readpst(pst, tmp_path / "readpst", "cp932")) == ["連絡先"]
    exported = _pffexport(pst, tmp_path / "pff", "windows-932")
    assert list(exported) == ["連絡先"]
    # pffexport (20180714) drops the first byte of a PT_STRING8 subject that starts with a
    # non-ASCII one, whatever the layout (pypff's message.subject keeps it): the rest must match
    assert sorted(subject[-3:] for subject in exported["連絡先"]) == ["議 0", "議 1", "議 2"]


def test_codepage_option_decodes_a_file_that_names_none(tmp_path: Path, capsys) -> None:
    pst = _write(tmp_path / "ru.pst", 1251, False, "Контакты", "Отчёт", "Иван")
    manifest, rows = _extract(pst, tmp_path / "guess")
    assert manifest.extra["codepage"] == {"default": 1252, "source": "default"}
    assert rows[0]["folder_path"] != "Top of Personal Folders/Контакты"  # cp1252 mojibake, as expected
    assert main(["extract", str(pst), "--out", str(tmp_path / "cli"), "--codepage", "1251", "--workers", "1",
                 "--pst-file-id", "ru1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pst_file_id"] == "ru1"
    with gzip.open(tmp_path / "cli" / "pst-v2" / "ru1" / "emails.ndjson.gz", "rt", encoding="utf-8") as lines:
        fixed = [json.loads(line) for line in lines]
    assert {r["folder_path"] for r in fixed} == {"Top of Personal Folders/Контакты"}
    assert sorted(r["subject"] for r in fixed) == ["Отчёт 0", "Отчёт 1", "Отчёт 2"]
    assert {r["body_text"] for r in fixed} == {"Отчёт body"}
    assert "Контакты" in _libpff_folders(pst, "cp1251")
    assert _readpst(pst, tmp_path / "readpst", "cp1251") == {"Контакты": ["Отчёт 0", "Отчёт 1", "Отчёт 2"]}
    exported = _pffexport(pst, tmp_path / "pff", "windows-1251")
    assert list(exported) == ["Контакты"] and sorted(exported["Контакты"]) == ["тчёт 0", "тчёт 1", "тчёт 2"]
    manifest = json.loads((tmp_path / "cli" / "pst-v2" / "ru1" / "manifest.json").read_text())
    assert manifest["extra"]["codepage"] == {"default": 1251, "source": "override"}


def test_the_environment_sets_it_too_and_bad_values_are_usage_errors(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pst = _write(tmp_path / "ru.pst", 1251, False, "Контакты", "Отчёт", "Иван")
    monkeypatch.setenv("PSTFAST_CODEPAGE", "cp1251")
    manifest, rows = _extract(pst, tmp_path / "env")
    assert manifest.extra["codepage"]["default"] == 1251 and rows[0]["folder_path"].endswith("Контакты")
    monkeypatch.setenv("PSTFAST_CODEPAGE", "klingon")
    with pytest.raises(pstfast.UsageError, match="give a Windows code page number"):
        _extract(pst, tmp_path / "bad")
    with pytest.raises(SystemExit) as exited:
        main(["extract", str(pst), "--out", str(tmp_path / "x"), "--codepage", "99999"])
    assert exited.value.code == 2


def test_the_decision_is_the_same_for_any_worker_count(tmp_path: Path) -> None:
    pst = _write(tmp_path / "jp.pst", 932, True, "連絡先", "会議", "山田")
    one = pstfast.extract(pst, tmp_path / "w1", pst_file_id="jp", workers=1, items_per_shard=1, progress=False)
    two = pstfast.extract(pst, tmp_path / "w2", pst_file_id="jp", workers=2, items_per_shard=1, progress=False)
    assert one.objects == two.objects and one.extra["codepage"] == two.extra["codepage"]
