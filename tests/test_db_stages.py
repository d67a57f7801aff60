"""`pstfast stage <name>` for all five stages: manifests, logs, stage_runs, pst_files.status."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from conftest import corpus_pst

from pstfast.cli import main


def _status(dsn: str, pst: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT status, error, error_kind, failed_stage FROM pst_files WHERE pst_file_id = %s",
                            (pst,)).fetchone()


def test_all_five_stages_through_the_cli(tmp_path: Path, pg_dsn: str, capsys) -> None:
    pst = corpus_pst("pstsdk-submessage.pst")
    out = tmp_path / "out"
    common = ["--pst-file-id", "sub1", "--project-id", "pj", "--source", str(pst), "--out", str(out), "--db", pg_dsn]
    seen = []
    for stage, status in (("extract", "extracted"), ("load", "loaded"), ("thread", "threaded"),
                          ("dedupe", "deduped"), ("index", "indexed")):
        assert main(["pipeline", "stage", stage, *common]) == 0, capsys.readouterr().err
        assert _status(pg_dsn, "sub1") == (status, None, None, None)
        folder = out / "pst-v2" / "sub1" / "stages" / stage
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["status"] == "succeeded" and manifest["attempt"] == 1
        assert manifest["pst_file_id"] == "sub1" and manifest["seconds"] >= 0
        events = [json.loads(x)["event"] for x in (folder / "log.ndjson").read_text().splitlines()]
        assert events == ["started", "succeeded"]
        seen.append(manifest)
    assert seen[1]["counts"]["emails"] == 2 and seen[1]["counts"]["attachments"] == 1
    assert seen[4]["counts"]["documents"] == 2
    # a rerun is attempt 2 and changes nothing
    assert main(["pipeline", "stage", "load", *common]) == 0
    manifest = json.loads((out / "pst-v2" / "sub1" / "stages" / "load" / "manifest.json").read_text())
    assert manifest["attempt"] == 2
    with psycopg.connect(pg_dsn) as conn:
        runs = conn.execute("SELECT stage, attempt, status FROM stage_runs ORDER BY stage_run_id").fetchall()
    assert runs == [("extract", 1, "succeeded"), ("load", 1, "succeeded"), ("thread", 1, "succeeded"),
                    ("dedupe", 1, "succeeded"), ("index", 1, "succeeded"), ("load", 2, "succeeded")]


def test_terminal_failure_is_rejected_and_marks_failed(tmp_path: Path, pg_dsn: str, capsys) -> None:
    bad = tmp_path / "not-a.pst"
    bad.write_bytes(b"this is not a PST file" * 100)
    out = tmp_path / "out"
    code = main(["pipeline", "stage", "extract", "--pst-file-id", "bad1", "--project-id", "pj", "--source", str(bad),
                 "--out", str(out), "--db", pg_dsn])
    assert code == 65  # EXIT_INPUT
    status, error, kind, stage = _status(pg_dsn, "bad1")
    assert (status, stage) == ("failed", "extract") and error and kind
    manifest = json.loads((out / "pst-v2" / "bad1" / "stages" / "extract" / "manifest.json").read_text())
    assert manifest["status"] == "rejected" and manifest["error"] == error
    # load without an extract: no manifest -> rejected, failed
    code = main(["pipeline", "stage", "load", "--pst-file-id", "bad2", "--project-id", "pj", "--out", str(out), "--db", pg_dsn])
    assert code == 65
    assert _status(pg_dsn, "bad2")[0] == "failed"
    assert "no manifest" in capsys.readouterr().err


def test_stages_print_emf_metrics_in_batch(tmp_path: Path, pg_dsn: str, capsys, monkeypatch) -> None:
    pst = corpus_pst("pstsdk-sample1.pst")
    out = tmp_path / "out"
    common = ["--pst-file-id", "emf1", "--project-id", "pj", "--source", str(pst), "--out", str(out), "--db", pg_dsn]
    monkeypatch.setenv("PSTFAST_LOG_FORMAT", "json")  # what the Batch job definitions set
    assert main(["pipeline", "stage", "extract", *common]) == 0
    assert '"_aws"' not in capsys.readouterr().err  # quiet outside Batch
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-1")
    assert main(["pipeline", "stage", "load", *common]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    emf = [x for x in lines if "_aws" in x]
    assert len(emf) == 1 and emf[0]["Stage"] == "load" and emf[0]["status"] == "succeeded"
    manifest = json.loads((out / "pst-v2" / "emf1" / "stages" / "load" / "manifest.json").read_text())
    assert emf[0]["Rows"] == manifest["metrics"]["rows"] == 1


def test_a_second_project_failing_on_the_same_file_leaves_the_first_projects_row(tmp_path: Path, pg_dsn: str,
                                                                                    capsys) -> None:
    pst = corpus_pst("pstsdk-submessage.pst")
    out = tmp_path / "out"
    first = ["--pst-file-id", "shared1", "--source", str(pst), "--out", str(out), "--db", pg_dsn]
    assert main(["pipeline", "stage", "extract", "--project-id", "pa", *first]) == 0
    assert main(["pipeline", "stage", "load", "--project-id", "pa", *first]) == 0
    assert _status(pg_dsn, "shared1") == ("loaded", None, None, None)
    # project pb claims the same pst_file_id: its load is rejected (a terminal input error)...
    assert main(["pipeline", "stage", "load", "--project-id", "pb", *first]) == 65
    assert "project 'pa'" in capsys.readouterr().err
    # ...and the pipeline's final Catch marks pb's job failed: pa's PST must stay loaded
    assert main(["pipeline", "mark-failed", "--pst-file-id", "shared1", "--project-id", "pb", "--error", "project conflict",
                 "--out", str(out), "--db", pg_dsn]) == 0
    assert _status(pg_dsn, "shared1") == ("loaded", None, None, None)
    # the owner's own failure is still recorded
    assert main(["pipeline", "mark-failed", "--pst-file-id", "shared1", "--project-id", "pa", "--error", "boom", "--out", str(out),
                 "--db", pg_dsn]) == 0
    assert _status(pg_dsn, "shared1")[0] == "failed"
