"""``pstfast run``: the whole pipeline on one machine, executing ``pst_ingest_v2`` itself.

The runner does not keep its own stage list or retry policy: it runs the packaged state
machine (:mod:`pstfast.pipeline.asl`) with local handlers for the three resources it uses:

* ``batch:submitJob.sync`` -> the job's ``ContainerOverrides.Command`` (``pipeline stage
  <name> ...`` or ``pipeline mark-failed ...``) run in this process by
  :func:`pstfast.pipeline.commands.run_command`, exactly what the Batch job runs; a non-zero exit is ``States.TaskFailed`` (retried with the
  state's backoff);
* ``aws-sdk:s3:getObject`` -> the stage manifest read from the output root;
* ``sqs:sendMessage`` -> the *dead_letter* callback (``pstfast worker`` sends to the DLQ).

A stage that rejects its input (bad PST) writes ``rejected`` in its stage manifest and
exits 0, so the Choice after it fails the run at once, with no retries burned.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config, ids, storage
from ..errors import (
    EXIT_BUG,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TRANSIENT,
    InputError,
    PstfastError,
    TransientError,
)
from ..extraction.pool import prestart
from . import asl
from .commands import run_command

if TYPE_CHECKING:
    from ..db.connect import Database

log = logging.getLogger(__name__)

BATCH = "arn:aws:states:::batch:submitJob.sync"
S3_GET = "arn:aws:states:::aws-sdk:s3:getObject"
SQS_SEND = "arn:aws:states:::sqs:sendMessage"

def _kinds(cls: type[PstfastError]) -> set[str]:
    return {cls.kind}.union(*(_kinds(sub) for sub in cls.__subclasses__()))


#: error kinds a retry may cure: a stage that failed with any other kind crashed (a bug)
_TRANSIENT_KINDS = frozenset(_kinds(TransientError))

_S3_LAYOUT = re.compile(r"project_(?P<project>[^/]+)/pst/(?P<pst>[^/]+)/[^/]+$")


@dataclass
class StageTiming:
    """What one stage did, from its stage manifest."""

    stage: str
    status: str
    seconds: float | None
    attempts: int
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None


@dataclass
class RunResult:
    """The outcome of :func:`run`."""

    pst_file_id: str
    project_id: str
    source: str
    out: str
    status: str  # succeeded | failed
    error: str | None
    seconds: float
    stages: list[StageTiming]
    execution: asl.Execution

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def output_prefix(self) -> str:
        return storage.output_prefix(self.out, self.pst_file_id)

    def counts(self) -> dict[str, int]:
        """The headline numbers: emails, attachments, errors, loaded, threads, duplicates, indexed."""
        by_stage = {s.stage: s.counts for s in self.stages}
        picks = [
            ("emails", "extract", "emails"), ("attachments", "extract", "attachments"),
            ("errors", "extract", "errors"), ("loaded", "load", "emails"), ("threads", "thread", "threads"),
            ("duplicates", "dedupe", "duplicates"), ("indexed", "index", "documents"),
        ]
        return {label: by_stage[stage][key] for label, stage, key in picks if key in by_stage.get(stage, {})}

    def summary(self) -> str:
        """A human summary: counts, threads, duplicates, time per stage, output location."""
        lines = [f"pstfast run: {self.status.upper()}  pst_file_id={self.pst_file_id}  project={self.project_id}"]
        lines.append(f"  source:  {self.source}")
        counts = self.counts()
        if counts:
            lines.append("  counts:  " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        for stage in self.stages:
            secs = f"{stage.seconds:8.2f}s" if stage.seconds is not None else "       -"
            retry = f"  ({stage.attempts} attempts)" if stage.attempts > 1 else ""
            note = f"  {stage.error}" if stage.error else ""
            lines.append(f"  {stage.stage:<8}{secs}  {stage.status}{retry}{note}")
        lines.append(f"  total   {self.seconds:8.2f}s")
        lines.append(f"  outputs: {self.output_prefix}")
        if self.error:
            lines.append(f"  error:   {self.error}")
        return "\n".join(lines)


def job_ids(source: str, project_id: str | None = None, pst_file_id: str | None = None) -> tuple[str, str]:
    """(project_id, pst_file_id) for *source*: explicit values, else the storage layout
    ``project_<id>/pst/<pst_file_id>/<name>.pst``, else a stable id from the source URL."""
    m = _S3_LAYOUT.search(str(source))
    if pst_file_id is None:
        if m:
            pst_file_id = m.group("pst")
        elif storage.is_s3(source):
            pst_file_id = str(uuid.uuid5(uuid.NAMESPACE_URL, str(source)))
        elif Path(source).is_file():
            # the same id extract gives a file nobody named: its content, not its path
            pst_file_id = ids.default_pst_file_id(ids.file_sha256(source))
        else:
            pst_file_id = str(uuid.uuid5(uuid.NAMESPACE_URL, str(Path(source).resolve())))
    if project_id is None:
        project_id = m.group("project") if m else "local"
    return ids.check_identifier(str(project_id), "project_id"), ids.check_identifier(str(pst_file_id), "pst_file_id")


def default_out() -> str:
    """The default output root: ``PSTFAST_OUT`` or ``<PSTFAST_HOME>/out``."""
    return config.env("OUT") or str(config.home() / "out")


def run(
    source: str,
    *,
    out: str | None = None,
    db: Database = None,
    project_id: str | None = None,
    pst_file_id: str | None = None,
    requested_at: str | None = None,
    definition: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    dead_letter: Callable[[dict[str, Any], str], None] | None = None,
    command: Callable[[Sequence[str]], int] = run_command,
    codepage: int | None = None,
) -> RunResult:
    """Run extract -> load -> thread -> dedupe -> index for one PST, as ``pst_ingest_v2`` does.

    *sleep* and *rng* drive the retry backoff (tests pass fast ones); *dead_letter*
    receives the job and the error when the run fails terminally; *command* runs one
    state-machine command list and returns its exit code. *codepage* goes to the extract
    stage (``--codepage``).

    Raises:
        InputError: *source* does not exist (nothing ran).
        UsageError: *out* is not writable, or an identifier is invalid.
    """
    source = str(source)
    if db is not None and not isinstance(db, str):  # a connection or pool: its DSN, for the stage commands
        from ..db.connect import resolve_dsn

        db = resolve_dsn(db)
    if not storage.is_s3(source) and not Path(source).exists():
        raise InputError(f"{source}: no such file")
    out = str(out or default_out())
    storage.check_writable(out)
    prestart(config.workers())  # the extract's workers get ready while the job's id is hashed
    project_id, pst_file_id = job_ids(source, project_id, pst_file_id)
    job = {
        "project_id": project_id,
        "pst_file_id": pst_file_id,
        "source": source,
        "requested_at": requested_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    definition = definition or asl.load_definition()
    log.info("run %s: pst_file_id=%s project=%s", source, pst_file_id, project_id)

    def batch(params: dict[str, Any]) -> dict[str, Any]:
        argv = list(params["ContainerOverrides"]["Command"])
        if db:
            argv += ["--db", db]
        if codepage and argv[:3] == ["pipeline", "stage", "extract"]:
            argv += ["--codepage", str(codepage)]
        log.debug("pstfast %s", " ".join(argv))
        try:
            rc = command(argv)
        except PstfastError as exc:  # a command that raised instead of exiting
            raise asl.TaskFailed("States.TaskFailed", f"{exc.kind}: {exc}") from exc
        except Exception as exc:  # an unexpected crash is a failed Batch job, nothing more
            raise asl.TaskFailed("States.TaskFailed", f"{type(exc).__name__}: {exc}") from exc
        if rc == EXIT_INTERRUPTED:  # ^C inside the stage: stop the run, do not retry
            raise KeyboardInterrupt
        if rc == EXIT_INPUT and argv[:2] == ["pipeline", "stage"] \
                and _stage_status(out, pst_file_id, argv[2]) == "rejected":
            # the stage recorded the rejection; the Choice after it routes to Rejected
            # (batch/entrypoint.sh does the same mapping on AWS)
            return {"Status": "SUCCEEDED", "Command": argv}
        if rc != 0:
            raise asl.TaskFailed("States.TaskFailed", f"`pstfast {' '.join(argv[:3])}` exited with {rc}")
        return {"Status": "SUCCEEDED", "Command": argv}

    def s3_get(params: dict[str, Any]) -> dict[str, Any]:
        url = storage.join(out, params["Key"])
        try:
            return {"Body": storage.read_bytes(url).decode("utf-8")}
        except InputError as exc:
            raise asl.TaskFailed("S3.NoSuchKeyException", str(exc)) from exc
        except PstfastError as exc:
            raise asl.TaskFailed("S3.S3Exception", str(exc)) from exc

    def sqs_send(params: dict[str, Any]) -> dict[str, Any]:
        body = params["MessageBody"]
        error = params.get("MessageAttributes", {}).get("error", {}).get("StringValue", "")
        if dead_letter is not None:
            try:
                dead_letter(body, error)
            except PstfastError as exc:
                raise asl.TaskFailed("SQS.SdkClientException", str(exc)) from exc
        return {"MessageId": "local"}

    t0 = time.perf_counter()
    execution = asl.execute(
        definition,
        {"job": job, "out": out},
        {BATCH: batch, S3_GET: s3_get, SQS_SEND: sqs_send},
        refs={},
        sleep=sleep,
        rng=rng,
        name=pst_file_id,
    )
    seconds = time.perf_counter() - t0
    stages = _stage_timings(out, pst_file_id, execution, definition)
    error = None
    if execution.status != "SUCCEEDED":
        error = _failure_reason(execution, stages)
    return RunResult(
        pst_file_id=pst_file_id, project_id=project_id, source=source, out=out,
        status="succeeded" if execution.status == "SUCCEEDED" else "failed",
        error=error, seconds=seconds, stages=stages, execution=execution,
    )


def _stage_status(out: str, pst_file_id: str, stage: str) -> str | None:
    from .stagelog import read_stage_manifest

    try:
        report = read_stage_manifest(out, pst_file_id, stage)
    except (PstfastError, ValueError):
        return None
    return report.status if report else None


def stage_states(definition: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(stage, state name) in execution order: each Batch task whose command is ``pipeline stage <name>``,
    following the success path (``Next`` / Choice ``Default``) from ``StartAt``."""
    definition = definition or asl.load_definition()
    found, current, seen = [], definition["StartAt"], set()
    states = definition["States"]
    while current and current not in seen:
        seen.add(current)
        state = states[current]
        if state.get("Resource") == BATCH:
            command = state["Parameters"]["ContainerOverrides"]["Command.$"]
            m = re.match(r"States\.Array\('pipeline', 'stage', '(\w+)'", command)
            if m:
                found.append((m.group(1), current))
        current = state.get("Next") or state.get("Default")
    return found


def stage_names(definition: Mapping[str, Any] | None = None) -> list[str]:
    """The stage order of the state machine."""
    return [stage for stage, _ in stage_states(definition)]


def _stage_timings(
    out: str, pst_file_id: str, execution: asl.Execution, definition: Mapping[str, Any]
) -> list[StageTiming]:
    from .stagelog import read_stage_manifest

    timings = []
    for name, state in stage_states(definition):
        try:
            report = read_stage_manifest(out, pst_file_id, name)
        except (PstfastError, ValueError):
            report = None
        if report is None:
            continue
        attempts = sum(1 for e in execution.events if e.state == state and e.kind in ("succeeded", "failed"))
        timings.append(
            StageTiming(name, report.status, report.seconds, max(attempts, 1), dict(report.counts), report.error,
                        report.error_kind)
        )
    return timings


def _failure_reason(execution: asl.Execution, stages: list[StageTiming]) -> str:
    for stage in reversed(stages):
        if stage.status in ("rejected", "failed") and stage.error:
            return f"{stage.stage} {stage.status}: {stage.error}"
    caught = [e for e in execution.events if e.kind == "caught"]
    if caught:
        return f"{caught[0].state}: {caught[0].error}: {caught[0].cause}"
    return f"{execution.error}: {execution.cause}"


def demo_source(home: str | None = None, *, messages: int = 200, seed: int = 1) -> str:
    """Write (once) a writer-made demo PST under ``<PSTFAST_HOME>/demo`` and return its path."""
    from ..synthetic.corpus import SynthOptions, synth

    folder = config.home(home) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{messages}-{seed}.pst"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        synth(tmp, options=SynthOptions(messages=messages, seed=seed), truth=folder / f"demo-{messages}-{seed}.json")
        tmp.replace(path)
    return str(path)


def result_json(result: RunResult) -> str:
    """The run result as one JSON line (for ``--json``)."""
    return json.dumps({
        "pst_file_id": result.pst_file_id, "project_id": result.project_id, "source": result.source,
        "out": result.output_prefix, "status": result.status, "error": result.error,
        "seconds": round(result.seconds, 3), "counts": result.counts(),
        "stages": [{"stage": s.stage, "status": s.status, "seconds": s.seconds, "attempts": s.attempts}
                   for s in result.stages],
    }, sort_keys=True)


def exit_code(result: RunResult) -> int:
    """0 on success; 65 when a stage rejected the input; 75 when transient retries ran out;
    1 when a stage crashed (a bug: its stage manifest says ``failed`` with a non-pstfast error)."""
    if result.ok:
        return EXIT_OK
    if any(s.status == "rejected" for s in result.stages):
        return EXIT_INPUT
    if any(s.status == "failed" and s.error_kind is not None and s.error_kind not in _TRANSIENT_KINDS
           for s in result.stages):
        return EXIT_BUG
    return EXIT_TRANSIENT


__all__ = ["RunResult", "StageTiming", "run", "stage_names", "stage_states", "job_ids", "demo_source"]
