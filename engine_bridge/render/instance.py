"""Pictures of instances and files: where the stored state meets the diagram.

An instance's picture needs three things the bridge already has: its stored workflow state
(restored with ``engine.state.load_state``, exactly as ``Bridge.waiting`` restores it, but never
run), the todos the engine waits on (``Bridge.waiting``: who may act), and the BPMN file of its
process (the library knows which file defines it). Called processes that the instance entered
are drawn too, each from its own file. Nothing here writes to the store or calls the centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine_bridge.engine.state import load_state
from engine_bridge.errors import EngineBridgeError
from engine_bridge.loader.xml_safety import BPMN_NS, parse_bpmn
from engine_bridge.render.diagram import Diagram, read_diagram
from engine_bridge.render.html import NOT_STARTED, Panel, Picture, TodoRow
from engine_bridge.render.states import NodeState, instance_states
from engine_bridge.render.svg import render_svg

__all__ = ["file_panel", "instance_panel", "render_file_svg", "render_instance_svg"]


def _diagram(file: str | Path, process_id: str | None) -> Diagram:
    path = Path(file)
    return read_diagram(parse_bpmn(path.read_bytes(), str(path)), process_id, file=str(path))


def render_file_svg(file: str | Path, process_id: str | None = None) -> str:
    """A BPMN file's diagram with nothing reached (no instance): the standalone SVG text."""
    diagram = _diagram(file, process_id)
    return render_svg(diagram, None, title=diagram.name, subtitle=f"{file} · {diagram.process_id}")


def file_panel(file: str | Path, process_id: str | None = None, *, prefix: str = "f") -> Panel:
    """The HTML page section for a BPMN file without an instance."""
    diagram = _diagram(file, process_id)
    svg = render_svg(
        diagram,
        None,
        title=diagram.name,
        subtitle=f"{file} · {diagram.process_id}",
        id_prefix=prefix,
        standalone=False,
    )
    return Panel(
        key=f"process-{diagram.process_id}",
        heading=f"{diagram.name} ({diagram.process_id})",
        status=NOT_STARTED,
        facts=(("file", str(file)), ("process", diagram.process_id)),
        pictures=(Picture(diagram.name, svg),),
    )


class _Snapshot:
    """One instance read from the store: record, element states, waiting and open todos."""

    def __init__(self, bridge: Any, instance_id: str) -> None:
        self.record = bridge.store.get_instance(instance_id)
        self.notes: list[str] = []
        definition = bridge.store.get_definition(
            self.record.process_id, self.record.definition_version
        )
        wf = load_state(self.record.state, definition, script_engine=None)
        self.todos = list(bridge.todos(instance_id))
        try:
            waiting = list(bridge.waiting(instance_id))
        except EngineBridgeError as exc:  # the process left the loaded files: use the ledger
            self.notes.append(f"handlers from the todo ledger: {exc}")
            waiting = self.todos
        cancelled = self.record.status == "cancelled"
        self.states: dict[str, NodeState] = instance_states(wf, waiting, cancelled=cancelled)
        self.process = bridge.library.get(self.record.process_id)
        if self.process.version != self.record.definition_version:
            self.notes.append(
                "the BPMN files changed since this instance started; the diagram is drawn "
                "from the current files"
            )

    def diagrams(self) -> list[Diagram]:
        """The process's diagram, then each called process the instance entered."""
        main = _diagram(self.process.file, self.record.process_id)
        found = [main]
        root = parse_bpmn(Path(self.process.file).read_bytes(), self.process.file)
        for call in root.iter(f"{{{BPMN_NS}}}callActivity"):
            called = str(call.get("calledElement") or "")
            state = self.states.get(str(call.get("id")))
            spec = self.process.subprocess_specs.get(called)
            if state is None or state.state == "not-reached" or spec is None:
                continue
            file = getattr(spec, "file", None)
            if not file or any(d.process_id == called for d in found):
                continue
            try:
                found.append(_diagram(file, called))
            except EngineBridgeError as exc:
                self.notes.append(f"called process {called!r} is not drawn: {exc}")
        return found

    def subtitle(self) -> str:
        r = self.record
        return f"instance {r.id} · {r.status} · started by {r.initiator}"


def render_instance_svg(bridge: Any, instance_id: str) -> str:
    """The instance's process diagram coloured by state: the standalone SVG text."""
    snapshot = _Snapshot(bridge, instance_id)
    diagram = snapshot.diagrams()[0]
    return render_svg(diagram, snapshot.states, title=diagram.name, subtitle=snapshot.subtitle())


def instance_panel(bridge: Any, instance_id: str, *, prefix: str = "i") -> Panel:
    """The HTML page section for one instance: facts, open todos and its diagram(s)."""
    snapshot = _Snapshot(bridge, instance_id)
    record = snapshot.record
    pictures: list[Picture] = []
    for number, diagram in enumerate(snapshot.diagrams()):
        svg = render_svg(
            diagram,
            snapshot.states,
            title=diagram.name,
            subtitle=snapshot.subtitle() if number == 0 else f"called process {diagram.process_id}",
            id_prefix=f"{prefix}{number}",
            standalone=False,
        )
        pictures.append(Picture(diagram.name, svg))
    return Panel(
        key=f"instance-{record.id}",
        heading=f"{snapshot.process.name} · {record.id}",
        status=record.status,
        facts=_facts(record),
        todos=tuple(
            TodoRow(
                task_id=t.task_id,
                node_id=t.node_id,
                node_name=t.node_name,
                handlers=tuple(t.handlers),
                groups=tuple(t.handling_groups),
            )
            for t in snapshot.todos
        ),
        pictures=tuple(pictures),
        notes=tuple(snapshot.notes),
    )


def _facts(record: Any) -> Sequence[tuple[str, str]]:
    return (
        ("process", record.process_id),
        ("status", record.status),
        ("business key", record.business_key or "—"),
        ("initiator", record.initiator),
        ("started", record.created_at.isoformat(timespec="seconds")),
        ("last change", record.updated_at.isoformat(timespec="seconds")),
    )
