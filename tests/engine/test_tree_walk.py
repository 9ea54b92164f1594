"""The bridge's task-tree walk gives what SpiffWorkflow's iterators give, task for task.

SpiffWorkflow's own ``TaskIterator`` / ``BpmnTaskIterator`` are the reference throughout: every
walk is compared with them directly here (and, through ``compare_walks``, in every other
test of the suite).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskIterator, TaskState

from engine_bridge.engine import tree_walk
from engine_bridge.engine.state import definition_json, dump_document, dump_state, load_state
from engine_bridge.engine.tree_walk import (
    MAX_DEPTH,
    BridgeSubWorkflow,
    BridgeWorkflow,
    compare_walks,
    walk,
)
from engine_bridge.errors import EngineError
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.library import WorkflowLibrary
from engine_bridge.testing.scenario import parse_duration

from .kit import END, START, Run, chain, definitions, flow, load, process, user

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"

#: Every state SpiffWorkflow's filters are asked about, alone and as the masks it uses.
STATES = [
    TaskState.ANY_MASK,
    TaskState.READY,
    TaskState.WAITING,
    TaskState.STARTED,
    TaskState.COMPLETED,
    TaskState.CANCELLED,
    TaskState.FUTURE,
    TaskState.MAYBE | TaskState.LIKELY,
    TaskState.NOT_FINISHED_MASK,
    TaskState.FINISHED_MASK,
    TaskState.DEFINITE_MASK,
    TaskState.PREDICTED_MASK,
]


def _same_walks(wf: Any) -> None:
    """Every filter, from the root and from every seventh task, on the workflow and its
    subprocesses: ``walk`` gives what ``TaskIterator`` gives, and the workflow's own
    ``get_tasks`` what ``BpmnTaskIterator`` gives."""
    workflows = [wf, *wf.subprocesses.values()]
    for owner in workflows:
        starts = [owner.task_tree, *list(owner.tasks.values())[:: max(1, len(owner.tasks) // 7)]]
        for first in starts:
            for state in STATES:
                for manual in (None, True, False):
                    ours = list(walk(first, state=state, manual=manual))
                    theirs = list(TaskIterator(first, state=state, manual=manual))
                    assert ours == theirs, (owner.spec.name, first.task_spec.name, state, manual)
                    got = owner.get_tasks(first, state=state, manual=manual)
                    assert got == list(BpmnTaskIterator(first, state=state, manual=manual))


def _scenario_steps(name: str) -> tuple[Run, list[dict[str, Any]]]:
    """The scenario's instance started, and its actions (complete, tick, message, cancel) in
    order."""
    scenario = json.loads((WORKFLOWS / "scenarios" / f"{name}.json").read_text("utf-8"))
    library = WorkflowLibrary.load(WORKFLOWS, transforms=(translate_dialects,))
    run = Run(library.get(scenario["process"]))
    start = scenario["start"]
    run.start(dict(start.get("data", {})), initiator=start["initiator"])
    return run, [s for s in scenario["steps"] if "expect" not in s]


def act(run: Run, step: dict[str, Any]) -> None:
    """One scenario action on ``run``."""
    if "complete" in step:
        done = step["complete"]
        run.complete(done["node"], done["handler"], done.get("data"))
    elif "tick" in step:
        run.tick(parse_duration(step["tick"].get("advance", "PT0S")))
    elif "message" in step:
        run.message(step["message"]["name"], step["message"].get("data"))
    else:
        run.cancel(step["cancel"]["by"])


@pytest.mark.parametrize("name", sorted(p.stem for p in (WORKFLOWS / "scenarios").glob("*.json")))
def test_every_walk_matches_spiffworkflow_at_every_step_of_the_samples(name: str) -> None:
    """The sample processes (countersigns, parallel branches, a subprocess and a call
    activity, boundary timers and reminders, a terminate end, a cancel) driven through their
    scenarios."""
    run, steps = _scenario_steps(name)
    _same_walks(run.wf)
    for step in steps:
        act(run, step)
        _same_walks(run.wf)


def _subprocess_model() -> list[str]:
    inner = process(
        "inner",
        START + user("inner_task", "'I001'") + END + chain("start", "inner_task", "end"),
    )
    outer_body = (
        START
        + user("before", "'B001'")
        + '<bpmn:callActivity id="call" calledElement="inner"/>'
        + '<bpmn:subProcess id="embedded">'
        + '<bpmn:startEvent id="sub_start"/>'
        + user("sub_task", "'S001'")
        + '<bpmn:endEvent id="sub_end"/>'
        + flow("sub_start", "sub_task")
        + flow("sub_task", "sub_end")
        + "</bpmn:subProcess>"
        + user("after", "'A001'")
        + END
        + chain("start", "before", "call", "embedded", "after", "end")
    )
    return [definitions(process("outer", outer_body)), definitions(inner)]


def test_a_workflow_with_subprocesses_is_walked_by_spiffworkflow() -> None:
    """A call activity and an embedded subprocess, walked at every step: while the workflow
    has subprocesses its walks into them are SpiffWorkflow's own; its workflows are the
    bridge's, after a reload too."""
    run = Run(load(_subprocess_model(), "outer"))
    run.start()
    fast = run.wf.get_tasks_iterator(state=TaskState.READY)
    assert not isinstance(fast, BpmnTaskIterator), "no subprocess yet: the bridge's walk"
    for node, handler in [("before", "B001"), ("inner_task", "I001"), ("sub_task", "S001")]:
        assert isinstance(run.wf, BridgeWorkflow)
        assert all(isinstance(sp, BridgeSubWorkflow) for sp in run.wf.subprocesses.values())
        _same_walks(run.wf)
        run.complete(node, handler)
        assert run.wf.subprocesses
        for owner in [run.wf, *run.wf.subprocesses.values()]:
            assert isinstance(owner.get_tasks_iterator(state=TaskState.READY), BpmnTaskIterator)
    _same_walks(run.wf)
    assert run.complete("after", "A001").finished
    _same_walks(run.wf)


def test_the_depth_limit_after_an_interrupted_subprocess_is_spiffworkflows() -> None:
    """An embedded subprocess cut off by a boundary timer stays in the workflow with no
    children; SpiffWorkflow's depth count drifts by one after passing it. Its workflow is
    walked by SpiffWorkflow, so the depth limit falls where SpiffWorkflow puts it."""
    body = (
        START
        + '<bpmn:subProcess id="embedded"><bpmn:startEvent id="sub_start"/>'
        + user("sub_task", "'S'")
        + '<bpmn:endEvent id="sub_end"/>'
        + flow("sub_start", "sub_task")
        + flow("sub_task", "sub_end")
        + "</bpmn:subProcess>"
        + '<bpmn:boundaryEvent id="timer" attachedToRef="embedded"><bpmn:timerEventDefinition>'
        + '<bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>'
        + "</bpmn:boundaryEvent>"
        + user("after", "'A'")
        + user("escalate", "'E'")
        + END
        + '<bpmn:endEvent id="end2"/>'
        + chain("start", "embedded", "after", "end")
        + flow("timer", "escalate")
        + flow("escalate", "end2")
    )
    run = Run(load(definitions(process("p", body)), "p"))
    run.start()
    run.tick(timedelta(hours=2))
    assert run.nodes() == ["escalate"]
    wf = run.wf
    task, spec = wf.get_tasks(spec_name="escalate")[0], wf.spec.task_specs["after"]
    for _ in range(MAX_DEPTH):
        task = task._add_child(spec, TaskState.READY)
    got = wf.get_tasks(state=TaskState.READY)
    assert got == list(BpmnTaskIterator(wf.task_tree, state=TaskState.READY))
    ready = [t for t in wf.tasks.values() if t.state == TaskState.READY]
    assert len(got) < len(ready), "the limit was reached"


def _deep_chain(length: int) -> Any:
    """A started workflow whose tree has a chain of ``length`` tasks under the root."""
    run = Run(
        load(
            definitions(process("p", START + user("a", "'U'") + END + chain("start", "a", "end"))),
            "p",
        )
    )
    run.start()
    wf = run.wf
    task, spec = wf.task_tree, wf.spec.task_specs["a"]
    for _ in range(length):
        task = task._add_child(spec, TaskState.READY)
    return wf


def test_the_depth_limit_is_spiffworkflows() -> None:
    """SpiffWorkflow's iterators stop descending at depth 1000 (a loop taken a thousand
    times would reach it); so does the walk."""
    wf = _deep_chain(MAX_DEPTH + 20)
    ours = list(walk(wf.task_tree, state=TaskState.READY))
    assert ours == list(BpmnTaskIterator(wf.task_tree, state=TaskState.READY))
    assert ours == list(TaskIterator(wf.task_tree, state=TaskState.READY))
    ready = [t for t in wf.tasks.values() if t.state == TaskState.READY]
    assert len(ours) < len(ready), "tasks below the limit are not reached"


def test_a_child_missing_from_the_workflow_is_a_damaged_tree() -> None:
    """SpiffWorkflow fails on a child id its workflow does not hold; so does the walk,
    saying which task and which child."""
    run = Run(load(_parallel_model(), "par"))
    run.start()
    split = run.wf.get_tasks(spec_name="split")[0]
    lost = split._children[1]
    del run.wf.tasks[lost]
    with pytest.raises(AttributeError):
        list(TaskIterator(run.wf.task_tree))
    with pytest.raises(
        EngineError, match=rf"damaged: task split \({split.id}\) lists a child {lost}"
    ):
        list(walk(run.wf.task_tree))


@pytest.mark.parametrize("stamp", [float("nan"), -1.0, None])
def test_a_task_whose_state_stamp_is_not_a_time_is_filtered_as_spiffworkflow_does(
    stamp: float | None,
) -> None:
    """SpiffWorkflow's filter also asks for a state stamp not before 0: a task stored with
    NaN or a negative stamp is not found, one with none fails the walk."""
    run = Run(load(_parallel_model(), "par"))
    run.start()
    a = run.wf.get_tasks(spec_name="a")[0]
    a.last_state_change = stamp
    if stamp is None:
        with pytest.raises(TypeError):
            list(TaskIterator(run.wf.task_tree, state=TaskState.READY))
        with pytest.raises(TypeError):
            list(walk(run.wf.task_tree, state=TaskState.READY))
        return
    ours = list(walk(run.wf.task_tree, state=TaskState.READY))
    assert ours == list(TaskIterator(run.wf.task_tree, state=TaskState.READY))
    assert a not in ours and len(ours) == 2


def _parallel_model() -> str:
    body = START + '<bpmn:parallelGateway id="split"/><bpmn:parallelGateway id="join"/>' + END
    for node in ("a", "b", "c"):
        body += user(node, f"'{node.upper()}'")
    flows = flow("start", "split") + flow("join", "end")
    for node in ("a", "b", "c"):
        flows += flow("split", node) + flow(node, "join")
    return definitions(process("par", body + flows))


def test_children_added_to_the_task_handed_out_are_not_visited_others_are() -> None:
    """While a caller handles a task, the walk has already read that task's children (as
    SpiffWorkflow's iterator has); children added to a task it has not reached yet are
    walked."""
    run = Run(load(_parallel_model(), "par"))
    run.start()
    wf = run.wf
    a, b = (wf.get_tasks(spec_name=n)[0] for n in ("a", "b"))
    spec = wf.spec.task_specs["a"]

    before = set(wf.tasks)

    def walked(iterator: Any) -> list[Any]:
        seen: list[Any] = []
        for task in iterator:  # an added task is known by whose child it is
            seen.append(task.id if task.id in before else ("new", task.parent.task_spec.name))
            if task is a:  # give a (reached) and b (not reached yet) a READY child each
                a._add_child(spec, TaskState.READY)
                b._add_child(spec, TaskState.READY)
        for task in (a, b):  # take the added children away again for the next walk
            wf._remove_task(task._children[-1])
        return seen

    ours = walked(walk(wf.task_tree, state=TaskState.ANY_MASK))
    theirs = walked(BpmnTaskIterator(wf.task_tree, state=TaskState.ANY_MASK))
    assert ours == theirs
    assert ours.count(("new", "b")) == 1, "b's new child is walked"
    assert ("new", "a") not in ours, "a's is not"


def test_a_difference_from_spiffworkflow_fails_when_compared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``compare_walks`` on (the test suite's setting), a walk that differs raises and
    names where; off, nothing is compared."""
    assert compare_walks.on
    run = Run(load(_parallel_model(), "par"))
    run.start()
    run.complete("a", "A")  # the join now waits for b and c
    waiting = list(TaskIterator(run.wf.task_tree, state=TaskState.WAITING))
    assert [t.task_spec.name for t in waiting] == ["join"]

    def first_left_out(first: Any, **kwargs: Any) -> Any:
        return iter(list(walk(first, **kwargs))[1:])

    monkeypatch.setattr(tree_walk, "walk", first_left_out)
    with pytest.raises(EngineError, match=r"at position 0: c \(.* here, b \("):
        run.wf.get_tasks(state=TaskState.READY)
    with pytest.raises(EngineError, match=r"at position 0: the end here, join \("):
        run.wf.update_waiting_tasks()
    monkeypatch.setattr(compare_walks, "on", False)
    got = run.wf.get_tasks(state=TaskState.READY)
    assert got == list(BpmnTaskIterator(run.wf.task_tree, state=TaskState.READY))[1:]


def test_other_filters_go_to_spiffworkflows_iterator() -> None:
    """``spec_name``, ``end_at_spec`` and the like: SpiffWorkflow answers them itself."""
    run = Run(load(_parallel_model(), "par"))
    run.start()
    wf = run.wf
    assert [t.task_spec.name for t in wf.get_tasks(spec_name="b")] == ["b"]
    assert isinstance(wf.get_tasks_iterator(spec_name="b"), BpmnTaskIterator)
    assert not isinstance(wf.get_tasks_iterator(state=TaskState.READY), BpmnTaskIterator)


def test_stored_states_name_spiffworkflows_classes() -> None:
    """What is stored reads the same to SpiffWorkflow; what is read back is the bridge's."""
    run = Run(load(_subprocess_model(), "outer"))
    run.start()
    run.complete("before", "B001")
    document = dump_document(run.wf)
    assert document["typename"] == "BpmnWorkflow"
    assert {sp["typename"] for sp in document["subprocesses"].values()} == {"BpmnSubWorkflow"}
    restored = load_state(dump_state(run.wf), definition_json(run.process), script_engine=None)
    assert type(restored) is BridgeWorkflow
    assert [type(sp) for sp in restored.subprocesses.values()] == [BridgeSubWorkflow]


def test_waiting_tasks_are_walked_for_only_when_one_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a task completes SpiffWorkflow updates the WAITING tasks; with none in the
    workflow the walk is skipped (it would hand nothing out), with a join half reached it
    runs and updates the join, as SpiffWorkflow's iterator does."""
    run = Run(load(_parallel_model(), "par"))
    run.start()
    walked: list[int] = []
    real_walk = tree_walk.walk

    def counting(first: Any, **kwargs: Any) -> Any:
        if kwargs.get("state") == TaskState.WAITING:
            walked.append(1)
        return real_walk(first, **kwargs)

    monkeypatch.setattr(tree_walk, "walk", counting)
    assert not [t for t in run.wf.tasks.values() if t.state == TaskState.WAITING]
    run.wf.update_waiting_tasks()
    assert walked == []
    run.complete("a", "A")  # the join waits for b and c from here on
    join = run.wf.get_tasks(spec_name="join")[0]
    assert join.state == TaskState.WAITING
    walked.clear()
    updated: list[Any] = []
    real_update = type(join.task_spec)._update
    monkeypatch.setattr(
        type(join.task_spec),
        "_update",
        lambda spec, task: (updated.append(task), real_update(spec, task))[1],
    )
    run.wf.update_waiting_tasks()
    assert walked == [1] and updated == [join]
