"""READY tasks found without a tree walk come out exactly as SpiffWorkflow's walk gives them."""

from __future__ import annotations

from typing import Any

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskState

from engine_bridge.engine.scan import ready_by_kind, ready_tasks

from .kit import END, START, Run, chain, definitions, flow, load, process, user


def _fork(branches: list[str]) -> str:
    """A parallel split into ``branches`` (each a chain of element ids ending in a user task)
    and a join; a branch element named ``s…`` is a script task, so its user task sits one
    level deeper in the tree than a user task directly after the split."""
    body = START + '<bpmn:parallelGateway id="split"/><bpmn:parallelGateway id="join"/>' + END
    flows = flow("start", "split") + flow("join", "end")
    for branch in branches:
        ids = branch.split(",")
        for element in ids:
            if element.startswith("s"):
                body += f'<bpmn:scriptTask id="{element}"><bpmn:script>x = 1</bpmn:script>'
                body += "</bpmn:scriptTask>"
            else:
                body += user(element, f"'{element.upper()}'")
        flows += flow("split", ids[0]) + chain(*ids) + flow(ids[-1], "join")
    return definitions(process("fork", body + flows))


def _walked(wf: Any, manual: bool) -> list[Any]:
    # SpiffWorkflow's own iterator (the workflow's get_tasks walks with the bridge's walk)
    return list(BpmnTaskIterator(wf.task_tree, state=TaskState.READY, manual=manual))


@pytest.mark.parametrize(
    "branches",
    [
        ["a", "b", "c"],  # siblings under one parent
        ["s1,a", "b"],  # a deeper task first in the tree, a shallow one after
        ["b", "s1,a"],  # and the other way round
        ["s1,a", "s2,s3,b", "c"],  # three parents, three depths
    ],
)
def test_ready_tasks_match_the_tree_walk(branches: list[str]) -> None:
    """Same tasks, same order as wf.get_tasks(state=READY, manual=...), after every step."""
    run = Run(load(_fork(branches), "fork"))
    run.start()
    while run.facts is not None and run.facts.open_todos:
        assert ready_tasks(run.wf, manual=True) == _walked(run.wf, True)
        assert ready_tasks(run.wf, manual=False) == _walked(run.wf, False)
        assert ready_by_kind(run.wf)[0]  # a person is awaited
        todo = run.facts.open_todos[-1]
        run.complete(todo.node_id, todo.handlers[0])
    assert not ready_by_kind(run.wf)[0]


def test_countersign_instances_and_the_task_after_keep_the_walk_order() -> None:
    """A parallel multi-instance: N READY instances under one parent, in the walk's order."""
    xml = definitions(
        process(
            "cs",
            START
            + user(
                "sign",
                "signer",
                inner="<bpmn:multiInstanceLoopCharacteristics><bpmn:loopDataInputRef>signers"
                '</bpmn:loopDataInputRef><bpmn:inputDataItem id="signer"/>'
                "</bpmn:multiInstanceLoopCharacteristics>",
            )
            + user("after", "'Z'")
            + END
            + chain("start", "sign", "after", "end"),
        )
    )
    run = Run(load(xml, "cs"))
    run.start({"signers": [f"S{n}" for n in range(12)]})
    found = ready_tasks(run.wf, manual=True)
    assert len(found) == 12 and found == _walked(run.wf, True)
    assert [t.data["signer"] for t in found] == [f"S{n}" for n in range(12)]
