"""A process's diagram as plain geometry, read from the BPMN file's BPMNDI.

Modellers save where every shape and edge is drawn (``bpmndi:BPMNShape`` bounds,
``bpmndi:BPMNEdge`` waypoints); this module pairs that geometry with the model element each one
shows (its kind, name, event type, multi-instance marker…) so the SVG writer never touches XML.
Everything read here is untrusted text: it is kept as data and escaped by the writer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from engine_bridge.errors import BpmnError
from engine_bridge.loader.xml_safety import BPMN_NS, BPMNDI_NS

__all__ = ["Bounds", "Diagram", "Edge", "Shape", "diagram_process_ids", "read_diagram"]

DC_NS = "http://www.omg.org/spec/DD/20100524/DC"
DI_NS = "http://www.omg.org/spec/DD/20100524/DI"

_EVENT_DEFINITIONS = {
    "timerEventDefinition": "timer",
    "messageEventDefinition": "message",
    "terminateEventDefinition": "terminate",
    "errorEventDefinition": "error",
    "signalEventDefinition": "signal",
    "escalationEventDefinition": "escalation",
    "conditionalEventDefinition": "conditional",
    "linkEventDefinition": "link",
    "compensateEventDefinition": "compensate",
    "cancelEventDefinition": "cancel",
}
_THROWING = frozenset({"endEvent", "intermediateThrowEvent"})
_CONTAINERS = frozenset({"participant", "lane"})
_SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})


@dataclass(frozen=True)
class Bounds:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True)
class Shape:
    """One drawn BPMN element. ``kind`` is the element's BPMN local name (``userTask``,
    ``exclusiveGateway``, ``lane``…); the other fields are what its picture needs."""

    element_id: str
    kind: str
    name: str
    bounds: Bounds
    label: Bounds | None = None
    expanded: bool = False  # a subprocess drawn open, its content inside
    horizontal: bool = True  # pools and lanes: name written vertically at the left
    marker_visible: bool = False  # the X of an exclusive gateway
    event: str | None = None  # timer, message, terminate, error, signal… ("multiple")
    interrupting: bool = True  # boundary events (cancelActivity) and event-subprocess starts
    throwing: bool = False  # end and throw events: filled marker
    loop: str | None = None  # "parallel" / "sequential" multi-instance, "loop"
    text: str = ""  # a text annotation's text
    event_subprocess: bool = False
    instantiate: bool = False  # event-based gateway that starts the process
    depth: int = 0  # nesting inside expanded subprocesses (drawing order)


@dataclass(frozen=True)
class Edge:
    """One drawn connection: ``kind`` is sequenceFlow, messageFlow, association or a data
    association; ``points`` are the waypoints in order."""

    element_id: str
    kind: str
    name: str
    points: tuple[tuple[float, float], ...]
    label: Bounds | None = None
    source: str | None = None
    target: str | None = None
    default: bool = False
    conditional: bool = False  # a conditional flow leaving an activity (diamond marker)


@dataclass(frozen=True)
class Diagram:
    """Everything drawn on one process's plane, in drawing order (containers first)."""

    process_id: str
    name: str
    file: str
    shapes: tuple[Shape, ...]
    edges: tuple[Edge, ...]

    def bounds(self) -> Bounds:
        """The smallest box around every shape, label and waypoint."""
        xs: list[float] = []
        ys: list[float] = []
        for shape in self.shapes:
            for box in (shape.bounds, shape.label):
                if box is not None:
                    xs += [box.x, box.right]
                    ys += [box.y, box.bottom]
        for edge in self.edges:
            xs += [p[0] for p in edge.points]
            ys += [p[1] for p in edge.points]
            if edge.label is not None:
                xs += [edge.label.x, edge.label.right]
                ys += [edge.label.y, edge.label.bottom]
        if not xs:
            return Bounds(0, 0, 0, 0)
        return Bounds(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    def shape(self, element_id: str) -> Shape | None:
        return next((s for s in self.shapes if s.element_id == element_id), None)


def _q(local: str, ns: str = BPMN_NS) -> str:
    return f"{{{ns}}}{local}"


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _number(value: str | None) -> float | None:
    try:
        number = float(value or "")
    except ValueError:
        return None
    return number if math.isfinite(number) and abs(number) < 1e6 else None


def _bounds(element: Any) -> Bounds | None:
    box = element.find(_q("Bounds", DC_NS)) if element is not None else None
    if box is None:
        return None
    values = [_number(box.get(k)) for k in ("x", "y", "width", "height")]
    if any(v is None for v in values):
        return None
    x, y, width, height = (float(v or 0) for v in values)
    if width < 0 or height < 0:
        return None
    return Bounds(x, y, width, height)


def _name(element: Any) -> str:
    return " ".join(str(element.get("name") or "").split())


def _event_kind(element: Any) -> str | None:
    kinds = [_EVENT_DEFINITIONS[_local(c)] for c in element if _local(c) in _EVENT_DEFINITIONS]
    if not kinds:
        return None
    return kinds[0] if len(kinds) == 1 else "multiple"


def _loop(element: Any) -> str | None:
    mi = element.find(_q("multiInstanceLoopCharacteristics"))
    if mi is not None:
        return "sequential" if mi.get("isSequential") == "true" else "parallel"
    if element.find(_q("standardLoopCharacteristics")) is not None:
        return "loop"
    return None


def _depth(element: Any) -> int:
    depth = 0
    node = element.getparent()
    while node is not None:
        if _local(node) in _SUBPROCESSES:
            depth += 1
        node = node.getparent()
    return depth


def _shape(di: Any, element: Any) -> Shape | None:
    bounds = _bounds(di)
    if bounds is None:
        return None
    kind = _local(element)
    label = di.find(_q("BPMNLabel", BPMNDI_NS))
    text = ""
    if kind == "textAnnotation":
        text = " ".join(str(element.findtext(_q("text")) or "").split())
    expanded = di.get("isExpanded") == "true" or (
        kind in _SUBPROCESSES and di.get("isExpanded") is None and bounds.width > 150
    )
    return Shape(
        element_id=str(element.get("id")),
        kind=kind,
        name=_name(element),
        bounds=bounds,
        label=_bounds(label),
        expanded=expanded and kind in _SUBPROCESSES,
        horizontal=di.get("isHorizontal", "true") != "false",
        marker_visible=di.get("isMarkerVisible") == "true",
        event=_event_kind(element) if kind.endswith("Event") else None,
        interrupting=element.get("cancelActivity", element.get("isInterrupting")) != "false",
        throwing=kind in _THROWING,
        loop=_loop(element),
        text=text,
        event_subprocess=element.get("triggeredByEvent") == "true",
        instantiate=element.get("instantiate") == "true",
        depth=_depth(element),
    )


def _points(di: Any) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for point in di.findall(_q("waypoint", DI_NS)):
        x, y = _number(point.get("x")), _number(point.get("y"))
        if x is not None and y is not None:
            points.append((x, y))
    return tuple(points)


def _edge(di: Any, element: Any, index: dict[str, Any]) -> Edge | None:
    points = _points(di)
    if len(points) < 2:
        return None
    kind = _local(element)
    source = element.get("sourceRef")
    target = element.get("targetRef")
    if kind in ("dataInputAssociation", "dataOutputAssociation"):
        source = element.findtext(_q("sourceRef")) or element.getparent().get("id")
        target = element.findtext(_q("targetRef")) or element.getparent().get("id")
    source_element = index.get(str(source)) if source else None
    default = source_element is not None and source_element.get("default") == element.get("id")
    conditional = (
        kind == "sequenceFlow"
        and element.find(_q("conditionExpression")) is not None
        and source_element is not None
        and not _local(source_element).endswith("Gateway")
    )
    return Edge(
        element_id=str(element.get("id")),
        kind=kind,
        name=_name(element),
        points=points,
        label=_bounds(di.find(_q("BPMNLabel", BPMNDI_NS))),
        source=str(source) if source else None,
        target=str(target) if target else None,
        default=default,
        conditional=conditional,
    )


def _index(root: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith(f"{{{BPMN_NS}}}"):
            element_id = element.get("id")
            if element_id and element_id not in found:
                found[element_id] = element
    return found


def diagram_process_ids(root: Any) -> list[str]:
    """Ids of the processes of a document that have a diagram, in document order."""
    index = _index(root)
    found: list[str] = []
    for plane in root.iter(_q("BPMNPlane", BPMNDI_NS)):
        element = index.get(str(plane.get("bpmnElement") or ""))
        for pid in _plane_processes(element):
            if pid not in found:
                found.append(pid)
    return found


def _plane_processes(element: Any) -> Iterator[str]:
    if element is None:
        return
    if _local(element) == "process":
        yield str(element.get("id"))
    elif _local(element) in _SUBPROCESSES:
        owner = _owning_process(element)
        if owner is not None:
            yield str(owner.get("id"))
    elif _local(element) == "collaboration":
        for participant in element.findall(_q("participant")):
            if participant.get("processRef"):
                yield str(participant.get("processRef"))


def _order(shape: Shape) -> tuple[int, int]:
    if shape.kind == "participant":
        return (0, 0)
    if shape.kind == "lane":
        return (1, 0)
    if shape.expanded:
        return (2, shape.depth)
    if shape.kind == "boundaryEvent":
        return (4, shape.depth)
    return (3, shape.depth)


def read_diagram(root: Any, process_id: str | None = None, *, file: str = "") -> Diagram:
    """The diagram of ``process_id`` (default: the first process with one) in a parsed BPMN
    document. Raises BpmnError naming the file when there is no such diagram.

    A collapsed subprocess whose content the modeller drew on a plane of its own (bpmn-js does
    so) has that plane drawn below the process's, under a caption naming it: an instance
    waiting inside shows where."""
    index = _index(root)
    processes = diagram_process_ids(root)
    if process_id is None:
        if not processes:
            raise _no_diagram(file, None, root)
        process_id = processes[0]
    plane = _plane_for(root, index, process_id)
    sub_planes = _subprocess_planes(root, index, process_id)
    if plane is None and not sub_planes:
        raise _no_diagram(file, process_id, root)
    shapes, edges = _read_plane(plane, index) if plane is not None else ([], [])
    for sub, sub_plane in sub_planes:
        _append_below(shapes, edges, sub, *_read_plane(sub_plane, index))
    process = index.get(process_id)
    name = _name(process) if process is not None else ""
    return Diagram(
        process_id=process_id,
        name=name or process_id,
        file=file,
        shapes=tuple(sorted(shapes, key=_order)),
        edges=tuple(edges),
    )


def _plane_for(root: Any, index: dict[str, Any], process_id: str) -> Any:
    for plane in root.iter(_q("BPMNPlane", BPMNDI_NS)):
        element = index.get(str(plane.get("bpmnElement") or ""))
        if element is not None and _local(element) in _SUBPROCESSES:
            continue  # a subprocess's own plane: drawn below its process's (read_diagram)
        if process_id in _plane_processes(element):
            return plane
    return None


def _subprocess_planes(root: Any, index: dict[str, Any], process_id: str) -> list[Any]:
    """(subprocess element, its plane) for every subprocess of ``process_id`` drawn on a
    plane of its own, in document order."""
    found = []
    for plane in root.iter(_q("BPMNPlane", BPMNDI_NS)):
        element = index.get(str(plane.get("bpmnElement") or ""))
        if element is None or _local(element) not in _SUBPROCESSES:
            continue
        owner = _owning_process(element)
        if owner is not None and owner.get("id") == process_id:
            found.append((element, plane))
    return found


def _owning_process(element: Any) -> Any:
    node = element.getparent()
    while node is not None and _local(node) != "process":
        node = node.getparent()
    return node


def _read_plane(plane: Any, index: dict[str, Any]) -> tuple[list[Shape], list[Edge]]:
    shapes: list[Shape] = []
    edges: list[Edge] = []
    for di in plane:
        element = index.get(str(di.get("bpmnElement") or ""))
        if element is None:
            continue
        if _local(di) == "BPMNShape":
            shape = _shape(di, element)
            if shape is not None:
                shapes.append(shape)
        elif _local(di) == "BPMNEdge":
            edge = _edge(di, element, index)
            if edge is not None:
                edges.append(edge)
    return shapes, edges


_PLANE_GAP = 60.0  # between the drawing so far and a subprocess's own plane
_CAPTION_HEIGHT = 30.0


def _append_below(
    shapes: list[Shape], edges: list[Edge], sub: Any, more: list[Shape], more_edges: list[Edge]
) -> None:
    """Add a subprocess's plane under what is drawn so far, captioned with its name."""
    if not more:
        return
    drawn = Diagram("", "", "", tuple(shapes), tuple(edges)).bounds()
    box = Diagram("", "", "", tuple(more), tuple(more_edges)).bounds()
    left = drawn.x if shapes else box.x
    top = drawn.bottom + _PLANE_GAP if shapes else box.y
    dx, dy = left - box.x, top + _CAPTION_HEIGHT - box.y
    name = _name(sub) or str(sub.get("id"))
    caption = f"{name}: inside the subprocess"
    shapes.append(
        Shape(
            element_id=f"{sub.get('id')}#plane",
            kind="textAnnotation",
            name="",
            bounds=Bounds(left, top, max(box.width, _text_width(caption)), _CAPTION_HEIGHT - 6),
            text=caption,
        )
    )
    shapes += [_moved_shape(s, dx, dy) for s in more]
    edges += [_moved_edge(e, dx, dy) for e in more_edges]


def _text_width(text: str) -> float:
    """Room for a one-line caption at the annotation's font (wide characters count double)."""
    return 20.0 + sum(14.0 if ord(c) > 0x2E7F else 7.5 for c in text)


def _moved_box(box: Bounds | None, dx: float, dy: float) -> Bounds | None:
    return None if box is None else Bounds(box.x + dx, box.y + dy, box.width, box.height)


def _moved_shape(shape: Shape, dx: float, dy: float) -> Shape:
    moved = _moved_box(shape.bounds, dx, dy)
    assert moved is not None
    return replace(shape, bounds=moved, label=_moved_box(shape.label, dx, dy))


def _moved_edge(edge: Edge, dx: float, dy: float) -> Edge:
    points = tuple((x + dx, y + dy) for x, y in edge.points)
    return replace(edge, points=points, label=_moved_box(edge.label, dx, dy))


def _no_diagram(file: str, process_id: str | None, root: Any) -> BpmnError:
    ids = [str(p.get("id")) for p in root.iter(_q("process")) if p.get("id")]
    if process_id is not None and process_id not in ids:
        message = (
            f"{file or 'the file'} defines no process {process_id!r} "
            f"(it has: {', '.join(ids) or 'none'}); pass one of those with --process"
        )
    else:
        which = f"process {process_id!r}" if process_id else "any process"
        message = (
            f"{file or 'the file'} has no diagram (BPMNDI) for {which}: there is nothing to "
            "draw. Open it in a BPMN modeller and save it; modellers write the diagram"
        )
    return BpmnError(message, file=file or None, element_id=process_id)
