"""How vendor assignments resolve at run time: lists inside lists, ``loopCounter`` for each
signer, and the initiator stored where ``activiti:initiator`` says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine_bridge.errors import EngineError, InvalidDataError
from engine_bridge.loader.library import analyse_paths
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS

from .kit import bridge_run

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:activiti="http://activiti.org/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="d" targetNamespace="http://x">
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"{start}/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
    {task}
    <bpmn:sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _model(tmp_path: Path, task: str, start: str = "") -> Path:
    folder = tmp_path / "wf"
    folder.mkdir(exist_ok=True)
    (folder / "p.bpmn").write_text(HEAD.format(task=task, start=start), encoding="utf-8")
    return folder


CANDIDATES = '<bpmn:userTask id="t" activiti:candidateUsers="${reviewers},T002"/>'


@pytest.mark.parametrize("reviewers", [["T001", "T003"], "T001,T003", ["T001,T003"]])
def test_candidate_users_mixing_a_list_variable_and_a_literal(
    tmp_path: Path, reviewers: Any
) -> None:
    """``candidateUsers="${reviewers},T002"`` gives every account, whether ``reviewers`` is a
    list or a comma-separated string (nested one level inside the translated list)."""
    with bridge_run(_model(tmp_path, CANDIDATES), tmp_path / "b.db") as run:
        run.start("p", initiator="S001", data={"reviewers": reviewers})
        assert run.todo("t").handlers == ("T001", "T003", "T002")
        assert run.complete("t", "T003").status == "end"


def test_lists_nested_deeper_than_one_level_are_refused(tmp_path: Path) -> None:
    """Two levels down is not a list of accounts: a clear error naming the task."""
    with (
        bridge_run(_model(tmp_path, CANDIDATES), tmp_path / "b.db") as run,
        pytest.raises(EngineError, match=r"user task 't'.*gave list"),
    ):
        run.bridge.start("p", initiator="S001", data={"reviewers": [["T001"]]})


def _mi(loop: str, handlers: str) -> str:
    return (
        '<bpmn:userTask id="t"><bpmn:extensionElements><spiffworkflow:properties>'
        f'<spiffworkflow:property name="handlers" value="{handlers}"/>'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        f"{loop}</bpmn:userTask>"
    )


def _cardinality(sequential: bool) -> str:
    flag = "true" if sequential else "false"
    return (
        f'<bpmn:multiInstanceLoopCharacteristics isSequential="{flag}">'
        "<bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )


APPROVERS = ["T001", "T002", "T003"]


def test_loop_counter_picks_each_signer_of_a_parallel_countersign(tmp_path: Path) -> None:
    """Cardinality 3 with ``approvers[loopCounter]``: one todo for the three signers."""
    task = _mi(_cardinality(False), "approvers[loopCounter]")
    with bridge_run(_model(tmp_path, task), tmp_path / "b.db") as run:
        run.start("p", initiator="S001", data={"approvers": APPROVERS})
        assert run.todo("t").handlers == tuple(APPROVERS)
        for who in ("T003", "T001"):
            assert run.complete("t", who).status == "none"
        assert run.complete("t", "T002").status == "end"


def test_loop_counter_picks_each_signer_of_a_sequential_signing(tmp_path: Path) -> None:
    """Sequential cardinality: each signer in turn, ``next`` carrying the following one."""
    task = _mi(_cardinality(True), "approvers[loopCounter]")
    with bridge_run(_model(tmp_path, task), tmp_path / "b.db") as run:
        run.start("p", initiator="S001", data={"approvers": APPROVERS})
        seen = []
        for _ in APPROVERS:
            who = run.todo("t").handlers
            seen.append(who)
            run.complete("t", who[0])
        assert seen == [("T001",), ("T002",), ("T003",)]
        assert run.status() == "finished"


def test_loop_counter_over_a_dict_collection_is_the_position(tmp_path: Path) -> None:
    """A dict collection is keyed by strings: ``loopCounter`` is still 0, 1, 2."""
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics isSequential="false">'
        "<bpmn:loopDataInputRef>desks</bpmn:loopDataInputRef>"
        '<bpmn:inputDataItem id="desk" name="desk"/>'
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    task = _mi(loop, "approvers[loopCounter] + '-' + desk")
    with bridge_run(_model(tmp_path, task), tmp_path / "b.db") as run:
        run.start(
            "p", initiator="S001", data={"approvers": APPROVERS, "desks": {"x": "A", "y": "B"}}
        )
        assert run.todo("t").handlers == ("T001-A", "T002-B")


def test_a_cardinality_countersign_needs_handlers_that_use_loop_counter(tmp_path: Path) -> None:
    """``mi-incomplete`` stays for a cardinality loop whose handlers do not pick by
    ``loopCounter`` (every instance would go to the same people), and says how to fix it."""
    folder = _model(tmp_path, _mi(_cardinality(False), "'T001'"))
    problems = analyse_paths(folder, transforms=DEFAULT_TRANSFORMS).problems
    [problem] = [p for p in problems if p.code == "mi-incomplete"]
    assert problem.element_id == "t" and "loopCounter" in problem.message
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "p.bpmn").write_text(
        HEAD.format(task=_mi(_cardinality(False), "approvers[loopCounter]"), start=""),
        encoding="utf-8",
    )
    codes = {p.code for p in analyse_paths(fixed, transforms=DEFAULT_TRANSFORMS).problems}
    assert "mi-incomplete" not in codes


INITIATOR = ' activiti:initiator="applicant"'
APPLICANT_TASK = '<bpmn:userTask id="t" activiti:assignee="${applicant}"/>'


def test_the_initiator_is_stored_under_the_initiator_variable(tmp_path: Path) -> None:
    """``activiti:initiator="applicant"``: whoever starts is ``applicant`` in the data."""
    with bridge_run(_model(tmp_path, APPLICANT_TASK, INITIATOR), tmp_path / "b.db") as run:
        run.start("p", initiator="S042", data={})
        assert run.todo("t").handlers == ("S042",)


def test_start_data_may_repeat_the_initiator_but_not_contradict_it(tmp_path: Path) -> None:
    """The same value is fine; another person is refused and nothing is started."""
    with bridge_run(_model(tmp_path, APPLICANT_TASK, INITIATOR), tmp_path / "b.db") as run:
        run.start("p", initiator="S042", data={"applicant": "S042"})
        assert run.todo("t").handlers == ("S042",)
        with pytest.raises(InvalidDataError, match=r"'applicant'.*initiatorVariable"):
            run.bridge.start("p", initiator="S042", data={"applicant": "T999"})
        assert len(run.bridge.store.list_instances(limit=10)) == 1
