"""Vendor models from the corpus, translated and then run by SpiffWorkflow itself."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from SpiffWorkflow import TaskState
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.spiff.parser import SpiffBpmnParser

from engine_bridge.engine.script_engine import evaluate_expression
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.juel import JUEL_HELPERS
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.services import service_operators

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
SPIFF = "{http://spiffworkflow.org/bpmn/schema/1.0/core}"
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"


def load(name: str) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring((CORPUS / name).read_bytes(), parser=parser)


def translated(name: str) -> tuple[Any, list[Problem]]:
    root = load(name)
    return root, translate_dialects(root, name)


def spiff_parser(*trees: tuple[Any, str]) -> SpiffBpmnParser:
    parser = SpiffBpmnParser()
    for root, name in trees:
        parser.add_bpmn_xml(etree.ElementTree(root), filename=name)
    return parser


def element(root: Any, element_id: str) -> Any:
    found = root.xpath("//bpmn:*[@id=$id]", id=element_id, namespaces={"bpmn": BPMN[1:-1]})
    assert len(found) == 1, element_id
    return found[0]


def properties(root: Any, element_id: str) -> dict[str, str]:
    return {
        p.get("name"): p.get("value") for p in element(root, element_id).iter(f"{SPIFF}property")
    }


def condition(root: Any, flow_id: str) -> str:
    return str(element(root, flow_id).find(f"{BPMN}conditionExpression").text)


class Environment(TaskDataEnvironment):
    """What the bridge's script engine provides: JUEL helpers, beans and services."""

    def __init__(self, beans: dict[str, Any] | None = None) -> None:
        self.beans = beans or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        super().__init__({**JUEL_HELPERS, "resolve_bean": self.resolve_bean})

    def resolve_bean(self, name: str, *args: Any) -> Any:
        return self.beans[name](*args)

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> str:
        params = {k: v["value"] for k, v in kwargs["operation_params"].items()}
        self.calls.append((kwargs["operation_name"], params))
        return json.dumps("done")


class CountingEngine(PythonScriptEngine):
    """Injects the multi-instance counters Camunda defines, as the bridge's engine does."""

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        context = dict(external_context or {})
        parent = task.parent
        spec = getattr(parent, "task_spec", None)
        if spec is not None and getattr(spec, "task_spec", None) == task.task_spec.name:
            instances = [c for c in parent.children if c.task_spec.name == spec.task_spec]
            done = [c for c in instances if c.state == TaskState.COMPLETED]
            context.update(
                nrOfInstances=len(instances),
                nrOfCompletedInstances=len(done),
                nrOfActiveInstances=len(instances) - len(done),
            )
        return super().evaluate(task, expression, context)


def ready(wf: BpmnWorkflow) -> list[Any]:
    return list(wf.get_tasks(state=TaskState.READY, manual=True))


def handlers_of(wf: BpmnWorkflow, task: Any) -> Any:
    return wf.script_engine.evaluate(task, task.task_spec.extensions["properties"]["handlers"])


# --------------------------------------------------------------------------- corpus targets


def test_activiti_countersign_over_a_collection_runs_one_instance_per_person() -> None:
    """meeting.bpmn: ``activiti:collection``/``elementVariable`` become Spiff's standard form,
    each instance's handler is its element variable, and the element variable stays local."""
    root, problems = translated("spring-activiti__meeting.bpmn")
    assert [p for p in problems if p.severity == "error"] == []
    loop = element(root, "usertask2").find(f"{BPMN}multiInstanceLoopCharacteristics")
    assert loop.find(f"{BPMN}loopDataInputRef").text == "people"
    assert loop.find(f"{BPMN}inputDataItem").get("id") == "person"
    assert properties(root, "usertask2") == {"handlers": "person"}
    assert properties(root, "usertask3") == {"handlers": "host"}
    assert properties(root, "startevent1") == {"initiatorVariable": "host"}

    spec = spiff_parser((root, "meeting")).get_spec("meeting")
    wf = BpmnWorkflow(spec, script_engine=PythonScriptEngine(Environment()))
    wf.task_tree.data.update(people=["T001", "T002", "T003"], host="T009")
    wf.do_engine_steps()
    signers = ready(wf)
    assert sorted(handlers_of(wf, t) for t in signers) == ["T001", "T002", "T003"]
    for task in signers:
        task.data["signed_" + task.data["person"]] = True
        task.run()
        wf.do_engine_steps()
    [minutes] = ready(wf)
    assert minutes.task_spec.bpmn_id == "usertask3"
    assert handlers_of(wf, minutes) == "T009"
    assert "person" not in minutes.data
    assert {"signed_T001", "signed_T002", "signed_T003"} <= set(minutes.data)


def test_activiti_leave_assignees_groups_and_conditions() -> None:
    """leave.bpmn: assignee + candidate group per task, JUEL conditions drive the gateways."""
    root, problems = translated("spring-activiti__leave.bpmn")
    assert problems == []
    assert properties(root, "deptleaderaudit") == {
        "handlers": "deptleader",
        "handlingGroup": "['部门经理']",
    }
    assert properties(root, "modifyapply") == {"handlers": "applyuserid"}
    assert condition(root, "flow3") == "deptleaderapprove == 'true'"
    assert condition(root, "flow9") == "reapply == 'false'"

    spec = spiff_parser((root, "leave")).get_spec("leave")
    wf = BpmnWorkflow(spec, script_engine=PythonScriptEngine(Environment()))
    wf.task_tree.data.update(deptleader="T100", hr="T200", applyuserid="S001")
    wf.do_engine_steps()
    path = []
    for answers in (
        {"deptleaderapprove": "false"},
        {"reapply": "true"},
        {"deptleaderapprove": "true"},
        {"hrapprove": "true"},
        {},
    ):
        [task] = ready(wf)
        path.append((task.task_spec.bpmn_id, handlers_of(wf, task)))
        task.data.update(answers)
        task.run()
        wf.do_engine_steps()
    assert path == [
        ("deptleaderaudit", "T100"),
        ("modifyapply", "S001"),
        ("deptleaderaudit", "T100"),
        ("hraudit", "T200"),
        ("reportback", "S001"),
    ]
    assert wf.is_completed()


def test_flowable_completion_by_percentage_finishes_early() -> None:
    """A JUEL completion condition over nrOf* counters ends the countersign at the threshold;
    the task name, which holds ``${loopCounter}``, is left as text."""
    name = "flowable__MultiInstanceUserTaskEventsTest.testMultiInstanceCompleteCondition.bpmn"
    root, problems = translated(name)
    assert problems == []
    loop = element(root, "task").find(f"{BPMN}multiInstanceLoopCharacteristics")
    assert loop.find(f"{BPMN}completionCondition").text == (
        "(nrOfCompletedInstances / nrOfInstances) >= percentageCompleted"
    )
    assert element(root, "task").get("name") == "Multi User Task-${loopCounter}"

    spec = spiff_parser((root, name)).get_spec("multiInstanceUserTaskEvents")
    wf = BpmnWorkflow(spec, script_engine=CountingEngine(Environment()))
    wf.task_tree.data["percentageCompleted"] = 0.5
    wf.do_engine_steps()
    first, second = ready(wf)
    first.run()
    wf.do_engine_steps()
    assert wf.is_completed()
    assert second.state == TaskState.CANCELLED


def test_spiff_native_model_passes_through_unchanged() -> None:
    """A model already written for Spiff (Python, quoted timer) is not touched at all."""
    name = "spiff-arena__multiinstance-user-task-with-timer.bpmn"
    original = etree.tostring(load(name))
    root, problems = translated(name)
    assert problems == []
    assert etree.tostring(root) == original
    spiff_parser((root, name)).get_spec("Process_MultiInstanceUserTimer")


def test_camunda_job_announcement_with_bean_assignees_lanes_and_services() -> None:
    """Both job-announcement files: bean-call assignees, candidate groups, ``#{…}`` conditions,
    expression service tasks and a call activity, run end to end."""
    main_name = "camunda-examples__camunda-testing-job-announcement.bpmn"
    sub_name = "camunda-examples__camunda-testing-job-announcement-publication.bpmn"
    main, main_problems = translated(main_name)
    sub, sub_problems = translated(sub_name)
    assert properties(main, "review") == {
        "handlers": "resolve_bean('jobAnnouncementService.findRequester', jobAnnouncementId)"
    }
    assert properties(main, "edit") == {"handlingGroup": "['engineering']"}
    assert condition(main, "Flow_1gfi885") == "juel_bool(approved)"
    assert condition(main, "Flow_0yjunvn") == "not juel_bool(approved)"
    assert {(p.code, p.element_id) for p in main_problems} == {
        ("bean-needs-resolver", "review"),
        ("bean-needs-resolver", "correct"),
        ("service-needs-handler", "mail"),
    }
    assert all(p.severity == "warning" and p.line for p in main_problems + sub_problems)
    assert service_operators(sub) == [
        ("publish_announcement_website", "jobAnnouncementService.postToWebsite"),
        ("publish_announcement_twitter", "jobAnnouncementService.postToTwitter"),
        ("publish_announcement_facebook", "jobAnnouncementService.postToFacebook"),
    ]

    parser = spiff_parser((main, main_name), (sub, sub_name))
    spec = parser.get_spec("camunda-testing-job-announcement")
    subs = parser.get_subprocess_specs("camunda-testing-job-announcement")
    env = Environment(
        {
            "jobAnnouncementService.findRequester": lambda i: f"req-{i}",
            "jobAnnouncementService.findEditor": lambda i: f"ed-{i}",
        }
    )
    wf = BpmnWorkflow(spec, subs, script_engine=PythonScriptEngine(env))
    wf.task_tree.data.update(jobAnnouncementId=7, twitter=True, facebook=False)
    wf.do_engine_steps()
    seen = []
    for answers in ({}, {"approved": False}, {}, {"approved": True}, {}):
        [task] = ready(wf)
        props = task.task_spec.extensions["properties"]
        who = handlers_of(wf, task) if "handlers" in props else props["handlingGroup"]
        seen.append((task.task_spec.bpmn_id, task.task_spec.lane, who))
        task.data.update(answers)
        task.run()
        wf.do_engine_steps()
    assert seen == [
        ("edit", "HR", "['engineering']"),
        ("review", "Management", "req-7"),
        ("correct", "HR", "ed-7"),
        ("review", "Management", "req-7"),
        ("publish", "HR", "['engineering']"),
    ]
    assert wf.is_completed()
    assert env.calls == [
        ("jobAnnouncementService.postToWebsite", {"arg0": 7}),
        ("jobAnnouncementService.postToTwitter", {"arg0": 7}),
        ("jobAnnouncementService.notifyAboutPostings", {"arg0": 7}),
    ]


# --------------------------------------------------------------------------- small models

HEAD = (
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:flowable="http://flowable.org/bpmn" '
    'xmlns:activiti="http://activiti.org/bpmn" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
    'id="defs" targetNamespace="t">\n<bpmn:process id="p" isExecutable="true">\n'
)
TAIL = "\n</bpmn:process>\n</bpmn:definitions>"


def model(body: str) -> tuple[Any, list[Problem]]:
    root = etree.fromstring((HEAD + body + TAIL).encode())
    return root, translate_dialects(root, "inline.bpmn")


def chain(*nodes: str) -> str:
    """start → nodes… → end, with flows in between."""
    ids = ["s", *[n.split('id="')[1].split('"')[0] for n in nodes], "e"]
    flows = "".join(
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
        for i, (a, b) in enumerate(itertools.pairwise(ids))
    )
    return '<bpmn:startEvent id="s"/>' + "".join(nodes) + '<bpmn:endEvent id="e"/>' + flows


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('camunda:candidateUsers="T001,T002"', {"handlers": "['T001', 'T002']"}),
        ('camunda:assignee="T001"', {"handlers": "['T001']"}),
        ('flowable:assignee="${applicant}"', {"handlers": "applicant"}),
        (
            'activiti:assignee="${a}" activiti:candidateUsers="T002, ${b}, ${a}"',
            {"handlers": "[a, 'T002', b]"},
        ),
        (
            "camunda:candidateUsers=\"${svc.find(dept, 'x,y')},T9\"",
            {"handlers": "[resolve_bean('svc.find', dept, 'x,y'), 'T9']"},
        ),
        ('camunda:candidateGroups="${group}"', {"handlingGroup": "group"}),
        ('camunda:candidateGroups="教务处, 学工部"', {"handlingGroup": "['教务处', '学工部']"}),
    ],
)
def test_vendor_assignment_becomes_handlers_and_handling_group(
    attrs: str, expected: dict[str, str]
) -> None:
    root, problems = model(f'<bpmn:userTask id="u" name="审批" {attrs}/>')
    assert [p for p in problems if p.code != "bean-needs-resolver"] == []
    assert properties(root, "u") == expected
    assert element(root, "u").get("name") == "审批"


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        (
            "<bpmn:potentialOwner><bpmn:resourceAssignmentExpression><bpmn:formalExpression>"
            "user(kermit), group(management)</bpmn:formalExpression>"
            "</bpmn:resourceAssignmentExpression>"
            "</bpmn:potentialOwner>",
            {"handlers": "['kermit']", "handlingGroup": "['management']"},
        ),
        (
            "<bpmn:potentialOwner><bpmn:resourceAssignmentExpression><bpmn:formalExpression>"
            "sales</bpmn:formalExpression></bpmn:resourceAssignmentExpression></bpmn:potentialOwner>",
            {"handlingGroup": "['sales']"},
        ),
        (
            "<bpmn:humanPerformer><bpmn:resourceAssignmentExpression><bpmn:formalExpression>"
            "${boss}</bpmn:formalExpression></bpmn:resourceAssignmentExpression></bpmn:humanPerformer>",
            {"handlers": "boss"},
        ),
    ],
)
def test_standard_resource_assignment_is_translated(xml: str, expected: dict[str, str]) -> None:
    """Bare names are groups for potential owners and users for performers (Activiti's reading)."""
    root, problems = model(f'<bpmn:userTask id="u">{xml}</bpmn:userTask>')
    assert problems == []
    assert properties(root, "u") == expected


def test_existing_spiff_properties_win_over_vendor_attributes() -> None:
    root, _ = model(
        '<bpmn:userTask id="u" camunda:assignee="T001" camunda:candidateGroups="g">'
        "<bpmn:extensionElements><spiffworkflow:properties>"
        '<spiffworkflow:property name="handlers" value="owner"/>'
        "</spiffworkflow:properties><camunda:properties>"
        '<camunda:property name="taskSummary" value="天数|{days}"/>'
        '<camunda:property name="handlers" value="ignored"/>'
        "</camunda:properties></bpmn:extensionElements></bpmn:userTask>"
    )
    assert properties(root, "u") == {
        "handlers": "owner",
        "taskSummary": "天数|{days}",
        "handlingGroup": "['g']",
    }


def test_untranslatable_assignee_is_a_located_error_and_adds_nothing() -> None:
    root, problems = model('<bpmn:userTask id="u" camunda:assignee="${a.__class__}"/>')
    [problem] = problems
    assert (problem.code, problem.element_id, problem.line, problem.severity) == (
        "juel-untranslatable",
        "u",
        3,
        "error",
    )
    assert "'_'" in problem.message and "position 4" in problem.message
    assert properties(root, "u") == {}


def sequential_loop(collection: str) -> str:
    return chain(
        '<bpmn:userTask id="sign" camunda:assignee="${signer}">'
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true"'
        f' camunda:collection="{collection}"'
        ' camunda:elementVariable="signer"/></bpmn:userTask>',
        '<bpmn:userTask id="decide"/>',
        '<bpmn:exclusiveGateway id="g" default="f_end"/>',
    ).replace(
        '<bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="e"/>',
        '<bpmn:sequenceFlow id="f_end" sourceRef="g" targetRef="e"/>'
        '<bpmn:sequenceFlow id="f_back" sourceRef="g" targetRef="sign">'
        "<bpmn:conditionExpression>${again}</bpmn:conditionExpression></bpmn:sequenceFlow>",
    )


def test_sequential_countersign_runs_in_order_and_can_be_visited_again() -> None:
    """The element variable never leaks into process data, so the second instance and a loop
    back to the task both work (Spiff would refuse an existing input item)."""
    root, problems = model(sequential_loop("${assigneeList}"))
    assert problems == []
    assert condition(root, "f_back") == "juel_bool(again)"
    spec = spiff_parser((root, "inline")).get_spec("p")
    wf = BpmnWorkflow(spec, script_engine=PythonScriptEngine(Environment()))
    wf.task_tree.data["assigneeList"] = ["a", "b"]
    wf.do_engine_steps()
    order = []
    for again in (True, False):
        for _ in range(2):
            [task] = ready(wf)
            order.append(handlers_of(wf, task))
            task.run()
            wf.do_engine_steps()
        [decide] = ready(wf)
        assert "signer" not in decide.data
        decide.data["again"] = again
        decide.run()
        wf.do_engine_steps()
    assert order == ["a", "b", "a", "b"]
    assert wf.is_completed()


def test_computed_collection_is_reported_not_guessed() -> None:
    root, problems = model(sequential_loop("${userService.approvers(dept)}"))
    codes = {p.code for p in problems}
    assert "mi-collection-expression" in codes
    [error] = [p for p in problems if p.severity == "error"]
    assert (error.element_id, error.line) == ("sign", 3)
    assert (
        element(root, "sign").find(f"{BPMN}multiInstanceLoopCharacteristics/{BPMN}loopDataInputRef")
        is None
    )


def test_element_variable_clash_is_reported() -> None:
    """Element variables become ids; two loops on ``person``, or a task called ``person``, clash."""
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics camunda:collection="people" '
        'camunda:elementVariable="person"/>'
    )
    _, problems = model(
        f'<bpmn:userTask id="a">{loop}</bpmn:userTask><bpmn:userTask id="b">{loop}</bpmn:userTask>'
    )
    [clash] = problems
    assert (clash.code, clash.element_id) == ("mi-variable-clash", "b")
    assert "'a'" in clash.message
    _, problems = model(f'<bpmn:userTask id="person">{loop}</bpmn:userTask>')
    assert [p.code for p in problems] == ["mi-variable-clash"]


def test_cardinality_and_conditions_in_juel_are_translated() -> None:
    root, problems = model(
        '<bpmn:userTask id="u"><bpmn:multiInstanceLoopCharacteristics>'
        "<bpmn:loopCardinality>${count + 1}</bpmn:loopCardinality>"
        "<bpmn:completionCondition>${nrOfCompletedInstances == 1 &amp;&amp; !ok}"
        "</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"
    )
    assert problems == []
    loop = element(root, "u").find(f"{BPMN}multiInstanceLoopCharacteristics")
    assert loop.find(f"{BPMN}loopCardinality").text == "count + 1"
    assert (
        loop.find(f"{BPMN}completionCondition").text
        == "(nrOfCompletedInstances == 1) and (not juel_bool(ok))"
    )


def test_condition_in_a_foreign_script_language_is_refused() -> None:
    root, problems = model(
        chain('<bpmn:exclusiveGateway id="g"/>').replace(
            '<bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="e"/>',
            '<bpmn:sequenceFlow id="f1" sourceRef="g" targetRef="e"><bpmn:conditionExpression '
            'language="groovy">${x &gt; 1}</bpmn:conditionExpression></bpmn:sequenceFlow>',
        )
    )
    [problem] = problems
    assert (problem.code, problem.element_id) == ("untranslatable-script", "f1")
    assert condition(root, "f1") == "${x > 1}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT48H", '"PT48H"'),
        ("  P2DT3H  ", '"P2DT3H"'),
        ("R3/PT10M", '"R3/PT10M"'),
        ("2026-03-01T08:00:00Z", '"2026-03-01T08:00:00Z"'),
        ("${duration}", "duration"),
        ('"PT1H"', '"PT1H"'),
        ("timedelta(hours=1)", "timedelta(hours=1)"),
    ],
)
def test_timer_expressions(text: str, expected: str) -> None:
    """ISO literals are quoted (Spiff evaluates timers as Python); Python stays as written."""
    root, problems = model(
        '<bpmn:intermediateCatchEvent id="t"><bpmn:timerEventDefinition>'
        f"<bpmn:timeDuration>{text}</bpmn:timeDuration></bpmn:timerEventDefinition>"
        "</bpmn:intermediateCatchEvent>"
    )
    assert problems == []
    assert element(root, "t").find(f".//{BPMN}timeDuration").text == expected


def test_cron_timer_is_reported() -> None:
    _, problems = model(
        '<bpmn:startEvent id="t"><bpmn:timerEventDefinition>'
        "<bpmn:timeCycle>0 0/5 * * * ?</bpmn:timeCycle>"
        "</bpmn:timerEventDefinition></bpmn:startEvent>"
    )
    assert [(p.code, p.element_id) for p in problems] == [("timer-cron-unsupported", "t")]


def operator(root: Any, element_id: str) -> tuple[str | None, str | None, dict[str, str]]:
    found = element(root, element_id)
    assert found.tag == f"{BPMN}serviceTask"
    op = found.find(f"{BPMN}extensionElements/{SPIFF}serviceTaskOperator")
    params = {p.get("id"): p.get("value") for p in op.iter(f"{SPIFF}parameter")}
    return op.get("id"), op.get("resultVariable"), params


def test_service_keys_follow_the_documented_order() -> None:
    root, problems = model(
        '<bpmn:serviceTask id="c" camunda:class="org.example.Mail">'
        '<bpmn:extensionElements><camunda:field name="to" stringValue="a@b"/>'
        '<camunda:field name="subject"><camunda:expression>Hi ${name}</camunda:expression>'
        "</camunda:field></bpmn:extensionElements></bpmn:serviceTask>"
        '<bpmn:serviceTask id="x" camunda:type="external" camunda:topic="charge"/>'
        '<bpmn:serviceTask id="d" flowable:delegateExpression="${mailer}"'
        ' flowable:resultVariable="r"/>'
        '<bpmn:sendTask id="s" activiti:expression="#{sms.send(phone, \'hi\')}"/>'
        '<bpmn:serviceTask id="m" flowable:type="mail"/>'
        '<bpmn:serviceTask id="k"><bpmn:extensionElements>'
        '<spiffworkflow:serviceTaskOperator id="http/get" resultVariable="out">'
        '<spiffworkflow:parameters><spiffworkflow:parameter id="url" type="str" value="\'u\'"/>'
        "</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
        "</bpmn:serviceTask>"
        '<bpmn:serviceTask id="plain"/>'
        '<bpmn:businessRuleTask id="b" camunda:class="org.example.Rules"/>'
        '<bpmn:scriptTask id="groovy" scriptFormat="groovy"><bpmn:script>x = 1</bpmn:script>'
        "</bpmn:scriptTask>"
    )
    assert operator(root, "c") == (
        "org.example.Mail",
        None,
        {"to": "'a@b'", "subject": "('Hi ' + juel_str(name))"},
    )
    assert operator(root, "x") == ("charge", None, {})
    assert operator(root, "d") == ("mailer", "r", {})
    assert operator(root, "s") == ("sms.send", None, {"arg0": "phone", "arg1": "'hi'"})
    assert operator(root, "m") == ("mail", None, {})
    assert operator(root, "k") == ("http/get", "out", {"url": "'u'"})
    assert operator(root, "plain") == ("task:plain", None, {})
    assert operator(root, "b") == ("org.example.Rules", None, {})
    assert operator(root, "groovy") == (
        "task:groovy",
        None,
        {"script": "'x = 1'", "scriptFormat": "'groovy'"},
    )
    assert element(root, "groovy").find(f"{BPMN}script") is None
    warnings = [(p.element_id, p.severity) for p in problems if p.code == "service-needs-handler"]
    assert warnings == [
        (i, "warning") for i in ("c", "x", "d", "s", "m", "k", "plain", "b", "groovy")
    ]
    assert all(p.code == "service-needs-handler" for p in problems)


def test_python_scripts_message_sends_and_decisions_are_left_for_spiff() -> None:
    root, problems = model(
        '<bpmn:scriptTask id="py"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'
        '<bpmn:scriptTask id="py2" scriptFormat="python"><bpmn:script>x = 1</bpmn:script>'
        "</bpmn:scriptTask>"
        '<bpmn:sendTask id="send" messageRef="msg"/>'
        '<bpmn:businessRuleTask id="rule" camunda:decisionRef="approve"/>'
    )
    assert problems == []
    assert element(root, "py").tag == f"{BPMN}scriptTask"
    assert element(root, "py2").tag == f"{BPMN}scriptTask"
    assert element(root, "send").tag == f"{BPMN}sendTask"
    assert element(root, "rule").find(f".//{SPIFF}calledDecisionId").text == "approve"


def test_translated_model_is_valid_for_the_spiff_schema_and_parses() -> None:
    """Added elements sit where the BPMN and Spiff schemas want them."""
    from SpiffWorkflow.spiff.parser import VALIDATOR

    root, _ = model(
        chain(
            '<bpmn:userTask id="u" camunda:assignee="${a}">'
            "<bpmn:documentation>d</bpmn:documentation>"
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="xs"'
            ' camunda:elementVariable="x">'
            "<bpmn:completionCondition>${done}</bpmn:completionCondition>"
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>",
            '<bpmn:serviceTask id="svc" camunda:expression="${svc.go(a)}"/>',
            '<bpmn:scriptTask id="js" scriptFormat="javascript"><bpmn:script>1</bpmn:script>'
            "</bpmn:scriptTask>",
        )
    )
    VALIDATOR.validate(etree.ElementTree(root), "inline.bpmn")
    children = [c.tag.split("}")[1] for c in element(root, "u")]
    assert children[:3] == [
        "documentation",
        "extensionElements",
        "multiInstanceLoopCharacteristics",
    ]
    loop = [
        c.tag.split("}")[1]
        for c in element(root, "u").find(f"{BPMN}multiInstanceLoopCharacteristics")
    ]
    assert loop == ["loopDataInputRef", "inputDataItem", "completionCondition"]
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_xml(etree.ElementTree(root), filename="inline.bpmn")
    parser.get_spec("p")


@pytest.mark.parametrize(
    "name",
    [
        "spring-activiti__meeting.bpmn",
        "spring-activiti__leave.bpmn",
        "camunda-examples__camunda-testing-job-announcement.bpmn",
        "flowable__MultiInstanceUserTaskEventsTest.testMultiInstanceCompleteCondition.bpmn",
    ],
)
def test_translating_twice_changes_nothing_more(name: str) -> None:
    """The loader may run transforms again on a translated tree (re-validation)."""
    root, first = translated(name)
    once = etree.tostring(root)
    second = translate_dialects(root, name)
    assert etree.tostring(root) == once
    assert [p for p in second if p.severity == "error"] == [
        p for p in first if p.severity == "error"
    ]


def test_loop_without_a_readable_collection_is_reported() -> None:
    """A Flowable collection handler class cannot run; the loop says so instead of Spiff's
    generic parse error."""
    _, problems = model(
        '<bpmn:userTask id="u"><bpmn:multiInstanceLoopCharacteristics '
        'flowable:elementVariable="p"><bpmn:extensionElements><flowable:collection '
        'flowable:class="x.Handler"/></bpmn:extensionElements>'
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"
    )
    assert [(p.code, p.element_id, p.line) for p in problems] == [("mi-collection-missing", "u", 3)]


def test_service_ids_that_repeat_an_element_id_are_reported() -> None:
    """Spiff indexes every id of a process, so a field called like a task would break it."""
    _, problems = model(
        '<bpmn:serviceTask id="svc" camunda:class="a.B"><bpmn:extensionElements>'
        '<camunda:field name="approve" stringValue="x"/>'
        "</bpmn:extensionElements></bpmn:serviceTask>"
        '<bpmn:userTask id="approve"/>'
    )
    [clash] = [p for p in problems if p.severity == "error"]
    assert (clash.code, clash.element_id) == ("service-id-clash", "svc")
    assert "'approve'" in clash.message


def test_flowable_initiator_marker_becomes_the_instance_initiator() -> None:
    """doge.bpmn: ``flowable:assignee="$INITIATOR"`` is the modeller's "the process initiator",
    not an account named ``$INITIATOR``."""
    root, _problems = translated("flowable__doge.bpmn")
    review = "sid-8E972729-8F07-4413-86A9-392A34D949EF"
    assert properties(root, review)["handlers"] == "[initiator]"
    handlers = properties(root, review)["handlers"]
    assert evaluate_expression(handlers, {}, extra={"initiator": "U001"}) == ["U001"]


def test_activiti_error_code_named_in_error_ref_is_declared() -> None:
    """Activiti reads an errorRef naming no declared error as the error code itself."""
    root, problems = translated("spring-activiti__purchase.bpmn")
    assert problems == []
    (error,) = [e for e in root.iter(f"{BPMN}error") if e.get("id") == "payment_reject"]
    assert error.get("errorCode") == "payment_reject"


def test_an_error_code_that_is_also_an_element_id_gets_an_error_of_its_own() -> None:
    """Ids are one space: the declared error takes another id and the refs follow it."""
    root = etree.fromstring(
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        b'xmlns:activiti="http://activiti.org/bpmn" id="d"><process id="p">'
        b'<userTask id="reject"/><endEvent id="e"><errorEventDefinition errorRef="reject"/>'
        b"</endEvent></process></definitions>"
    )
    translate_dialects(root, "x.bpmn")
    (error,) = root.iter(f"{BPMN}error")
    assert (error.get("id"), error.get("errorCode")) == ("reject_error", "reject")
    (ref,) = root.iter(f"{BPMN}errorEventDefinition")
    assert ref.get("errorRef") == "reject_error"


@pytest.mark.parametrize(
    ("name", "task_name"),
    [
        ("Multi User Task-${loopCounter}", "Multi User Task-{loopCounter}"),
        ("Review #{request.title} for ${applicant}", "Review {request.title} for {applicant}"),
        ("Approve ${amount > 10}", None),
        ("Plain name", None),
    ],
)
def test_a_task_name_with_plain_juel_variables_becomes_the_todo_name(
    name: str, task_name: str | None
) -> None:
    root = etree.fromstring(
        b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
        b'<process id="p"><userTask id="t"/></process></definitions>'
    )
    (task,) = root.iter(f"{BPMN}userTask")
    task.set("name", name)
    translate_dialects(root, "x.bpmn")
    assert properties(root, "t").get("taskName") == task_name
    assert task.get("name") == name  # the node keeps the name it was drawn with
