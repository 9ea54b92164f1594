"""The state journal: a frame holds every task a step changed, so snapshot + frames == live.

Each test changes a workflow the way SpiffWorkflow can (state, data, children), encodes a
frame on top of a snapshot, loads the text back and compares it with the live workflow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from SpiffWorkflow.util.task import TaskState

from engine_bridge.engine import journal, load_state
from engine_bridge.engine.journal import (
    COMPACT_RATIO,
    JOURNAL_PREFIX,
    decode_state,
    encode_state,
)
from engine_bridge.engine.state import definition_json, dump_document

from .kit import END, START, Run, chain, definitions, flow, load, process, user

FORK = definitions(
    process(
        "fork",
        START
        + '<bpmn:parallelGateway id="split"/>'
        + user("a", "'A1'")
        + user("b", "'B1'")
        + '<bpmn:parallelGateway id="join"/>'
        + user("last", "'L1'")
        + END
        + flow("start", "split")
        + flow("split", "a")
        + flow("split", "b")
        + flow("a", "join")
        + flow("b", "join")
        + chain("join", "last", "end"),
    )
)


@pytest.fixture(autouse=True)
def _frames_for_small_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    """These workflows are small; let them have frames as a large one would."""
    monkeypatch.setattr(journal, "FRAME_MIN_TASKS", 0)


def _started() -> Run:
    run = Run(load(FORK, "fork"))
    run.start()
    return run


def _document(wf: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(dump_document(wf), ensure_ascii=False))
    return loaded


def _reload(run: Run, text: str) -> Any:
    wf, _ = decode_state(text, definition_json(run.process), script_engine=None)
    return wf


def _assert_same(live: Any, loaded: Any) -> None:
    expected, actual = _document(live), _document(loaded)
    assert expected == actual
    assert list(expected["tasks"]) == list(actual["tasks"])


def _frame_after(run: Run, change: Any) -> tuple[str, list[str]]:
    """Snapshot, apply ``change`` to the live workflow, frame; the text and framed ids."""
    snapshot = encode_state(run.wf, None)
    change(run.wf)
    encoded = encode_state(run.wf, snapshot.stored)
    assert encoded.frame is not None, "expected a frame, got a snapshot"
    ids = [t["id"] for t in json.loads(encoded.frame)["tasks"]]
    return snapshot.text + "\n" + encoded.frame, ids


def _task(wf: Any, name: str) -> Any:
    (found,) = [t for t in wf.tasks.values() if t.task_spec.name == name]
    return found


def test_a_completion_is_a_frame_that_reloads_equal() -> None:
    """Completing one branch writes its tasks, nothing else, and reloads to the live state."""
    run = _started()
    text, ids = _frame_after(
        run,
        lambda wf: run.engine.complete(
            wf,
            run.process,
            instance_id=run.instance_id,
            todo_id=run.todo("a").todo_id,
            handler="A1",
        ),
    )
    assert len(ids) < len(run.wf.tasks)
    _assert_same(run.wf, _reload(run, text))
    assert load_state(text, definition_json(run.process), script_engine=None) is not None


def test_a_removed_task_rewrites_its_parent() -> None:
    """A task removed from the tree takes its parent into the frame (its children changed)."""
    run = _started()
    ready = _task(run.wf, "a")  # READY: only the removal says it must be written again
    (child,) = ready.children
    parent_id = str(ready.id)
    text, ids = _frame_after(run, lambda wf: wf._remove_task(child.id))
    assert parent_id in ids
    _assert_same(run.wf, _reload(run, text))


def test_a_waiting_task_whose_data_changed_is_in_the_frame() -> None:
    """Tasks not yet READY inherit data without a state change; they are framed."""
    run = _started()
    volatile = TaskState.WAITING | TaskState.FUTURE | TaskState.PREDICTED_MASK
    waiting = next(t for t in run.wf.tasks.values() if t.state & volatile)

    def change(wf: Any) -> None:
        waiting.data["inherited"] = {"from": "parent"}

    text, ids = _frame_after(run, change)
    assert str(waiting.id) in ids
    _assert_same(run.wf, _reload(run, text))


def test_the_children_of_a_changed_task_are_in_the_frame() -> None:
    """When a task's state changes its children get its data; they are framed with it."""
    run = _started()
    split = _task(run.wf, "split")
    child = split.children[0]

    def change(wf: Any) -> None:
        split._set_state(TaskState.READY)
        child.data["merged"] = 1

    text, ids = _frame_after(run, change)
    assert {str(split.id), str(child.id)} <= set(ids)
    _assert_same(run.wf, _reload(run, text))


def test_a_finished_instance_is_one_compressed_snapshot() -> None:
    """The last step writes a snapshot, compressed, even when frames were allowed."""
    run = _started()
    stored = encode_state(run.wf, None).stored
    for node, handler in (("a", "A1"), ("b", "B1"), ("last", "L1")):
        run.complete(node, handler)
        encoded = encode_state(run.wf, stored)
        stored = encoded.stored
    assert encoded.frame is None and encoded.text.startswith(JOURNAL_PREFIX)
    body = encoded.text[len(JOURNAL_PREFIX) :]
    assert "\n" not in body and not body.startswith("{")
    _assert_same(run.wf, _reload(run, encoded.text))


def test_frames_give_way_to_a_snapshot_when_they_outgrow_it() -> None:
    """Once the frames add up to COMPACT_RATIO snapshots, the next step writes a snapshot."""
    run = _started()
    encoded = encode_state(run.wf, None)
    stored = encoded.stored
    stored.journal_chars = COMPACT_RATIO * stored.snapshot_chars
    run.complete("a", "A1")
    assert encode_state(run.wf, stored).frame is None


def test_internal_data_json_cannot_take_goes_through_the_registry() -> None:
    """A value JSON has no form for (a datetime) is written the way SpiffWorkflow writes it,
    and comes back as the same value."""
    run = _started()
    task = _task(run.wf, "a")

    def change(wf: Any) -> None:
        task.internal_data["due"] = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
        task._set_state(TaskState.STARTED)

    text, ids = _frame_after(run, change)
    assert str(task.id) in ids
    loaded = _reload(run, text)
    _assert_same(run.wf, loaded)
    assert loaded.tasks[task.id].internal_data["due"] == datetime(2031, 1, 2, 3, 4, tzinfo=UTC)
