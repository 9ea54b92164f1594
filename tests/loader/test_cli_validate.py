"""``engine-bridge validate``: ok lines, problems, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bpmn_factory import CORPUS, WriteBpmn, chain, definitions, process, user_task

from engine_bridge.cli import main

GOOD = definitions(process("p", chain(("a", user_task("a", {"handlers": "'T1'"})))))
BAD = definitions(process("q", chain(("b", user_task("b")))))


def test_good_file_prints_ok_and_exits_0(
    write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bpmn("good.bpmn", GOOD)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_bad_file_prints_each_problem_and_exits_1(
    write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_bpmn("good.bpmn", GOOD)
    bad = write_bpmn("bad.bpmn", BAD)
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{good}: ok"
    assert out[1].startswith(f"{bad}:") and "(no-handlers)" in out[1] and "[b]" in out[1]


def test_json_format(write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write_bpmn("bad.bpmn", BAD)
    assert main(["validate", "--format", "json", str(bad)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["files"] == [{"file": str(bad), "ok": False}]
    assert report["problems"][0]["code"] == "no-handlers"
    assert report["problems"][0]["element_id"] == "b"


def test_warnings_alone_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "camunda-modeler__illegal-whitespace.bpmn"
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ok" in out and "warning" in out


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.bpmn")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_missing_path_in_json_format_prints_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool reading --format json gets JSON even when a path does not exist; exit 2 still."""
    missing = str(tmp_path / "nope.bpmn")
    assert main(["validate", "--format", "json", missing]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["errors"] == [f"no such file or directory: {missing}"]
    assert report["files"] == [] and report["problems"] == []


def test_strict_warning_is_not_ok_in_text_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Under --strict a warning fails the file: neither ``file: ok`` nor ``"ok": true``."""
    path = str(CORPUS / "camunda-modeler__illegal-whitespace.bpmn")
    assert main(["validate", "--strict", path]) == 1
    out = capsys.readouterr().out
    assert "warning" in out and f"{path}: ok" not in out
    assert main(["validate", "--strict", "--format", "json", path]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["files"] == [{"file": path, "ok": False}]
    assert any(p["severity"] == "warning" for p in report["problems"])
    assert main(["validate", "--format", "json", path]) == 0  # without --strict: ok
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_no_arguments_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2


def test_hostile_corpus_files_give_no_traceback_in_a_real_process() -> None:
    """The real command on empty, broken and XXE files: exit 1, problems, no traceback."""
    files = [
        CORPUS / "camunda-modeler__empty.bpmn",
        CORPUS / "camunda-modeler__broken.bpmn",
        CORPUS / "spiff-arena__invoice.bpmn",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for code in ("xml-empty", "xml-malformed", "xml-dtd-forbidden"):
        assert code in result.stdout


def test_named_service_handlers_answer_service_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --service a service task is a warning (--strict fails); naming its handler, by
    key or by task, clears it; once handlers are named, a task none answers is an error."""
    twitter = str(CORPUS / "camunda-examples__TwitterDemoProcess.bpmn")
    assert main(["validate", "--strict", twitter]) == 1
    assert main(["validate", twitter]) == 0
    capsys.readouterr()
    assert main(["validate", "--service", "emailAdapter", twitter]) == 1
    out = capsys.readouterr().out
    assert "error: task calls service 'tweetAdapter', and none of the named handlers" in out
    assert "emailAdapter" not in out
    named = ["--service", "emailAdapter", "--service", "task:service_task_publish_on_twitter"]
    assert main(["validate", "--strict", *named, twitter]) == 0


def _boundary(event_id: str, definition: str) -> str:
    return (
        f'\n    <bpmn:boundaryEvent id="{event_id}" name="On {event_id}" attachedToRef="a">'
        f"{definition}</bpmn:boundaryEvent>"
    )


@pytest.mark.parametrize(
    ("definition", "said"),
    [
        ("<bpmn:compensateEventDefinition/>", "catches a compensation event, which "),
        ("", "has no event definition, so it catches nothing"),
    ],
)
def test_an_unsupported_boundary_event_is_one_clean_problem(
    write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str], definition: str, said: str
) -> None:
    """SpiffWorkflow refuses it with a NotImplementedError holding the element's whole XML; the
    report names the boundary event, its line and what it may catch instead."""
    task = user_task("a", {"handlers": "'T1'"}) + _boundary("comp", definition)
    path = write_bpmn("boundary.bpmn", definitions(process("p", chain(("a", task)))))
    assert main(["validate", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    [problem] = [p for p in report["problems"] if p["severity"] == "error"]
    assert problem["element_id"] == "comp" and problem["code"] == "bpmn-invalid"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 'id="comp"' in lines[problem["line"] - 1]
    assert problem["message"].startswith(f"boundary event 'On comp' {said}")
    assert "timer, message, signal, error, escalation, conditional or cancel" in problem["message"]
    assert "NotImplementedError" not in problem["message"] and "\u003c" not in problem["message"]


def test_the_corpus_compensation_boundary_event_is_reported_cleanly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = CORPUS / "activiti__ProcessDiagramGeneratorTest.testAllElements.bpmn"
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    [line] = [row for row in out.splitlines() if "[boundarycompensation1]" in row]
    assert line.startswith(f"{path}:176: error: boundary event 'Compensate' catches a compensation")
    assert line.endswith("(bpmn-invalid)")
    assert "NotImplementedError" not in out and "<boundaryEvent" not in out


# What Camunda Modeler 5 writes for a new diagram by default: a Camunda 8 (Zeebe) model.
CAMUNDA8 = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"
    xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_1"
    targetNamespace="http://bpmn.io/schema/bpmn" exporter="Camunda Modeler"
    exporterVersion="5.20.0" modeler:executionPlatform="Camunda Cloud">
  <bpmn:process id="leave" name="Leave" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="counselor_review"/>
    <bpmn:userTask id="counselor_review" name="Counselor review">
      <bpmn:extensionElements>
        <zeebe:assignmentDefinition assignee="=counselor"/>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="counselor_review" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="notify">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">=approved</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">=not(approved)</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:serviceTask id="notify" name="Notify">
      <bpmn:extensionElements><zeebe:taskDefinition type="notify"/></bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f5" sourceRef="notify" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_camunda8_model_is_one_problem_naming_the_file_and_an_element(
    write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not no-handlers, not "not valid Python" for each FEEL condition: one error saying the
    model is for Camunda 8 and how to draw one for Camunda 7."""
    path = write_bpmn("leave.bpmn", CAMUNDA8)
    assert main(["validate", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    [problem] = report["problems"]
    assert problem["code"] == "camunda8-unsupported" and problem["severity"] == "error"
    assert problem["file"] == str(path) and problem["element_id"] == "counselor_review"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert 'id="counselor_review"' in lines[problem["line"] - 1]
    assert problem["message"].startswith(
        "a Camunda 8 (Zeebe) model (zeebe:assignmentDefinition on 'Counselor review'): "
        "engine_bridge reads Camunda 7 models; in Camunda Modeler, create a Camunda 7 "
        "(Camunda Platform) diagram"
    )
    assert main(["validate", str(path)]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{path}:")
    assert line.endswith("[counselor_review] (camunda8-unsupported)")


def test_a_zeebe_namespace_declared_but_not_used_is_no_camunda8_model(
    write_bpmn: WriteBpmn, capsys: pytest.CaptureFixture[str]
) -> None:
    zeebe = 'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"'
    declared = GOOD.replace("<bpmn:definitions ", f"<bpmn:definitions {zeebe} ")
    path = write_bpmn("good.bpmn", declared)
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_bridge_open_refuses_a_camunda8_model_with_the_one_problem(write_bpmn: WriteBpmn) -> None:
    from engine_bridge.errors import BpmnError
    from engine_bridge.loader.library import WorkflowLibrary

    path = write_bpmn("leave.bpmn", CAMUNDA8)
    with pytest.raises(BpmnError) as info:
        WorkflowLibrary.load(path)
    assert info.value.element_id == "counselor_review"
    assert [p.code for p in info.value.problems] == ["camunda8-unsupported"]  # type: ignore[attr-defined]
