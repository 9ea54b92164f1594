"""The BPMN patterns of DESIGN §2, each stored and restored between every step."""

from __future__ import annotations

import pytest
from SpiffWorkflow.util.task import TaskState

from engine_bridge.errors import EngineError
from engine_bridge.loader.model import ProcessSettings

from .kit import END, START, Run, chain, definitions, flow, load, process, user

SEQUENCE = definitions(
    process(
        "leave",
        START
        + user("counselor", "'T001'", taskName="审批 {applicant} 的请假", summary1="天数|{days}")
        + user("dean", "dean_id")
        + END
        + chain("start", "counselor", "dean", "end"),
        name="请假",
    )
)


def test_sequence_moves_the_single_todo_along_and_ends() -> None:
    """start → A → B → end: one todo at a time; the last completion finishes the instance."""
    run = Run(load(SEQUENCE, "leave"))
    facts = run.start({"applicant": "张三", "days": 3, "dean_id": "D01"})
    assert run.nodes() == ["counselor"]
    first = run.todo("counselor")
    assert first.handlers == ("T001",)
    assert first.todo_id == f"inst-1:{run.wf.get_tasks(spec_name='counselor')[0].id}"
    assert first.task_name == "审批 张三 的请假"
    assert first.summary == ("天数|3",)
    assert first.kind == "task"
    assert facts.action == "start" and not facts.finished

    facts = run.complete("counselor", "T001", {"approved": True}, opinion="同意")
    assert run.nodes() == ["dean"]
    assert run.todo("dean").handlers == ("D01",)
    assert facts.completed_todo_id == first.todo_id
    assert facts.handler == "T001" and facts.opinion == "同意"

    facts = run.complete("dean", "D01")
    assert facts.finished
    assert facts.open_todos == ()


def test_transaction_info_is_rendered_from_start_data_and_kept() -> None:
    """The transaction name template sees process_name, initiator and start data."""
    settings = ProcessSettings(
        trans_type_code="LEAVE",
        trans_type_name="请假",
        transaction_name="{process_name}-{initiator}-{days}天",
        transaction_summary=("天数|{days}",),
        urls={"viewUrl": "https://biz/leave/{instanceId}"},
    )
    run = Run(load(SEQUENCE, "leave", settings=settings))
    facts = run.start({"applicant": "张三", "days": 3, "dean_id": "D01"}, initiator="2023001")
    info = facts.transaction
    assert info.transaction_name == "请假-2023001-3天"
    assert info.trans_type_code == "LEAVE"
    assert info.initiator == "2023001"
    assert info.summary == ("天数|3",)
    assert info.urls == {"viewUrl": "https://biz/leave/inst-1"}
    later = run.complete("counselor", "T001", {"days": 99})
    assert later.transaction == info


XOR = definitions(
    process(
        "xor",
        START
        + user("apply", "'S1'")
        + '<bpmn:exclusiveGateway id="gw" default="to_clerk"/>'
        + user("manager", "'M1'")
        + user("clerk", "'C1'")
        + END
        + chain("start", "apply", "gw")
        + flow("gw", "manager", "amount &gt; 1000")
        + flow("gw", "clerk", flow_id="to_clerk")
        + chain("manager", "end")
        + flow("clerk", "end", flow_id="clerk_end"),
    )
)


@pytest.mark.parametrize(("amount", "node"), [(5000, "manager"), (10, "clerk")])
def test_exclusive_gateway_picks_the_branch_by_data(amount: int, node: str) -> None:
    """XOR: the condition over completion data decides which user task opens."""
    run = Run(load(XOR, "xor"))
    run.start()
    run.complete("apply", "S1", {"amount": amount})
    assert run.nodes() == [node]


def test_gateway_error_is_an_engine_error_naming_the_gateway() -> None:
    """A condition over a missing variable fails as EngineError naming the element."""
    run = Run(load(XOR, "xor"))
    run.start()
    todo = run.todo("apply")
    with pytest.raises(EngineError, match="'gw'") as caught:
        run.engine.complete(
            run.wf, run.process, instance_id="inst-1", todo_id=todo.todo_id, handler="S1"
        )
    assert "amount" in str(caught.value)


PARALLEL = definitions(
    process(
        "par",
        START
        + '<bpmn:parallelGateway id="fork"/>'
        + user("a", "'U1'")
        + user("b", "'U2'")
        + '<bpmn:parallelGateway id="join"/>'
        + user("c", "'U3'")
        + END
        + chain("start", "fork")
        + flow("fork", "a")
        + flow("fork", "b")
        + flow("a", "join")
        + flow("b", "join")
        + chain("join", "c", "end"),
    )
)


def test_parallel_branches_open_together_and_join_waits() -> None:
    """fork → A,B → join → C: both open; after A only B; after B, C."""
    run = Run(load(PARALLEL, "par"))
    run.start()
    assert sorted(run.nodes()) == ["a", "b"]
    b_id = run.todo("b").todo_id
    run.complete("a", "U1")
    assert run.nodes() == ["b"]
    assert run.todo("b").todo_id == b_id
    run.complete("b", "U2")
    assert run.nodes() == ["c"]
    assert run.complete("c", "U3").finished


TERMINATE = definitions(
    process(
        "term",
        START
        + '<bpmn:parallelGateway id="fork"/>'
        + user("a", "'U1'")
        + user("c", "'U3'")
        + '<bpmn:endEvent id="kill"><bpmn:terminateEventDefinition/></bpmn:endEvent>'
        + '<bpmn:endEvent id="end"/>'
        + chain("start", "fork")
        + flow("fork", "a")
        + flow("fork", "c")
        + chain("a", "kill")
        + chain("c", "end"),
    )
)


def test_terminate_end_event_finishes_and_closes_every_other_todo() -> None:
    """A terminate end event in one branch cancels the todo of the other branch."""
    run = Run(load(TERMINATE, "term"))
    run.start()
    assert sorted(run.nodes()) == ["a", "c"]
    facts = run.complete("a", "U1")
    assert facts.finished
    assert facts.open_todos == ()


PASS_THROUGH = definitions(
    process(
        "pt",
        START
        + '<bpmn:task id="noop" name="Nothing"/>'
        + '<bpmn:manualTask id="sign_paper" name="Sign the paper">'
        + "<bpmn:extensionElements><spiffworkflow:properties>"
        + '<spiffworkflow:property name="handlers" value="\'P1\'"/>'
        + "</spiffworkflow:properties></bpmn:extensionElements></bpmn:manualTask>"
        + END
        + chain("start", "noop", "sign_paper", "end"),
    )
)


def test_plain_task_passes_through_and_manual_task_is_a_todo() -> None:
    """bpmn:task is completed by the engine; bpmn:manualTask waits for its handler."""
    run = Run(load(PASS_THROUGH, "pt"))
    run.start()
    assert run.nodes() == ["sign_paper"]
    assert run.wf.get_tasks(spec_name="noop")[0].state == TaskState.COMPLETED
    assert run.complete("sign_paper", "P1").finished


CHILD = definitions(
    process(
        "child",
        START + user("child_task", "'K1'") + END + chain("start", "child_task", "end"),
    )
)

PARENT = definitions(
    process(
        "parent",
        START
        + '<bpmn:subProcess id="sub">'
        + '<bpmn:startEvent id="sub_start"/>'
        + user("sub_task", "owner")
        + '<bpmn:endEvent id="sub_end"/>'
        + chain("sub_start", "sub_task", "sub_end")
        + "</bpmn:subProcess>"
        + '<bpmn:callActivity id="call" calledElement="child"/>'
        + user("final", "'F1'")
        + END
        + chain("start", "sub", "call", "final", "end"),
    )
)


def test_embedded_subprocess_and_call_activity_tasks_are_todos() -> None:
    """User tasks inside a subProcess and a called process are todos like any other."""
    run = Run(load([PARENT, CHILD], "parent"))
    run.start({"owner": "O1"})
    assert run.nodes() == ["sub_task"]
    assert run.todo("sub_task").handlers == ("O1",)
    run.complete("sub_task", "O1", {"note": "done"})
    assert run.nodes() == ["child_task"]
    run.complete("child_task", "K1")
    assert run.nodes() == ["final"]
    assert run.complete("final", "F1").finished


def test_cancel_finishes_with_no_open_todo() -> None:
    """The business cancels: facts say finished, actor is who cancelled, nothing is open."""
    run = Run(load([PARENT, CHILD], "parent"))
    run.start({"owner": "O1"})
    facts = run.cancel(by="admin")
    assert facts.finished and facts.action == "cancel" and facts.actor == "admin"
    assert facts.open_todos == ()


def test_todo_templates_see_the_names_the_bridge_adds() -> None:
    """A todo's templates have process_name and initiatorName, as the transaction's do."""
    named = definitions(
        process(
            "named",
            START
            + user(
                "review",
                "'T001'",
                taskName="{process_name}/{initiatorName}/{initiator}",
                summary1="节点|{nodeId}",
            )
            + END
            + chain("start", "review", "end"),
            name="请假",
        )
    )
    run = Run(load(named, "named"))
    run.wf, facts = run.engine.start(
        run.process,
        instance_id=run.instance_id,
        initiator="2023001",
        data={},
        initiator_name="张三",
    )
    (todo,) = facts.open_todos
    assert todo.task_name == "请假/张三/2023001"
