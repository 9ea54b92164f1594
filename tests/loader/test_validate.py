"""validate_paths: every problem, located, never an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from bpmn_factory import CORPUS, WriteBpmn, chain, definitions, process, user_task

from engine_bridge.errors import BpmnError
from engine_bridge.loader import Problem, WorkflowLibrary, validate_paths
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS


def _codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in problems]


def _only(problems: list[Problem], code: str) -> Problem:
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def _line_of(text: str, needle: str) -> int:
    lines = text.splitlines()
    return 1 + lines.index(next(x for x in lines if needle in x))


def test_a_good_file_has_no_problems(write_bpmn: WriteBpmn) -> None:
    text = definitions(process("p", chain(("a", user_task("a", {"handlers": "['T1', 'T2']"})))))
    assert validate_paths(write_bpmn("good.bpmn", text)) == []


def test_user_task_without_handlers(write_bpmn: WriteBpmn) -> None:
    text = definitions(process("p", chain(("a", user_task("a", name="Approve")))))
    path = write_bpmn("p.bpmn", text)
    problem = _only(validate_paths(path), "no-handlers")
    assert (problem.file, problem.element_id, problem.line) == (
        str(path),
        "a",
        _line_of(text, 'id="a"'),
    )
    assert "Approve" in problem.message


def test_manual_task_without_handlers_is_reported_too(write_bpmn: WriteBpmn) -> None:
    text = definitions(process("p", chain(("m", '\n    <bpmn:manualTask id="m"/>'))))
    assert _codes(validate_paths(write_bpmn("m.bpmn", text))) == ["no-handlers"]


@pytest.mark.parametrize(
    ("prop", "source", "fragment"),
    [
        ("handlers", "approver ==", "not valid Python"),
        ("handlers", "__import__('os').getlogin()", "refused"),
        ("handlingGroup", "().__class__", "refused"),
        ("handlers", "open('/etc/passwd').read()", "open"),
    ],
)
def test_bad_handler_expressions(
    write_bpmn: WriteBpmn, prop: str, source: str, fragment: str
) -> None:
    text = definitions(
        process("p", chain(("a", user_task("a", {prop: source.replace("'", "&apos;")}))))
    )
    problem = _only(validate_paths(write_bpmn("p.bpmn", text)), "bad-expression")
    assert problem.element_id == "a"
    assert fragment in problem.message
    assert prop in problem.message


def test_bad_condition_expression_is_located_on_its_flow(write_bpmn: WriteBpmn) -> None:
    body = (
        '\n    <bpmn:startEvent id="s"/>'
        '\n    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="g"/>'
        '\n    <bpmn:exclusiveGateway id="g" default="f2"/>'
        '\n    <bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="a">'
        "\n      <bpmn:conditionExpression>${days &gt; 3}</bpmn:conditionExpression>"
        "\n    </bpmn:sequenceFlow>"
        '\n    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="a"/>'
        + user_task("a", {"handlers": "'T1'"})
    )
    text = definitions(process("p", body))
    problem = _only(validate_paths(write_bpmn("c.bpmn", text)), "bad-expression")
    assert problem.element_id == "f1"
    assert problem.line == _line_of(text, "conditionExpression")


def test_hostile_script_task_is_reported(write_bpmn: WriteBpmn) -> None:
    script = '\n    <bpmn:scriptTask id="sc"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>'
    text = definitions(
        process("p", chain(("sc", script), ("a", user_task("a", {"handlers": "'T'"}))))
    )
    problem = _only(validate_paths(write_bpmn("s.bpmn", text)), "bad-expression")
    assert problem.element_id == "sc"


@pytest.mark.parametrize(
    ("loop", "missing"),
    [
        (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopCardinality>3</bpmn:loopCardinality>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            ["input collection", "element variable"],
        ),
        (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopDataInputRef>signers</bpmn:loopDataInputRef>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            ["element variable"],
        ),
    ],
)
def test_incomplete_multi_instance(write_bpmn: WriteBpmn, loop: str, missing: list[str]) -> None:
    text = definitions(process("p", chain(("mi", user_task("mi", {"handlers": "x"}, extra=loop)))))
    problem = _only(validate_paths(write_bpmn("mi.bpmn", text)), "mi-incomplete")
    assert problem.element_id == "mi"
    for word in missing:
        assert word in problem.message
    if len(missing) == 1:
        assert "input collection" not in problem.message


def test_call_activity_to_a_missing_process(write_bpmn: WriteBpmn) -> None:
    call = '\n    <bpmn:callActivity id="c" calledElement="ghost"/>'
    text = definitions(process("p", chain(("c", call))))
    problem = _only(validate_paths(write_bpmn("c.bpmn", text)), "unknown-process")
    assert problem.element_id == "c"
    assert "ghost" in problem.message


def test_an_event_naming_an_undeclared_message_names_the_event(write_bpmn: WriteBpmn) -> None:
    """SpiffWorkflow's parser failed on it with an internal TypeError that named nothing."""
    wait = (
        '\n    <bpmn:intermediateCatchEvent id="wait">'
        '<bpmn:messageEventDefinition id="med" messageRef="ghost"/></bpmn:intermediateCatchEvent>'
    )
    text = definitions(process("p", chain(("wait", wait))))
    problem = _only(validate_paths(write_bpmn("m.bpmn", text)), "unknown-reference")
    assert problem.element_id == "wait" and problem.line == _line_of(text, "ghost")
    assert "messageRef='ghost' names no message of this file" in problem.message
    declared = text.replace("<bpmn:process", '<bpmn:message id="ghost" name="g"/><bpmn:process')
    assert "unknown-reference" not in _codes(validate_paths(write_bpmn("ok.bpmn", declared)))
    drawn = definitions(process("p", chain(("wait", wait)), executable=False))
    assert "unknown-reference" not in _codes(validate_paths(write_bpmn("drawn.bpmn", drawn)))


@pytest.mark.parametrize(
    ("definition", "words"),
    [
        ("", "has no event"),
        (
            "<bpmn:conditionalEventDefinition><bpmn:condition>go</bpmn:condition>"
            "</bpmn:conditionalEventDefinition>",
            "started by a condition",
        ),
    ],
    ids=["no-event", "conditional"],
)
def test_an_event_subprocess_start_that_cannot_start_it_as_drawn_is_refused(
    write_bpmn: WriteBpmn, definition: str, words: str
) -> None:
    event_subprocess = (
        '\n    <bpmn:subProcess id="es" triggeredByEvent="true">'
        f'<bpmn:startEvent id="es_start">{definition}</bpmn:startEvent>'
        '<bpmn:endEvent id="es_end"/>'
        '<bpmn:sequenceFlow id="esf" sourceRef="es_start" targetRef="es_end"/></bpmn:subProcess>'
    )
    text = definitions(
        process("p", chain(("a", user_task("a", {"handlers": "'T1'"}))) + event_subprocess)
    )
    problem = _only(validate_paths(write_bpmn("es.bpmn", text)), "unsupported-start-event")
    assert problem.element_id == "es_start" and words in problem.message


def test_receive_task_without_a_message_is_refused_unless_its_pool_never_runs(
    write_bpmn: WriteBpmn,
) -> None:
    receive = '\n    <bpmn:receiveTask id="wait"/>'
    text = definitions(process("p", chain(("wait", receive))))
    problem = _only(validate_paths(write_bpmn("r.bpmn", text)), "receive-without-message")
    assert problem.element_id == "wait"
    drawn = definitions(process("p", chain(("wait", receive)), executable=False))
    assert "receive-without-message" not in _codes(validate_paths(write_bpmn("d.bpmn", drawn)))


def test_summary_over_five_pairs(write_bpmn: WriteBpmn) -> None:
    summary = ";".join(f"l{i}|{{v{i}}}" for i in range(6))
    text = definitions(
        process("p", chain(("a", user_task("a", {"handlers": "'T'", "taskSummary": summary}))))
    )
    assert _codes(validate_paths(write_bpmn("s.bpmn", text))) == ["summary-too-long"]


def test_five_pairs_are_fine(write_bpmn: WriteBpmn) -> None:
    summary = ";".join(f"l{i}|{{v{i}}}" for i in range(5))
    text = definitions(
        process("p", chain(("a", user_task("a", {"handlers": "'T'", "taskSummary": summary}))))
    )
    assert validate_paths(write_bpmn("s.bpmn", text)) == []


def test_duplicate_ids_from_the_corpus() -> None:
    problems = validate_paths(CORPUS / "bpmn-js__duplicate-ids.bpmn")
    problem = _only(problems, "duplicate-id")
    assert (problem.element_id, problem.line) == ("test", 9)


def test_duplicate_process_id_across_files(write_bpmn: WriteBpmn, tmp_path: Path) -> None:
    text = definitions(process("p", chain(("a", user_task("a", {"handlers": "'T'"})))))
    write_bpmn("one.bpmn", text)
    write_bpmn("two.bpmn", text)
    problem = _only(validate_paths(tmp_path), "duplicate-id")
    assert problem.file.endswith("two.bpmn") and "one.bpmn" in problem.message


def test_spiff_parse_errors_are_located(write_bpmn: WriteBpmn) -> None:
    """SpiffWorkflow's ValidationException becomes a Problem with the element id and line."""
    text = definitions(process("p", '\n    <bpmn:userTask id="a"/>'))  # no start event
    problem = _only(validate_paths(write_bpmn("nostart.bpmn", text)), "bpmn-invalid")
    assert problem.element_id == "p"
    assert problem.line == _line_of(text, 'id="p"')
    assert "start event" in problem.message.lower()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("camunda-modeler__empty.bpmn", "xml-empty"),
        ("camunda-modeler__broken.bpmn", "xml-malformed"),
        ("spiff-arena__invoice.bpmn", "xml-dtd-forbidden"),
        ("bpmn-js__missing-namespace.bpmn", "not-bpmn"),
    ],
)
def test_unusable_corpus_files(name: str, code: str) -> None:
    assert _codes(validate_paths(CORPUS / name)) == [code]


def test_schema_findings_are_warnings() -> None:
    """The illegal-whitespace file breaks the XSD (no targetNamespace) but nothing that runs."""
    problems = validate_paths(CORPUS / "camunda-modeler__illegal-whitespace.bpmn")
    assert _codes(problems) == ["bpmn-schema"]
    assert problems[0].severity == "warning"


def test_whole_corpus_never_raises_and_every_problem_is_located() -> None:
    for path in sorted(CORPUS.glob("*.bpmn")):
        for problem in validate_paths(path):
            assert problem.file == str(path)
            assert problem.code and problem.message


def test_missing_path_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    assert _codes(validate_paths(tmp_path / "nope.bpmn")) == ["file-missing"]


def test_a_plain_task_needs_no_handlers_because_the_engine_passes_through_it(
    tmp_path: Path,
) -> None:
    """Only user and manual tasks become todos; a plain ``bpmn:task`` is not asked for handlers."""
    path = tmp_path / "plain.bpmn"
    body = chain(("note", '\n    <bpmn:task id="note" name="Note it"/>'))
    path.write_text(definitions(process("plain", body)), encoding="utf-8")
    problems = [p for p in validate_paths([path]) if p.severity == "error"]
    assert problems == []


def _cycle_timer(value: str, *, definition_id: str = "") -> str:
    """A user task with a non-interrupting boundary timer whose timeCycle is ``value``."""
    id_attr = f' id="{definition_id}"' if definition_id else ""
    boundary = (
        '\n    <bpmn:boundaryEvent id="remind" attachedToRef="a" cancelActivity="false">'
        f"<bpmn:timerEventDefinition{id_attr}>"
        f"\n      <bpmn:timeCycle>{value}</bpmn:timeCycle>"
        "\n    </bpmn:timerEventDefinition></bpmn:boundaryEvent>"
    )
    task = user_task("a", {"handlers": "'T1'"})
    return definitions(process("p", chain(("a", task + boundary))))


@pytest.mark.parametrize(
    "value",
    [
        "&quot;R/PT0S&quot;",
        "'R3/PT0.5S'",
        "&quot;R/P0D&quot;",
        "&quot;R2/2031-03-01T08:00:00Z/PT0S&quot;",
    ],
)
def test_a_literal_cycle_shorter_than_a_second_is_refused(
    write_bpmn: WriteBpmn, value: str
) -> None:
    """A cycle that repeats every 0 s makes the engine fire it for ever; it is refused on the
    event that carries it, not on its timerEventDefinition's own id."""
    text = _cycle_timer(value, definition_id="TimerEventDefinition_1")
    problem = _only(validate_paths(write_bpmn("c.bpmn", text)), "timer-cycle-too-short")
    assert (problem.element_id, problem.line) == ("remind", _line_of(text, "timeCycle"))
    assert problem.severity == "error"
    assert "at least 1 second" in problem.message and "R" in problem.message


def test_an_unquoted_iso_cycle_is_checked_once_translated(write_bpmn: WriteBpmn) -> None:
    """Modellers write ``R/PT0S`` bare; loading quotes it (vendor translation), then checks."""
    path = write_bpmn("c.bpmn", _cycle_timer("R/PT0S"))
    problems = validate_paths(path, transforms=DEFAULT_TRANSFORMS)
    assert _only(problems, "timer-cycle-too-short").element_id == "remind"


@pytest.mark.parametrize(
    "value", ["&quot;R/PT1S&quot;", "&quot;R3/PT1H&quot;", "interval", "&quot;not a cycle&quot;"]
)
def test_a_cycle_of_a_second_or_more_or_not_a_literal_is_left_alone(
    write_bpmn: WriteBpmn, value: str
) -> None:
    """A second is enough; an expression over task data is checked when it runs."""
    problems = validate_paths(write_bpmn("c.bpmn", _cycle_timer(value)))
    assert "timer-cycle-too-short" not in _codes(problems)


def test_loading_refuses_a_too_short_cycle(write_bpmn: WriteBpmn) -> None:
    with pytest.raises(BpmnError, match="timer-cycle-too-short"):
        WorkflowLibrary.load(write_bpmn("c.bpmn", _cycle_timer("&quot;R/PT0S&quot;")))
