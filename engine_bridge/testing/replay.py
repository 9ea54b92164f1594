"""Run a scenario in a sandbox, step by step, and replay recorded histories against BPMN files.

A ``Sandbox`` is a ``Bridge`` on a temporary SQLite file talking to an in-process ``FakeCenter``
on a ``FakeClock``: nothing leaves the process, time moves only when a ``tick`` step says so.
Running a scenario there gives a ``Recording``: for every step, the centre calls it planned and
the HTTP exchanges it caused. The pytest plugin, ``engine-bridge explain`` and
``engine-bridge replay`` are all built on it, so they agree with each other and with
``engine-bridge run`` by construction.

``replay`` takes a history exported by ``engine-bridge history export`` (a scenario whose
``expect`` steps hold what happened: status, next nodes, the centre calls) and runs it against
the given BPMN files. The answer is ``same`` or the FIRST step where things part: the calls
differ (field by field), or the step can no longer be done (its node is gone, its handler is
no longer allowed, a condition fails), or a recorded expectation no longer holds.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import EngineBridgeError, ScenarioError
from engine_bridge.facts import CenterCall
from engine_bridge.results import Instance, OpenTodo
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.golden import call_summary, calls_as_json, comparable, step_differences
from engine_bridge.testing.scenario import (
    Scenario,
    ScenarioStep,
    describe_step,
    load_scenario,
    run_scenario,
    validation_problems,
)
from engine_bridge.testing.transcript import TranscriptRecorder

__all__ = [
    "Divergence",
    "RecordedStep",
    "Recording",
    "ReplayResult",
    "Sandbox",
    "Transcript",
    "as_scenario",
    "describe_step",
    "record",
    "replay",
]

WorkflowPaths = str | Path | Sequence[str | Path]


@dataclass
class RecordedStep:
    """One step as the sandbox saw it. ``index`` 0 is the start, then the scenario's own step
    numbers (expect steps included, with no calls). ``calls`` are the planned centre calls as
    ``{"endpoint", "item"}``; ``transcript`` the HTTP exchanges the step caused."""

    index: int
    kind: str
    description: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Recording:
    """A scenario run in a sandbox. ``error`` is the error that stopped it (at step
    ``error_step``), or None when every step ran."""

    process: str
    steps: list[RecordedStep] = field(default_factory=list)
    instance_id: str | None = None
    finished: bool = False
    open: list[OpenTodo] = field(default_factory=list)
    error: EngineBridgeError | None = None
    error_step: int | None = None

    @property
    def transcript(self) -> list[dict[str, Any]]:
        return [e for s in self.steps for e in s.transcript]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [c for s in self.steps for c in s.calls]

    def step(self, index: int) -> RecordedStep | None:
        return next((s for s in self.steps if s.index == index), None)


class Transcript(list[dict[str, Any]]):
    """A transcript (one ``{"endpoint", "request", "response"}`` per centre call) that also
    keeps the ``Recording`` it came from."""

    def __init__(self, recording: Recording) -> None:
        super().__init__(recording.transcript)
        self.recording = recording


def as_scenario(scenario: Scenario | Mapping[str, Any] | str | Path) -> Scenario:
    """A scenario from a ``Scenario``, its JSON/YAML file, or the parsed document."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Mapping):
        try:
            return Scenario.model_validate(dict(scenario))
        except ValidationError as exc:
            raise ScenarioError(f"malformed scenario: {validation_problems(exc)}") from exc
    return load_scenario(scenario)


class _Watching:
    """The bridge as ``run_scenario`` sees it, noting the instance the start created."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self.instance_id: str | None = None

    def start(self, process_id: str, **kwargs: Any) -> Instance:
        inst = self._bridge.start(process_id, **kwargs)
        self.instance_id = inst.id
        return inst

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bridge, name)


class Sandbox:
    """A bridge on a temporary database with an in-process fake centre and a fake clock.

    ``clock`` and ``center`` may be given to share them (the pytest plugin passes its
    fixtures); ``database`` overrides the temporary SQLite file. Close it (or use ``with``).
    """

    def __init__(
        self,
        workflows: WorkflowPaths,
        *,
        clock: FakeClock | None = None,
        center: FakeCenter | None = None,
        database: str | None = None,
        app_id: str | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.center = center or FakeCenter(clock=self.clock)
        self.recorder = TranscriptRecorder()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if database is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="engine-bridge-sandbox-")
            database = f"sqlite:///{Path(self._tmp.name) / 'sandbox.db'}"
        try:
            self.bridge = Bridge.open(
                _paths(workflows),
                database=database,
                center=self.center.transport(),
                app_id=app_id or self.center.app_id,
                clock=self.clock,
                exchange_hook=self.recorder,
            )
        except BaseException:
            self._cleanup()
            raise
        if self._tmp is not None and self.bridge.relay is not None:
            self.bridge.relay.dead_letter_level = logging.DEBUG  # the verdicts say it
        self._mark = 0

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.bridge.close()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def capture(
        self, index: int, kind: str, description: str, action: Callable[[], Sequence[CenterCall]]
    ) -> RecordedStep:
        """Run ``action`` (which returns the calls it planned) and record it as one step."""
        calls = action()
        return self._recorded(index, kind, description, calls)

    def _recorded(
        self, index: int, kind: str, description: str, calls: Sequence[CenterCall]
    ) -> RecordedStep:
        exchanged = self.recorder.entries[self._mark :]
        self._mark = len(self.recorder.entries)
        return RecordedStep(
            index=index,
            kind=kind,
            description=description,
            calls=calls_as_json(calls),
            transcript=json.loads(json.dumps(exchanged, ensure_ascii=False)),
        )

    def run(
        self,
        scenario: Scenario | Mapping[str, Any] | str | Path,
        *,
        raise_errors: bool = True,
        on_step: Callable[[RecordedStep], None] | None = None,
    ) -> Recording:
        """Run the scenario step by step. With ``raise_errors`` a failing step (an ``expect``
        that does not hold, a todo that cannot be completed) raises; without it the error is
        kept in the returned ``Recording`` with the steps that ran before it."""
        spec = as_scenario(scenario)
        recording = Recording(process=spec.process)
        watching = _Watching(self.bridge)

        def step_done(rec: ScenarioStep) -> None:
            recorded = self._recorded(rec.index, rec.kind, rec.description, rec.calls)
            recording.steps.append(recorded)
            if on_step is not None:
                on_step(recorded)

        try:
            run_scenario(watching, spec, advance=self.clock.advance, on_step=step_done)
        except EngineBridgeError as exc:
            if raise_errors:
                raise
            recording.error = exc
            recording.error_step = recording.steps[-1].index + 1 if recording.steps else 0
        recording.instance_id = watching.instance_id
        if watching.instance_id is not None:
            recording.finished = self.bridge.instance(watching.instance_id).status != "running"
            recording.open = self.bridge.todos(watching.instance_id)
        return recording


def _paths(workflows: WorkflowPaths) -> list[Path]:
    if isinstance(workflows, str | Path):
        return [Path(workflows)]
    return [Path(p) for p in workflows]


def record(
    workflows: WorkflowPaths,
    scenario: Scenario | Mapping[str, Any] | str | Path,
    *,
    raise_errors: bool = True,
) -> Recording:
    """Run ``scenario`` in a fresh sandbox over ``workflows`` and return what it did."""
    with Sandbox(workflows) as sandbox:
        return sandbox.run(scenario, raise_errors=raise_errors)


# ---------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Divergence:
    """Where a replay first parted from the recorded history.

    ``kind``: ``calls`` (the step ran but sent different centre calls; ``details`` names each
    differing field), ``cannot_continue`` (the step can no longer be done; ``message`` says
    why) or ``expectation`` (a recorded expectation without calls no longer holds).
    """

    step: int
    action: str
    kind: Literal["calls", "cannot_continue", "expectation"]
    message: str
    details: tuple[str, ...] = ()
    recorded: tuple[str, ...] = ()
    replayed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplayResult:
    """The verdict for one history: ``same`` or its first ``divergence``."""

    source: str
    process: str
    steps_compared: int
    divergence: Divergence | None

    @property
    def same(self) -> bool:
        return self.divergence is None

    def lines(self) -> list[str]:
        """The verdict as text, first line ``SOURCE: same`` or ``SOURCE: DIVERGED at …``."""
        d = self.divergence
        if d is None:
            return [f"{self.source}: same ({self.steps_compared} steps compared)"]
        out = [f"{self.source}: DIVERGED at step {d.step} ({d.action}): {d.message}"]
        out.extend(f"    {line}" for line in d.details)
        if d.recorded or d.replayed:
            out.append(f"  recorded: {' | '.join(d.recorded) or 'no calls'}")
            out.append(f"  replay:   {' | '.join(d.replayed) or 'no calls'}")
        return out

    def to_json(self) -> dict[str, Any]:
        d = self.divergence
        return {
            "history": self.source,
            "process": self.process,
            "same": self.same,
            "steps_compared": self.steps_compared,
            "divergence": None
            if d is None
            else {
                "step": d.step,
                "action": d.action,
                "kind": d.kind,
                "message": d.message,
                "details": list(d.details),
                "recorded": list(d.recorded),
                "replay": list(d.replayed),
            },
        }


def replay(
    history: Scenario | Mapping[str, Any] | str | Path,
    workflows: WorkflowPaths,
    *,
    source: str | None = None,
) -> ReplayResult:
    """Replay a recorded history against ``workflows`` in a sandbox and compare step by step.

    Each action's calls are compared with the ``calls`` of the ``expect`` step that follows it
    in the history (normalised as golden files are); histories without recorded calls are
    compared by their ``status`` / ``next_nodes`` / ``finished`` expectations only.
    """
    name = source or (str(history) if isinstance(history, str | Path) else "history")
    spec = as_scenario(history)
    try:
        sandbox = Sandbox(workflows)
    except EngineBridgeError as exc:
        return ReplayResult(
            name,
            spec.process,
            0,
            Divergence(0, "loading the workflows", "cannot_continue", str(exc)),
        )
    with sandbox:
        recording = sandbox.run(spec, raise_errors=False)
    return _compare(name, spec, recording)


def _actions(spec: Scenario) -> list[tuple[int, str, list[dict[str, Any]] | None]]:
    """(step index, description, recorded calls or None) for the start and every action."""
    start = f"{spec.start.initiator} starts {spec.process}"
    found: list[tuple[int, str, list[dict[str, Any]] | None]] = [(0, start, None)]
    for i, step in enumerate(spec.steps, start=1):
        if step.expect is None:
            found.append((i, describe_step(step), None))
        elif step.expect.calls is not None and found[-1][2] is None:
            index, description, _ = found[-1]
            found[-1] = (index, description, step.expect.calls)
    return found


def _compare(name: str, spec: Scenario, recording: Recording) -> ReplayResult:
    so_far: list[dict[str, Any]] = []
    compared = 0
    for index, description, expected in _actions(spec):
        done = recording.step(index)
        if done is None:
            break
        so_far.extend(done.calls)
        compared += 1
        if expected is None:
            continue
        details = step_differences(expected, so_far, len(done.calls))
        if details:
            mine = comparable(so_far)[len(so_far) - len(done.calls) :]
            return ReplayResult(
                name,
                spec.process,
                compared,
                Divergence(
                    index,
                    description,
                    "calls",
                    "the centre calls differ",
                    tuple(details),
                    tuple(call_summary(c) for c in expected),
                    tuple(call_summary(c) for c in mine),
                ),
            )
    if recording.error is None:
        return ReplayResult(name, spec.process, compared, None)
    failed = recording.error_step or 0
    step = spec.steps[failed - 1] if failed > 0 else None
    if step is not None and step.expect is not None:
        action = _action_before(spec, failed)
        return ReplayResult(
            name,
            spec.process,
            compared,
            Divergence(
                action[0],
                action[1],
                "expectation",
                f"what it did no longer matches the history: {recording.error}",
            ),
        )
    description = describe_step(step) if step is not None else f"start {spec.process}"
    return ReplayResult(
        name,
        spec.process,
        compared,
        Divergence(
            failed,
            description,
            "cannot_continue",
            f"it can no longer be done: {recording.error}",
        ),
    )


def _action_before(spec: Scenario, index: int) -> tuple[int, str]:
    best = (0, f"{spec.start.initiator} starts {spec.process}")
    for i, description, _ in _actions(spec):
        if i < index:
            best = (i, description)
    return best
