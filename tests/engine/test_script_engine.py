"""The restricted script engine: ordinary BPMN expressions work, escapes are refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from SpiffWorkflow import TaskState
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.spiff.parser import SpiffBpmnParser

from engine_bridge.engine import script_engine
from engine_bridge.engine.script_engine import (
    RANGE_LIMIT,
    RestrictedScriptEngine,
    check_expression,
    check_script,
    evaluate_expression,
    render_template,
)
from engine_bridge.errors import ScriptSecurityError

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def _workflow(body: str, engine: RestrictedScriptEngine, data: dict[str, Any]) -> BpmnWorkflow:
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="t">
  <bpmn:process id="p" isExecutable="true">{body}</bpmn:process>
</bpmn:definitions>"""
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(xml.encode(), filename="p.bpmn")
    wf = BpmnWorkflow(parser.get_spec("p"), parser.get_subprocess_specs("p"), script_engine=engine)
    wf.task_tree.data.update(data)
    return wf


def _gateway_body(condition: str) -> str:
    return f"""
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="g"/>
    <bpmn:exclusiveGateway id="g" default="f2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="yes">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="no"/>
    <bpmn:userTask id="yes"/>
    <bpmn:userTask id="no"/>"""


def _ready(wf: BpmnWorkflow) -> list[str]:
    return sorted(t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.READY, manual=True))


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        ("amount &gt; 1000", {"amount": 1500}, ["yes"]),
        ("amount &gt; 1000", {"amount": 10}, ["no"]),
        ("decision == 'reject'", {"decision": "reject"}, ["yes"]),
        (
            "len([d for d in decisions.values() if d == 'approve']) &gt;= 2",
            {"decisions": {"a": "approve", "b": "approve", "c": "reject"}},
            ["yes"],
        ),
        ("x.lower() == 'abc'", {"x": "ABC"}, ["yes"]),
    ],
)
def test_gateway_conditions_over_task_data_choose_the_path(
    condition: str, data: dict[str, Any], expected: list[str]
) -> None:
    """Ordinary conditions evaluate under the restricted engine inside a real workflow."""
    wf = _workflow(_gateway_body(condition), RestrictedScriptEngine(), data)
    wf.do_engine_steps()
    assert _ready(wf) == expected


@pytest.mark.parametrize(
    ("condition", "refused"),
    [
        ("__import__('os').getpid() &gt; 0", "__import__"),
        ("open('/etc/hostname').read()", "open"),
        ("().__class__.__base__.__subclasses__()", "__class__"),
        ("eval('1')", "eval"),
        ("exec('x = 1')", "exec"),
        ("'{0.__class__}'.format(1)", "format"),
        ("[f for f in [open]][0]('/etc/hostname')", "open"),
    ],
)
def test_escapes_in_a_gateway_condition_raise_script_security_error(
    condition: str, refused: str
) -> None:
    """A hostile condition is refused with ScriptSecurityError quoting the expression."""
    wf = _workflow(_gateway_body(condition), RestrictedScriptEngine(), {})
    with pytest.raises(ScriptSecurityError) as info:
        wf.do_engine_steps()
    message = str(info.value)
    assert refused in message
    assert "was refused" in message
    unescaped = condition.replace("&gt;", ">")
    assert repr(unescaped) in message


def test_missing_variable_keeps_spiffs_task_exception_path() -> None:
    """A NameError is a task error (WorkflowTaskException), not a security refusal."""
    wf = _workflow(_gateway_body("amount &gt; 1000"), RestrictedScriptEngine(), {})
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert not isinstance(info.value, ScriptSecurityError)
    assert "amount" in str(info.value)


def test_script_task_assigns_into_task_data() -> None:
    """A scriptTask's assignments become task data; helpers and guards do not leak into it."""
    body = """
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="calc"/>
    <bpmn:scriptTask id="calc"><bpmn:script>total = sum(items)
count = 0
for name, n in pairs:
    count += n
upper = [x.upper() for x in names]
</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="calc" targetRef="u"/>
    <bpmn:userTask id="u"/>"""
    data = {"items": [1, 2, 3], "pairs": [["a", 2], ["b", 5]], "names": ["x", "y"]}
    wf = _workflow(body, RestrictedScriptEngine(), data)
    wf.do_engine_steps()
    task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
    assert task.data["total"] == 6
    assert task.data["count"] == 7
    assert task.data["upper"] == ["X", "Y"]
    assert not [k for k in task.data if k.startswith("_")]


def test_script_pre_script_importing_os_is_refused() -> None:
    """An import statement in a spiffworkflow preScript is refused."""
    body = """
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="u"/>
    <bpmn:userTask id="u"><bpmn:extensionElements>
      <spiffworkflow:preScript>import os
x = os.getpid()</spiffworkflow:preScript>
    </bpmn:extensionElements></bpmn:userTask>"""
    wf = _workflow(body, RestrictedScriptEngine(), {})
    with pytest.raises(ScriptSecurityError, match="import"):
        wf.do_engine_steps()


def test_task_data_cannot_replace_the_guards() -> None:
    """Data named like a guard does not disable it: the dunder escape is still refused."""
    with pytest.raises(ScriptSecurityError):
        evaluate_expression("x.format('{0}')", {"x": "a", "_getattr_": "oops"})


def test_evaluate_expression_lets_task_data_use_builtin_names() -> None:
    """Task data may use names like ``type`` for its own values."""
    assert evaluate_expression("type == 'sick'", {"type": "sick"}) is True


def test_evaluate_expression_extra_names_are_visible_and_data_wins() -> None:
    """``extra`` adds names; task data overrides them."""
    assert evaluate_expression("initiator", {}, extra={"initiator": "2023001"}) == "2023001"
    assert evaluate_expression("initiator", {"initiator": "X"}, extra={"initiator": "Y"}) == "X"


def test_evaluate_expression_missing_variable_raises_name_error() -> None:
    """Outside a workflow, a missing variable is a plain NameError for the caller to report."""
    with pytest.raises(NameError):
        evaluate_expression("nobody_defined_this", {})


def test_range_is_bounded() -> None:
    """A huge range cannot be built; a modest one works."""
    assert evaluate_expression("sum(range(10))", {}) == 45
    with pytest.raises(ValueError, match="limit"):
        evaluate_expression(f"sum(range({RANGE_LIMIT * 10}))", {})


def test_check_expression_separates_syntax_from_security() -> None:
    """Invalid Python is a SyntaxError; valid but refused Python is ScriptSecurityError."""
    check_expression("a > 1 and b in ['x', 'y']")
    with pytest.raises(SyntaxError):
        check_expression("a >")
    with pytest.raises(ScriptSecurityError):
        check_expression("a.__dict__")
    with pytest.raises(ScriptSecurityError):
        check_script("import subprocess")
    check_script("y = x * 2")


def test_unknown_service_operator_is_a_clear_task_error() -> None:
    """A service task naming an unregistered operator fails naming it and the known ones."""
    body = """
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="svc"/>
    <bpmn:serviceTask id="svc"><bpmn:extensionElements>
      <spiffworkflow:serviceTaskOperator id="lookup_dean" resultVariable="dean">
        <spiffworkflow:parameters>
          <spiffworkflow:parameter id="dept" type="str" value="dept"/>
        </spiffworkflow:parameters>
      </spiffworkflow:serviceTaskOperator>
    </bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="f1" sourceRef="svc" targetRef="u"/>
    <bpmn:userTask id="u"/>"""
    wf = _workflow(body, RestrictedScriptEngine(services={"other": lambda p: None}), {})
    wf.task_tree.data["dept"] = "cs"
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert "lookup_dean" in str(info.value)
    assert "other" in str(info.value)


def test_registered_service_receives_evaluated_params_and_result_becomes_data() -> None:
    """A registered operator gets {param: value}; its result lands in the result variable."""
    body = """
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="svc"/>
    <bpmn:serviceTask id="svc"><bpmn:extensionElements>
      <spiffworkflow:serviceTaskOperator id="lookup_dean" resultVariable="dean">
        <spiffworkflow:parameters>
          <spiffworkflow:parameter id="dept" type="str" value="dept.upper()"/>
        </spiffworkflow:parameters>
      </spiffworkflow:serviceTaskOperator>
    </bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="f1" sourceRef="svc" targetRef="u"/>
    <bpmn:userTask id="u"/>"""
    seen: list[dict[str, Any]] = []

    def lookup(params: dict[str, Any]) -> dict[str, Any]:
        seen.append(params)
        return {"account": "T-" + params["dept"]}

    engine = RestrictedScriptEngine()
    engine.register_service("lookup_dean", lookup)
    wf = _workflow(body, engine, {"dept": "cs"})
    wf.do_engine_steps()
    assert seen == [{"dept": "CS"}]
    task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
    assert task.data["dean"] == {"account": "T-CS"}


@pytest.mark.parametrize(
    ("template", "data", "expected"),
    [
        ("{name}请假{days}天", {"name": "张三", "days": 3}, "张三请假3天"),
        ("{a.b}-{a.c}", {"a": {"b": "x"}}, "x-"),
        ("{missing}!", {}, "!"),
        ("{{literal}} {x}", {"x": 1}, "{literal} 1"),
        ("{x.upper}", {"x": "abc"}, ""),  # attribute access is not performed
        ("{x!r} {x:>5}", {"x": "a"}, "{x!r} {x:>5}"),  # conversions/specs are left as written
        ("{flag} {items}", {"flag": True, "items": ["a", "b"]}, "true a, b"),
        ("unclosed {x", {"x": 1}, "unclosed {x"),
    ],
)
def test_render_template(template: str, data: dict[str, Any], expected: str) -> None:
    """Templates fill names and dict keys only; everything else is inert."""
    assert render_template(template, data) == expected


@pytest.mark.parametrize(
    ("template", "data", "expected"),
    [
        (
            "https://oa.example.edu/approve?who={name}&id={instanceId}",
            {"name": "x&instanceId=OTHER#", "instanceId": "abc"},
            "https://oa.example.edu/approve?who=x%26instanceId%3DOTHER%23&id=abc",
        ),
        ("https://oa.example.edu/doc/{doc}/view", {"doc": "../admin"}, "https://oa.example.edu/doc/..%2Fadmin/view"),
        ("https://oa.example.edu/u/{name}", {"name": "张三 李"}, "https://oa.example.edu/u/%E5%BC%A0%E4%B8%89%20%E6%9D%8E"),
        ("https://oa.example.edu/r/{id}", {"id": "a1B2-_.~"}, "https://oa.example.edu/r/a1B2-_.~"),
        (" {detail_url} ", {"detail_url": "https://x.edu/a?b=1&c=2"}, " https://x.edu/a?b=1&c=2 "),
        ("{{literal}}/{x}", {"x": "a/b"}, "{literal}/a%2Fb"),
        (
            "{portal}/view/{id}?by={who}",
            {"portal": "https://oa.example.edu/app", "id": "a/b", "who": "x&y"},
            "https://oa.example.edu/app/view/a%2Fb?by=x%26y",
        ),
        ("{missing}/x/{id}", {"id": "1"}, "/x/1"),
    ],
)  # fmt: skip
def test_render_url_keeps_each_value_in_its_place(
    template: str, data: dict[str, Any], expected: str
) -> None:
    """A value may not add parameters, path segments or a fragment to a URL; a placeholder the
    template starts with gives the URL's beginning (or all of it) as it is."""
    assert script_engine.render_url(template, data) == expected


@pytest.fixture
def short_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script_engine, "TIME_LIMIT_SECONDS", 0.2)


@pytest.mark.usefixtures("short_time_limit")
@pytest.mark.parametrize(
    "script",
    [
        "while True: pass",
        "n = 0\nwhile n >= 0:\n    n += 1",
        "for a in range(10000):\n    for b in range(10000):\n        pass",
        "total = sum(1 for a in range(10000) for b in range(10000))",
        "m = max(map(lambda a: max(map(lambda b: b, range(10000))), range(10000)))",
        "t = sum(map(sum, [range(10000)] * 100000))",
        "m = max([range(10000)] * 100000, key=sum)",
        "m = sorted([range(10000)] * 100000, key=sum)",
        "def f(n):\n    return 0 if n == 0 else f(n - 1) + f(n - 1)\nx = f(40)",
        "m = max(filter(lambda a: sum(range(10000)) &lt; 0, range(10000)))",
    ],
    ids=[
        "while-one-line",
        "while-block",
        "nested-for",
        "nested-comprehension",
        "nested-map-lambda",
        "map-of-builtin",
        "max-key-builtin",
        "sorted-key-builtin",
        "recursion",
        "filter-lambda",
    ],
)
def test_a_script_that_does_not_end_is_stopped_at_the_time_limit(script: str) -> None:
    """A runaway script task would hold a worker for ever: it is stopped with a
    ScriptSecurityError (the action fails, the instance stays as it was)."""
    body = f"""
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="spin"/>
    <bpmn:scriptTask id="spin"><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="spin" targetRef="u"/>
    <bpmn:userTask id="u"/>"""
    wf = _workflow(body, RestrictedScriptEngine(), {})
    started = time.monotonic()
    with pytest.raises(ScriptSecurityError, match=r"ran longer than 0\.2 seconds"):
        wf.do_engine_steps()
    assert time.monotonic() - started < 5


@pytest.mark.usefixtures("short_time_limit")
def test_an_expression_that_does_not_end_is_stopped_and_the_limit_ends_with_it() -> None:
    with pytest.raises(ScriptSecurityError, match=r"ran longer than 0\.2 seconds"):
        evaluate_expression("sum(1 for a in range(10000) for b in range(10000))", {})
    # The deadline went with the expression: a later long-ish loop of its own is fine.
    assert evaluate_expression("sum(x for x in range(5000))", {}) == sum(range(5000))


@pytest.mark.parametrize(
    "script",
    [
        "def eb_loop_guard():\n    pass\nwhile True:\n    pass",
        "eb_loop_guard = len\nwhile True:\n    pass",
        "resolve_bean = 1",
        "for eb_loop_guard in [1]:\n    pass",
        "def f(eb_loop_guard):\n    pass",
    ],
)
def test_the_sandbox_names_cannot_be_bound_by_bpmn_code(script: str) -> None:
    """Redefining the loop guard switched the time limit off."""
    with pytest.raises(ScriptSecurityError, match="sandbox"):
        script_engine.check_script(script)


@pytest.mark.parametrize(
    "code",
    [
        "raise SystemExit(7)",
        "raise KeyboardInterrupt",
        "raise GeneratorExit",
        "raise BaseException('x')",
        "x = (i for i in [1]).throw(SystemExit)",
    ],
)
def test_bpmn_code_cannot_stop_the_process_that_runs_it(code: str) -> None:
    """SystemExit and KeyboardInterrupt pass every ``except Exception``: raised by a script
    they ended the worker (which started again and died on the same due timer)."""
    env = script_engine.RestrictedEnvironment()
    with pytest.raises(Exception) as failed:
        env.execute(code, {})
    assert isinstance(failed.value, NameError | ScriptSecurityError), failed.value


def test_the_iterating_builtins_still_answer_as_python_does() -> None:
    env = script_engine.RestrictedEnvironment()
    data: dict[str, Any] = {"xs": [3, 1, 2], "words": ["b", "a"]}
    env.execute(
        "a = max(xs)\nb = max(4, 5)\nc = min(xs, default=0)\nd = sorted(xs, reverse=True)\n"
        "e = sum(xs, 10)\nf = list(map(lambda x, y: x + y, xs, xs))\ng = list(zip(xs, words))\n"
        "h = list(enumerate(words, 1))\ni = list(filter(None, [0, 1, 2]))\nj = any(xs)\n"
        "k = all([])\nl = max([], default=None)\nm = min('cab')",
        data,
    )
    assert [data[k] for k in "abcdefghijklm"] == [
        3, 5, 1, [3, 2, 1], 16, [6, 2, 4], [(3, "b"), (1, "a")], [(1, "b"), (2, "a")],
        [1, 2], True, True, None, "a",
    ]  # fmt: skip
    with pytest.raises(TypeError):
        env.execute("x = max(5)", {})


def test_ending_loops_run_as_written_and_keep_their_line_numbers() -> None:
    env = script_engine.RestrictedEnvironment()
    data: dict[str, Any] = {}
    env.execute("k = 0\nwhile k < 300:\n    k += 1\nitems = [i for i in range(300)]", data)
    assert data["k"] == 300 and data["items"] == list(range(300))
    with pytest.raises(ZeroDivisionError) as failed:
        env.execute("k = 0\nwhile k < 3:\n    k += 1\nx = 1 / 0", {})
    assert failed.traceback[-1].lineno + 1 == 4  # the line of the division, as written
