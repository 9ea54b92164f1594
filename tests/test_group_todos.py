"""A todo offered to listed people AND a handling group: a member of the group may complete
it, as the centre lets them (the bridge never sees a group's members; the business system
checks them). Nobody else is refused where the todo names people only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_bridge.errors import NotAHandlerError
from tests.services.kit import Harness, bpmn, opened

MIXED = bpmn(
    "mixed",
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="review" camunda:candidateUsers="T1,T2" camunda:candidateGroups="deans"/>',
    '<bpmn:userTask id="people" camunda:candidateUsers="T1,T2"/>',
    '<bpmn:endEvent id="end"/>',
    flows=[("start", "review"), ("review", "people"), ("people", "end")],
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(tmp_path, {"mixed.bpmn": MIXED}) as h:
        yield h


def test_a_group_member_completes_a_todo_that_also_lists_people(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start("mixed", initiator="2023001")
    (review,) = inst.todos
    assert review.handlers == ("T1", "T2") and review.handling_groups == ("deans",)
    out = bridge.complete(review.task_id, handler="G7")  # a dean, not listed by name
    assert out.status == "next" and out.next_nodes == ("people",)
    harness.assert_in_step(bridge, inst.id)
    with pytest.raises(NotAHandlerError, match="its handlers are: T1, T2"):
        bridge.complete(out.created[0].task_id, handler="G7")
    assert bridge.complete(out.created[0].task_id, handler="T2").status == "end"
    harness.assert_in_step(bridge, inst.id)
