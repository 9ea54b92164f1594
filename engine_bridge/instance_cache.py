"""Live workflows of recently used instances, so a step does not rebuild what it just saved.

Loading an instance means restoring every task of its workflow from JSON; for a countersign
with 1000 signers that is ~25 ms, twelve times what SpiffWorkflow spends on the completion
itself. The cache keeps the workflow object a step left behind, with what that step stored
(:class:`~engine_bridge.engine.journal.StoredState`), keyed by instance id and the version the
step committed. It is only ever a shortcut for "load this version from the database":

* an entry is used only when its version equals the version just read from the store, so a
  state committed by another worker (or another ``Bridge``) is loaded, never shadowed;
* :meth:`checkout` takes the entry OUT of the cache: while an action runs, nobody else can get
  that object, and if the action fails (engine error, conflict, crash point, anything) the
  half-advanced workflow is simply never put back;
* :meth:`checkin` puts it back only after the store committed, under the new version.

With the workflow it keeps the instance's row as that commit wrote it (its ledger included),
so a completion of one of its open todos can start without reading the database
(:meth:`head`). That is optimistic: the commit's version check still decides, and a caller
that finds the instance moved on reads it and tries again (``Bridge.complete``). A step run on
an outdated row is thrown away, which is harmless unless it called the user's code: a process
with service tasks (their handlers have effects outside the bridge) is never acted on without
reading first.

The cache is bounded by instances and by tasks held (a countersign with N signers holds N
tasks), least recently used first out. ``InstanceCache(max_instances=0)`` turns it off.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask

from engine_bridge.engine.journal import Encoded, decode_state, encode_state, is_journal
from engine_bridge.engine.state import dump_document, load_state
from engine_bridge.errors import EngineError
from engine_bridge.facts import Ledger
from engine_bridge.store import InstanceRecord

__all__ = ["DEFAULT_MAX_INSTANCES", "DEFAULT_MAX_TASKS", "InstanceCache"]

DEFAULT_MAX_INSTANCES = 128
DEFAULT_MAX_TASKS = 20_000

_STORED = "_engine_bridge_stored"  # what the workflow's last commit stored
_PENDING = "_engine_bridge_pending"  # what the step being committed will store
_DEFINITION = "_engine_bridge_definition"  # the definition text the workflow was built from
_TEXT = "_engine_bridge_text"  # the whole stored text (kept only when verifying)
_CALLS_SERVICES = "_engine_bridge_calls_services"  # does its process have service tasks?


@dataclass
class _Entry:
    version: int
    workflow: Any
    tasks: int
    record: InstanceRecord | None = None  # the row committed as ``version``, when given


class InstanceCache:
    """A bounded LRU of live workflows; thread-safe. See the module docstring for the rules."""

    def __init__(
        self,
        *,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        max_tasks: int = DEFAULT_MAX_TASKS,
        verify: bool = False,
    ) -> None:
        """``verify`` checks every stored state by loading it back and comparing it with the
        live workflow (slow; tests turn it on)."""
        self.max_instances = max_instances
        self.max_tasks = max_tasks
        self.verify = verify
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tasks = 0
        self._todos: dict[str, str] = {}  # open todo id -> the cached instance it belongs to
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"InstanceCache({len(self._entries)} instances, {self._tasks} tasks; "
            f"max {self.max_instances}/{self.max_tasks}; hits {self.hits}, misses {self.misses})"
        )

    # ------------------------------------------------------------------ the action cycle

    def checkout(
        self,
        record: InstanceRecord,
        definition: str,
        *,
        script_engine: Any,
        state: Callable[[], str] | None = None,
    ) -> Any:
        """The workflow of ``record`` at ``record.version``: the cached object if it is that
        version (and then no longer in the cache), else loaded from ``record.state`` (or, when
        the record was read without it, from what ``state()`` returns)."""
        entry = self._take(record.id)
        if entry is not None and entry.version == record.version:
            self.hits += 1
            wf = entry.workflow
            wf.script_engine = script_engine
            return wf
        self.misses += 1
        text = record.state if state is None or record.state else state()
        if is_journal(text):
            wf, stored = decode_state(text, definition, script_engine=script_engine)
            setattr(wf, _STORED, stored)
        else:
            wf = load_state(text, definition, script_engine=script_engine)
        setattr(wf, _DEFINITION, definition)
        if self.verify:
            setattr(wf, _TEXT, text)
        return wf

    def encode(self, wf: Any, definition: str | None = None) -> Encoded:
        """What to commit for ``wf`` now: a frame appended to what its last commit stored,
        or a fresh snapshot (see :class:`~engine_bridge.engine.journal.Encoded`).
        ``definition`` is the process definition the workflow runs (known already for a
        workflow from :meth:`checkout`)."""
        if definition is not None:
            setattr(wf, _DEFINITION, definition)
        encoded = encode_state(wf, getattr(wf, _STORED, None))
        if self.verify:
            if encoded.frame is None:
                text = encoded.text
            else:
                text = getattr(wf, _TEXT) + "\n" + encoded.frame
            _verify(wf, text, getattr(wf, _DEFINITION, None))
            setattr(wf, _TEXT, text)
        setattr(wf, _PENDING, encoded.stored)
        return encoded

    def checkin(
        self,
        instance_id: str,
        version: int,
        wf: Any,
        *,
        keep: bool = True,
        record: InstanceRecord | None = None,
    ) -> None:
        """``wf``'s state (from :meth:`encode`) is committed as ``version``, with ``record``
        (the instance's row as committed, its state left out) when given: remember them.
        ``keep=False`` (a finished or cancelled instance) only forgets older entries."""
        stored = getattr(wf, _PENDING, None)
        if stored is None:
            raise EngineError("checkin of a workflow whose state was not encoded by this cache")
        delattr(wf, _PENDING)
        setattr(wf, _STORED, stored)
        if not keep or self.max_instances <= 0:
            self.drop(instance_id)
            return
        if record is not None and record.version != version:
            raise EngineError(
                f"checkin of instance {instance_id!r} version {version} with the row of "
                f"version {record.version}"
            )
        entry = _Entry(version, wf, _task_count(wf), record)
        with self._lock:
            old = self._entries.pop(instance_id, None)
            if old is not None:
                self._forget(instance_id, old)
            self._entries[instance_id] = entry
            self._tasks += entry.tasks
            if record is not None and not _calls_services(wf):
                self._todos.update((t.todo_id, instance_id) for t in record.ledger.open)
            while self._entries and (
                len(self._entries) > self.max_instances or self._tasks > self.max_tasks
            ):
                evicted_id, evicted = self._entries.popitem(last=False)
                self._forget(evicted_id, evicted)

    def ledger(self, instance_id: str, version: int) -> Ledger | None:
        """The ledger committed with ``version`` if the cached entry is that version; the
        entry stays in the cache (the ledger is immutable, so it may be shared). A step that
        finds its instance at the version it holds needs neither read nor parse it."""
        with self._lock:
            entry = self._entries.get(instance_id)
        if entry is None or entry.version != version or entry.record is None:
            return None
        return entry.record.ledger

    def head(self, todo_id: str) -> InstanceRecord | None:
        """The row of the cached instance whose ledger has ``todo_id`` open, as this process
        last committed it (its state left out); None when no cached instance has it. Another
        writer may have moved the instance on since: only the next commit's version check
        can tell, so this is a guess to act on optimistically, never an answer to report.
        The entry stays in the cache."""
        with self._lock:
            instance_id = self._todos.get(todo_id)
            entry = self._entries.get(instance_id) if instance_id is not None else None
        if entry is None or entry.record is None or entry.record.ledger.get(todo_id) is None:
            return None
        return entry.record

    def drop(self, instance_id: str) -> None:
        self._take(instance_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._todos.clear()
            self._tasks = 0

    def _take(self, instance_id: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.pop(instance_id, None)
            if entry is not None:
                self._forget(instance_id, entry)
            return entry

    def _forget(self, instance_id: str, entry: _Entry) -> None:
        """Account for ``entry`` having left the cache (the lock is held)."""
        self._tasks -= entry.tasks
        if entry.record is not None:
            todos = self._todos
            for todo in entry.record.ledger.open:
                if todos.get(todo.todo_id) == instance_id:
                    del todos[todo.todo_id]


def _calls_services(wf: Any) -> bool:
    """Whether the workflow's process (or a process it calls) has service tasks. A fact of
    the specs, which never change: worked out once per workflow, not at every checkin."""
    found: bool | None = getattr(wf, _CALLS_SERVICES, None)
    if found is None:
        specs = [wf.spec, *getattr(wf, "subprocess_specs", {}).values()]
        found = any(
            isinstance(task_spec, ServiceTask)
            for spec in specs
            for task_spec in getattr(spec, "task_specs", {}).values()
        )
        setattr(wf, _CALLS_SERVICES, found)
    return found


def _task_count(wf: Any) -> int:
    return len(wf.tasks) + sum(len(sp.tasks) for sp in wf.subprocesses.values())


def _verify(wf: Any, text: str, definition: str | None) -> None:
    """Load ``text`` back and compare it with the live workflow, task by task."""
    if definition is None:
        raise EngineError("cannot verify a stored state without the workflow's definition")
    loaded, _ = decode_state(text, definition, script_engine=None)
    expected = json.loads(json.dumps(dump_document(wf), ensure_ascii=False))
    actual = json.loads(json.dumps(dump_document(loaded), ensure_ascii=False))
    if expected != actual or list(expected["tasks"]) != list(actual["tasks"]):
        raise EngineError(
            f"stored state differs from the live workflow: {_difference(expected, actual)}"
        )


def _difference(expected: dict[str, Any], actual: dict[str, Any]) -> str:
    for key in sorted(set(expected) | set(actual)):
        if key == "tasks":
            for task_id in sorted(set(expected["tasks"]) | set(actual["tasks"])):
                if expected["tasks"].get(task_id) != actual["tasks"].get(task_id):
                    return (
                        f"task {task_id}: {expected['tasks'].get(task_id)!r} != "
                        f"{actual['tasks'].get(task_id)!r}"
                    )
        elif expected.get(key) != actual.get(key):
            return f"{key}: {expected.get(key)!r} != {actual.get(key)!r}"
    return "task order"
