"""READY tasks of a workflow, found without walking its task tree.

``wf.get_tasks(state=READY, ...)`` walks the task tree with an iterator that pops from the
front of a Python list and rebuilds it at every node: ~1.5 ms per walk at 1000 tasks, and the
engine asked three times per action (pass-through tasks, engine tasks left, open todos). A
countersign with N signers therefore cost O(N) per completion in walks alone, several times
SpiffWorkflow's own cost. Every task of a workflow is also in ``wf.tasks`` (a dict in
creation order), so a filter over it finds the same tasks in ~0.1 µs each; they are then put
in the tree's depth-first order, which is what SpiffWorkflow returns and what todo order (and
so the order of ``next[]``) has always followed.

Workflows with subprocesses or call activities are walked by SpiffWorkflow as before: their
tasks live in other workflows, and they are small.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState

__all__ = ["is_finished", "ready_by_kind", "ready_tasks", "resting_ready"]

_READY = TaskState.READY
_NOT_FINISHED = TaskState.NOT_FINISHED_MASK


def is_finished(wf: Any) -> bool:
    """``wf.is_completed()``, answered from ``wf.tasks`` while the workflow runs.

    SpiffWorkflow's check walks the tree to the first unfinished task, building each visited
    task's list of children on the way: O(N) at a countersign with N instances, asked several
    times per step. An unfinished task is found near the front of ``wf.tasks`` instead; once
    none is left SpiffWorkflow's own check runs, and records the completion as it always does.
    """
    if wf.completed:
        return True
    if any(t._state & _NOT_FINISHED for t in wf.tasks.values()):
        return False
    return bool(wf.is_completed())


def resting_ready(wf: Any) -> list[Any] | None:
    """The READY tasks in tree order when ``wf.do_engine_steps()`` has nothing to run besides
    refreshing timers; None when it has.

    With no subprocess, its rounds run the READY tasks that are not manual and nothing else;
    when there are none (a completion that leaves only people to wait for: every signer of a
    countersign but the last) they find none and change nothing, after walking the tree to
    see. The READY tasks found on the way to that answer are then the ones the step waits on,
    unless a timer refresh changes them, and need not be looked for again. A subprocess has
    its own rounds: then the answer is always None.
    """
    if wf.subprocesses:
        return None
    manual, engine_ready = ready_by_kind(wf)
    return None if engine_ready else manual


def ready_tasks(wf: Any, *, manual: bool) -> list[Any]:
    """READY tasks whose spec's ``manual`` is ``manual``, in depth-first tree order: the
    order of ``wf.get_tasks(state=TaskState.READY, ...)``."""
    if wf.subprocesses:
        return list(wf.get_tasks(state=_READY, manual=manual))
    found = [t for t in wf.tasks.values() if t._state == _READY and t.task_spec.manual == manual]
    if len(found) > 1:
        found = _in_tree_order(found, wf.tasks)
    return found


def ready_by_kind(wf: Any) -> tuple[list[Any], bool]:
    """(READY manual tasks in tree order, whether any READY task is not manual), from one
    pass: settling a step asks both questions of the same tasks, and a countersign with N
    signers has N READY tasks to look at each time."""
    if wf.subprocesses:
        manual = list(wf.get_tasks(state=_READY, manual=True))
        return manual, wf.get_next_task(state=_READY, manual=False) is not None
    ready = [t for t in wf.tasks.values() if t._state == _READY]
    found = [t for t in ready if t.task_spec.manual]
    if len(found) > 1:
        found = _in_tree_order(found, wf.tasks)
    return found, len(found) != len(ready)


def _in_tree_order(found: list[Any], tasks: dict[UUID, Any]) -> list[Any]:
    """``found`` (in creation order) sorted by position in a depth-first walk.

    SpiffWorkflow only ever appends to a task's children, so siblings are already in tree
    order; only tasks under different parents need sorting, by the path of child indexes
    from the root (worked out once per distinct parent).
    """
    first = found[0]._parent
    # Siblings made in one run share their parent's id object; ids read from a stored state
    # are equal objects, compared only when identity fails (UUIDs hash and compare in Python).
    if all(t._parent is first or t._parent == first for t in found):
        return found
    parents = {t._parent for t in found}
    paths = {parent_id: _path(parent_id, tasks) for parent_id in parents}
    indexes: dict[UUID, int] = {}
    for parent_id in parents:
        parent = tasks.get(parent_id) if parent_id is not None else None
        if parent is not None:
            indexes.update((child, n) for n, child in enumerate(parent._children))
    return sorted(found, key=lambda t: (*paths[t._parent], indexes.get(t.id, 0)))


def _path(task_id: UUID | None, tasks: dict[UUID, Any]) -> tuple[int, ...]:
    """Child indexes from the root down to ``task_id`` (empty for the root or None)."""
    path: list[int] = []
    while task_id is not None:
        task = tasks[task_id]
        parent_id = task._parent
        if parent_id is None:
            break
        path.append(tasks[parent_id]._children.index(task_id))
        task_id = parent_id
    path.reverse()
    return tuple(path)
