"""The sample processes in workflows/ run as their scenarios say, in plain SpiffWorkflow.

This checks the samples and their scenario files on their own, without the bridge: each
scenario is replayed against SpiffWorkflow directly, deriving every completion's status with
the READY-set diff (``end`` if the process finished, ``next`` if new user tasks became ready,
else ``none``) and the open todos the way the bridge groups them (one todo per parallel
countersign, holding the signers still open). Only three things stand in for the bridge here:
the completion-condition counters (``nrOfActiveInstances``… and the output collection so far),
the initiator in the start data, and a message's data joining the data of the task that
caught it (SpiffWorkflow keeps it aside when the model names no message variable).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import etree  # type: ignore[import-untyped]
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser import BpmnParser, BpmnValidator
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import (
    MultiInstanceTask,
    ParallelMultiInstanceTask,
)
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))
BPMN_FILES = sorted(WORKFLOWS.glob("*.bpmn"))
CAMUNDA_FILE = WORKFLOWS / "camunda_leave.bpmn"
SPIFF_FILES = [f for f in BPMN_FILES if f != CAMUNDA_FILE]

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
    "camunda": "http://camunda.org/schema/1.0/bpmn",
}
# Placeholders the bridge fills besides the task data (todo) or start data (transaction).
BRIDGE_FIELDS = {"instanceId", "todoId", "nodeId", "initiator", "initiatorName", "process_name"}
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True)


def read_xml(path: Path) -> Any:
    return etree.parse(str(path), SAFE_XML)


def q(prefix: str, local: str) -> str:
    """``q("camunda", "assignee")`` → the Clark-notation name lxml uses."""
    return f"{{{NS[prefix]}}}{local}"


# ── stand-ins for what the bridge provides ───────────────────────────────────────────────────


class CountersignScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """Gives a multi-instance completion condition the counters and the fresh output
    collection (the instance's own copy of it is stale in a parallel multi-instance)."""

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        parent = task.parent
        spec = parent.task_spec if parent is not None else None
        if isinstance(spec, MultiInstanceTask) and expression == spec.condition:
            siblings = [c for c in parent.children if c.task_spec.name == spec.task_spec]
            completed = len(parent.internal_data.get("merged", []))
            context = {
                **task.data,
                "nrOfInstances": len(siblings),
                "nrOfCompletedInstances": completed,
                "nrOfActiveInstances": len(siblings) - completed,
                spec.data_output.bpmn_id: spec.data_output.get(parent),
            }
            return self.environment.evaluate(expression, context)
        return super().evaluate(task, expression, external_context)


ENGINE = CountersignScriptEngine()


def camunda_as_spiff(path: Path) -> Any:
    """The Camunda attributes of camunda_leave.bpmn rewritten as spiffworkflow properties and
    its JUEL conditions as Python, only as far as that file needs, to replay its scenario."""
    tree = read_xml(path)
    for task in tree.iterfind(".//bpmn:userTask", NS):
        props: dict[str, str] = {}
        if assignee := task.get(q("camunda", "assignee")):
            props["handlers"] = juel_to_python(assignee)
        if users := task.get(q("camunda", "candidateUsers")):
            props["handlers"] = repr(users)
        if groups := task.get(q("camunda", "candidateGroups")):
            props["handlingGroup"] = repr(groups)
        ext = etree.Element(q("bpmn", "extensionElements"))
        holder = etree.SubElement(ext, q("spiffworkflow", "properties"))
        for name, value in props.items():
            etree.SubElement(holder, q("spiffworkflow", "property"), name=name, value=value)
        task.insert(0, ext)
    for cond in tree.iterfind(".//bpmn:conditionExpression", NS):
        cond.text = juel_to_python(cond.text)
    return tree.getroot()


def juel_to_python(expr: str) -> str:
    inner = expr.strip().removeprefix("${").removesuffix("}")
    return re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", inner))


# ── a scenario replayed on a raw workflow ────────────────────────────────────────────────────


@dataclass
class RawTodo:
    node: str
    handlers: list[str]
    tasks: list[Any]  # the READY tasks behind it (several for a parallel countersign)


def todo_key(task: Any) -> Any:
    """A parallel countersign is one todo per multi-instance; any other task is its own."""
    parent = task.parent
    spec = parent.task_spec
    if isinstance(spec, ParallelMultiInstanceTask) and spec.task_spec == task.task_spec.name:
        return parent.id
    return task.id


def handlers_of(task: Any) -> list[str]:
    props = task.task_spec.extensions.get("properties", {})
    if "handlers" not in props:
        return []
    value = ENGINE.evaluate(task, props["handlers"])
    names = value.split(",") if isinstance(value, str) else value
    return [str(n).strip() for n in names if str(n).strip()]


class RawRun:
    def __init__(self, process: str, initiator: str, data: dict[str, Any]) -> None:
        parser = SpiffBpmnParser(validator=VALIDATOR)
        parser.add_bpmn_files([str(f) for f in SPIFF_FILES])
        parser.add_bpmn_xml(camunda_as_spiff(CAMUNDA_FILE), filename=str(CAMUNDA_FILE))
        spec = parser.get_spec(process)
        self.wf = BpmnWorkflow(spec, parser.get_subprocess_specs(process), script_engine=ENGINE)
        self.wf.task_tree.data.update(data, initiator=initiator)
        self.process = process
        self.cancelled = False
        self._run_engine()
        self.status: str | None = None
        self.next_nodes: list[str] = []

    def _run_engine(self) -> None:
        while True:  # a timer that fires in refresh_timers() is left READY: run it too
            self.wf.do_engine_steps()
            if self.wf.get_next_task(state=TaskState.READY, manual=False) is None:
                return

    def ready(self) -> dict[Any, Any]:
        tasks = self.wf.get_tasks(state=TaskState.READY, manual=True)
        return {t.id: t for t in tasks if isinstance(t.task_spec, UserTask)}

    def todos(self) -> list[RawTodo]:
        grouped: dict[Any, list[Any]] = {}
        for task in self.ready().values():
            grouped.setdefault(todo_key(task), []).append(task)
        return [
            RawTodo(ts[0].task_spec.bpmn_id, sorted(h for t in ts for h in handlers_of(t)), ts)
            for ts in grouped.values()
        ]

    def _step(self, action: Any) -> None:
        before = self.ready()
        action()
        self._run_engine()
        new = [t for tid, t in self.ready().items() if tid not in before]
        self.next_nodes = sorted({todo_key(t): t.task_spec.bpmn_id for t in new}.values())
        if self.wf.is_completed():
            self.status = "end"
        else:
            self.status = "next" if new else "none"

    def complete(self, node: str, handler: str, data: dict[str, Any]) -> None:
        todo = next((t for t in self.todos() if t.node == node), None)
        assert todo is not None, f"no open todo at {node!r}"
        task = next(
            (t for t in todo.tasks if handler in handlers_of(t) or not handlers_of(t)), None
        )
        assert task is not None, f"{handler!r} is not a handler of {node!r}: {todo.handlers}"

        def run() -> None:
            task.data.update(data)
            task.run()

        self._step(run)

    def tick(self, advance: timedelta) -> None:
        """Moving the clock forward is moving every pending due time back by as much."""
        for task in self.wf.get_tasks(state=TaskState.WAITING):
            due = task.internal_data.get("event_value")
            if isinstance(due, str):
                task.internal_data["event_value"] = (
                    datetime.fromisoformat(due) - advance
                ).isoformat()
        self._step(self.wf.refresh_timers)

    def message(self, name: str, data: dict[str, Any]) -> None:
        waiting = [
            (task, d)
            for task in self.wf.get_tasks(state=TaskState.WAITING)
            for d in getattr(task.task_spec.event_definition, "event_definitions", None)
            or [getattr(task.task_spec, "event_definition", None)]
            if isinstance(d, MessageEventDefinition) and d.name == name
        ]
        assert waiting, f"nothing waits for message {name!r}"

        def send() -> None:
            self.wf.send_event(BpmnEvent(waiting[0][1], payload=data))
            for task, _ in waiting:
                task.data.update(data)

        self._step(send)

    def cancel(self) -> None:
        self.wf.cancel()
        self.cancelled = True
        self.status, self.next_nodes = None, []

    @property
    def finished(self) -> bool:
        return self.cancelled or bool(self.wf.is_completed())


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", text)
    assert m, f"unsupported duration {text!r}"
    return timedelta(hours=int(m[1] or 0), minutes=int(m[2] or 0))


def check_expect(run: RawRun, expect: dict[str, Any], where: str) -> None:
    if "status" in expect:
        assert run.status == expect["status"], f"{where}: status"
    if "next_nodes" in expect:
        assert run.next_nodes == sorted(expect["next_nodes"]), f"{where}: next_nodes"
    if "finished" in expect:
        assert run.finished == expect["finished"], f"{where}: finished"
    if "open" in expect:
        got = {t.node: t.handlers for t in run.todos()}
        assert sorted(got) == sorted(o["node"] for o in expect["open"]), f"{where}: open nodes"
        for o in expect["open"]:
            if "handlers" in o:
                assert got[o["node"]] == sorted(o["handlers"]), f"{where}: {o['node']} handlers"


def check_templates(run: RawRun, where: str) -> None:
    """Every placeholder of an open todo's name, summary and URLs has a value."""
    for todo in run.todos():
        first = todo.tasks[0]
        props = first.task_spec.extensions.get("properties", {})
        # a countersign todo shows the node, so it renders from the multi-instance's data
        anchor = first if todo_key(first) == first.id else first.parent
        known = set(anchor.data) | BRIDGE_FIELDS
        summary = props.get("taskSummary", "")
        assert len([p for p in summary.split(";") if p.strip()]) <= 5, todo.node
        assert all("|" in p for p in summary.split(";") if p.strip()), todo.node
        for name in ("taskName", "taskSummary", "handleUrl", "viewUrl"):
            missing = set(PLACEHOLDER.findall(props.get(name, ""))) - known
            assert not missing, f"{where}: {todo.node}.{name} uses unknown {sorted(missing)}"


def replay(scenario: dict[str, Any]) -> RawRun:
    start = scenario["start"]
    run = RawRun(scenario["process"], start["initiator"], start.get("data", {}))
    check_templates(run, f"{scenario['process']} start")
    for i, step in enumerate(scenario["steps"], start=1):
        where = f"{scenario['process']} step {i}"
        if "complete" in step:
            c = step["complete"]
            run.complete(c["node"], c["handler"], c.get("data", {}))
        elif "tick" in step:
            run.tick(parse_duration(step["tick"]["advance"]))
        elif "message" in step:
            run.message(step["message"]["name"], step["message"].get("data", {}))
        elif "cancel" in step:
            run.cancel()
        else:
            check_expect(run, step["expect"], where)
        check_templates(run, where)
    return run


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# ── the tests ────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_holds_in_raw_spiffworkflow(path: Path) -> None:
    """Every expectation of the scenario holds when its steps run on plain SpiffWorkflow."""
    scenario = load(path)
    assert path.stem.startswith(scenario["process"])
    assert scenario["steps"][-1].get("expect", {}).get("finished") is True
    replay(scenario)


def test_a_wrong_expectation_is_caught() -> None:
    """The replay is not vacuous: a scenario with one wrong status fails."""
    scenario = load(WORKFLOWS / "scenarios" / "countersign_all.json")
    scenario["steps"][2]["expect"]["status"] = "next"  # first signer of three: really 'none'
    with pytest.raises(AssertionError, match="status"):
        replay(scenario)


def test_vote_ends_early_only_with_the_bridge_counters() -> None:
    """Two approvals end the vote because the condition sees the collection so far."""
    run = replay(load(WORKFLOWS / "scenarios" / "vote_two_of_three_approve.json"))
    cancelled = [
        t
        for t in run.wf.get_tasks(state=TaskState.CANCELLED)
        if t.task_spec.bpmn_id == "vote" and isinstance(t.task_spec, UserTask)
    ]
    assert [t.data["voter"] for t in cancelled] == ["T002"]
    assert run.wf.data["votes"] == ["approve", "approve"]


def test_every_process_has_a_scenario() -> None:
    """Each sample file is exercised by at least one scenario named after its process."""
    covered = {load(p)["process"] for p in SCENARIOS}
    assert covered == {f.stem for f in BPMN_FILES}


def flow_elements(tree: Any) -> Iterator[Any]:
    for el in tree.iterfind(".//bpmn:process//*[@id]", NS):
        local = etree.QName(el).localname
        if local.endswith(("Event", "Task", "Gateway", "Flow", "Activity")) or local in {
            "subProcess",
        }:
            yield el


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.stem)
def test_sample_is_executable_with_a_complete_diagram(path: Path) -> None:
    """One executable process named after the file; every node and flow has a shape or edge;
    no two shapes overlap unless one sits on (boundary event) or in (sub-process) the other."""
    tree = read_xml(path)
    processes = tree.findall("bpmn:process", NS)
    assert [p.get("id") for p in processes] == [path.stem]
    assert processes[0].get("isExecutable") == "true"
    shapes = {
        s.get("bpmnElement"): [
            float(s.find("dc:Bounds", NS).get(k)) for k in ("x", "y", "width", "height")
        ]
        for s in tree.iterfind(".//bpmndi:BPMNShape", NS)
    }
    edges = {
        e.get("bpmnElement"): e.findall("di:waypoint", NS)
        for e in tree.iterfind(".//bpmndi:BPMNEdge", NS)
    }
    for el in flow_elements(tree):
        el_id = el.get("id")
        if etree.QName(el).localname == "sequenceFlow":
            assert len(edges.get(el_id, [])) >= 2, f"{el_id} has no edge"
        else:
            assert el_id in shapes, f"{el_id} has no shape"
    hosts = {
        b.get("id"): b.get("attachedToRef") for b in tree.iterfind(".//bpmn:boundaryEvent", NS)
    }
    containers = {s.get("id") for s in tree.iterfind(".//bpmn:subProcess", NS)}
    ids = sorted(shapes)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            if hosts.get(a) == b or hosts.get(b) == a or {a, b} & containers:
                continue
            (ax, ay, aw, ah), (bx, by, bw, bh) = shapes[a], shapes[b]
            apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
            assert apart, f"shapes {a} and {b} overlap"


@pytest.mark.parametrize("path", SPIFF_FILES, ids=lambda p: p.stem)
def test_every_user_task_says_who_handles_it(path: Path) -> None:
    """Each user task carries a handlers or handlingGroup expression that compiles."""
    for task in read_xml(path).iterfind(".//bpmn:userTask", NS):
        props = {
            p.get("name"): p.get("value") for p in task.iterfind(".//spiffworkflow:property", NS)
        }
        expr = props.get("handlers") or props.get("handlingGroup")
        assert expr, f"{path.name}: {task.get('id')} names no handler"
        compile(expr, f"{path.name}:{task.get('id')}", "eval")


def test_camunda_sample_uses_only_camunda_attributes_and_plain_bpmn_parses_it() -> None:
    """camunda_leave.bpmn is Camunda Modeler dialect only, and the plain parsers accept it."""
    tree = read_xml(CAMUNDA_FILE)
    assert NS["spiffworkflow"] not in tree.getroot().nsmap.values()
    tasks = {t.get("id"): t for t in tree.iterfind(".//bpmn:userTask", NS)}
    assert tasks["counselor_review"].get(q("camunda", "candidateUsers")) == "T001,T002"
    assert tasks["dean_review"].get(q("camunda", "candidateGroups")) == "dean-office"
    assert tasks["notify_applicant"].get(q("camunda", "assignee")) == "${applicant}"
    conditions = [c.text for c in tree.iterfind(".//bpmn:conditionExpression", NS)]
    assert conditions and all(c.startswith("${") for c in conditions)
    for parser in (BpmnParser(validator=BpmnValidator()), CamundaParser()):
        parser.add_bpmn_file(str(CAMUNDA_FILE))
        assert parser.get_spec("camunda_leave").task_specs["dean_review"].bpmn_name == "学院审批"


def test_process_settings_cover_every_process() -> None:
    """processes.yaml has an entry per process whose templates name only known fields."""
    settings = yaml.safe_load((WORKFLOWS / "processes.yaml").read_text(encoding="utf-8"))
    assert set(settings) == {f.stem for f in BPMN_FILES}
    start_data: dict[str, set[str]] = {}
    for p in SCENARIOS:
        s = load(p)
        start_data.setdefault(s["process"], set()).update(s["start"].get("data", {}))
    for process, entry in settings.items():
        assert {"transTypeCode", "transTypeName", "transactionName"} <= set(entry), process
        for key, template in entry.items():
            unknown = set(PLACEHOLDER.findall(str(template))) - start_data[process] - BRIDGE_FIELDS
            assert not unknown, f"{process}.{key} uses {sorted(unknown)}"
