"""The ``pst_ingest`` SQS queue: ``pstfast submit`` sends jobs, ``pstfast worker`` consumes them.

Job message (JSON body)::

    {"project_id": "42", "pst_file_id": "...", "source": "s3://docs/project_42/pst/<id>/x.pst",
     "requested_at": "2026-01-01T00:00:00Z"}

On AWS the queue feeds the EventBridge Pipe; ``pstfast worker`` is the same consumer for
one machine (or cron): it long-polls, runs :func:`pstfast.pipeline.runner.run` per message and
deletes the message only once the job is finished: succeeded, or failed terminally and
parked on the dead-letter queue by the state machine's ``SendToDLQ`` step. A worker that
crashes mid-job leaves the message to be redelivered (and, after ``maxReceiveCount``,
moved to the DLQ by SQS itself).

Endpoints come from boto3's standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SQS``
variables, so moto, LocalStack or MinIO need no code change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import config, storage
from ..errors import InputError, PstfastError, StorageError, UsageError
from ..ids import check_identifier

log = logging.getLogger(__name__)

#: seconds a received message stays invisible; the worker extends it while a job runs
VISIBILITY_SECONDS = 300


def _sqs() -> Any:
    from ..extras import require

    boto3 = require("boto3", "the SQS queue")  # heavy: only when a queue is used
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("sqs", region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 5}))


def _translate(exc: Exception, what: str) -> PstfastError:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"):
            return UsageError(f"{what}: the queue does not exist ({code})")
        return StorageError(f"{what}: {code or exc}")
    if type(exc).__name__ in storage.NO_CREDENTIALS:
        return UsageError(f"{what}: no usable AWS credentials ({exc}): {storage.CREDENTIALS_HINT}")
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{what}: {exc}")
    raise exc


@dataclass(frozen=True)
class SubmitResult:
    """What :func:`submit` did."""

    project_id: str
    pst_file_id: str
    source: str
    route: str  # v2 | legacy
    message_id: str | None  # None when the project is routed to the legacy pipeline
    body: dict[str, Any]


def route_for(project_id: str, db: str | None = None) -> str:
    """``pipeline_routes`` for *project_id* ('v2' when no row or no database is configured)."""
    dsn = config.database_url(db)
    if dsn is None:
        return "v2"
    from ..db.connect import connection, sql_text
    from ..db.migrate import require_current

    with connection(dsn) as conn:
        require_current(conn)
        row = conn.execute(sql_text("pipeline_route.sql"), (project_id,)).fetchone()
    return str(row[0]) if row else "v2"


def job_message(
    project_id: str, source: str, pst_file_id: str | None = None, requested_at: str | None = None
) -> dict[str, Any]:
    """The job body for *source* (ids derived from the storage layout when not given)."""
    from .runner import job_ids

    project_id, pst_file_id = job_ids(source, str(project_id), pst_file_id)
    return {
        "project_id": project_id,
        "pst_file_id": pst_file_id,
        "source": str(source),
        "requested_at": requested_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def submit(
    project_id: str,
    source: str,
    *,
    queue_url: str,
    pst_file_id: str | None = None,
    db: str | None = None,
) -> SubmitResult:
    """Send the job for *source* to the ``pst_ingest`` queue, unless ``pipeline_routes``
    sends *project_id* to the legacy pipeline (then nothing is sent and route='legacy').

    Raises:
        UsageError: an invalid identifier, the queue does not exist, or no AWS credentials.
        StorageError: SQS could not be reached (transient).
    """
    if not queue_url:
        raise UsageError("submit needs --queue URL (the pst_ingest queue)")
    body = job_message(str(project_id), source, pst_file_id)
    route = route_for(body["project_id"], db)
    if route != "v2":
        return SubmitResult(body["project_id"], body["pst_file_id"], body["source"], route, None, body)
    kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": json.dumps(body, sort_keys=True)}
    if queue_url.endswith(".fifo"):
        # FIFO queues drop a second copy of the same pst_file_id within 5 minutes
        kwargs["MessageGroupId"] = body["project_id"]
        kwargs["MessageDeduplicationId"] = body["pst_file_id"]
    try:
        response = _sqs().send_message(**kwargs)
    except Exception as exc:
        raise _translate(exc, f"sending to {queue_url}") from exc
    return SubmitResult(body["project_id"], body["pst_file_id"], body["source"], route, response["MessageId"], body)


def dead_letter_queue_url(queue_url: str) -> str | None:
    """The DLQ configured in *queue_url*'s RedrivePolicy, or None."""
    sqs = _sqs()
    try:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
        policy = attrs.get("RedrivePolicy")
        if not policy:
            return None
        arn = json.loads(policy)["deadLetterTargetArn"]
        account, name = arn.split(":")[4], arn.split(":")[5]
        return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
    except Exception as exc:
        raise _translate(exc, f"reading the redrive policy of {queue_url}") from exc


@dataclass
class ConsumerStats:
    """What :func:`worker` did."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0  # finished as failed, job parked on the DLQ, message deleted
    released: int = 0  # left on the queue for redelivery (crash, DLQ unreachable)
    results: list[Any] = field(default_factory=list)


class _Heartbeat:
    """Keeps a message invisible while its job runs (long extracts outlive the timeout)."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str, every: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(sqs, queue_url, receipt, every), daemon=True)

    def _beat(self, sqs: Any, queue_url: str, receipt: str, every: float) -> None:
        while not self._stop.wait(every):
            try:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=VISIBILITY_SECONDS
                )
            except Exception as exc:  # noqa: BLE001 - best effort: worst case the message is redelivered
                log.debug("extending the visibility of a message of %s failed: %s", queue_url, exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_LAYOUT = re.compile(r"project_(?P<project>[^/]+)/pst/(?P<pst>[^/]+)/(?P<name>[^/]+)")


def checked_job(body: Any, docs_bucket: str | None, allow_local: bool = False) -> dict[str, Any]:
    """The job in a message body, checked: a job body is never trusted.

    Its ids follow the one identifier rule; its ``source`` is an ``s3://`` object in
    *docs_bucket* under ``project_<project_id>/pst/<pst_file_id>/<name>``, whose ids are the
    job's (a local path only with *allow_local*, for a worker on one machine).

    Raises:
        UsageError: the body is not such a job (the message goes to the DLQ with this reason).
    """
    if isinstance(body, dict) and isinstance(body.get("job"), dict):
        body = body["job"]  # a Pipe-shaped body
    if not isinstance(body, dict) or not isinstance(body.get("source"), str) or "project_id" not in body:
        raise UsageError("not a pstfast job: a JSON object with project_id and source is needed")
    project_id = check_identifier(str(body["project_id"]), "project_id")
    pst_file_id = body.get("pst_file_id")
    if pst_file_id is not None:
        pst_file_id = check_identifier(str(pst_file_id), "pst_file_id")
    source: str = body["source"]
    if source.startswith("s3://"):
        bucket, _, key = source[5:].partition("/")
        if docs_bucket is None or bucket != docs_bucket:
            raise UsageError(f"source {source!r} is not in the docs bucket {docs_bucket!r}")
        m = _LAYOUT.fullmatch(key)
        if m is None:
            raise UsageError(f"source {source!r} is not under project_<project_id>/pst/<pst_file_id>/<name>")
        if m.group("project") != project_id:
            raise UsageError(f"source {source!r} belongs to project {m.group('project')!r}, the job says {project_id!r}")
        if pst_file_id is not None and m.group("pst") != pst_file_id:
            raise UsageError(f"source {source!r} is pst_file_id {m.group('pst')!r}, the job says {pst_file_id!r}")
        pst_file_id = check_identifier(m.group("pst"), "pst_file_id")
    elif not allow_local:
        raise UsageError(f"source {source!r} is not an s3:// object (local paths need a worker started with "
                         "--allow-local-sources)")
    return {**body, "project_id": project_id, "pst_file_id": pst_file_id, "source": source}


def consume(
    queue_url: str,
    *,
    out: str,
    db: str | None = None,
    max_jobs: int | None = None,
    idle_exit: float | None = None,
    dlq_url: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    docs_bucket: str | None = None,
    allow_local: bool = False,
) -> ConsumerStats:
    """Consume *queue_url* until *max_jobs* messages were handled or the queue stayed empty
    for *idle_exit* seconds (both None: forever). Jobs must name an object of *docs_bucket*
    (else ``PSTFAST_DOCS_BUCKET``) in the storage layout (:func:`checked_job`); one that does
    not goes to the DLQ with the reason, and the worker carries on.

    Raises:
        UsageError: neither a docs bucket nor *allow_local* is given, or the queue does not exist.
    """
    from .runner import run

    docs_bucket = docs_bucket or config.env("DOCS_BUCKET")
    if docs_bucket is None and not allow_local:
        raise UsageError("pstfast worker needs the docs bucket its jobs' PSTs are in: --docs-bucket or "
                         "PSTFAST_DOCS_BUCKET (or --allow-local-sources on one machine)")

    sqs = _sqs()
    if dlq_url is None:
        dlq_url = dead_letter_queue_url(queue_url)
    stats = ConsumerStats()

    def park(job: dict[str, Any], error: str) -> None:
        if dlq_url is None:
            raise StorageError(f"{queue_url} has no dead-letter queue (RedrivePolicy); pass --dlq")
        try:
            sqs.send_message(
                QueueUrl=dlq_url,
                MessageBody=json.dumps(job, sort_keys=True),
                MessageAttributes={"error": {"DataType": "String", "StringValue": error or "unknown"}},
            )
        except Exception as exc:
            raise _translate(exc, f"sending to the DLQ {dlq_url}") from exc

    idle_since = time.monotonic()
    while max_jobs is None or stats.received < max_jobs:
        wait = 20
        if idle_exit is not None:
            left = idle_exit - (time.monotonic() - idle_since)
            if left <= 0:
                break
            wait = max(0, min(20, int(left + 0.999)))
        try:
            response = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=wait,
                VisibilityTimeout=VISIBILITY_SECONDS, AttributeNames=["ApproximateReceiveCount"],
            )
        except Exception as exc:
            err = _translate(exc, f"receiving from {queue_url}")
            if isinstance(err, UsageError):
                raise err from exc
            log.warning(f"worker: {err}; retrying")
            sleep(min(5.0, float(wait) or 1.0))
            continue
        messages = response.get("Messages", [])
        if not messages:
            continue
        message = messages[0]
        stats.received += 1
        receipt = message["ReceiptHandle"]
        try:
            job = checked_job(json.loads(message["Body"]), docs_bucket, allow_local)
        except (ValueError, UsageError) as exc:  # json's errors are ValueErrors
            reason = str(exc) if isinstance(exc, UsageError) else f"not JSON: {exc}"
            log.warning("worker: message %s refused: %s; parking it on the DLQ", message["MessageId"], reason)
            park({"raw": message["Body"], "reason": reason}, "pstfast.BadMessage")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
            stats.failed += 1
            continue
        source, project_id = job["source"], job["project_id"]
        log.info(f"worker: job {job.get('pst_file_id')} ({source})")
        try:
            with _Heartbeat(sqs, queue_url, receipt, VISIBILITY_SECONDS / 3):
                result = run(
                    source, out=out, db=db, project_id=project_id, pst_file_id=job.get("pst_file_id"),
                    requested_at=job.get("requested_at"), dead_letter=park, sleep=sleep,
                )
        except InputError as exc:
            # rejected before the state machine started (e.g. the source does not exist)
            log.warning(f"worker: job rejected: {exc}")
            park(job, f"pstfast.{exc.kind}")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
            stats.failed += 1
            continue
        except Exception as exc:  # noqa: BLE001 - leave the message for redelivery, say why
            log.warning(f"worker: job crashed, leaving it for redelivery: {type(exc).__name__}: {exc}")
            stats.released += 1
            continue
        stats.results.append(result)
        log.info("%s", result.summary())
        parked = any(e.state == "SendToDLQ" and e.kind == "succeeded" for e in result.execution.events)
        if result.ok or parked:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=receipt)
            if result.ok:
                stats.succeeded += 1
            else:
                stats.failed += 1
        else:
            stats.released += 1
        idle_since = time.monotonic()
    return stats
