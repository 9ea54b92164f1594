"""Bean calls in translated JUEL (``#{svc.findEditor(id)}``) reach the resolvers the user
registers: in handler expressions, gateway conditions and ``engine-bridge validate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.engine.script_engine import Registry, UnknownBeanError, evaluate_expression
from engine_bridge.errors import EngineError, InvalidDataError
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.validate import require_resolvers

from .cases import EDITOR, JOB, JOB_RESOLVERS, PUBLICATION, REQUESTER
from .kit import bridge_run, workflows
from .verdicts import CORPUS

# --------------------------------------------------------------------------- the registry


class JobService:
    """A bean as a Java team would write it, registered whole under its name."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def findRequester(self, job_id: Any) -> str:  # the model's method name
        self.asked.append(("requester", job_id))
        return REQUESTER

    def findEditor(self, job_id: Any) -> str:  # the model's method name
        self.asked.append(("editor", job_id))
        return EDITOR

    def _secret(self) -> str:
        return "never reachable from BPMN"


def test_a_resolver_answers_by_full_name_by_bean_object_or_by_mapping() -> None:
    """``svc.find`` is found as a callable under its full name, or as a method/key of a bean."""
    registry = Registry(resolvers={"svc.find": lambda x: f"found {x}"})
    registry.add_resolver("job", JobService())
    registry.add_resolver("dept", {"leaderOf": lambda d: f"leader of {d}"})
    assert registry.resolve_bean("svc.find", 1) == "found 1"
    assert registry.resolve_bean("job.findEditor", 7) == EDITOR
    assert registry.resolve_bean("dept.leaderOf", "math") == "leader of math"
    assert registry.resolver_names() == ("dept", "job", "svc.find")


def test_an_unregistered_bean_names_itself_and_how_to_register() -> None:
    """The error names the bean, what is registered, and both ways to register it."""
    registry = Registry(resolvers={"svc.find": len})
    with pytest.raises(UnknownBeanError) as info:
        registry.resolve_bean("jobAnnouncementService.findEditor", 7)
    message = str(info.value)
    assert "'jobAnnouncementService.findEditor'" in message
    assert "registered: svc.find" in message
    assert "Bridge.open(resolvers=" in message and "bridge.resolver(" in message


def test_private_methods_and_missing_methods_of_a_bean_are_not_reachable() -> None:
    """Only public callables of a registered bean answer; ``_secret`` is not one."""
    registry = Registry(resolvers={"job": JobService()})
    for name in ("job._secret", "job.__init__", "job.nothing", "job.asked"):
        assert not registry.resolves(name), name
        with pytest.raises(UnknownBeanError):
            registry.resolve_bean(name)


@pytest.mark.parametrize("name", ["", "_svc", "svc._find", "svc..find", "1svc", "svc find"])
def test_resolver_names_must_be_bean_names(name: str) -> None:
    with pytest.raises(InvalidDataError, match="resolver name"):
        Registry(resolvers={name: len})


def test_expressions_see_the_juel_helpers_and_the_registry() -> None:
    """What the translator emits runs in the sandbox: helpers always, beans with a registry."""
    registry = Registry(resolvers={"svc.double": lambda x: 2 * x})
    assert evaluate_expression("juel_empty(x) and juel_str(y) == 'true'", {"x": [], "y": True})
    assert evaluate_expression("resolve_bean('svc.double', n)", {"n": 21}, registry=registry) == 42
    with pytest.raises(UnknownBeanError):
        evaluate_expression("resolve_bean('svc.double', n)", {"n": 21})


def test_task_data_cannot_replace_the_resolver() -> None:
    """A data field called ``resolve_bean`` does not shadow the registry's function."""
    registry = Registry(resolvers={"svc.one": lambda: 1})
    data = {"resolve_bean": "not a function"}
    assert evaluate_expression("resolve_bean('svc.one')", data, registry=registry) == 1


# --------------------------------------------------------------------------- validation


def _bean_warning(bean: str) -> Problem:
    return Problem(
        "m.bpmn",
        f"assignee/candidate users calls {bean!r}: register a bean resolver under that name",
        "bean-needs-resolver",
        element_id="t",
        line=3,
        severity="warning",
    )


def test_validation_turns_unanswered_bean_calls_into_errors() -> None:
    """A resolver under the full name or the bean's name answers; anything else is an error
    that keeps its location and says how to register."""
    problems = [_bean_warning("svc.find"), _bean_warning("job.findEditor"), _bean_warning("x.y")]
    result = require_resolvers(problems, ["svc.find", "job"])
    assert [(p.code, p.severity, p.element_id, p.line) for p in result] == [
        ("bean-needs-resolver", "error", "t", 3)
    ]
    assert "'x.y'" in result[0].message and "--resolver x.y" in result[0].message


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_validate_reports_the_job_announcement_beans_until_resolvers_are_named() -> None:
    """Both job-announcement files together: each bean-call assignee is an error with element
    and line until ``--resolver`` names it; then only service handlers remain to register."""
    files = [str(CORPUS / JOB), str(CORPUS / PUBLICATION)]
    bare = _validate(*files)
    assert bare.returncode == 1 and "Traceback" not in bare.stdout + bare.stderr
    beans = [line for line in bare.stdout.splitlines() if line.endswith("(bean-needs-resolver)")]
    assert len(beans) == 2
    assert any(
        ":40: error:" in line and "[review]" in line and "findRequester" in line for line in beans
    )
    assert any(
        ":54: error:" in line and "[correct]" in line and "findEditor" in line for line in beans
    )
    assert "unknown-process" not in bare.stdout  # the called process is loaded with it

    named = _validate(*files, "--resolver", "jobAnnouncementService")
    errors = [line for line in named.stdout.splitlines() if ": error: " in line]
    # Service handlers are checked by the services feature; nothing else may remain.
    assert all(line.endswith("(service-needs-handler)") for line in errors), errors
    assert "bean-needs-resolver" not in named.stdout


# --------------------------------------------------------------------------- at run time


def test_bean_assignees_resolve_once_a_resolver_is_registered(tmp_path: Path) -> None:
    """The job announcement runs unedited up to publishing: without a resolver the completion
    that reaches ``review`` fails naming the bean and changes nothing; registered afterwards
    with ``bridge.resolver``, the same completion gives review to the requester, and the
    rejection loop gives ``correct`` to the editor."""
    folder = workflows(tmp_path / "wf", JOB, PUBLICATION)
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start(
            "camunda-testing-job-announcement", initiator="HR01", data={"jobAnnouncementId": 7}
        )
        edit = run.todo("edit")
        assert (edit.handlers, edit.handling_groups) == ((), ("engineering",))
        with pytest.raises(EngineError) as info:
            run.bridge.complete(edit.task_id, handler="E001", data={"description": "job"})
        assert "'jobAnnouncementService.findRequester'" in str(info.value)
        assert "bridge.resolver(" in str(info.value)
        assert "Check that the variables" not in str(info.value)  # a resolver, not data, lacks
        run.check()
        assert run.todo("edit").task_id == edit.task_id

        service = JobService()
        run.bridge.resolver("jobAnnouncementService", service)
        run.complete("edit", "E001", {"description": "job"})
        assert run.todo("review").handlers == (REQUESTER,)
        run.complete("review", REQUESTER, {"approved": False})
        assert run.todo("correct").handlers == (EDITOR,)
        run.complete("correct", EDITOR, {"description": "better job"})
        run.complete("review", REQUESTER, {"approved": True})
        assert run.nodes() == ["publish"]
        assert run.todo("publish").handling_groups == ("engineering",)
        assert service.asked == [("requester", 7), ("editor", 7), ("requester", 7)]


def test_resolvers_given_to_bridge_open_reach_handler_expressions(tmp_path: Path) -> None:
    """``Bridge.open(resolvers={full name: fn})`` works the same as registering later."""
    folder = workflows(tmp_path / "wf", JOB, PUBLICATION)
    with bridge_run(folder, tmp_path / "b.db", resolvers=JOB_RESOLVERS) as run:
        run.start(
            "camunda-testing-job-announcement", initiator="HR01", data={"jobAnnouncementId": 7}
        )
        run.complete("edit", "E001")
        assert run.todo("review").handlers == (REQUESTER,)


CONDITION_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://x">
  <bpmn:process id="trip" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="ask"/>
    <bpmn:userTask id="ask" camunda:assignee="${initiator}"/>
    <bpmn:sequenceFlow id="f1" sourceRef="ask" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" default="f3"/>
    <bpmn:sequenceFlow id="f2" sourceRef="gw" targetRef="dean">
      <bpmn:conditionExpression>#{policy.needsDean(days, kind)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end"/>
    <bpmn:userTask id="dean" camunda:assignee="#{org.deanOf(dept)}"/>
    <bpmn:sequenceFlow id="f4" sourceRef="dean" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.mark.parametrize(("days", "expected"), [(5, ["dean"]), (1, [])])
def test_gateway_conditions_call_resolvers(tmp_path: Path, days: int, expected: list[str]) -> None:
    """A JUEL bean call in a gateway condition is answered by a mapping-registered bean."""
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "trip.bpmn").write_text(CONDITION_BPMN, encoding="utf-8")
    resolvers = {
        "policy": {"needsDean": lambda d, kind: d > 3 and kind == "abroad"},
        "org.deanOf": lambda dept: f"dean-{dept}",
    }
    with bridge_run(folder, tmp_path / "b.db", resolvers=resolvers) as run:
        run.start("trip", initiator="S001", data={"days": days, "kind": "abroad", "dept": "cs"})
        outcome = run.complete("ask", "S001")
        assert run.nodes() == expected
        if expected:
            assert run.todo("dean").handlers == ("dean-cs",)
        else:
            assert outcome.status == "end"
