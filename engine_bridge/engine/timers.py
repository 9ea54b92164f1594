"""BPMN timers that read the engine's clock instead of the host's.

SpiffWorkflow's timer event definitions compute "now" with ``datetime.now(timezone.utc)`` both
when a timer starts waiting (a duration becomes a due time) and when it checks whether it is
due. A deployment needs that to be the injected :class:`~engine_bridge.clock.Clock` so a
``FakeClock`` drives timers in tests and a whole service can be shifted in time in a demo.

Patching ``datetime`` inside SpiffWorkflow would change every workflow in the process, so the
clock travels with the workflow instead: each definition below asks
``task.workflow.script_engine.clock`` (the engine attaches a script engine carrying its clock
before every action; sub-workflows share the top workflow's script engine). Without one the
host clock is used, exactly like SpiffWorkflow.

The subclasses are registered under SpiffWorkflow's own type names (see
:func:`register_clocked_timers`), so stored definitions stay plain SpiffWorkflow JSON and load
back into these classes.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.serializer.default.event_definition import (
    TimerConditionalEventDefinitionConverter,
)
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.util.task import TaskState

from engine_bridge.loader.event_subprocesses import interrupts_scope

__all__ = [
    "MIN_CYCLE_PERIOD",
    "ClockedCycleTimer",
    "ClockedDurationTimer",
    "ClockedTimeDateTimer",
    "cycle_period",
    "due_time",
    "literal_cycle_too_short",
    "register_clocked_timers",
    "task_now",
    "waiting_due_times",
]


def task_now(task: Any) -> datetime:
    """The time as the workflow owning ``task`` sees it (aware, UTC)."""
    clock = getattr(task.workflow.script_engine, "clock", None)
    now: datetime = clock.now() if clock is not None else datetime.now(UTC)
    return now.astimezone(UTC)


def due_time(value: Any) -> datetime | None:
    """The due time of a waiting timer from its ``PendingBpmnEvent.value``.

    Durations are stored as an ISO date-time; a timeDate expression may give any ISO date-time
    or week date; cycles report their next firing. Anything else (a finished cycle, a message
    event) has no due time.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or value.upper().startswith(("P", "R")):
        return None
    try:
        parsed = TimerEventDefinition.parse_time_or_duration(value)
    except (ValueError, AttributeError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def waiting_due_times(wf: Any) -> list[datetime]:
    """The due times of the timers ``wf`` (subprocesses included) waits on.

    ``wf.waiting_events()`` reports a task's event definition as a whole, and a task with
    several (an event-based gateway: SpiffWorkflow gives it one definition holding every
    branch's event) is reported without a due time. Its timer branch keeps its due time in
    the task's own ``event_value``, as a lone timer does, and is read from there.
    """
    found: list[datetime] = []
    for task in wf.event_manager.tasks.values():
        definition = task.task_spec.event_definition
        if isinstance(definition, MultipleEventDefinition):
            values = [
                task._get_internal_data(_value_key(d, task))
                for d in definition.event_definitions
                if isinstance(d, TimerEventDefinition)
            ]
        else:
            values = [definition.details(task).value]
        found += [due for due in map(due_time, values) if due is not None]
    return found


def _interrupts(task: Any) -> bool:
    spec = task.task_spec
    if isinstance(spec, BoundaryEvent):
        return bool(spec.cancel_activity)
    if isinstance(spec, StartEvent) and task.workflow is not task.workflow.top_workflow:
        owner = task.workflow.top_workflow.get_task_from_id(task.workflow.parent_task_id)
        return interrupts_scope(owner.task_spec)
    return False


def _value_key(definition: Any, task: Any) -> str:
    """Where a timer keeps its due time on its task. SpiffWorkflow keeps it under
    ``event_value``; an event-based gateway is ONE task for all the events it waits on, so
    each of its timers keeps its own (``event_value_<n>``, n its place among the gateway's
    events), or the first timer evaluated would set the due time of every other. A gateway
    stored before that kept one shared value, and keeps using it."""
    owner = getattr(task.task_spec, "event_definition", None)
    if owner is definition or not isinstance(owner, MultipleEventDefinition):
        return "event_value"
    for n, candidate in enumerate(owner.event_definitions):
        if candidate is definition:
            key = f"event_value_{n}"
            if key not in task.internal_data and "event_value" in task.internal_data:
                return "event_value"
            return key
    return "event_value"


def _mark_if_due(task: Any, due: datetime | None) -> bool:
    # Due means "at or before now": a clock advanced by exactly the duration fires the timer.
    if due is not None and due <= task_now(task) and not _interrupted_before(task, due):
        task._set_internal_data(event_fired=True)
    return bool(task._get_internal_data("event_fired", False))


def _interrupted_before(task: Any, due: datetime) -> bool:
    """Whether an interrupting timer on the same activity fell due before ``due`` (of two due
    at once, the one drawn first): that one cancels the activity, so this one never fires.

    SpiffWorkflow fires every boundary timer it finds due, so a late tick (a worker that was
    down, dates already past) followed the 2-hour escalation and the 1-hour one, or sent a
    reminder due after the escalation that cancelled its task."""
    if not isinstance(task.task_spec, BoundaryEvent) or task.parent is None:
        return False
    now = task_now(task)
    siblings = task.parent.children
    place = siblings.index(task)
    for n, sibling in enumerate(siblings):
        spec = sibling.task_spec
        if (
            sibling is task
            or not isinstance(spec, BoundaryEvent)
            or not spec.cancel_activity
            or not isinstance(spec.event_definition, _DueOnce)
            or sibling.has_state(TaskState.FINISHED_MASK)
        ):
            continue
        # Worked out now if the sibling has not been looked at yet (both reached at once,
        # dates already past): the one drawn first is checked before the other has a value.
        other = due_time(spec.event_definition.value_for(sibling))
        if other is not None and other <= now and (other < due or (other == due and n < place)):
            return True
    return False


def _gateway_turn(definition: Any, task: Any) -> bool:
    """Whether this timer of an event-based gateway fires now: it is due, and no other timer
    of the gateway fell due before it (of two due at once, the one drawn first).

    SpiffWorkflow's gateway follows every event it saw fire, and a late tick (a worker that
    was down, dates already past) finds several timers due at once; only the one that came
    first may fire, so the gateway takes one branch, the right one."""
    owner = task.task_spec.event_definition
    now = task_now(task)
    first: tuple[datetime, Any] | None = None
    for candidate in owner.event_definitions:
        if not isinstance(candidate, _DueOnce):
            continue
        due = due_time(candidate.value_for(task))
        if due is not None and due <= now and (first is None or due < first[0]):
            first = (due, candidate)
    return first is not None and first[1] is definition


class _DueOnce:
    """A timer due once (a date, or a duration from when it starts waiting), its due value
    kept on the task: under ``event_value``, or a key of its own in an event-based gateway
    (:func:`_value_key`). Subclasses say how the value is worked out the first time."""

    def _first_value(self, my_task: Any) -> Any:
        raise NotImplementedError

    def value_for(self, my_task: Any) -> Any:
        """The due value as stored on ``my_task`` (worked out and stored the first time)."""
        key = _value_key(self, my_task)
        value = my_task._get_internal_data(key)
        if value is None:
            value = self._first_value(my_task)
            my_task.internal_data[key] = value
        return value

    def has_fired(self, my_task: Any) -> bool:
        if _value_key(self, my_task) != "event_value":
            return _gateway_turn(self, my_task)
        return _mark_if_due(my_task, due_time(self.value_for(my_task)))


class ClockedTimeDateTimer(_DueOnce, TimeDateEventDefinition):  # type: ignore[misc]
    """``timeDate``: fires once the clock reaches the given date-time."""

    def _first_value(self, my_task: Any) -> Any:
        return my_task.workflow.script_engine.evaluate(my_task, self.expression)

    def details(self, my_task: Any) -> Any:
        value = my_task._get_internal_data("event_value")
        return PendingBpmnEvent(self.name, TimeDateEventDefinition.__name__, value)


class ClockedDurationTimer(_DueOnce, DurationTimerEventDefinition):  # type: ignore[misc]
    """``timeDuration``: the due time is fixed (clock now + duration) when the timer starts
    waiting, and stored in the task so it survives serialization."""

    def _first_value(self, my_task: Any) -> Any:
        expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        parsed = _iso_duration(str(expression))
        start = task_now(my_task)
        delta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
        return (start + delta).isoformat()

    def details(self, my_task: Any) -> Any:
        value = my_task._get_internal_data("event_value")
        return PendingBpmnEvent(self.name, DurationTimerEventDefinition.__name__, value)


# SpiffWorkflow counts a duration's years and months one month at a time, so ``P9999999Y``
# would keep the engine busy for hours; past the year 9999 no date can hold the result anyway.
_MAX_DURATION_MONTHS = 12 * 10_000


def _iso_duration(text: str) -> dict[str, Any]:
    """SpiffWorkflow's parse of an ISO 8601 duration, refusing one longer than any date can
    reach (a ``ValueError``, before anything counts its months)."""
    parsed: dict[str, Any] = TimerEventDefinition.parse_iso_duration(text)
    if parsed.get("years", 0) * 12 + parsed.get("months", 0) > _MAX_DURATION_MONTHS:
        raise ValueError(f"duration {text!r} reaches past the year 9999")
    return parsed


MIN_CYCLE_PERIOD = timedelta(seconds=1)
"""The shortest time a ``timeCycle`` may leave between two repetitions.

A cycle fires at most one repetition each time the engine looks at it: a worker ticks about
once a second, and a late tick replays the repetitions that fell due one at a time, each
growing the instance by a copy of the timer's path. A period of zero never moves the next
repetition on, so the engine never comes to rest (``R/PT0S`` on a non-interrupting boundary
timer makes ``start`` loop for ever); a period of a millisecond makes every tick replay a
thousand repetitions. Nothing shorter than the worker's own rhythm can be meant, so a second
is the floor: a cycle of ``PT1S`` or more is taken as written, anything shorter (zero
included) is refused, at load time when the expression is a literal (``timer-cycle-too-short``)
and when the timer starts waiting otherwise. A ``timeDuration`` of zero is fine: it fires once,
at once.
"""


def cycle_period(expression: str, now: datetime | None = None) -> timedelta:
    """The time between two repetitions of an ISO 8601 cycle (``R3/PT1H`` → one hour).

    Months and years are counted from ``now`` (the host clock if not given). Raises
    ``ValueError`` (or SpiffWorkflow's plain ``Exception``) if ``expression`` is not a cycle.
    """
    return timedelta(seconds=_cycle_start(expression, now or datetime.now(UTC))["duration"])


def literal_cycle_too_short(source: str) -> str | None:
    """Why the ``timeCycle`` expression ``source`` is refused, if it is a string literal
    (``"R/PT0S"``) naming a cycle shorter than :data:`MIN_CYCLE_PERIOD`; else None.

    Anything else (an expression over task data, a text that is not a cycle) is left to run
    time, where the same rule applies to the value it gives."""
    try:
        value = ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(value, str):
        return None
    try:
        period = cycle_period(value)
    except Exception:  # SpiffWorkflow's parser raises a plain Exception
        return None
    reason = _too_short(period)
    return None if reason is None else f"timeCycle {value!r} {reason}"


def _too_short(period: timedelta) -> str | None:
    if period >= MIN_CYCLE_PERIOD:
        return None
    return (
        f"repeats every {period.total_seconds():g} seconds; a cycle must wait at least "
        f"{MIN_CYCLE_PERIOD.total_seconds():g} second between repetitions "
        '(write one such as "R/PT1M")'
    )


def _cycle_start(expression: str, now: datetime) -> dict[str, Any]:
    """Parse ``R<n>/<start>/<duration>``-style cycles; a bare ``R<n>/<duration>`` starts from
    the clock's now (the one case where SpiffWorkflow would read the host clock)."""
    parts = expression.upper().replace("--", "/").strip("R").split("/")
    durations = [_iso_duration(part) for part in parts[1:] if part.startswith("P")]
    if len(parts) == 2 and durations:
        cycles = int(parts[0]) if parts[0] else -1
        parsed = durations[0]
        duration = TimerEventDefinition.get_timedelta_from_start(parsed, now)
        start = now + duration
    else:
        cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(expression)
    return {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds()}


def _refuse_short_cycle(expression: str, value: Any | None, seconds: float) -> None:
    """Refuse a cycle below :data:`MIN_CYCLE_PERIOD`. A ``ValueError``, as for a cycle that
    does not parse: the engine reports it as an ``EngineError`` naming the timer's element,
    and the action that reached the timer is not kept. ``value``: what the expression gave,
    None if it is not known (a cycle stored earlier)."""
    reason = _too_short(timedelta(seconds=seconds))
    if reason is None:
        return
    source = expression.strip()
    literal = value is None or source in (repr(value), f'"{value}"')
    gives = "" if literal else f" gives {str(value)!r}, which"
    raise ValueError(f"timeCycle {source}{gives} {reason}")


class ClockedCycleTimer(CycleTimerEventDefinition):  # type: ignore[misc]
    """``timeCycle``: each due repetition lets the boundary event fire once more."""

    def cycle_complete(self, my_task: Any) -> bool:
        value = my_task._get_internal_data("event_value")
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            value = _cycle_start(str(expression), task_now(my_task))
            _refuse_short_cycle(self.expression, expression, value["duration"])
        elif value["cycles"] != 0:  # stored by a bridge that took any cycle
            _refuse_short_cycle(self.expression, None, value["duration"])
        if value["cycles"] == 0:
            # Every repetition has fired: the event itself completes.
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
            return False
        fired = False
        due = datetime.fromisoformat(value["next"])
        if due <= task_now(my_task) and not _interrupted_before(my_task, due):
            if _interrupts(my_task):
                # An interrupting timer fires once: its first repetition cancels what it is
                # on. SpiffWorkflow would start its path at every repetition, cancelling none.
                my_task.internal_data.pop("event_value", None)
                my_task.internal_data["event_fired"] = True
                return False
            value = dict(value)
            value["next"] = (due + timedelta(seconds=value["duration"])).isoformat()
            value["cycles"] -= 1
            fired = True
        my_task._set_internal_data(event_value=value)
        return fired

    def update_task(self, my_task: Any) -> None:
        super().update_task(my_task)
        if my_task._get_internal_data("event_fired", False) and _interrupts(my_task):
            # It fired as a plain timer does: its path predicted (SpiffWorkflow leaves a cycle
            # event without children, adding a copy of its path per repetition instead), and
            # ready now rather than at the next look.
            spec = my_task.task_spec
            super(CatchingEvent, spec)._predict_hook(my_task)
            spec._update(my_task)

    def details(self, my_task: Any) -> Any:
        value = my_task._get_internal_data("event_value")
        if isinstance(value, dict) and value.get("cycles") != 0:
            value = value["next"]
        return PendingBpmnEvent(self.name, CycleTimerEventDefinition.__name__, value)


_CLOCKED = {
    TimeDateEventDefinition: ClockedTimeDateTimer,
    DurationTimerEventDefinition: ClockedDurationTimer,
    CycleTimerEventDefinition: ClockedCycleTimer,
}


def register_clocked_timers(registry: Any) -> None:
    """Make ``registry`` restore timers as the clocked classes, under SpiffWorkflow's names.

    Both the original and the clocked class serialize to the same JSON, so a definition
    written from freshly parsed specs and one written from restored specs are identical.
    """
    for original, clocked in _CLOCKED.items():
        TimerConditionalEventDefinitionConverter(clocked, registry, typename=original.__name__)
