"""Event subprocesses as BPMN runs them: they wait while their scope runs, an interrupting one
cancels the rest of its scope, a non-interrupting one runs beside it (a message one as often
as its message comes), and a scope whose main flow has ended ends. After every step the
centre's open todos equal the ledger's and the engine's."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_bridge import Bridge
from engine_bridge.errors import InputError
from engine_bridge.history import export_history
from engine_bridge.loader import library
from engine_bridge.loader.library import analyse_paths
from engine_bridge.testing.replay import replay
from tests.services.kit import NS, Harness, opened, stored_workflow

TIMER = (
    '<bpmn:timerEventDefinition><bpmn:timeDuration>"P3D"</bpmn:timeDuration>'
    "</bpmn:timerEventDefinition>"
)
MESSAGE = '<bpmn:messageEventDefinition messageRef="m_withdraw"/>'
CYCLE = (
    '<bpmn:timerEventDefinition><bpmn:timeCycle>"R3/PT1H"</bpmn:timeCycle>'
    "</bpmn:timerEventDefinition>"
)


def duration(value: str) -> str:
    return (
        f'<bpmn:timerEventDefinition><bpmn:timeDuration>"{value}"</bpmn:timeDuration>'
        "</bpmn:timerEventDefinition>"
    )


def flows(*ids: str) -> str:
    return "".join(
        f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>'
        for a, b in itertools.pairwise(ids)
    )


def event_subprocess(sid: str, start: str, *, interrupting: bool, handler: str) -> str:
    """An event subprocess ``sid``: its start event, then a user task ``<sid>_task``."""
    flag = "" if interrupting else ' isInterrupting="false"'
    return (
        f'<bpmn:subProcess id="{sid}" triggeredByEvent="true">'
        f'<bpmn:startEvent id="{sid}_start"{flag}>{start}</bpmn:startEvent>'
        f'<bpmn:userTask id="{sid}_task" camunda:assignee="{handler}"/>'
        f'<bpmn:endEvent id="{sid}_end"/>'
        + flows(f"{sid}_start", f"{sid}_task", f"{sid}_end")
        + "</bpmn:subProcess>"
    )


def model(process_id: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NS} id="defs_{process_id}" targetNamespace="http://example.org/es">'
        '<bpmn:message id="m_withdraw" name="withdraw"/><bpmn:signal id="s_alarm" name="alarm"/>'
        f'<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>'
        "</bpmn:definitions>"
    )


def main_flow(*events: str) -> str:
    """start → review (T001) → archive (T002) → end, with ``events`` beside it."""
    return (
        '<bpmn:startEvent id="start"/>'
        '<bpmn:userTask id="review" camunda:assignee="T001"/>'
        '<bpmn:userTask id="archive" camunda:assignee="T002"/>'
        '<bpmn:endEvent id="end"/>' + flows("start", "review", "archive", "end") + "".join(events)
    )


MODELS = {
    # a reminder three days after the start, beside the review
    "remind.bpmn": model(
        "remind",
        main_flow(event_subprocess("nudge", TIMER, interrupting=False, handler="S001")),
    ),
    # after three days the request is escalated: the review is called off
    "escalate.bpmn": model(
        "escalate",
        main_flow(event_subprocess("overdue", TIMER, interrupting=True, handler="D001")),
    ),
    # the applicant may withdraw at any time: the office confirms, nothing else goes on
    "withdraw.bpmn": model(
        "withdraw",
        main_flow(event_subprocess("withdrawal", MESSAGE, interrupting=True, handler="O001")),
    ),
    # each "withdraw" message (here: a query) opens a reply todo, as often as it comes
    "query.bpmn": model(
        "query",
        main_flow(event_subprocess("reply", MESSAGE, interrupting=False, handler="O001")),
    ),
    # the review throws a signal that calls the rest off
    "signal.bpmn": model(
        "signal",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:userTask id="review" camunda:assignee="T001"/>'
        '<bpmn:intermediateThrowEvent id="alarm">'
        '<bpmn:signalEventDefinition signalRef="s_alarm"/></bpmn:intermediateThrowEvent>'
        '<bpmn:userTask id="archive" camunda:assignee="T002"/><bpmn:endEvent id="end"/>'
        + flows("start", "review", "alarm", "archive", "end")
        + event_subprocess(
            "stop",
            '<bpmn:signalEventDefinition signalRef="s_alarm"/>',
            interrupting=True,
            handler="O001",
        ),
    ),
    # the signal's interruption stops the steps right after the throw: the notice is not sent,
    # the parallel bookkeeping script does not run
    "loud.bpmn": model(
        "loud",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:userTask id="review" camunda:assignee="T001"/>'
        '<bpmn:parallelGateway id="fork"/>'
        '<bpmn:intermediateThrowEvent id="alarm">'
        '<bpmn:signalEventDefinition signalRef="s_alarm"/></bpmn:intermediateThrowEvent>'
        '<bpmn:serviceTask id="notice" camunda:class="org.example.Notice"/>'
        '<bpmn:scriptTask id="keep" scriptFormat="python"><bpmn:script>kept = True'
        "</bpmn:script></bpmn:scriptTask>"
        '<bpmn:parallelGateway id="join"/>'
        '<bpmn:userTask id="archive" camunda:assignee="T002"/><bpmn:endEvent id="end"/>'
        + flows("start", "review", "fork", "alarm", "notice", "join", "archive", "end")
        + flows("fork", "keep", "join")
        + event_subprocess(
            "halt",
            '<bpmn:signalEventDefinition signalRef="s_alarm"/>',
            interrupting=True,
            handler="O001",
        ),
    ),
    # an hourly chase that interrupts: it fires once
    "chase.bpmn": model(
        "chase",
        main_flow(event_subprocess("chaser", CYCLE, interrupting=True, handler="D001")),
    ),
    # an hourly reminder beside the review
    "hourly.bpmn": model(
        "hourly",
        main_flow(event_subprocess("hourly_note", CYCLE, interrupting=False, handler="S001")),
    ),
    # two escalations, the one drawn first falls due last
    "two.bpmn": model(
        "two",
        main_flow(
            event_subprocess("late", duration("P2D"), interrupting=True, handler="D002"),
            event_subprocess("early", duration("P1D"), interrupting=True, handler="D001"),
        ),
    ),
    # the review throws a signal that an event subprocess without a user task answers by
    # ending the process
    "quiet.bpmn": model(
        "quiet",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:userTask id="review" camunda:assignee="T001"/>'
        '<bpmn:intermediateThrowEvent id="alarm">'
        '<bpmn:signalEventDefinition signalRef="s_alarm"/></bpmn:intermediateThrowEvent>'
        '<bpmn:userTask id="archive" camunda:assignee="T002"/><bpmn:endEvent id="end"/>'
        + flows("start", "review", "alarm", "archive", "end")
        + '<bpmn:subProcess id="hush" triggeredByEvent="true">'
        '<bpmn:startEvent id="hush_start"><bpmn:signalEventDefinition signalRef="s_alarm"/>'
        '</bpmn:startEvent><bpmn:endEvent id="hush_end"/>'
        + flows("hush_start", "hush_end")
        + "</bpmn:subProcess>",
    ),
    # a five-hour follow-up whose own one-hour escalation runs only once it has started
    "nest.bpmn": model(
        "nest",
        main_flow(
            '<bpmn:subProcess id="follow" triggeredByEvent="true">'
            f'<bpmn:startEvent id="follow_start" isInterrupting="false">{duration("PT5H")}'
            '</bpmn:startEvent><bpmn:userTask id="follow_task" camunda:assignee="F001"/>'
            '<bpmn:endEvent id="follow_end"/>'
            + flows("follow_start", "follow_task", "follow_end")
            + event_subprocess("hurry", duration("PT1H"), interrupting=True, handler="H001")
            + "</bpmn:subProcess>"
        ),
    ),
    # the event subprocess lives inside an embedded subprocess: its scope is that subprocess
    "nested.bpmn": model(
        "nested",
        '<bpmn:startEvent id="start"/>'
        '<bpmn:subProcess id="stage"><bpmn:startEvent id="stage_start"/>'
        '<bpmn:userTask id="review" camunda:assignee="T001"/><bpmn:endEvent id="stage_end"/>'
        + flows("stage_start", "review", "stage_end")
        + event_subprocess("stage_withdrawal", MESSAGE, interrupting=True, handler="O001")
        + "</bpmn:subProcess>"
        '<bpmn:userTask id="archive" camunda:assignee="T002"/><bpmn:endEvent id="end"/>'
        + flows("start", "stage", "archive", "end"),
    ),
}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(tmp_path, MODELS) as h:
        yield h


def _nodes(bridge: Bridge, iid: str) -> list[str]:
    return sorted(t.node_id for t in bridge.todos(iid))


def _todo(bridge: Bridge, iid: str, node: str) -> str:
    (found,) = [t.task_id for t in bridge.todos(iid) if t.node_id == node]
    return found


def test_a_process_ends_with_its_main_flow_while_a_timer_event_subprocess_still_waits(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("remind", initiator="2023001")
    assert bridge.store.get_instance(inst.id).next_timer_at is not None
    bridge.complete(_todo(bridge, inst.id, "review"), handler="T001")
    out = bridge.complete(_todo(bridge, inst.id, "archive"), handler="T002")
    # The reminder that never fired does not keep the request open.
    assert out.finished and out.status == "end"
    assert bridge.instance(inst.id).status == "finished"
    assert bridge.store.get_instance(inst.id).next_timer_at is None
    harness.assert_in_step(bridge, inst.id)
    harness.clock.advance(timedelta(days=4))
    assert bridge.tick() == []
    assert harness.centre_of(inst.id) == {}


def test_a_non_interrupting_timer_event_subprocess_opens_its_todo_beside_the_main_flow(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("remind", initiator="2023001")
    harness.clock.advance(timedelta(days=3, minutes=1))
    (out,) = bridge.tick()
    assert out.next_nodes == ("nudge_task",) and out.closed == ()
    assert _nodes(bridge, inst.id) == ["nudge_task", "review"]
    harness.assert_in_step(bridge, inst.id)
    bridge.complete(_todo(bridge, inst.id, "review"), handler="T001")
    done = bridge.complete(_todo(bridge, inst.id, "archive"), handler="T002")
    # The main flow has ended, the reminder still runs: the process waits for it.
    assert not done.finished and done.status == "none"
    assert _nodes(bridge, inst.id) == ["nudge_task"]
    harness.assert_in_step(bridge, inst.id)
    last = bridge.complete(_todo(bridge, inst.id, "nudge_task"), handler="S001")
    assert last.finished and last.status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_an_interrupting_timer_event_subprocess_withdraws_the_main_flows_todos(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("escalate", initiator="2023001")
    review = inst.todos[0].task_id
    harness.clock.advance(timedelta(days=3, minutes=1))
    (out,) = bridge.tick()
    assert out.closed == (review,)
    assert out.next_nodes == ("overdue_task",)
    assert _nodes(bridge, inst.id) == ["overdue_task"]
    harness.assert_in_step(bridge, inst.id)
    assert harness.endpoints() == ["addTransaction", "taskWithdraw:next"]
    last = bridge.complete(_todo(bridge, inst.id, "overdue_task"), handler="D001")
    assert last.finished and last.status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_an_interrupting_message_event_subprocess_calls_the_request_off(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("withdraw", initiator="2023001")
    bridge.complete(inst.todos[0].task_id, handler="T001")
    archive = _todo(bridge, inst.id, "archive")
    out = bridge.message(inst.id, "withdraw", data={"reason": "moved abroad"})
    assert out.closed == (archive,) and out.next_nodes == ("withdrawal_task",)
    harness.assert_in_step(bridge, inst.id)
    # Interrupted: the message has nothing more to start, the old todo is gone for good.
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(inst.id, "withdraw")
    last = bridge.complete(_todo(bridge, inst.id, "withdrawal_task"), handler="O001")
    assert last.finished and last.status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_a_non_interrupting_message_event_subprocess_runs_once_per_message(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("query", initiator="2023001")
    for n in (1, 2):
        out = bridge.message(inst.id, "withdraw", data={"question": n})
        assert out.next_nodes == ("reply_task",) and out.closed == ()
        harness.assert_in_step(bridge, inst.id)
    assert _nodes(bridge, inst.id) == ["reply_task", "reply_task", "review"]
    bridge.complete(_todo(bridge, inst.id, "review"), handler="T001")
    bridge.complete(_todo(bridge, inst.id, "archive"), handler="T002")
    # The main flow has ended: no new query is taken, the two replies are still open.
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(inst.id, "withdraw")
    replies = [t.task_id for t in bridge.todos(inst.id)]
    assert len(replies) == 2
    assert bridge.complete(replies[0], handler="O001").status == "none"
    assert bridge.complete(replies[1], handler="O001").status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_a_signal_thrown_in_the_instance_triggers_its_event_subprocess(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("signal", initiator="2023001")
    out = bridge.complete(inst.todos[0].task_id, handler="T001")
    # The signal interrupted the process before "archive" could stay open.
    assert out.next_nodes == ("stop_task",) and not out.finished
    assert _nodes(bridge, inst.id) == ["stop_task"]
    harness.assert_in_step(bridge, inst.id)
    assert bridge.complete(_todo(bridge, inst.id, "stop_task"), handler="O001").finished
    harness.assert_in_step(bridge, inst.id)


def test_a_signal_thrown_in_the_instance_stops_the_steps_after_the_throw(
    harness: Harness,
) -> None:
    """The interruption is applied as the signal is caught, not when the engine comes to rest:
    the service task after the throw is not called, the script beside it does not run."""
    called: list[object] = []
    bridge = harness.bridge(services={"org.example.Notice": lambda data: called.append(data)})
    inst = bridge.start("loud", initiator="2023001")
    out = bridge.complete(inst.todos[0].task_id, handler="T001")
    assert out.next_nodes == ("halt_task",) and not out.finished
    assert called == []
    assert _nodes(bridge, inst.id) == ["halt_task"]
    harness.assert_in_step(bridge, inst.id)
    wf = stored_workflow(bridge, inst.id)
    assert not any("kept" in t.data for t in wf.get_tasks())
    assert bridge.complete(_todo(bridge, inst.id, "halt_task"), handler="O001").finished
    assert called == []
    harness.assert_in_step(bridge, inst.id)


def test_an_event_subprocess_in_a_subprocess_interrupts_only_that_subprocess(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("nested", initiator="2023001")
    out = bridge.message(inst.id, "withdraw")
    assert out.closed == (inst.todos[0].task_id,) and out.next_nodes == ("stage_withdrawal_task",)
    harness.assert_in_step(bridge, inst.id)
    after = bridge.complete(_todo(bridge, inst.id, "stage_withdrawal_task"), handler="O001")
    # The subprocess ended with its event subprocess; the process goes on after it.
    assert after.next_nodes == ("archive",) and not after.finished
    harness.assert_in_step(bridge, inst.id)
    assert bridge.complete(_todo(bridge, inst.id, "archive"), handler="T002").finished


def test_an_event_subprocess_in_a_subprocess_ends_with_that_subprocess(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("nested", initiator="2023001")
    out = bridge.complete(inst.todos[0].task_id, handler="T001")
    assert out.next_nodes == ("archive",)
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(inst.id, "withdraw")
    harness.assert_in_step(bridge, inst.id)


def test_an_interrupting_cycle_event_subprocess_fires_once(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("chase", initiator="2023001")
    harness.clock.advance(timedelta(minutes=61))
    (out,) = bridge.tick()
    assert out.closed == (inst.todos[0].task_id,) and out.next_nodes == ("chaser_task",)
    harness.clock.advance(timedelta(hours=3))
    assert bridge.tick() == []
    assert _nodes(bridge, inst.id) == ["chaser_task"]
    harness.assert_in_step(bridge, inst.id)


def test_a_running_cycle_event_subprocess_is_waited_for_when_the_main_flow_ends(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("hourly", initiator="2023001")
    harness.clock.advance(timedelta(minutes=61))
    bridge.tick()
    assert _nodes(bridge, inst.id) == ["hourly_note_task", "review"]
    bridge.complete(_todo(bridge, inst.id, "review"), handler="T001")
    done = bridge.complete(_todo(bridge, inst.id, "archive"), handler="T002")
    # The reminder under way is waited for; no new repetition starts after the main flow.
    assert done.status == "none" and _nodes(bridge, inst.id) == ["hourly_note_task"]
    harness.clock.advance(timedelta(hours=3))
    assert bridge.tick() == []
    last = bridge.complete(_todo(bridge, inst.id, "hourly_note_task"), handler="S001")
    assert last.finished and last.status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_a_late_tick_takes_the_event_subprocess_whose_timer_fell_due_first(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("two", initiator="2023001")
    harness.clock.advance(timedelta(days=3))
    (out,) = bridge.tick()
    assert out.next_nodes == ("early_task",)
    assert _nodes(bridge, inst.id) == ["early_task"]
    harness.assert_in_step(bridge, inst.id)


def test_an_event_subprocess_a_signal_starts_and_ends_within_one_run_still_interrupts(
    harness: Harness,
) -> None:
    """The signal is thrown and its event subprocess ends inside one engine run: the main
    flow it interrupted is cancelled when the engine comes to rest, so the process ends."""
    bridge = harness.bridge()
    inst = bridge.start("quiet", initiator="2023001")
    out = bridge.complete(inst.todos[0].task_id, handler="T001")
    assert out.finished and out.status == "end" and out.next_nodes == ()
    harness.assert_in_step(bridge, inst.id)


def test_an_event_subprocess_inside_one_waits_only_once_that_one_started(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("nest", initiator="2023001")
    # Nothing before five hours: the inner one-hour escalation is not waiting yet.
    assert bridge.store.get_instance(inst.id).next_timer_at == harness.clock.now() + timedelta(
        hours=5
    )
    harness.clock.advance(timedelta(hours=1, minutes=1))
    assert bridge.tick() == []
    harness.clock.advance(timedelta(hours=4))
    bridge.tick()
    assert _nodes(bridge, inst.id) == ["follow_task", "review"]
    harness.clock.advance(timedelta(hours=1))
    (out,) = bridge.tick()
    # The escalation interrupts the follow-up (its scope), not the main flow.
    assert out.next_nodes == ("hurry_task",)
    assert _nodes(bridge, inst.id) == ["hurry_task", "review"]
    harness.assert_in_step(bridge, inst.id)


def test_every_step_holds_after_the_bridge_is_reopened(harness: Harness) -> None:
    """Instances are read back from the store by a new bridge between the steps."""
    first = harness.bridge()
    inst = first.start("query", initiator="2023001")
    first.close()
    second = harness.bridge()
    second.message(inst.id, "withdraw")
    second.close()
    third = harness.bridge()
    third.message(inst.id, "withdraw")
    assert _nodes(third, inst.id) == ["reply_task", "reply_task", "review"]
    harness.assert_in_step(third, inst.id)


def test_a_library_gets_a_version_of_its_own_from_this_loader(tmp_path: Path) -> None:
    """Event subprocesses parse into other specs than SpiffWorkflow alone makes of the same
    files, so the version is not the files' hash alone: a definition stored for them by an
    older loader is never taken for this one's (it would be refused as different)."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "remind.bpmn").write_text(MODELS["remind.bpmn"], encoding="utf-8")
    analysis = analyse_paths(plain)
    digest = hashlib.sha256()
    for sha in sorted(f.sha256 for f in analysis.files):
        digest.update(sha.encode())
    assert analysis.version != digest.hexdigest()
    digest.update(f"loader-revision:{library.LOADER_REVISION}".encode())
    digest.update(f"spiffworkflow:{library.ENGINE_VERSION}".encode())
    assert analysis.version == digest.hexdigest()


def test_a_history_completing_the_second_of_two_todos_at_a_node_replays_the_same(
    harness: Harness,
) -> None:
    """Two replies open at one node; the second is completed first. The export says which
    one (``which``), so a replay completes the same todo and agrees."""
    bridge = harness.bridge()
    inst = bridge.start("query", initiator="2023001")
    bridge.message(inst.id, "withdraw", data={"question": 1})
    bridge.message(inst.id, "withdraw", data={"question": 2})
    replies = [t.task_id for t in bridge.todos(inst.id) if t.node_id == "reply_task"]
    bridge.complete(replies[1], handler="O001")
    history = export_history(bridge.store, inst.id)
    completes = [s["complete"] for s in history["steps"] if "complete" in s]
    assert completes[0]["which"] == 2
    result = replay(history, harness.workflows)
    assert result.same, result.lines()
