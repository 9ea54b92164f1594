"""Event subprocesses end and interrupt their scope as BPMN says, which SpiffWorkflow 3.2 does
not do by itself.

SpiffWorkflow runs an event subprocess as a branch beside its scope's main flow (the loader
wires every one to its scope's start: ``loader.event_subprocesses``). Left at that:

- a scope whose main flow has ended still waits for its event subprocesses to be triggered, so
  a finished request stayed open until, say, its reminder timer fired and opened a todo;
- an interrupting event subprocess ran beside the main flow, whose todos stayed open;
- a non-interrupting one caught its message once only.

:func:`settle_event_subprocesses` runs between the engine's rounds and puts that right:

- an interrupting event subprocess that has been triggered cancels everything else in its
  scope (main flow, other event subprocesses); the scope ends when it ends;
- when nothing but untriggered event subprocesses is left in a scope, they are cancelled and
  the scope ends;
- a non-interrupting event subprocess started by something other than a timer is armed again
  once triggered, so the next message (signal, escalation) starts another instance of it.

Only event subprocesses marked by the loader (``EVENT_SUBPROCESS_KEY``) are handled, so an
instance stored before the mark existed runs as it did.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine_bridge.loader.event_subprocesses import EVENT_SUBPROCESS_KEY

__all__ = ["has_event_subprocesses", "settle_event_subprocesses"]

_FIRED = TaskState.READY | TaskState.STARTED | TaskState.COMPLETED | TaskState.ERROR
_INTERRUPTED = "eb_interrupted"  # internal data of an event subprocess task that interrupted
_REARMED = "eb_rearmed"  # internal data of one that has been armed again
_ATTRIBUTE = "_eb_event_subprocesses"  # cached on the workflow spec: does any scope have one


def _marked(task_spec: Any) -> bool:
    extensions = getattr(task_spec, "extensions", None)
    return isinstance(extensions, dict) and EVENT_SUBPROCESS_KEY in extensions


def has_event_subprocesses(wf: Any) -> bool:
    """Whether any scope of ``wf`` has a marked event subprocess (worked out once per spec)."""
    known = getattr(wf.spec, _ATTRIBUTE, None)
    if known is None:
        specs = [wf.spec, *wf.subprocess_specs.values()]
        known = any(_marked(ts) for spec in specs for ts in spec.task_specs.values())
        setattr(wf.spec, _ATTRIBUTE, known)
    return bool(known)


def settle_event_subprocesses(wf: Any) -> bool:
    """Apply the rules above to every scope of ``wf``; True when a task was cancelled or an
    event subprocess armed again (the engine then has more to run)."""
    if not has_event_subprocesses(wf):
        return False
    changed = False
    for scope in [wf, *list(wf.subprocesses.values())]:
        if scope.is_completed():
            continue
        changed |= _settle_scope(wf, scope)
    return changed


def _settle_scope(wf: Any, scope: Any) -> bool:
    event_tasks = [
        t
        for t in scope.tasks.values()
        if _marked(t.task_spec) and not t.has_state(TaskState.FINISHED_MASK)
    ]
    if not event_tasks:
        return False
    fired = {t.id: _fired_start(wf, t) for t in event_tasks}
    for task in event_tasks:
        start = fired[task.id]
        if start is None:
            continue
        if task.task_spec.extensions[EVENT_SUBPROCESS_KEY]:
            if not task.internal_data.get(_INTERRUPTED):
                task.internal_data[_INTERRUPTED] = True
                _cancel_all_but(scope, task)
                return True
        elif not task.internal_data.get(_REARMED) and not isinstance(
            start.task_spec.event_definition, TimerEventDefinition
        ):
            task.internal_data[_REARMED] = True
            _arm_again(task)
            return True
    if _main_flow_ended(scope):
        waiting = [t for t in event_tasks if fired[t.id] is None]
        for task in waiting:
            task.cancel()
        if waiting:
            _recheck_end(scope)
        return bool(waiting)
    return False


def _recheck_end(scope: Any) -> None:
    """The scope's end join waits for every other task; SpiffWorkflow only looks again when
    a task before it completes, not when one is cancelled."""
    for task in list(scope.tasks.values()):
        if task.task_spec.name == scope.spec.end.name and task.state == TaskState.WAITING:
            task.task_spec._update(task)


def _fired_start(wf: Any, task: Any) -> Any | None:
    """The start event of ``task``'s event subprocess that has been triggered, or None."""
    subprocess = wf.subprocesses.get(task.id)
    if subprocess is None:
        return None
    for inner in subprocess.tasks.values():
        if isinstance(inner.task_spec, StartEvent) and inner.has_state(_FIRED):
            return inner
    return None


def _cancel_all_but(scope: Any, keep: Any) -> None:
    """Cancel every unfinished task of ``scope`` except ``keep``, its ancestors and what
    follows it (its own way to the scope's end)."""
    ancestors = set()
    node = keep
    while node is not None:
        ancestors.add(node.id)
        node = node.parent
    stack = [scope.task_tree]
    while stack:
        task = stack.pop()
        if task.id == keep.id:
            continue
        if task.id in ancestors or task.has_state(TaskState.FINISHED_MASK):
            stack.extend(task.children)
        else:
            task.cancel()


def _main_flow_ended(scope: Any) -> bool:
    """Nothing is left in ``scope`` but event subprocesses and the scope's end."""
    # By name: a spec read back from JSON keeps a fresh ``end`` beside the one its tasks use.
    ending = {scope.spec.end.name, *(s.name for s in scope.spec.end.outputs)}
    for task in scope.tasks.values():
        if not task.has_state(TaskState.DEFINITE_MASK):
            continue
        if task.task_spec.name in ending or _marked(task.task_spec):
            continue
        return False
    return True


def _arm_again(task: Any) -> None:
    """Another instance of ``task``'s event subprocess, waiting beside the one triggered."""
    twin = task.parent._add_child(task.task_spec, TaskState.FUTURE)
    twin.task_spec._update(twin)
