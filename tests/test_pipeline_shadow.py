"""pstfast shadow: legacy (pypff, one process) vs V2, by counts and per-message hashes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pstfast.pipeline import shadow
from pstfast import storage
from pstfast.cli import main as cli_main


@pytest.fixture(scope="module")
def writer_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    from pstfast.extraction.run import extract
    from pstfast.synthetic.corpus import SynthOptions, synth

    folder = tmp_path_factory.mktemp("shadow")
    pst, truth = folder / "s.pst", folder / "s.json"
    synth(pst, options=SynthOptions(messages=30, seed=9), truth=truth)
    extract(str(pst), str(folder / "out"), pst_file_id="s1", project_id="p")
    return pst, json.loads(truth.read_text()), storage.output_prefix(str(folder / "out"), "s1")


def test_writer_pst_shows_no_difference(writer_pst: tuple[Path, dict[str, Any], str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pst, truth, _ = writer_pst
    assert cli_main(["dev", "shadow", str(pst)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("shadow: MATCH")
    report = shadow.shadow(str(pst))
    assert report.ok and report.legacy_count == report.v2_count == len(truth["messages"])


def test_altered_v2_output_is_reported(writer_pst: tuple[Path, dict[str, Any], str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pst, _, prefix = writer_pst
    rows = [json.loads(line) for line in gzip.open(Path(prefix) / "emails.ndjson.gz", "rt", encoding="utf-8")]
    top = [r for r in rows if not r.get("parent_email_id")]
    changed, dropped = top[0], top[1]
    altered = []
    for r in rows:
        if r["email_id"] == dropped["email_id"]:
            continue
        if r["email_id"] == changed["email_id"]:
            r = {**r, "subject": r["subject"] + " (altered)"}
        altered.append(r)
    bad = tmp_path / "altered"
    bad.mkdir()
    with gzip.open(bad / "emails.ndjson.gz", "wt", encoding="utf-8") as sink:
        sink.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in altered)

    assert cli_main(["dev", "shadow", str(pst), "--v2-out", str(bad)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    report = shadow.shadow(str(pst), v2_prefix=str(bad))
    assert not report.ok
    assert report.legacy_count == report.v2_count + 1
    assert {r.subject for r in report.only_legacy} == {changed["subject"], dropped["subject"]}
    assert [r.subject for r in report.only_v2] == [changed["subject"] + " (altered)"]
    assert report.folder_diffs[dropped["folder_path"]][0] == report.folder_diffs[dropped["folder_path"]][1] + 1
