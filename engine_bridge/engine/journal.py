"""Stored workflow state as a snapshot plus a journal of per-step changes.

Serializing the whole workflow after every step costs O(tasks): for a countersign with 1000
signers that is ~440 KB of JSON and ~12 ms per completion, while SpiffWorkflow itself spends
~2 ms on the completion. Here a step writes a *frame* holding only the tasks it changed; a
fresh snapshot is written when the frames add up to several snapshots, when the process
finishes, or when the workflow is small or in a shape frames do not cover. The state text is
one part per line::

    ebstate1
    <snapshot>
    <frame 1>
    ...

The store keeps the first two lines in ``instances.state`` and each frame as a row of its own
(``state_frames``), so a step writes its frame and nothing else; reading an instance gives the
text back whole. A part is compact JSON (never a raw newline in it), or base64 of
zlib-compressed JSON: a running instance's parts stay uncompressed (compressing costs more CPU
per step than it saves in writing), the snapshot of a finished instance, kept for good, is
compressed. The snapshot is :func:`dump_document` output (SpiffWorkflow's own format without
the specs). A frame is::

    {"tasks": [task record, ...], "removed": [task id, ...], "workflow": {top-level fields}}

with task records exactly as SpiffWorkflow's ``TaskConverter`` writes them, in the workflow's
task order (a parent before its children).

A task written again in the very next frame may instead be a *patch* against what the stored
state already holds for it, marked by its ``"patch"`` key (a format number; whole records
never have that key, so frames written before patches existed load as they always did)::

    {"id": ..., "patch": 1, "state": ..., "last_state_change": ..., "triggered": ...,
     "children": [every child id] | "children_add": [ids appended],
     "data": OPS, "internal_data": OPS}        (children, data, internal_data: when changed)
    OPS = {"set": {key: value}, "del": [key, ...], "add": {key: [items appended]}}

A multi-instance parent is written at every completion of one of its instances: it has a
child per instance and its data and internal data grow by one item per merged instance, so
its whole record grows with the number of instances (~70 KB at 1000) while its patch stays
a few hundred bytes. The encoder remembers, for each task of the last frame, what that frame
left stored for it (see ``_Memory``), and writes a patch only when the task's spec and parent
are the same and every value of its data and internal data is a JSON scalar or a list of
them; a list whose old items are all still there (the same objects, in order) is extended,
anything else is set whole. Whatever it cannot tell (a new task, a task not in the previous
frame, the first frame after a snapshot or after the state was loaded from the store, other
values) is written as a whole record, as before. A patch applies to the task object already
restored, after its parent's record and before its children's, like a whole record.

Loading restores the snapshot with SpiffWorkflow and then applies the frames in order, task
by task. A record's data is a delta against its parent's data *at the time the frame was
written*; applying frames in order, parents first, gives every parent exactly that data when
its children are rebuilt, so a task that did not change keeps the data it was restored with.

Which tasks a step changed is found without serializing the others. SpiffWorkflow stamps
``last_state_change`` on every state change; data and internal data change only (a) in a
task whose state changes, (b) in the parent of a task that changed, was created or removed
(a multi-instance parent merges a finished instance's output and counts it), (c) in the
children of a task whose state changed (they inherit its data), and (d) in tasks not yet
READY (WAITING, FUTURE, predicted), which SpiffWorkflow re-evaluates after completions (they
are few: the path ahead of the process, not its instances). All of those are looked at; one
whose state did not change and whose patch would change nothing is left out of the frame.
Workflows with subprocesses or waiting events always get a snapshot: they are small and their
extra bookkeeping is restored only by SpiffWorkflow's own loader. Tests load every stored
state back and compare it with the live workflow (``InstanceCache(verify=True)``).
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, is_, is_not
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine_bridge.engine.scan import is_finished
from engine_bridge.engine.state import (
    REGISTRY,
    SERIALIZER_VERSION,
    VERSION_KEY,
    dump_document,
    load_document,
    parse_json,
)
from engine_bridge.errors import EngineError
from engine_bridge.json_text import compact

__all__ = [
    "COMPACT_RATIO",
    "FRAME_MIN_TASKS",
    "JOURNAL_PREFIX",
    "MAX_FRAMES",
    "PATCH_FORMAT",
    "Encoded",
    "StoredState",
    "decode_state",
    "encode_state",
    "is_journal",
]

JOURNAL_PREFIX = "ebstate1\n"
MAX_FRAMES = 500  # bounds the work a load does; a snapshot is written after this many frames
COMPACT_RATIO = 8  # a snapshot is written once the frames are this many times its size
#: Below this many tasks a workflow is written whole at every step. Since a frame carries
#: patches and its own record builder, a frame is cheaper than a snapshot at every size (at
#: 17 tasks 0.28 ms against 0.45 ms, its extra row included), so every size gets frames.
FRAME_MIN_TASKS = 0
_SEPARATOR = "\n"
_LEVEL = 6  # zlib level of a finished instance's snapshot
_VOLATILE = TaskState.WAITING | TaskState.FUTURE | TaskState.PREDICTED_MASK

#: A task's ``last_state_change``: SpiffWorkflow sets it to a new ``time.time()`` whenever the
#: state changes (``Task._set_state``; nothing else sets ``_state`` but its loader), so it
#: alone tells a changed task, and remembering the float itself builds nothing per task.
Stamp = float
_STAMP = attrgetter("last_state_change")
PATCH_FORMAT = 1  # the "patch" key of a patch record; a loader refuses formats it does not know
#: Values a patch compares and extends: immutable, and written by JSON exactly as they are.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MISSING: Any = object()
#: The keys of a patch that changes nothing but the task's state fields.
_BARE_PATCH = frozenset({"id", "patch", "state", "last_state_change", "triggered"})


@dataclass(frozen=True)
class _Json:
    """Any other value, as the JSON text it was written as: the live value may be changed in
    place, so only its text tells whether it is still what is stored."""

    text: str


@dataclass(frozen=True)
class _Memory:
    """What the stored state holds for one task after the frame that last wrote it.

    Values are kept as the live objects or tuples of them, never as the live containers,
    which SpiffWorkflow goes on changing in place: a scalar is itself, a list of scalars is a
    tuple of its items (their identity later tells that the old items are all still there),
    anything else is its JSON text (:class:`_Json`).
    """

    parent: UUID | None
    spec: str
    children: tuple[UUID, ...]
    data: dict[str, Any]
    internal_data: dict[str, Any]
    triggered: bool


@dataclass(frozen=True)
class _Stamps:
    """The workflow's tasks at one commit, in ``wf.tasks`` order, and the
    ``last_state_change`` object each had then.

    Lists rather than a dict keyed by task: SpiffWorkflow only appends to ``wf.tasks``, so
    as long as the old tasks are still where they were, the tasks a step changed are those
    whose stamp is no longer the same object, found position by position in C, and the new
    ones are those past the end. That is two to three times cheaper than comparing dicts,
    and every step of a countersign compares one entry per signer.
    """

    tasks: list[Any]
    stamps: list[Stamp]


@dataclass
class StoredState:
    """What is stored for an instance at one commit, remembered beside its live workflow so
    the next step can append a frame instead of serializing everything again."""

    # Every task and its last_state_change at that commit (see _Stamps).
    stamps: _Stamps
    incremental: bool  # may the next step append a frame?
    snapshot_chars: int
    journal_chars: int = 0
    frames: int = 0
    # task -> ((number of children, last child), children ids as text): a multi-instance
    # parent has a child per signer, and formatting N ids on every frame was most of a frame.
    children: dict[Any, tuple[tuple[int, UUID | None], list[str]]] = field(default_factory=dict)
    # task -> what the stored state holds for it, for the tasks of the last frame only (a
    # patch needs the task in two frames in a row; None: written, but not remembered yet).
    # A new dict for every frame, never changed afterwards.
    memory: dict[Any, _Memory | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Encoded:
    """The outcome of :func:`encode_state`: either a new snapshot (``text`` is the whole state
    text) or a frame to append to the stored state (``frame``; ``text`` is then empty)."""

    stored: StoredState
    text: str = ""
    frame: str | None = None


def is_journal(text: str) -> bool:
    return text.startswith(JOURNAL_PREFIX)


def encode_state(wf: Any, previous: StoredState | None) -> Encoded:
    """What to store after a step: a frame on top of ``previous``, or a new snapshot."""
    if previous is not None and previous.incremental and _frames_allowed(wf):
        appended = _frame(wf, previous)
        if appended is not None:
            return appended
    return _snapshot(wf, previous)


def decode_state(text: str, definition: str, *, script_engine: Any) -> tuple[Any, StoredState]:
    """Rebuild the workflow from journal text, and what is stored for it."""
    parts = text[len(JOURNAL_PREFIX) :].split(_SEPARATOR)
    wf = load_document(_unpack(parts[0], "snapshot"), definition, script_engine=script_engine)
    for number, part in enumerate(parts[1:], 1):
        try:
            _apply(wf, _unpack(part, f"frame {number}"))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(
                f"the stored workflow state could not be restored: frame {number} does not "
                f"apply to its snapshot ({type(exc).__name__}: {exc})"
            ) from exc
    return wf, StoredState(
        stamps=_stamps(wf),
        incremental=_frames_allowed(wf) and not is_finished(wf),
        snapshot_chars=len(parts[0]),
        journal_chars=sum(len(p) for p in parts[1:]),
        frames=len(parts) - 1,
    )


# ---------------------------------------------------------------------------- writing


def _snapshot(wf: Any, previous: StoredState | None) -> Encoded:
    finished = is_finished(wf)
    children = previous.children if previous is not None else {}
    packed = _pack_text(_whole(wf, children), compress=finished)
    stored = StoredState(
        stamps=_stamps(wf),
        incremental=_frames_allowed(wf) and not finished,
        snapshot_chars=len(packed),
        children=children,
    )
    return Encoded(stored, text=JOURNAL_PREFIX + packed)


def _whole(wf: Any, children: dict[Any, tuple[tuple[int, UUID | None], list[str]]]) -> str:
    """The :func:`dump_document` text of ``wf``, written with :func:`_record` instead of
    SpiffWorkflow's converter registry, which walks every value of every task through a
    chain of generic calls and costs three times as much. SpiffWorkflow's loader reads both
    alike; anything the shortcut does not cover (subprocesses, values JSON cannot take) is
    written by the registry as before."""
    if not wf.subprocesses and type(wf) in REGISTRY.typenames:
        records = [_record(t, children) for t in wf.tasks.values()]
        document = _workflow_fields(wf)
        document["tasks"] = {record["id"]: record for record in records}
        document["subprocesses"] = {}
        document["typename"] = REGISTRY.typenames[type(wf)]
        document[VERSION_KEY] = SERIALIZER_VERSION
        try:
            return _dumps(document, nulls=_nulls(records, document))
        except (TypeError, ValueError):
            pass
    return _dumps(dump_document(wf))


def _frame(wf: Any, previous: StoredState) -> Encoded | None:
    """A frame with the tasks changed since ``previous``; None when a snapshot is due."""
    if is_finished(wf) or previous.frames >= MAX_FRAMES:
        return None  # a finished instance is stored as one compact snapshot
    tasks: dict[UUID, Any] = wf.tasks
    stamps = _stamps(wf)
    changed, removed = _changes(stamps, previous.stamps, tasks)
    dirty = {task for task in stamps.tasks if task._state & _VOLATILE}
    parents: set[Any] = set()  # of a task changed or removed: most likely changed too
    for task in removed:
        parent = tasks.get(task._parent) if task._parent is not None else None
        if parent is not None:
            parents.add(parent)
    for task in changed:
        for child_id in task._children:
            child = tasks.get(child_id)
            if child is not None:
                dirty.add(child)
        if task._parent is not None:
            parent = tasks.get(task._parent)
            if parent is not None:
                parents.add(parent)
    dirty |= changed
    dirty |= parents
    framed = [t for t in stamps.tasks if t in dirty]
    records, memory = _records(framed, previous, changed, parents)
    fields = _workflow_fields(wf)
    document = {"tasks": records, "removed": [str(t.id) for t in removed], "workflow": fields}
    try:
        frame = _pack(document, nulls=_nulls(records, fields))
    except (TypeError, ValueError):  # a value JSON cannot take: SpiffWorkflow's converters
        document["tasks"] = [REGISTRY.convert(t) for t in framed]
        memory = {}
        frame = _pack(document)
    journal = previous.journal_chars + len(frame)
    if journal > COMPACT_RATIO * previous.snapshot_chars:
        return None
    stored = StoredState(
        stamps=stamps,
        incremental=True,
        snapshot_chars=previous.snapshot_chars,
        journal_chars=journal,
        frames=previous.frames + 1,
        children=previous.children,
        memory=memory,
    )
    return Encoded(stored, frame=frame)


def _records(
    framed: list[Any], previous: StoredState, changed: set[Any], parents: set[Any]
) -> tuple[list[Any], dict[Any, Any]]:
    """The frame's record of each task (a patch where one is possible) and what the stored
    state holds for each of them afterwards. A task is remembered only from its second frame
    in a row: most tasks are written once (an instance that completes), and remembering one
    costs a pass over its values.

    A remembered task whose state did not change (not in ``changed``) and whose patch would
    change nothing else is left out of the frame and stays remembered as it was: the tasks
    ahead of a countersign are looked at after every completion (SpiffWorkflow may
    re-evaluate them) and are almost always as stored. The quick answer (:func:`_unchanged`)
    is not asked of the ``parents`` of a task that changed: a parent has almost always
    changed too (a countersign's multi-instance task merges each signer's output) and goes
    straight to its patch, which tells the rare unchanged one as well."""
    known = previous.memory
    records: list[Any] = []
    memory: dict[Any, _Memory | None] = {}
    for task in framed:
        last = known.get(task, _MISSING)
        if last is not _MISSING and last is not None:
            if task not in changed and task not in parents and _unchanged(task, last):
                memory[task] = last
                continue
            patched = _patch(task, last)
            if patched is not None:
                record, remembered = patched
                if task not in changed and _as_stored(record, last):
                    memory[task] = last
                    continue
                records.append(record)
                memory[task] = remembered
                continue
        records.append(_record(task, previous.children))
        memory[task] = _remember(task) if last is not _MISSING else None
    return records, memory


def _patch(task: Any, last: _Memory) -> tuple[dict[str, Any], _Memory] | None:
    """The patch turning what is stored for ``task`` (``last``) into the task as it is now,
    and what is stored afterwards; None when only a whole record will do."""
    if task._parent != last.parent or task.task_spec.name != last.spec:
        return None
    data = _diff(task.data, last.data)
    internal = _diff(task.internal_data, last.internal_data)
    if data is None or internal is None:
        return None
    record: dict[str, Any] = {
        "id": str(task.id),
        "patch": PATCH_FORMAT,
        "state": task.state,
        "last_state_change": task.last_state_change,
        "triggered": task.triggered,
    }
    kids, old = task._children, last.children
    children = old
    if len(kids) >= len(old) and all(map(is_, kids, old)):
        if len(kids) > len(old):
            added = kids[len(old) :]
            record["children_add"] = [str(child) for child in added]
            children = old + tuple(added)
    else:
        record["children"] = [str(child) for child in kids]
        children = tuple(kids)
    if data[0]:
        record["data"] = data[0]
    if internal[0]:
        record["internal_data"] = internal[0]
    return record, _Memory(last.parent, last.spec, children, data[1], internal[1], task.triggered)


def _unchanged(task: Any, last: _Memory) -> bool:
    """The quick answer to "would this task's patch change nothing?" for the tasks looked at
    on every step and almost never changed (see :func:`_records`): True only when its fields
    and children are those remembered and every value is the same scalar or list of the same
    items; False when anything differs or it cannot tell (then the patch decides)."""
    kids, old = task._children, last.children
    return (
        task.triggered == last.triggered
        and task._parent == last.parent
        and task.task_spec.name == last.spec
        and len(kids) == len(old)
        and all(map(is_, kids, old))
        and _same_values(task.data, last.data)
        and _same_values(task.internal_data, last.internal_data)
    )


def _same_values(values: dict[Any, Any], kept: dict[str, Any]) -> bool:
    """Whether :func:`_diff` of ``values`` against ``kept`` would find nothing to write,
    answered for scalars and lists of scalars; False for any other value."""
    if len(values) != len(kept):
        return False
    for key, value in values.items():
        if type(key) is not str:  # as in _diff: only str keys are written as they are
            return False
        old = kept.get(key, _MISSING)
        kind = type(value)
        if kind in _SCALARS:
            if not (value is old or (kind is not float and type(old) is kind and value == old)):
                return False
        elif not (
            kind is list
            and type(old) is tuple
            and len(value) == len(old)
            and all(map(is_, value, old))
        ):
            return False
    return True


def _as_stored(patch: dict[str, Any], last: _Memory) -> bool:
    """Whether ``patch`` of a task whose state did not change leaves what is stored as it is."""
    return patch.keys() <= _BARE_PATCH and patch["triggered"] == last.triggered


def _diff(
    values: dict[Any, Any], last: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The operations turning ``last`` (remembered values) into ``values``, and the values
    remembered afterwards; None when a value has no JSON form (the registry must write it).
    A float is written again unless it is the same object (0.0 == -0.0, yet JSON tells them
    apart); a value other than a scalar or a list of scalars is written again unless its JSON
    text is the same."""
    changed: dict[str, Any] = {}
    added: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if type(key) is not str:
            return None
        kind = type(value)
        old = last.get(key, _MISSING)
        if kind in _SCALARS:
            if not (value is old or (kind is not float and type(old) is kind and value == old)):
                changed[key] = value
            kept[key] = value
        elif (
            kind is list
            and type(old) is tuple
            and len(value) >= len(old)
            and all(map(is_, value, old))
            and _all_scalars(extra := value[len(old) :])
        ):
            if extra:
                added[key] = extra
                old = old + tuple(extra)
            kept[key] = old
        elif kind is list and _all_scalars(value):
            changed[key] = value
            kept[key] = tuple(value)
        else:
            try:
                text = _Json(_dumps(value))
            except (TypeError, ValueError):
                return None
            if old != text:
                changed[key] = value
            kept[key] = text
    ops: dict[str, Any] = {}
    if changed:
        ops["set"] = changed
    gone = [key for key in last if key not in values]
    if gone:
        ops["del"] = gone
    if added:
        ops["add"] = added
    return ops, kept


def _remember(task: Any) -> _Memory | None:
    """What a whole record of ``task`` written now leaves stored, for the next frame's patch
    (the values as a diff against nothing remembers them); None when a value has no JSON
    form."""
    data = _diff(task.data, {})
    internal = _diff(task.internal_data, {})
    if data is None or internal is None:
        return None
    return _Memory(
        task._parent,
        task.task_spec.name,
        tuple(task._children),
        data[1],
        internal[1],
        task.triggered,
    )


def _all_scalars(items: list[Any]) -> bool:
    return set(map(type, items)) <= _SCALARS


def _record(task: Any, cache: dict[Any, tuple[tuple[int, UUID | None], list[str]]]) -> Any:
    """``TaskConverter.to_dict(task)`` with its typename, as SpiffWorkflow writes it, except
    that internal data is left as it is (JSON encodes it directly; :func:`_frame` falls back to
    the registry when it cannot) and the children's ids are formatted once per change of the
    child list. SpiffWorkflow only appends children or removes them, so the count and the
    last child together tell whether the list changed."""
    kids = task._children
    key = (len(kids), kids[-1] if kids else None)
    cached = cache.get(task)
    if cached is None or cached[0] != key:
        cached = (key, [str(child) for child in kids])
        cache[task] = cached
    parent = task.parent
    if parent is None:
        data, delta = task.data, {}
    else:
        data = {}
        delta = {
            "updates": DeepMerge.get_updated_keys(parent.data, task.data),
            "deletions": DeepMerge.get_deleted_keys(parent.data, task.data),
        }
    return {
        "id": str(task.id),
        "parent": str(task._parent) if parent is not None else None,
        "children": cached[1],
        "last_state_change": task.last_state_change,
        "state": task.state,
        "task_spec": task.task_spec.name,
        "triggered": task.triggered,
        "internal_data": task.internal_data,
        "data": data,
        "delta": delta,
        "typename": "Task",
    }


def _frames_allowed(wf: Any) -> bool:
    return len(wf.tasks) >= FRAME_MIN_TASKS and not wf.subprocesses and not wf.event_manager.tasks


def _stamps(wf: Any) -> _Stamps:
    tasks = list(wf.tasks.values())
    return _Stamps(tasks, list(map(_STAMP, tasks)))


def _changes(now: _Stamps, old: _Stamps, tasks: dict[UUID, Any]) -> tuple[set[Any], list[Any]]:
    """(the tasks changed or added since ``old``, the tasks no longer in the workflow).

    A task changed when its stamp is not the object it was: SpiffWorkflow sets a new
    ``time.time()`` at every state change, and nothing else sets it.
    """
    count = len(old.tasks)
    if len(now.tasks) >= count and all(map(is_, now.tasks, old.tasks)):
        # the old tasks are all still where they were: compare position by position (in C)
        changed = set(compress(now.tasks, map(is_not, now.stamps, old.stamps)))
        changed.update(now.tasks[count:])
        return changed, []
    before = dict(zip(old.tasks, old.stamps, strict=True))
    changed = {
        task
        for task, stamp in zip(now.tasks, now.stamps, strict=True)
        if before.get(task, _MISSING) is not stamp
    }
    # A task no longer in the workflow (the id check keeps a task SpiffWorkflow replaced by
    # a new object of the same id: that one is framed as new, and must not be removed).
    return changed, [task for task in old.tasks if task.id not in tasks]


def _workflow_fields(wf: Any) -> dict[str, Any]:
    """The top workflow's own fields, as SpiffWorkflow's workflow converter writes them."""
    # Empty in most processes: the registry's generic walk is skipped for nothing to convert.
    data, events = wf.data, wf.bpmn_events
    return {
        "data": REGISTRY.convert(REGISTRY.clean(data)) if data else {},
        "correlations": wf.correlations,
        "last_task": str(wf.last_task.id) if wf.last_task is not None else None,
        "success": wf.success,
        "completed": wf.completed,
        "root": str(wf.task_tree.id),
        "bpmn_events": REGISTRY.convert(events) if events else [],
    }


def _dumps(value: Any, *, nulls: int = 0) -> str:
    return compact(value, nulls=nulls)


def _nulls(records: list[Any], fields: dict[str, Any]) -> int:
    """How many None :func:`_record` and :func:`_workflow_fields` put into a document
    themselves (see :func:`~engine_bridge.json_text.compact`): a root's parent, no last task."""
    roots = sum(1 for record in records if "parent" in record and record["parent"] is None)
    return roots + (fields["last_task"] is None)


def _pack(document: dict[str, Any], *, compress: bool = False, nulls: int = 0) -> str:
    return _pack_text(_dumps(document, nulls=nulls), compress=compress)


def _pack_text(text: str, *, compress: bool = False) -> str:
    if not compress:
        return text
    return base64.b64encode(zlib.compress(text.encode("utf-8"), _LEVEL)).decode("ascii")


# ---------------------------------------------------------------------------- reading


def _unpack(part: str, what: str) -> dict[str, Any]:
    if not part.startswith("{"):
        try:
            part = zlib.decompress(base64.b64decode(part, validate=True)).decode("utf-8")
        except (ValueError, zlib.error) as exc:
            raise EngineError(
                f"the stored workflow state is damaged: its {what} is unreadable"
            ) from exc
    return parse_json(part, f"workflow state {what}")


def _apply(wf: Any, frame: dict[str, Any]) -> None:
    """Bring the restored workflow to the state the frame recorded."""
    for record in frame["tasks"]:
        if "patch" in record:
            _apply_patch(wf, record)
        else:
            REGISTRY.restore(record, workflow=wf)  # the converter registers it in wf.tasks
    for task_id in frame["removed"]:
        wf.tasks.pop(UUID(task_id), None)
    fields = frame["workflow"]
    wf.task_tree = wf.tasks[UUID(fields["root"])]
    wf.success = fields["success"]
    wf.completed = fields["completed"]
    wf.correlations = fields["correlations"]
    last = fields["last_task"]
    wf.last_task = wf.tasks.get(UUID(last)) if last is not None else None
    wf.data = REGISTRY.restore(fields["data"])
    wf.bpmn_events = REGISTRY.restore(fields["bpmn_events"])


def _apply_patch(wf: Any, record: dict[str, Any]) -> None:
    """Change the restored task as the patch says (see the module docstring). Lists are
    replaced rather than extended in place: a restored task's lists must not be shared with
    any other task's."""
    if record["patch"] != PATCH_FORMAT:
        raise EngineError(
            f"the stored workflow state was written by a newer version: patch format "
            f"{record['patch']!r} is unknown"
        )
    task = wf.tasks[UUID(record["id"])]
    task._state = record["state"]
    task.last_state_change = record["last_state_change"]
    task.triggered = record["triggered"]
    if "children" in record:
        task._children = [UUID(child) for child in record["children"]]
    elif "children_add" in record:
        task._children = task._children + [UUID(child) for child in record["children_add"]]
    for name in ("data", "internal_data"):
        ops = record.get(name)
        if ops:
            _apply_ops(getattr(task, name), ops)
    if isinstance(task.task_spec, CatchingEvent) and task.has_state(TaskState.WAITING):
        wf.event_manager.add_task(task)  # as SpiffWorkflow's loader does


def _apply_ops(values: dict[str, Any], ops: dict[str, Any]) -> None:
    values.update(ops.get("set", {}))
    for key in ops.get("del", ()):
        del values[key]
    for key, items in ops.get("add", {}).items():
        values[key] = [*values[key], *items]
