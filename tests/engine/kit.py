"""Test kit for the engine: BPMN written inline, a LoadedProcess built the way the loader
builds it, and a runner that stores and restores the instance between every step."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.spiff.parser import SpiffBpmnParser

from engine_bridge.clock import FakeClock
from engine_bridge.engine import Engine, definition_json, dump_state, load_state
from engine_bridge.facts import StepFacts, Todo
from engine_bridge.loader.event_subprocesses import prepare_event_subprocesses
from engine_bridge.loader.model import LoadedProcess, NodeSettings, ProcessSettings

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'targetNamespace="http://example.org/engine-tests"'
)


def definitions(*processes: str) -> str:
    body = "".join(processes)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions {NS}>{body}</bpmn:definitions>'
    )


def process(process_id: str, body: str, name: str = "") -> str:
    label = f' name="{name or process_id}"'
    return f'<bpmn:process id="{process_id}"{label} isExecutable="true">{body}</bpmn:process>'


def flow(src: str, dst: str, condition: str | None = None, flow_id: str | None = None) -> str:
    fid = flow_id or f"f_{src}_{dst}"
    if condition is None:
        return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{src}" targetRef="{dst}"/>'
    return (
        f'<bpmn:sequenceFlow id="{fid}" sourceRef="{src}" targetRef="{dst}">'
        f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>"
    )


def props(**values: str) -> str:
    items = "".join(f'<spiffworkflow:property name="{k}" value="{v}"/>' for k, v in values.items())
    return (
        "<bpmn:extensionElements><spiffworkflow:properties>"
        f"{items}</spiffworkflow:properties></bpmn:extensionElements>"
    )


def user(
    task_id: str, handlers: str | None = None, *, name: str = "", inner: str = "", **more: str
) -> str:
    values = dict(more)
    if handlers is not None:
        values["handlers"] = handlers
    ext = props(**values) if values else ""
    return f'<bpmn:userTask id="{task_id}" name="{name or task_id}">{ext}{inner}</bpmn:userTask>'


def chain(*ids: str) -> str:
    return "".join(flow(a, b) for a, b in itertools.pairwise(ids))


START = '<bpmn:startEvent id="start"/>'
END = '<bpmn:endEvent id="end"/>'


def load(
    xml: str | list[str],
    process_id: str,
    *,
    settings: ProcessSettings | None = None,
    overrides: dict[str, NodeSettings] | None = None,
) -> LoadedProcess:
    """Parse like the loader does and read node settings from spiffworkflow:properties."""
    texts = [xml] if isinstance(xml, str) else xml
    parser = SpiffBpmnParser()
    for text in texts:
        parser.add_bpmn_str(text.encode("utf-8"))
    spec = parser.get_spec(process_id)
    subprocess_specs = parser.get_subprocess_specs(process_id)
    prepare_event_subprocesses(parser, [spec, *subprocess_specs.values()])
    nodes: dict[str, NodeSettings] = {}
    for owner in [spec, *subprocess_specs.values()]:
        for task_spec in owner.task_specs.values():
            if not isinstance(task_spec, UserTask | ManualTask):
                continue
            p = task_spec.extensions.get("properties", {})
            nodes[task_spec.bpmn_id] = NodeSettings(
                node_id=task_spec.bpmn_id,
                node_name=task_spec.bpmn_name or task_spec.bpmn_id,
                handlers=p.get("handlers"),
                handling_group=p.get("handlingGroup"),
                task_name=p.get("taskName"),
                task_summary=tuple(p[k] for k in sorted(p) if k.startswith("summary")),
                urls={k: v for k, v in p.items() if k.endswith("Url")},
                lane=task_spec.lane,
            )
    nodes.update(overrides or {})
    return LoadedProcess(
        process_id=process_id,
        name=spec.description or process_id,
        file="<inline>",
        version=hashlib.sha256("".join(texts).encode()).hexdigest()[:16],
        spec=spec,
        subprocess_specs=subprocess_specs,
        nodes=nodes,
        settings=settings
        or ProcessSettings(
            trans_type_code="T01", trans_type_name="Test", transaction_name="{process_name}"
        ),
    )


@dataclass
class Run:
    """Drives one instance; after every step the workflow is dumped, loaded back (as the store
    does) and must show the same todos, finished flag and next timer."""

    process: LoadedProcess
    clock: FakeClock = field(default_factory=FakeClock)
    instance_id: str = "inst-1"
    engine: Engine = field(init=False)
    wf: Any = None
    facts: StepFacts | None = None
    history: list[StepFacts] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.engine = Engine(clock=self.clock)

    def start(self, data: dict[str, Any] | None = None, initiator: str = "2023001") -> StepFacts:
        self.wf, facts = self.engine.start(
            self.process, instance_id=self.instance_id, initiator=initiator, data=data or {}
        )
        return self._after(facts)

    def todo(self, node_id: str, handler: str | None = None) -> Todo:
        """The open todo at ``node_id`` (of those there, the one ``handler`` may complete)."""
        assert self.facts is not None
        found = [t for t in self.facts.open_todos if t.node_id == node_id]
        if handler is not None and len(found) > 1:
            found = [t for t in found if handler in t.handlers]
        assert len(found) == 1, f"expected one open todo at {node_id}, got {self.facts.open_todos}"
        return found[0]

    def complete(
        self, node_id: str, handler: str, data: dict[str, Any] | None = None, opinion: str = ""
    ) -> StepFacts:
        todo = self.todo(node_id, handler)
        facts = self.engine.complete(
            self.wf,
            self.process,
            instance_id=self.instance_id,
            todo_id=todo.todo_id,
            handler=handler,
            data=data,
            opinion=opinion,
        )
        return self._after(facts)

    def tick(self, advance: timedelta | None = None) -> StepFacts | None:
        if advance is not None:
            self.clock.advance(advance)
        facts = self.engine.tick(self.wf, self.process, instance_id=self.instance_id)
        if facts is None:
            self.roundtrip()
            return None
        return self._after(facts)

    def cancel(self, by: str = "admin") -> StepFacts:
        return self._after(
            self.engine.cancel(self.wf, self.process, instance_id=self.instance_id, by=by)
        )

    def message(self, name: str, data: dict[str, Any] | None = None) -> StepFacts:
        return self._after(
            self.engine.message(
                self.wf, self.process, instance_id=self.instance_id, name=name, data=data
            )
        )

    def nodes(self) -> list[str]:
        assert self.facts is not None
        return [t.node_id for t in self.facts.open_todos]

    def roundtrip(self) -> None:
        state = dump_state(self.wf)
        definition = definition_json(self.process)
        restored = load_state(
            state, definition, script_engine=Engine(clock=self.clock).script_engine
        )
        assert dump_state(restored) == state
        assert restored.is_completed() == self.wf.is_completed()
        assert self.engine.next_timer_at(restored) == self.engine.next_timer_at(self.wf)
        if self.facts is not None and not self.facts.finished:
            todos = self.engine.open_todos(restored, self.process, instance_id=self.instance_id)
            assert todos == self.facts.open_todos
        self.wf = restored

    def _after(self, facts: StepFacts) -> StepFacts:
        self.facts = facts
        self.history.append(facts)
        self.roundtrip()
        return facts
