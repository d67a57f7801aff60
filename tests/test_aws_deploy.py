"""The AWS stack deployed to moto and its state machines executed there.

``osls deploy --stage test`` (``PSTFAST_DEPLOY_METHOD=direct``) against moto's standalone
server on loopback, then the deployed ``pst_ingest_router`` / ``pst_ingest_v2`` definitions
executed by moto's Step Functions interpreter (tests/moto_sfn_server.py: moto with
``execute_state_machine``, the getmoto/moto#10076 patch, Batch jobs run on this host).

What is real here: the packaged CloudFormation template, created by moto's CloudFormation;
the deployed ASL, interpreted by moto (Retry/Catch/Choice, intrinsic functions, the
``batch:submitJob.sync``, ``aws-sdk:s3:getObject``, ``sqs:sendMessage`` and
``states:startExecution.sync:2`` integrations, ExecutionAlreadyExists); each Batch job's
command, run through ``batch/entrypoint.sh`` and this checkout's ``pstfast`` against moto's
S3 and a real PostgreSQL.

What is not: no container (no Docker engine: the job runs on this host, not in the
image; the image is checked by batch/build-image.sh); IAM is not enforced by moto; the
EventBridge Pipe is not created by moto (the tests start the router with the Pipe's input,
``[{"job": ...}]``); transient failures are injected at the Batch level (the first N
attempts of a stage exit 75 without running); retry waits are the interpreter's own
backoff, logged and slept at 1/100 of their length.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline_support import FAKE_AWS_ENV, REPO, MotoServer, require_node

STAGES = ["extract", "load", "thread", "dedupe", "index"]
PROJECT = "77"
TIME_SCALE = 0.01
# the retry policy of pst_ingest_v2.asl.yaml for the states the tests fail on purpose
RETRY = {"Thread": (20, 2.0, 300), "Load": (20, 2.0, 300)}  # IntervalSeconds, BackoffRate, MaxDelaySeconds


def _client(server: MotoServer, service: str) -> Any:
    return boto3.client(service, endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


class Deployed:
    """The deployed stack on one moto server, with clients and the files the server writes."""

    def __init__(self, server: MotoServer, work: Path, dsn: str) -> None:
        self.server, self.work, self.dsn = server, work, dsn
        self.cf = _client(server, "cloudformation")
        self.sfn = _client(server, "stepfunctions")
        self.batch = _client(server, "batch")
        self.s3 = _client(server, "s3")
        self.sqs = _client(server, "sqs")
        self.outputs: dict[str, str] = {}
        self.deploy_seconds = 0.0

    @property
    def faults(self) -> Path:
        return self.work / "faults.json"

    @property
    def retry_log(self) -> Path:
        return self.work / "retries.ndjson"

    def inject(self, pst_file_id: str, **stages: int) -> None:
        faults = json.loads(self.faults.read_text()) if self.faults.exists() else {}
        faults[pst_file_id] = stages
        self.faults.write_text(json.dumps(faults))

    def upload(self, data: bytes) -> dict[str, str]:
        """Put a PST where the docs bucket layout says and return its job."""
        pst_file_id = str(uuid.uuid4())
        key = f"project_{PROJECT}/pst/{pst_file_id}/mailbox.pst"
        self.s3.put_object(Bucket=self.outputs["DocsBucketName"], Key=key, Body=data)
        return {"project_id": PROJECT, "pst_file_id": pst_file_id,
                "source": f"s3://{self.outputs['DocsBucketName']}/{key}", "requested_at": "2026-01-01T00:00:00Z"}

    def route(self, job: dict[str, str], timeout: float = 300) -> dict[str, Any]:
        """Start the router with the Pipe's input and wait for it to finish."""
        # the Pipe's executions get generated names (moto would name every unnamed one "None")
        arn = self.sfn.start_execution(stateMachineArn=self.outputs["PstIngestRouterArn"], name=str(uuid.uuid4()),
                                       input=json.dumps([{"job": job}]))["executionArn"]
        return self.wait(arn, timeout)

    def wait(self, arn: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # poll the execution's status (a condition, not a fixed wait)
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.1)
        raise AssertionError(f"{arn} still RUNNING after {timeout} s")

    def v2_execution(self, pst_file_id: str) -> dict[str, Any]:
        arn = self.outputs["PstIngestV2Arn"].replace(":stateMachine:", ":execution:") + f":{pst_file_id}"
        return self.wait(arn)

    def history(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def entered(self, arn: str) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in self.history(arn) if "stateEnteredEventDetails" in e]

    def jobs(self, pst_file_id: str) -> list[dict[str, Any]]:
        """Every Batch job submitted for *pst_file_id*, in submission order."""
        queue = f"pstfast-{STAGE}"
        ids = []
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            ids += [j["jobId"] for j in self.batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]]
        described = []
        for start in range(0, len(ids), 100):
            described += self.batch.describe_jobs(jobs=ids[start:start + 100])["jobs"]
        mine = [j for j in described if pst_file_id in j["container"]["command"]]
        return sorted(mine, key=lambda j: j["createdAt"])

    def retries(self, state: str) -> list[dict[str, Any]]:
        if not self.retry_log.exists():
            return []
        records = [json.loads(line) for line in self.retry_log.read_text().splitlines()]
        return [r for r in records if r["state"] == state]


STAGE = "test"


@pytest.fixture(scope="module")
def module_dsn(pg_server_dsn: str) -> Iterator[str]:
    """One database for the module (the Batch jobs run in the moto server, which starts once)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = "pstfast_deploy_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(pg_server_dsn, dbname=name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, module_dsn: str) -> Iterator[Deployed]:
    npx = require_node()
    work = tmp_path_factory.mktemp("aws-deploy")
    (work / "scratch").mkdir()
    pstfast_bin = Path(sys.executable).with_name("pstfast")
    server = MotoServer(executing=True, env={
        **FAKE_AWS_ENV,
        "PSTFAST_MOTO_BATCH_RUNNER": f"bash {REPO / 'batch' / 'entrypoint.sh'}",
        "PSTFAST_BIN": str(pstfast_bin),
        "PSTFAST_DATABASE_URL": module_dsn,
        "PSTFAST_SCRATCH": str(work / "scratch"),
        "PSTFAST_WORKERS": "1",
        "PSTFAST_MOTO_BATCH_FAULTS": str(work / "faults.json"),
        "PSTFAST_MOTO_RETRY_LOG": str(work / "retries.ndjson"),
        "PSTFAST_MOTO_BATCH_OUTPUT": str(work / "jobs.ndjson"),
        "PSTFAST_MOTO_TIME_SCALE": str(TIME_SCALE),
    })
    server.extra_env["AWS_ENDPOINT_URL"] = server.url  # the jobs' pstfast talks to this server's S3
    server.start()
    try:
        d = Deployed(server, work, module_dsn)
        env = {**os.environ, **FAKE_AWS_ENV, "AWS_ENDPOINT_URL": server.url, "PSTFAST_DEPLOY_METHOD": "direct",
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        t0 = time.perf_counter()
        proc = subprocess.run([npx, "--no-install", "osls", "deploy", "--stage", STAGE], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        d.deploy_seconds = time.perf_counter() - t0
        assert proc.returncode == 0, f"osls deploy failed:\n{proc.stdout}\n{proc.stderr}"
        (stack,) = d.cf.describe_stacks(StackName=f"pstfast-{STAGE}")["Stacks"]
        d.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        d.outputs["__status__"] = stack["StackStatus"]
        yield d
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pst_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from pstfast.synthetic.corpus import SynthOptions, synth

    path = tmp_path_factory.mktemp("deploy-pst") / "mailbox.pst"
    synth(path, options=SynthOptions(messages=12, seed=22))
    return path.read_bytes()


@pytest.fixture(autouse=True)
def _aws_env(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process (the local runner, pstfast.storage) talks to the same moto server."""
    for key, value in deployed.server.env().items():
        monkeypatch.setenv(key, value)


def local_runner_commands(d: Deployed, job: dict[str, str], faults: dict[str, int] | None = None) -> list[list[str]]:
    """The commands pstfast.pipeline.runner (the local engine, same ASL file) runs for *job*.

    Its Batch handler is replaced by a recorder that exits as the AWS jobs did (0, or 75 for
    the injected failures); its stage-manifest reads go to the same S3 the AWS jobs wrote."""
    from pstfast.pipeline import runner

    left = dict(faults or {})
    seen: list[list[str]] = []

    def record(argv: Any) -> int:
        seen.append(list(argv))
        stage = argv[2] if list(argv[:2]) == ["pipeline", "stage"] else None
        if stage and left.get(stage, 0) > 0:
            left[stage] -= 1
            return 75
        return 0

    runner.run(job["source"], out=f"s3://{d.outputs['PipelineBucketName']}", project_id=job["project_id"],
               pst_file_id=job["pst_file_id"], command=record, sleep=lambda s: None)
    return seen


def commands(jobs: list[dict[str, Any]]) -> list[list[str]]:
    return [j["container"]["command"] for j in jobs]


def db_rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


# --- the deploy ------------------------------------------------------------------------------


def test_deploy_creates_the_stack(deployed: Deployed) -> None:
    d = deployed
    assert d.outputs["__status__"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    for key in ("IngestQueueUrl", "IngestDeadLetterQueueUrl", "DocsBucketName", "PipelineBucketName",
                "ImageRepositoryUri", "PstIngestV2Arn", "PstIngestRouterArn"):
        assert d.outputs.get(key), f"output {key} missing"
    summaries = d.cf.list_stack_resources(StackName=f"pstfast-{STAGE}")["StackResourceSummaries"]
    created = {r["LogicalResourceId"] for r in summaries if r["ResourceStatus"] == "CREATE_COMPLETE"}
    for logical_id in ("DocsBucket", "PipelineBucket", "IngestQueue", "IngestDeadLetterQueue", "PstIngestV2",
                       "PstIngestRouter", "ComputeEnvironment", "JobQueue", "Vpc", "SubnetA", "SubnetB",
                       "BatchServiceRole", "NvmeLaunchTemplate", *(f"{s.capitalize()}JobDefinition" for s in STAGES),
                       "MarkFailedJobDefinition"):
        assert logical_id in created, f"{logical_id} not created"
    # the resources behind the outputs exist and say what the template says
    attrs = d.sqs.get_queue_attributes(QueueUrl=d.outputs["IngestQueueUrl"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":pst_ingest_dlq-test") and int(redrive["maxReceiveCount"]) == 5
    enc = d.s3.get_bucket_encryption(Bucket=d.outputs["PipelineBucketName"])
    assert enc["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    (ce,) = d.batch.describe_compute_environments(computeEnvironments=[])["computeEnvironments"]
    assert ce["serviceRole"].endswith("BatchServiceRole") or "BatchServiceRole" in ce["serviceRole"]
    assert set(ce["computeResources"]["instanceTypes"]) == {"c6id", "m6id", "r6id", "i4i"}
    names = {j["jobDefinitionName"] for j in d.batch.describe_job_definitions()["jobDefinitions"]}
    assert {f"pstfast-test-{s}" for s in [*STAGES, "mark-failed"]} <= names
    v2 = d.sfn.describe_state_machine(stateMachineArn=d.outputs["PstIngestV2Arn"])
    assert json.loads(v2["definition"])["StartAt"] == "Extract"
    assert d.deploy_seconds < 300


# --- executions ------------------------------------------------------------------------------


def test_happy_path_runs_every_stage_and_the_local_runner_agrees(deployed: Deployed, pst_bytes: bytes) -> None:
    d = deployed
    job = d.upload(pst_bytes)
    router = d.route(job)
    assert router["status"] == "SUCCEEDED", router
    v2 = d.v2_execution(job["pst_file_id"])
    assert v2["status"] == "SUCCEEDED", d.history(v2["executionArn"])[-3:]
    entered = d.entered(v2["executionArn"])
    assert [s for s in entered if s in {s.capitalize() for s in STAGES}] == [s.capitalize() for s in STAGES]
    assert entered[-1] == "Done" and "MarkFailed" not in entered

    jobs = d.jobs(job["pst_file_id"])
    assert [j["status"] for j in jobs] == ["SUCCEEDED"] * 5
    assert [j["jobName"] for j in jobs] == [f"pstfast-{s}-{job['pst_file_id']}" for s in STAGES]
    out = f"s3://{d.outputs['PipelineBucketName']}"
    assert commands(jobs)[0] == ["pipeline", "stage", "extract", "--pst-file-id", job["pst_file_id"],
                                 "--project-id", PROJECT, "--source", job["source"], "--out", out]
    assert commands(jobs) == local_runner_commands(d, job)

    # the jobs really ran: outputs in the pipeline bucket, rows in PostgreSQL
    prefix = f"pst-v2/{job['pst_file_id']}/"
    manifest = json.loads(d.s3.get_object(Bucket=d.outputs["PipelineBucketName"],
                                          Key=prefix + "manifest.json")["Body"].read())
    assert manifest["counts"]["emails"] >= 12
    emails = gzip.decompress(d.s3.get_object(Bucket=d.outputs["PipelineBucketName"],
                                             Key=prefix + "emails.ndjson.gz")["Body"].read()).splitlines()
    assert len(emails) == manifest["counts"]["emails"]
    for stage in STAGES:
        stage_manifest = json.loads(d.s3.get_object(Bucket=d.outputs["PipelineBucketName"],
                                                    Key=f"{prefix}stages/{stage}/manifest.json")["Body"].read())
        assert stage_manifest["status"] == "succeeded", (stage, stage_manifest)
    (count,) = db_rows(d.dsn, "SELECT count(*) FROM email_messages WHERE pst_file_id = %s", job["pst_file_id"])
    assert count[0] == manifest["counts"]["emails"]


def test_duplicate_delivery_ends_as_duplicate_and_runs_nothing(deployed: Deployed, pst_bytes: bytes) -> None:
    d = deployed
    job = d.upload(pst_bytes)
    first = d.route(job)
    assert first["status"] == "SUCCEEDED"
    assert "Duplicate" not in d.entered(first["executionArn"])
    jobs_before = d.jobs(job["pst_file_id"])
    assert len(jobs_before) == 5

    second = d.route({**job, "requested_at": "2026-01-02T00:00:00Z"})  # SQS delivered it again
    assert second["status"] == "SUCCEEDED"
    assert d.entered(second["executionArn"])[-1] == "Duplicate"
    history = d.history(second["executionArn"])
    failed = [e for e in history if e["type"] == "TaskFailed"]
    assert failed and failed[0]["taskFailedEventDetails"]["error"] == "StepFunctions.ExecutionAlreadyExistsException"
    assert len(d.jobs(job["pst_file_id"])) == 5  # no second pipeline
    executions = d.sfn.list_executions(stateMachineArn=d.outputs["PstIngestV2Arn"])["executions"]
    assert [e["name"] for e in executions].count(job["pst_file_id"]) == 1


def test_rejected_input_marks_failed_and_parks_the_job_on_the_dlq(deployed: Deployed, pst_bytes: bytes) -> None:
    d = deployed
    job = d.upload(pst_bytes[: len(pst_bytes) // 3])  # truncated: extract rejects it
    retries_before = len(d.retries("Extract")) + len(d.retries("MarkFailed"))
    router = d.route(job)
    assert router["status"] == "FAILED"  # the child failed: .sync:2 fails the router too
    v2 = d.v2_execution(job["pst_file_id"])
    assert v2["status"] == "FAILED"
    history = d.history(v2["executionArn"])
    (failed,) = [e for e in history if e["type"] == "ExecutionFailed"]
    assert failed["executionFailedEventDetails"]["error"] == "pstfast.Failed"
    entered = d.entered(v2["executionArn"])
    assert entered == ["Extract", "CheckExtract", "IsExtractRejected", "Rejected", "MarkFailed", "SendToDLQ",
                       "Failed"]
    jobs = d.jobs(job["pst_file_id"])
    assert [j["jobName"] for j in jobs] == [f"pstfast-extract-{job['pst_file_id']}",
                                            f"pstfast-mark-failed-{job['pst_file_id']}"]
    assert [j["status"] for j in jobs] == ["SUCCEEDED", "SUCCEEDED"]  # no retries burned on a bad input
    assert commands(jobs)[1][-2:] == ["--error", "pstfast.Rejected"]
    assert commands(jobs) == local_runner_commands(d, job)
    assert len(d.retries("Extract")) + len(d.retries("MarkFailed")) == retries_before  # no retry waited

    # the DLQ holds the job, unchanged, with the reason
    messages = d.sqs.receive_message(QueueUrl=d.outputs["IngestDeadLetterQueueUrl"], MaxNumberOfMessages=10,
                                     MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
    mine = [m for m in messages if json.loads(m["Body"]).get("pst_file_id") == job["pst_file_id"]]
    assert len(mine) == 1, messages
    assert json.loads(mine[0]["Body"]) == job
    assert mine[0]["MessageAttributes"]["error"]["StringValue"] == "pstfast.Rejected"
    # the extract stage recorded why, and mark-failed really ran against PostgreSQL
    extract = json.loads(d.s3.get_object(Bucket=d.outputs["PipelineBucketName"],
                                         Key=f"pst-v2/{job['pst_file_id']}/stages/extract/manifest.json")["Body"].read())
    assert extract["status"] == "rejected" and extract["error"]
    ((status,),) = db_rows(d.dsn, "SELECT status FROM pst_files WHERE pst_file_id = %s", job["pst_file_id"])
    assert status == "failed"


def test_transient_failures_are_retried_with_backoff(deployed: Deployed, pst_bytes: bytes) -> None:
    d = deployed
    job = d.upload(pst_bytes)
    d.inject(job["pst_file_id"], thread=2)  # the first two thread attempts exit 75
    before = len(d.retries("Thread"))
    router = d.route(job)
    v2 = d.v2_execution(job["pst_file_id"])
    assert router["status"] == "SUCCEEDED", d.entered(v2["executionArn"])
    assert v2["status"] == "SUCCEEDED"
    jobs = d.jobs(job["pst_file_id"])
    names = [j["jobName"].split("-")[1] for j in jobs]
    assert names == ["extract", "load", "thread", "thread", "thread", "dedupe", "index"]
    assert [j["status"] for j in jobs if "thread" in j["jobName"]] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert all("exit 75" in j["statusReason"] for j in jobs if "thread" in j["jobName"] and j["status"] == "FAILED")
    assert commands(jobs) == local_runner_commands(d, job, {"thread": 2})

    # the interpreter's backoff: interval 20 s, then 40 s (BackoffRate 2), each jittered (FULL) below it
    waits = d.retries("Thread")[before:]
    interval, rate, cap = RETRY["Thread"]
    assert [w["interval"] for w in waits] == [min(interval * rate**n, cap) for n in range(2)]
    assert all(0 <= w["wait"] <= w["interval"] for w in waits), waits
    assert all("FULL" in str(w["jitter"]) for w in waits), waits


def test_transient_failures_past_max_attempts_end_on_the_dlq(deployed: Deployed, pst_bytes: bytes) -> None:
    d = deployed
    job = d.upload(pst_bytes)
    d.inject(job["pst_file_id"], load=10)  # more than MaxAttempts: every load attempt exits 75
    before = len(d.retries("Load"))
    router = d.route(job)
    assert router["status"] == "FAILED"
    v2 = d.v2_execution(job["pst_file_id"])
    entered = d.entered(v2["executionArn"])
    assert entered[-3:] == ["MarkFailed", "SendToDLQ", "Failed"]
    jobs = d.jobs(job["pst_file_id"])
    loads = [j for j in jobs if j["jobName"].startswith("pstfast-load-")]
    assert len(loads) == 5 and all(j["status"] == "FAILED" for j in loads)  # 1 + MaxAttempts 4
    assert commands(jobs)[-1][:2] == ["pipeline", "mark-failed"]
    assert commands(jobs)[-1][-2:] == ["--error", "States.TaskFailed"]
    assert commands(jobs) == local_runner_commands(d, job, {"load": 10})
    waits = d.retries("Load")[before:]
    interval, rate, cap = RETRY["Load"]
    assert [w["interval"] for w in waits] == [min(interval * rate**n, cap) for n in range(4)]
    assert all(0 <= w["wait"] <= w["interval"] for w in waits)
