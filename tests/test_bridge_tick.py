"""Timers: one broken instance does not stop the others' timers, and stays as it was."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import TaskNotOpenError
from engine_bridge.testing.fake_center import FakeCenter

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def test_a_failing_timer_instance_does_not_block_the_others(tmp_path: Path) -> None:
    """Instance A's escalation names a supervisor its data lacks: its tick fails and it keeps
    its state; instance B, due at the same time, escalates normally."""
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=fake.transport(), clock=clock
    ) as bridge:
        broken = bridge.start("timeout_escalation", initiator="1", data={"reviewer": "T001"})
        good = bridge.start(
            "timeout_escalation", initiator="2", data={"reviewer": "T002", "supervisor": "S001"}
        )
        before = bridge.store.get_instance(broken.id)
        clock.advance(timedelta(hours=49))
        outcomes = bridge.tick()
        assert [o.instance_id for o in outcomes] == [good.id]
        assert [t.node_id for t in bridge.todos(good.id)] == ["escalate"]
        after = bridge.store.get_instance(broken.id)
        assert (after.version, after.state) == (before.version, before.state)
        assert [t.node_id for t in bridge.todos(broken.id)] == ["review"]
        assert {k: v for k, v in fake.open_todos().items() if k.startswith(broken.id)} == {
            broken.todos[0].task_id: ["T001"]
        }


def test_many_failing_timer_instances_do_not_starve_a_good_one(tmp_path: Path) -> None:
    """More broken instances than a tick's limit fell due before a good one: the broken ones
    take no place of the limit, and are looked at again a minute later, not first every time."""
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=fake.transport(), clock=clock
    ) as bridge:
        broken = [
            bridge.start("timeout_escalation", initiator="1", data={"reviewer": "T001"}).id
            for _ in range(5)
        ]
        clock.advance(timedelta(minutes=1))
        good = bridge.start(
            "timeout_escalation", initiator="2", data={"reviewer": "T002", "supervisor": "S001"}
        )
        clock.advance(timedelta(hours=49))
        # Three failures end the first tick (a tick tries at most `limit` of them); they wait
        # a minute now, so the next tick gets past the other two to the good one.
        assert bridge.tick(limit=3) == []
        outcomes = bridge.tick(limit=3)
        assert [o.instance_id for o in outcomes] == [good.id]
        assert [t.node_id for t in bridge.todos(good.id)] == ["escalate"]
        # Postponed, not changed: no tick now looks at them, a tick a minute later does.
        assert bridge.store.due_instances(clock.now()) == []
        assert all(bridge.store.get_instance(i).version == 1 for i in broken)
        clock.advance(timedelta(minutes=1))
        assert sorted(bridge.store.due_instances(clock.now())) == sorted(broken)
        assert bridge.tick() == []
        assert [t.node_id for t in bridge.todos(broken[0])] == ["review"]


def test_a_completion_after_its_escalation_fell_due_is_refused_and_nothing_is_kept(
    tmp_path: Path,
) -> None:
    """The 48-hour escalation fell due before the reviewer completed (the worker had not
    ticked yet): the timer came first, so the review was cancelled then and the completion
    is refused; the next tick escalates as it would have."""
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=fake.transport(), clock=clock
    ) as bridge:
        inst = bridge.start(
            "timeout_escalation", initiator="1", data={"reviewer": "T001", "supervisor": "S001"}
        )
        review = inst.todos[0].task_id
        clock.advance(timedelta(hours=49))
        with pytest.raises(TaskNotOpenError, match="a timer of the instance fell due before"):
            bridge.complete(review, handler="T001", data={"approved": True})
        assert [e.kind for e in bridge.history(inst.id)] == ["start"]
        assert [t.task_id for t in bridge.todos(inst.id)] == [review]
        (escalated,) = bridge.tick()
        assert escalated.closed == (review,)
        assert [t.node_id for t in bridge.todos(inst.id)] == ["escalate"]


def test_a_completion_before_the_escalation_falls_due_goes_through(tmp_path: Path) -> None:
    clock = FakeClock()
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=None, clock=clock
    ) as bridge:
        inst = bridge.start(
            "timeout_escalation", initiator="1", data={"reviewer": "T001", "supervisor": "S001"}
        )
        clock.advance(timedelta(hours=47))
        bridge.complete(inst.todos[0].task_id, handler="T001", data={"approved": True})
        assert [e.kind for e in bridge.history(inst.id)] == ["start", "complete"]
        # The escalation went with the review: past its due time, nothing fires.
        clock.advance(timedelta(hours=2))
        assert bridge.tick() == []
        assert "escalate" not in [t.node_id for t in bridge.todos(inst.id)]


def test_a_tick_tries_at_most_limit_failing_instances(tmp_path: Path) -> None:
    """Failures take no place of the limit, but are bounded too: a worker delivers only
    after its tick, and a tick must not try every broken instance of the database."""
    clock = FakeClock()
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=None, clock=clock
    ) as bridge:
        broken = [
            bridge.start("timeout_escalation", initiator="1", data={"reviewer": "T001"}).id
            for _ in range(7)
        ]
        clock.advance(timedelta(hours=49))
        assert bridge.tick(limit=3) == []
        assert len(bridge.store.due_instances(clock.now())) == len(broken) - 3


def test_postponing_a_timer_leaves_an_instance_a_step_moved_meanwhile(tmp_path: Path) -> None:
    clock = FakeClock()
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 't.db'}", center=None, clock=clock
    ) as bridge:
        inst = bridge.start("timeout_escalation", initiator="1", data={"reviewer": "T001"})
        record = bridge.store.get_instance(inst.id)
        later = clock.now() + timedelta(days=9)
        assert not bridge.store.postpone_timer(inst.id, version=record.version + 1, until=later)
        assert bridge.store.get_instance(inst.id).next_timer_at == record.next_timer_at
        assert bridge.store.postpone_timer(inst.id, version=record.version, until=later)
        moved = bridge.store.get_instance(inst.id)
        assert (moved.next_timer_at, moved.version) == (later, record.version)


REMINDER_THAT_FAILS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://x">
  <bpmn:process id="nag" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="review" camunda:assignee="T001"/>
    <bpmn:boundaryEvent id="nudge" attachedToRef="review" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration>
      </bpmn:timerEventDefinition></bpmn:boundaryEvent>
    <bpmn:scriptTask id="note"><bpmn:script>x = manager + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="remind" camunda:assignee="M001"/>
    <bpmn:endEvent id="end"/><bpmn:endEvent id="end2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="nudge" targetRef="note"/>
    <bpmn:sequenceFlow id="f4" sourceRef="note" targetRef="remind"/>
    <bpmn:sequenceFlow id="f5" sourceRef="remind" targetRef="end2"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_due_reminder_that_cannot_fire_does_not_block_the_completion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Timers due before a completion fire first; this one's path fails (as every tick of it
    does). The completion goes ahead as if the worker had not noticed it, and says so."""
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "nag.bpmn").write_text(REMINDER_THAT_FAILS, encoding="utf-8")
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    with Bridge.open(
        folder, database=f"sqlite:///{tmp_path / 't.db'}", center=fake.transport(), clock=clock
    ) as bridge:
        inst = bridge.start("nag", initiator="1")
        clock.advance(timedelta(hours=2))
        with caplog.at_level(logging.WARNING, logger="engine_bridge.bridge"):
            done = bridge.complete(inst.todos[0].task_id, handler="T001")
        assert done.finished and done.status == "end"
        assert any("completing without it" in r.getMessage() for r in caplog.records)
        assert bridge.instance(inst.id).status == "finished"
        assert fake.open_todos() == {} or not any(fake.open_todos().values())
