"""Shortcuts a step takes instead of SpiffWorkflow's generic paths give the same answers.

Each shortcut (one READY scan per round, the completion check, the signer index, the snapshot
writer, bare-name expressions) is compared with the slow path it replaces, on live workflows
after every step.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.util.task import TaskState

from engine_bridge.clock import FakeClock
from engine_bridge.engine import Engine
from engine_bridge.engine.countersign import instances
from engine_bridge.engine.journal import _whole, decode_state, encode_state
from engine_bridge.engine.scan import is_finished, ready_by_kind
from engine_bridge.engine.script_engine import RestrictedEnvironment, ScriptSecurityError
from engine_bridge.engine.state import definition_json, dump_document
from engine_bridge.engine.todos import _scan_signers, signer_share

from .kit import END, START, Run, chain, definitions, load, process, user
from .test_engine_countersign import mi_process
from .test_scan import _fork


def _walked(wf: Any, manual: bool) -> list[Any]:
    # SpiffWorkflow's own iterator (the workflow's get_tasks walks with the bridge's walk)
    return list(BpmnTaskIterator(wf.task_tree, state=TaskState.READY, manual=manual))


def _spiff_document(wf: Any) -> Any:
    return json.loads(json.dumps(dump_document(wf), ensure_ascii=False))


@pytest.mark.parametrize("branches", [["a", "b", "c"], ["s1,a", "s2,s3,b", "c"]])
def test_one_scan_answers_both_questions_of_a_round(branches: list[str]) -> None:
    """ready_by_kind gives the walk's READY manual tasks (same order) and whether any READY
    task is not manual; is_finished agrees with SpiffWorkflow's completion check."""
    run = Run(load(_fork(branches), "fork"))
    run.start()
    while run.facts is not None and run.facts.open_todos:
        manual, engine = ready_by_kind(run.wf)
        assert manual == _walked(run.wf, True)
        assert engine == bool(_walked(run.wf, False))
        assert is_finished(run.wf) is False
        todo = run.facts.open_todos[-1]
        run.complete(todo.node_id, todo.handlers[0])
    assert run.facts is not None and run.facts.finished
    run.wf.completed = False  # as a freshly loaded finished workflow may say
    assert is_finished(run.wf) is True
    assert run.wf.completed is True  # recorded, as SpiffWorkflow's own check does


def _countersign(signers: list[str]) -> tuple[Engine, Any, Any, str]:
    process_ = load(mi_process(), "cs")
    engine = Engine(clock=FakeClock())
    wf, facts = engine.start(
        process_, instance_id="i", initiator="u", data={"signers": signers, "title": "t"}
    )
    (todo,) = facts.open_todos
    return engine, process_, wf, todo.todo_id


def _anchor(wf: Any) -> Any:
    (anchor,) = [t for t in wf.tasks.values() if t.task_spec.name == "sign"]
    return anchor


def test_the_signer_index_finds_what_a_pass_over_the_instances_finds() -> None:
    """On one live workflow, signer after signer: every name (signed, open, unknown) gets the
    share the full pass gives, and completing through the index leaves the right ones."""
    signers = [f"S{n:02d}" for n in range(12)]
    engine, process_, wf, todo_id = _countersign(signers)
    for done, signer in enumerate(signers[:-1]):
        anchor = _anchor(wf)
        for name in [*signers, "nobody"]:
            assert signer_share(anchor, name) is _scan_signers(anchor, name)
        facts = engine.complete(
            wf, process_, instance_id="i", todo_id=todo_id, handler=signer, data={"decision": "ok"}
        )
        (open_todo,) = facts.open_todos
        assert open_todo.handlers == tuple(signers[done + 1 :])
    assert signer_share(_anchor(wf), signers[0]) is None


def test_a_name_two_instances_share_is_looked_up_the_slow_way() -> None:
    """Kept handlers naming one person in two instances (a state written before such
    collections were refused) are left out of the index: the first open instance in order
    answers."""
    _engine, _process, wf, _todo = _countersign(["a", "b", "c"])
    anchor = _anchor(wf)
    first, second, third = instances(anchor)
    second.internal_data["eb_handlers"] = ["a"]
    assert signer_share(anchor, "a") is first
    first._set_state(TaskState.COMPLETED)
    assert signer_share(anchor, "a") is second
    assert signer_share(anchor, "c") is third


def test_an_instance_naming_two_people_is_no_share_of_the_countersign_todo() -> None:
    """Such an instance is a todo of its own: neither the index nor the slow way answers
    with it for the countersign todo."""
    _engine, _process, wf, _todo = _countersign(["a", "b", "c"])
    anchor = _anchor(wf)
    first, second, _third = instances(anchor)
    second.internal_data["eb_handlers"] = ["b", "a"]
    second.internal_data["eb_own_todo"] = True  # decided with its handlers
    assert signer_share(anchor, "a") is first
    assert signer_share(anchor, "b") is None
    first._set_state(TaskState.COMPLETED)
    assert signer_share(anchor, "a") is None


def test_an_instance_without_kept_handlers_disables_the_index() -> None:
    """An instance not yet shown (no kept handlers) could later name anyone: no index then."""
    _engine, _process, wf, _todo = _countersign(["a", "b"])
    anchor = _anchor(wf)
    first, second = instances(anchor)
    del second.internal_data["eb_handlers"]
    assert signer_share(anchor, "a") is first
    second.internal_data["eb_handlers"] = ["a"]
    first._set_state(TaskState.COMPLETED)
    assert signer_share(anchor, "a") is second


LINE = definitions(
    process(
        "line",
        START + user("a", "'A1'") + user("b", "'B1'") + END + chain("start", "a", "b", "end"),
    )
)


def test_the_snapshot_writer_gives_spiffworkflows_document() -> None:
    """The snapshot text parses to exactly what SpiffWorkflow's converters write, at every
    step of a countersign and of a plain chain, finished instance included."""
    engine, process_, wf, todo_id = _countersign(["a", "b", "c"])
    for signer in ["a", "b", "c"]:
        assert json.loads(_whole(wf, {})) == _spiff_document(wf)
        engine.complete(
            wf, process_, instance_id="i", todo_id=todo_id, handler=signer, data={"decision": "ok"}
        )
    run = Run(load(LINE, "line"))
    run.start()
    for node, handler in [("a", "A1"), ("b", "B1")]:
        assert json.loads(_whole(run.wf, {})) == _spiff_document(run.wf)
        run.complete(node, handler)
    assert json.loads(_whole(run.wf, {})) == _spiff_document(run.wf)


def test_a_snapshot_with_values_json_cannot_take_is_written_by_the_registry() -> None:
    """A datetime in internal data makes the snapshot go through SpiffWorkflow's converters;
    it loads back as the same value."""
    run = Run(load(LINE, "line"))
    run.start()
    (task,) = [t for t in run.wf.tasks.values() if t.task_spec.name == "a"]
    task.internal_data["due"] = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
    encoded = encode_state(run.wf, None)
    loaded, _ = decode_state(encoded.text, definition_json(run.process), script_engine=None)
    assert _spiff_document(loaded) == _spiff_document(run.wf)
    assert loaded.tasks[task.id].internal_data["due"] == datetime(2031, 1, 2, 3, 4, tzinfo=UTC)


def test_a_bare_name_reads_task_data_as_evaluation_would() -> None:
    env = RestrictedEnvironment()
    assert env.evaluate("signer", {"signer": "S1"}) == "S1"
    assert env.evaluate(" signer\n", {"signer": ["a", "b"]}) == ["a", "b"]
    # The sandbox's own names win over task data, as in a full evaluation.
    assert env.evaluate("juel_empty", {"juel_empty": 1}) is env.globals["juel_empty"]
    # Keywords stay keywords; refused names stay refused; missing names stay missing.
    assert env.evaluate("True", {"True": 0}) is True
    with pytest.raises(ScriptSecurityError):
        env.evaluate("_secret", {"_secret": 1})
    with pytest.raises(NameError):
        env.evaluate("absent", {})
    # Python reads a compatibility spelling under its normalized name.
    assert env.evaluate("ﬁle", {"ﬁle": 1, "file": 2}) == 2
