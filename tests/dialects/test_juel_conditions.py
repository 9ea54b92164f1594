"""JUEL conditions on a Camunda-drawn gateway, run end to end by a bridge.

Activiti's enum form fields submit the strings ``"true"`` / ``"false"``; a condition that is
just the variable (``${approved}``) must read them as EL does, not as Python truthiness (where
the non-empty string ``"false"`` is true).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.errors import EngineError
from tests.services.kit import NS, Harness, opened

APPROVAL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/juel">
  <bpmn:process id="approval" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="apply" camunda:assignee="T001"/>
    <bpmn:exclusiveGateway id="decide"/>
    <bpmn:userTask id="yes" camunda:assignee="T002"/>
    <bpmn:userTask id="no" camunda:assignee="T003"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="apply"/>
    <bpmn:sequenceFlow id="f1" sourceRef="apply" targetRef="decide"/>
    <bpmn:sequenceFlow id="to_yes" sourceRef="decide" targetRef="yes">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${{approved}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_no" sourceRef="decide" targetRef="no">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${{!approved}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f2" sourceRef="yes" targetRef="end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="no" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(tmp_path, {"approval.bpmn": APPROVAL}) as h:
        yield h


@pytest.mark.parametrize(
    ("approved", "way"),
    [
        ("false", "no"),
        ("true", "yes"),
        ("TRUE", "yes"),
        (None, "no"),
        ("", "no"),
        ("yes", "no"),  # EL's Boolean.valueOf: only "true" in any case is true
        (True, "yes"),
        (False, "no"),
    ],
)
def test_a_bare_variable_condition_takes_the_el_way(
    harness: Harness, approved: Any, way: str
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("approval", initiator="T001")
    (apply,) = inst.todos
    out = bridge.complete(apply.task_id, handler="T001", data={"approved": approved})
    assert out.next_nodes == (way,)
    assert [t.node_id for t in bridge.todos(inst.id)] == [way]
    harness.assert_in_step(bridge, inst.id)


def test_a_number_where_the_condition_needs_a_boolean_is_refused(harness: Harness) -> None:
    """EL cannot coerce a number to Boolean: the step fails, naming the value's type, and the
    instance stays where it was."""
    bridge = harness.bridge()
    inst = bridge.start("approval", initiator="T001")
    (apply,) = inst.todos
    with pytest.raises(EngineError, match="JUEL needs a boolean here, not the int 1"):
        bridge.complete(apply.task_id, handler="T001", data={"approved": 1})
    assert [t.node_id for t in bridge.todos(inst.id)] == ["apply"]
    harness.assert_in_step(bridge, inst.id)
