"""Node overrides in processes.yaml: what a model says for a task, replaced without editing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from engine_bridge.loader.library import WorkflowLibrary, analyse_paths
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS

from .cases import PERCENTAGE, PERCENTAGE_NODES
from .kit import bridge_run, workflows

REVIEW = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://x">
  <bpmn:process id="review" isExecutable="true">
    <bpmn:laneSet id="ls">
      <bpmn:lane id="office" name="Office">
        <bpmn:flowNodeRef>a</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>b</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="a"/>
    <bpmn:userTask id="a" name="Draft" camunda:assignee="T001"/>
    <bpmn:sequenceFlow id="f1" sourceRef="a" targetRef="b"/>
    <bpmn:userTask id="b" name="Check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="b" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _folder(tmp_path: Path, nodes: Any, *, bpmn: str = REVIEW, name: str = "review") -> Path:
    folder = tmp_path / "wf"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.bpmn").write_text(bpmn, encoding="utf-8")
    if nodes is not None:
        settings = {name: {"transTypeCode": "R", "nodes": nodes}}
        (folder / "processes.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return folder


def _node(folder: Path, node: str, process: str = "review") -> Any:
    library = WorkflowLibrary.load(folder, transforms=DEFAULT_TRANSFORMS)
    return library.get(process).nodes[node]


def test_an_override_replaces_the_vendor_assignee_and_the_title(tmp_path: Path) -> None:
    """``handlers`` beats ``camunda:assignee``; ``taskName`` is what the centre shows."""
    folder = _folder(tmp_path, {"a": {"handlers": "boss", "taskName": "Draft for {client}"}})
    assert _node(folder, "a").handlers == "boss"
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start("review", initiator="S001", data={"boss": "T009", "client": "ACME"})
        todo = run.todo("a")
        assert todo.handlers == ("T009",)
        assert run.fake.state()["todos"][todo.task_id]["task_name"] == "Draft for ACME"


def test_account_lists_and_juel_are_accepted(tmp_path: Path) -> None:
    """A YAML list is literal accounts; ``${…}`` is translated like the model's own JUEL."""
    folder = _folder(tmp_path, {"a": {"handlers": ["T001", "T002"]}, "b": {"handlers": "${x}"}})
    assert _node(folder, "a").handlers == "['T001', 'T002']"
    assert _node(folder, "b").handlers == "x"


def test_null_removes_a_setting_and_the_lane_takes_over(tmp_path: Path) -> None:
    """``handlers: null`` drops the assignee, so the lane is the handling group again."""
    node = _node(_folder(tmp_path, {"a": {"handlers": None}}), "a")
    assert (node.handlers, node.handling_group) == (None, "'Office'")


def test_handlers_from_an_override_replace_the_lane_fallback(tmp_path: Path) -> None:
    """A task that only had its lane gets the override's handlers and no lane group."""
    node = _node(_folder(tmp_path, {"b": {"handlers": "'T005'"}}), "b")
    assert (node.handlers, node.handling_group) == ("'T005'", None)


def test_problems_in_overrides_are_located_in_the_settings_file(tmp_path: Path) -> None:
    """Unknown task, refused expression, untranslatable JUEL, unknown key: each names the
    settings file and the task; a bad expression is not applied."""
    folder = _folder(
        tmp_path,
        {
            "ghost": {"handlers": "'T1'"},
            "a": {"handlers": "__import__('os').getpid()", "handler": "typo"},
            "b": {"handlingGroup": "${x.y().z()}"},
        },
    )
    settings = str(folder / "processes.yaml")
    problems = analyse_paths(folder, transforms=DEFAULT_TRANSFORMS).problems
    found = {(p.code, p.element_id): p for p in problems if p.file == settings}
    assert set(found) == {
        ("override-unknown-node", "ghost"),
        ("bad-expression", "a"),
        ("settings-unknown-key", "a"),
        ("juel-untranslatable", "b"),
    }
    assert "its user tasks: a, b" in found[("override-unknown-node", "ghost")].message
    assert found[("settings-unknown-key", "a")].severity == "warning"
    # each at the line where the settings file names its task
    text = (folder / "processes.yaml").read_text(encoding="utf-8").splitlines()
    for (_, task), problem in found.items():
        assert problem.line is not None and text[problem.line - 1].strip() == f"{task}:"
    assert _node_unchecked(folder, "a").handlers == "['T001']"  # the refused one is not applied


def _node_unchecked(folder: Path, node: str) -> Any:
    analysis = analyse_paths(folder, transforms=DEFAULT_TRANSFORMS)
    return analysis.processes["review"].nodes[node]


def test_nodes_must_be_a_mapping_of_mappings(tmp_path: Path) -> None:
    for nodes in (["a"], {"a": "T001"}):
        folder = _folder(tmp_path, nodes)
        codes = {p.code for p in analyse_paths(folder, transforms=DEFAULT_TRANSFORMS).problems}
        assert "settings-invalid" in codes, nodes


def test_changed_overrides_are_seen_on_the_next_load(tmp_path: Path) -> None:
    """The loader's caches key on the overrides' content, not just the BPMN files."""
    assert _node(_folder(tmp_path, {"a": {"handlers": "'T1'"}}), "a").handlers == "'T1'"
    assert _node(_folder(tmp_path, {"a": {"handlers": "'T2'"}}), "a").handlers == "'T2'"


PARENT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="p"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" targetNamespace="http://x">
  <bpmn:process id="parent" isExecutable="true">
    <bpmn:startEvent id="ps"/>
    <bpmn:sequenceFlow id="pf0" sourceRef="ps" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="child"/>
    <bpmn:sequenceFlow id="pf1" sourceRef="call" targetRef="pe"/>
    <bpmn:endEvent id="pe"/>
  </bpmn:process>
</bpmn:definitions>
"""
CHILD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="c"
    targetNamespace="http://x">
  <bpmn:process id="child" isExecutable="true">
    <bpmn:startEvent id="cs"/>
    <bpmn:sequenceFlow id="cf0" sourceRef="cs" targetRef="work"/>
    <bpmn:userTask id="work"/>
    <bpmn:sequenceFlow id="cf1" sourceRef="work" targetRef="ce"/>
    <bpmn:endEvent id="ce"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_overrides_of_a_called_process_apply_where_it_is_called(tmp_path: Path) -> None:
    """The called process's entry fixes its task for every caller."""
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "parent.bpmn").write_text(PARENT, encoding="utf-8")
    (folder / "child.bpmn").write_text(CHILD, encoding="utf-8")
    settings = {"child": {"nodes": {"work": {"handlers": "'T777'"}}}}
    (folder / "processes.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    with bridge_run(folder, tmp_path / "b.db") as run:
        run.start("parent", initiator="S001", data={})
        assert run.todo("work").handlers == ("T777",)
        assert run.complete("work", "T777").status == "end"


def test_validate_accepts_a_vendor_model_once_overrides_fix_it(tmp_path: Path) -> None:
    """The flowable percentage model: ``no-handlers`` and ``mi-incomplete`` alone; with the
    override (``approvers[loopCounter]``) in the folder's processes.yaml, neither."""

    def codes(folder: Path) -> set[str]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine_bridge.cli",
                "validate",
                "--format",
                "json",
                str(folder),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert "Traceback" not in result.stdout + result.stderr
        return {
            p["code"] for p in json.loads(result.stdout)["problems"] if p["severity"] == "error"
        }

    bare = workflows(tmp_path / "bare", PERCENTAGE)
    assert {"no-handlers", "mi-incomplete"} <= codes(bare)
    fixed = workflows(tmp_path / "fixed", PERCENTAGE, nodes=PERCENTAGE_NODES)
    assert not codes(fixed) & {"no-handlers", "mi-incomplete", "settings-unknown-key"}


def test_each_checks_unrelated_models_alone_with_their_folder_settings(tmp_path: Path) -> None:
    """``--each``: two models that reuse a process id are not a clash, and the folder's
    processes.yaml still fixes the one it names without warnings about the other."""
    folder = _folder(tmp_path, {"b": {"handlers": "'T005'"}})
    other = REVIEW.replace('camunda:assignee="T001"', "").replace('name="Check"', 'name="C"')
    (folder / "copy.bpmn").write_text(other, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine_bridge.cli",
            "validate",
            "--each",
            "--format=json",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert {f["file"].rsplit("/", 1)[-1]: f["ok"] for f in report["files"]} == {
        "copy.bpmn": True,
        "review.bpmn": True,
    }, report["problems"]
    codes = {p["code"] for p in report["problems"]}
    assert not codes & {"duplicate-id", "settings-unknown-process", "no-handlers"}
    assert result.returncode == 0


def test_handler_lists_and_process_settings_must_be_text(tmp_path: Path) -> None:
    """An account list with a null or a nested value, an empty list, and a setting given as a
    list are refused by name, not sent to the centre as "None" or "[1, 2]"."""
    cases = [
        ({"a": {"handlers": ["T001", None]}}, "lists None, which is not an account"),
        ({"a": {"handlers": ["T001", ["T002"]]}}, "lists ['T002'], which is not an account"),
        ({"a": {"handlingGroup": []}}, "is an empty list, so nobody could complete the task"),
    ]
    for nodes, words in cases:
        folder = _folder(tmp_path, nodes)
        problems = analyse_paths(folder, transforms=DEFAULT_TRANSFORMS).problems
        found = [p for p in problems if p.code == "settings-invalid"]
        assert found and words in found[0].message, (nodes, [p.message for p in problems])
        assert found[0].element_id == "a"
    accounts = _folder(tmp_path, {"a": {"handlers": ["T001", 2023001]}})
    assert _node(accounts, "a").handlers == "['T001', '2023001']"  # numbers are accounts too
    (tmp_path / "wf" / "processes.yaml").write_text(
        yaml.safe_dump({"review": {"transTypeCode": [1, 2]}}), encoding="utf-8"
    )
    problems = analyse_paths(tmp_path / "wf", transforms=DEFAULT_TRANSFORMS).problems
    (bad,) = [p for p in problems if p.code == "settings-invalid"]
    assert "'transTypeCode' of process 'review' must be text" in bad.message
