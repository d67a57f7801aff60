"""The local runner executes the packaged state machine: same stages, retries and routing.

Real parts: writer-made PSTs, the real stages, real PostgreSQL. The only thing swapped is
the clock (``sleep``) so backoff waits are recorded instead of slept, and, for the
transient-fault test, a wrapper that makes the first attempts of one stage exit 75 as a
Batch job on a lost host or a dropped database would.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pipeline_support import ASL_V2, REPO
from pstfast.pipeline import asl, runner, stagelog
from pstfast.cli import main as cli_main

STAGES = ["extract", "load", "thread", "dedupe", "index"]


def raw_asl() -> dict[str, Any]:
    """The definition parsed here, independently of pstfast.pipeline.asl."""
    return yaml.safe_load(ASL_V2.read_text())


# --- one definition ------------------------------------------------------------------------


def test_runner_loads_the_same_file_serverless_deploys() -> None:
    assert asl.load_definition() == raw_asl()
    assert "${file(./pstfast/pipeline/pst_ingest_v2.asl.yaml)}" in (REPO / "serverless.yml").read_text()


def test_stage_order_comes_from_the_state_machine() -> None:
    assert runner.stage_names() == STAGES
    assert list(stagelog.STAGES) == STAGES


def test_retry_policy_is_read_from_the_file() -> None:
    for state in raw_asl()["States"].values():
        for spec in state.get("Retry", []):
            r = asl.Retrier.from_asl(spec)
            assert (r.interval, r.backoff, r.max_attempts, r.jitter) == (
                spec["IntervalSeconds"], spec["BackoffRate"], spec["MaxAttempts"], spec["JitterStrategy"])
            assert r.max_delay == spec.get("MaxDelaySeconds")


def _simulated_batch(fail: dict[str, int]) -> tuple[dict[str, Any], list[list[str]]]:
    """Handlers standing in for AWS: Batch jobs that fail N times per stage, stage manifests."""
    calls: list[list[str]] = []
    status: dict[str, str] = {}

    def batch(params: dict[str, Any]) -> dict[str, Any]:
        argv = params["ContainerOverrides"]["Command"]
        calls.append(argv)
        name = argv[2] if argv[1] == "stage" else argv[1]
        if fail.get(name, 0) > 0:
            fail[name] -= 1
            raise asl.TaskFailed("States.TaskFailed", f"{name}: exit 75")
        status[name] = "succeeded"
        return {}

    def s3_get(params: dict[str, Any]) -> dict[str, Any]:
        stage = params["Key"].split("/")[3]
        return {"Body": json.dumps({"status": status.get(stage, "running")})}

    handlers = {runner.BATCH: batch, runner.S3_GET: s3_get, runner.SQS_SEND: lambda p: {"MessageId": "x"}}
    return handlers, calls


JOB = {"job": {"project_id": "7", "pst_file_id": "abc", "source": "s3://d/project_7/pst/abc/a.pst"}, "out": "s3://p"}


def test_backoff_waits_follow_the_asl_retry_policy() -> None:
    handlers, calls = _simulated_batch({"load": 2})
    waits: list[float] = []
    execution = asl.execute(raw_asl(), JOB, handlers, sleep=waits.append, rng=random.Random(5))
    assert execution.status == "SUCCEEDED"
    spec = raw_asl()["States"]["Load"]["Retry"][0]
    expect = random.Random(5)
    want = [expect.uniform(0, min(spec["IntervalSeconds"] * spec["BackoffRate"] ** n, spec["MaxDelaySeconds"]))
            for n in range(2)]
    assert waits == pytest.approx(want)
    assert [c[2] for c in calls if c[1] == "stage"] == ["extract", "load", "load", "load", "thread", "dedupe", "index"]
    # the command is the one each Batch job runs
    assert calls[0] == ["pipeline", "stage", "extract", "--pst-file-id", "abc", "--project-id", "7",
                        "--source", "s3://d/project_7/pst/abc/a.pst", "--out", "s3://p"]


def test_retries_exhausted_go_to_mark_failed_then_dlq_then_fail() -> None:
    handlers, calls = _simulated_batch({"thread": 99})
    waits: list[float] = []
    execution = asl.execute(raw_asl(), JOB, handlers, sleep=waits.append, rng=random.Random(1))
    max_attempts = raw_asl()["States"]["Thread"]["Retry"][0]["MaxAttempts"]
    assert execution.status == "FAILED" and execution.error == "pstfast.Failed"
    assert sum(1 for c in calls if c[:3] == ["pipeline", "stage", "thread"]) == max_attempts + 1
    assert len(waits) == max_attempts
    assert calls[-1][:2] == ["pipeline", "mark-failed"]
    visited = [e.state for e in execution.events if e.kind == "entered"]
    assert visited[-3:] == ["MarkFailed", "SendToDLQ", "Failed"]


def test_changing_the_file_changes_the_runner() -> None:
    """Nothing is hard-coded: a definition with MaxAttempts 1 retries once."""
    definition = copy.deepcopy(raw_asl())
    definition["States"]["Load"]["Retry"][0]["MaxAttempts"] = 1
    handlers, calls = _simulated_batch({"load": 5})
    execution = asl.execute(definition, JOB, handlers, sleep=lambda s: None)
    assert execution.status == "FAILED"
    assert sum(1 for c in calls if c[:3] == ["pipeline", "stage", "load"]) == 2


# --- the real pipeline on one machine ---------------------------------------------------


@pytest.fixture(scope="module")
def demo_pst(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from pstfast.synthetic.corpus import SynthOptions, synth

    folder = tmp_path_factory.mktemp("pst")
    path, truth = folder / "demo.pst", folder / "truth.json"
    synth(path, options=SynthOptions(messages=40, seed=3), truth=truth)
    return path, json.loads(truth.read_text())


def _pst_file(dsn: str, pst_file_id: str) -> tuple[str, str | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status, error FROM pst_files WHERE pst_file_id = %s", (pst_file_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_run_whole_pipeline(demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str, tmp_path: Path) -> None:
    path, truth = demo_pst
    waits: list[float] = []
    result = runner.run(str(path), out=str(tmp_path / "out"), db=pg_dsn, project_id="p1", sleep=waits.append)
    assert result.ok, result.summary()
    assert waits == []
    assert [s.stage for s in result.stages] == STAGES
    assert all(s.status == "succeeded" for s in result.stages)
    assert _pst_file(pg_dsn, result.pst_file_id) == ("indexed", None)
    with psycopg.connect(pg_dsn) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM email_messages WHERE pst_file_id = %s",
                               (result.pst_file_id,)).fetchone()
    counts = result.counts()
    assert counts["emails"] == counts["loaded"] == rows >= len(truth["messages"])
    assert counts["duplicates"] >= 1 and counts["threads"] >= 1
    summary = result.summary()
    assert "SUCCEEDED" in summary and result.output_prefix in summary and "threads=" in summary
    assert (Path(result.output_prefix) / "manifest.json").is_file()


def test_cli_run_prints_summary(demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = demo_pst
    rc = cli_main(["run", str(path), "--out", str(tmp_path / "o"), "--db", pg_dsn, "--project-id", "p2", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["status"] == "succeeded"
    assert [s["stage"] for s in out["stages"]] == STAGES


def test_truncated_pst_fails_fast_without_retries(demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str,
                                                  tmp_path: Path) -> None:
    path, _ = demo_pst
    bad = tmp_path / "truncated.pst"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    waits: list[float] = []
    parked: list[tuple[dict[str, Any], str]] = []
    result = runner.run(str(bad), out=str(tmp_path / "out"), db=pg_dsn, project_id="p1", sleep=waits.append,
                        dead_letter=lambda job, error: parked.append((job, error)))
    assert not result.ok
    assert waits == [], "a bad input must not burn retries"
    assert result.stages[0].stage == "extract" and result.stages[0].status == "rejected"
    assert runner.exit_code(result) == 65
    status, error = _pst_file(pg_dsn, result.pst_file_id)
    assert status == "failed" and error and "extract rejected" in error
    assert [(job["pst_file_id"], err) for job, err in parked] == [(result.pst_file_id, "pstfast.Rejected")]


def test_same_file_in_another_project_is_rejected_without_retries(
        demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str, tmp_path: Path) -> None:
    path, _ = demo_pst
    first = runner.run(str(path), out=str(tmp_path / "out"), db=pg_dsn, project_id="p1", sleep=lambda s: None)
    assert first.ok
    waits: list[float] = []
    second = runner.run(str(path), out=str(tmp_path / "out"), db=pg_dsn, project_id="p2", sleep=waits.append,
                        dead_letter=lambda job, error: None)
    assert second.pst_file_id == first.pst_file_id  # the id comes from the content
    assert waits == [] and runner.exit_code(second) == 65
    assert second.stages[0].status == "rejected" and "belongs to project 'p1'" in (second.stages[0].error or "")


def test_transient_failures_are_retried_with_backoff(demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str,
                                                     tmp_path: Path) -> None:
    path, _ = demo_pst
    failures = {"load": 2}

    def flaky(argv: Sequence[str]) -> int:
        if argv[:2] == ["pipeline", "stage"] and failures.get(argv[2], 0) > 0:
            failures[argv[2]] -= 1
            return 75  # what a stage exits with on a transient fault
        return cli_main(list(argv))

    waits: list[float] = []
    result = runner.run(str(path), out=str(tmp_path / "out"), db=pg_dsn, project_id="p1",
                        sleep=waits.append, rng=random.Random(0), command=flaky)
    assert result.ok, result.summary()
    assert len(waits) == 2
    spec = raw_asl()["States"]["Load"]["Retry"][0]
    assert waits[1] <= min(spec["IntervalSeconds"] * spec["BackoffRate"], spec["MaxDelaySeconds"])
    load = next(s for s in result.stages if s.stage == "load")
    assert load.attempts == 3


# --- the router (the Pipe's target) ------------------------------------------------------


def test_router_unwraps_the_pipe_batch_and_names_the_execution() -> None:
    from pipeline_support import ASL_ROUTER

    router = asl.load_definition(ASL_ROUTER)
    started: list[dict[str, Any]] = []

    def start(params: dict[str, Any]) -> dict[str, Any]:
        if any(p["Name"] == params["Name"] for p in started):
            raise asl.TaskFailed("StepFunctions.ExecutionAlreadyExistsException", params["Name"])
        started.append(params)
        return {"Status": "SUCCEEDED"}

    handlers = {"arn:aws:states:::states:startExecution.sync:2": start}
    pipe_input = [{"job": {"project_id": 7, "pst_file_id": "f-1", "source": "s3://d/x.pst", "requested_at": "t"}}]
    refs = {"PstIngestV2": "arn:aws:states:::stateMachine:v2", "PipelineBucket": "pipeline-bucket"}
    first = asl.execute(router, pipe_input, handlers, refs=refs)
    second = asl.execute(router, pipe_input, handlers, refs=refs)  # duplicate delivery
    assert first.status == second.status == "SUCCEEDED"
    assert len(started) == 1
    (params,) = started
    assert params["Name"] == "f-1" and params["StateMachineArn"] == "arn:aws:states:::stateMachine:v2"
    assert params["Input"]["job"] == pipe_input[0]["job"] and params["Input"]["out"] == "s3://pipeline-bucket"
    assert [e.state for e in second.events if e.kind == "entered"] == ["StartIngest", "Duplicate"]


def test_intrinsics() -> None:
    data = {"a": {"b": 3, "s": "x'y"}, "l": [1, 2]}
    assert asl.evaluate("States.Format('n={} s={}', $.a.b, $.a.s)", data) == "n=3 s=x'y"
    assert asl.evaluate("States.Array('a', States.Format('{}', $.l[1]), $.a.b)", data) == ["a", "2", 3]
    assert asl.evaluate("States.StringToJson('{\"k\": 1}')", data) == {"k": 1}
    assert asl.evaluate("States.JsonToString($.l)", data) == "[1,2]"
    assert asl.get_path(data, "$.l[0]") == 1
    with pytest.raises(asl.TaskFailed):
        asl.get_path(data, "$.missing")
    with pytest.raises(asl.AslError):
        asl.evaluate("States.Hash($.a, 'SHA-1')", data)


def test_transient_failure_that_never_clears_marks_the_pst_failed(
        demo_pst: tuple[Path, dict[str, Any]], pg_dsn: str, tmp_path: Path) -> None:
    """The load stage's database is down for good: retries run out, then MarkFailed records why."""
    path, _ = demo_pst
    dead_db = "postgresql://pstfast@127.0.0.1:1/none?connect_timeout=1"

    def load_on_a_dead_database(argv: Sequence[str]) -> int:
        argv = list(argv)
        if argv[:3] == ["pipeline", "stage", "load"]:
            argv[argv.index("--db") + 1] = dead_db
        return cli_main(argv)

    waits: list[float] = []
    parked: list[str] = []
    result = runner.run(str(path), out=str(tmp_path / "out"), db=pg_dsn, project_id="p1", sleep=waits.append,
                        command=load_on_a_dead_database, dead_letter=lambda job, error: parked.append(error))
    assert not result.ok and runner.exit_code(result) == 75
    assert len(waits) == raw_asl()["States"]["Load"]["Retry"][0]["MaxAttempts"]
    status, error = _pst_file(pg_dsn, result.pst_file_id)
    assert status == "failed" and error and error.startswith("load failed:") and "States.TaskFailed" in error
    assert parked == ["States.TaskFailed"]


def test_run_demo_is_the_first_command(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PSTFAST_HOME", str(tmp_path / "home"))
    assert cli_main(["run", "--demo", "--db", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "threads=" in out and "duplicates=" in out
    assert str(tmp_path / "home" / "out" / "pst-v2") in out
    assert list((tmp_path / "home" / "demo").glob("*.pst"))
