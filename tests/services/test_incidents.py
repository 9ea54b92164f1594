"""A failing service handler stops its instance with an incident; a retry continues it.

Semantics under test (docs/services.md): the action that reached the service task is committed
up to the task (the person's completion stands, the centre hears of it), the task is left READY
and not run, the instance's status is ``incident`` with an incident record, and a retry runs the
task again and goes on, with the centre calls that follow.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState

from engine_bridge.bridge import Bridge
from engine_bridge.errors import InputError, TaskNotOpenError
from engine_bridge.services import InstanceInIncidentError
from engine_bridge.store.incidents import UnknownIncidentError

from .kit import LEAVE, Harness, bpmn, sequence, service, stored_workflow, user, write

NOTIFY = "org.example.NotifyDean"


def _stopped_task(bridge: Bridge, instance_id: str, task_id: str) -> Any:
    """The SpiffWorkflow task ``task_id`` of the instance, as stored."""
    wf = stored_workflow(bridge, instance_id)
    return wf, wf.get_task_from_id(uuid.UUID(task_id))


def _start_and_apply(bridge: Bridge, harness: Harness) -> tuple[str, str]:
    inst = bridge.start("leave", initiator="S1", data={"days": 3})
    harness.assert_in_step(bridge, inst.id)
    [todo] = bridge.todos(inst.id)
    return inst.id, todo.task_id


def test_a_failing_handler_keeps_the_completion_and_stops_before_the_service(
    harness: Harness,
) -> None:
    """The completion is committed and handled at the centre; the instance waits in front of
    the service task (READY, not run) with an open incident; nothing after it happened."""
    seen: list[dict[str, Any]] = []

    def notify(data: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(data))
        data["dean"] = "leaked"  # the handler's copy: must never reach the task data
        raise RuntimeError("mail server down")

    bridge = harness.bridge(services={NOTIFY: notify})
    instance_id, apply_todo = _start_and_apply(bridge, harness)

    outcome = bridge.complete(apply_todo, handler="T001", data={"reason": "ill"})

    assert (outcome.status, outcome.closed, outcome.created) == ("none", (apply_todo,), ())
    assert outcome.stopped_at == "notify"
    assert bridge.instance(instance_id).status == "incident"
    [incident] = bridge.incidents()
    assert (incident.instance_id, incident.process_id, incident.node_id) == (
        instance_id,
        "leave",
        "notify",
    )
    assert (incident.node_name, incident.service_key, incident.status) == (
        "Notify the dean",
        NOTIFY,
        "open",
    )
    assert incident.attempts == 1
    assert incident.error == f"handler {NOTIFY!r} raised RuntimeError: mail server down"
    assert incident.first_at == incident.last_at == harness.clock.now()
    assert incident.resolved_at is None
    assert seen == [{"days": 3, "initiator": "S1", "reason": "ill"}]
    harness.assert_in_step(bridge, instance_id)
    assert harness.endpoints() == ["addTransaction", "taskHandle:none"]
    assert [h.kind for h in bridge.history(instance_id)] == ["start", "complete"]

    wf, task = _stopped_task(bridge, instance_id, incident.task_id)
    assert task.task_spec.bpmn_id == "notify"
    assert task.state == TaskState.READY
    assert task.data["reason"] == "ill"
    assert "dean" not in task.data
    assert bridge.engine.stopped_at(wf) is not None


def test_a_retry_that_fails_again_counts_an_attempt_and_changes_nothing_else(
    harness: Harness,
) -> None:
    """attempts + 1, the new error and last time; first time kept; no centre call."""
    errors = iter(["first failure", "second failure"])

    def notify(data: dict[str, Any]) -> None:
        raise ConnectionError(next(errors))

    bridge = harness.bridge(services={NOTIFY: notify})
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    bridge.complete(apply_todo, handler="T001")
    first = bridge.incidents()[0]
    calls_before = harness.endpoints()

    harness.clock.advance(timedelta(minutes=5))
    again = bridge.retry_incident(first.id)

    assert (again.id, again.status, again.attempts) == (first.id, "open", 2)
    assert again.error == f"handler {NOTIFY!r} raised ConnectionError: second failure"
    assert again.first_at == first.first_at
    assert again.last_at == harness.clock.now() > first.last_at
    assert bridge.instance(instance_id).status == "incident"
    assert harness.endpoints() == calls_before
    assert [h.kind for h in bridge.history(instance_id)] == ["start", "complete", "retry"]
    harness.assert_in_step(bridge, instance_id)


def test_a_retry_after_fixing_the_handler_continues_and_the_centre_follows(
    harness: Harness,
) -> None:
    """The service runs, its dict is merged, the next todo is created at the centre linked to
    the transaction, and the process runs to its end with nothing left open."""
    broken = {"yes": True}

    def notify(data: dict[str, Any]) -> dict[str, Any]:
        if broken["yes"]:
            raise RuntimeError("mail server down")
        return {"dean": "D042", "notified": True}

    bridge = harness.bridge(services={NOTIFY: notify})
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    bridge.complete(apply_todo, handler="T001")
    [incident] = bridge.incidents()

    broken["yes"] = False
    resolved = bridge.retry_incident(incident.id)

    assert (resolved.status, resolved.attempts) == ("resolved", 2)
    assert resolved.resolved_at == harness.clock.now()
    assert bridge.instance(instance_id).status == "running"
    [dean] = bridge.todos(instance_id)
    assert (dean.node_id, dean.handlers) == ("dean", ("D042",))
    harness.assert_in_step(bridge, instance_id)
    [linked] = [c for c in harness.fake.calls("addTransaction")][1:]
    assert linked["body"][0]["taskId"] == dean.task_id
    assert linked["body"][0]["previousTaskId"] == apply_todo

    final = bridge.complete(dean.task_id, handler="D042", data={"approved": True})
    assert final.status == "end"
    assert bridge.instance(instance_id).status == "finished"
    assert harness.centre_of(instance_id) == {}
    assert harness.endpoints() == [
        "addTransaction",
        "taskHandle:none",
        "addTransaction",
        "taskHandle:end",
    ]
    assert bridge.incidents(status="open") == []


def test_a_missing_handler_is_an_incident_not_a_crash(harness: Harness) -> None:
    """No handler registered: the completion goes through, the incident names every name a
    handler could be registered under; registering one and retrying continues."""
    bridge = harness.bridge()
    instance_id, apply_todo = _start_and_apply(bridge, harness)

    outcome = bridge.complete(apply_todo, handler="T001")

    assert outcome.status == "none"
    [incident] = bridge.incidents(status="open")
    assert "no service handler is registered under 'task:notify', 'notify', " in incident.error
    assert f"bridge.service({NOTIFY!r}, fn)" in incident.error
    harness.assert_in_step(bridge, instance_id)

    bridge.service("notify", lambda data: {"dean": "D7"})
    assert bridge.retry_incident(incident.id).status == "resolved"
    assert [t.handlers for t in bridge.todos(instance_id)] == [("D7",)]
    harness.assert_in_step(bridge, instance_id)


def test_other_todos_are_refused_while_the_instance_is_in_incident(tmp_path: Path) -> None:
    """A parallel branch's todo cannot be completed until the incident is resolved; the
    refusal names the incident and changes nothing; after the retry it completes."""
    text = bpmn(
        "fork",
        '<bpmn:startEvent id="start"/>',
        '<bpmn:parallelGateway id="split"/>',
        '<bpmn:userTask id="a" camunda:assignee="T001"/>',
        '<bpmn:serviceTask id="svc" camunda:class="org.example.Archive"/>',
        '<bpmn:userTask id="b" camunda:assignee="T002"/>',
        '<bpmn:parallelGateway id="join"/>',
        '<bpmn:endEvent id="end"/>',
        flows=[
            ("start", "split"),
            ("split", "a"),
            ("split", "b"),
            ("a", "svc"),
            ("svc", "join"),
            ("b", "join"),
            ("join", "end"),
        ],
    )
    harness = Harness(write(tmp_path / "wf", "fork.bpmn", text), f"sqlite:///{tmp_path / 'f.db'}")
    try:
        fail = {"on": True}

        def archive(data: dict[str, Any]) -> None:
            if fail["on"]:
                raise OSError("archive offline")

        bridge = harness.bridge(services={"org.example.Archive": archive})
        inst = bridge.start("fork", initiator="S1")
        todos = {t.node_id: t.task_id for t in bridge.todos(inst.id)}
        bridge.complete(todos["a"], handler="T001")
        [incident] = bridge.incidents()
        version = bridge.store.get_instance(inst.id).version
        centre = harness.fake.open_todos()

        with pytest.raises(InstanceInIncidentError) as refused:
            bridge.complete(todos["b"], handler="T002")

        message = str(refused.value)
        assert f"incident {incident.id}" in message
        assert "'svc'" in message and "archive offline" in message
        assert f"retry_incident({incident.id})" in message
        assert bridge.store.get_instance(inst.id).version == version
        assert harness.fake.open_todos() == centre
        harness.assert_in_step(bridge, inst.id)

        fail["on"] = False
        bridge.retry_incident(incident.id)
        assert bridge.complete(todos["b"], handler="T002").status == "end"
        assert harness.centre_of(inst.id) == {}
    finally:
        harness.close()


def test_an_instance_in_incident_can_be_cancelled(harness: Harness) -> None:
    """Cancelling ends the incident as cancelled (not retried) and terminates the
    transaction at the centre."""
    bridge = harness.bridge()
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    bridge.complete(apply_todo, handler="T001")
    [incident] = bridge.incidents()

    bridge.cancel(instance_id, by="admin")

    ended = bridge.incident(incident.id)
    assert (ended.status, ended.attempts) == ("cancelled", 1)
    assert ended.resolved_at == harness.clock.now()
    assert bridge.instance(instance_id).status == "cancelled"
    assert harness.endpoints()[-1] == "taskTerminate"
    with pytest.raises(InputError, match="is cancelled; only an open incident"):
        bridge.retry_incident(incident.id)


def test_retrying_an_unknown_or_resolved_incident_is_refused(harness: Harness) -> None:
    """Clear errors naming the incident; nothing changes."""
    bridge = harness.bridge()
    with pytest.raises(UnknownIncidentError, match="no incident with id 99"):
        bridge.retry_incident(99)
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    bridge.complete(apply_todo, handler="T001")
    bridge.service(NOTIFY, lambda data: {"dean": "D1"})
    [incident] = bridge.incidents()
    bridge.retry_incident(incident.id)
    version = bridge.store.get_instance(instance_id).version

    with pytest.raises(InputError, match=f"incident {incident.id} is resolved"):
        bridge.retry_incident(incident.id)

    assert bridge.store.get_instance(instance_id).version == version
    assert bridge.incident(incident.id).attempts == 2


def test_a_successful_service_leaves_no_incident(harness: Harness) -> None:
    """The usual path writes no incident row and the instance stays running."""
    bridge = harness.bridge(services={NOTIFY: lambda data: {"dean": "D1"}})
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    outcome = bridge.complete(apply_todo, handler="T001")
    assert (outcome.status, outcome.stopped_at) == ("next", None)
    assert bridge.incidents() == []
    assert bridge.instance(instance_id).status == "running"
    harness.assert_in_step(bridge, instance_id)


def test_a_start_that_reaches_a_failing_service_creates_nothing_at_the_centre(
    tmp_path: Path,
) -> None:
    """The instance exists, in incident, with no transaction at the centre; the retry
    creates the first todo with addTransaction."""
    text = sequence(
        "auto",
        service("lookup", 'camunda:delegateExpression="${deanLookup}"'),
        user("dean", "${dean}"),
    )
    harness = Harness(write(tmp_path / "wf", "auto.bpmn", text), f"sqlite:///{tmp_path / 'a.db'}")
    try:
        bridge = harness.bridge()
        inst = bridge.start("auto", initiator="S1", data={"dept": "cs"})
        assert inst.status == "incident"
        assert inst.calls == ()
        assert harness.fake.calls("addTransaction") == []
        [incident] = bridge.incidents()
        assert (incident.node_id, incident.service_key) == ("lookup", "deanLookup")

        bridge.service("deanLookup", lambda data: {"dean": f"D-{data['dept']}"})
        assert bridge.retry_incident(incident.id).status == "resolved"
        [first] = harness.fake.calls("addTransaction")
        assert "previousTaskId" not in first["body"][0]
        assert first["body"][0]["handlers"] == "D-cs"
        harness.assert_in_step(bridge, inst.id)
    finally:
        harness.close()


def test_a_retry_that_passes_one_service_and_fails_at_the_next_opens_a_new_incident(
    tmp_path: Path,
) -> None:
    """The first incident is resolved, a second is opened at the next service task."""
    text = sequence(
        "two",
        user("apply", "T001"),
        service("first", 'camunda:class="org.example.First"'),
        service("second", 'camunda:class="org.example.Second"'),
        user("done", "T001"),
    )
    harness = Harness(write(tmp_path / "wf", "two.bpmn", text), f"sqlite:///{tmp_path / 't.db'}")
    try:
        bridge = harness.bridge()
        inst = bridge.start("two", initiator="S1")
        bridge.complete(bridge.todos(inst.id)[0].task_id, handler="T001")
        bridge.service("org.example.First", lambda data: {"first": 1})

        bridge.retry_incident(1)

        one, two = bridge.incidents()
        assert (one.node_id, one.status, one.attempts) == ("first", "resolved", 2)
        assert (two.node_id, two.status, two.attempts) == ("second", "open", 1)
        assert bridge.instance(inst.id).status == "incident"
        bridge.service("task:second", lambda data: None)
        bridge.retry_incident(two.id)
        assert [t.node_id for t in bridge.todos(inst.id)] == ["done"]
        harness.assert_in_step(bridge, inst.id)
    finally:
        harness.close()


def test_the_stop_is_stored_so_a_new_bridge_retries_it(harness: Harness) -> None:
    """A bridge opened later on the same database (state from disk only) retries it."""
    first = harness.bridge()
    instance_id, apply_todo = _start_and_apply(first, harness)
    first.complete(apply_todo, handler="T001")
    first.close()

    later = harness.bridge(services={"task:notify": lambda data: {"dean": "D9"}})
    [incident] = later.incidents(status="open")
    assert later.retry_incident(incident.id).status == "resolved"
    harness.assert_in_step(later, instance_id)
    assert [t.handlers for t in later.todos(instance_id)] == [("D9",)]


def test_a_requested_retry_runs_at_the_next_tick_of_a_bridge_with_the_handler(
    harness: Harness,
) -> None:
    """The command line only asks; a bridge without a handler for the task leaves the request
    alone, the application's bridge runs it on tick."""
    bare = harness.bridge()
    instance_id, apply_todo = _start_and_apply(bare, harness)
    bare.complete(apply_todo, handler="T001")
    [incident] = bare.incidents()
    asked = bare.store.request_incident_retry(incident.id, now=harness.clock.now())
    assert asked.retry_requested_at == harness.clock.now()

    assert bare.tick() == []
    assert bare.incident(incident.id).attempts == 1

    app = harness.bridge(services={NOTIFY: lambda data: {"dean": "D3"}})
    [outcome] = app.tick()
    assert outcome.instance_id == instance_id
    assert [t.node_id for t in outcome.created] == ["dean"]
    done = app.incident(incident.id)
    assert (done.status, done.retry_requested_at) == ("resolved", None)
    harness.assert_in_step(app, instance_id)


def test_incidents_on_each_database(db_url: str, tmp_path: Path) -> None:
    """Stop, failed retry, successful retry and the listing filters, on SQLite and PostgreSQL."""
    folder = tmp_path / "wf"
    write(folder, "leave.bpmn", LEAVE)
    harness = Harness(folder, db_url)
    try:
        answers: list[Any] = [RuntimeError("down"), RuntimeError("still down"), {"dean": "D5"}]

        def notify(data: dict[str, Any]) -> Any:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        bridge = harness.bridge(services={NOTIFY: notify})
        instance_id, apply_todo = _start_and_apply(bridge, harness)
        bridge.complete(apply_todo, handler="T001")
        [incident] = bridge.incidents(instance_id=instance_id)
        assert bridge.retry_incident(incident.id).attempts == 2
        assert bridge.incidents(status="resolved") == []
        assert bridge.retry_incident(incident.id).status == "resolved"
        [resolved] = bridge.incidents(status="resolved")
        assert resolved.attempts == 3
        assert bridge.incidents(status="open") == []
        assert bridge.incidents(instance_id="someone-else") == []
        with pytest.raises(InputError, match="unknown incident status"):
            bridge.incidents(status="broken")
        harness.assert_in_step(bridge, instance_id)
    finally:
        harness.close()


def test_a_service_in_a_called_process_stops_and_retries_the_caller(tmp_path: Path) -> None:
    """A service task inside a call activity stops the whole instance; the retry runs it in
    the called process and the caller goes on to its next todo."""
    caller = sequence(
        "caller",
        user("apply", "T001"),
        ("call", '<bpmn:callActivity id="call" calledElement="publish"/>'),
        user("check", "${checker}"),
    )
    called = sequence("publish", service("post", 'camunda:class="org.example.Post"'))
    folder = tmp_path / "wf"
    write(folder, "caller.bpmn", caller)
    write(folder, "publish.bpmn", called)
    harness = Harness(folder, f"sqlite:///{tmp_path / 'c.db'}")
    try:
        bridge = harness.bridge()
        inst = bridge.start("caller", initiator="S1")
        bridge.complete(bridge.todos(inst.id)[0].task_id, handler="T001")
        [incident] = bridge.incidents()
        assert (incident.node_id, incident.process_id) == ("post", "caller")
        wf, task = _stopped_task(bridge, inst.id, incident.task_id)
        assert task.workflow is not wf  # the task lives in the called process
        assert task.state == TaskState.READY
        harness.assert_in_step(bridge, inst.id)

        bridge.service("org.example.Post", lambda data: {"checker": "C1"})
        assert bridge.retry_incident(incident.id).status == "resolved"
        [check] = bridge.todos(inst.id)
        assert (check.node_id, check.handlers) == ("check", ("C1",))
        harness.assert_in_step(bridge, inst.id)
        assert bridge.complete(check.task_id, handler="C1").status == "end"
        assert harness.centre_of(inst.id) == {}
    finally:
        harness.close()


def test_the_engine_itself_refuses_to_move_a_stopped_workflow(harness: Harness) -> None:
    """Used without the bridge, the engine refuses complete and tick on a stopped workflow
    and refuses to retry one that is not stopped."""
    bridge = harness.bridge()
    instance_id, apply_todo = _start_and_apply(bridge, harness)
    process = bridge.library.get("leave")
    running = stored_workflow(bridge, instance_id)
    with pytest.raises(InputError, match="is not stopped at a service task"):
        bridge.engine.retry(running, process, instance_id=instance_id)

    bridge.complete(apply_todo, handler="T001")
    stopped = stored_workflow(bridge, instance_id)
    stop = bridge.engine.stopped_at(stopped)
    assert stop is not None
    assert (stop.node_id, stop.key) == ("notify", NOTIFY)
    with pytest.raises(InstanceInIncidentError, match="stopped at service task 'notify'"):
        bridge.engine.tick(stopped, process, instance_id=instance_id)
    with pytest.raises(InstanceInIncidentError):
        bridge.engine.complete(
            stopped, process, instance_id=instance_id, todo_id=apply_todo, handler="T001"
        )


def test_a_stale_cached_instance_never_runs_a_service_it_then_throws_away(
    harness: Harness,
) -> None:
    """A completion normally starts from the row its bridge committed and lets the version
    check catch another writer. With a service task on the way that would call the handler
    for a step that is then thrown away, so such a process is read first: a todo another
    bridge completed is refused before anything runs."""
    calls: list[str] = []

    def notify(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(str(data.get("reason")))
        return {"dean": "D001"}

    mine = harness.bridge(services={NOTIFY: notify})
    theirs = harness.bridge(services={NOTIFY: notify})
    instance_id, apply_todo = _start_and_apply(mine, harness)
    theirs.complete(apply_todo, handler="T001", data={"reason": "theirs"})
    with pytest.raises(TaskNotOpenError):
        mine.complete(apply_todo, handler="T001", data={"reason": "mine"})
    assert calls == ["theirs"]
    [dean] = mine.todos(instance_id)
    assert mine.complete(dean.task_id, handler="D001").finished
    harness.assert_in_step(mine, instance_id)
