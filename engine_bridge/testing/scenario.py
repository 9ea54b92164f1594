"""Scenario files: a process path written as data, run against a bridge, checked as it goes.

A scenario names the process, how it starts and a list of steps (``complete``, ``expect``,
``tick``, ``message``, ``cancel``). Steps name nodes, not task ids, so the same file works for
every run. JSON and YAML are accepted. A failed ``expect`` raises ``ScenarioError`` naming the
step and saying what was expected and what happened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine_bridge.errors import ScenarioError
from engine_bridge.facts import CenterCall
from engine_bridge.loader.syntax import load_yaml, syntax_error
from engine_bridge.results import Outcome
from engine_bridge.testing.golden import calls_as_json, step_differences

__all__ = [
    "ENDED",
    "SCENARIO_SUFFIXES",
    "YAML_SUFFIXES",
    "Scenario",
    "ScenarioRun",
    "ScenarioStep",
    "describe_step",
    "load_scenario",
    "parse_duration",
    "run_scenario",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartSpec(_Strict):
    initiator: str
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None
    initiator_name: str = ""


class CompleteSpec(_Strict):
    node: str
    handler: str
    data: dict[str, Any] = Field(default_factory=dict)
    opinion: str = ""
    #: Which of several todos open at ``node`` (1-based, in the order they opened).
    which: int | None = Field(default=None, ge=1)


class OpenSpec(_Strict):
    node: str
    handlers: list[str] | None = None


class ExpectSpec(_Strict):
    status: Literal["next", "none", "end"] | None = None
    next_nodes: list[str] | None = None
    open: list[OpenSpec] | None = None
    finished: bool | None = None
    # The centre calls the latest action (the start, if none yet) planned, as
    # ``{"endpoint", "item"}`` in golden form (ids numbered over the run, times blanked).
    # ``engine-bridge history export`` writes them so a replay can compare call by call.
    calls: list[dict[str, Any]] | None = None


class TickSpec(_Strict):
    advance: str = "PT0S"
    # False: the clock moves and nothing else happens, as between two requests to a service
    # whose worker has not ticked yet; timers that fell due fire with the next action.
    fire: bool = True

    @field_validator("advance")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        """A malformed duration makes the file malformed: found on loading, with its step."""
        try:
            parse_duration(value)
        except ScenarioError as exc:
            raise ValueError(str(exc)) from None
        return value


class MessageSpec(_Strict):
    name: str
    data: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None


class CancelSpec(_Strict):
    by: str
    opinion: str = ""


class Step(_Strict):
    complete: CompleteSpec | None = None
    expect: ExpectSpec | None = None
    tick: TickSpec | None = None
    message: MessageSpec | None = None
    cancel: CancelSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in _STEP_KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"each step must have exactly one of {', '.join(_STEP_KINDS)}; "
                f"got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _STEP_KINDS if getattr(self, k))


_STEP_KINDS = ("complete", "expect", "tick", "message", "cancel")
#: Scenario files are YAML by these suffixes (in any case), JSON otherwise.
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
SCENARIO_SUFFIXES = frozenset({".json", *YAML_SUFFIXES})


class Scenario(_Strict):
    process: str
    start: StartSpec
    steps: list[Step] = Field(default_factory=list)
    description: str = ""


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (JSON, or YAML by extension), with errors naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is no content
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read scenario: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: cannot read scenario: it is not UTF-8 text ({exc})") from exc
    is_yaml = p.suffix.lower() in YAML_SUFFIXES
    try:
        raw = _as_json(load_yaml(text)) if is_yaml else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        line, reason = syntax_error(exc)
        where = f"{p}:{line}" if line is not None else str(p)
        kind = "YAML" if is_yaml else "JSON"
        raise ScenarioError(f"{where}: not valid {kind}: {reason}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(
            f"{p}: malformed scenario: the file must hold one object "
            '({"process": ..., "start": ..., "steps": [...]}), '
            f"not {'a list' if isinstance(raw, list) else type(raw).__name__}"
        )
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(f"{p}: malformed scenario: {validation_problems(exc)}") from exc


def validation_problems(exc: ValidationError) -> str:
    """What is wrong with a scenario document, each problem where it is: a step by its number
    as runs report it (``step 1: tick.advance: …``; the start is step 0), other fields by their
    path (``start.initiator: …``)."""
    problems = []
    for error in exc.errors():
        loc = [str(x) for x in error["loc"]]
        where = ".".join(loc)
        if len(loc) >= 2 and loc[0] == "steps" and loc[1].isdigit():
            field_path = ".".join(loc[2:])
            where = f"step {int(loc[1]) + 1}" + (f": {field_path}" if field_path else "")
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where or 'the scenario'}: {message}")
    return "; ".join(problems)


def _as_json(value: Any) -> Any:
    """YAML's implicit dates (``date: 2026-12-10`` unquoted) as the ISO text a JSON scenario
    would hold: scenario data is JSON, and a date object is not."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    return value


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """ISO 8601 durations with days, hours, minutes, seconds (``PT48H``, ``P2DT3H``)."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in {"P", "PT"}:
        raise ScenarioError(f"not an ISO 8601 duration: {text!r} (write e.g. PT48H or P2D)")
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    try:
        return timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    except OverflowError:
        raise ScenarioError(f"duration too long: {text!r} (at most 999999999 days)") from None


@dataclass
class ScenarioStep:
    """What one scenario step did (for timelines and reports)."""

    index: int
    kind: str
    description: str
    outcomes: list[Outcome] = field(default_factory=list)
    calls: list[CenterCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.calls:
            self.calls = [c for o in self.outcomes for c in o.calls]


#: Instance statuses that mean the process is over: it finished, or the business cancelled it.
#: An instance stopped at a failed service task (``incident``) is not: it waits for a retry.
ENDED = frozenset({"finished", "cancelled"})


@dataclass
class ScenarioRun:
    instance_id: str
    steps: list[ScenarioStep]
    finished: bool
    status: str = ""  # the instance's status at the end: running, finished, cancelled, incident


def describe_step(step: Step) -> str:
    """What a scenario step does, in the words of the records ``run_scenario`` keeps."""
    if step.complete is not None:
        return f"{step.complete.handler} completes {step.complete.node}"
    if step.tick is not None:
        timers = "" if step.tick.fire else ", no tick yet"
        return f"time passes ({step.tick.advance}{timers})"
    if step.message is not None:
        return f"message {step.message.name} arrives"
    if step.cancel is not None:
        return f"{step.cancel.by} cancels the instance"
    return "expectations hold"


def run_scenario(
    bridge: Any,
    scenario: Scenario,
    *,
    advance: Callable[[timedelta], object] | None = None,
    on_step: Callable[[ScenarioStep], None] | None = None,
) -> ScenarioRun:
    """Run ``scenario`` on ``bridge`` (a ``Bridge``). ``advance`` moves the bridge's clock for
    ``tick`` steps (``FakeClock.advance``); without it a tick fires what is already due."""
    inst = bridge.start(
        scenario.process,
        initiator=scenario.start.initiator,
        data=scenario.start.data,
        key=scenario.start.key,
        initiator_name=scenario.start.initiator_name,
    )
    records: list[ScenarioStep] = []
    first = ScenarioStep(0, "start", f"{scenario.start.initiator} starts {scenario.process}")
    first.calls = list(inst.calls)
    records.append(first)
    if on_step:
        on_step(first)
    last: list[Outcome] = []
    for i, step in enumerate(scenario.steps, start=1):
        if step.complete is not None:
            c = step.complete
            task_id = _find_task(bridge, inst.id, c.node, c.handler, i, c.which)
            outcome = bridge.complete(task_id, handler=c.handler, data=c.data, opinion=c.opinion)
            last = [outcome]
            rec = ScenarioStep(i, "complete", describe_step(step), last)
        elif step.tick is not None:
            delta = parse_duration(step.tick.advance)
            if advance is not None:
                try:
                    advance(delta)
                except OverflowError:
                    raise ScenarioError(
                        f"step {i}: time cannot pass by {step.tick.advance}: the clock would go "
                        "beyond the year 9999"
                    ) from None
            last = bridge.tick() if step.tick.fire else []
            rec = ScenarioStep(i, "tick", describe_step(step), last)
        elif step.message is not None:
            m = step.message
            outcome = bridge.message(inst.id, m.name, data=m.data, key=m.key)
            last = [outcome]
            rec = ScenarioStep(i, "message", describe_step(step), last)
        elif step.cancel is not None:
            outcome = bridge.cancel(inst.id, by=step.cancel.by, opinion=step.cancel.opinion)
            last = [outcome]
            rec = ScenarioStep(i, "cancel", describe_step(step), last)
        else:
            assert step.expect is not None
            _check(bridge, inst.id, step.expect, last, i)
            if step.expect.calls is not None:
                _check_calls(step.expect.calls, records, i)
            rec = ScenarioStep(i, "expect", describe_step(step), [])
        records.append(rec)
        if on_step:
            on_step(rec)
    status = bridge.instance(inst.id).status
    return ScenarioRun(instance_id=inst.id, steps=records, finished=status in ENDED, status=status)


def _find_task(
    bridge: Any, instance_id: str, node: str, handler: str, index: int, which: int | None = None
) -> str:
    todos = [t for t in bridge.todos(instance_id) if t.node_id == node]
    if not todos:
        open_nodes = sorted({t.node_id for t in bridge.todos(instance_id)}) or ["nothing"]
        raise ScenarioError(
            f"step {index}: no open todo at node {node!r}; open: {', '.join(open_nodes)}"
        )
    if which is not None:
        if which > len(todos):
            raise ScenarioError(
                f"step {index}: todo {which} at node {node!r} was asked for; "
                f"{len(todos)} are open there"
            )
        return str(todos[which - 1].task_id)
    for t in todos:
        if handler in t.handlers or not t.handlers:
            return str(t.task_id)
    return str(todos[0].task_id)  # the bridge reports the handler mismatch itself


def _check(bridge: Any, instance_id: str, exp: ExpectSpec, last: list[Outcome], i: int) -> None:
    def fail(what: str) -> None:
        raise ScenarioError(f"step {i} (expect): {what}")

    if exp.status is not None:
        got = last[-1].status if last else None
        if got != exp.status:
            fail(f"status: expected {exp.status!r}, got {got!r}")
    if exp.next_nodes is not None:
        got_nodes = sorted(n for o in last for n in o.next_nodes)
        if got_nodes != sorted(exp.next_nodes):
            fail(f"next_nodes: expected {sorted(exp.next_nodes)}, got {got_nodes}")
    if exp.open is not None:
        todos = bridge.todos(instance_id)
        got_open = sorted((t.node_id, sorted(t.handlers)) for t in todos)
        want_nodes = sorted(o.node for o in exp.open)
        if sorted(n for n, _ in got_open) != want_nodes:
            fail(f"open: expected nodes {want_nodes}, got {[n for n, _ in got_open]}")
        for o in exp.open:
            if o.handlers is None:
                continue
            match = [h for n, h in got_open if n == o.node]
            if sorted(o.handlers) not in match:
                got_handlers = match[0] if len(match) == 1 else match
                fail(f"open: {o.node} handlers expected {sorted(o.handlers)}, got {got_handlers}")
    if exp.finished is not None:
        status = bridge.instance(instance_id).status
        if (status in ENDED) != exp.finished:
            ended = status in ENDED
            fail(f"finished: expected {exp.finished}, got {ended} (the instance is {status})")


def _check_calls(expected: list[dict[str, Any]], records: list[ScenarioStep], i: int) -> None:
    """The latest action's calls equal the recorded ones (ids numbered over the whole run)."""
    action = next(r for r in reversed(records) if r.kind != "expect")
    so_far = calls_as_json(c for r in records for c in r.calls)
    differences = step_differences(expected, so_far, len(action.calls), labels=("expected", "got"))
    if differences:
        raise ScenarioError(
            f"step {i} (expect): calls of step {action.index} ({action.description}) differ: "
            + "; ".join(differences)
        )
