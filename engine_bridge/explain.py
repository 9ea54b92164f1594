"""Explain a path through a process: the centre calls it would produce, step by step.

Nothing is sent anywhere: the path runs in a sandbox (in-process fake centre, temporary
database, fake clock), so what is shown is exactly what ``engine-bridge run`` would send for the
same steps, including the fake centre's verdict on each call.

The path is a scenario when one is given. Otherwise it is the *default path*: start with the
given data, then again and again complete the first open todo as its first handler (a member
of its handling group when it has no handlers) with no data, until the process ends. When a
gateway condition or an expression needs data the path does not have, explain stops there and
says so; a scenario gives that data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine_bridge.errors import EngineBridgeError, ScenarioError, UnknownProcessError
from engine_bridge.results import Instance
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.golden import comparable
from engine_bridge.testing.replay import RecordedStep, Sandbox, WorkflowPaths, as_scenario
from engine_bridge.testing.scenario import ENDED, Scenario

__all__ = [
    "DEFAULT_INITIATOR",
    "ExplainedCall",
    "ExplainedStep",
    "Explanation",
    "explain",
    "render_text",
]

DEFAULT_INITIATOR = "initiator"
_PREFIX = "/apis/ttc/v1/transaction/poa/"


@dataclass(frozen=True)
class ExplainedCall:
    """One centre call (one element of an array body): ``item`` in golden form (ids ``T1``…,
    times blanked); ``verdict`` is ``accepted`` or ``rejected: CODE message`` (fake centre)."""

    endpoint: str
    item: dict[str, Any]
    verdict: str = "accepted"

    @property
    def path(self) -> str:
        return _PREFIX + self.endpoint


@dataclass(frozen=True)
class ExplainedStep:
    index: int
    action: str  # start | complete | tick | message | cancel
    description: str
    calls: tuple[ExplainedCall, ...]


@dataclass(frozen=True)
class Explanation:
    """What a path does. ``stopped`` says why it ended early (None when it ran through);
    ``open`` lists the todos still open at the end as ``(node, handlers)``."""

    process: str
    path: str
    steps: tuple[ExplainedStep, ...]
    finished: bool
    open: tuple[tuple[str, tuple[str, ...]], ...] = ()
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "path": self.path,
            "finished": self.finished,
            "stopped": self.stopped,
            "open": [{"node": n, "handlers": list(h)} for n, h in self.open],
            "steps": [
                {
                    "step": s.index,
                    "action": s.action,
                    "description": s.description,
                    "calls": [
                        {
                            "endpoint": c.endpoint,
                            "path": c.path,
                            "verdict": c.verdict,
                            "item": c.item,
                        }
                        for c in s.calls
                    ],
                }
                for s in self.steps
            ],
        }


def explain(
    workflows: WorkflowPaths,
    process_id: str | None = None,
    *,
    scenario: Scenario | Mapping[str, Any] | str | Path | None = None,
    data: Mapping[str, Any] | None = None,
    initiator: str = DEFAULT_INITIATOR,
    max_steps: int = 50,
    center: FakeCenter | None = None,
    app_id: str | None = None,
) -> Explanation:
    """Explain ``scenario``, or the default path of ``process_id`` started with ``data``.
    Without either, the default path of the only executable process in ``workflows``
    (``ScenarioError``, listing them, when there are several).

    ``center`` is the fake centre to explain against (a fresh ``FakeCenter`` by default); one
    configured like the real centre (its faults; its registered ``app_id``, which the sandbox
    then sends under unless ``app_id`` names another) shows what it would refuse."""
    spec = as_scenario(scenario) if scenario is not None else None
    if spec is not None and process_id is not None and spec.process != process_id:
        raise ScenarioError(
            f"the scenario runs process {spec.process!r}, not {process_id!r}; "
            "drop --process or pick the matching scenario"
        )
    with Sandbox(workflows, center=center, app_id=app_id) as sandbox:
        if spec is None and process_id is None:
            process_id = _only_process(sandbox.bridge.library.process_ids())
        if spec is not None:
            recording = sandbox.run(spec, raise_errors=False)
            steps = recording.steps
            stopped = (
                None
                if recording.error is None
                else f"stopped at step {recording.error_step}: {recording.error}"
            )
            instance_id = recording.instance_id
            label = "scenario"
        else:
            assert process_id is not None
            steps, stopped, instance_id = _default_path(
                sandbox, process_id, dict(data or {}), initiator, max_steps
            )
            label = "default"
        finished = False
        still_open: tuple[tuple[str, tuple[str, ...]], ...] = ()
        if instance_id is not None:
            status = sandbox.bridge.instance(instance_id).status
            finished = status in ENDED
            if status == "incident" and stopped is None:
                stopped = _incident_stop(sandbox, instance_id)
            still_open = tuple((t.node_id, t.handlers) for t in sandbox.bridge.todos(instance_id))
    return Explanation(
        process=spec.process if spec is not None else str(process_id),
        path=label,
        steps=_explained([s for s in steps if s.kind != "expect"]),
        finished=finished,
        open=still_open,
        stopped=stopped,
    )


def _only_process(process_ids: list[str]) -> str:
    """The process to explain when none is named: the one executable process there is."""
    if len(process_ids) == 1:
        return process_ids[0]
    if not process_ids:
        raise ScenarioError("the files hold no executable process to explain")
    raise ScenarioError(
        f"the files hold {len(process_ids)} executable processes ({', '.join(process_ids)}): "
        "name one with --process ID, or give a --scenario"
    )


def _incident_stop(sandbox: Sandbox, instance_id: str) -> str:
    """Why the path stopped when the instance waits at a failed service task."""
    found = sandbox.bridge.incidents(instance_id=instance_id, status="open")
    where = (
        f"service task {found[0].node_id!r} (service {found[0].service_key!r}) failed: "
        f"{found[0].error}"
        if found
        else "a service task failed"
    )
    return (
        f"the instance stopped at an incident: {where}. Register a handler for the service "
        "(Bridge.open(services=...)) to go past it."
    )


def _default_path(
    sandbox: Sandbox, process_id: str, data: dict[str, Any], initiator: str, max_steps: int
) -> tuple[list[RecordedStep], str | None, str | None]:
    bridge = sandbox.bridge
    steps: list[RecordedStep] = []
    started: list[Instance] = []

    def start() -> Any:
        started.append(bridge.start(process_id, initiator=initiator, data=data))
        return started[0].calls

    try:
        steps.append(sandbox.capture(0, "start", f"{initiator} starts {process_id}", start))
    except UnknownProcessError as exc:
        return steps, f"the start failed: {exc}", None  # no data would help
    except EngineBridgeError as exc:
        return steps, f"the start failed: {exc}\n{_START_HINT}", None
    instance_id = started[0].id
    for n in range(1, max_steps + 1):
        if bridge.instance(instance_id).status != "running":
            return steps, None, instance_id
        todos = bridge.todos(instance_id)
        if not todos:
            return steps, _WAITING, instance_id
        todo = todos[0]
        if todo.handlers:
            handler = todo.handlers[0]
        elif todo.handling_groups:
            handler = f"member:{todo.handling_groups[0]}"
        else:
            handler = initiator
        description = f"{handler} completes {todo.node_id}"
        try:
            steps.append(
                sandbox.capture(
                    n,
                    "complete",
                    description,
                    lambda: bridge.complete(todo.task_id, handler=handler).calls,  # noqa: B023
                )
            )
        except EngineBridgeError as exc:
            return (
                steps,
                f"step {n} ({description}) cannot run with no data: {exc}\n"
                + _DATA_HINT.format(node=todo.node_id),
                instance_id,
            )
    if bridge.instance(instance_id).status != "running":
        return steps, None, instance_id
    looping = (
        f"stopped after {max_steps} completions: the default path may loop. Write a scenario "
        "for the path you mean and pass it with --scenario S.json."
    )
    return steps, looping, instance_id


_START_HINT = (
    "Give the start data the process needs with --data '{\"var\": ...}', or describe the whole "
    "path in a scenario and pass it with --scenario S.json."
)
_DATA_HINT = (
    "The default path completes every todo with no data, and a condition or expression here "
    "needs some. Write a scenario that completes {node} with the data it needs and pass it "
    "with --scenario S.json."
)
_WAITING = (
    "the process now waits with no open todo (for a timer or a message); the default path "
    "does not let time pass or send messages. Write a scenario with a tick or message step and "
    "pass it with --scenario."
)


def _explained(steps: Sequence[RecordedStep]) -> tuple[ExplainedStep, ...]:
    """Number ids over the whole path (golden form) and attach the fake centre's verdicts."""
    normalized = comparable([c for s in steps for c in s.calls])
    verdicts = _verdicts([e for s in steps for e in s.transcript])
    out: list[ExplainedStep] = []
    at = 0
    for step in steps:
        calls = []
        for raw in step.calls:
            verdict = verdicts.get(_key(raw["endpoint"], raw["item"]), _UNSENT)
            calls.append(ExplainedCall(raw["endpoint"], normalized[at]["item"], verdict))
            at += 1
        out.append(ExplainedStep(step.index, step.kind, step.description, tuple(calls)))
    return tuple(out)


_UNSENT = "not delivered: an earlier call of the instance was refused, so it waits in the outbox"


def _key(endpoint: str, item: Mapping[str, Any]) -> tuple[str, str, str]:
    todo = str(item.get("previousTaskId") or item.get("taskId") or "")
    return endpoint, todo, str(item.get("handler") or item.get("creator") or "")


def _verdicts(transcript: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """What the centre answered for each call item, by the last exchange that carried it."""
    found: dict[tuple[str, str, str], str] = {}
    for entry in transcript:
        endpoint = str(entry.get("endpoint", "")).removeprefix(_PREFIX)
        response = entry.get("response")
        data = response.get("data") if isinstance(response, Mapping) else None
        errors = data.get("errorIds") if isinstance(data, Mapping) else None
        refused = {
            str(e.get("taskId", "")): f"rejected: {e.get('code')} {e.get('message')}"
            for e in errors or []
            if isinstance(e, Mapping)
        }
        request = entry.get("request")
        for item in request if isinstance(request, list) else []:
            if isinstance(item, Mapping):
                key = _key(endpoint, item)
                found[key] = refused.get(key[1], "accepted")
    return found


# ---------------------------------------------------------------------- text


def render_text(explanation: Explanation) -> str:
    """The explanation for people: one block per step, one line per call."""
    e = explanation
    if e.path == "default":
        how = (
            "default path: start with the given data, then complete the first open todo as "
            "its first handler with no data, until the end"
        )
    else:
        how = "the scenario's steps"
    lines = [f"{e.process}: {how}. Nothing is sent: the calls go to an in-process fake centre.", ""]
    for step in e.steps:
        lines.append(f"step {step.index}: {step.description}")
        if not step.calls:
            lines.append("    (no centre call)")
        for call in step.calls:
            lines.extend("    " + line for line in _call_lines(call))
    lines.append("")
    total = sum(len(s.calls) for s in e.steps)
    if e.stopped:
        lines.append(f"STOPPED: {e.stopped}")
    elif e.finished:
        lines.append(f"The process ends; nothing is left open at the centre. {total} centre calls.")
    else:
        lines.append(f"The process is still running. {total} centre calls.")
    if e.open:
        shown = ", ".join(f"{n} ({', '.join(h) or 'group'})" for n, h in e.open)
        lines.append(f"Open at the centre: {shown}")
    return "\n".join(lines) + "\n"


def _call_lines(call: ExplainedCall) -> list[str]:
    item = call.item
    verdict = "" if call.verdict == "accepted" else f"  !! {call.verdict}"
    if call.endpoint == "addTransaction":
        link = (
            f"linked after {item['previousTaskId']}"
            if item.get("previousTaskId")
            else "first todo of the transaction"
        )
        return [f"addTransaction  create {_todo(item)}  ({link}){verdict}"]
    if call.endpoint in {"taskHandle", "taskWithdraw"}:
        who = item.get("handler") or item.get("creator") or "?"
        todo = item.get("previousTaskId") or item.get("taskId") or "?"
        verb = "handles" if call.endpoint == "taskHandle" else "withdraws"
        head = f"{call.endpoint}  status={item.get('status')}  {who} {verb} {todo}{verdict}"
        nxt = [n for n in item.get("next") or [] if isinstance(n, Mapping)]
        return [head] + [f"    next: {_todo(n)}" for n in nxt]
    if call.endpoint == "taskTerminate":
        who = item.get("creator") or item.get("handler") or "?"
        return [f"taskTerminate  {who} terminates the transaction of {item.get('taskId')}{verdict}"]
    return [f"{call.endpoint}  {item}{verdict}"]


def _todo(item: Mapping[str, Any]) -> str:
    who = item.get("handlers") or ""
    group = item.get("handlingGroup")
    if group:
        who = f"{who} + group {group}" if who else f"group {group}"
    title = item.get("taskName")
    # The title the centre shows, when the node's name is not all of it (a taskName template)
    shown = f' "{title}"' if title and title != item.get("nodeName") else ""
    return f"{item.get('taskId')} {item.get('nodeId')} {item.get('nodeName', '')}{shown} → {who}"
