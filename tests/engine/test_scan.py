"""READY tasks found without a tree walk come out exactly as SpiffWorkflow's walk gives them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskState

from engine_bridge.engine.scan import ready_by_kind, ready_tasks, resting_ready

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


#: A parallel multi-instance user task over ``signers``, then one more user task.
#: A parallel multi-instance user task: one instance per name in ``signers``.
SIGN = user(
    "sign",
    "signer",
    inner="<bpmn:multiInstanceLoopCharacteristics><bpmn:loopDataInputRef>signers"
    '</bpmn:loopDataInputRef><bpmn:inputDataItem id="signer"/>'
    "</bpmn:multiInstanceLoopCharacteristics>",
)
COUNTERSIGN = definitions(
    process(
        "cs",
        START + SIGN + user("after", "'Z'") + END + chain("start", "sign", "after", "end"),
    )
)


def test_countersign_instances_and_the_task_after_keep_the_walk_order() -> None:
    """A parallel multi-instance: N READY instances under one parent, in the walk's order."""
    run = Run(load(COUNTERSIGN, "cs"))
    run.start({"signers": [f"S{n}" for n in range(12)]})
    found = ready_tasks(run.wf, manual=True)
    assert len(found) == 12 and found == _walked(run.wf, True)
    assert [t.data["signer"] for t in found] == [f"S{n}" for n in range(12)]


def _engine_work_by_walking(wf: Any) -> bool:
    """What SpiffWorkflow's own rounds would find to run: a READY task that is not manual
    (in this workflow or a subprocess's)."""
    workflows = [wf, *wf.subprocesses.values()]
    return any(
        not t.task_spec.manual
        for owner in workflows
        for t in BpmnTaskIterator(owner.task_tree, state=TaskState.READY)
    )


@pytest.mark.parametrize(
    "name",
    [
        "countersign_all",
        "parallel_review",
        "or_sign",
        "leave_approval_long",
        "procurement_check",
        "subprocess_and_call",
        "timeout_escalation_fired",
    ],
)
def test_engine_work_is_seen_whenever_spiffworkflow_would_run_something(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every time the engine asks ``resting_ready`` while it settles a step of a sample
    scenario, the answer is None exactly when SpiffWorkflow's own walk finds an engine task
    READY to run (always, with subprocesses), and otherwise the READY tasks SpiffWorkflow's
    walk gives, in its order; and before every step too."""
    from engine_bridge.engine import runtime

    from .test_tree_walk import _scenario_steps, act

    answers: list[bool] = []

    def checked(wf: Any) -> list[Any] | None:
        answer = resting_ready(wf)
        expected = _engine_work_by_walking(wf) or bool(wf.subprocesses)
        assert (answer is None) is expected
        if answer is not None:
            assert answer == list(BpmnTaskIterator(wf.task_tree, state=TaskState.READY))
        answers.append(answer is None)
        return answer

    monkeypatch.setattr(runtime, "resting_ready", checked)
    run, steps = _scenario_steps(name)
    for step in steps:
        checked(run.wf)
        act(run, step)
    assert True in answers, "engine work was met on the way"
    if name != "subprocess_and_call":  # with subprocesses the answer is always yes
        assert False in answers, "and a step without any"


def test_a_step_with_no_engine_work_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A countersign signer who is not the last: nothing for SpiffWorkflow's rounds to run,
    so none run, nor a timer refresh with no timer waiting; the last signer's runs them."""
    run = Run(load(COUNTERSIGN, "cs"))
    run.start({"signers": ["S0", "S1", "S2"]})
    calls: list[str] = []
    wf_class = type(run.wf)
    for name in ("do_engine_steps", "refresh_timers"):
        original = getattr(wf_class, name)

        def recording(wf: Any, *args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(wf, *args)

        monkeypatch.setattr(wf_class, name, recording)
    run.complete("sign", "S0")
    assert calls == []
    calls.clear()
    run.complete("sign", "S1")
    run.complete("sign", "S2")
    assert calls and calls[0] == "do_engine_steps"
    assert run.nodes() == ["after"]


REMINDED_COUNTERSIGN = definitions(
    process(
        "csr",
        START
        + SIGN
        + '<bpmn:boundaryEvent id="remind" attachedToRef="sign" cancelActivity="false">'
        + '<bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration>'
        + "</bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        + user("chase", "'C1'")
        + '<bpmn:endEvent id="chased"/>'
        + user("after", "'Z'")
        + END
        + chain("start", "sign", "after", "end")
        + chain("remind", "chase", "chased"),
    )
)


def test_a_timer_due_fires_in_a_step_with_no_engine_work() -> None:
    """A signer who is not the last leaves nothing for the engine to run, but a reminder on
    the countersign has fallen due meanwhile (no tick yet): it fires within the step (the
    completion updates the waiting tasks, and the step refreshes the timers as SpiffWorkflow's
    rounds would), and the reminder's todo opens with it."""
    run = Run(load(REMINDED_COUNTERSIGN, "csr"))
    run.start({"signers": ["S0", "S1", "S2"]})
    assert [t.node_id for t in run.facts.open_todos] == ["sign"]
    run.clock.advance(timedelta(hours=2))
    facts = run.complete("sign", "S0")
    assert sorted(t.node_id for t in facts.open_todos) == ["chase", "sign"]


def test_settling_fires_a_timer_due_with_nothing_else_to_run() -> None:
    """Settling alone (no completion before it to update the waiting tasks) refreshes the
    timers when nothing else is left to run, and runs what a fired timer made ready."""
    run = Run(load(REMINDED_COUNTERSIGN, "csr"))
    run.start({"signers": ["S0", "S1", "S2"]})
    run.clock.advance(timedelta(hours=2))
    ready = run.engine._advance(run.wf)
    assert ready is not None
    assert sorted({t.task_spec.bpmn_id for t in ready}) == ["chase", "sign"]


LOOP_IN_A_BRANCH = definitions(
    process(
        "loop",
        START
        + '<bpmn:parallelGateway id="split"/>'
        + user("a", "'A1'")
        + user("b", "'B1'")
        + user("c", "'C1'")
        + '<bpmn:exclusiveGateway id="g"/><bpmn:parallelGateway id="join"/>'
        + END
        + flow("start", "split")
        + flow("split", "a")
        + flow("split", "b")
        + flow("split", "c")
        + flow("a", "g")
        + flow("g", "a", "again == True", "back")
        + flow("g", "join", "again == False", "on")
        + flow("b", "join")
        + flow("c", "join")
        + flow("join", "end"),
    )
)


def test_a_step_with_nothing_to_run_keeps_the_tree_order_of_its_todos() -> None:
    """After a loop back in the first branch of a fork, its READY task is newer than the
    third branch's; a step that leaves nothing for the engine (the join waits) must still
    give the todos in the tree's order, not in the order the tasks were made."""
    run = Run(load(LOOP_IN_A_BRANCH, "loop"))
    run.start()
    run.complete("a", "A1", {"again": True})
    made = [t.task_spec.bpmn_id for t in run.wf.tasks.values() if t._state == TaskState.READY]
    assert made == ["b", "c", "a"]  # the case this test is for
    run.complete("b", "B1")
    walked = [
        t.task_spec.bpmn_id for t in BpmnTaskIterator(run.wf.task_tree, state=TaskState.READY)
    ]
    assert run.nodes() == walked == ["a", "c"]
