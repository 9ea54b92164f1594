"""Lint rules of ``engine-bridge validate``: each broken file in lint_cases/ is reported with the
exact element ids and lines, the CLI's exit codes fit CI, and the samples lint clean."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.lint import LINT_CODES, lint_paths, template_variables
from engine_bridge.loader.lint_vars import names_in_expression, start_data_names
from engine_bridge.loader.problems import Problem

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).resolve().parent / "lint_cases"
WORKFLOWS = ROOT / "workflows"


def lint(path: Path) -> list[Problem]:
    _, problems = lint_paths([path], transforms=(translate_dialects,))
    return problems


def found(path: Path) -> set[tuple[str, str | None]]:
    return {(p.code, p.element_id) for p in lint(path)}


def line_of(path: Path, element_id: str) -> int:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.parse(str(path), parser).getroot()
    return int(root.xpath("//*[@id=$i]", i=element_id)[0].sourceline)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "validate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_template_variables_reads_placeholders_like_the_engine() -> None:
    """{var} and {var.key} name a variable; {{ }}, {0} and {x!r} do not."""
    assert template_variables("{a}-{b.c}-{{d}}-{0}-{e!r}-{ f }-{a}") == ["a", "b", "f"]


def test_names_in_expression_keeps_comprehension_variables_local() -> None:
    """Assignments are writes, loads are reads; comprehension and lambda names stay local."""
    written, read = names_in_expression("total = sum(x for x in items) + bonus", script=True)
    assert written == {"total"}
    assert read == {"sum", "items", "bonus"}
    assert names_in_expression("${approved && days > 3}") == (set(), {"approved", "days"})


def test_start_data_line_lists_names_and_skips_comments() -> None:
    """'Start data: a, b (comment), c.' declares a, b, c."""
    text = "A process. Start data: title, signers (list of accounts), archivist. More."
    assert start_data_names(text) == {"title", "signers", "archivist"}


def test_template_unknown_variable_names_each_unknown_variable() -> None:
    """A misspelt variable and an unknown dotted one are reported on their task; declared start
    data, script assignments, 'Form data:' fields and built-ins are known; a countersign's own
    element variable is reported because the countersign todo renders without it."""
    path = CASES / "template_unknown_variable.bpmn"
    problems = [p for p in lint(path) if p.code == "template-unknown-variable"]
    named = sorted((p.element_id, re.findall(r"\{(\w+)\}", p.message)[0]) for p in problems)
    assert named == [("review", "dayz"), ("review", "remark"), ("sign", "approver")]
    assert all(p.severity == "warning" for p in problems)
    assert {p.line for p in problems if p.element_id == "review"} == {line_of(path, "review")}
    sign = next(p for p in problems if p.element_id == "sign")
    assert "element variable" in sign.message and sign.line == line_of(path, "sign")


def test_countersign_without_rule_is_reported_unless_marked() -> None:
    """Parallel countersigns need a completionCondition or completion="all"; an unknown marker
    value is reported; a sequential multi-instance needs neither."""
    path = CASES / "countersign_no_rule.bpmn"
    problems = [p for p in lint(path) if p.code == "countersign-no-rule"]
    assert sorted(p.element_id or "" for p in problems) == ["no_rule", "unknown_marker"]
    assert {p.line for p in problems} == {
        line_of(path, "no_rule"),
        line_of(path, "unknown_marker"),
    }
    assert "'most'" in next(p for p in problems if p.element_id == "unknown_marker").message


def test_implicit_join_only_where_parallel_tokens_meet() -> None:
    """Two branches of one parallel split meeting at a task are an implicit join, also when
    one side went through a parallel join first; a merge of exclusive alternatives is not."""
    path = CASES / "implicit_join.bpmn"
    assert {p for p in found(path) if p[0] == "implicit-join"} == {
        ("implicit-join", "approve"),
        ("implicit-join", "archive"),
    }
    approve = next(p for p in lint(path) if p.element_id == "approve")
    assert "'split'" in approve.message and approve.line == line_of(path, "approve")


def test_implicit_fork_on_tasks_and_events_but_not_gateways() -> None:
    """Two unconditional outgoing flows from a start event or a task are an implicit fork."""
    path = CASES / "implicit_fork.bpmn"
    forks = [p for p in lint(path) if p.code == "implicit-fork"]
    assert sorted(p.element_id or "" for p in forks) == ["start", "submit"]
    submit = next(p for p in forks if p.element_id == "submit")
    assert "(f6, f7)" in submit.message and "SpiffWorkflow refuses" in submit.message


def test_no_path_to_end_covers_endless_loops_and_an_implicit_end_is_a_warning() -> None:
    """A loop without exit is an error on each of its nodes; a task with no outgoing flow ends
    its path as SpiffWorkflow runs it (a warning to draw the end event), so neither it nor
    what leads to it is an error; the gateway that can still take the good path is fine."""
    path = CASES / "no_path_to_end.bpmn"
    problems = [p for p in lint(path) if p.code == "no-path-to-end"]
    assert sorted(p.element_id or "" for p in problems) == ["loop_a", "loop_b"]
    assert all(p.severity == "error" for p in problems)
    (implicit,) = [p for p in lint(path) if p.code == "implicit-end"]
    assert implicit.element_id == "dead_end" and implicit.severity == "warning"
    assert implicit.line == line_of(path, "dead_end")
    assert "no outgoing sequence flow" in implicit.message
    by_id = {p.element_id: p for p in problems}
    assert "loops without an exit" in by_id["loop_a"].message
    assert by_id["loop_b"].line == line_of(path, "loop_b")


def test_a_process_drawn_for_documentation_is_not_flow_checked(tmp_path: Path) -> None:
    """isExecutable="false": nobody starts it, so its loops and dead ends are not reported."""
    text = (CASES / "no_path_to_end.bpmn").read_text(encoding="utf-8")
    path = tmp_path / "drawn.bpmn"
    path.write_text(text.replace('isExecutable="true"', 'isExecutable="false"'), "utf-8")
    codes = {p.code for p in lint(path)}
    assert not codes & {"no-path-to-end", "implicit-end", "unreachable"}


def test_unreachable_task_but_not_its_neighbours_boundary_event() -> None:
    """A task no start event leads to is unreachable; a boundary event rides on its host."""
    path = CASES / "unreachable.bpmn"
    assert {p for p in found(path) if p[0] == "unreachable"} == {("unreachable", "orphan")}


def test_transaction_templates_may_use_only_start_data() -> None:
    """processes.yaml templates are filled at the start: a misspelt name and a variable the
    process writes later are reported with the settings file's line; start data and the
    bridge's own fields are fine."""
    problems = lint(CASES / "transaction_name")
    settings = [p for p in problems if p.file.endswith("processes.yaml")]
    assert sorted((p.line, re.findall(r"\{(\w+)\}", p.message)[0]) for p in settings) == [
        (6, "titel"),
        (7, "slot"),
    ]
    assert {p.element_id for p in settings} == {"booking"}
    assert not [p for p in problems if p.file.endswith(".bpmn")]


def test_every_lint_code_has_a_case() -> None:
    """Each rule in LINT_CODES is exercised by one of the broken files."""
    codes = {p.code for case in CASES.iterdir() for p in lint(case)}
    assert set(LINT_CODES) <= codes


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = cli("--format", "json", *args)
    return result.returncode, json.loads(result.stdout)


def test_cli_warnings_pass_unless_strict() -> None:
    """Warnings alone exit 0; --strict makes them fail; the JSON lists code, id and line."""
    path = CASES / "implicit_join.bpmn"
    code, report = run_json(str(path))
    assert code == 0 and report["ok"] is True
    joins = [p for p in report["problems"] if p["code"] == "implicit-join"]
    assert {(p["element_id"], p["line"], p["severity"]) for p in joins} == {
        ("approve", line_of(path, "approve"), "warning"),
        ("archive", line_of(path, "archive"), "warning"),
    }
    strict = cli("--strict", str(path))
    assert strict.returncode == 1
    assert f"{path}:{line_of(path, 'approve')}: warning:" in strict.stdout


def test_cli_lint_errors_fail_and_text_names_the_element() -> None:
    """A lint error exits 1 and each line reads file:line: severity: message [id] (code)."""
    path = CASES / "no_path_to_end.bpmn"
    result = cli(str(path))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if "[loop_a]" in x)
    assert line.startswith(f"{path}:{line_of(path, 'loop_a')}: error: ")
    assert line.endswith("[loop_a] (no-path-to-end)")


def test_cli_reports_loader_rules_too() -> None:
    """no-handlers and summary-too-long still come from validate, located by element."""
    code, report = run_json(str(CASES / "loader_rules.bpmn"))
    assert code == 1
    assert {(p["code"], p["element_id"]) for p in report["problems"]} >= {
        ("no-handlers", "nobody"),
        ("summary-too-long", "chatty"),
    }


def test_samples_lint_clean_even_with_strict() -> None:
    """Every sample lints with no error and no warning: they are what users copy."""
    analysis, problems = lint_paths([WORKFLOWS], transforms=(translate_dialects,))
    assert not analysis.errors
    assert [str(p) for p in problems] == []


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.bpmn")))
def test_problems_point_at_existing_elements(case: str) -> None:
    """Every lint problem's element id exists in its file, on the reported line."""
    path = CASES / case
    for problem in lint(path):
        assert problem.element_id is not None
        assert problem.line == line_of(path, problem.element_id)


def test_message_data_and_message_variables_are_known_to_templates(tmp_path: Path) -> None:
    """'Message data:' on the catching event and a spiffworkflow:messageVariable declare what
    a message brings; a name neither declares is still reported."""
    path = tmp_path / "paid.bpmn"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" '
        'targetNamespace="http://example.org/lint">'
        '<bpmn:message id="m_paid" name="paid"/><bpmn:message id="m_form" name="form"/>'
        '<bpmn:process id="paid" isExecutable="true">'
        '<bpmn:startEvent id="start"/>'
        '<bpmn:intermediateCatchEvent id="wait_paid">'
        "<bpmn:documentation>Message data: receipt (number), amount.</bpmn:documentation>"
        '<bpmn:messageEventDefinition messageRef="m_paid"/></bpmn:intermediateCatchEvent>'
        '<bpmn:intermediateCatchEvent id="wait_form">'
        '<bpmn:messageEventDefinition messageRef="m_form"><bpmn:extensionElements>'
        "<spiffworkflow:messageVariable>form_data</spiffworkflow:messageVariable>"
        "</bpmn:extensionElements></bpmn:messageEventDefinition></bpmn:intermediateCatchEvent>"
        '<bpmn:userTask id="collect"><bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="handlers" value="\'C001\'"/>'
        '<spiffworkflow:property name="taskName" value="{receipt} {amount} {form_data} {nope}"/>'
        "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>"
        '<bpmn:endEvent id="end"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_paid"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="wait_paid" targetRef="wait_form"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="wait_form" targetRef="collect"/>'
        '<bpmn:sequenceFlow id="f4" sourceRef="collect" targetRef="end"/>'
        "</bpmn:process></bpmn:definitions>",
        encoding="utf-8",
    )
    problems = [p for p in lint(path) if p.code == "template-unknown-variable"]
    assert [re.findall(r"\{(\w+)\}", p.message)[0] for p in problems] == ["nope"]
