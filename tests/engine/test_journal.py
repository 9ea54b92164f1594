"""The state journal: a frame holds every task a step changed, so snapshot + frames == live.

Each test changes a workflow the way SpiffWorkflow can (state, data, children), encodes a
frame on top of a snapshot, loads the text back and compares it with the live workflow.
"""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

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
from engine_bridge.errors import EngineError

from .kit import END, START, Run, chain, definitions, flow, load, process, user


class _Level(enum.IntEnum):
    HIGH = 3


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


def _frames_after(run: Run, *changes: Any, stored: Any = None) -> tuple[str, list[dict[str, Any]]]:
    """Snapshot (or carry on from ``stored``), then one frame per change; the whole text and
    each frame's records by task id."""
    if stored is None:
        snapshot = encode_state(run.wf, None)
        text, stored = snapshot.text, snapshot.stored
    else:
        text = ""
    frames = []
    for change in changes:
        change(run.wf)
        encoded = encode_state(run.wf, stored)
        assert encoded.frame is not None, "expected a frame, got a snapshot"
        text += "\n" + encoded.frame
        stored = encoded.stored
        frames.append({record["id"]: record for record in json.loads(encoded.frame)["tasks"]})
    return text, frames


def _touch(task: Any, change: Any = None) -> Any:
    """A change to ``task`` that the journal sees (a new state stamp), plus ``change``."""

    def apply(wf: Any) -> None:
        task.last_state_change += 1.0
        if change is not None:
            change(task)

    return apply


def test_a_task_in_consecutive_frames_is_patched_and_reloads_equal() -> None:
    """Written whole in the first two frames, then as a patch that appends to a grown list,
    sets a changed value, deletes a removed one and carries a changed nested value."""
    run = _started()
    task = _task(run.wf, "a")
    task_id = str(task.id)

    def first(t: Any) -> None:
        t.data.update(items=["x"], gone=1, nested={"k": [1]})
        t.internal_data["merged"] = ["m1"]

    def grow(t: Any) -> None:
        t.data["items"].append("y")
        t.data["title"] = "changed"
        del t.data["gone"]
        t.data["nested"]["k"].append(2)  # changed in place: only its text tells
        t.internal_data["merged"].append("m2")

    text, frames = _frames_after(run, _touch(task, first), _touch(task), _touch(task, grow))
    assert "patch" not in frames[0][task_id] and "patch" not in frames[1][task_id]
    patch = frames[2][task_id]
    assert patch["patch"] == journal.PATCH_FORMAT
    assert patch["data"] == {
        "set": {"title": "changed", "nested": {"k": [1, 2]}},
        "del": ["gone"],
        "add": {"items": ["y"]},
    }
    assert patch["internal_data"] == {"add": {"merged": ["m2"]}}
    assert "children" not in patch and "children_add" not in patch
    _assert_same(run.wf, _reload(run, text))


def test_a_task_ahead_left_as_stored_is_left_out_and_patched_when_it_changes() -> None:
    """A task not yet READY is looked at in every frame; once remembered, it is left out of
    the frames while it is as stored, and patched against what is stored when its data or
    its triggered flag change without a change of state."""
    run = _started()
    volatile = TaskState.WAITING | TaskState.FUTURE | TaskState.PREDICTED_MASK
    ahead = next(t for t in run.wf.tasks.values() if t.state & volatile)
    ahead_id, other = str(ahead.id), _task(run.wf, "a")

    def data(wf: Any) -> None:
        _touch(other)(wf)
        ahead.data["note"] = "re-evaluated"

    def triggered(wf: Any) -> None:
        _touch(other)(wf)
        ahead.triggered = not ahead.triggered

    steps = [_touch(other)] * 4 + [data, _touch(other), triggered]
    text, frames = _frames_after(run, *steps)
    assert [ahead_id in frame for frame in frames] == [True, True, False, False, True, False, True]
    assert "patch" not in frames[1][ahead_id]  # the second frame in a row remembers it
    assert frames[4][ahead_id]["data"] == {"set": {"note": "re-evaluated"}}
    assert frames[6][ahead_id]["triggered"] is ahead.triggered
    assert {"data", "internal_data", "children"}.isdisjoint(frames[6][ahead_id])
    _assert_same(run.wf, _reload(run, text))


def _set_up_ahead(t: Any, *, nested: bool = False) -> None:
    t.data.update(n=1, zero=0.0, text="x", items=["aa", "bb"])
    if nested:
        t.data["nested"] = {"k": [1]}
    t.internal_data["seen"] = ["s1"]


class _Key(str):
    """A key that is a str to JSON but not to the journal, which writes str keys only."""


#: Changes to a task ahead that leave its state (and state stamp) as it was.
AHEAD_CHANGES = {
    "scalar": lambda t: t.data.update(n=2),
    "int to an equal float": lambda t: t.data.update(n=1.0),
    "int to an equal bool": lambda t: t.data.update(n=True),
    "zero to minus zero": lambda t: t.data.update(zero=-0.0),
    "list item replaced in place": lambda t: t.data["items"].__setitem__(0, "cc"),
    "list grown": lambda t: t.data["items"].append("cc"),
    "list shrunk": lambda t: t.data["items"].pop(),
    # equal, but not the same objects: only their identity tells an unchanged list cheaply
    "list of equal other items": lambda t: t.data.update(items=["aa", "".join(["b", "b"])]),
    "nested value changed in place": lambda t: t.data["nested"]["k"].append(2),
    "key swapped for another": lambda t: (t.data.pop("text"), t.data.update(other="x")),
    "key deleted": lambda t: t.data.pop("text"),
    "key put back as another kind of str": lambda t: t.data.__setitem__(
        _Key("text"), t.data.pop("text")
    ),
    "internal data grown": lambda t: t.internal_data["seen"].append("s2"),
    "internal data replaced": lambda t: t.internal_data.update(seen="s"),
    "triggered": lambda t: setattr(t, "triggered", not t.triggered),
    "child added": lambda t: t._add_child(t.task_spec, TaskState.FUTURE),
    "parent changed": lambda t: setattr(t, "_parent", t.workflow.task_tree.id),
    "state changed": lambda t: t._set_state(TaskState.CANCELLED),
}


@pytest.mark.parametrize("change", sorted(AHEAD_CHANGES))
def test_a_change_to_a_task_ahead_is_framed(change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task not yet READY, remembered from earlier frames, is left out while it is as
    stored, without a patch being built for it (unless a value is not a scalar or a list of
    them); it comes back into the frame for any change of its values, fields, children or
    state, even one that leaves its state stamp alone; and the state reloads equal."""
    nested = change == "nested value changed in place"
    run = _started()
    volatile = TaskState.WAITING | TaskState.FUTURE | TaskState.PREDICTED_MASK
    ahead = next(t for t in run.wf.tasks.values() if t.state & volatile)
    other = _task(run.wf, "a")
    patched: list[Any] = []
    real_patch = journal._patch

    def counting(task: Any, last: Any) -> Any:
        patched.append(task)
        return real_patch(task, last)

    monkeypatch.setattr(journal, "_patch", counting)

    def set_up(wf: Any) -> None:
        _touch(other)(wf)
        _set_up_ahead(ahead, nested=nested)

    def unchanged(wf: Any) -> None:
        patched.clear()
        _touch(other)(wf)

    def changed(wf: Any) -> None:
        assert (ahead in patched) is nested, "a task as stored is told without a patch"
        _touch(other)(wf)
        AHEAD_CHANGES[change](ahead)

    text, frames = _frames_after(run, set_up, _touch(other), unchanged, changed)
    ahead_id = str(ahead.id)
    assert [ahead_id in frame for frame in frames] == [True, True, False, True]
    _assert_same(run.wf, _reload(run, text))


def test_a_list_that_did_not_just_grow_is_set_whole() -> None:
    """A list that shrank, or whose old items are not all still there in order, is written
    whole; a list grown by an item of another kind is written whole too."""
    run = _started()
    task = _task(run.wf, "a")
    task_id = str(task.id)

    def lists(t: Any) -> None:
        t.data.update(shrinks=[1, 2, 3], replaced=["a", "b"], mixed=["a"])

    def change(t: Any) -> None:
        t.data["shrinks"].pop()
        t.data["replaced"][0] = "c"
        t.data["mixed"].append({"not": "a scalar"})

    text, frames = _frames_after(run, _touch(task, lists), _touch(task), _touch(task, change))
    patch = frames[2][task_id]
    assert patch["data"] == {
        "set": {"shrinks": [1, 2], "replaced": ["c", "b"], "mixed": ["a", {"not": "a scalar"}]}
    }
    _assert_same(run.wf, _reload(run, text))


def test_an_equal_value_of_another_type_is_written_again() -> None:
    """1, 1.0 and True are equal in Python but not in JSON; -0.0 equals 0.0."""
    run = _started()
    task = _task(run.wf, "a")

    def before(t: Any) -> None:
        t.data.update(number=1, flag=1, zero=0.0, items=[1])

    def after(t: Any) -> None:
        t.data.update(number=1.0, flag=True, zero=-0.0, items=[True])

    text, frames = _frames_after(run, _touch(task, before), _touch(task), _touch(task, after))
    patch = frames[2][str(task.id)]
    assert patch["data"]["set"] == {"number": 1.0, "flag": True, "zero": -0.0, "items": [True]}
    loaded = _reload(run, text).tasks[task.id]
    assert [type(loaded.data[k]) for k in ("number", "flag", "zero")] == [float, bool, float]
    assert str(loaded.data["zero"]) == "-0.0" and loaded.data["items"] == [True]


def test_grown_and_replaced_children_are_patched() -> None:
    """Children appended go as their ids; a child list that changed otherwise, whole."""
    run = _started()
    task = _task(run.wf, "a")
    task_id = str(task.id)
    (child,) = task.children

    def add(t: Any) -> None:
        t._add_child(child.task_spec, TaskState.FUTURE)

    def remove(t: Any) -> None:
        run.wf._remove_task(child.id)

    text, frames = _frames_after(
        run, _touch(task), _touch(task), _touch(task, add), _touch(task, remove)
    )
    assert frames[2][task_id]["children_add"] == [str(task._children[-1])]
    assert frames[3][task_id]["children"] == [str(task._children[-1])]
    _assert_same(run.wf, _reload(run, text))


def test_an_encoder_without_memory_writes_whole_records() -> None:
    """After a load from the store (a restart, an evicted workflow) the encoder knows nothing
    of what the last frame held: its next two frames have whole records (a task is
    remembered from its second frame in a row), the one after patches."""
    run = _started()
    task = _task(run.wf, "a")
    task_id = str(task.id)
    text, _ = _frames_after(run, _touch(task), _touch(task))
    loaded, stored = decode_state(text, definition_json(run.process), script_engine=None)
    run.wf = loaded
    same = loaded.tasks[task.id]
    more, frames = _frames_after(run, _touch(same), _touch(same), _touch(same), stored=stored)
    assert ["patch" in frame[task_id] for frame in frames] == [False, False, True]
    _assert_same(loaded, _reload(run, text + more))


def test_a_value_json_cannot_take_makes_a_whole_record() -> None:
    """A task holding a value only SpiffWorkflow's converters can write is never patched."""
    run = _started()
    task = _task(run.wf, "a")

    def due(t: Any) -> None:
        t.internal_data["due"] = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)

    text, frames = _frames_after(run, _touch(task, due), _touch(task), _touch(task))
    assert all("patch" not in frame[str(task.id)] for frame in frames)
    _assert_same(run.wf, _reload(run, text))


def test_a_patch_of_an_unknown_format_is_refused() -> None:
    """A patch written by a newer format is an error naming it, not a silent misreading."""
    run = _started()
    task = _task(run.wf, "a")
    text, _ = _frames_after(run, _touch(task), _touch(task), _touch(task))
    assert '"patch":1' in text
    with pytest.raises(EngineError, match="patch format 99"):
        _reload(run, text.replace('"patch":1', '"patch":99'))


# Values JSON writes otherwise than orjson, or not at all (engine_bridge/json_text.py): each
# must come back as json and SpiffWorkflow's converters bring it back, whether it is in a
# snapshot, a whole record or a patch, in data or internal data. (A UUID or a datetime can
# be stored in internal data only: SpiffWorkflow's own task converter does not convert data.)
_INTERNAL_ONLY = {"uuid", "datetime"}
_AWKWARD = {
    "nan": (math.nan, lambda v: isinstance(v, float) and math.isnan(v)),
    "infinity": (-math.inf, lambda v: v == -math.inf),
    "uuid": (UUID(int=7), lambda v: v == UUID(int=7) and type(v) is UUID),
    "datetime": (
        datetime(2031, 1, 2, tzinfo=UTC),
        lambda v: v == datetime(2031, 1, 2, tzinfo=UTC) and type(v) is datetime,
    ),
    "int enum": (_Level.HIGH, lambda v: v == 3),
    "tuple": ((1, "a"), lambda v: v == [1, "a"]),
    "big int": (2**70, lambda v: v == 2**70),
    "none": (None, lambda v: v is None),
    "null text": ("null", lambda v: v == "null"),
}


@pytest.mark.parametrize("kind", list(_AWKWARD))
def test_values_json_and_orjson_write_differently_come_back_as_they_were(kind: str) -> None:
    value, same = _AWKWARD[kind]
    run = _started()
    task = _task(run.wf, "a")

    data = task.internal_data if kind in _INTERNAL_ONLY else task.data

    def put(t: Any) -> None:
        data["d"] = value
        t.internal_data["v"] = [value]
        t.internal_data["w"] = value

    def put_more(t: Any) -> None:  # a patch: a new key, a grown list
        data["d2"] = value
        t.internal_data["v"] = [*t.internal_data["v"], value]

    text, _frames = _frames_after(run, _touch(task, put), _touch(task), _touch(task, put_more))
    snapshot = encode_state(run.wf, None).text
    for stored in (text, snapshot):
        loaded = _reload(run, stored).tasks[task.id]
        values = loaded.internal_data if kind in _INTERNAL_ONLY else loaded.data
        got = [values["d"], values["d2"], loaded.internal_data["w"]]
        got += loaded.internal_data["v"]
        assert len(got) == 5
        assert all(same(v) for v in got), (kind, got)


def test_the_parent_of_a_changed_task_goes_straight_to_its_patch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A parent of a task that changed is patched without the quick "as stored?" check (a
    countersign's multi-instance task changes with every signer); when it has not changed
    after all, its patch says so and it is left out of the frame, as the check would."""
    run = _started()
    child = _task(run.wf, "a")
    parent = run.wf.tasks[child._parent]
    quick: list[Any] = []
    real = journal._unchanged

    def counting(task: Any, last: Any) -> bool:
        quick.append(task)
        return bool(real(task, last))

    monkeypatch.setattr(journal, "_unchanged", counting)
    text, frames = _frames_after(run, *[_touch(child)] * 3)
    parent_id = str(parent.id)
    assert [parent_id in frame for frame in frames] == [True, True, False]
    assert parent not in quick
    assert quick, "the tasks ahead still get the quick check"
    _assert_same(run.wf, _reload(run, text))


class _FakeTask:
    def __init__(self, n: int) -> None:
        self.id = UUID(int=n)
        self.last_state_change = float(n)


def _tasks(*tasks: _FakeTask) -> dict[UUID, Any]:
    return {t.id: t for t in tasks}


def test_changes_are_found_position_by_position_while_old_tasks_stay_in_place() -> None:
    """A new stamp object (even of an equal value) marks a change, new tasks at the end are
    changed, and nothing is removed."""
    a, b, c = _FakeTask(1), _FakeTask(2), _FakeTask(3)
    workflow = type("W", (), {"tasks": _tasks(a, b, c)})()
    before = journal._stamps(workflow)
    b.last_state_change = float("2")  # equal value, new object: SpiffWorkflow set it again
    d = _FakeTask(4)
    workflow.tasks[d.id] = d
    changed, removed = journal._changes(journal._stamps(workflow), before, workflow.tasks)
    assert changed == {b, d}
    assert removed == []


@pytest.mark.parametrize("how", ["removed", "replaced", "moved to the end"])
def test_changes_when_old_tasks_are_not_where_they_were(how: str) -> None:
    """A removed task is reported as removed (its parent is framed again); a task replaced by
    a new object of the same id is new, and not removed; a task moved in the dict is not
    changed unless its stamp is."""
    a, b, c = _FakeTask(1), _FakeTask(2), _FakeTask(3)
    workflow = type("W", (), {"tasks": _tasks(a, b, c)})()
    before = journal._stamps(workflow)
    c.last_state_change = 30.0
    if how == "removed":
        del workflow.tasks[b.id]
        expected: tuple[set[Any], list[Any]] = ({c}, [b])
    elif how == "replaced":
        again = _FakeTask(2)
        workflow.tasks[b.id] = again
        expected = ({again, c}, [])
    else:
        workflow.tasks[a.id] = workflow.tasks.pop(a.id)
        expected = ({c}, [])
    assert journal._changes(journal._stamps(workflow), before, workflow.tasks) == expected


@pytest.mark.parametrize("where", ["data", "internal_data"])
def test_a_single_nan_comes_back_from_a_snapshot_and_a_frame(where: str) -> None:
    """One NaN alone is one ``null`` in orjson's text: exactly what a miscount of the
    document's own nulls (a root's parent, no last task) would let through as a None."""
    run = _started()
    task = _task(run.wf, "a")
    getattr(task, where)["x"] = math.nan
    snapshot = encode_state(run.wf, None).text
    assert math.isnan(getattr(_reload(run, snapshot).tasks[task.id], where)["x"])

    run = _started()
    task = _task(run.wf, "a")
    text, _frames = _frames_after(
        run, _touch(task, lambda t: getattr(t, where).__setitem__("x", math.nan))
    )
    assert math.isnan(getattr(_reload(run, text).tasks[task.id], where)["x"])
