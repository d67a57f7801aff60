"""ANSI strings that name no code page of their own (issue 17): folder names and the store of
an Outlook 97-2002 style file, messages without PR_MESSAGE_CODEPAGE.

The writer stores every string as PT_STRING8 in the chosen code page, the store and folders
saying nothing of it (as those Outlooks wrote them); libpff, told the code page, is the
independent check."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import pstfast
from pstfast.cli import main
from pstfast.pst.write.messaging import Message, PstWriter, Recipient

T0 = dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc)


def _write(path: Path, codepage: int, declare: bool, folder: str, subject: str, sender: str) -> Path:
    with PstWriter(path, ansi_codepage=codepage, declare_codepage=declare) as pst:
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


def test_a_cp932_file_whose_folders_name_no_code_page_decodes(tmp_path: Path) -> None:
    pst = _write(tmp_path / "jp.pst", 932, True, "連絡先", "会議", "山田")
    manifest, rows = _extract(pst, tmp_path / "out")
    assert manifest.extra["codepage"] == {"default": 932, "source": "messages"}
    assert {r["folder_path"] for r in rows} == {"Top of Personal Folders/連絡先"}
    assert sorted(r["subject"] for r in rows) == ["会議 0", "会議 1", "会議 2"]
    assert {r["sender_name"] for r in rows} == {"山田"}
    assert "連絡先" in _libpff_folders(pst, "cp932")


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
