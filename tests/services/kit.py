"""Service-task test kit: small Camunda-flavoured BPMN written to files, and a bridge on the
in-process fake centre whose open todos are compared with the engine after every step."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.engine.script_engine import RestrictedScriptEngine
from engine_bridge.engine.state import load_state
from engine_bridge.testing.fake_center import FakeCenter

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'xmlns:flowable="http://flowable.org/bpmn" '
    'xmlns:activiti="http://activiti.org/bpmn" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)

# The corpus lives in ../shared beside the checkout (as in CI), never inside the project.
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def bpmn(process_id: str, *nodes: str, flows: Iterable[tuple[str, str]] = ()) -> str:
    """A process of ``nodes`` joined by ``flows`` (source, target) pairs."""
    lines = [f'<bpmn:process id="{process_id}" isExecutable="true">', *nodes]
    for n, (source, target) in enumerate(flows):
        lines.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{source}" targetRef="{target}"/>')
    lines.append("</bpmn:process>")
    body = "\n  ".join(lines)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/services">\n'
        f"  {body}\n</bpmn:definitions>\n"
    )


def sequence(process_id: str, *nodes: tuple[str, str]) -> str:
    """start → (id, xml) nodes in order → end."""
    ids = ["start", *(node_id for node_id, _ in nodes), "end"]
    xml = ['<bpmn:startEvent id="start"/>', *(x for _, x in nodes), '<bpmn:endEvent id="end"/>']
    return bpmn(process_id, *xml, flows=itertools.pairwise(ids))


def user(node_id: str, assignee: str, name: str = "") -> tuple[str, str]:
    label = f' name="{name}"' if name else ""
    return node_id, f'<bpmn:userTask id="{node_id}"{label} camunda:assignee="{assignee}"/>'


def service(node_id: str, attrs: str = "", inner: str = "", name: str = "") -> tuple[str, str]:
    label = f' name="{name}"' if name else ""
    return node_id, f'<bpmn:serviceTask id="{node_id}"{label} {attrs}>{inner}</bpmn:serviceTask>'


# start → apply (T001) → notify (camunda:class) → dean (whoever the service names) → end
LEAVE = sequence(
    "leave",
    user("apply", "T001", "Apply"),
    service("notify", 'camunda:class="org.example.NotifyDean"', name="Notify the dean"),
    user("dean", "${dean}", "Dean approves"),
)


@dataclass
class Harness:
    """A bridge over the in-process fake centre, on a SQLite file, with a fake clock."""

    workflows: Path
    db: str
    clock: FakeClock = field(default_factory=FakeClock)
    fake: FakeCenter = field(init=False)
    bridges: list[Bridge] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fake = FakeCenter(clock=self.clock)

    def bridge(
        self,
        services: Mapping[str, Callable[..., Any]] | None = None,
        resolvers: Mapping[str, Any] | None = None,
        workflows: Any = None,
    ) -> Bridge:
        opened = Bridge.open(
            workflows or self.workflows,
            database=self.db,
            center=self.fake.transport(),
            clock=self.clock,
            services=services,
            resolvers=resolvers,
        )
        self.bridges.append(opened)
        return opened

    def close(self) -> None:
        for opened in self.bridges:
            opened.close()

    def centre_of(self, instance_id: str) -> dict[str, list[str]]:
        """The fake centre's open todos of one instance (taskId → open shares)."""
        return {
            k: v for k, v in self.fake.open_todos().items() if k.startswith(instance_id + ":") and v
        }

    def assert_in_step(self, bridge: Bridge, instance_id: str) -> None:
        """Centre == ledger == engine for the instance, and nothing waits in the outbox."""
        centre = self.centre_of(instance_id)
        assert centre == pairs(bridge.todos(instance_id)), "the ledger differs from the centre"
        assert centre == pairs(bridge.waiting(instance_id)), "the engine differs from the centre"
        assert bridge.store.pending_count() == 0, bridge.store.outbox(status="pending")
        assert bridge.store.outbox(status="dead") == []

    def endpoints(self) -> list[str]:
        """Applied centre calls, in order, as ``endpoint:status`` (status where there is one)."""
        out = []
        for call in self.fake.calls():
            if call["endpoint"] == "oauth2/token" or not call["applied"]:
                continue
            for item in call["body"] if isinstance(call["body"], list) else [call["body"]]:
                status = item.get("status") if isinstance(item, dict) else None
                out.append(f"{call['endpoint']}:{status}" if status else call["endpoint"])
        return out


def stored_workflow(bridge: Bridge, instance_id: str) -> Any:
    """The instance's SpiffWorkflow workflow, restored from what the store holds."""
    record = bridge.store.get_instance(instance_id)
    definition = bridge.store.get_definition(record.process_id, record.definition_version)
    return load_state(record.state, definition, script_engine=RestrictedScriptEngine())


def pairs(todos: Iterable[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for todo in todos:
        who = list(todo.handlers) + [f"group:{g}" for g in todo.handling_groups]
        out[todo.task_id] = sorted(who)
    return out


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def opened(tmp_path: Path, files: Mapping[str, str]) -> Iterator[Harness]:
    """A Harness over ``files`` (file name → BPMN text), written to a folder of ``tmp_path``,
    with its database beside it; closed afterwards."""
    folder = tmp_path / "wf"
    for name, text in files.items():
        write(folder, name, text)
    harness = Harness(folder, f"sqlite:///{tmp_path / 'b.db'}")
    try:
        yield harness
    finally:
        harness.close()
