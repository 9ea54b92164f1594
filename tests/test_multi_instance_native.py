"""Multi-instance tasks drawn in SpiffWorkflow's own form without an output collection.

SpiffWorkflow merges each finished instance's data into the process data, element variable
included; the next instance of a sequential one, or the next visit of a parallel one a gateway
loops back to, would then fail with "input item already exists". The loader removes the
element variable as each instance finishes, as it does for Camunda's loops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from engine_bridge.loader.dialects import translate_dialects
from tests.services.kit import Harness, bpmn, opened


def _countersign(sequential: bool, post_script: str = "") -> str:
    post = (
        f"<spiffworkflow:postScript>{post_script}</spiffworkflow:postScript>" if post_script else ""
    )
    return (
        '<bpmn:userTask id="sign"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="handlers" value="signer"/></spiffworkflow:properties>'
        f"{post}</bpmn:extensionElements>"
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="{str(sequential).lower()}">'
        "<bpmn:loopDataInputRef>signers</bpmn:loopDataInputRef>"
        '<bpmn:inputDataItem id="signer" name="signer"/>'
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"
    )


SEQUENTIAL = bpmn(
    "in_turn",
    '<bpmn:startEvent id="start"/>',
    _countersign(True),
    '<bpmn:userTask id="archive" camunda:assignee="N1"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "archive"), ("archive", "end")],
)

# Sign, and sign again when someone asks for a second round.
AGAIN = bpmn(
    "again",
    '<bpmn:startEvent id="start"/>',
    _countersign(False),
    '<bpmn:exclusiveGateway id="more" default="f2"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "more"), ("more", "end"), ("more", "sign")],
).replace(
    'id="f3" sourceRef="more" targetRef="sign"/>',
    'id="f3" sourceRef="more" '
    'targetRef="sign"><bpmn:conditionExpression>again == True'
    "</bpmn:conditionExpression></bpmn:sequenceFlow>",
)


# A sequential multi-instance subprocess: each person's stage in turn.
STAGES = bpmn(
    "stages",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:subProcess id="stage"><bpmn:multiInstanceLoopCharacteristics isSequential="true">'
    "<bpmn:loopDataInputRef>people</bpmn:loopDataInputRef>"
    '<bpmn:inputDataItem id="person"/></bpmn:multiInstanceLoopCharacteristics>'
    '<bpmn:startEvent id="s0"/><bpmn:userTask id="sign" camunda:assignee="${person}"/>'
    '<bpmn:endEvent id="s1"/><bpmn:sequenceFlow id="sa" sourceRef="s0" targetRef="sign"/>'
    '<bpmn:sequenceFlow id="sb" sourceRef="sign" targetRef="s1"/></bpmn:subProcess>',
    '<bpmn:userTask id="archive" camunda:assignee="N1"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "stage"), ("stage", "archive"), ("archive", "end")],
)


# Camunda's form, the task's name naming each instance's place.
NUMBERED = bpmn(
    "numbered",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="sign" name="Signature ${loopCounter}" camunda:assignee="${signer}">'
    '<bpmn:multiInstanceLoopCharacteristics isSequential="true" '
    'camunda:collection="${signers}" camunda:elementVariable="signer"/></bpmn:userTask>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "end")],
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    files = {
        "in_turn.bpmn": SEQUENTIAL,
        "again.bpmn": AGAIN,
        "stages.bpmn": STAGES,
        "numbered.bpmn": NUMBERED,
    }
    with opened(tmp_path, files) as h:
        yield h


def test_a_sequential_multi_instance_subprocess_runs_each_instance_in_turn(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("stages", initiator="2023001", data={"people": ["P1", "P2", "P3"]})
    for person, following in (("P1", ("sign",)), ("P2", ("sign",)), ("P3", ("archive",))):
        (todo,) = bridge.todos(inst.id)
        assert todo.handlers == (person,)
        assert bridge.complete(todo.task_id, handler=person).next_nodes == following
        harness.assert_in_step(bridge, inst.id)


def test_sequential_signers_each_get_their_turn(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("in_turn", initiator="2023001", data={"signers": ["A1", "A2", "A3"]})
    todo = inst.todos[0]
    for signer, following in (("A1", "A2"), ("A2", "A3")):
        out = bridge.complete(todo.task_id, handler=signer)
        assert out.status == "next" and out.created[0].handlers == (following,)
        harness.assert_in_step(bridge, inst.id)
        todo = out.created[0]
    assert bridge.complete(todo.task_id, handler="A3").next_nodes == ("archive",)
    harness.assert_in_step(bridge, inst.id)


def test_a_countersign_signed_again_after_a_loop_back(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("again", initiator="2023001", data={"signers": ["A1", "A2"]})
    todo = inst.todos[0]
    assert bridge.complete(todo.task_id, handler="A1").status == "none"
    again = bridge.complete(todo.task_id, handler="A2", data={"again": True})
    assert again.status == "next" and again.created[0].handlers == ("A1", "A2")
    harness.assert_in_step(bridge, inst.id)
    second = again.created[0]
    bridge.complete(second.task_id, handler="A2")
    done = bridge.complete(second.task_id, handler="A1", data={"again": False})
    assert done.status == "end"
    harness.assert_in_step(bridge, inst.id)


def test_a_native_loop_with_a_post_script_of_its_own_is_left_as_drawn(tmp_path: Path) -> None:
    """A post-script that runs once for the whole task is the author's: no cleanup is added
    and nothing is reported (the loop may well never need it)."""
    text = bpmn("own", '<bpmn:startEvent id="start"/>', _countersign(False, "done = True"))
    root = etree.fromstring(text.encode())
    assert translate_dialects(root, "own.bpmn") == []
    scripts = root.findall(".//{http://spiffworkflow.org/bpmn/schema/1.0/core}postScript")
    assert [s.text for s in scripts] == ["done = True"]


def test_a_native_loop_with_a_pre_script_of_its_own_is_left_as_drawn() -> None:
    """Its pre-script runs once for the whole task and may build the collection; moving the
    scripts onto each instance would run it per instance, after the collection is read."""
    text = bpmn(
        "own_pre",
        '<bpmn:startEvent id="start"/>',
        _countersign(False).replace(
            "</bpmn:extensionElements>",
            "<spiffworkflow:preScript>signers = roster.split()</spiffworkflow:preScript>"
            "</bpmn:extensionElements>",
        ),
    )
    root = etree.fromstring(text.encode())
    assert translate_dialects(root, "own_pre.bpmn") == []
    spiff = "{http://spiffworkflow.org/bpmn/schema/1.0/core}"
    assert root.findall(f".//{spiff}postScript") == []
    loop = root.find(
        ".//{http://www.omg.org/spec/BPMN/20100524/MODEL}multiInstanceLoopCharacteristics"
    )
    assert loop is not None and loop.get(f"{spiff}scriptsOnInstances") is None


def test_a_juel_task_name_names_each_instance_at_the_centre(harness: Harness) -> None:
    """Camunda evaluates a task name's expressions for each task: the todos are named
    Signature 0, Signature 1, while the node keeps the name it was drawn with."""
    bridge = harness.bridge()
    inst = bridge.start("numbered", initiator="2023001", data={"signers": ["A1", "A2"]})
    todo = inst.todos[0]
    out = bridge.complete(todo.task_id, handler="A1")
    names = [
        (t["task_name"], t["node_name"])
        for t in harness.fake.state()["todos"].values()
        if t["item"].get("taskId", "").startswith(inst.id)
    ]
    assert names == [
        ("Signature 0", "Signature ${loopCounter}"),
        ("Signature 1", "Signature ${loopCounter}"),
    ]
    assert bridge.complete(out.created[0].task_id, handler="A2").finished


# A countersign whose number of signers the model computes.
COUNTED = bpmn(
    "counted",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="sign"><bpmn:extensionElements><spiffworkflow:properties>'
    '<spiffworkflow:property name="handlers" value="approvers[loopCounter]"/>'
    "</spiffworkflow:properties></bpmn:extensionElements>"
    '<bpmn:multiInstanceLoopCharacteristics isSequential="false">'
    "<bpmn:loopCardinality>how_many * 1000</bpmn:loopCardinality>"
    "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>",
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "sign"), ("sign", "end")],
)


def test_a_computed_cardinality_over_the_limit_is_refused_before_any_instance(
    tmp_path: Path,
) -> None:
    """The model, not the caller, decides a computed cardinality: 10**7 instances took hours
    and gigabytes. Over the limit the start fails naming it, and nothing is kept."""
    from engine_bridge.engine.multi_instance import MAX_CARDINALITY
    from engine_bridge.errors import EngineError

    with opened(tmp_path, {"counted.bpmn": COUNTED}) as harness:
        bridge = harness.bridge()
        people = [f"U{n}" for n in range(3000)]
        inst = bridge.start(
            "counted", initiator="2023001", data={"how_many": 3, "approvers": people}
        )
        (todo,) = inst.todos
        assert len(todo.handlers) == 3000
        too_many = MAX_CARDINALITY // 1000 + 1
        with pytest.raises(EngineError, match=r"asks for 11,000 instances"):
            bridge.start(
                "counted", initiator="2023001", data={"how_many": too_many, "approvers": people}
            )
        assert len(bridge.store.list_instances()) == 1
