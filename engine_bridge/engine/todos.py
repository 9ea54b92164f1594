"""Which SpiffWorkflow tasks are todos, who handles them, and how they are shown.

A todo is a READY ``userTask`` or ``manualTask`` anywhere in the instance (embedded
subprocesses and call activities included). A plain ``bpmn:task`` is "manual" to SpiffWorkflow
but has nobody to do it, so the engine completes it on the spot (see
:func:`pass_through`) and it never reaches the centre.

Handlers and handling groups are evaluated ONCE, when a task is first seen READY, and kept in
``task.internal_data`` (which is serialized): whatever later happens to the data, the todo's
handlers never drift, and the centre is never told two different stories about one todo. The
shown name, summary and URLs are rendered at the same moment for the same reason.

A parallel multi-instance user task (countersign) is one todo anchored on the multi-instance
task; its handlers are those of the instances still open. That holds for instances naming one
person each and no group (the common case: a list of accounts). An instance naming several
people, or a handling group, is a todo of its own (see :func:`own_todo`): the centre closes one
signer's share of a todo at a time and keeps a single share for all of a todo's groups, so such
an instance could not be told apart inside the countersign todo. An instance's handler
expression also sees ``loopCounter`` (its 0-based position), as assignee expressions do in the
vendor engines (``${approvers[loopCounter]}``), and bean calls go to the context's resolver
registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress, count
from operator import is_not
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask
from SpiffWorkflow.util.task import TaskState

from engine_bridge.engine.countersign import instances, parallel_parent
from engine_bridge.engine.scan import ready_tasks
from engine_bridge.engine.script_engine import (
    Registry,
    evaluate_expression,
    render_template,
    render_url,
)
from engine_bridge.errors import EngineBridgeError, EngineDataError, EngineError
from engine_bridge.facts import Todo
from engine_bridge.loader.model import LoadedProcess, NodeSettings
from engine_bridge.loader.settings import node_settings_of

__all__ = [
    "MAX_SUMMARY_ITEMS",
    "TodoContext",
    "assignment",
    "collect_todos",
    "find_task",
    "is_own_todo",
    "is_todo_task",
    "node_settings",
    "own_todo",
    "pass_through",
    "ready_manual_tasks",
    "signer_share",
    "todo_id_of",
]

MAX_SUMMARY_ITEMS = 5  # the centre shows at most five ``label|value`` pairs

_HANDLERS = "eb_handlers"
_GROUPS = "eb_groups"
# On a countersign instance: whether it is a todo of its own, decided with its handlers.
_OWN = "eb_own_todo"
_VIEW = "eb_view"
# On a live countersign task (never saved): which instance names which signer.
_SIGNERS = "_engine_bridge_signers"
# On a live countersign task (never saved): its open signers as last found (_OpenSigners).
_OPEN = "_engine_bridge_open"


@dataclass(frozen=True)
class TodoContext:
    """What todo rendering needs besides the task: the instance and its process."""

    instance_id: str
    process: LoadedProcess
    extra: Mapping[str, Any] = field(default_factory=dict)  # names for handler expressions
    registry: Registry | None = None  # answers bean calls in handler expressions
    # Names the bridge gives every template besides the task data (``process_name``,
    # ``initiator``, ``initiatorName``), as the transaction's templates have them.
    view_names: Mapping[str, Any] = field(default_factory=dict)


_TODO_SPECS = (UserTask, ManualTask)


def is_todo_task(task: Any) -> bool:
    """A user task or manual task: something a person completes."""
    return isinstance(task.task_spec, _TODO_SPECS)


def ready_manual_tasks(wf: Any) -> list[Any]:
    """Every READY task SpiffWorkflow waits on someone for, subprocesses included, in tree
    order (found without a tree walk: see :mod:`engine_bridge.engine.scan`)."""
    return ready_tasks(wf, manual=True)


def pass_through(tasks: list[Any]) -> list[Any]:
    """The tasks of ``tasks`` that are not todos (``bpmn:task``), deciding once per run of
    tasks sharing a spec (a countersign's N instances are one run)."""
    found: list[Any] = []
    last_spec: Any = None
    todo = True
    for task in tasks:
        spec = task.task_spec
        if spec is not last_spec:
            last_spec = spec
            todo = isinstance(spec, _TODO_SPECS)
        if not todo:
            found.append(task)
    return found


def own_todo(handlers: Any, groups: Any) -> bool:
    """Whether a countersign instance with these kept handlers and groups is a todo of its own
    rather than one signer's share of the countersign todo: it names no person or several, any
    of whom signs for it, or a handling group, whose members the centre lets sign too."""
    return len(handlers) != 1 or bool(groups)


def is_own_todo(task: Any, ctx: TodoContext) -> bool:
    """What :func:`own_todo` decided for this countersign instance when its handlers were
    first evaluated, kept with them. An instance stored before the rule existed has no record
    and stays a share of the countersign todo, as the centre was told when it opened."""
    assignment(task, ctx)
    return bool(task.internal_data.get(_OWN, False))


def todo_id_of(instance_id: str, anchor: Any) -> str:
    return f"{instance_id}:{anchor.id}"


def find_task(wf: Any, instance_id: str, todo_id: str) -> Any | None:
    """The task a todo id names (the multi-instance task for a countersign), or None."""
    prefix = f"{instance_id}:"
    if not todo_id.startswith(prefix):
        return None
    try:
        task_id = UUID(todo_id[len(prefix) :])
    except ValueError:
        return None
    try:
        return wf.get_task_from_id(task_id)
    except Exception:  # SpiffWorkflow raises TaskNotFoundException for unknown ids
        return None


def signer_share(anchor: Any, handler: str) -> Any | None:
    """The READY instance of countersign ``anchor`` that names ``handler`` among its kept
    handlers (None: look the slow way).

    Kept handlers never change, so which instance names whom is indexed once per anchor and
    child list, and each completion finds its signer without a pass over N instances. The
    index is kept only while every instance has its handlers (else one could later name the
    same person) and holds only names no two instances share; other names take the pass.
    """
    kids = anchor._children
    index = getattr(anchor, _SIGNERS, None)
    if index is None or index[0] != len(kids):
        index = _index_signers(anchor)
        setattr(anchor, _SIGNERS, index)
    if index[1] is not None:
        share = index[1].get(handler)
        if share is not None or handler not in index[2]:
            return share if share is not None and share._state == TaskState.READY else None
    return _scan_signers(anchor, handler)


def _index_signers(anchor: Any) -> tuple[int, dict[str, Any] | None, set[str]]:
    """(number of children, handler -> the one instance naming them or None when the index
    cannot be trusted, names several instances share)."""
    child_spec = anchor.task_spec.task_spec
    tasks = anchor.workflow.tasks
    named: dict[str, Any] = {}
    shared: set[str] = set()
    complete = True
    for child_id in anchor._children:
        child = tasks.get(child_id)
        if child is None or child.task_spec.name != child_spec or not is_todo_task(child):
            continue
        stored = child.internal_data.get(_HANDLERS)
        if stored is None:
            complete = False
            continue
        if child.internal_data.get(_OWN, False):
            continue  # not a share of the countersign todo
        for name in stored:
            if name in named and named[name] is not child:
                shared.add(name)
            named[name] = child
    for name in shared:
        del named[name]
    return len(anchor._children), named if complete else None, shared


def _scan_signers(anchor: Any, handler: str) -> Any | None:
    child_spec = anchor.task_spec.task_spec
    tasks = anchor.workflow.tasks
    for child_id in anchor._children:
        child = tasks.get(child_id)
        if child is None or child._state != TaskState.READY:
            continue
        if child.task_spec.name != child_spec or not is_todo_task(child):
            continue
        stored = child.internal_data.get(_HANDLERS)
        if stored is not None and handler in stored and not child.internal_data.get(_OWN, False):
            return child
    return None


def node_settings(process: LoadedProcess, task: Any) -> NodeSettings:
    """The bridge settings of a task's BPMN element, as the loaded files give them.

    An instance started on an older version may wait at a node the current files renamed or
    removed: its settings are then read from the instance's own spec (the stored definition
    carries the properties translation and overrides wrote), else its lane is the group.
    """
    spec = task.task_spec
    node_id = spec.bpmn_id or spec.name
    found = process.nodes.get(node_id)
    if found is not None:
        return found
    if getattr(spec, "bpmn_id", None):
        return node_settings_of(spec)
    return NodeSettings(
        node_id=node_id, node_name=spec.bpmn_name or node_id, lane=getattr(spec, "lane", None)
    )


def assignment(task: Any, ctx: TodoContext) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(handlers, handling groups) of a READY todo task, evaluated on first sight and kept."""
    stored = task.internal_data.get(_HANDLERS)
    if stored is not None:
        return tuple(stored), tuple(task.internal_data.get(_GROUPS, ()))
    settings = node_settings(ctx.process, task)
    # The instance's own names (initiator, instanceId) win over task data, as in templates.
    data = {**task.data, **ctx.extra, **_instance_names(task)}
    handlers = _evaluate_names(settings.handlers, data, settings, "handlers", ctx.registry)
    groups = _evaluate_names(settings.handling_group, data, settings, "handlingGroup", ctx.registry)
    if not groups and settings.handlers is None and settings.handling_group is None:
        groups = [settings.lane] if settings.lane else []
    if not handlers and not groups:
        where = f" ({settings.location.file})" if settings.location else ""
        raise EngineError(
            f"process {ctx.process.process_id!r}, user task {settings.node_id!r}{where}: "
            "nobody can complete it: its handlers and handling group are empty for this data. "
            "Set the 'handlers' or 'handlingGroup' property (or a lane) so it names someone."
        )
    task.internal_data[_HANDLERS] = handlers
    task.internal_data[_GROUPS] = groups
    if parallel_parent(task) is not None:
        task.internal_data[_OWN] = own_todo(handlers, groups)
    return tuple(handlers), tuple(groups)


def _instance_names(task: Any) -> dict[str, Any]:
    """``loopCounter`` for an instance of a multi-instance task (else nothing).

    SpiffWorkflow keeps the instance's list index (or, for a sequential cardinality, its
    number) in ``internal_data``; a dict collection is keyed by strings, so there the position
    among the instances is counted instead.
    """
    parent = task.parent
    spec = getattr(parent, "task_spec", None)
    if not isinstance(spec, MultiInstanceTask) or spec.task_spec != task.task_spec.name:
        return {}
    internal = task.internal_data
    index = internal.get("key_or_index", internal.get("item"))
    if not isinstance(index, int) or isinstance(index, bool):
        index = next((i for i, child in enumerate(instances(parent)) if child is task), 0)
    return {"loopCounter": index}


def _evaluate_names(
    expression: str | None,
    data: Mapping[str, Any],
    settings: NodeSettings,
    field_name: str,
    registry: Registry | None = None,
) -> list[str]:
    if expression is None or not expression.strip():
        return []
    try:
        value = evaluate_expression(expression, data, registry=registry)
    except EngineBridgeError:
        raise  # ScriptSecurityError stays what it is: the BPMN tried to leave the sandbox
    except Exception as exc:
        hint = (
            " Check that the variables it uses are in the process data when the task starts."
            if isinstance(exc, NameError | KeyError | AttributeError | TypeError)
            else ""
        )
        kind = EngineDataError if isinstance(exc, NameError) else EngineError
        raise kind(
            f"user task {settings.node_id!r}: its {field_name} expression {expression!r} "
            f"failed: {type(exc).__name__}: {str(exc).rstrip('. ')}.{hint}"
        ) from exc
    return _names(value, settings, field_name, expression)


def _items(value: Any) -> list[Any]:
    """One level of a handlers value: a comma-separated str split, a set sorted."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return [value]


def _names(value: Any, settings: NodeSettings, field_name: str, expression: str) -> list[str]:
    """Account names from what a handlers expression gave.

    A list may hold lists and comma-separated strings one level down, because translated
    vendor assignments put each written entry in a list: ``candidateUsers="${list},T002"``
    becomes ``[list, 'T002']``, which gives ``[['T001', 'T003'], 'T002']``.
    """
    items: list[Any] = []
    for item in _items(value):
        nested = isinstance(item, list | tuple | set | frozenset)
        items.extend(_items(item) if nested else [item])
    names: dict[str, None] = {}
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise EngineError(
                f"user task {settings.node_id!r}: its {field_name} expression {expression!r} "
                f"gave {type(item).__name__} {item!r}; it must give account strings "
                "(a comma-separated str, or a list of those and of lists of str)"
            )
        for part in str(item).split(","):
            if part.strip():
                names[part.strip()] = None
    return list(names)


def _view(anchor: Any, settings: NodeSettings, todo_id: str, ctx: TodoContext) -> dict[str, Any]:
    """Rendered name, summary and URLs, kept on the anchor task after the first rendering.

    A countersign renders from the multi-instance task's data: the node, not one signer.
    """
    stored = anchor.internal_data.get(_VIEW)
    if stored is not None:
        return dict(stored)
    data = {
        **anchor.data,
        **_instance_names(anchor),  # an instance's own todo may name its place (Task 2)
        **ctx.view_names,
        "instanceId": ctx.instance_id,
        "todoId": todo_id,
        "nodeId": settings.node_id,
    }
    name = render_template(settings.task_name, data) if settings.task_name else ""
    view = {
        "node_name": settings.node_name or settings.node_id,
        "task_name": name.strip() or settings.node_name or settings.node_id,
        "summary": [
            render_template(item, data) for item in settings.task_summary[:MAX_SUMMARY_ITEMS]
        ],
        "urls": {key: render_url(url, data) for key, url in settings.urls.items()},
    }
    anchor.internal_data[_VIEW] = view
    return view


@dataclass
class _Countersign:
    """Open signers of one countersign, gathered in instance order (dicts as ordered sets, so
    a node with N signers costs O(N), not O(N²))."""

    parent: Any
    first: Any
    handlers: dict[str, None]
    # Groups of shares: only in states stored before instances with groups were todos of
    # their own (see is_own_todo); those keep the one todo the centre was told of.
    groups: dict[str, None] = field(default_factory=dict)
    instances: list[Any] = field(default_factory=list)
    # A kept record could not answer for this run next time (see _keep).
    unkeepable: bool = False
    kept: _OpenSigners | None = None  # read whole from these open signers (see _known_run)
    gone: int | None = None  # ... all but the instance at this position


@dataclass
class _OpenSigners:
    """What :func:`collect_todos` last found open under a countersign (kept on the live
    multi-instance task, never saved): its READY instances in the order they were listed,
    their handlers (unique, in that order) and the handling groups every one of them keeps."""

    instances: list[Any]
    handlers: dict[str, None]
    groups: tuple[str, ...] = ()


class _Checking:
    """Whether every todo list read from the kept open signers is also gathered the long
    way and the two compared, results and refusals alike (a difference raises
    ``EngineError``). The test suite turns it on, so every countersign of every test checks
    the shortcut. Twice the cost, and a handlers expression whose resolver answers a second
    call differently from the first can show up as a difference: for tests only."""

    on = False


check_open_signers = _Checking()


def collect_todos(wf: Any, ctx: TodoContext, ready: list[Any] | None = None) -> tuple[Todo, ...]:
    """Every open todo of the instance, in task-tree order (one per countersign node).

    ``ready`` is the instance's READY manual tasks in tree order when the caller has just
    gathered them (settling a step does), else they are looked up.

    Runs after every action over every READY task, so a countersign with N open signers
    has N tasks here at every completion. Whether a task is a todo and a countersign instance
    is decided once per run of tasks sharing a spec and a parent (a countersign's instances
    are one such run). A countersign's run is then, most of the time, what the previous call
    found minus the one instance just completed: :func:`_known_run` tells that with a few
    comparisons done in C, and the handlers kept from that call are used without reading N
    tasks again.
    """
    tasks = ready_manual_tasks(wf) if ready is None else ready
    if not check_open_signers.on:
        return _gather(tasks, ctx)
    fast = _attempt(lambda: _gather(tasks, ctx))
    slow = _attempt(lambda: _collect(tasks, ctx, use_kept=False, keep=False))
    if _told(fast) != _told(slow):
        raise EngineError(
            f"instance {ctx.instance_id!r}: the kept open signers give {_told(fast)}, the "
            f"READY tasks give {_told(slow)}"
        )
    if isinstance(fast, EngineError):
        raise fast
    return fast


def _attempt(gather: Any) -> tuple[Todo, ...] | EngineError:
    """What ``gather()`` gives, or the ``EngineError`` it raises."""
    try:
        found: tuple[Todo, ...] = gather()
    except EngineError as exc:
        return exc
    return found


def _told(outcome: tuple[Todo, ...] | EngineError) -> Any:
    """An outcome as compared: the todos, or the refusal's kind and words."""
    if isinstance(outcome, EngineError):
        return (type(outcome).__name__, str(outcome))
    return outcome


def _gather(tasks: list[Any], ctx: TodoContext) -> tuple[Todo, ...]:
    """The todos, reading runs from the kept open signers where they tell them; gathered
    from the tasks alone when a list splits a countersign's instances around other tasks
    (the kept signers then cannot tell which of them are open)."""
    found = _collect(tasks, ctx, use_kept=True, keep=True)
    if found is None:
        found = _collect(tasks, ctx, use_kept=False, keep=True)
    assert found is not None  # without the kept signers a run is never read whole
    return found


def _collect(
    tasks: list[Any], ctx: TodoContext, *, use_kept: bool, keep: bool
) -> tuple[Todo, ...] | None:
    """The todos of ``tasks``; None when a run read whole from the kept open signers is
    followed by more instances of the same countersign (nothing kept has changed then).
    ``keep``: keep what was found open under each countersign for the next call."""
    slots: list[Any] = []  # a READY task, or the _Countersign of its multi-instance
    countersigns: dict[UUID, _Countersign] = {}
    parents: dict[tuple[Any, str], Any] = {}
    last_spec: Any = None
    last_parent_id: Any = None
    todo = False
    entry: _Countersign | None = None
    total = len(tasks)
    position = 0
    while position < total:
        task = tasks[position]
        position += 1
        spec = task.task_spec
        if spec is not last_spec or task._parent is not last_parent_id:
            last_spec, last_parent_id = spec, task._parent
            todo = is_todo_task(task)
            if not todo:
                continue
            key = (task._parent, spec.name)
            if key in parents:
                parent = parents[key]
            else:
                parent = parents[key] = parallel_parent(task)
            if parent is None:
                entry = None
            else:
                entry = countersigns.get(parent.id)
                if entry is None:
                    run = _known_run(parent, tasks, position - 1) if use_kept else None
                    if run is not None:  # the whole run at once, as the last call kept it
                        kept, gone = run
                        entry = _Countersign(
                            parent,
                            kept.instances[1 if gone == 0 else 0],
                            kept.handlers,
                            dict.fromkeys(kept.groups),
                            kept=kept,
                            gone=gone,
                        )
                        countersigns[parent.id] = entry
                        slots.append(entry)
                        position += len(kept.instances) - (gone is not None) - 1
                        last_spec = None  # the task after the run starts a run of its own
                        continue
                    # Placed among the todos at its first signer (see below).
                    entry = _Countersign(parent, task, {})
                    countersigns[parent.id] = entry
                elif entry.kept is not None:
                    return None  # more of a countersign whose run was read whole
        elif not todo:
            continue
        internal = task.internal_data
        stored = internal.get(_HANDLERS)
        if stored is None:
            handlers, groups = assignment(task, ctx)
        else:
            handlers, groups = stored, internal.get(_GROUPS, ())
        if entry is None:
            slots.append(task)
            continue
        if internal.get(_OWN, False):
            entry.unkeepable = True
            slots.append(task)
            continue
        if not entry.instances:
            slots.append(entry)  # the countersign todo stands where its first signer does
        known_names = entry.handlers
        for name in handlers:
            if name in known_names:
                # The centre holds ONE share per signer of a countersign todo: a second open
                # instance for the same person could never be told apart.
                node = spec.bpmn_id or spec.name
                raise EngineDataError(
                    f"countersign {node!r} would ask {name!r} to sign twice: every signer "
                    "may appear once among its open instances; remove the duplicate from its "
                    "collection (or use a sequential multi-instance). The stored instance is "
                    "unchanged."
                )
            known_names[name] = None
        if groups:
            entry.groups.update(dict.fromkeys(groups))
        if entry.instances and tuple(groups) != tuple(
            entry.instances[0].internal_data.get(_GROUPS, ())
        ):
            entry.unkeepable = True
        entry.instances.append(task)
    todos: list[Todo] = []
    for slot in slots:
        if isinstance(slot, _Countersign):
            if slot.kept is not None:
                _drop_gone(slot.kept, slot.gone)
            elif keep:
                _keep(slot)
            todos.append(
                _todo(slot.parent, slot.first, tuple(slot.handlers), tuple(slot.groups), ctx)
            )
        else:
            handlers, groups = assignment(slot, ctx)
            todos.append(_todo(slot, slot, handlers, groups, ctx))
    return tuple(todos)


def _keep(entry: _Countersign) -> None:
    """Keep what was found open under ``entry``'s countersign for the next call (not when
    some of its instances are todos of their own, which the kept record could not tell from
    the countersign's run, nor when they keep different handling groups, as states stored
    before such instances were todos of their own can: which group comes first would then
    depend on which instances are left)."""
    if not entry.unkeepable:  # this call's own lists: kept as they are
        kept = _OpenSigners(entry.instances, entry.handlers, tuple(entry.groups))
        setattr(entry.parent, _OPEN, kept)
    elif hasattr(entry.parent, _OPEN):
        delattr(entry.parent, _OPEN)


def _drop_gone(kept: _OpenSigners, gone: int | None) -> None:
    """The kept open signers without the instance at ``gone`` (the signer who has just
    completed) and its names: what the run read whole from them held."""
    if gone is None:
        return
    left = kept.instances.pop(gone)
    handlers = kept.handlers
    for name in left.internal_data[_HANDLERS]:
        handlers.pop(name, None)


def _known_run(parent: Any, tasks: list[Any], start: int) -> tuple[_OpenSigners, int | None] | None:
    """The open signers kept on ``parent``, when its run in ``tasks`` starting at ``start``
    holds exactly the instances kept (then None as the second item), or all of them but one
    (the signer who has just completed: then that one's position); None when it cannot tell.
    Nothing is changed here: the caller drops the gone instance once the whole list is read.

    Task objects compare by identity, so the list comparisons below run in C."""
    kept: _OpenSigners | None = getattr(parent, _OPEN, None)
    if kept is None:
        return None
    held = kept.instances
    size = len(held)
    if tasks[start : start + size] == held:
        return kept, None
    here = tasks[start : start + size - 1]
    if size < 2 or len(here) != size - 1:
        return None
    gone = next(compress(count(), map(is_not, here, held)), size - 1)
    if here[gone:] != held[gone + 1 :] or held[gone].internal_data.get(_HANDLERS) is None:
        return None
    return kept, gone


def _todo(
    anchor: Any,
    instance: Any,
    handlers: tuple[str, ...],
    groups: tuple[str, ...],
    ctx: TodoContext,
) -> Todo:
    todo_id = todo_id_of(ctx.instance_id, anchor)
    settings = node_settings(ctx.process, instance)
    view = _view(anchor, settings, todo_id, ctx)
    return Todo(
        todo_id=todo_id,
        node_id=settings.node_id,
        node_name=str(view["node_name"]),
        handlers=handlers,
        handling_groups=groups,
        kind="countersign" if anchor is not instance else "task",
        task_name=str(view["task_name"]),
        summary=tuple(view["summary"]),
        urls=dict(view["urls"]),
    )
