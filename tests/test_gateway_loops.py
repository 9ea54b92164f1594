"""Parallel and inclusive gateways inside a loop (a rework loop around a joint review): every
round's join waits for that round's branches. SpiffWorkflow 3.2 counted the branches of
earlier rounds: from the second round on a parallel join fired when one branch arrived (its
other branch's todo opened again and again), and an inclusive join fired early and then failed
on the next completion. After every step the centre's open todos equal the ledger's and the
engine's."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine_bridge import Bridge
from tests.services.kit import NS, Harness, opened


def flows(*pairs: tuple[str, str, str]) -> str:
    out = []
    for n, (source, target, condition) in enumerate(pairs):
        body = (
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}'
            "</bpmn:conditionExpression>"
            if condition
            else ""
        )
        out.append(
            f'<bpmn:sequenceFlow id="f{n}" sourceRef="{source}" targetRef="{target}">{body}'
            "</bpmn:sequenceFlow>"
        )
    return "".join(out)


def model(process_id: str, kind: str, branches: dict[str, str], conditions: bool) -> str:
    """start → merge → split (``kind``) → one user task per branch → join → again: back to the
    merge while ``loop == 1``, else the end."""
    tasks = "".join(
        f'<bpmn:userTask id="{node}" camunda:assignee="{who}"/>' for node, who in branches.items()
    )
    split_flows = [("split", node, f"go_{node}" if conditions else "") for node in branches]
    join_flows = [(node, "join", "") for node in branches]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'id="defs_{process_id}" targetNamespace="http://example.org/loops">'
        f'<bpmn:process id="{process_id}" isExecutable="true">'
        '<bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="merge"/>'
        f'<bpmn:{kind} id="split"/>{tasks}<bpmn:{kind} id="join"/>'
        '<bpmn:exclusiveGateway id="again"/><bpmn:endEvent id="end"/>'
        + flows(
            ("start", "merge", ""),
            ("merge", "split", ""),
            *split_flows,
            *join_flows,
            ("join", "again", ""),
            ("again", "merge", "loop == 1"),
            ("again", "end", "loop != 1"),
        )
        + "</bpmn:process></bpmn:definitions>"
    )


MODELS = {
    "parallel.bpmn": model(
        "parallel", "parallelGateway", {"a": "U1", "b": "U2", "c": "U3"}, conditions=False
    ),
    "inclusive.bpmn": model(
        "inclusive", "inclusiveGateway", {"a": "U1", "b": "U2", "c": "U3"}, conditions=True
    ),
}
WHO = {"a": "U1", "b": "U2", "c": "U3"}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with opened(tmp_path, MODELS) as h:
        yield h


def _open(bridge: Bridge, iid: str) -> list[str]:
    return sorted(t.node_id for t in bridge.todos(iid))


def _complete(harness: Harness, bridge: Bridge, iid: str, node: str, **data: Any) -> Any:
    (task,) = [t.task_id for t in bridge.todos(iid) if t.node_id == node]
    outcome = bridge.complete(task, handler=WHO[node], data=data)
    harness.assert_in_step(bridge, iid)
    return outcome


@pytest.mark.parametrize("order", list(itertools.permutations("abc")), ids="".join)
def test_a_parallel_join_in_a_loop_waits_for_every_branch_of_its_round(
    harness: Harness, order: tuple[str, ...]
) -> None:
    bridge = harness.bridge()
    inst = bridge.start("parallel", initiator="2023001", data={"loop": 1})
    for round_number in range(3):
        last = round_number == 2
        assert _open(bridge, inst.id) == ["a", "b", "c"], round_number
        first, second, third = order if round_number % 2 == 0 else reversed(order)
        assert _complete(harness, bridge, inst.id, first).status == "none"
        assert _complete(harness, bridge, inst.id, second).status == "none"
        assert _open(bridge, inst.id) == [third]
        out = _complete(harness, bridge, inst.id, third, loop=0 if last else 1)
        assert out.status == ("end" if last else "next")
    assert bridge.instance(inst.id).status == "finished"


def test_an_inclusive_join_in_a_loop_waits_for_the_branches_its_round_took(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    taken = {"go_a": True, "go_b": True, "go_c": False, "loop": 1}
    inst = bridge.start("inclusive", initiator="2023001", data=taken)
    rounds = [
        # (branches taken this round, order of completion, the next round's choice)
        (["a", "b"], ["b", "a"], {"go_a": False, "go_b": True, "go_c": True}),
        (["b", "c"], ["b", "c"], {"go_a": True, "go_b": False, "go_c": False}),
        (["a"], ["a"], {"go_a": True, "go_b": True, "go_c": True}),
        (["a", "b", "c"], ["c", "a", "b"], {"go_a": True, "go_b": True, "go_c": False}),
        (["a", "b"], ["a", "b"], None),
    ]
    for branches, order, choice in rounds:
        assert _open(bridge, inst.id) == branches
        for node in order[:-1]:
            assert _complete(harness, bridge, inst.id, node).status == "none"
        data = {**(choice or {}), "loop": 1 if choice else 0}
        out = _complete(harness, bridge, inst.id, order[-1], **data)
        assert out.status == ("next" if choice else "end"), branches
    assert bridge.instance(inst.id).status == "finished"


def test_a_rework_loop_survives_a_restart_between_rounds(harness: Harness) -> None:
    """The rounds are told apart by the task tree, which the stored state keeps."""
    first = harness.bridge()
    inst = first.start("parallel", initiator="2023001", data={"loop": 1})
    for node in "abc":
        _complete(harness, first, inst.id, node)
    first.close()
    second = harness.bridge()
    assert _complete(harness, second, inst.id, "c").status == "none"
    assert _open(second, inst.id) == ["a", "b"]
