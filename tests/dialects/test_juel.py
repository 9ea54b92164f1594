"""JUEL → Python: the translation is exact for the subset and refuses everything else."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

from engine_bridge.loader.juel import (
    JUEL_HELPERS,
    JuelError,
    collect_beans,
    has_juel,
    juel_bool,
    juel_empty,
    juel_str,
    juel_to_python,
    split_juel_list,
)


def evaluate(python: str, data: dict[str, Any], beans: dict[str, Any] | None = None) -> Any:
    """Evaluate translated Python the way SpiffWorkflow does, with the JUEL helpers."""

    def resolve_bean(name: str, *args: Any) -> Any:
        return (beans or {})[name](*args)

    env = TaskDataEnvironment({**JUEL_HELPERS, "resolve_bean": resolve_bean, "len": len})
    return env.evaluate(python, dict(data))


def run(text: str, beans: dict[str, Any] | None = None, **data: Any) -> Any:
    return evaluate(juel_to_python(text), data, beans)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${deptleaderapprove=='true'}", "deptleaderapprove == 'true'"),
        ("#{!approved}", "not juel_bool(approved)"),
        ("${applicant}", "applicant"),
        ("${a.b}", "a['b']"),
        ("${a['b'][0]}", "a['b'][0]"),
        ("${x ? 'yes' : 'no'}", "'yes' if juel_bool(x) else 'no'"),
        ("${n div 2}", "n / 2"),
        ("${n mod 2}", "n % 2"),
        ("${empty list}", "juel_empty(list)"),
        ("${v == null}", "v == None"),
        ("${svc.find(id)}", "resolve_bean('svc.find', id)"),
        ("plain text", "'plain text'"),
    ],
)
def test_translation_has_the_documented_python_form(text: str, expected: str) -> None:
    """Each construct maps onto the Python spelled in the module's table."""
    assert juel_to_python(text) == expected


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("${a == 1 && b != 2}", {"a": 1, "b": 3}, True),
        ("${a eq 1 and b ne 3}", {"a": 1, "b": 3}, False),
        ("${a lt 2 || a gt 5}", {"a": 6}, True),
        ("${a le 2 or a ge 5}", {"a": 3}, False),
        ("${a < b}", {"a": 1, "b": 2}, True),
        ("${a >= b}", {"a": 1, "b": 2}, False),
        ("${not a}", {"a": False}, True),
        ("${!(a && b)}", {"a": True, "b": False}, True),
        ("${1 + 2 * 3}", {}, 7),
        ("${(1 + 2) * 3}", {}, 9),
        ("${10 - 2 - 3}", {}, 5),
        ("${7 / 2}", {}, 3.5),
        ("${7 % 4}", {}, 3),
        ("${-a + 1}", {"a": 4}, -3),
        ("${2e1}", {}, 20.0),
        ("${.5 + 1.5}", {}, 2.0),
        ("${007}", {}, 7),
        ("${a ? b ? 1 : 2 : 3}", {"a": True, "b": False}, 2),
        ("${true and not false}", {}, True),
        ("${null}", {}, None),
        ("${\"dq\" == 'dq'}", {}, True),
        ("${'it\\'s'}", {}, "it's"),
        ("${1 < 2 == true}", {}, True),
        ("${form.days > 3}", {"form": {"days": 5}}, True),
        ("${form['days']}", {"form": {"days": 5}}, 5),
        ("${users[1]}", {"users": ["a", "b"]}, "b"),
        ("${users.size() == 2}", {"users": ["a", "b"]}, True),
        ("${name.length()}", {"name": "abc"}, 3),
        ("${users.isEmpty()}", {"users": []}, True),
        ("${users.contains('a')}", {"users": ["a"]}, True),
        ("${m.containsKey('k')}", {"m": {"k": 1}}, True),
        ("${s.equals('x')}", {"s": "x"}, True),
        (
            "${nrOfCompletedInstances/nrOfInstances >= 0.6}",
            {"nrOfCompletedInstances": 2, "nrOfInstances": 3},
            True,
        ),
        (
            "${nrOfCompletedInstances/nrOfInstances >= 0.6}",
            {"nrOfCompletedInstances": 1, "nrOfInstances": 3},
            False,
        ),
        ("${审批人}", {"审批人": "T001"}, "T001"),
    ],
)
def test_translated_expression_evaluates_like_juel(
    text: str, data: dict[str, Any], expected: Any
) -> None:
    """Operators, precedence, literals and property access keep their JUEL meaning."""
    assert run(text, **data) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ([], True), ({}, True), ("x", False), ([0], False), (0, False)],
)
def test_empty_is_true_for_null_empty_string_and_empty_collections(
    value: Any, expected: bool
) -> None:
    """``empty`` follows JUEL: zero is not empty, an empty list is."""
    assert juel_empty(value) is expected
    assert run("${empty v}", v=value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (True, True),
        (False, False),
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("false", False),
        ("", False),
        ("yes", False),
        ("1", False),
        (" true", False),
    ],
)
def test_bool_coercion_follows_el(value: Any, expected: bool) -> None:
    """EL's coercion to Boolean: null and "" are false, a string is Boolean.valueOf."""
    assert juel_bool(value) is expected


@pytest.mark.parametrize("value", [0, 1, 2.5, [], ["x"], {}, {"k": 1}])
def test_bool_coercion_refuses_what_el_cannot_coerce(value: Any) -> None:
    """EL has no coercion from a number or a collection to Boolean: no Python truthiness."""
    with pytest.raises(TypeError, match="JUEL needs a boolean here, not the "):
        juel_bool(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${!approved}", "not juel_bool(approved)"),
        ("${a && b}", "juel_bool(a) and juel_bool(b)"),
        ("${a or b}", "juel_bool(a) or juel_bool(b)"),
        ("${a ? b : c}", "b if juel_bool(a) else c"),
        ("${not (a)}", "not juel_bool(a)"),
        # Values already boolean are left as they are.
        ("${a == 1 && !(b > 2)}", "(a == 1) and (not ((b > 2)))"),
        ("${!empty a || a.contains(1)}", "(not juel_empty(a)) or (1 in a)"),
        ("${!a.equals(b) && true}", "(not (a == b)) and True"),
        ("${!(a && b)}", "not ((juel_bool(a) and juel_bool(b)))"),
        # Where no boolean is required, values keep their type.
        ("${approved}", "approved"),
        ("${a + 1}", "a + 1"),
        ("${x ? a : b}", "a if juel_bool(x) else b"),
        ("${f(a && b)}", "resolve_bean('f', (juel_bool(a) and juel_bool(b)))"),
    ],
)
def test_boolean_positions_coerce_with_juel_bool(text: str, expected: str) -> None:
    """Operands of ``!``, ``&&``, ``||`` and a ternary's condition go through ``juel_bool``."""
    assert juel_to_python(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${approved}", "juel_bool(approved)"),
        ("#{!approved}", "not juel_bool(approved)"),
        ("${a == 'true'}", "a == 'true'"),
        ("${empty a}", "juel_empty(a)"),
        ("${x ? a : false}", "juel_bool(a if juel_bool(x) else False)"),
        ("${svc.ok(id)}", "juel_bool(resolve_bean('svc.ok', id))"),
        ("${(approved)}", "juel_bool(approved)"),
        ("${true}", "True"),
        (" ${a} ", "juel_bool(a)"),
        ("is ${a}", "juel_bool('is ' + juel_str(a))"),
    ],
)
def test_a_condition_is_coerced_as_a_whole(text: str, expected: str) -> None:
    """A condition's value is a bool; the translation adds nothing where it already is one."""
    assert juel_to_python(text, condition=True) == expected


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("${!approved}", {"approved": "false"}, True),
        ("${!approved}", {"approved": "TRUE"}, False),
        ("${!approved}", {"approved": None}, True),
        ("${a && b}", {"a": "true", "b": "false"}, False),
        ("${a && b}", {"a": "true", "b": True}, True),
        ("${a || b}", {"a": "false", "b": ""}, False),
        ("${a || b}", {"a": None, "b": "True"}, True),
        ("${a ? 'yes' : 'no'}", {"a": "false"}, "no"),
        ("${a ? 'yes' : 'no'}", {"a": "true"}, "yes"),
        ("${a ? b : c}", {"a": True, "b": 5, "c": 6}, 5),  # branches keep their type
    ],
)
def test_strings_and_null_in_boolean_positions_follow_el(
    text: str, data: dict[str, Any], expected: Any
) -> None:
    """The string "false" (an enum form field's value) is false, not a truthy string."""
    assert run(text, **data) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), ("true", True), ("TRUE", True), (None, False), ("", False), (False, False)],
)
def test_condition_of_a_bare_variable_is_its_el_boolean(value: Any, expected: bool) -> None:
    """``${approved}`` as a condition: before, any non-empty string (even "false") was true."""
    assert evaluate(juel_to_python("${approved}", condition=True), {"approved": value}) is expected


def test_a_number_where_a_boolean_is_required_is_an_error_naming_its_type() -> None:
    """EL refuses to coerce a number to Boolean; so does the translation, clearly."""
    with pytest.raises(Exception, match="JUEL needs a boolean here, not the int 0"):
        run("${!count}", count=0)
    assert run("${count != 0}", count=0) is False
    assert run("${count + 1}", count=0) == 1  # not a boolean position: untouched


def test_composite_text_concatenates_with_juel_string_coercion() -> None:
    """Text around expressions stays; null renders as "" and booleans in lower case."""
    python = juel_to_python("Dear ${name}, approved=${ok} ${missing}!")
    assert (
        evaluate(python, {"name": "Li", "ok": True, "missing": None}) == "Dear Li, approved=true !"
    )
    assert juel_str(3) == "3"


def test_escaped_dollar_is_literal_text() -> None:
    """``\\${x}`` is not an expression in JUEL."""
    assert evaluate(juel_to_python("cost \\${x}"), {}) == "cost ${x}"


def test_bean_calls_go_through_resolve_bean_and_are_collected() -> None:
    """A method call on a bean becomes ``resolve_bean(name, *args)``; names are listed once."""
    text = "#{svc.findEditor(id) == svc.findEditor(other) || check(id, 'a,b')}"
    assert collect_beans(text) == ["svc.findEditor", "check"]
    beans = {"svc.findEditor": lambda i: f"E{i}", "check": lambda i, s: s == "a,b"}
    assert run(text, beans, id=1, other=2) is True


def test_nested_bean_path_keeps_every_segment_in_the_name() -> None:
    assert collect_beans("${a.b.c(1)}") == ["a.b.c"]


@pytest.mark.parametrize(
    "text",
    [
        "${''.__class__}",
        "${__import__('os')}",
        "${a.__class__.__base__}",
        "${a['__class__']}",  # a string key is data, not an attribute: see below
        "${_private}",
        "${x._y}",
    ],
)
def test_hostile_input_never_yields_an_attribute_access(text: str) -> None:
    """Dunder and underscore names are refused; a string key can only ever index a dict."""
    try:
        python = juel_to_python(text)
    except JuelError:
        return
    tree = ast.parse(python, mode="eval")
    assert not any(isinstance(node, ast.Attribute) for node in ast.walk(tree))
    assert not any(isinstance(n, ast.Name) and n.id.startswith("_") for n in ast.walk(tree))


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("${''.__class__}", "names starting with '_' are refused", 5),
        ("${__import__}", "names starting with '_' are refused", 2),
        ("${import}", "'import' cannot be used as a name", 2),
        ("${lambda}", "'lambda' cannot be used as a name", 2),
        ("${juel_bool}", "'juel_bool' cannot be used as a name", 2),
        ("${!juel_str}", "'juel_str' cannot be used as a name", 3),
        ("${$x}", "'$' in a name is not supported", 2),
        ("${a b}", "unexpected token, found 'b'", 4),
        ("${a +}", "expected a value, found end of expression", 5),
        ("${(a}", "expected ')', found end of expression", 4),
        ("${a ? b}", "expected ':', found end of expression", 7),
        ("${a", "expression is not closed with '}'", 0),
        ("${'abc}", "expression is not closed with '}'", 0),
        ("${}", "empty expression", 2),
        ("${a; b}", "unexpected character ';'", 3),
        ("${a = 1}", "unexpected character '='", 4),
        ("${x instanceof y}", "unexpected token, found 'instanceof'", 4),
        ("${(a).m()}", "method 'm' on a computed value is not supported", 6),
        ("${f(x)(y)}", "only names can be called", 6),
        ("${fn:len(x)}", "unexpected token, found ':'", 4),
        ("${{1, 2}}", "'{' inside an expression is not supported", 2),
        ("${a[1}", "expected ']', found end of expression", 5),
        ("${'x' 'y'}", "unexpected token, found 'y'", 6),
    ],
)
def test_outside_the_subset_is_an_error_with_position(
    text: str, reason: str, position: int
) -> None:
    """Every refusal says why and where, so the message can point at the character."""
    with pytest.raises(JuelError) as caught:
        juel_to_python(text)
    assert caught.value.reason.startswith(reason)
    assert caught.value.position == position
    assert caught.value.text == text


def test_juel_error_is_an_input_error_that_cannot_be_retried() -> None:
    from engine_bridge.errors import InputError

    with pytest.raises(InputError) as caught:
        juel_to_python("${a +}")
    assert caught.value.retryable is False


def test_every_translation_is_valid_python() -> None:
    """Output is parseable Python even for deep nesting and awkward literals."""
    samples = [
        '${a ? (b ? \'x\' : "y\\"z") : empty c[d.e]}',
        "${((((a))))}",
        "${-(-a) - -1}",
        "x ${a} y ${b ? 1 : 2} z",
        "${'}'}",
    ]
    for text in samples:
        ast.parse(juel_to_python(text), mode="eval")
    assert evaluate(juel_to_python("${'}'}"), {}) == "}"


def test_split_list_keeps_commas_inside_expressions() -> None:
    """Candidate lists split only at top-level commas; offsets point at each item."""
    text = 'T001, ${x}, #{svc.find(a, "b,}")},,T002'
    assert split_juel_list(text) == [
        ("T001", 0),
        ("${x}", 6),
        ('#{svc.find(a, "b,}")}', 12),
        ("T002", 35),
    ]


def test_has_juel_detects_both_delimiters() -> None:
    assert has_juel("${a}") and has_juel("#{a}")
    assert not has_juel("a > 1") and not has_juel(None)
