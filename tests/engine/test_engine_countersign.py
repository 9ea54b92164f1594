"""Countersign (parallel multi-instance), or-sign and sequential approval."""

from __future__ import annotations

import pytest
from SpiffWorkflow.util.task import TaskState

from engine_bridge.errors import NotAHandlerError, TaskNotOpenError

from .kit import END, START, Run, chain, definitions, load, process, user


def mi_process(condition: str | None = None, *, sequential: bool = False) -> str:
    cond = f"<bpmn:completionCondition>{condition}</bpmn:completionCondition>" if condition else ""
    seq = ' isSequential="true"' if sequential else ""
    loop = (
        f"<bpmn:multiInstanceLoopCharacteristics{seq}>"
        "<bpmn:loopDataInputRef>signers</bpmn:loopDataInputRef>"
        "<bpmn:loopDataOutputRef>decisions</bpmn:loopDataOutputRef>"
        '<bpmn:inputDataItem id="signer" name="signer"/>'
        '<bpmn:outputDataItem id="decision" name="decision"/>'
        f"{cond}</bpmn:multiInstanceLoopCharacteristics>"
    )
    return definitions(
        process(
            "cs",
            START
            + user("sign", "signer", name="会签", inner=loop, taskName="会签 {title}")
            + user("review", "'R1'")
            + END
            + chain("start", "sign", "review", "end"),
        )
    )


SIGNERS = ["alice", "bob", "carol"]


def started(condition: str | None = None, signers: list[str] | None = None, **kw: bool) -> Run:
    run = Run(load(mi_process(condition, **kw), "cs"))
    run.start({"signers": signers or SIGNERS, "title": "经费"})
    return run


def test_countersign_is_one_todo_whose_handlers_shrink_as_people_sign() -> None:
    """All must sign: one todo for the node; each signature removes that signer; last → next."""
    run = started()
    todo = run.todo("sign")
    assert todo.kind == "countersign"
    assert todo.handlers == ("alice", "bob", "carol")
    assert todo.task_name == "会签 经费"
    mi_task = run.wf.get_tasks(spec_name="sign")[0]
    assert todo.todo_id == f"inst-1:{mi_task.id}"

    run.complete("sign", "bob", {"decision": "approve"})
    assert run.todo("sign").handlers == ("alice", "carol")
    assert run.todo("sign").todo_id == todo.todo_id
    run.complete("sign", "alice", {"decision": "approve"})
    assert run.todo("sign").handlers == ("carol",)
    run.complete("sign", "carol", {"decision": "approve"})
    assert run.nodes() == ["review"]
    assert run.wf.get_tasks(spec_name="review")[0].data["decisions"] == ["approve"] * 3


def test_signer_who_already_signed_or_never_was_is_refused() -> None:
    """A second signature by the same person, or a stranger's, is NotAHandlerError."""
    run = started()
    run.complete("sign", "bob", {"decision": "approve"})
    todo = run.todo("sign")
    for who in ("bob", "mallory"):
        with pytest.raises(NotAHandlerError, match=who) as caught:
            run.engine.complete(
                run.wf,
                run.process,
                instance_id="inst-1",
                todo_id=todo.todo_id,
                handler=who,
                data={"decision": "approve"},
            )
        assert "alice, carol" in str(caught.value)


def test_vote_two_of_three_by_count_cancels_the_rest() -> None:
    """nrOfCompletedInstances includes the instance just completed (Camunda style)."""
    run = started("nrOfCompletedInstances &gt;= 2")
    run.complete("sign", "alice", {"decision": "approve"})
    assert run.todo("sign").handlers == ("bob", "carol")
    run.complete("sign", "carol", {"decision": "approve"})
    assert run.nodes() == ["review"]
    mi_task = run.wf.get_tasks(spec_name="sign")[0]
    with pytest.raises(TaskNotOpenError):
        run.engine.complete(
            run.wf,
            run.process,
            instance_id="inst-1",
            todo_id=f"inst-1:{mi_task.id}",
            handler="bob",
            data={"decision": "approve"},
        )


def test_vote_two_approvals_over_the_fresh_output_collection() -> None:
    """The condition sees the output collection as gathered so far, not a stale copy."""
    run = started("len([d for d in decisions if d == 'approve']) &gt;= 2")
    run.complete("sign", "alice", {"decision": "approve"})
    run.complete("sign", "bob", {"decision": "reject"})
    assert run.todo("sign").handlers == ("carol",)  # one approval so far
    run = started("len([d for d in decisions if d == 'approve']) &gt;= 2")
    run.complete("sign", "alice", {"decision": "approve"})
    run.complete("sign", "bob", {"decision": "approve"})
    assert run.nodes() == ["review"]


def test_ratio_condition_uses_the_number_of_instances() -> None:
    """nrOfCompletedInstances / nrOfInstances >= 0.6: 3 of 5 needed."""
    cond = "nrOfCompletedInstances / nrOfInstances &gt;= 0.6"
    run = started(cond, ["a", "b", "c", "d", "e"])
    run.complete("sign", "a", {"decision": "approve"})
    run.complete("sign", "b", {"decision": "approve"})
    assert run.todo("sign").handlers == ("c", "d", "e")
    run.complete("sign", "e", {"decision": "approve"})
    assert run.nodes() == ["review"]


def test_one_veto_ends_the_countersign() -> None:
    """decision == 'reject' on any instance ends it; the others are cancelled."""
    run = started("decision == 'reject'")
    run.complete("sign", "alice", {"decision": "approve"})
    assert run.todo("sign").handlers == ("bob", "carol")
    run.complete("sign", "bob", {"decision": "reject"})
    assert run.nodes() == ["review"]
    instances = [t for t in run.wf.get_tasks() if t.task_spec.name == "sign [child]"]
    cancelled = [t for t in instances if t.state == TaskState.CANCELLED]
    assert len(cancelled) == 1 and cancelled[0].data["signer"] == "carol"


def test_counters_seen_by_the_condition() -> None:
    """The four counters hold the Camunda values when the condition is evaluated."""
    cond = (
        "nrOfInstances == 3 and nrOfCompletedInstances == 2 and nrOfActiveInstances == 1 "
        "and loopCounter == 2"
    )
    run = started(cond)
    run.complete("sign", "alice", {"decision": "x"})  # loopCounter 0, one completed: no
    assert run.todo("sign").handlers == ("bob", "carol")
    run.complete("sign", "carol", {"decision": "x"})  # loopCounter 2, two completed: yes
    assert run.nodes() == ["review"]


def test_or_sign_first_candidate_completes_it() -> None:
    """One user task with several handlers: any one of them completes it."""
    xml = definitions(
        process(
            "or",
            START
            + user("approve", "'T1, T2,T3 ,'")
            + user("next", "'N1'")
            + END
            + chain("start", "approve", "next", "end"),
        )
    )
    run = Run(load(xml, "or"))
    run.start()
    assert run.todo("approve").handlers == ("T1", "T2", "T3")
    with pytest.raises(NotAHandlerError, match="T1, T2, T3"):
        run.engine.complete(
            run.wf,
            run.process,
            instance_id="inst-1",
            todo_id=run.todo("approve").todo_id,
            handler="T9",
        )
    run.complete("approve", "T2")
    assert run.nodes() == ["next"]


def test_sequential_approval_is_one_todo_per_signer_in_order() -> None:
    """Sequential multi-instance: each signer is a separate todo, one after the other."""
    run = started(sequential=True)
    ids = []
    for who in SIGNERS:
        todo = run.todo("sign")
        assert todo.kind == "task"
        assert todo.handlers == (who,)
        ids.append(todo.todo_id)
        run.complete("sign", who, {"decision": "approve"})
    assert len(set(ids)) == 3
    assert run.nodes() == ["review"]


def test_sequential_completion_condition_counts_planned_instances() -> None:
    """A sequential condition sees nrOfInstances including the signers still to come."""
    run = started("nrOfInstances == 3 and nrOfCompletedInstances == 2", sequential=True)
    run.complete("sign", "alice", {"decision": "approve"})
    run.complete("sign", "bob", {"decision": "approve"})
    assert run.nodes() == ["review"]


def test_large_countersign_completes_signer_by_signer() -> None:
    """300 signers: one todo; each completion leaves the others open."""
    signers = [f"S{i:04d}" for i in range(300)]
    run = Run(load(mi_process(), "cs"))
    run.start({"signers": signers, "title": "t"})
    assert run.todo("sign").handlers == tuple(signers)
    todo_id = run.todo("sign").todo_id
    for who in signers[:5]:
        run.engine.complete(
            run.wf,
            run.process,
            instance_id="inst-1",
            todo_id=todo_id,
            handler=who,
            data={"decision": "ok"},
        )
    todos = run.engine.open_todos(run.wf, run.process, instance_id="inst-1")
    assert todos[0].handlers == tuple(signers[5:])


def test_a_signer_share_id_is_not_a_todo_id() -> None:
    """Only the countersign todo id is accepted, not an instance's own task id."""
    run = started()
    share = next(t for t in run.wf.get_tasks() if t.task_spec.name == "sign [child]")
    with pytest.raises(TaskNotOpenError, match="countersign"):
        run.engine.complete(
            run.wf,
            run.process,
            instance_id="inst-1",
            todo_id=f"inst-1:{share.id}",
            handler=share.data["signer"],
            data={"decision": "ok"},
        )
