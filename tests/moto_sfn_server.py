"""moto's standalone server with Step Functions executing and Batch jobs run on this host.

Run as a script (``python tests/moto_sfn_server.py -H 127.0.0.1 -p PORT``; the
``MotoServer(executing=True)`` helper in pipeline_support does). It is moto_server
(moto pinned in pyproject's test extra) with five changes, each below with its reason:

1. Config: ``stepfunctions.execute_state_machine = True`` (moto interprets the ASL, calling
   the service integrations against this same server) and ``batch.use_docker = False``
   (there is no Docker engine here: moto's "simple" Batch backend); and CloudFormation
   creates state machines in the backend that executes them (moto keeps two).
2. getmoto/moto#10076: moto's Step Functions interpreter (vendored from LocalStack) ships
   ``_normalise_parameters`` / ``_normalise_response`` as no-ops, so a Task's PascalCase
   ``Parameters`` (``JobName``, ``ContainerOverrides.Command``) never become the boto
   request (``jobName``, ``containerOverrides.command``), a dict ``MessageBody``/``Input``
   is not JSON-encoded, and S3's streaming ``Body`` is not read into a string. The patch
   restores LocalStack's conversion through botocore's service models. DROP IT when
   moto fixes #10076 (the deploy tests then pass without it).
3. Batch jobs: moto's simple backend marks every job SUCCEEDED without running anything.
   Here, when ``PSTFAST_MOTO_BATCH_RUNNER`` is set, the job's command (the state machine's
   ``ContainerOverrides.Command``) is run on this host as ``<runner> <command...>`` (the
   tests use ``batch/entrypoint.sh``, the image's entrypoint, with the pstfast of this
   checkout); exit 0 -> SUCCEEDED, else FAILED with that exit code, as Batch reports a
   container. ``PSTFAST_MOTO_BATCH_FAULTS`` names a JSON file ``{"<pst_file_id>": {"<stage>":
   N}}``: the first N attempts of that stage fail with exit 75 *without running* (an
   injected transient failure, the way a lost host or an S3 outage ends a job).
4. Retry waits: moto sleeps each retry's wait for real (20-300 s in pst_ingest_v2). Each
   wait is appended to ``PSTFAST_MOTO_RETRY_LOG`` (JSON lines: the state, the backoff
   interval before jitter, the jittered wait) and slept scaled by
   ``PSTFAST_MOTO_TIME_SCALE`` (default 1), so the tests check the backoff the
   interpreter computed without waiting minutes.
5. A retried callback-capable task gets a fresh task token per attempt (see
   ``_patch_task_token_per_attempt``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

_LOCK = threading.Lock()


def _configure() -> None:
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["batch"] = {"use_docker": False}
    # With execute_state_machine the Step Functions API serves the parser backend, but
    # moto's CloudFormation creates AWS::StepFunctions::StateMachine in the plain one: the
    # deployed state machines would not exist for StartExecution. One backend for both.
    from moto.stepfunctions import models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    models.stepfunctions_backends = stepfunctions_parser_backends  # type: ignore[assignment]


def _patch_moto_10076() -> None:
    """Restore the request/response conversion of moto's Step Functions service tasks."""
    import botocore.session
    from botocore import xform_name

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    session = botocore.session.get_session()
    models: dict[str, Any] = {}

    def operation(task: Any, boto_service_name: str | None, service_action_name: str | None) -> Any:
        service = task._get_boto_service_name(boto_service_name=boto_service_name)
        action = task._get_boto_service_action(service_action_name=service_action_name)
        model = models.get(service) or models.setdefault(service, session.get_service_model(service))
        for name in model.operation_names:
            if xform_name(name) == action:
                return model.operation_model(name)
        raise ValueError(f"no operation {action!r} in botocore's {service} model")

    def _normalise_parameters(self: Any, parameters: dict[str, Any], boto_service_name: str | None = None,
                              service_action_name: str | None = None) -> None:
        self._to_boto_request(parameters, operation(self, boto_service_name, service_action_name).input_shape)

    def _normalise_response(self: Any, response: Any, boto_service_name: str | None = None,
                            service_action_name: str | None = None) -> None:
        self._from_boto_response(response, operation(self, boto_service_name, service_action_name).output_shape)

    StateTaskService._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskService._normalise_response = _normalise_response  # type: ignore[method-assign]


def _patch_task_token_per_attempt() -> None:
    """A fresh task token for every attempt of a callback-capable task (Batch is one).

    moto makes the token once per state and interrupts its callback endpoint when an
    attempt ends; a retried ``batch:submitJob.sync`` then sees the interrupted endpoint as
    a callback timeout and fails with States.Timeout although its job succeeded. AWS gives
    each attempt its own token. (Found here with moto 5.2.6; drop when moto does the same.)
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition

    cls = state_task_service_callback.StateTaskServiceCallback
    original = cls._eval_integration_pattern

    def _eval_integration_pattern(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:
            data = env.states.context_object.context_object_data
            if "Task" in data:  # an endpoint exists already: give this attempt its own
                old = env.callback_pool_manager.get(data["Task"]["Token"])
                if old is not None and old._notify_event.is_set():
                    env.callback_pool_manager.add(env.states.context_object.update_task_token())
        original(self, env, *args, **kwargs)

    cls._eval_integration_pattern = _eval_integration_pattern  # type: ignore[method-assign]


def _job_command(job: Any) -> list[str]:
    overrides = job.container_overrides or {}
    command = overrides.get("command") or (job.job_definition.container_properties or {}).get("command") or []
    return [str(part) for part in command]


def _injected_fault(command: list[str]) -> bool:
    """True when this attempt is one of the first N of a stage named in the faults file."""
    path = os.environ.get("PSTFAST_MOTO_BATCH_FAULTS")
    if not path or command[:2] != ["pipeline", "stage"] or "--pst-file-id" not in command:
        return False
    stage, pst_file_id = command[2], command[command.index("--pst-file-id") + 1]
    with _LOCK:
        try:
            with open(path) as handle:
                faults = json.load(handle)
        except FileNotFoundError:
            return False
        left = int(faults.get(pst_file_id, {}).get(stage, 0))
        if left <= 0:
            return False
        faults[pst_file_id][stage] = left - 1
        with open(path, "w") as handle:
            json.dump(faults, handle)
    return True


def _patch_batch_runner() -> None:
    """Run each submitted job's command on this host (see the module docstring, 3)."""
    import datetime

    from moto.batch_simple.models import BatchSimpleBackend

    original = BatchSimpleBackend._mark_job_as_finished

    def _mark_job_as_finished(self: Any, include_start_attempt: bool, job: Any) -> None:
        runner = os.environ.get("PSTFAST_MOTO_BATCH_RUNNER")
        if not runner or not include_start_attempt:
            original(self, include_start_attempt, job)
            return
        self.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.datetime.now()
        job.log_stream_name = job._stream_name
        job._start_attempt()
        command = _job_command(job)
        if _injected_fault(command):
            job.exit_code = 75
            job.job_stopped_reason = "injected transient failure (exit 75, tests/moto_sfn_server.py)"
        else:
            env = dict(os.environ)
            for item in (job.job_definition.container_properties or {}).get("environment", []):
                # the job definition's environment, except what this host sets itself
                # (PSTFAST_SCRATCH: a host folder, not /scratch; PSTFAST_WORKERS: this host's cores)
                env.setdefault(item["name"], item["value"])
            for item in (job.container_overrides or {}).get("environment", []) or []:
                env[item["name"]] = item["value"]
            proc = subprocess.run([*runner.split(), *command], env=env, capture_output=True, text=True)
            job.exit_code = proc.returncode
            if proc.returncode:
                job.job_stopped_reason = f"Essential container in task exited (exit {proc.returncode})"
            log = os.environ.get("PSTFAST_MOTO_BATCH_OUTPUT")
            if log:
                with _LOCK, open(log, "a") as handle:
                    handle.write(json.dumps({"job": job.name, "command": command, "exit": proc.returncode,
                                             "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-4000:]}) + "\n")
        job._mark_stopped(success=job.exit_code == 0)

    BatchSimpleBackend._mark_job_as_finished = _mark_job_as_finished  # type: ignore[method-assign]


def _patch_retry_waits() -> None:
    """Log each retry wait and sleep it scaled (see the module docstring, 4)."""
    import time

    from moto.stepfunctions.parser.asl.component.common.retry import jitter_strategy_decl, retrier_decl

    scale = float(os.environ.get("PSTFAST_MOTO_TIME_SCALE", "1"))
    path = os.environ.get("PSTFAST_MOTO_RETRY_LOG")
    local = threading.local()

    original_jitter = jitter_strategy_decl.JitterStrategyDecl._eval_body

    def jitter_eval(self: Any, env: Any) -> None:
        local.interval = env.stack[-1]  # the backoff interval (capped by MaxDelaySeconds) before jitter
        local.strategy = str(self.jitter_strategy.name if hasattr(self.jitter_strategy, "name") else
                             self.jitter_strategy)
        original_jitter(self, env)

    jitter_strategy_decl.JitterStrategyDecl._eval_body = jitter_eval  # type: ignore[method-assign]

    original_retrier = retrier_decl.RetrierDecl._eval_body

    class _Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            if path:
                record = {"state": getattr(local, "state", None), "interval": getattr(local, "interval", None),
                          "jitter": getattr(local, "strategy", None), "wait": seconds}
                with _LOCK, open(path, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
            time.sleep(seconds * scale)

    def retrier_eval(self: Any, env: Any) -> None:
        local.state = None
        try:
            local.state = env.states.context_object.context_object_data["State"]["Name"]
        except (AttributeError, KeyError, TypeError):
            pass
        local.interval = None
        original_retrier(self, env)

    retrier_decl.RetrierDecl._eval_body = retrier_eval  # type: ignore[method-assign]
    retrier_decl.time = _Clock()  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    _configure()
    _patch_moto_10076()
    _patch_task_token_per_attempt()
    _patch_batch_runner()
    _patch_retry_waits()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
