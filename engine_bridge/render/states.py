"""What each BPMN element of an instance looks like now: done, waiting for a person, waiting for
an event, in progress, cancelled or not reached, read from the stored SpiffWorkflow state.

SpiffWorkflow keeps one task per time a node was reached (loops, each multi-instance signer,
tasks inside subprocesses and call activities), plus predicted ones it has not reached. A
picture needs one state per element, so the tasks of each ``bpmn_id`` are folded into one, the
most telling winning: a node waiting for a person beats one that is done, which beats one that
was cancelled. Boundary events and gateways that were armed but never fired are "not reached",
not "cancelled": only activities a person could see are shown as cancelled. An event that
waits for its timer, message or signal (a catch event, a boundary event on a running task, a
receive task, an event subprocess's start, an event-based gateway and its events) is "armed",
not "in progress": nothing runs there until the event comes, and an operator reading the
picture should look at the clock or the sender, not at the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.util.task import TaskState

__all__ = ["STATES", "NodeState", "State", "element_states", "instance_states"]

State = Literal["done", "waiting", "active", "armed", "cancelled", "not-reached"]
# Order of the legend, and of precedence when several tasks share an element (first wins).
STATES: tuple[State, ...] = ("waiting", "active", "armed", "done", "cancelled", "not-reached")


@dataclass(frozen=True)
class NodeState:
    """How one element is drawn: its state and, when waiting, who may act on it."""

    state: State
    handlers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def _task_state(task: Any) -> State:
    state = task.state
    spec = task.task_spec
    if state == TaskState.COMPLETED:
        return "done"
    if state == TaskState.READY and isinstance(spec, UserTask | ManualTask):
        return "waiting"
    if state == TaskState.WAITING and getattr(spec, "event_definition", None) is not None:
        return "armed"
    if state & TaskState.PREDICTED_MASK and _armed_gateway(task.parent):
        return "armed"  # an event-based gateway's events: the one that comes first is taken
    if state in (TaskState.READY, TaskState.STARTED, TaskState.WAITING, TaskState.ERROR):
        return "active"
    if state == TaskState.CANCELLED:
        is_event = getattr(spec, "event_definition", None) is not None
        is_gateway = any(c.__name__.endswith("Gateway") for c in type(spec).__mro__)
        return "not-reached" if is_event or is_gateway else "cancelled"
    return "not-reached"  # FUTURE, LIKELY, MAYBE: predicted, not reached


def _armed_gateway(task: Any) -> bool:
    return (
        task is not None
        and task.state == TaskState.WAITING
        and type(task.task_spec).__name__ == "EventBasedGateway"
    )


def element_states(wf: Any) -> dict[str, State]:
    """One state per BPMN element id over every task of the workflow, subprocesses included."""
    found: dict[str, State] = {}
    for task in wf.get_tasks():
        bpmn_id = getattr(task.task_spec, "bpmn_id", None)
        if not bpmn_id:
            continue  # SpiffWorkflow's own start/end/join helpers
        state = _task_state(task)
        current = found.get(bpmn_id)
        if current is None or STATES.index(state) < STATES.index(current):
            found[bpmn_id] = state
    return found


def instance_states(
    wf: Any, waiting: Iterable[Any], *, cancelled: bool = False
) -> dict[str, NodeState]:
    """Element states with handlers: ``waiting`` are the todos the engine waits on (objects
    with ``node_id``, ``handlers``, ``handling_groups``, such as ``Bridge.waiting``). With
    ``cancelled`` (the business cancelled the instance) nothing is left waiting or active."""
    people: dict[str, tuple[list[str], list[str]]] = {}
    for todo in waiting:
        handlers, groups = people.setdefault(str(todo.node_id), ([], []))
        handlers += [h for h in todo.handlers if h not in handlers]
        groups += [g for g in todo.handling_groups if g not in groups]
    result: dict[str, NodeState] = {}
    for element_id, state in element_states(wf).items():
        if cancelled and state in ("waiting", "active", "armed"):
            state = "cancelled"
        handlers, groups = people.get(element_id, ([], []))
        if state == "waiting":
            result[element_id] = NodeState(state, tuple(handlers), tuple(groups))
        else:
            result[element_id] = NodeState(state)
    return result
