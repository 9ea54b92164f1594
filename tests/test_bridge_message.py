"""``Bridge.message``: a message from outside reaches the events waiting for it, and the centre
follows as it does for a timer. After every step the centre's open todos equal the ledger's
and the engine's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_bridge import Bridge
from engine_bridge.errors import InputError, InvalidDataError, TaskNotOpenError
from engine_bridge.history import export_history
from engine_bridge.testing.scenario import Scenario, load_scenario, run_scenario
from tests.services.kit import NS, Harness, opened, stored_workflow


def definitions(process: str, *messages: str) -> str:
    declared = "".join(f'<bpmn:message id="m_{name}" name="{name}"/>' for name in messages)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/messages">'
        f"{declared}{process}</bpmn:definitions>"
    )


def catch(node_id: str, message: str, inner: str = "") -> str:
    return (
        f'<bpmn:intermediateCatchEvent id="{node_id}">{inner}'
        f'<bpmn:messageEventDefinition messageRef="m_{message}"/></bpmn:intermediateCatchEvent>'
    )


def flows(*pairs: tuple[str, str]) -> str:
    return "".join(
        f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>' for a, b in pairs
    )


# start → apply (T001) → wait for "paid" → collect (${clerk}) → end
PAYMENT = definitions(
    '<bpmn:process id="payment" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:userTask id="apply" camunda:assignee="T001"/>'
    + catch("paid", "paid")
    + '<bpmn:userTask id="collect" camunda:assignee="${clerk}"/>'
    '<bpmn:endEvent id="end"/>'
    + flows(("start", "apply"), ("apply", "paid"), ("paid", "collect"), ("collect", "end"))
    + "</bpmn:process>",
    "paid",
)

# review (T001) with an interrupting "withdrawn" and a non-interrupting "urge" boundary event;
# urging opens a reminder for S001 beside the review.
BOUNDARIES = definitions(
    '<bpmn:process id="boundaries" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:userTask id="review" camunda:assignee="T001"/>'
    '<bpmn:boundaryEvent id="withdrawn" attachedToRef="review">'
    '<bpmn:messageEventDefinition messageRef="m_withdrawn"/></bpmn:boundaryEvent>'
    '<bpmn:boundaryEvent id="urge" attachedToRef="review" cancelActivity="false">'
    '<bpmn:messageEventDefinition messageRef="m_urge"/></bpmn:boundaryEvent>'
    '<bpmn:userTask id="remind" camunda:assignee="S001"/>'
    '<bpmn:endEvent id="end"/><bpmn:endEvent id="end_withdrawn"/><bpmn:endEvent id="end_urged"/>'
    + flows(
        ("start", "review"),
        ("review", "end"),
        ("withdrawn", "end_withdrawn"),
        ("urge", "remind"),
        ("remind", "end_urged"),
    )
    + "</bpmn:process>",
    "withdrawn",
    "urge",
)

# A receive task, then a catch whose message goes into a messageVariable.
RECEIVE = definitions(
    '<bpmn:process id="receive" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:receiveTask id="wait_form" messageRef="m_form"/>'
    '<bpmn:userTask id="check" camunda:assignee="T001"/>'
    '<bpmn:endEvent id="end"/>'
    + flows(("start", "wait_form"), ("wait_form", "check"), ("check", "end"))
    + "</bpmn:process>",
    "form",
)

# An embedded subprocess waiting for "ready" inside it.
NESTED = definitions(
    '<bpmn:process id="nested" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:subProcess id="sub"><bpmn:startEvent id="sub_start"/>'
    + catch("sub_wait", "ready")
    + '<bpmn:userTask id="inner" camunda:assignee="T001"/><bpmn:endEvent id="sub_end"/>'
    + flows(("sub_start", "sub_wait"), ("sub_wait", "inner"), ("inner", "sub_end"))
    + "</bpmn:subProcess>"
    '<bpmn:endEvent id="end"/>' + flows(("start", "sub"), ("sub", "end")) + "</bpmn:process>",
    "ready",
)

# An event-based gateway: a "paid" message, or a timer after an hour, whichever comes first.
GATEWAY = definitions(
    '<bpmn:process id="gateway" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:userTask id="apply" camunda:assignee="T001"/>'
    '<bpmn:eventBasedGateway id="which"/>'
    + catch("paid", "paid")
    + '<bpmn:intermediateCatchEvent id="late"><bpmn:timerEventDefinition>'
    '<bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>'
    "</bpmn:intermediateCatchEvent>"
    '<bpmn:userTask id="collect" camunda:assignee="C001"/>'
    '<bpmn:userTask id="chase" camunda:assignee="C002"/>'
    '<bpmn:endEvent id="end"/><bpmn:endEvent id="end_chased"/>'
    + flows(
        ("start", "apply"),
        ("apply", "which"),
        ("which", "paid"),
        ("which", "late"),
        ("paid", "collect"),
        ("late", "chase"),
        ("collect", "end"),
        ("chase", "end_chased"),
    )
    + "</bpmn:process>",
    "paid",
)

# SpiffWorkflow's own message variable: the payload is stored under that name, not merged.
SPIFF_VARIABLE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/messages">'
    '<bpmn:message id="m_form" name="form"/>'
    '<bpmn:process id="variable" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:intermediateCatchEvent id="wait_form">'
    '<bpmn:messageEventDefinition messageRef="m_form"><bpmn:extensionElements>'
    "<spiffworkflow:messageVariable>form_data</spiffworkflow:messageVariable>"
    "</bpmn:extensionElements></bpmn:messageEventDefinition></bpmn:intermediateCatchEvent>"
    '<bpmn:userTask id="check" camunda:assignee="T001"/><bpmn:endEvent id="end"/>'
    + flows(("start", "wait_form"), ("wait_form", "check"), ("check", "end"))
    + "</bpmn:process></bpmn:definitions>"
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(
        tmp_path,
        {
            "payment.bpmn": PAYMENT,
            "boundaries.bpmn": BOUNDARIES,
            "receive.bpmn": RECEIVE,
            "nested.bpmn": NESTED,
            "gateway.bpmn": GATEWAY,
            "variable.bpmn": SPIFF_VARIABLE,
        },
    ) as h:
        yield h


def _paid_and_waiting(harness: Harness) -> tuple[Bridge, str]:
    bridge = harness.bridge()
    inst = bridge.start("payment", initiator="2023001", data={"clerk": "C001"})
    out = bridge.complete(inst.todos[0].task_id, handler="T001")
    assert out.status == "none" and not out.finished
    harness.assert_in_step(bridge, inst.id)
    return bridge, inst.id


def test_a_message_opens_the_todo_after_its_catch_event_linked_to_the_transaction(
    harness: Harness,
) -> None:
    bridge, iid = _paid_and_waiting(harness)
    out = bridge.message(iid, "paid", data={"receipt": "R-1", "amount": 200})
    harness.assert_in_step(bridge, iid)
    assert out.action == "message" and out.status is None and not out.finished
    assert out.next_nodes == ("collect",) and out.created[0].handlers == ("C001",)
    (call,) = out.calls
    assert call.endpoint.value == "addTransaction"
    assert call.item["previousTaskId"] == bridge.history(iid)[1].payload["task_id"]
    # The message's data joins the process data: the next task sees it.
    wf = stored_workflow(bridge, iid)
    (collect,) = [t for t in wf.get_tasks() if t.task_spec.bpmn_id == "collect"]
    assert collect.data["receipt"] == "R-1" and collect.data["amount"] == 200
    entry = bridge.history(iid)[-1]
    assert entry.kind == "message"
    assert entry.payload["name"] == "paid" and entry.payload["data"]["receipt"] == "R-1"
    done = bridge.complete(out.created[0].task_id, handler="C001")
    assert done.status == "end"
    harness.assert_in_step(bridge, iid)


def test_a_message_nothing_waits_for_is_refused_and_changes_nothing(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("payment", initiator="2023001", data={"clerk": "C001"})
    with pytest.raises(InputError, match=r"not waiting for message 'paid'.*waits for no message"):
        bridge.message(inst.id, "paid")
    bridge.complete(inst.todos[0].task_id, handler="T001")
    version = bridge.store.instance_version(inst.id)
    with pytest.raises(InputError, match="not waiting for message 'payd'; it waits for: 'paid'"):
        bridge.message(inst.id, "payd")
    assert bridge.store.instance_version(inst.id) == version
    assert [e.kind for e in bridge.history(inst.id)] == ["start", "complete"]
    harness.assert_in_step(bridge, inst.id)
    # The refused message left the cached workflow usable: the right one still goes through.
    assert bridge.message(inst.id, "paid").next_nodes == ("collect",)


def test_message_refusals_for_bad_input(harness: Harness) -> None:
    bridge, iid = _paid_and_waiting(harness)
    with pytest.raises(InvalidDataError, match="data of message 'paid'"):
        bridge.message(iid, "paid", data={"__class__": 1})
    with pytest.raises(InvalidDataError, match="non-empty string"):
        bridge.message(iid, "")
    with pytest.raises(InputError):
        bridge.message("no-such-instance", "paid")
    bridge.message(iid, "paid")
    bridge.complete(bridge.todos(iid)[0].task_id, handler="C001")
    with pytest.raises(TaskNotOpenError, match="finished; it waits for no message"):
        bridge.message(iid, "paid")


def test_a_message_key_makes_the_call_idempotent(harness: Harness) -> None:
    bridge, iid = _paid_and_waiting(harness)
    first = bridge.message(iid, "paid", data={"receipt": "R-1"}, key="pay-R-1")
    again = bridge.message(iid, "paid", data={"receipt": "R-1"}, key="pay-R-1")
    assert again.duplicate and not first.duplicate
    assert again.action == "message" and again.next_nodes == first.next_nodes
    assert [t.task_id for t in again.created] == [t.task_id for t in first.created]
    assert [e.kind for e in bridge.history(iid)].count("message") == 1
    harness.assert_in_step(bridge, iid)
    other = bridge.start("payment", initiator="2023001", data={"clerk": "C001"})
    with pytest.raises(InputError, match="already used by a message of instance"):
        bridge.message(other.id, "paid", key="pay-R-1")
    # ... nor does a completion: it is refused, not answered with the message's outcome
    with pytest.raises(InputError, match="a complete needs a key of its own"):
        bridge.complete(other.todos[0].task_id, handler="T001", key="pay-R-1")
    assert [t.node_id for t in bridge.todos(other.id)] == ["apply"]


def test_interrupting_boundary_message_withdraws_the_todo_and_ends(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("boundaries", initiator="2023001")
    out = bridge.message(inst.id, "withdrawn")
    assert out.finished and out.closed == (inst.todos[0].task_id,)
    assert [(c.endpoint.value, c.item["status"]) for c in out.calls] == [("taskWithdraw", "end")]
    harness.assert_in_step(bridge, inst.id)
    assert bridge.instance(inst.id).status == "finished"


def test_non_interrupting_boundary_message_adds_a_todo_beside_the_open_one(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("boundaries", initiator="2023001")
    review = inst.todos[0].task_id
    out = bridge.message(inst.id, "urge")
    assert out.next_nodes == ("remind",) and out.closed == ()
    assert out.calls[0].item["previousTaskId"] == review
    harness.assert_in_step(bridge, inst.id)
    assert sorted(t.node_id for t in bridge.todos(inst.id)) == ["remind", "review"]
    # SpiffWorkflow fires a non-interrupting boundary event once; the other one still waits.
    with pytest.raises(InputError, match="it waits for: 'withdrawn'"):
        bridge.message(inst.id, "urge")
    bridge.complete(review, handler="T001")
    harness.assert_in_step(bridge, inst.id)
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(inst.id, "withdrawn")
    assert bridge.complete(bridge.todos(inst.id)[0].task_id, handler="S001").status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_receive_task_and_a_message_in_a_subprocess(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("receive", initiator="2023001")
    assert inst.todos == ()
    out = bridge.message(inst.id, "form", data={"form_no": 7})
    assert out.next_nodes == ("check",)
    # The transaction starts with the message: its first todo is not linked to anything.
    assert "previousTaskId" not in out.calls[0].item
    harness.assert_in_step(bridge, inst.id)

    nested = bridge.start("nested", initiator="2023001")
    out = bridge.message(nested.id, "ready")
    assert out.next_nodes == ("inner",)
    harness.assert_in_step(bridge, nested.id)
    assert bridge.complete(out.created[0].task_id, handler="T001").status == "end"


def test_a_message_reaches_an_instance_another_bridge_stored(harness: Harness) -> None:
    """The waiting event is found in the stored state, not only in a bridge's cache."""
    bridge, iid = _paid_and_waiting(harness)
    fresh = harness.bridge()
    out = fresh.message(iid, "paid", data={"receipt": "R-2"})
    assert out.next_nodes == ("collect",)
    harness.assert_in_step(fresh, iid)
    # The first bridge's cached copy is stale; its completion rereads and goes through.
    assert bridge.complete(out.created[0].task_id, handler="C001").status == "end"


def test_history_export_replays_a_message(harness: Harness) -> None:
    bridge, iid = _paid_and_waiting(harness)
    bridge.message(iid, "paid", data={"receipt": "R-3"})
    bridge.complete(bridge.todos(iid)[0].task_id, handler="C001")
    exported = export_history(bridge.store, iid)
    steps = [next(iter(s)) for s in exported["steps"]]
    assert "message" in steps
    message = next(s["message"] for s in exported["steps"] if "message" in s)
    assert message == {"name": "paid", "data": {"receipt": "R-3"}}
    again = harness.bridge()
    run = run_scenario(again, Scenario.model_validate(exported))
    assert run.finished
    assert [s.kind for s in run.steps if s.kind != "expect"] == [
        "start",
        "complete",
        "message",
        "complete",
    ]


def test_event_based_gateway_takes_the_message_or_the_timer(harness: Harness) -> None:
    """Both branches of an event-based gateway work: the message before the hour is out,
    and the timer when no message came (the gateway's timer has a due time the worker's
    tick finds)."""
    bridge = harness.bridge()
    paid = bridge.start("gateway", initiator="2023001")
    bridge.complete(paid.todos[0].task_id, handler="T001")
    late = bridge.start("gateway", initiator="2023001")
    bridge.complete(late.todos[0].task_id, handler="T001")
    due = bridge.store.get_instance(late.id).next_timer_at
    assert due is not None and due == harness.clock.now() + timedelta(hours=1)
    assert bridge.message(paid.id, "paid").next_nodes == ("collect",)
    harness.assert_in_step(bridge, paid.id)
    harness.clock.advance(timedelta(minutes=59))
    assert bridge.tick() == []
    harness.clock.advance(timedelta(minutes=1))
    (fired,) = bridge.tick()
    assert fired.instance_id == late.id and fired.next_nodes == ("chase",)
    harness.assert_in_step(bridge, late.id)
    # The gateway closed the message branch with the timer's.
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(late.id, "paid")
    assert [t.node_id for t in bridge.todos(paid.id)] == ["collect"]


def test_a_timer_already_due_fires_before_a_late_message(harness: Harness) -> None:
    """The hour is out but no tick ran yet when the message comes: the timer came first, so
    the gateway takes the timer's branch and the message is refused (it is not awaited any
    more), committing nothing; the worker's tick then fires the timer."""
    bridge = harness.bridge()
    inst = bridge.start("gateway", initiator="2023001")
    bridge.complete(inst.todos[0].task_id, handler="T001")
    harness.clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(InputError, match="waits for no message"):
        bridge.message(inst.id, "paid")
    assert [e.kind for e in bridge.history(inst.id)] == ["start", "complete"]
    (fired,) = bridge.tick()
    assert fired.next_nodes == ("chase",)
    harness.assert_in_step(bridge, inst.id)
    assert [t.node_id for t in bridge.todos(inst.id)] == ["chase"]


def test_a_message_variable_holds_the_payload(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("variable", initiator="2023001")
    out = bridge.message(inst.id, "form", data={"form_no": 7})
    harness.assert_in_step(bridge, inst.id)
    wf = stored_workflow(bridge, inst.id)
    (check,) = [t for t in wf.get_tasks() if t.task_spec.bpmn_id == "check"]
    assert check.data["form_data"] == {"form_no": 7}
    assert "form_no" not in check.data
    assert out.next_nodes == ("check",)


def test_a_yaml_scenario_with_an_unquoted_date_and_a_message_step(
    harness: Harness, tmp_path: Path
) -> None:
    """YAML reads ``2026-12-10`` as a date; the scenario holds it as the ISO text a JSON
    scenario would, so it is valid data. A message step delivers the message."""
    path = tmp_path / "paid.yaml"
    path.write_text(
        "process: payment\n"
        "start: {initiator: '2023001', data: {clerk: C001, due: 2026-12-10}}\n"
        "steps:\n"
        "  - complete: {node: apply, handler: T001}\n"
        "  - message: {name: paid, data: {paid_on: 2026-12-11}}\n"
        "  - expect: {next_nodes: [collect], open: [{node: collect, handlers: [C001]}]}\n",
        encoding="utf-8",
    )
    scenario = load_scenario(path)
    assert scenario.start.data["due"] == "2026-12-10"
    bridge = harness.bridge()
    run = run_scenario(bridge, scenario)
    assert [s.kind for s in run.steps] == ["start", "complete", "message", "expect"]
    assert bridge.history(run.instance_id)[-1].payload["data"] == {"paid_on": "2026-12-11"}


def test_message_data_replaces_what_the_process_held(harness: Harness) -> None:
    """A message brings news: its values win over the process data they name (here the
    clerk the next todo goes to), on a catch event and on an event-gateway branch alike."""
    bridge = harness.bridge()
    for process, name in (("payment", "paid"), ("gateway", "paid")):
        inst = bridge.start(process, initiator="2023001", data={"clerk": "C001", "state": "due"})
        bridge.complete(inst.todos[0].task_id, handler="T001")
        out = bridge.message(inst.id, name, data={"clerk": "C002", "state": "paid"})
        harness.assert_in_step(bridge, inst.id)
        wf = stored_workflow(bridge, inst.id)
        (collect,) = [t for t in wf.get_tasks() if t.task_spec.bpmn_id == "collect"]
        assert collect.data["state"] == "paid", process
        if process == "payment":  # its collect task is assigned from the data
            assert out.created[0].handlers == ("C002",)


# The gateway again, its timer branch running a service first.
SERVICE_LATE = (
    GATEWAY.replace('id="gateway"', 'id="service_late"')
    .replace(
        '<bpmn:userTask id="chase" camunda:assignee="C002"/>',
        '<bpmn:serviceTask id="notify" camunda:class="org.example.Notify"/>'
        '<bpmn:userTask id="chase" camunda:assignee="C002"/>',
    )
    .replace(
        '<bpmn:sequenceFlow id="f_late_chase" sourceRef="late" targetRef="chase"/>',
        '<bpmn:sequenceFlow id="f_late_notify" sourceRef="late" targetRef="notify"/>'
        '<bpmn:sequenceFlow id="f_notify_chase" sourceRef="notify" targetRef="chase"/>',
    )
)


def test_a_late_message_whose_due_timer_reaches_a_failing_service_is_refused(
    tmp_path: Path,
) -> None:
    """The timer fires first and its branch stops at a failing service: the message is refused
    with nothing kept and the service called once; the worker's tick then opens the incident."""
    calls: list[object] = []

    def notify(data: object) -> dict[str, object]:
        calls.append(data)
        raise RuntimeError("mail server down")

    assert SERVICE_LATE.count("notify") >= 3
    with opened(tmp_path, {"service_late.bpmn": SERVICE_LATE}) as harness:
        bridge = harness.bridge(services={"notify": notify})
        inst = bridge.start("service_late", initiator="2023001")
        bridge.complete(inst.todos[0].task_id, handler="T001")
        harness.clock.advance(timedelta(hours=2))
        with pytest.raises(InputError, match="led to a service task that failed"):
            bridge.message(inst.id, "paid")
        assert len(calls) == 1
        assert [e.kind for e in bridge.history(inst.id)] == ["start", "complete"]
        bridge.tick()
        assert bridge.instance(inst.id).status == "incident"
        assert len(calls) == 2


# A gateway waiting on a message, a 2-hour escalation (drawn first) and a 1-hour reminder.
TWO_TIMERS = definitions(
    '<bpmn:process id="two_timers" isExecutable="true">'
    '<bpmn:startEvent id="start"/>'
    '<bpmn:userTask id="apply" camunda:assignee="T001"/>'
    '<bpmn:eventBasedGateway id="which"/>'
    '<bpmn:intermediateCatchEvent id="escalate_after"><bpmn:timerEventDefinition>'
    '<bpmn:timeDuration>"PT2H"</bpmn:timeDuration></bpmn:timerEventDefinition>'
    "</bpmn:intermediateCatchEvent>"
    + catch("paid", "paid")
    + '<bpmn:intermediateCatchEvent id="remind_after"><bpmn:timerEventDefinition>'
    '<bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>'
    "</bpmn:intermediateCatchEvent>"
    '<bpmn:userTask id="escalate" camunda:assignee="E1"/>'
    '<bpmn:userTask id="collect" camunda:assignee="C001"/>'
    '<bpmn:userTask id="remind" camunda:assignee="R1"/>'
    '<bpmn:endEvent id="end1"/><bpmn:endEvent id="end2"/><bpmn:endEvent id="end3"/>'
    + flows(
        ("start", "apply"),
        ("apply", "which"),
        ("which", "escalate_after"),
        ("which", "paid"),
        ("which", "remind_after"),
        ("escalate_after", "escalate"),
        ("paid", "collect"),
        ("remind_after", "remind"),
        ("escalate", "end1"),
        ("collect", "end2"),
        ("remind", "end3"),
    )
    + "</bpmn:process>",
    "paid",
)


def test_each_timer_of_an_event_based_gateway_keeps_its_own_due_time(tmp_path: Path) -> None:
    """SpiffWorkflow keeps one due time per task, and the gateway is one task for all its
    events: the timer evaluated first used to set the other's due time too. The 1-hour branch
    fires at one hour, and the gateway then waits on nothing else."""
    with opened(tmp_path, {"two_timers.bpmn": TWO_TIMERS}) as harness:
        bridge = harness.bridge()
        inst = bridge.start("two_timers", initiator="2023001")
        bridge.complete(inst.todos[0].task_id, handler="T001")
        due = bridge.store.get_instance(inst.id).next_timer_at
        assert due == harness.clock.now() + timedelta(hours=1)
        harness.clock.advance(timedelta(hours=1))
        (fired,) = bridge.tick()
        assert fired.next_nodes == ("remind",)
        harness.assert_in_step(bridge, inst.id)
        harness.clock.advance(timedelta(hours=2))
        assert bridge.tick() == []
        assert [t.node_id for t in bridge.todos(inst.id)] == ["remind"]
        with pytest.raises(InputError, match="waits for no message"):
            bridge.message(inst.id, "paid")


def test_the_same_keyed_message_from_two_bridges_at_once_is_delivered_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bridge B read the instance and found no step under the key just before bridge A
    delivered the message; B's commit then loses to A's, and B answers with A's outcome,
    as a retried completion does."""
    first, iid = _paid_and_waiting(harness)
    second = harness.bridge()
    stale = second.store.get_instance(iid)
    looked: list[str] = []
    real_find = second.store.find_history

    def find_after_the_first_look(key: str) -> object:
        looked.append(key)
        return None if len(looked) == 1 else real_find(key)

    out = first.message(iid, "paid", key="pay-1")
    monkeypatch.setattr(second.store, "find_history", find_after_the_first_look)
    monkeypatch.setattr(second.store, "get_instance", lambda _id: stale)
    again = second.message(iid, "paid", key="pay-1")
    assert again.duplicate and [t.task_id for t in again.created] == [
        t.task_id for t in out.created
    ]
    assert looked == ["pay-1", "pay-1"]
    assert [e.kind for e in first.history(iid)].count("message") == 1
    harness.assert_in_step(first, iid)


def test_a_scenario_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Windows editors start UTF-8 files with a BOM; it is no part of the scenario."""
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"process": "payment", "start": {"initiator": "2023001"}}')
    assert load_scenario(path).process == "payment"


def test_a_late_tick_takes_only_the_gateway_branch_whose_timer_fell_due_first(
    tmp_path: Path,
) -> None:
    """The worker was down for three hours: both timers are due at the next tick. The gateway
    takes one branch, the 1-hour reminder's (its timer came first), though the 2-hour
    escalation is drawn first."""
    with opened(tmp_path, {"two_timers.bpmn": TWO_TIMERS}) as harness:
        bridge = harness.bridge()
        inst = bridge.start("two_timers", initiator="2023001")
        bridge.complete(inst.todos[0].task_id, handler="T001")
        harness.clock.advance(timedelta(hours=3))
        (fired,) = bridge.tick()
        assert fired.next_nodes == ("remind",)
        harness.assert_in_step(bridge, inst.id)
        assert [t.node_id for t in bridge.todos(inst.id)] == ["remind"]
