"""A small Amazon States Language interpreter: runs ``pst_ingest_v2`` on one machine.

The local runner executes the very file Step Functions runs (``pst_ingest_v2.asl.yaml``),
so stage order, the command each stage runs, Retry (IntervalSeconds, BackoffRate,
MaxAttempts, MaxDelaySeconds, JitterStrategy) and Catch routing cannot drift between
the two engines. Supported: the JSONPath dialect's Task, Choice, Pass, Succeed and Fail
states; InputPath, Parameters, ResultSelector, ResultPath; Retry and Catch; the
intrinsics ``States.Format``, ``States.Array``, ``States.StringToJson`` and
``States.JsonToString``. Anything else raises :class:`AslError` rather than guessing.

Task resources are executed by *handlers* (resource ARN -> callable(parameters) ->
result); a handler signals failure by raising :class:`TaskFailed` with an error name.
``#{Name}`` placeholders (CloudFormation references on AWS) resolve from a mapping.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

DEFINITION_FILE = "pst_ingest_v2.asl.yaml"
ROUTER_FILE = "pst_ingest_router.asl.yaml"


class AslError(UsageError):
    """The definition uses something this interpreter does not support, or is malformed."""


class TaskFailed(Exception):
    """Raised by a task handler: the task failed with ASL error *error*."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


def load_definition(path: str | Path | None = None) -> dict[str, Any]:
    """The state machine definition (default: the packaged ``pst_ingest_v2``)."""
    if path is None:
        text = resources.files("pstfast.pipeline").joinpath(DEFINITION_FILE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    definition = yaml.safe_load(text)
    if not isinstance(definition, dict) or "States" not in definition or "StartAt" not in definition:
        raise AslError(f"{path or DEFINITION_FILE}: not a state machine definition")
    return definition


# --- retry policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrier:
    """One entry of a state's ``Retry`` list, with Step Functions' defaults."""

    errors: tuple[str, ...]
    interval: float = 1.0
    backoff: float = 2.0
    max_attempts: int = 3
    max_delay: float | None = None
    jitter: str = "NONE"

    @classmethod
    def from_asl(cls, spec: Mapping[str, Any]) -> Retrier:
        return cls(
            errors=tuple(spec["ErrorEquals"]),
            interval=float(spec.get("IntervalSeconds", 1)),
            backoff=float(spec.get("BackoffRate", 2.0)),
            max_attempts=int(spec.get("MaxAttempts", 3)),
            max_delay=float(spec["MaxDelaySeconds"]) if "MaxDelaySeconds" in spec else None,
            jitter=str(spec.get("JitterStrategy", "NONE")),
        )

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry *retry_number* (1-based), as Step Functions does."""
        delay = self.interval * self.backoff ** (retry_number - 1)
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        if self.jitter == "FULL":
            delay = (rng or random).uniform(0, delay)
        return delay


def error_matches(names: tuple[str, ...] | list[str], error: str) -> bool:
    """ASL error matching: ``States.ALL`` and ``States.TaskFailed`` are wildcards."""
    for name in names:
        if name == error:
            return True
        if name == "States.ALL" and error != "States.Runtime":
            return True
        if name == "States.TaskFailed" and error not in ("States.Timeout", "States.Runtime"):
            return True
    return False


# --- paths and intrinsics ------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\['([^']*)'\]")


def get_path(data: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    """The value at a reference path (``$``, ``$.a.b``, ``$[0]``, ``$$.Execution.Id``)."""
    if path.startswith("$$"):
        data, rest = (context or {}), path[2:]
    elif path.startswith("$"):
        rest = path[1:]
    else:
        raise AslError(f"not a path: {path!r}")
    pos = 0
    while pos < len(rest):
        m = _PATH_TOKEN.match(rest, pos)
        if not m:
            raise AslError(f"unsupported path syntax: {path!r}")
        key = m.group(1) or m.group(3)
        try:
            data = data[int(m.group(2))] if m.group(2) is not None else data[key]
        except (KeyError, IndexError, TypeError):
            raise TaskFailed("States.Runtime", f"path {path!r} not found in the input") from None
        pos = m.end()
    return data


def set_path(data: Any, path: str | None, value: Any) -> Any:
    """``ResultPath`` semantics: None discards *value*, ``$`` replaces, ``$.a.b`` merges."""
    if path is None:
        return data
    if path == "$":
        return value
    keys = [m.group(1) or m.group(3) for m in _PATH_TOKEN.finditer(path[1:])]
    if not path.startswith("$.") or not keys:
        raise AslError(f"unsupported ResultPath {path!r}")
    out = json.loads(json.dumps(data))  # ResultPath never mutates the state input
    node = out
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return out


def _split_args(text: str) -> list[str]:
    args, depth, quote, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    if text.strip():
        args.append(text[start:].strip())
    return args


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def evaluate(expr: str, data: Any, context: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a ``.$`` value: a path or an intrinsic function call."""
    expr = expr.strip()
    if expr.startswith("$"):
        return get_path(data, expr, context)
    m = re.fullmatch(r"(States\.[A-Za-z]+)\((.*)\)", expr, re.S)
    if not m:
        raise AslError(f"unsupported expression {expr!r}")
    name, raw_args = m.group(1), _split_args(m.group(2))
    args: list[Any] = []
    for raw in raw_args:
        if raw.startswith("'"):
            args.append(_unquote(raw))
        elif raw.startswith("$") or raw.startswith("States."):
            args.append(evaluate(raw, data, context))
        else:
            args.append(json.loads(raw))
    if name == "States.Format":
        template, values = args[0], args[1:]
        parts = template.split("{}")
        if len(parts) - 1 != len(values):
            raise TaskFailed("States.Runtime", f"{expr}: {len(values)} values for {len(parts) - 1} placeholders")
        text = parts[0]
        for value, part in zip(values, parts[1:], strict=True):
            text += (value if isinstance(value, str) else json.dumps(value)) + part
        return text
    if name == "States.Array":
        return args
    if name == "States.StringToJson":
        try:
            return json.loads(args[0])
        except (TypeError, ValueError) as exc:
            raise TaskFailed("States.Runtime", f"{expr}: {exc}") from None
    if name == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    raise AslError(f"intrinsic {name} is not supported by the local runner")


_PLACEHOLDER = re.compile(r"#\{([A-Za-z0-9:]+)\}")


def resolve(template: Any, data: Any, context: Mapping[str, Any], refs: Mapping[str, str]) -> Any:
    """A Parameters/ResultSelector template applied to *data*."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = evaluate(value, data, context)
            else:
                out[key] = resolve(value, data, context, refs)
        return out
    if isinstance(template, list):
        return [resolve(v, data, context, refs) for v in template]
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: refs.get(m.group(1), m.group(0)), template)
    return template


# --- the interpreter ----------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], Any]


@dataclass
class Event:
    """One step of an execution, for summaries, logs and tests."""

    state: str
    kind: str  # entered | succeeded | failed | retry | caught
    error: str | None = None
    cause: str | None = None
    attempt: int = 1
    delay: float | None = None
    seconds: float | None = None


@dataclass
class Execution:
    """The outcome of :func:`execute`."""

    status: str  # SUCCEEDED | FAILED
    output: Any
    error: str | None = None
    cause: str | None = None
    events: list[Event] = field(default_factory=list)

    def retries(self, state: str | None = None) -> int:
        return sum(1 for e in self.events if e.kind == "retry" and (state is None or e.state == state))


def _rule_matches(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_rule_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(_rule_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not _rule_matches(rule["Not"], data, context)
    try:
        value = get_path(data, rule["Variable"], context)
    except TaskFailed:
        if "IsPresent" in rule:
            return rule["IsPresent"] is False
        raise
    for op, want in rule.items():
        if op in ("Variable", "Next"):
            continue
        if op == "StringEquals":
            return isinstance(value, str) and value == want
        if op == "BooleanEquals":
            return isinstance(value, bool) and value == want
        if op == "NumericEquals":
            return isinstance(value, (int, float)) and value == want
        if op == "IsPresent":
            return bool(want)
        raise AslError(f"Choice operator {op} is not supported by the local runner")
    raise AslError(f"Choice rule without an operator: {rule}")


def execute(
    definition: Mapping[str, Any],
    input: Any,
    handlers: Mapping[str, Handler],
    *,
    refs: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_event: Callable[[Event], None] | None = None,
    name: str = "local",
) -> Execution:
    """Run *definition* on *input*; task resources go to *handlers*; waits use *sleep*."""
    refs = refs or {}
    context = {"Execution": {"Id": f"local:{name}", "Name": name, "Input": input}}
    states = definition["States"]
    events: list[Event] = []

    def emit(event: Event) -> None:
        events.append(event)
        if on_event is not None:
            on_event(event)

    data = input
    current = definition["StartAt"]
    while True:
        state = states.get(current)
        if state is None:
            raise AslError(f"state {current!r} does not exist")
        if state.get("QueryLanguage", definition.get("QueryLanguage", "JSONPath")) != "JSONPath":
            raise AslError(f"{current}: only the JSONPath query language is supported")
        kind = state["Type"]
        emit(Event(current, "entered"))
        if kind == "Succeed":
            return Execution("SUCCEEDED", data, events=events)
        if kind == "Fail":
            return Execution("FAILED", data, state.get("Error"), state.get("Cause"), events)
        if kind == "Choice":
            nxt = state.get("Default")
            for rule in state["Choices"]:
                if _rule_matches(rule, data, context):
                    nxt = rule["Next"]
                    break
            if nxt is None:
                return Execution("FAILED", data, "States.NoChoiceMatched", current, events)
            current = nxt
            continue
        effective = get_path(data, state["InputPath"], context) if state.get("InputPath") else data
        if kind == "Pass":
            if "Parameters" in state:
                result = resolve(state["Parameters"], effective, context, refs)
            else:
                result = state.get("Result", effective)
            data = set_path(data, state.get("ResultPath", "$"), result)
        elif kind == "Task":
            outcome = _run_task(current, state, effective, context, handlers, refs, sleep, rng, emit)
            if isinstance(outcome, TaskFailed):
                catchers = state.get("Catch", [])
                catcher = next((c for c in catchers if error_matches(c["ErrorEquals"], outcome.error)), None)
                if catcher is None:
                    return Execution("FAILED", data, outcome.error, outcome.cause, events)
                emit(Event(current, "caught", outcome.error, outcome.cause))
                data = set_path(data, catcher.get("ResultPath", "$"), {"Error": outcome.error, "Cause": outcome.cause})
                current = catcher["Next"]
                continue
            result = outcome
            if "ResultSelector" in state:
                result = resolve(state["ResultSelector"], result, context, refs)
            data = set_path(data, state.get("ResultPath", "$"), result)
        else:
            raise AslError(f"{current}: state type {kind} is not supported by the local runner")
        if state.get("End"):
            return Execution("SUCCEEDED", data, events=events)
        current = state["Next"]


def _run_task(
    name: str,
    state: Mapping[str, Any],
    effective: Any,
    context: Mapping[str, Any],
    handlers: Mapping[str, Handler],
    refs: Mapping[str, str],
    sleep: Callable[[float], None],
    rng: random.Random | None,
    emit: Callable[[Event], None],
) -> Any:
    resource = state["Resource"]
    handler = handlers.get(resource)
    if handler is None:
        raise AslError(f"{name}: no local handler for {resource}")
    retriers = [Retrier.from_asl(r) for r in state.get("Retry", [])]
    used = [0] * len(retriers)  # each retrier counts its own attempts, as on AWS
    attempt = 0
    while True:
        attempt += 1
        t0 = time.perf_counter()
        try:
            params = resolve(state["Parameters"], effective, context, refs) if "Parameters" in state else effective
            result = handler(params)
        except TaskFailed as failure:
            emit(Event(name, "failed", failure.error, failure.cause, attempt, seconds=time.perf_counter() - t0))
            index = next((i for i, r in enumerate(retriers) if error_matches(r.errors, failure.error)), None)
            if index is None or used[index] >= retriers[index].max_attempts:
                return failure
            used[index] += 1
            delay = retriers[index].delay(used[index], rng)
            emit(Event(name, "retry", failure.error, failure.cause, attempt, delay=delay))
            sleep(delay)
            continue
        emit(Event(name, "succeeded", attempt=attempt, seconds=time.perf_counter() - t0))
        return result
