"""Event subprocesses as BPMN runs them, prepared in the parsed specs.

SpiffWorkflow 3.2 starts an event subprocess whose start event has no event or a timer as a
branch beside the main flow, and creates the others (message, signal, error, escalation
starts) only when the top process itself catches their event: one in an embedded subprocess
is never started, and ``Bridge.message`` had nothing waiting to hand the message to. This
module wires every event subprocess of a scope to its scope's start, so each one waits from
the moment its scope starts, whatever starts it and however deep it is.

It also writes on each event subprocess's spec whether it interrupts its scope (the
``isInterrupting`` of its start event, which SpiffWorkflow does not read), under
``EVENT_SUBPROCESS_KEY`` in the spec's serialized extensions. The engine
(``engine.event_subprocesses``) reads that mark to interrupt the scope, and to end the scope
when its main flow ends; specs stored before carry no mark and run as they always did (the
library's version includes the loader's revision, so those stored definitions stay apart).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask

__all__ = [
    "EVENT_SUBPROCESS_KEY",
    "interrupts_scope",
    "is_event_subprocess",
    "prepare_event_subprocesses",
]

#: Extension key on an event subprocess's task spec: True when it interrupts its scope.
EVENT_SUBPROCESS_KEY = "eb_interrupting"

_BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def is_event_subprocess(task_spec: Any) -> bool:
    """Whether ``task_spec`` is an event subprocess the loader marked (specs stored before the
    mark carry none and run as SpiffWorkflow alone runs them)."""
    extensions = getattr(task_spec, "extensions", None)
    return isinstance(extensions, dict) and EVENT_SUBPROCESS_KEY in extensions


def interrupts_scope(task_spec: Any) -> bool:
    """Whether ``task_spec`` is a marked event subprocess that interrupts its scope."""
    return is_event_subprocess(task_spec) and bool(task_spec.extensions[EVENT_SUBPROCESS_KEY])


def prepare_event_subprocesses(parser: Any, specs: Iterable[Any]) -> None:
    """Wire and mark the event subprocesses of ``specs`` (process and subprocess specs parsed
    by ``parser``). Running it twice changes nothing more."""
    for spec in specs:
        start = spec.start
        for name in list(getattr(start, "trigger_specs", ())):
            event_subprocess = spec.task_specs[name]
            if event_subprocess not in start.outputs:
                start.connect(event_subprocess)
                event_subprocess.connect(spec.end)
        if getattr(start, "trigger_specs", None):
            start.trigger_specs.clear()
        inner = []
        for task_spec in spec.task_specs.values():
            node = _event_subprocess_node(parser, task_spec)
            if node is not None:
                task_spec.extensions[EVENT_SUBPROCESS_KEY] = _interrupting(node)
                inner.append(task_spec)
        if inner and _is_event_subprocess(parser, spec):
            _wait_from_trigger(spec, inner)


def _is_event_subprocess(parser: Any, spec: Any) -> bool:
    node = getattr(parser.process_parsers.get(spec.name), "node", None)
    return node is not None and node.get("triggeredByEvent") == "true"


def _wait_from_trigger(spec: Any, inner: list[Any]) -> None:
    """An event subprocess inside an event subprocess: its scope runs from the outer one's
    trigger, not from when the outer one starts waiting (SpiffWorkflow creates that at once,
    with the process). Its inner ones are wired to the outer one's start events instead of
    to its ``Start``, so they wait only once it has been triggered."""
    start = spec.start
    for event_subprocess in inner:
        # ``outputs`` and ``inputs`` are lists built from names on every read: set them whole.
        if event_subprocess in start.outputs:
            start.outputs = [s for s in start.outputs if s is not event_subprocess]
            event_subprocess.inputs = [s for s in event_subprocess.inputs if s is not start]
        for start_event in spec.bpmn_start_events:
            if event_subprocess not in start_event.outputs:
                start_event.connect(event_subprocess)


def _event_subprocess_node(parser: Any, task_spec: Any) -> Any | None:
    """The ``subProcess triggeredByEvent="true"`` element ``task_spec`` was parsed from, or
    None (SpiffWorkflow's parser gives an event subprocess the plain subprocess class)."""
    if not isinstance(task_spec, SubWorkflowTask) or not isinstance(task_spec.spec, str):
        return None
    node = getattr(parser.process_parsers.get(task_spec.spec), "node", None)
    if node is None or node.get("triggeredByEvent") != "true":
        return None
    return node


def _interrupting(node: Any) -> bool:
    """BPMN's default is interrupting; only ``isInterrupting="false"`` on every start event
    of the event subprocess makes it run beside its scope."""
    starts = node.findall(f"{{{_BPMN}}}startEvent")
    return not starts or any(s.get("isInterrupting", "true") != "false" for s in starts)
