"""Lint rules over the sequence-flow graph of each process and subprocess.

SpiffWorkflow runs many diagrams that do not do what their authors meant. These rules find the
shapes that usually hide a mistake, per scope (a ``bpmn:process`` or a subprocess; every scope
has its own start and end events):

* ``unreachable`` (warning) — no path from a start event leads to the node: it can never run.
* ``no-path-to-end`` (error) — the paths from the node loop without an exit: neither an end
  event nor a node where a path ends can be reached, so the process cannot end there.
* ``implicit-end`` (warning) — a node other than an end event with no outgoing flow. BPMN (and
  SpiffWorkflow) end the path there as at an end event; an end event says so on the diagram.
* ``implicit-fork`` (warning) — a task or event with two or more outgoing flows without a
  condition: all of them run at once, a parallel split nobody drew.
* ``implicit-join`` (warning) — a task or intermediate event with two or more incoming flows
  on which tokens of one parallel split can arrive together: it would run once per token. A
  merge of alternatives (only one of the incoming flows can carry a token, e.g. the branches of
  an exclusive gateway) is a plain merge and is not reported; neither are end events, where
  every arriving token simply ends.

Boundary events belong to their host (reached with it); a non-interrupting boundary event is a
split of its own (its path runs beside the host's). Link events connect throw to catch by name.
Event subprocesses, compensation handlers and the inside of ad-hoc subprocesses have no
sequence-flow entry and are not checked for reachability. A process marked
``isExecutable="false"`` (a pool drawn for documentation, which nobody starts) is not checked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine_bridge.loader.bpmn_names import ACTIVITIES as _ACTIVITIES
from engine_bridge.loader.bpmn_names import EVENTS as _EVENTS
from engine_bridge.loader.bpmn_names import GATEWAYS as _GATEWAYS
from engine_bridge.loader.bpmn_names import SCOPES as _SCOPES
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.xml_safety import BPMN_NS

__all__ = ["check_flow"]

_SPLITTING_GATEWAYS = frozenset({"parallelGateway", "inclusiveGateway", "complexGateway"})


def _q(local: str) -> str:
    return f"{{{BPMN_NS}}}{local}"


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) and tag.startswith("{") else ""


def _label(element: Any) -> str:
    return str(element.get("name") or element.get("id"))


@dataclass(frozen=True)
class _Flow:
    id: str
    source: str
    target: str
    conditional: bool


@dataclass
class _Scope:
    """One process or subprocess: its flow nodes and the sequence flows between them."""

    element: Any
    nodes: dict[str, Any] = field(default_factory=dict)
    outgoing: dict[str, list[_Flow]] = field(default_factory=dict)
    incoming: dict[str, list[_Flow]] = field(default_factory=dict)
    boundary: dict[str, list[str]] = field(default_factory=dict)  # host id -> boundary ids
    links: dict[str, list[str]] = field(default_factory=dict)  # throw id -> catch ids

    def kind(self, node_id: str) -> str:
        return _local(self.nodes[node_id])

    def successors(self, node_id: str) -> list[str]:
        found = [f.target for f in self.outgoing.get(node_id, [])]
        return found + self.boundary.get(node_id, []) + self.links.get(node_id, [])

    def detached(self, node_id: str) -> bool:
        """Entered by an event or a compensation, never along a sequence flow."""
        element = self.nodes[node_id]
        if element.get("triggeredByEvent") == "true":
            return True
        if element.get("isForCompensation") == "true":
            return True
        return (
            _local(element) == "boundaryEvent"
            and element.find(_q("compensateEventDefinition")) is not None
        )


def _link_name(event: Any) -> str | None:
    link = event.find(_q("linkEventDefinition"))
    return None if link is None else str(link.get("name") or "")


def _build(element: Any) -> _Scope:
    scope = _Scope(element)
    for child in element:
        kind = _local(child)
        if (kind in _ACTIVITIES or kind in _EVENTS or kind in _GATEWAYS) and child.get("id"):
            scope.nodes[str(child.get("id"))] = child
    for child in element.iter(_q("sequenceFlow")):
        if child.getparent() is not element:
            continue
        source, target = child.get("sourceRef"), child.get("targetRef")
        if source not in scope.nodes or target not in scope.nodes:
            continue  # SpiffWorkflow reports flows to nowhere when it parses
        condition = child.find(_q("conditionExpression"))
        flow = _Flow(
            id=str(child.get("id") or ""),
            source=str(source),
            target=str(target),
            conditional=condition is not None and bool((condition.text or "").strip()),
        )
        scope.outgoing.setdefault(flow.source, []).append(flow)
        scope.incoming.setdefault(flow.target, []).append(flow)
    catches: dict[str, list[str]] = {}
    for node_id, node in scope.nodes.items():
        if _local(node) == "boundaryEvent" and node.get("attachedToRef") in scope.nodes:
            scope.boundary.setdefault(str(node.get("attachedToRef")), []).append(node_id)
        if _local(node) == "intermediateCatchEvent" and _link_name(node) is not None:
            catches.setdefault(str(_link_name(node)), []).append(node_id)
    for node_id, node in scope.nodes.items():
        if _local(node) == "intermediateThrowEvent" and _link_name(node) is not None:
            scope.links[node_id] = catches.get(str(_link_name(node)), [])
    return scope


def _scopes(process: Any) -> list[Any]:
    """The process element and every subprocess inside it (any depth)."""
    found = [process]
    for element in process.iter():
        if _local(element) in _SCOPES:
            found.append(element)
    return found


def _reach(starts: Iterable[str], step: Any) -> set[str]:
    seen: set[str] = set()
    queue = deque(starts)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        queue.extend(step(node))
    return seen


def _problem(file: str, node: Any, message: str, code: str, *, error: bool = False) -> Problem:
    return Problem(
        file,
        message,
        code,
        element_id=str(node.get("id")),
        line=node.sourceline,
        severity="error" if error else "warning",
    )


def _entries(scope: _Scope) -> list[str]:
    starts = [n for n in scope.nodes if scope.kind(n) == "startEvent"]
    if starts:
        return starts
    # A subprocess without a start event starts every node that has no incoming flow.
    targets = set(scope.incoming) | {b for bs in scope.boundary.values() for b in bs}
    targets |= {c for cs in scope.links.values() for c in cs}
    return [n for n in scope.nodes if n not in targets and not scope.detached(n)]


def _unreachable(scope: _Scope, file: str) -> list[Problem]:
    reached = _reach(_entries(scope), scope.successors)
    problems = []
    for node_id, node in scope.nodes.items():
        if node_id in reached or scope.detached(node_id):
            continue
        if scope.kind(node_id) == "boundaryEvent" and node.get("attachedToRef") in reached:
            continue
        problems.append(
            _problem(
                file,
                node,
                f"{_label(node)!r} can never run: no path from a start event leads to it; "
                "connect it with a sequence flow or remove it",
                "unreachable",
            )
        )
    return problems


def _no_path_to_end(scope: _Scope, file: str) -> list[Problem]:
    predecessors: dict[str, list[str]] = {}
    for node_id in scope.nodes:
        for successor in scope.successors(node_id):
            predecessors.setdefault(successor, []).append(node_id)
    # A node with no outgoing flow ends its path as an end event does (an implicit end).
    ends = [n for n in scope.nodes if not scope.successors(n) and not scope.detached(n)]
    can_end = _reach(ends, lambda n: predecessors.get(n, []))
    stuck = [n for n in scope.nodes if n not in can_end and not scope.detached(n)]
    problems = []
    for node_id in stuck:
        message = (
            f"no end event can be reached from {_label(scope.nodes[node_id])!r}: every path "
            "from it loops without an exit; give the loop a way out to an end event"
        )
        problems.append(_problem(file, scope.nodes[node_id], message, "no-path-to-end", error=True))
    return problems


def _implicit_ends(scope: _Scope, file: str) -> list[Problem]:
    problems = []
    for node_id, node in scope.nodes.items():
        if scope.successors(node_id) or scope.detached(node_id):
            continue
        if scope.kind(node_id) == "endEvent":
            continue
        message = (
            f"{_label(node)!r} has no outgoing sequence flow and is not an end event: the path "
            "ends here, as at an end event (the process ends once nothing else is open); draw "
            "an end event after it to show that on the diagram"
        )
        problems.append(_problem(file, node, message, "implicit-end"))
    return problems


def _implicit_forks(scope: _Scope, file: str) -> list[Problem]:
    problems = []
    for node_id, flows in scope.outgoing.items():
        if scope.kind(node_id) in _GATEWAYS:
            continue
        default = scope.nodes[node_id].get("default")
        plain = [f for f in flows if not f.conditional and f.id != default]
        if len(plain) < 2:
            continue
        node = scope.nodes[node_id]
        spiff = (
            " (SpiffWorkflow refuses a task with several outgoing flows)"
            if scope.kind(node_id) in _ACTIVITIES
            else ""
        )
        problems.append(
            _problem(
                file,
                node,
                f"{_label(node)!r} has {len(plain)} outgoing flows without a condition "
                f"({', '.join(f.id for f in plain)}): all of them run at once, an implicit "
                f"parallel split{spiff}; draw a parallel gateway after it to show the split, "
                "or an exclusive gateway with conditions to choose one",
                "implicit-fork",
            )
        )
    return problems


@dataclass(frozen=True)
class _Branch:
    """One concurrent branch of a split: the flow its token leaves on (or, for a
    non-interrupting boundary event, the event it starts at)."""

    flow: str | None
    start: str


def _branches(scope: _Scope, node_id: str) -> list[_Branch]:
    """The concurrent branches leaving ``node_id``; [] if it does not split."""
    kind = scope.kind(node_id)
    default = scope.nodes[node_id].get("default")
    usable = [f for f in scope.outgoing.get(node_id, []) if f.id != default]
    branches: list[_Branch] = []
    if kind in _SPLITTING_GATEWAYS or (kind not in _GATEWAYS and len(usable) >= 2):
        branches = [_Branch(f.id, f.target) for f in usable]
    for boundary_id in scope.boundary.get(node_id, []):
        if scope.nodes[boundary_id].get("cancelActivity") == "false":
            if not branches:
                branches = [_Branch(f.id, f.target) for f in scope.outgoing.get(node_id, [])]
            branches.append(_Branch(None, boundary_id))
    return branches if len(branches) >= 2 else []


def _is_join(scope: _Scope, node_id: str) -> bool:
    kind = scope.kind(node_id)
    return kind in _SPLITTING_GATEWAYS and len(scope.incoming.get(node_id, [])) >= 2


def _implicit_joins(scope: _Scope, file: str) -> list[Problem]:
    candidates = [
        n
        for n, flows in scope.incoming.items()
        if len(flows) >= 2 and scope.kind(n) not in _GATEWAYS and scope.kind(n) != "endEvent"
    ]
    if not candidates:
        return []
    splits = {n: b for n in scope.nodes if (b := _branches(scope, n))}
    # A fake join passes its doubled tokens on, so nodes after it would be reported too. Report
    # only where the branches first meet: recompute, stopping at the joins found, until stable.
    found: dict[str, str] = {}
    for _ in range(len(candidates) + 1):
        stops = frozenset(found)
        again = {
            n: split
            for n in candidates
            if (split := _concurrent_split(scope, n, splits, stops)) is not None
        }
        if again == found:
            break
        found = again
    problems = []
    for node_id in candidates:
        if node_id not in found:
            continue
        node = scope.nodes[node_id]
        problems.append(
            _problem(
                file,
                node,
                f"{_label(node)!r} has {len(scope.incoming[node_id])} incoming flows and the "
                f"parallel branches of {_label(scope.nodes[found[node_id]])!r} can arrive on "
                "two of them together, so it would run once per branch; join the branches "
                "with a parallel gateway first",
                "implicit-join",
            )
        )
    return problems


def _tokens(
    scope: _Scope, split: str, branches: list[_Branch], node_id: str, stops: frozenset[str]
) -> dict[str, set[str]]:
    """Which of the split's tokens can leave each node, up to ``node_id``.

    Each branch's token has its own label. A join (a parallel or inclusive gateway, or one of
    ``stops``: fake joins already reported) reached by two or more tokens lets ONE merged token
    go on, with a label of its own; everything else passes its tokens along.
    """
    merged: set[str] = set()
    out: dict[str, set[str]] = {}
    for _ in range(4):  # the merged joins settle in a round or two
        arrived: dict[str, set[str]] = {}
        queue: deque[str] = deque()
        for number, branch in enumerate(branches):
            arrived.setdefault(branch.start, set()).add(f"branch-{number}")
            queue.append(branch.start)
        while queue:
            node = queue.popleft()
            if node in (split, node_id):
                continue
            leaving = {f"merged-{node}"} if node in merged else arrived[node]
            for successor in scope.successors(node):
                before = arrived.setdefault(successor, set())
                if not leaving <= before:
                    before |= leaving
                    queue.append(successor)
        joins = {
            n
            for n, tokens in arrived.items()
            if (_is_join(scope, n) or n in stops) and len(tokens) >= 2 and n != node_id
        }
        out = {n: ({f"merged-{n}"} if n in joins else t) for n, t in arrived.items()}
        if joins == merged:
            break
        merged = joins
    return out


def _concurrent_split(
    scope: _Scope, node_id: str, splits: dict[str, list[_Branch]], stops: frozenset[str]
) -> str | None:
    """A split two of whose tokens can arrive at ``node_id`` on different incoming flows."""
    incoming = scope.incoming[node_id]
    for split, branches in splits.items():
        leaving = _tokens(scope, split, branches, node_id, stops)
        carried: list[set[str]] = []  # per incoming flow: the tokens it can carry
        for flow in incoming:
            tokens = {f"branch-{n}" for n, b in enumerate(branches) if b.flow == flow.id}
            if flow.source != split:
                tokens |= leaving.get(flow.source, set())
            carried.append(tokens)
        for i, first in enumerate(carried):
            for second in carried[i + 1 :]:
                if any(a != b for a in first for b in second):
                    return split
    return None


def check_flow(root: Any, file: str) -> list[Problem]:
    """The flow rules for every process (and subprocess) of one parsed BPMN document."""
    problems: list[Problem] = []
    for process in root.iter(_q("process")):
        if (process.get("isExecutable") or "").strip().lower() == "false":
            continue  # drawn for documentation: nobody starts it
        for element in _scopes(process):
            scope = _build(element)
            if not scope.nodes:
                continue
            if _local(element) != "adHocSubProcess":
                problems += _unreachable(scope, file)
                problems += _no_path_to_end(scope, file)
                problems += _implicit_ends(scope, file)
            problems += _implicit_forks(scope, file)
            problems += _implicit_joins(scope, file)
    return problems
