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

A signal thrown inside the instance starts its event subprocess in the middle of an engine run.
:func:`run_engine_steps` applies the rules right after every throw, and stops SpiffWorkflow's
run there: its list of READY tasks was taken before the throw, so it would still run a script
or call a service the interruption has just cancelled.

Only event subprocesses marked by the loader (``is_event_subprocess``) are handled, so an
instance stored before the mark existed runs as it did.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.util.task import TaskState

from engine_bridge.loader.event_subprocesses import interrupts_scope, is_event_subprocess

__all__ = ["run_engine_steps", "settle_event_subprocesses"]

_FIRED = TaskState.READY | TaskState.STARTED | TaskState.COMPLETED | TaskState.ERROR
_BEGUN = _FIRED | TaskState.WAITING
_INTERRUPTED = "eb_interrupted"  # internal data of an event subprocess task that interrupted
_REARMED = "eb_rearmed"  # internal data of one that has been armed again
_ATTRIBUTE = "_eb_event_subprocesses"  # cached on the workflow spec: does any scope have one


def _has_event_subprocesses(wf: Any) -> bool:
    """Whether any scope of ``wf`` has a marked event subprocess (worked out once per spec)."""
    known = getattr(wf.spec, _ATTRIBUTE, None)
    if known is None:
        specs = [wf.spec, *wf.subprocess_specs.values()]
        known = any(is_event_subprocess(ts) for spec in specs for ts in spec.task_specs.values())
        setattr(wf.spec, _ATTRIBUTE, known)
    return bool(known)


class _SettledMidRun(Exception):
    """A throw was caught by an event subprocess and the rules applied: the engine run must
    start again from the tasks that are READY now."""


def run_engine_steps(wf: Any) -> bool:
    """``wf.do_engine_steps()``, left as soon as a throw has changed what may run; True then
    (the caller runs the engine again)."""
    if not _has_event_subprocesses(wf):
        wf.do_engine_steps()
        return False

    def after(task: Any) -> None:
        if isinstance(task.task_spec, ThrowingEvent) and settle_event_subprocesses(wf):
            raise _SettledMidRun

    try:
        wf.do_engine_steps(did_complete_task=after)
    except _SettledMidRun:
        return True
    return False


def settle_event_subprocesses(wf: Any) -> bool:
    """Apply the rules above to every scope of ``wf``; True when a task was cancelled or an
    event subprocess armed again (the engine then has more to run)."""
    if not _has_event_subprocesses(wf):
        return False
    changed = False
    for scope in [wf, *list(wf.subprocesses.values())]:
        if scope.is_completed():
            continue
        changed |= _settle_scope(wf, scope)
    return changed


def _settle_scope(wf: Any, scope: Any) -> bool:
    marked = [t for t in scope.tasks.values() if is_event_subprocess(t.task_spec)]
    if not marked:
        return False
    fired: dict[Any, Any] = {}
    for task in marked:
        if task.state == TaskState.CANCELLED:
            continue
        # A triggered one not handled yet: running, or already ended (a signal thrown inside
        # the instance starts one in the middle of an engine run, which may end it too).
        trigger = fired[task.id] = _trigger(wf, task)
        if trigger is None:
            continue
        if interrupts_scope(task.task_spec):
            if not task.internal_data.get(_INTERRUPTED):
                task.internal_data[_INTERRUPTED] = True
                _cancel_all_but(scope, task)
                _recheck_end(scope)
                return True
        elif not task.internal_data.get(_REARMED) and not isinstance(trigger, TimerEventDefinition):
            task.internal_data[_REARMED] = True
            _arm_again(task)
            return True
    live = [t for t in marked if not t.has_state(TaskState.FINISHED_MASK)]
    if not live or not _main_flow_ended(scope):
        return False
    waiting = [t for t in live if fired.get(t.id) is None]
    for task in waiting:
        task.cancel()
    if waiting:
        _recheck_end(scope)
    # A triggered one is waited for, but its start waits no more (a cycle would start its path
    # again at every repetition, and keep the scope open for ever).
    repeating = [
        start
        for t in live
        if fired.get(t.id) is not None and t.id in wf.subprocesses
        for start in wf.subprocesses[t.id].tasks.values()
        if isinstance(start.task_spec, StartEvent) and start.state == TaskState.WAITING
    ]
    for start in repeating:
        # Not Task.cancel: that would drop the copies of its path already running.
        start._set_state(TaskState.CANCELLED)
        wf.event_manager.remove_task(start)
        _recheck_end(start.workflow)
    return bool(waiting or repeating)


def _trigger(wf: Any, task: Any) -> Any | None:
    """The event definition that started ``task``'s event subprocess, or None while nothing
    has (an event subprocess that ended was started by its first start event)."""
    if task.state == TaskState.COMPLETED:
        spec = wf.subprocess_specs.get(task.task_spec.spec)
        starts = getattr(spec, "bpmn_start_events", None) or [None]
        return getattr(starts[0], "event_definition", None)
    start = _fired_start(wf, task)
    return None if start is None else start.task_spec.event_definition


def _recheck_end(scope: Any) -> None:
    """The scope's end join waits for every other task; SpiffWorkflow only looks again when
    a task before it completes, not when one is cancelled."""
    for task in list(scope.tasks.values()):
        if task.task_spec.name == scope.spec.end.name and task.state == TaskState.WAITING:
            task.task_spec._update(task)


def _fired_start(wf: Any, task: Any) -> Any | None:
    """The start event of ``task``'s event subprocess once it has been triggered, or None.

    Triggered: its start event fired, or (a cycle timer, which stays waiting and starts a
    copy of its path at each repetition) something after it has begun."""
    subprocess = wf.subprocesses.get(task.id)
    if subprocess is None:
        return None
    starts = [t for t in subprocess.tasks.values() if isinstance(t.task_spec, StartEvent)]
    for start in starts:
        if start.has_state(_FIRED):
            return start
    begun = any(
        t.has_state(_BEGUN) and not isinstance(t.task_spec, StartEvent)
        for t in subprocess.tasks.values()
        if t.task_spec.name != "Start"
    )
    return starts[0] if begun and starts else None


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
        if task.task_spec.name in ending or is_event_subprocess(task.task_spec):
            continue
        return False
    return True


def _arm_again(task: Any) -> None:
    """Another instance of ``task``'s event subprocess, waiting beside the one triggered."""
    twin = task.parent._add_child(task.task_spec, TaskState.FUTURE)
    twin.task_spec._update(twin)
