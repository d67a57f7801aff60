"""submit -> SQS -> worker -> pipeline on loopback: moto's standalone server (S3 + SQS) and
PostgreSQL, with a writer-made PST uploaded under ``project_<id>/pst/<pst_file_id>/``."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from pipeline_support import MotoServer

from pstfast.cli import main as cli_main
from pstfast.pipeline import sqs as queue

PROJECT = "7"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Fresh buckets and queues (+DLQ with redrive) on the moto server."""
    for key, value in moto.env().items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3", endpoint_url=moto.url)
    sqs = boto3.client("sqs", endpoint_url=moto.url)
    tag = uuid.uuid4().hex[:8]
    docs, pipeline = f"docs-{tag}", f"pipeline-{tag}"
    s3.create_bucket(Bucket=docs)
    s3.create_bucket(Bucket=pipeline)
    dlq = sqs.create_queue(QueueName=f"pst_ingest_dlq-{tag}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(
        QueueName=f"pst_ingest-{tag}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    return {"s3": s3, "sqs": sqs, "docs": docs, "pipeline": pipeline, "queue": q, "dlq": dlq}


@pytest.fixture(scope="module")
def pst_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from pstfast.synthetic.corpus import SynthOptions, synth

    path = tmp_path_factory.mktemp("pst") / "mailbox.pst"
    synth(path, options=SynthOptions(messages=40, seed=3))
    return path.read_bytes()


def upload(aws: dict[str, Any], data: bytes, name: str = "mailbox.pst") -> tuple[str, str]:
    pst_file_id = str(uuid.uuid4())
    key = f"project_{PROJECT}/pst/{pst_file_id}/{name}"
    aws["s3"].put_object(Bucket=aws["docs"], Key=key, Body=data)
    return pst_file_id, f"s3://{aws['docs']}/{key}"


def drain(aws: dict[str, Any], url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        msgs = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                          MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(m)
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def email_rows(dsn: str, pst_file_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT * FROM email_messages WHERE pst_file_id = %s ORDER BY email_id", (pst_file_id,)
        ).fetchall()


def pst_status(dsn: str, pst_file_id: str) -> tuple[str, str | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT status, error FROM pst_files WHERE pst_file_id = %s", (pst_file_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_submit_worker_end_to_end(aws: dict[str, Any], pst_bytes: bytes, pg_dsn: str) -> None:
    pst_file_id, source = upload(aws, pst_bytes)
    rc = cli_main(["submit", "--queue", aws["queue"], "--project-id", PROJECT, "--source", source])
    assert rc == 0
    (message,) = aws["sqs"].receive_message(QueueUrl=aws["queue"], VisibilityTimeout=0).get("Messages", [])
    body = json.loads(message["Body"])
    assert set(body) == {"project_id", "pst_file_id", "source", "requested_at"}
    assert body["pst_file_id"] == pst_file_id and body["project_id"] == PROJECT and body["source"] == source

    out = f"s3://{aws['pipeline']}"
    stats = queue.consume(aws["queue"], out=out, db=pg_dsn, max_jobs=1, idle_exit=5, docs_bucket=aws["docs"])
    assert (stats.received, stats.succeeded, stats.failed, stats.released) == (1, 1, 0, 0)
    listing = aws["s3"].list_objects_v2(Bucket=aws["pipeline"], Prefix=f"pst-v2/{pst_file_id}/")
    keys = {o["Key"] for o in listing["Contents"]}
    for name in ("manifest.json", "emails.csv.gz", "emails.ndjson.gz", "emails.parquet",
                 "stages/extract/manifest.json", "stages/index/manifest.json"):
        assert f"pst-v2/{pst_file_id}/{name}" in keys
    assert drain(aws, aws["queue"]) == [] and drain(aws, aws["dlq"]) == []
    assert pst_status(pg_dsn, pst_file_id) == ("indexed", None)
    rows = email_rows(pg_dsn, pst_file_id)
    assert rows
    with psycopg.connect(pg_dsn) as conn:
        threaded, dups = conn.execute(
            "SELECT count(*) FILTER (WHERE thread_id IS NOT NULL), count(*) FILTER (WHERE duplicate_of IS NOT NULL)"
            " FROM email_messages WHERE pst_file_id = %s", (pst_file_id,)).fetchone()
        subject = conn.execute("SELECT subject FROM email_messages WHERE pst_file_id = %s AND subject <> ''"
                               " ORDER BY email_id LIMIT 1", (pst_file_id,)).fetchone()[0]
    assert threaded == len(rows) and dups >= 1
    from pstfast import search

    word = max(subject.split(), key=len)
    assert search(word, PROJECT, pg_dsn, limit=50), f"no search hit for {word!r}"

    # the same message delivered twice: identical rows
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=message["Body"])
    rc = cli_main(["worker", "--queue", aws["queue"], "--out", out, "--db", pg_dsn, "--docs-bucket", aws["docs"], "--max-jobs", "1",
                   "--idle-exit", "5"])
    assert rc == 0
    assert email_rows(pg_dsn, pst_file_id) == rows
    assert drain(aws, aws["queue"]) == []


def test_truncated_pst_is_rejected_to_the_dlq(aws: dict[str, Any], pst_bytes: bytes, pg_dsn: str) -> None:
    pst_file_id, source = upload(aws, pst_bytes[: len(pst_bytes) // 3], "truncated.pst")
    queue.submit(PROJECT, source, queue_url=aws["queue"])
    waits: list[float] = []
    stats = queue.consume(aws["queue"], out=f"s3://{aws['pipeline']}", db=pg_dsn, max_jobs=1, idle_exit=5,
                                  docs_bucket=aws["docs"],
                         sleep=waits.append)
    assert (stats.received, stats.succeeded, stats.failed) == (1, 0, 1)
    assert waits == [], "a bad input must not burn retries"
    (result,) = stats.results
    assert [s.status for s in result.stages] == ["rejected"]
    status, error = pst_status(pg_dsn, pst_file_id)
    assert status == "failed" and "truncated" in (error or "")
    parked = drain(aws, aws["dlq"])
    assert [json.loads(m["Body"])["pst_file_id"] for m in parked] == [pst_file_id]
    assert parked[0]["MessageAttributes"]["error"]["StringValue"] == "pstfast.Rejected"
    assert drain(aws, aws["queue"]) == []


def test_legacy_route_sends_nothing(aws: dict[str, Any], pg_dsn: str) -> None:
    from pstfast.db.connect import connection
    from pstfast.db.migrate import apply_migrations

    with connection(pg_dsn) as conn:
        apply_migrations(conn)
        conn.execute("INSERT INTO pipeline_routes (project_id, pipeline) VALUES ('legacy1', 'legacy')")
        conn.commit()
    r = queue.submit("legacy1", "s3://docs/project_legacy1/pst/x/a.pst", queue_url=aws["queue"], db=pg_dsn)
    assert r.route == "legacy" and r.message_id is None
    r2 = queue.submit("newproj", "s3://docs/project_newproj/pst/y/a.pst", queue_url=aws["queue"], db=pg_dsn)
    assert r2.route == "v2" and r2.message_id
    assert [json.loads(m["Body"])["project_id"] for m in drain(aws, aws["queue"])] == ["newproj"]


def test_worker_idle_exit_on_empty_queue(aws: dict[str, Any], tmp_path: Path) -> None:
    stats = queue.consume(aws["queue"], out=str(tmp_path), max_jobs=None, idle_exit=1, docs_bucket=aws["docs"])
    assert stats.received == 0


def test_hostile_job_bodies_go_to_the_dlq_and_the_worker_carries_on(aws: dict[str, Any], tmp_path: Path) -> None:
    hostile = [
        {"project_id": "evil", "source": str(tmp_path / "local.pst")},  # a path on the worker host
        {"project_id": "evil", "source": f"s3://{aws['docs']}/project_42/pst/p1/mail.pst"},  # another's PST
        {"project_id": "-x", "source": f"s3://{aws['docs']}/project_-x/pst/p1/mail.pst"},  # an option
        {"project_id": "p\u0000q", "source": f"s3://{aws['docs']}/project_p/pst/p1/mail.pst"},
    ]
    for body in hostile:
        aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody=json.dumps(body))
    aws["sqs"].send_message(QueueUrl=aws["queue"], MessageBody="{not json")
    stats = queue.consume(aws["queue"], out=str(tmp_path / "out"), max_jobs=5, idle_exit=5, docs_bucket=aws["docs"])
    assert (stats.received, stats.failed, stats.succeeded, stats.released) == (5, 5, 0, 0)
    parked = drain(aws, aws["dlq"])
    assert len(parked) == 5 and {m["MessageAttributes"]["error"]["StringValue"] for m in parked} == {
        "pstfast.BadMessage"}
    reasons = sorted(json.loads(m["Body"])["reason"] for m in parked)
    assert any("not an s3:// object" in r for r in reasons) and any("belongs to project '42'" in r for r in reasons)
    assert any("project_id '-x'" in r for r in reasons) and any(r.startswith("not JSON") for r in reasons)
    assert drain(aws, aws["queue"]) == [] and not (tmp_path / "out").exists()


def test_s3_outage_is_retried_with_backoff(aws: dict[str, Any], pst_bytes: bytes, pg_dsn: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 (a second moto server, in this process so its data survives a restart) goes away
    when the load stage starts and comes back during the state machine's backoff wait."""
    from moto.server import ThreadedMotoServer
    from pipeline_support import free_port

    port = free_port()
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)]
    servers[0].start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        aws = {**aws, "s3": s3}
        s3.create_bucket(Bucket=aws["docs"])
        s3.create_bucket(Bucket=aws["pipeline"])
        pst_file_id, source = upload(aws, pst_bytes)
        queue.submit(PROJECT, source, queue_url=aws["queue"])

        events: list[str] = []

        class StopS3WhenLoadStarts(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("pstfast pipeline stage load") and "outage" not in events:
                    servers[-1].stop()  # S3 refuses connections from now on
                    events.append("outage")

        def backoff(seconds: float) -> None:
            events.append(f"backoff {seconds:.3f}")
            if events.count("restored") == 0 and "outage" in events:
                servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
                servers[-1].start()
                events.append("restored")

        runner_log = logging.getLogger("pstfast.pipeline.runner")
        hook, level = StopS3WhenLoadStarts(), runner_log.level
        runner_log.addHandler(hook)
        runner_log.setLevel(logging.DEBUG)  # the runner names each stage command at debug level
        try:
            stats = queue.consume(aws["queue"], out=f"s3://{aws['pipeline']}", db=pg_dsn, max_jobs=1, idle_exit=5,
                                  docs_bucket=aws["docs"],
                                  sleep=backoff)
        finally:
            runner_log.removeHandler(hook)
            runner_log.setLevel(level)
        assert (stats.received, stats.succeeded, stats.released) == (1, 1, 0), events
        assert events[0] == "outage" and events[1].startswith("backoff") and events[2] == "restored"
        (result,) = stats.results
        load = next(s for s in result.stages if s.stage == "load")
        assert load.status == "succeeded" and load.attempts >= 2
        assert result.execution.retries("Load") >= 1
        assert pst_status(pg_dsn, pst_file_id) == ("indexed", None)
    finally:
        servers[-1].stop()
