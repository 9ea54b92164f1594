"""The expected verdict of every corpus file, pinned so that a change shows as a failing test.

``CASES`` maps each file to what ``engine-bridge validate`` reports for it on its own (error
codes; ``()`` is ok), what it reports with the help given in its :class:`Setup` (when it has
one), and what one start through the bridge does. When the code legitimately changes a verdict,
update the row here and rewrite ``docs/corpus.md`` (``python -m tests.corpus.verdicts --write``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .verdicts import Setup

JOB = "camunda-examples__camunda-testing-job-announcement.bpmn"
PUBLICATION = "camunda-examples__camunda-testing-job-announcement-publication.bpmn"
MEETING = "spring-activiti__meeting.bpmn"
LEAVE = "spring-activiti__leave.bpmn"
PERCENTAGE = "flowable__MultiInstanceUserTaskEventsTest.testMultiInstanceCompleteCondition.bpmn"
TIMER = "spiff-arena__multiinstance-user-task-with-timer.bpmn"
CHINESE_TASK = "sid-8FD9BE8E-3040-496B-8F0D-FAC03E245A56"
COMPLEX_SCENARIO = (
    "camunda-platform__UserTaskTest.testComplexScenarioWithSubprocessesAndParallelGateways.bpmn"
)

# Who the job-announcement service "finds" (the Java beans the model calls).
REQUESTER = "T100"
EDITOR = "T200"

JOB_RESOLVERS = {
    "jobAnnouncementService.findRequester": lambda job_id: REQUESTER,
    "jobAnnouncementService.findEditor": lambda job_id: EDITOR,
}
PERCENTAGE_NODES = {
    "multiInstanceUserTaskEvents": {
        "task": {
            "handlers": "approvers[loopCounter]",
            "taskName": "Sign-off ({percentageCompleted})",
        }
    }
}
TIMER_NODES = {"Process_MultiInstanceUserTimer": {"HumanTask": {"handlers": "signers[item]"}}}


@dataclass(frozen=True)
class Case:
    """One file's expected row (see ``verdicts.Verdict``)."""

    errors: tuple[str, ...] = ()
    start: str = ""
    first_todo: tuple[str, ...] = ()
    helped: tuple[str, ...] | None = None
    setup: Setup = field(default_factory=Setup)
    note: str = ""


CASES: dict[str, Case] = {
    "activiti-examples__categorize-human-content.bpmn": Case(
        start="todo",
        first_todo=("Task_1ylvdew",),
        note="its service tasks come after the first todo: they need handlers (`bridge.service`)",
    ),
    "activiti__ProcessDiagramGeneratorTest.testAllElements.bpmn": Case(
        errors=(
            "bad-expression",
            "bpmn-invalid",
            "mi-incomplete",
            "receive-without-message",
            "unknown-process",
            "unsupported-start-event",
        ),
        note="a drawing test: JavaScript scripts, a compensation boundary event, loops "
        "without a collection",
    ),
    "activiti__UserTask_with_CandidateGroup.bpmn": Case(start="todo", first_todo=("Task_1t1v0g9",)),
    "activiti__chinese.bpmn": Case(
        errors=("no-handlers",),
        helped=(),
        start="todo",
        first_todo=(CHINESE_TASK,),
        setup=Setup(nodes={"process": {CHINESE_TASK: {"handlers": "'T001'"}}}),
        note="the user task names nobody; a node override (`handlers`) makes it run",
    ),
    "activiti__completemodel.bpmn": Case(errors=("no-handlers", "receive-without-message")),
    "bpmn-js-examples__nested-subprocesses.bpmn": Case(errors=("no-handlers",)),
    "bpmn-js-examples__pizza-collaboration.bpmn": Case(
        start="nothing to start", note="pools drawn for documentation: no executable process"
    ),
    "bpmn-js-examples__sample.bpmn": Case(errors=("bpmn-invalid",), note="no start event"),
    "bpmn-js-examples__transaction-boundaries.bpmn": Case(
        start="nothing to start",
    ),
    "bpmn-js__boundaryEvent-missingAttachToRef.bpmn": Case(
        start="nothing to start",
    ),
    "bpmn-js__collaboration-vertical.bpmn": Case(
        start="nothing to start",
    ),
    "bpmn-js__complex.bpmn": Case(
        errors=("bpmn-invalid", "mi-incomplete"),
        note="a data store without implementation; loops without a collection",
    ),
    "bpmn-js__duplicate-ids.bpmn": Case(errors=("duplicate-id",), note="two elements share an id"),
    "bpmn-js__kitchen-sink.bpmn": Case(
        errors=("camunda8-unsupported",),
        note="every BPMN symbol once, exported for Camunda 8 (a zeebe:calledElement)",
    ),
    "bpmn-js__lanes.bpmn": Case(
        start="nothing to start",
    ),
    "bpmn-js__missing-namespace.bpmn": Case(
        errors=("not-bpmn",), note="root element outside the BPMN namespace"
    ),
    "bpmn-js__multiple-diagrams.bpmn": Case(errors=("no-handlers",)),
    "bpmn-js__process-missing-bpmndiagram.bpmn": Case(
        errors=("bpmn-invalid",), note="no start event"
    ),
    "camunda-examples__TwitterDemoProcess.bpmn": Case(
        start="todo",
        first_todo=("user_task_review_tweet",),
        note="its service tasks come after the first todo: they need handlers",
    ),
    "camunda-examples__bpmnParseListenerOnUserTask.bpmn": Case(
        start="todo", first_todo=("Task_1i9jsnp",)
    ),
    PUBLICATION: Case(
        start="incident",
        setup=Setup(data={"jobAnnouncementId": 7, "twitter": False, "facebook": False}),
        note="called by the job announcement; started alone it reaches a service task "
        "without a handler (an incident)",
    ),
    JOB: Case(
        errors=("bean-needs-resolver", "unknown-process"),
        helped=(),
        start="todo",
        first_todo=("edit",),
        setup=Setup(
            companions=(PUBLICATION,), resolvers=JOB_RESOLVERS, data={"jobAnnouncementId": 7}
        ),
        note="needs its called process (the publication file) and resolvers for "
        "`jobAnnouncementService.findRequester` / `findEditor`",
    ),
    "camunda-examples__invoiceApproval.bpmn": Case(start="todo", first_todo=("UserTask_1",)),
    "camunda-examples__invoicePayment.bpmn": Case(errors=("no-handlers",)),
    "camunda-examples__loan-granting.bpmn": Case(
        errors=("timer-cron-unsupported",), note="a cron timer (`0/5 0/1 * 1/1 * ?`)"
    ),
    "camunda-examples__process.bpmn": Case(
        errors=("juel-untranslatable",),
        note='`${customer.prop("age").numberValue() >= 21}`: a method on a computed value',
    ),
    "camunda-modeler__activiti.bpmn": Case(errors=("bpmn-invalid",), note="no start event"),
    "camunda-modeler__broken.bpmn": Case(errors=("xml-malformed",), note="not well-formed XML"),
    "camunda-modeler__c7-user-task-form.bpmn": Case(errors=("no-handlers",)),
    "camunda-modeler__complex.bpmn": Case(
        start="nothing to start",
    ),
    "camunda-modeler__empty.bpmn": Case(errors=("xml-empty",), note="an empty file"),
    "camunda-modeler__illegal-whitespace.bpmn": Case(
        start="nothing to start",
    ),
    "camunda-modeler__lint-errors.bpmn": Case(
        errors=("camunda8-unsupported",),
        note="a Camunda 8 model (Zeebe forms and job types)",
    ),
    "camunda-modeler__user-task-form.bpmn": Case(
        errors=("camunda8-unsupported",), note="a Camunda 8 model (a zeebe:userTask)"
    ),
    "camunda-modeler__xss.bpmn": Case(
        start="finished",
        note="HTML in ids and names: loads, and its plain tasks pass straight through",
    ),
    "camunda-platform__MultiInstanceTest.testNestedMultiInstanceTasks.bpmn": Case(
        start="todo",
        first_todo=("miTasks",),
        setup=Setup(data={"subProcesses": [1, 2], "assignees": ["a", "b"]}),
        note="nested countersigns; `kermit_${loopCounter}` picks each signer",
    ),
    COMPLEX_SCENARIO: Case(errors=("no-handlers",)),
    "camunda-platform__complex-process.bpmn": Case(
        errors=(
            "bpmn-invalid",
            "receive-without-message",
            "unknown-process",
            "unsupported-start-event",
        ),
        note="a service task with several outgoing flows; a call to a process not in the corpus",
    ),
    "camunda-platform__invoice.v1.bpmn": Case(
        errors=("bpmn-invalid",), note="a data store without implementation"
    ),
    "camunda-platform__invoice.v2.bpmn": Case(
        errors=("bpmn-invalid",), note="a data store without implementation"
    ),
    "camunda-platform__reviewInvoice.bpmn": Case(start="todo", first_todo=("assignReviewer",)),
    PERCENTAGE: Case(
        errors=("mi-incomplete", "no-handlers"),
        helped=(),
        start="todo",
        first_todo=("task",),
        setup=Setup(
            nodes=PERCENTAGE_NODES, data={"approvers": ["T001", "T002"], "percentageCompleted": 0.5}
        ),
        note="a countersign of 2 by cardinality: node override `handlers: approvers[loopCounter]`",
    ),
    "flowable__VacationRequest.bpmn": Case(start="todo", first_todo=("handleRequest",)),
    "flowable__doge.bpmn": Case(
        errors=("receive-without-message",),
        note="a receive task without a message (Flowable triggers it through its API): "
        "SpiffWorkflow would run past it; `$INITIATOR` assignees read as the initiator",
    ),
    "flowable__multiinstancemodel.bpmn": Case(
        errors=("mi-collection-missing", "mi-incomplete"), note="a Java collection handler class"
    ),
    "flowable__othertoolimport.bpmn": Case(
        errors=("bpmn-invalid",), note="an exclusive flow without condition that is not the default"
    ),
    "flowable__parallelTaskWithMI.bpmn": Case(errors=("mi-incomplete", "no-handlers")),
    "flowable__reviewSalesLead.bpmn": Case(start="todo", first_todo=("provideNewSalesLead",)),
    "flowable__subprocessmodel-noDI.bpmn": Case(errors=("no-handlers",)),
    "flowable__testInvoiceProcessSignavio.bpmn": Case(
        start="nothing to start",
    ),
    "flowable__testProcessFromAdonis.bpmn": Case(
        start="nothing to start",
    ),
    "spiff-arena__call_activity_multi.bpmn": Case(
        start="nothing to start",
    ),
    "spiff-arena__invoice.bpmn": Case(
        errors=("xml-dtd-forbidden",), note="an XXE template (DOCTYPE with an external entity)"
    ),
    "spiff-arena__lanes_with_lane_owners.bpmn": Case(errors=("no-handlers",)),
    "spiff-arena__message-start-event-with-multiple-forms.bpmn": Case(errors=("no-handlers",)),
    TIMER: Case(
        errors=("no-handlers",),
        helped=(),
        start="todo",
        first_todo=("HumanTask",),
        setup=Setup(nodes=TIMER_NODES, data={"signers": {"a": "T001", "b": "T002", "c": "T003"}}),
        note="no assignee: node override `handlers: signers[item]`",
    ),
    "spiff-arena__multiinstance.bpmn": Case(
        errors=("bpmn-invalid", "unknown-process"),
        note="a DMN decision that is not loaded; a call to a process in another file",
    ),
    "spiff-arena__multiinstance_user_task_sequential.bpmn": Case(errors=("no-handlers",)),
    "spiff-arena__new_bpmn_diagram.bpmn": Case(
        start="finished", note="a template: `{{PROCESS_ID}}` as process id, start straight to end"
    ),
    "spiff-arena__show-content.bpmn": Case(errors=("no-handlers",)),
    "spiff-arena__user_task_with_timer.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__Approvals.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__boundary_timer_on_task.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__data_object_invalid.bpmn": Case(
        errors=("duplicate-id",), note="two data object references share an id"
    ),
    "spiffworkflow__human_task_metadata.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__lanes.bpmn": Case(
        start="todo", first_todo=("Activity_A1",), note="lane names are the handling groups"
    ),
    "spiffworkflow__non-executable-process.bpmn": Case(
        start="nothing to start",
    ),
    "spiffworkflow__noninterrupting-MessageBoundary.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__timer-non-interrupt-boundary.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__token_trial_nested_parallel.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__transaction.bpmn": Case(errors=("no-handlers",)),
    "spiffworkflow__user_task_variable.bpmn": Case(errors=("no-handlers",)),
    LEAVE: Case(
        start="todo",
        first_todo=("deptleaderaudit",),
        setup=Setup(data={"deptleader": "T100", "hr": "T200"}),
        note="start data names the department leader and HR; `applyuserid` is the initiator",
    ),
    MEETING: Case(
        start="todo",
        first_todo=("usertask2",),
        setup=Setup(data={"people": ["T001", "T002", "T003"]}),
        note="start data lists the people; `host` is the initiator",
    ),
    "spring-activiti__purchase.bpmn": Case(
        start="todo",
        first_todo=("purchaseAuditi",),
        setup=Setup(data={"purchasemanager": "P001"}),
        note="its error events name the code `payment_reject`, which Activiti reads as the "
        "error code itself: the error is declared with it",
    ),
}


def setups(cases: Mapping[str, Case]) -> dict[str, Setup]:
    return {name: case.setup for name, case in cases.items()}


def notes(cases: Mapping[str, Case]) -> dict[str, str]:
    return {name: case.note for name, case in cases.items() if case.note}
