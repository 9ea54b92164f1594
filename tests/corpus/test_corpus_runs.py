"""Models drawn by others, run end to end against the fake centre, unedited: after every step the
centre's open todos are exactly what the engine waits on, and at the end nothing is open."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine_bridge.errors import EngineError, NotAHandlerError

from .cases import LEAVE, MEETING, PERCENTAGE, PERCENTAGE_NODES, TIMER, TIMER_NODES
from .kit import Run, bridge_run, workflows

PEOPLE = ["T001", "T002", "T003"]


def _statuses(run: Run) -> list[str]:
    return [item["status"] for item in run.calls("taskHandle")]


# --------------------------------------------------------------------------- meeting (会签)


def test_meeting_countersign_over_a_collection_then_the_host_writes_minutes(
    tmp_path: Path,
) -> None:
    """spring-activiti meeting.bpmn over a real socket: ``activiti:collection="people"`` is one
    todo for all signers; each signature is ``none`` until the last, whose ``next`` creates the
    minutes for the host, who is the initiator (``activiti:initiator="host"``)."""
    folder = workflows(tmp_path / "wf", MEETING)
    with bridge_run(folder, tmp_path / "b.db", loopback=True) as run:
        run.start("meeting", initiator="T009", data={"people": PEOPLE})
        assert run.nodes() == ["usertask2"]
        assert run.todo("usertask2").handlers == tuple(PEOPLE)

        assert run.complete("usertask2", "T002", {"T002_present": True}).status == "none"
        assert run.centre() == {run.todo("usertask2").task_id: ["T001", "T003"]}
        with pytest.raises(NotAHandlerError, match="T002"):
            run.bridge.complete(run.todo("usertask2").task_id, handler="T002")
        run.check()
        assert run.complete("usertask2", "T001", {"T001_present": True}).status == "none"
        last = run.complete("usertask2", "T003", {"T003_present": False})
        assert last.status == "next"
        assert [(t.node_id, t.handlers) for t in last.created] == [("usertask3", ("T009",))]

        done = run.complete("usertask3", "T009", {"minutes": "会议纪要"})
        assert done.status == "end" and done.finished
        assert run.centre() == {} and run.fake.open_todos() == {}
        assert run.status() == "finished"
        assert _statuses(run) == ["none", "none", "next", "end"]


# --------------------------------------------------------------------------- leave


def _leave(tmp_path: Path) -> Path:
    return workflows(tmp_path / "wf", LEAVE)


def test_leave_loops_back_to_the_applicant_until_hr_approves_then_reportback(
    tmp_path: Path,
) -> None:
    """spring-activiti leave.bpmn: assignees and candidate groups become handlers and handling
    groups, the JUEL conditions drive both gateways, and modifyapply loops back to the leader
    twice (once from the leader's refusal, once from HR's) before reportback ends it."""
    with bridge_run(_leave(tmp_path), tmp_path / "b.db") as run:
        run.start("leave", initiator="S001", data={"deptleader": "T100", "hr": "H200", "days": 3})
        leader = run.todo("deptleaderaudit")
        assert (leader.handlers, leader.handling_groups) == (("T100",), ("部门经理",))

        run.complete("deptleaderaudit", "T100", {"deptleaderapprove": "false"})
        assert run.nodes() == ["modifyapply"]
        assert run.todo("modifyapply").handlers == ("S001",)  # applyuserid is the initiator
        run.complete("modifyapply", "S001", {"reapply": "true", "days": 2})
        run.complete("deptleaderaudit", "T100", {"deptleaderapprove": "true"})
        hr = run.todo("hraudit")
        assert (hr.handlers, hr.handling_groups) == (("H200",), ("人事",))
        run.complete("hraudit", "H200", {"hrapprove": "false"})
        run.complete("modifyapply", "S001", {"reapply": "true"})
        run.complete("deptleaderaudit", "T100", {"deptleaderapprove": "true"})
        run.complete("hraudit", "H200", {"hrapprove": "true"})
        assert run.nodes() == ["reportback"]
        assert run.complete("reportback", "S001").status == "end"
        assert run.fake.open_todos() == {} and run.status() == "finished"
        assert _statuses(run) == ["next"] * 7 + ["end"]


def test_leave_applicant_gives_up_and_the_process_ends(tmp_path: Path) -> None:
    """``${reapply=='false'}`` leads straight to the end event: ``end``, nothing left open."""
    with bridge_run(_leave(tmp_path), tmp_path / "b.db") as run:
        run.start("leave", initiator="S001", data={"deptleader": "T100", "hr": "H200"})
        run.complete("deptleaderaudit", "T100", {"deptleaderapprove": "false"})
        assert run.complete("modifyapply", "S001", {"reapply": "false"}).status == "end"
        assert run.fake.open_todos() == {} and run.status() == "finished"


def test_leave_condition_compares_strings_so_a_boolean_matches_no_flow(tmp_path: Path) -> None:
    """JUEL ``=='true'`` is translated without coercion: a boolean matches neither flow, the
    completion fails with the element named, and neither the state nor the centre changes."""
    with bridge_run(_leave(tmp_path), tmp_path / "b.db") as run:
        run.start("leave", initiator="S001", data={"deptleader": "T100", "hr": "H200"})
        before = run.centre()
        with pytest.raises(EngineError, match="exclusivegateway1"):
            run.bridge.complete(
                run.todo("deptleaderaudit").task_id,
                handler="T100",
                data={"deptleaderapprove": True},
            )
        run.check()
        assert run.centre() == before


# --------------------------------------------------------------------------- percentage


def test_countersign_completes_by_percentage_and_the_rest_is_withdrawn(tmp_path: Path) -> None:
    """flowable completion condition ``${nrOfCompletedInstances/nrOfInstances >=
    percentageCompleted}`` with 50 %: the first of two signers finishes the countersign, the
    terminate end event ends the process (``end``) and the other signer's share is closed.
    The model names no assignee: a node override in processes.yaml gives ``approvers[loopCounter]``
    and a readable todo title."""
    folder = workflows(tmp_path / "wf", PERCENTAGE, nodes=PERCENTAGE_NODES)
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start(
            "multiInstanceUserTaskEvents",
            initiator="T009",
            data={"approvers": ["T001", "T002"], "percentageCompleted": 0.5},
        )
        todo = run.todo("task")
        assert todo.handlers == ("T001", "T002")
        shown = run.fake.state()["todos"][todo.task_id]
        assert shown["task_name"] == "Sign-off (0.5)"  # not "Multi User Task-${loopCounter}"

        outcome = run.complete("task", "T002", {"vote": "yes"})
        assert (outcome.status, outcome.finished) == ("end", True)
        assert outcome.closed == (todo.task_id,)
        closed = run.fake.state()["todos"][todo.task_id]
        assert closed["state"] != "todo"
        assert [h["handler"] for h in closed["handlings"]] == ["T002"]  # T001 never signed
        assert run.fake.open_todos() == {} and run.status() == "finished"


def test_countersign_at_full_percentage_waits_for_every_signer(tmp_path: Path) -> None:
    """The same model at 100 %: the first signature is ``none``, the second ``end``."""
    folder = workflows(tmp_path / "wf", PERCENTAGE, nodes=PERCENTAGE_NODES)
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start(
            "multiInstanceUserTaskEvents",
            initiator="T009",
            data={"approvers": ["T001", "T002"], "percentageCompleted": 1.0},
        )
        assert run.complete("task", "T001").status == "none"
        assert run.centre() == {run.todo("task").task_id: ["T002"]}
        assert run.complete("task", "T002").status == "end"
        assert run.fake.open_todos() == {}


# --------------------------------------------------------------------------- timer


SIGNERS = {"a": "T001", "b": "T002", "c": "T003"}


def test_sequential_signing_is_interrupted_by_its_timer(tmp_path: Path) -> None:
    """spiff-arena: a sequential multi-instance over ``items`` with an interrupting PT4H timer.
    Each signer is a separate todo (``next`` carries the following one); when the timer fires
    the open todo is withdrawn and the process ends at the timer's end event."""
    folder = workflows(tmp_path / "wf", TIMER, nodes=TIMER_NODES)
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start("Process_MultiInstanceUserTimer", initiator="T009", data={"signers": SIGNERS})
        assert run.todo("HumanTask").handlers == ("T001",)
        first = run.complete("HumanTask", "T001", {"result": "signed a"})
        assert first.status == "next"
        assert [t.handlers for t in first.created] == [("T002",)]
        second = run.todo("HumanTask")

        run.clock.advance(timedelta(hours=3))
        assert run.bridge.tick() == []  # not due yet: nothing changes
        run.check()
        run.clock.advance(timedelta(hours=2))
        [fired] = run.bridge.tick()
        run.check()
        assert fired.finished and fired.closed == (second.task_id,)
        withdrawn = run.calls("taskWithdraw")
        assert [w["taskId"] for w in withdrawn] == [second.task_id]
        assert run.fake.open_todos() == {} and run.status() == "finished"


def test_sequential_signing_on_time_collects_every_result(tmp_path: Path) -> None:
    """All three sign before the timer: ``next``, ``next``, ``end``; the timer never fires."""
    folder = workflows(tmp_path / "wf", TIMER, nodes=TIMER_NODES)
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start("Process_MultiInstanceUserTimer", initiator="T009", data={"signers": SIGNERS})
        statuses = [
            run.complete("HumanTask", who, {"result": f"signed {item}"}).status
            for item, who in SIGNERS.items()
        ]
        assert statuses == ["next", "next", "end"]
        run.clock.advance(timedelta(hours=5))
        assert run.bridge.tick() == []
        assert run.fake.open_todos() == {} and run.status() == "finished"
        assert run.calls("taskWithdraw") == []


# --------------------------------------------------------------------------- purchase


def test_purchase_error_code_thrown_in_the_payment_subprocess_is_caught_on_its_boundary(
    tmp_path: Path,
) -> None:
    """spring-activiti purchase.bpmn names the error ``payment_reject`` in errorRef without
    declaring it (Activiti reads it as the code). Finance refuses inside the payment
    subprocess: its error end event is caught by the subprocess's boundary event, which leads
    the request back to the applicant (the initiator, ``activiti:initiator="starter"``)."""
    folder = workflows(tmp_path / "wf", "spring-activiti__purchase.bpmn")
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start(
            "purchase",
            initiator="S001",
            data={"purchasemanager": "P001", "finance": "F001", "money": 500},
        )
        assert run.nodes() == ["purchaseAuditi"]
        assert run.complete("purchaseAuditi", "P001", {"purchaseauditi": "true"}).status == "next"
        assert run.nodes() == ["financeaudit"]
        refused = run.complete("financeaudit", "F001", {"finance": "false"})
        assert refused.status == "next"
        assert [(t.node_id, t.handlers) for t in refused.created] == [("updateapply", ("S001",))]
        run.check()
        done = run.complete("updateapply", "S001", {"updateapply": "false"})
        assert done.status == "end" and run.centre() == {}
