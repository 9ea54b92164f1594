"""Service handlers: how a service task finds its handler, what the handler gets, and what its
answer does to the task data. Every case runs a real BPMN file through the bridge."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState

from engine_bridge.errors import InvalidDataError
from engine_bridge.services import ServiceHandlers, ServiceUse

from .kit import Harness, sequence, service, stored_workflow, user, write


def _run_one(
    tmp_path: Path,
    task_xml: tuple[str, str],
    services: dict[str, Callable[..., Any]],
    data: dict[str, Any] | None = None,
) -> tuple[Harness, Any, str]:
    """Start ``start → task → after (assignee ${who}) → end``; returns harness, bridge, id."""
    text = sequence("p", task_xml, user("after", "${who}"))
    harness = Harness(write(tmp_path / "wf", "p.bpmn", text), f"sqlite:///{tmp_path / 'p.db'}")
    bridge = harness.bridge(services=services)
    inst = bridge.start("p", initiator="S1", data={"who": "W1", **(data or {})})
    return harness, bridge, inst.id


@pytest.mark.parametrize(
    ("attrs", "registered"),
    [
        ('camunda:class="org.example.Mail"', "org.example.Mail"),
        ('flowable:class="org.example.Mail"', "org.example.Mail"),
        ('activiti:class="org.example.Mail"', "org.example.Mail"),
        ('camunda:delegateExpression="${mailer}"', "mailer"),
        ('camunda:expression="#{mailer.send(who)}"', "mailer.send"),
        ('camunda:class="org.example.Mail"', "svc"),
        ('camunda:class="org.example.Mail"', "task:svc"),
        ("", "svc"),
        ("", "task:svc"),
    ],
)
def test_a_handler_is_found_by_every_documented_key(
    tmp_path: Path, attrs: str, registered: str
) -> None:
    """Vendor class, delegate expression, bean expression, bare element id and task:<id>."""
    calls: list[dict[str, Any]] = []
    harness, bridge, instance_id = _run_one(
        tmp_path,
        service("svc", attrs),
        {registered: lambda data: calls.append(data)},
    )
    try:
        assert len(calls) == 1
        assert bridge.instance(instance_id).status == "running"
        assert [t.node_id for t in bridge.todos(instance_id)] == ["after"]
        harness.assert_in_step(bridge, instance_id)
    finally:
        harness.close()


def test_a_spiff_operator_name_is_a_key(tmp_path: Path) -> None:
    """A model written for SpiffWorkflow names its operator; that name finds the handler and
    the operator's parameters arrive as params."""
    inner = (
        "<bpmn:extensionElements>"
        '<spiffworkflow:serviceTaskOperator id="lookup_dean">'
        '<spiffworkflow:parameters><spiffworkflow:parameter id="dept" type="str" '
        'value="dept.upper()"/></spiffworkflow:parameters>'
        "</spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
    )
    got: list[dict[str, Any]] = []

    def lookup(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        got.append(params)
        return {"who": "D-" + params["dept"]}

    harness, bridge, instance_id = _run_one(
        tmp_path, service("svc", inner=inner), {"lookup_dean": lookup}, data={"dept": "cs"}
    )
    try:
        assert got == [{"dept": "CS"}]
        assert [t.handlers for t in bridge.todos(instance_id)] == [("D-CS",)]
    finally:
        harness.close()


def test_the_most_specific_registration_wins(tmp_path: Path) -> None:
    """task:<id> over the bare id over the KEY, so one task can differ from its class."""
    used: list[str] = []
    handlers = {
        "org.example.Mail": lambda data: used.append("class"),
        "svc": lambda data: used.append("id"),
        "task:svc": lambda data: used.append("task:id"),
    }
    harness, _bridge, _ = _run_one(
        tmp_path, service("svc", 'camunda:class="org.example.Mail"'), handlers
    )
    harness.close()
    assert used == ["task:id"]
    handlers.pop("task:svc")
    harness, _bridge, _ = _run_one(
        tmp_path / "2", service("svc", 'camunda:class="org.example.Mail"'), handlers
    )
    harness.close()
    assert used == ["task:id", "id"]
    handlers.pop("svc")
    harness, _bridge, _ = _run_one(
        tmp_path / "3", service("svc", 'camunda:class="org.example.Mail"'), handlers
    )
    harness.close()
    assert used == ["task:id", "id", "class"]


def test_the_handler_gets_a_copy_and_its_dict_is_merged(tmp_path: Path) -> None:
    """Changing the copy changes nothing; the returned dict is task data for what follows
    (here: the next todo's assignee)."""

    def route(data: dict[str, Any]) -> dict[str, Any]:
        data["days"] = 99
        data["nested"]["x"] = "changed"
        return {"who": "D-" + str(data["days"]), "routed": True}

    harness, bridge, instance_id = _run_one(
        tmp_path,
        service("svc", 'camunda:class="org.example.Route"'),
        {"org.example.Route": route},
        data={"days": 3, "nested": {"x": "kept"}},
    )
    try:
        [todo] = bridge.todos(instance_id)
        assert todo.handlers == ("D-99",)
        [ready] = [
            t
            for t in stored_workflow(bridge, instance_id).get_tasks()
            if t.state == TaskState.READY
        ]
        assert ready.task_spec.bpmn_id == "after"
        assert ready.data["days"] == 3
        assert ready.data["nested"] == {"x": "kept"}
        assert (ready.data["who"], ready.data["routed"]) == ("D-99", True)
        assert bridge.complete(todo.task_id, handler="D-99").status == "end"
        harness.assert_in_step(bridge, instance_id)
    finally:
        harness.close()


def test_bean_arguments_and_fields_arrive_as_params(tmp_path: Path) -> None:
    """#{bean.method(a, 'x')} gives arg0, arg1; camunda:field gives a named parameter."""
    got: list[tuple[dict[str, Any], dict[str, Any]]] = []
    inner = (
        '<bpmn:extensionElements><camunda:field name="template" stringValue="leave-ok"/>'
        "</bpmn:extensionElements>"
    )
    harness, _bridge, _ = _run_one(
        tmp_path,
        service("svc", """camunda:expression="#{mailer.send(days, 'dean')}\"""", inner),
        {"mailer.send": lambda data, params: got.append((data, params))},
        data={"days": 4},
    )
    harness.close()
    [(data, params)] = got
    assert params == {"template": "leave-ok", "arg0": 4, "arg1": "dean"}
    assert data["days"] == 4


def test_a_groovy_script_task_calls_its_handler_with_the_script(tmp_path: Path) -> None:
    """A script in another language is not run: its handler receives script and
    scriptFormat and answers for it."""
    script = (
        "calc",
        '<bpmn:scriptTask id="calc" scriptFormat="groovy">'
        "<bpmn:script>execution.setVariable('who', 'G1')</bpmn:script></bpmn:scriptTask>",
    )
    got: list[dict[str, Any]] = []

    def groovy(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        got.append(params)
        return {"who": "G1"}

    harness, bridge, instance_id = _run_one(tmp_path, script, {"task:calc": groovy})
    try:
        assert got == [{"script": "execution.setVariable('who', 'G1')", "scriptFormat": "groovy"}]
        assert [t.handlers for t in bridge.todos(instance_id)] == [("G1",)]
    finally:
        harness.close()


def test_a_result_variable_receives_the_answer_instead_of_a_merge(tmp_path: Path) -> None:
    """camunda:resultVariable stores whatever the handler returns (any JSON) under that name."""
    harness, bridge, instance_id = _run_one(
        tmp_path,
        service(
            "svc",
            'camunda:expression="${approvers.pick(dept)}" camunda:resultVariable="who"',
        ),
        {"approvers.pick": lambda data, params: ["A1", "A2"]},
        data={"dept": "cs"},
    )
    try:
        assert [t.handlers for t in bridge.todos(instance_id)] == [("A1", "A2")]
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (["not", "a", "dict"], "returned list, not a dict or None"),
        ({"__class__": 1}, "returned the key '__class__'"),
        ({"juel_str": 1}, "returned the key 'juel_str'"),  # a sandbox name: scripts would fail
        ({"juel_bool": 1}, "returned the key 'juel_bool'"),
        ({"_getattr_": 1}, "not a name the script sandbox defines"),
        ({"when": object()}, "returned data that is not JSON"),
    ],
)
def test_an_answer_that_cannot_become_task_data_is_an_incident(
    tmp_path: Path, answer: Any, expected: str
) -> None:
    """The instance stops with an incident naming the handler and what was wrong."""
    harness, bridge, instance_id = _run_one(
        tmp_path, service("svc", 'camunda:class="org.example.Bad"'), {"svc": lambda d: answer}
    )
    try:
        assert bridge.instance(instance_id).status == "incident"
        [incident] = bridge.incidents()
        assert incident.error.startswith("handler 'svc' ")
        assert expected in incident.error
        harness.assert_in_step(bridge, instance_id)
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("key", "handler", "message"),
    [
        ("", lambda data: None, "must be a non-empty string"),
        ("svc", "not callable", "is not callable"),
        ("svc", lambda: None, "takes no positional parameter"),
        ("svc", lambda data, *, must: None, "required keyword-only parameter 'must'"),
    ],
)
def test_bad_registrations_are_refused_when_registered(
    key: str, handler: Any, message: str
) -> None:
    """Mistakes surface at registration, not when a task first runs."""
    with pytest.raises(InvalidDataError, match=message):
        ServiceHandlers({key: handler})


def test_lookup_keys_and_missing_handlers() -> None:
    """find answers by the most specific name; missing lists uses nobody answers."""
    handlers = ServiceHandlers({"org.example.Mail": lambda data: None})
    handlers.add("task:b", lambda data, params: None)
    assert handlers.find("a", "org.example.Mail") == "org.example.Mail"
    assert handlers.find("b", "other") == "task:b"
    assert handlers.find("c", "other") is None
    uses = [ServiceUse("p", n, n, k, "f.bpmn") for n, k in (("a", "x"), ("c", "y"))]
    assert handlers.missing(uses) == [uses[0], uses[1]]
    assert uses[0].lookup_keys() == ("task:a", "a", "x")
    assert handlers.keys() == ("org.example.Mail", "task:b")


def test_check_lists_unanswered_service_tasks_and_open_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """check() is an error per service task without a handler, with file, element id, line
    and the names to register; Bridge.open logs each as a warning."""
    text = sequence(
        "p",
        service("mail", 'camunda:class="org.example.Mail"', name="Mail"),
        service("sms", 'camunda:class="org.example.Sms"'),
        user("after", "T1"),
    )
    path = write(tmp_path / "wf", "p.bpmn", text)
    harness = Harness(path.parent, f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with caplog.at_level(logging.WARNING, logger="engine_bridge.bridge"):
            bridge = harness.bridge(services={"org.example.Mail": lambda data: None})
        [problem] = bridge.check()
        assert (problem.file, problem.element_id, problem.code) == (
            str(path),
            "sms",
            "service-needs-handler",
        )
        sms_line = next(n for n, line in enumerate(text.splitlines(), 1) if 'id="sms"' in line)
        assert problem.line == sms_line
        assert "'task:sms' or 'sms' or 'org.example.Sms'" in problem.message
        # The same problem, said as what it is when the bridge still opens: a warning.
        assert [r.getMessage() for r in caplog.records] == [
            str(problem).replace(": error: ", ": warning: ")
        ]
        assert ": warning: service task 'sms'" in caplog.records[0].getMessage()
        bridge.service("org.example.Sms", lambda data: None)
        assert bridge.check() == []
    finally:
        harness.close()
