"""Countersign instances that are not one person's signature: an instance a handling group
signs (每个部门会签: any member signs for the department), or one that several people may sign
(either officer of a department). Each is a todo of its own at the centre, completed as an
or-sign is; instances naming one person each stay shares of the one countersign todo. After
every step the centre's open todos equal the ledger's and the engine's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_bridge.errors import EngineError, NotAHandlerError, TaskNotOpenError
from tests.services.kit import Harness, bpmn, opened

# Camunda Modeler's department countersign: one instance per department, signed by its group.
DEPARTMENTS = bpmn(
    "departments",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="sign" name="部门会签" camunda:candidateGroups="${dept}">'
    '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${depts}" '
    'camunda:elementVariable="dept"/></bpmn:userTask>',
    '<bpmn:userTask id="archive" camunda:assignee="N1"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "archive"), ("archive", "end")],
)

# A countersign whose signer slots may name several people, mixed with single signers.
SLOTS = bpmn(
    "slots",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="sign" name="会签"><bpmn:extensionElements><spiffworkflow:properties>'
    '<spiffworkflow:property name="handlers" value="signer"/>'
    "</spiffworkflow:properties></bpmn:extensionElements>"
    "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopDataInputRef>signers"
    '</bpmn:loopDataInputRef><bpmn:inputDataItem id="signer" name="signer"/>'
    "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>",
    '<bpmn:userTask id="archive" camunda:assignee="N1"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "archive"), ("archive", "end")],
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(tmp_path, {"departments.bpmn": DEPARTMENTS, "slots.bpmn": SLOTS}) as h:
        yield h


def test_each_department_of_a_group_countersign_has_a_todo_until_it_signs(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("departments", initiator="2023001", data={"depts": ["教务处", "财务处"]})
    assert [(t.node_id, t.handling_groups) for t in inst.todos] == [
        ("sign", ("教务处",)),
        ("sign", ("财务处",)),
    ]
    assert len({t.task_id for t in inst.todos}) == 2
    harness.assert_in_step(bridge, inst.id)
    first = bridge.complete(inst.todos[0].task_id, handler="U1")  # a member of 教务处
    assert first.status == "none" and first.closed == (inst.todos[0].task_id,)
    harness.assert_in_step(bridge, inst.id)
    assert [t.handling_groups for t in bridge.todos(inst.id)] == [("财务处",)]
    with pytest.raises(TaskNotOpenError):
        bridge.complete(inst.todos[0].task_id, handler="U3")  # that department has signed
    last = bridge.complete(inst.todos[1].task_id, handler="U2")
    assert last.status == "next" and last.next_nodes == ("archive",)
    harness.assert_in_step(bridge, inst.id)
    assert bridge.complete(last.created[0].task_id, handler="N1").status == "end"
    harness.assert_in_step(bridge, inst.id)
    assert harness.endpoints() == [
        "addTransaction",
        "addTransaction",
        "taskHandle:none",
        "taskHandle:next",
        "taskHandle:end",
    ]


def test_a_slot_either_of_two_people_may_sign_is_its_own_todo(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("slots", initiator="2023001", data={"signers": [["A1", "A2"], "B1", "C1"]})
    pair, singles = inst.todos
    assert pair.handlers == ("A1", "A2") and singles.handlers == ("B1", "C1")
    harness.assert_in_step(bridge, inst.id)
    # B1 signs the countersign todo; A1 and A2 are not its signers.
    with pytest.raises(NotAHandlerError, match="open signers: B1, C1"):
        bridge.complete(singles.task_id, handler="A1")
    assert bridge.complete(singles.task_id, handler="B1").status == "none"
    harness.assert_in_step(bridge, inst.id)
    # A2 signs for the pair: A1's share is withdrawn with it.
    with pytest.raises(NotAHandlerError):
        bridge.complete(pair.task_id, handler="B1")
    signed = bridge.complete(pair.task_id, handler="A2")
    assert signed.status == "none" and pair.task_id in signed.closed
    assert [c.endpoint.value for c in signed.calls] == ["taskHandle", "taskWithdraw"]
    harness.assert_in_step(bridge, inst.id)
    last = bridge.complete(singles.task_id, handler="C1")
    assert last.status == "next" and last.next_nodes == ("archive",)
    harness.assert_in_step(bridge, inst.id)


def test_the_rule_holds_in_a_stored_and_reloaded_instance(harness: Harness) -> None:
    """A second bridge reads the stored state: the same todos, the same refusals."""
    first = harness.bridge()
    inst = first.start("slots", initiator="2023001", data={"signers": [["A1", "A2"], "B1"]})
    fresh = harness.bridge()
    assert [t.handlers for t in fresh.waiting(inst.id)] == [("A1", "A2"), ("B1",)]
    out = fresh.complete(inst.todos[0].task_id, handler="A1")
    assert out.status == "none"
    harness.assert_in_step(fresh, inst.id)
    assert fresh.complete(inst.todos[1].task_id, handler="B1").next_nodes == ("archive",)
    harness.assert_in_step(fresh, inst.id)


def test_a_missing_countersign_list_is_named(harness: Harness) -> None:
    """Without its collection the countersign cannot start; the error names the element and
    the variable it reads, whatever SpiffWorkflow raised underneath."""
    bridge = harness.bridge()
    for data, got in (({}, "it is missing"), ({"depts": 5}, "it is int")):
        with pytest.raises(EngineError) as caught:
            bridge.start("departments", initiator="2023001", data=data)
        message = str(caught.value)
        assert "node 'sign' failed" in message, message
        assert f"reads its items from the variable 'depts', and {got}" in message
    assert bridge.todos() == []


# Each signer named with a handling group of their own office.
WITH_OFFICES = SLOTS.replace('id="slots"', 'id="offices"').replace(
    '<spiffworkflow:property name="handlers" value="signer"/>',
    '<spiffworkflow:property name="handlers" value="signer[\'who\']"/>'
    '<spiffworkflow:property name="handlingGroup" value="signer.get(\'office\')"/>',
)


def test_a_signer_named_with_a_group_is_a_todo_of_their_own(tmp_path: Path) -> None:
    """One person and a group: the group's members may sign too, which the countersign
    todo's one group share could not follow; that instance is a todo of its own, while the
    signers named alone share the countersign todo."""
    with opened(tmp_path, {"offices.bpmn": WITH_OFFICES}) as harness:
        bridge = harness.bridge()
        signers = [{"who": "F", "office": "finance"}, {"who": "D"}, {"who": "E"}]
        inst = bridge.start("offices", initiator="2023001", data={"signers": signers})
        assert [(t.handlers, t.handling_groups) for t in inst.todos] == [
            (("F",), ("finance",)),
            (("D", "E"), ()),
        ]
        harness.assert_in_step(bridge, inst.id)
        out = bridge.complete(inst.todos[0].task_id, handler="F2")  # another finance officer
        assert out.status == "none"
        harness.assert_in_step(bridge, inst.id)
        bridge.complete(inst.todos[1].task_id, handler="D")
        last = bridge.complete(inst.todos[1].task_id, handler="E")
        assert last.next_nodes == ("archive",)
        harness.assert_in_step(bridge, inst.id)
