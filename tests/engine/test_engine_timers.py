"""Timers follow the injected clock: due times, tick, boundary and intermediate events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine_bridge.clock import FakeClock
from engine_bridge.engine.runtime import TimersFailedFirst
from engine_bridge.errors import EngineDataError, EngineError, TaskNotOpenError

from .kit import END, START, Run, chain, definitions, flow, load, process, user

T0 = datetime(2031, 3, 1, 8, 0, tzinfo=UTC)  # far from the host clock on purpose


def timer(kind: str, value: str) -> str:
    return (
        f"<bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}></bpmn:timerEventDefinition>"
    )


def boundary(interrupting: bool, definition: str = "") -> str:
    definition = definition or timer("timeDuration", '"PT48H"')
    return definitions(
        process(
            "bt",
            START + user("a", "'U1'") + f'<bpmn:boundaryEvent id="timeout" attachedToRef="a" '
            f'cancelActivity="{str(interrupting).lower()}">{definition}</bpmn:boundaryEvent>'
            + user("escalate", "'BOSS'")
            + user("b", "'U2'")
            + END
            + '<bpmn:endEvent id="end2"/>'
            + chain("start", "a", "b", "end")
            + chain("timeout", "escalate", "end2"),
        )
    )


def run_for(xml: str, pid: str = "bt") -> Run:
    run = Run(load(xml, pid), clock=FakeClock(T0))
    run.start()
    return run


def test_due_time_comes_from_the_injected_clock() -> None:
    """A PT48H timer started at the fake clock's now is due 48 hours after it."""
    run = run_for(boundary(True))
    assert run.engine.next_timer_at(run.wf) == T0 + timedelta(hours=48)


def test_tick_before_due_changes_nothing() -> None:
    """tick() returns None while no timer is due, and the todo stays open."""
    run = run_for(boundary(True))
    before = run.facts
    assert run.tick(timedelta(hours=47, minutes=59)) is None
    assert run.facts == before
    assert run.nodes() == ["a"]


def test_interrupting_boundary_timer_cancels_the_task_and_opens_escalation() -> None:
    """At the due time, tick fires: A is cancelled, Escalate opens; nothing left waiting."""
    run = run_for(boundary(True))
    a_id = run.todo("a").todo_id
    facts = run.tick(timedelta(hours=48))
    assert facts is not None and facts.action == "tick"
    assert run.nodes() == ["escalate"]
    assert a_id not in {t.todo_id for t in facts.open_todos}
    assert run.engine.next_timer_at(run.wf) is None
    assert run.complete("escalate", "BOSS").finished


def test_non_interrupting_boundary_timer_adds_a_todo_and_keeps_the_task() -> None:
    """A non-interrupting timer opens Escalate beside A; completing A still moves on."""
    run = run_for(boundary(False))
    a_id = run.todo("a").todo_id
    run.tick(timedelta(days=3))
    assert sorted(run.nodes()) == ["a", "escalate"]
    assert run.todo("a").todo_id == a_id
    run.complete("a", "U1")
    assert sorted(run.nodes()) == ["b", "escalate"]


def test_completing_before_the_timer_removes_the_timer() -> None:
    """Once A is done its boundary timer no longer waits."""
    run = run_for(boundary(True))
    run.complete("a", "U1")
    assert run.engine.next_timer_at(run.wf) is None
    assert run.tick(timedelta(days=5)) is None
    assert run.nodes() == ["b"]


def test_time_date_boundary_fires_at_that_date() -> None:
    """timeDate: due at the given date-time on the fake clock."""
    when = T0 + timedelta(days=2)
    run = run_for(boundary(True, timer("timeDate", f'"{when.isoformat()}"')))
    assert run.engine.next_timer_at(run.wf) == when
    assert run.tick(timedelta(days=1)) is None
    assert run.tick(timedelta(days=1)) is not None
    assert run.nodes() == ["escalate"]


def test_cycle_boundary_fires_once_per_period() -> None:
    """A non-interrupting R2/PT1H cycle opens one Escalate per elapsed hour, twice at most."""
    run = run_for(boundary(False, timer("timeCycle", '"R2/PT1H"')))
    assert run.engine.next_timer_at(run.wf) == T0 + timedelta(hours=1)
    run.tick(timedelta(hours=1))
    assert sorted(run.nodes()) == ["a", "escalate"]
    assert run.engine.next_timer_at(run.wf) == T0 + timedelta(hours=2)
    run.tick(timedelta(hours=1))
    assert sorted(run.nodes()) == ["a", "escalate", "escalate"]
    assert run.engine.next_timer_at(run.wf) is None
    assert run.tick(timedelta(hours=5)) is None


INTERMEDIATE = definitions(
    process(
        "it",
        START
        + user("a", "'U1'")
        + '<bpmn:intermediateCatchEvent id="wait">'
        + timer("timeDuration", '"P1D"')
        + "</bpmn:intermediateCatchEvent>"
        + user("b", "'U2'")
        + END
        + chain("start", "a", "wait", "b", "end"),
    )
)


def test_intermediate_timer_waits_from_when_it_is_reached() -> None:
    """The delay counts from the completion that reached the timer, on the fake clock."""
    run = run_for(INTERMEDIATE, "it")
    run.clock.advance(timedelta(hours=5))
    facts = run.complete("a", "U1")
    assert facts.open_todos == () and not facts.finished
    assert run.engine.next_timer_at(run.wf) == T0 + timedelta(hours=5, days=1)
    assert run.tick(timedelta(hours=23)) is None
    run.tick(timedelta(hours=1))
    assert run.nodes() == ["b"]


def test_timer_due_during_a_completion_fires_in_that_step() -> None:
    """A timer already due when a person completes another branch fires in the same step."""
    xml = definitions(
        process(
            "pt",
            START
            + '<bpmn:parallelGateway id="fork"/>'
            + user("a", "'U1'")
            + user("c", "'U3'")
            + '<bpmn:boundaryEvent id="late" attachedToRef="c" cancelActivity="true">'
            + timer("timeDuration", '"PT1H"')
            + "</bpmn:boundaryEvent>"
            + user("late_todo", "'BOSS'")
            + END
            + '<bpmn:endEvent id="e2"/><bpmn:endEvent id="e3"/>'
            + chain("start", "fork")
            + flow("fork", "a")
            + flow("fork", "c")
            + chain("a", "end")
            + chain("c", "e2")
            + chain("late", "late_todo", "e3"),
        )
    )
    run = run_for(xml, "pt")
    run.clock.advance(timedelta(hours=2))
    run.complete("a", "U1")
    assert run.nodes() == ["late_todo"]


def test_cancel_stops_waiting_timers() -> None:
    """A cancelled instance has no timer left and tick leaves it alone."""
    run = run_for(INTERMEDIATE, "it")
    run.complete("a", "U1")
    assert run.engine.next_timer_at(run.wf) is not None
    run.cancel()
    assert run.engine.next_timer_at(run.wf) is None
    assert run.tick(timedelta(days=9)) is None


def two_timers(first: tuple[str, str, bool], second: tuple[str, str, bool]) -> str:
    """Task ``a`` with two boundary timers (id, duration, interrupting), drawn in this order,
    each leading to a todo of its own named after it."""
    events = "".join(
        f'<bpmn:boundaryEvent id="{eid}" attachedToRef="a" '
        f'cancelActivity="{str(interrupting).lower()}">'
        f"{timer('timeDuration', repr(duration).replace(chr(39), chr(34)))}</bpmn:boundaryEvent>"
        + user(f"{eid}_todo", "'BOSS'")
        + f'<bpmn:endEvent id="{eid}_end"/>'
        + chain(eid, f"{eid}_todo", f"{eid}_end")
        for eid, duration, interrupting in (first, second)
    )
    return definitions(
        process("bt", START + user("a", "'U1'") + END + chain("start", "a", "end") + events)
    )


def test_a_late_tick_fires_only_the_interrupting_timer_that_fell_due_first() -> None:
    """Two interrupting timers (2h drawn first, 1h second), one tick at 3h: the 1h one
    cancelled the task an hour before the other fell due, so only its path opens."""
    run = run_for(two_timers(("t2h", "PT2H", True), ("t1h", "PT1H", True)))
    run.tick(timedelta(hours=3))
    assert run.nodes() == ["t1h_todo"]


def test_a_late_tick_fires_no_reminder_due_after_the_task_was_interrupted() -> None:
    run = run_for(two_timers(("remind", "PT2H", False), ("stop", "PT1H", True)))
    run.tick(timedelta(hours=3))
    assert run.nodes() == ["stop_todo"]


def test_a_reminder_due_before_the_interruption_fires_too() -> None:
    """The reminder (1h) came before the escalation (2h): both happened, in that order."""
    run = run_for(two_timers(("remind", "PT1H", False), ("stop", "PT2H", True)))
    run.tick(timedelta(hours=3))
    assert sorted(run.nodes()) == ["remind_todo", "stop_todo"]


def test_of_two_interrupting_timers_due_at_once_the_one_drawn_first_fires() -> None:
    run = run_for(two_timers(("x", "PT1H", True), ("y", "PT1H", True)))
    run.tick(timedelta(hours=2))
    assert run.nodes() == ["x_todo"]


def test_ticks_on_time_still_fire_each_timer_when_it_falls_due() -> None:
    run = run_for(two_timers(("remind", "PT1H", False), ("stop", "PT2H", True)))
    run.tick(timedelta(minutes=61))
    assert sorted(run.nodes()) == ["a", "remind_todo"]
    run.tick(timedelta(hours=1))
    assert sorted(run.nodes()) == ["remind_todo", "stop_todo"]


def _reminder_and_escalation(reminder_handlers: str, escalation_script: str = "x = 1") -> str:
    """Task ``a`` with a 1-hour non-interrupting reminder and a 2-hour escalation whose path
    runs ``escalation_script`` before its todo."""
    return definitions(
        process(
            "bt",
            START
            + user("a", "'U1'")
            + '<bpmn:boundaryEvent id="remind" attachedToRef="a" cancelActivity="false">'
            + timer("timeDuration", '"PT1H"')
            + "</bpmn:boundaryEvent>"
            + '<bpmn:boundaryEvent id="stop" attachedToRef="a">'
            + timer("timeDuration", '"PT2H"')
            + "</bpmn:boundaryEvent>"
            + user("remind_todo", reminder_handlers)
            + f'<bpmn:scriptTask id="note"><bpmn:script>{escalation_script}</bpmn:script>'
            + "</bpmn:scriptTask>"
            + user("stop_todo", "'BOSS'")
            + END
            + '<bpmn:endEvent id="e2"/><bpmn:endEvent id="e3"/>'
            + chain("start", "a", "end")
            + chain("remind", "remind_todo", "e2")
            + chain("stop", "note", "stop_todo", "e3"),
        )
    )


def test_a_due_timer_that_cannot_fire_before_a_completion_is_reported_apart() -> None:
    """The timers due before a completion fire first; one whose path fails (a script naming a
    variable the data lacks) raises TimersFailedFirst, an EngineError and not the caller's
    EngineDataError, so the bridge can complete a fresh copy without firing them."""
    run = run_for(_reminder_and_escalation("'MGR'", "x = boss + 1"))
    run.clock.advance(timedelta(hours=3))
    todo = run.todo("a", "U1")
    with pytest.raises(TimersFailedFirst) as failed:
        run.engine.complete(
            run.wf, run.process, instance_id=run.instance_id, todo_id=todo.todo_id, handler="U1"
        )
    assert not isinstance(failed.value, EngineDataError)
    assert "while firing a timer that fell due before this completion" in str(failed.value)


def test_due_timers_fire_before_a_completion_in_the_order_they_fell_due() -> None:
    """A reminder due at one hour and the escalation at two, completion at three: both fired
    first, so the completion finds its todo cancelled, as ticks on time would have."""
    run = run_for(_reminder_and_escalation("'MGR'"))
    run.clock.advance(timedelta(hours=3))
    with pytest.raises(TaskNotOpenError):
        run.complete("a", "U1")


def test_a_completion_after_its_escalation_fell_due_is_refused_naming_the_timer() -> None:
    run = run_for(_reminder_and_escalation("'MGR'"))
    run.clock.advance(timedelta(hours=3))
    with pytest.raises(TaskNotOpenError, match="a timer of the instance fell due before"):
        run.complete("a", "U1")


def test_a_late_tick_replays_timers_in_the_order_they_fell_due_across_scopes() -> None:
    """The inner escalation (1 day, on a task inside the stage) ended the stage before the
    stage's own 2-day timer fell due: a tick at day 3 takes the path on-time ticks take."""
    stage = (
        '<bpmn:subProcess id="stage"><bpmn:startEvent id="s0"/>'
        + user("review", "'U1'")
        + '<bpmn:boundaryEvent id="inner" attachedToRef="review">'
        + timer("timeDuration", '"P1D"')
        + '</bpmn:boundaryEvent><bpmn:endEvent id="s1"/><bpmn:endEvent id="s2"/>'
        + chain("s0", "review", "s1")
        + chain("inner", "s2")
        + "</bpmn:subProcess>"
    )
    xml = definitions(
        process(
            "bt",
            START
            + stage
            + '<bpmn:boundaryEvent id="outer" attachedToRef="stage">'
            + timer("timeDuration", '"P2D"')
            + "</bpmn:boundaryEvent>"
            + user("archive", "'A1'")
            + user("late", "'BOSS'")
            + END
            + '<bpmn:endEvent id="end2"/>'
            + chain("start", "stage", "archive", "end")
            + chain("outer", "late", "end2"),
        )
    )
    run = run_for(xml)
    run.tick(timedelta(days=3))
    assert run.nodes() == ["archive"]


def test_an_interrupting_cycle_timer_fires_once_and_cancels_its_task() -> None:
    """SpiffWorkflow starts a cycle timer's path at every repetition and cancels nothing;
    an interrupting one fires at its first repetition, as a plain timer would."""
    run = run_for(boundary(True, timer("timeCycle", '"R/PT1H"')))
    run.tick(timedelta(minutes=61))
    assert run.nodes() == ["escalate"]
    run.tick(timedelta(hours=5))
    assert run.nodes() == ["escalate"]


def test_two_past_dated_escalations_reached_at_once_fire_only_the_earliest() -> None:
    """Both dates already past when the task is reached: the one drawn first is looked at
    before the other has worked out its date, and must still give way to it."""
    later = "2030-01-02T00:00:00+00:00"
    earlier = "2030-01-01T00:00:00+00:00"
    run = run_for(
        two_timers(("late", later, True), ("early", earlier, True)).replace(
            "timeDuration", "timeDate"
        )
    )
    assert run.nodes() == ["early_todo"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "cycle", ['"R/PT0S"', '"R/PT0.001S"', "'R3/PT0.5S'", '"R/2031-03-01T08:00:00Z/PT0S"']
)
def test_a_cycle_shorter_than_a_second_is_refused_when_it_starts_waiting(cycle: str) -> None:
    """R/PT0S never moves its next repetition on, so the engine would fire it for ever (start
    never returned); a millisecond replays a thousand repetitions at every tick. The action
    that reaches the timer fails naming the timer and its expression."""
    run = Run(load(boundary(False, timer("timeCycle", cycle)), "bt"), clock=FakeClock(T0))
    with pytest.raises(EngineError, match="at least 1 second") as refused:
        run.start()
    assert "node 'timeout'" in str(refused.value) and cycle in str(refused.value)
    assert "stored instance is unchanged" in str(refused.value)


@pytest.mark.timeout(20)
def test_a_cycle_given_by_the_data_is_held_to_the_same_floor() -> None:
    run = Run(load(boundary(False, timer("timeCycle", "every")), "bt"), clock=FakeClock(T0))
    with pytest.raises(EngineError, match=r"timeCycle every gives 'R/PT0S', which repeats every 0"):
        run.start({"every": "R/PT0S"})


def test_a_cycle_of_one_second_fires_once_per_second() -> None:
    run = run_for(boundary(False, timer("timeCycle", '"R/PT1S"')))
    run.tick(timedelta(seconds=1))
    assert sorted(run.nodes()) == ["a", "escalate"]
    assert run.engine.next_timer_at(run.wf) == T0 + timedelta(seconds=2)


def test_a_stored_cycle_shorter_than_a_second_is_refused_at_the_next_tick() -> None:
    """An instance stored before the floor existed fails its tick instead of spinning."""
    run = run_for(boundary(False, timer("timeCycle", '"R/PT1H"')))
    (waiting,) = [t for t in run.wf.get_tasks() if t.task_spec.bpmn_id == "timeout"]
    waiting.internal_data["event_value"]["duration"] = 0.001
    run.clock.advance(timedelta(hours=1))
    with pytest.raises(EngineError, match=r"timeCycle \"R/PT1H\" repeats every 0.001 seconds"):
        run.engine.tick(run.wf, run.process, instance_id=run.instance_id)


@pytest.mark.parametrize("duration", ['"PT0S"', '"P0D"'])
def test_a_zero_duration_is_not_refused_it_fires_at_once(duration: str) -> None:
    """A duration of nothing is due when it starts waiting: the start itself fires it."""
    run = run_for(boundary(True, timer("timeDuration", duration)))
    assert run.nodes() == ["escalate"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("timeCycle", '"R/P9999999Y"'),
        ("timeCycle", '"R3/2031-03-01T08:00:00Z/P99999999M"'),
        ("timeDuration", '"P9999999Y"'),
    ],
)
def test_a_duration_beyond_any_date_is_refused_without_counting_its_months(
    kind: str, value: str
) -> None:
    """SpiffWorkflow counts a duration's months one by one: P9999999Y took hours."""
    run = Run(load(boundary(False, timer(kind, value)), "bt"), clock=FakeClock(T0))
    with pytest.raises(EngineError, match="reaches past the year 9999"):
        run.start()
