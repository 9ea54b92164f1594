"""WorkflowLibrary: one parse for a set of files, node settings, process settings, versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bpmn_factory import WriteBpmn, chain, definitions, process, user_task
from SpiffWorkflow import TaskState
from SpiffWorkflow.bpmn import BpmnWorkflow

from engine_bridge.engine.script_engine import RestrictedScriptEngine
from engine_bridge.errors import BpmnError, UnknownProcessError
from engine_bridge.loader import Problem, ProcessSettings, WorkflowLibrary
from engine_bridge.loader.library import analyse_paths
from engine_bridge.loader.xml_safety import SPIFF_NS

LEAVE = definitions(
    process(
        "leave",
        '\n    <bpmn:laneSet id="ls"><bpmn:lane id="lane1" name="counsellors">'
        "<bpmn:flowNodeRef>counsel</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
        + chain(
            (
                "review",
                user_task(
                    "review",
                    {
                        "handlers": "approver",
                        "taskName": "{name} asks for {days} days",
                        "taskSummary": "天数|{days}; 原因|{reason}",
                        "viewUrl": "https://x/view/{id}",
                        "mHandleUrl": "https://m/handle/{id}",
                    },
                    name="Review",
                ),
            ),
            ("counsel", user_task("counsel", name="Counsellor")),
            ("call", '\n    <bpmn:callActivity id="call" calledElement="archive"/>'),
        ),
        name="Leave request",
    )
)

ARCHIVE = definitions(
    process(
        "archive",
        chain(("file_it", user_task("file_it", {"handlingGroup": "'registry'"}))),
    )
)


def _library_dir(tmp_path: Path, write_bpmn: WriteBpmn) -> Path:
    folder = tmp_path / "flows"
    write_bpmn("leave.bpmn", LEAVE, folder)
    write_bpmn("archive.bpmn", ARCHIVE, folder)
    write_bpmn("notes.txt", "not bpmn", folder)
    return folder


def test_directory_loads_every_bpmn_and_resolves_calls_across_files(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    """The call activity in leave.bpmn finds the process in archive.bpmn."""
    library = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn))
    assert library.process_ids() == ["archive", "leave"]
    loaded = library.get("leave")
    assert loaded.name == "Leave request"
    assert loaded.file.endswith("leave.bpmn")
    assert set(loaded.subprocess_specs) == {"archive"}
    assert set(loaded.nodes) == {"review", "counsel", "file_it"}


def test_node_settings_are_read_from_spiff_properties(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    review = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn)).get("leave").nodes["review"]
    assert review.node_name == "Review"
    assert review.handlers == "approver"
    assert review.handling_group is None
    assert review.task_name == "{name} asks for {days} days"
    assert review.task_summary == ("天数|{days}", "原因|{reason}")
    assert dict(review.urls) == {
        "viewUrl": "https://x/view/{id}",
        "mHandleUrl": "https://m/handle/{id}",
    }
    assert review.location is not None
    assert review.location.file.endswith("leave.bpmn")
    lines = LEAVE.splitlines()
    assert review.location.line == 1 + lines.index(next(x for x in lines if 'id="review"' in x))


def test_lane_name_is_the_fallback_handling_group(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    """Without handlers or handlingGroup, the lane name becomes a string-literal expression."""
    counsel = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn)).get("leave").nodes["counsel"]
    assert counsel.lane == "counsellors"
    assert counsel.handlers is None
    assert counsel.handling_group == "'counsellors'"


def test_called_process_tasks_carry_their_own_file(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    node = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn)).get("leave").nodes["file_it"]
    assert node.handling_group == "'registry'"
    assert node.location is not None and node.location.file.endswith("archive.bpmn")


def test_non_executable_process_gives_a_clear_error(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    draft = process("draft", chain(("d", user_task("d", {"handlers": "'T1'"}))), executable=False)
    write_bpmn("draft.bpmn", definitions(draft), folder)
    library = WorkflowLibrary.load(folder)
    assert "draft" not in library.process_ids()
    assert [p.code for p in library.problems] == ["no-executable-process"]
    with pytest.raises(UnknownProcessError, match="not executable"):
        library.get("draft")


def test_unknown_process_lists_known_ids(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    library = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn))
    with pytest.raises(UnknownProcessError, match="known: archive, leave"):
        library.get("nope")


def test_multi_instance_settings_are_keyed_by_the_bpmn_id(write_bpmn: WriteBpmn) -> None:
    """The MI child spec ('sign [child]') carries the properties; the key is 'sign'."""
    loop = (
        "<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopDataInputRef>signers</bpmn:loopDataInputRef>"
        '<bpmn:inputDataItem id="signer" name="signer"/>'
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    text = definitions(
        process("sign_p", chain(("sign", user_task("sign", {"handlers": "signer"}, extra=loop))))
    )
    nodes = WorkflowLibrary.load(write_bpmn("mi.bpmn", text)).get("sign_p").nodes
    assert list(nodes) == ["sign"]
    assert nodes["sign"].handlers == "signer"


def test_embedded_subprocess_tasks_are_included(write_bpmn: WriteBpmn) -> None:
    inner = (
        chain(("inner", user_task("inner", {"handlers": "'T9'"})))
        .replace('id="start"', 'id="s2"')
        .replace('sourceRef="start"', 'sourceRef="s2"')
        .replace('id="end"', 'id="e2"')
        .replace('targetRef="end"', 'targetRef="e2"')
        .replace('id="flow', 'id="inner_flow')
    )
    sub = f'\n    <bpmn:subProcess id="sub">{inner}</bpmn:subProcess>'
    text = definitions(process("outer", chain(("sub", sub))))
    nodes = WorkflowLibrary.load(write_bpmn("sub.bpmn", text)).get("outer").nodes
    assert nodes["inner"].handlers == "'T9'"


def test_process_settings_file_and_defaults(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text(
        "leave:\n  transTypeCode: LEAVE\n  transTypeName: 请假\n"
        "  transactionName: '{initiator_name}的请假'\n  transSummary: '天数|{days}'\n"
        "  viewUrl: https://x/{id}\n",
        encoding="utf-8",
    )
    settings = WorkflowLibrary.load(folder).get("leave").settings
    assert settings == ProcessSettings(
        trans_type_code="LEAVE",
        trans_type_name="请假",
        transaction_name="{initiator_name}的请假",
        transaction_summary=("天数|{days}",),
        urls={"viewUrl": "https://x/{id}"},
    )


def test_process_settings_json_and_explicit_override(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.json").write_text(json.dumps({"leave": {"transTypeCode": "J"}}))
    assert WorkflowLibrary.load(folder).get("leave").settings.trans_type_code == "J"
    explicit = ProcessSettings(trans_type_code="X", trans_type_name="Y")
    loaded = WorkflowLibrary.load(folder, process_settings={"leave": explicit})
    assert loaded.get("leave").settings == explicit


def test_default_process_settings_use_process_name(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    settings = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn)).get("leave").settings
    assert settings.trans_type_code == "leave"
    assert settings.trans_type_name == "Leave request"
    assert settings.transaction_name == "{process_name}"


def test_unknown_setting_key_is_a_warning(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text("leave:\n  transTypeKode: typo\n")
    library = WorkflowLibrary.load(folder)
    assert [p.code for p in library.problems] == ["settings-unknown-key"]
    assert library.problems[0].severity == "warning"


def test_a_second_settings_file_in_a_folder_is_not_read_and_says_so(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text("leave:\n  transTypeCode: Y\n")
    (folder / "processes.json").write_text(json.dumps({"leave": {"transTypeCode": "J"}}))
    library = WorkflowLibrary.load(folder)
    assert library.get("leave").settings.trans_type_code == "Y"
    (ignored,) = library.problems
    assert (ignored.code, ignored.severity) == ("settings-ignored", "warning")
    assert ignored.file == str(folder / "processes.json") and "processes.yaml" in ignored.message


def test_malformed_settings_yaml_is_one_line_with_its_line(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text("leave:\n  transTypeCode: [open\n  x: 1\n")
    problems = analyse_paths(folder).problems
    (bad,) = [p for p in problems if p.code == "settings-invalid"]
    assert bad.line == 3 and "\n" not in bad.message and "column" in bad.message


# Nine levels of nine: 9**9 (387 million) strings once the aliases are expanded.
ALIAS_BOMB = "leave:\n  transTypeCode: LEAVE\n  transSummary:\n" + "".join(
    f"    - &{a} [{','.join([f'*{p}'] * 9) if p else ','.join(['xxxxxxxx'] * 9)}]\n"
    for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


@pytest.mark.timeout(20)
def test_settings_yaml_aliases_are_refused_before_they_expand(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    """An alias bomb of a few hundred bytes would take minutes and every byte of memory to
    build; counted on the node tree first, it is a settings-invalid error at its first alias."""
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text(ALIAS_BOMB, encoding="utf-8")
    assert len(ALIAS_BOMB) < 600
    (bad,) = [p for p in analyse_paths(folder).problems if p.code == "settings-invalid"]
    assert (bad.file, bad.line) == (str(folder / "processes.yaml"), 5)
    assert "aliases expand this document beyond 100,000" in bad.message
    assert "\n" not in bad.message
    with pytest.raises(BpmnError, match=r"processes\.yaml:5: .*aliases expand"):
        WorkflowLibrary.load(folder)


def test_shared_settings_by_merge_key_are_read_and_a_self_containing_alias_is_refused(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    """Shared defaults (``<<: *base``) expand to little and are common in settings files."""
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text(
        "base: &base {transTypeName: Leave}\nleave:\n  <<: *base\n  transTypeCode: L\n"
    )
    settings = WorkflowLibrary.load(folder).get("leave").settings
    assert (settings.trans_type_code, settings.trans_type_name) == ("L", "Leave")
    (folder / "processes.yaml").write_text("leave:\n  transSummary: &s [a, *s]\n")
    (bad,) = [p for p in analyse_paths(folder).problems if p.code == "settings-invalid"]
    assert bad.line == 2 and "aliases expand" in bad.message


def test_a_settings_anchor_without_alias_is_harmless(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    (folder / "processes.yaml").write_text("leave: &l\n  transTypeCode: L\n")
    assert WorkflowLibrary.load(folder).get("leave").settings.trans_type_code == "L"


def test_version_changes_with_content_and_not_otherwise(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    folder = _library_dir(tmp_path, write_bpmn)
    first = WorkflowLibrary.load(folder).get("leave").version
    assert WorkflowLibrary.load(folder).get("leave").version == first
    write_bpmn("archive.bpmn", ARCHIVE.replace("registry", "archive_office"), folder)
    assert WorkflowLibrary.load(folder).get("leave").version != first


def test_same_files_are_parsed_once(tmp_path: Path, write_bpmn: WriteBpmn) -> None:
    """A second load of unchanged files reuses the parsed specs (same objects)."""
    folder = _library_dir(tmp_path, write_bpmn)
    first = WorkflowLibrary.load(folder).get("leave")
    second = WorkflowLibrary.load(folder).get("leave")
    assert second.spec is first.spec
    write_bpmn("leave.bpmn", LEAVE.replace("Review", "Check"), folder)
    third = WorkflowLibrary.load(folder).get("leave")
    assert third.spec is not first.spec
    assert third.nodes["review"].node_name == "Check"


def test_first_error_is_raised_with_file_element_and_line(write_bpmn: WriteBpmn) -> None:
    text = definitions(process("p", chain(("lonely", user_task("lonely", name="Lonely")))))
    path = write_bpmn("bad.bpmn", text)
    with pytest.raises(BpmnError) as info:
        WorkflowLibrary.load(path)
    error = info.value
    assert error.file == str(path)
    assert error.element_id == "lonely"
    lines = text.splitlines()
    assert error.line == 1 + lines.index(next(x for x in lines if 'id="lonely"' in x))
    assert [p.code for p in error.problems] == ["no-handlers"]  # type: ignore[attr-defined]


def test_transforms_run_before_spiff_parses(write_bpmn: WriteBpmn) -> None:
    """A transform can rewrite the tree (here: add handlers) and report its own findings."""
    text = definitions(process("p", chain(("t", user_task("t")))))
    path = write_bpmn("t.bpmn", text)
    seen: list[str] = []

    def add_handlers(root: Any, file: str) -> list[Problem]:
        seen.append(file)
        task = root.find(".//{http://www.omg.org/spec/BPMN/20100524/MODEL}userTask")
        ext = task.makeelement("{http://www.omg.org/spec/BPMN/20100524/MODEL}extensionElements")
        props = ext.makeelement(f"{{{SPIFF_NS}}}properties")
        props.append(
            props.makeelement(f"{{{SPIFF_NS}}}property", {"name": "handlers", "value": "'T1'"})
        )
        ext.append(props)
        task.insert(0, ext)
        return [Problem(file, "translated", "translated-note", severity="warning")]

    library = WorkflowLibrary.load(path, transforms=[add_handlers])
    assert seen == [str(path)]
    assert library.get("p").nodes["t"].handlers == "'T1'"
    assert [p.code for p in library.problems] == ["translated-note"]


def test_loaded_process_runs_in_spiff_with_the_restricted_engine(
    tmp_path: Path, write_bpmn: WriteBpmn
) -> None:
    """What the library hands over is enough to start a workflow."""
    loaded = WorkflowLibrary.load(_library_dir(tmp_path, write_bpmn)).get("leave")
    wf = BpmnWorkflow(loaded.spec, loaded.subprocess_specs, script_engine=RestrictedScriptEngine())
    wf.do_engine_steps()
    ready = wf.get_tasks(state=TaskState.READY, manual=True)
    assert [t.task_spec.bpmn_id for t in ready] == ["review"]


def test_a_file_named_twice_is_loaded_once(tmp_path: Path) -> None:
    """Given twice, or as itself and through its folder: one file, not a clash with itself."""
    folder = tmp_path / "wf"
    folder.mkdir()
    sample = Path(__file__).resolve().parents[2] / "workflows" / "or_sign.bpmn"
    copy = folder / "or_sign.bpmn"
    copy.write_text(sample.read_text(encoding="utf-8"), encoding="utf-8")
    library = WorkflowLibrary.load([copy, folder, folder / ".." / "wf" / "or_sign.bpmn"])
    assert library.process_ids() == ["or_sign"]


NESTED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://x">
  <bpmn:process id="PID" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:subProcess id="subprocess1">
      <bpmn:startEvent id="ss"/><bpmn:userTask id="u" camunda:assignee="T1"/>
      <bpmn:endEvent id="se"/>
      <bpmn:sequenceFlow id="sf1" sourceRef="ss" targetRef="u"/>
      <bpmn:sequenceFlow id="sf2" sourceRef="u" targetRef="se"/>
    </bpmn:subProcess>
    <bpmn:endEvent id="e"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="subprocess1"/>
    <bpmn:sequenceFlow id="f2" sourceRef="subprocess1" targetRef="e"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_an_embedded_subprocess_id_used_in_two_files_names_both(tmp_path: Path) -> None:
    """Modellers number subprocess ids per file; loaded together, SpiffWorkflow keeps them in
    one space with the process ids, so the clash is reported naming the other file."""
    (tmp_path / "a.bpmn").write_text(NESTED.replace("PID", "first"), encoding="utf-8")
    (tmp_path / "b.bpmn").write_text(NESTED.replace("PID", "second"), encoding="utf-8")
    problems = [p for p in analyse_paths(tmp_path).problems if p.code == "duplicate-id"]
    assert len(problems) == 1
    (clash,) = problems
    assert clash.file.endswith("b.bpmn") and clash.element_id == "subprocess1"
    assert "subprocess id 'subprocess1'" in clash.message and "a.bpmn" in clash.message


def test_a_folder_holds_flowable_and_activiti_bpmn20_xml_files_too(tmp_path: Path) -> None:
    """Flowable and Activiti name their models ``*.bpmn20.xml``; a folder of them loads, and
    other XML files beside them are not read as BPMN."""
    sample = Path(__file__).resolve().parents[2] / "workflows" / "or_sign.bpmn"
    (tmp_path / "or_sign.bpmn20.xml").write_text(sample.read_text("utf-8"), encoding="utf-8")
    (tmp_path / "pom.xml").write_text("<project/>", encoding="utf-8")
    assert WorkflowLibrary.load(tmp_path).process_ids() == ["or_sign"]
    empty = tmp_path / "empty"
    empty.mkdir()
    problems = analyse_paths(empty).problems
    assert [p.message for p in problems] == ["no *.bpmn (or *.bpmn20.xml) file in this directory"]
