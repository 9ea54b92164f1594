"""What complete/start/cancel refuse, and that a refusal or failure changes nothing."""

from __future__ import annotations

import math

import pytest

from engine_bridge.engine import dump_state
from engine_bridge.errors import (
    EngineError,
    InputError,
    InvalidDataError,
    NotAHandlerError,
    ScriptSecurityError,
    TaskNotOpenError,
)

from .kit import END, START, Run, chain, definitions, flow, load, process, user

TWO_STEPS = definitions(
    process(
        "two",
        START + user("a", "'U1'") + user("b", "'U2'") + END + chain("start", "a", "b", "end"),
    )
)


def started(xml: str = TWO_STEPS, pid: str = "two", data: dict[str, object] | None = None) -> Run:
    run = Run(load(xml, pid))
    run.start(data or {})
    return run


def attempt(run: Run, todo_id: str, handler: str = "U1", data: object = None) -> None:
    run.engine.complete(
        run.wf,
        run.process,
        instance_id=run.instance_id,
        todo_id=todo_id,
        handler=handler,
        data=data,  # type: ignore[arg-type]
    )


def test_unknown_or_foreign_todo_ids_are_not_open() -> None:
    """Ids that name no task of this instance are TaskNotOpenError, state untouched."""
    run = started()
    good = run.todo("a").todo_id
    before = dump_state(run.wf)
    for bad in (
        "nope",
        "inst-2:" + good.split(":", 1)[1],
        "inst-1:not-a-uuid",
        "inst-1:00000000-0000-0000-0000-000000000000",
    ):
        with pytest.raises(TaskNotOpenError):
            attempt(run, bad)
    assert dump_state(run.wf) == before


def test_completed_todo_cannot_be_completed_again() -> None:
    """A resent completion of a finished todo is refused, never re-run."""
    run = started()
    old = run.todo("a").todo_id
    run.complete("a", "U1")
    with pytest.raises(TaskNotOpenError, match="'a'"):
        attempt(run, old)
    assert run.nodes() == ["b"]


def test_future_task_cannot_be_completed_by_guessing_its_id() -> None:
    """A task that is not READY (predicted, waiting) is not a todo."""
    run = started()
    future_b = next(t for t in run.wf.get_tasks() if t.task_spec.name == "b")
    with pytest.raises(TaskNotOpenError):
        attempt(run, f"inst-1:{future_b.id}", handler="U2")


def test_wrong_handler_is_refused_with_the_allowed_ones() -> None:
    """NotAHandlerError names the handler, the todo and who may complete it."""
    run = started()
    todo = run.todo("a")
    with pytest.raises(NotAHandlerError) as caught:
        attempt(run, todo.todo_id, handler="X9")
    message = str(caught.value)
    assert "X9" in message and todo.todo_id in message and "U1" in message


@pytest.mark.parametrize(
    "data",
    [["not", "a", "dict"], {1: "int key"}, {"x": object()}, {"x": math.nan}, {"__class__": 1}],
)
def test_invalid_completion_data_is_refused_before_running(data: object) -> None:
    """Data must be a JSON object with str keys; nothing runs when it is not."""
    run = started()
    before = dump_state(run.wf)
    with pytest.raises(InvalidDataError):
        attempt(run, run.todo("a").todo_id, data=data)
    assert dump_state(run.wf) == before


def test_invalid_start_data_is_refused() -> None:
    """Start data follows the same rules."""
    run = Run(load(TWO_STEPS, "two"))
    with pytest.raises(InvalidDataError, match="'when'"):
        run.engine.start(run.process, instance_id="i", initiator="u", data={"when": {1, 2}})


def test_completion_is_recorded_outside_task_data() -> None:
    """Who completed and their opinion are kept in internal data, not in process data."""
    run = started()
    task_id = run.todo("a").todo_id.split(":", 1)[1]
    run.complete("a", "U1", {"ok": True}, opinion="同意")
    task = next(t for t in run.wf.get_tasks() if str(t.id) == task_id)
    assert task.internal_data["eb_completed_by"]["handler"] == "U1"
    assert task.internal_data["eb_completed_by"]["opinion"] == "同意"
    assert task.data == {"ok": True}


GROUP = definitions(
    process(
        "grp",
        START
        + '<bpmn:userTask id="office" name="Office">'
        + "<bpmn:extensionElements><spiffworkflow:properties>"
        + "<spiffworkflow:property name=\"handlingGroup\" value=\"['dept-office', 'it']\"/>"
        + "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>"
        + END
        + chain("start", "office", "end"),
    )
)


def test_group_only_todo_accepts_any_handler() -> None:
    """A todo with handling groups and no handlers can be completed by whoever the centre let in."""
    run = started(GROUP, "grp")
    todo = run.todo("office")
    assert todo.handlers == () and todo.handling_groups == ("dept-office", "it")
    assert run.complete("office", "anyone").finished


LANES = definitions(
    '<bpmn:collaboration id="c"><bpmn:participant id="p" processRef="lanes"/></bpmn:collaboration>',
    process(
        "lanes",
        '<bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Finance">'
        "<bpmn:flowNodeRef>pay</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
        + START
        + '<bpmn:userTask id="pay" name="Pay"/>'
        + END
        + chain("start", "pay", "end"),
    ),
)


def test_lane_name_is_the_fallback_handling_group() -> None:
    """A user task with no handler settings is handled by its lane's group."""
    run = started(LANES, "lanes")
    assert run.todo("pay").handling_groups == ("Finance",)


NOBODY = definitions(
    process(
        "nobody",
        START + user("a", "'U1'") + user("b", "reviewers") + END + chain("start", "a", "b", "end"),
    )
)


@pytest.mark.parametrize("reviewers", ["", " , ", []])
def test_user_task_with_no_handlers_is_an_engine_error_naming_the_node(reviewers: object) -> None:
    """A user task nobody can complete must not open silently."""
    run = started(NOBODY, "nobody")
    with pytest.raises(EngineError, match="'b'"):
        attempt(run, run.todo("a").todo_id, data={"reviewers": reviewers})


def test_missing_handler_variable_is_an_engine_error() -> None:
    """A handlers expression over data that is not there names the node and the expression."""
    run = started(NOBODY, "nobody")
    with pytest.raises(EngineError, match="reviewers"):
        attempt(run, run.todo("a").todo_id)


def test_failed_step_leaves_the_stored_state_usable() -> None:
    """After a failure the caller reloads the stored state: the todo is still open there."""
    run = started(NOBODY, "nobody")
    stored = dump_state(run.wf)
    todo_id = run.todo("a").todo_id
    with pytest.raises(EngineError):
        attempt(run, todo_id)
    from engine_bridge.engine import definition_json, load_state

    wf = load_state(stored, definition_json(run.process), script_engine=run.engine.script_engine)
    run.wf = wf
    attempt(run, todo_id, data={"reviewers": "R1, R2"})
    todos = run.engine.open_todos(run.wf, run.process, instance_id="inst-1")
    assert [t.handlers for t in todos] == [("R1", "R2")]


def test_handlers_are_evaluated_once_and_do_not_drift() -> None:
    """Changing a READY task's data later does not change who handles its todo."""
    run = started(NOBODY, "nobody")
    run.complete("a", "U1", {"reviewers": ["R1"]})
    task = next(t for t in run.wf.get_tasks() if t.task_spec.name == "b")
    task.data["reviewers"] = ["SOMEONE ELSE"]
    todos = run.engine.open_todos(run.wf, run.process, instance_id="inst-1")
    assert todos[0].handlers == ("R1",)


EVIL = definitions(
    process(
        "evil",
        START
        + user("a", "'U1'")
        + '<bpmn:exclusiveGateway id="gw" default="d"/>'
        + user("b", "'U2'")
        + END
        + chain("start", "a", "gw")
        + flow("gw", "b", "__import__('os').getpid() &gt; 0")
        + flow("gw", "end", flow_id="d")
        + flow("b", "end", flow_id="b_end"),
    )
)


def test_condition_leaving_the_sandbox_raises_script_security_error() -> None:
    """__import__ in a gateway condition is ScriptSecurityError, as raised by the sandbox."""
    run = started(EVIL, "evil")
    with pytest.raises(ScriptSecurityError, match="__import__"):
        attempt(run, run.todo("a").todo_id)


def test_handler_expression_leaving_the_sandbox_raises_script_security_error() -> None:
    """A handlers expression is just as restricted."""
    xml = definitions(
        process(
            "h", START + user("a", "__import__('os').getlogin()") + END + chain("start", "a", "end")
        )
    )
    run = Run(load(xml, "h"))
    with pytest.raises(ScriptSecurityError):
        run.engine.start(run.process, instance_id="i", initiator="u", data={})


def test_workflow_of_another_instance_is_refused() -> None:
    """Passing instance B's id with instance A's workflow would mint wrong todo ids."""
    run = started()
    with pytest.raises(InputError, match="inst-1"):
        run.engine.open_todos(run.wf, run.process, instance_id="inst-2")


def test_cancelling_a_finished_instance_is_refused() -> None:
    """Nothing to cancel once the process has ended."""
    run = started()
    run.complete("a", "U1")
    run.complete("b", "U2")
    with pytest.raises(InputError, match="already finished"):
        run.engine.cancel(run.wf, run.process, instance_id="inst-1", by="admin")


def test_initiator_is_available_to_handler_expressions() -> None:
    """A 'back to the applicant' task can name the initiator."""
    xml = definitions(
        process("ini", START + user("fix", "initiator") + END + chain("start", "fix", "end"))
    )
    run = Run(load(xml, "ini"))
    run.start({}, initiator="2023001")
    assert run.todo("fix").handlers == ("2023001",)
    assert all("initiator" not in t.data for t in run.wf.get_tasks())
