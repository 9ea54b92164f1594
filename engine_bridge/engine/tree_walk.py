"""SpiffWorkflow's walks of the task tree, without rebuilding a list at every task.

SpiffWorkflow finds tasks by walking the task tree with its ``TaskIterator``, which pops the
front of a Python list, prepends each task's children to it and recomputes the depth with
several calls per task: about 1.5 µs per task. It walks the whole tree after every task that
completes (to update the WAITING ones; engine tasks included) and again for every round of
engine steps (to find the READY ones). In a countersign with N signers the tree has N
instances under the multi-instance task, so these walks are about two thirds of
SpiffWorkflow's own time per completion at N = 100, and they grow with N.

``BridgeWorkflow`` and ``BridgeSubWorkflow`` (subprocesses and call activities) are
SpiffWorkflow's workflow classes with those walks done by :func:`walk`: a stack of
``(task, depth)``, the filter tested inline. It yields the same tasks in the same order as
SpiffWorkflow's iterators (depth first, children in order, none below the depth limit), and
reads a task's children when it reaches the task, before handing the task out, as they do:
children a caller adds to the task it was handed are not visited, tasks added further on are.
Walks asking for anything else (``end_at_spec``, ``spec_name``, ``lane``, breadth first …) go
to SpiffWorkflow's iterator, and so do the walks of a workflow with subprocesses (which walk on
into the subprocesses' own trees): those are small, and SpiffWorkflow counts depth across them
in a way of its own.

Stored states name SpiffWorkflow's classes (``BpmnWorkflow``, ``BpmnSubWorkflow``): the
registry of :mod:`engine_bridge.engine.state` writes these classes under those names and reads
those names as these classes, so a state is the same document either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.util.task import TaskIterator, TaskState

from engine_bridge.errors import EngineError

__all__ = ["BridgeSubWorkflow", "BridgeWorkflow", "compare_walks", "walk"]

#: The filters :func:`walk` covers; a walk asking for others goes to SpiffWorkflow's iterator.
_COVERED = frozenset({"state", "manual"})
#: SpiffWorkflow's iterators stop descending at this depth (counted from where they start).
MAX_DEPTH = 1000


def walk(
    first: Any, *, state: int = TaskState.ANY_MASK, manual: bool | None = None
) -> Iterator[Any]:
    """The tasks of ``first``'s workflow under ``first`` (itself included) in ``state`` and,
    unless None, whose spec's ``manual`` is ``manual``, as SpiffWorkflow's ``TaskIterator``
    gives them: depth first, children in order, none below the depth limit.

    A subprocess's tasks are not walked (``BpmnTaskIterator`` does that; see
    :class:`_FastWalks`). A child id missing from the workflow's tasks (a damaged state,
    which SpiffWorkflow fails on too) raises ``EngineError``.
    """
    # Which tasks are looked under, as SpiffWorkflow decides it: a predicted task only has
    # predicted children, a definite one no finished children.
    if state & TaskState.PREDICTED_MASK:
        lowest = TaskState.MAYBE
    elif state & TaskState.DEFINITE_MASK:
        lowest = TaskState.FUTURE
    else:
        lowest = TaskState.COMPLETED
    get = first.workflow.tasks.get
    stack: list[tuple[Any, int]] = [(first, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        task, depth = pop()
        task_state = task._state
        children = task._children
        if children and task_state >= lowest and depth < MAX_DEPTH:
            below = depth + 1
            for child_id in reversed(children):
                child = get(child_id)
                if child is None:
                    raise EngineError(
                        f"the workflow's task tree is damaged: task {task.task_spec.name} "
                        f"({task.id}) lists a child {child_id} that is not in the workflow"
                    )
                push((child, below))
        # SpiffWorkflow's filter: the state, a state stamp not before 0, the spec's manual
        if (
            task_state & state
            and task.last_state_change >= 0
            and (manual is None or task.task_spec.manual == manual)
        ):
            yield task


class _Comparing:
    """Whether every walk is also done by SpiffWorkflow's iterator and the two compared (a
    mismatch raises ``EngineError``). Twice the cost of a walk: the test suite turns it on,
    so every walk of every test checks this module against SpiffWorkflow."""

    on = False


compare_walks = _Comparing()


class _FastWalks:
    """The walks SpiffWorkflow's workflow classes run on every step, done by :func:`walk`."""

    task_tree: Any
    tasks: dict[Any, Any]
    top_workflow: Any

    def get_tasks_iterator(self, first_task: Any = None, **kwargs: Any) -> Iterator[Any]:
        # With subprocesses SpiffWorkflow walks on into their tasks, counting depth as it goes
        # in a way of its own (it drifts after some subprocesses, which matters only at the
        # depth limit); those workflows are small, and are walked by SpiffWorkflow itself.
        if self.top_workflow.subprocesses or not kwargs.keys() <= _COVERED:
            return super().get_tasks_iterator(first_task, **kwargs)  # type: ignore[misc,no-any-return]
        ours = walk(
            first_task or self.task_tree,
            state=kwargs.get("state", TaskState.ANY_MASK),
            manual=kwargs.get("manual"),
        )
        if not compare_walks.on:
            return ours
        theirs = super().get_tasks_iterator(first_task, **kwargs)  # type: ignore[misc]
        return _compared(ours, theirs, kwargs)

    def update_waiting_tasks(self) -> None:
        # Runs after every task that completes, and most of the time nothing waits (no join
        # half reached, no timer): then the walk finds nothing and, handing nothing out,
        # changes nothing on the way; a look at the states in ``tasks`` is enough.
        waiting = TaskState.WAITING
        if not any(task._state & waiting for task in self.tasks.values()):
            return
        tasks = walk(self.task_tree, state=waiting)
        if compare_walks.on:
            theirs = TaskIterator(self.task_tree, state=TaskState.WAITING)
            tasks = _compared(tasks, theirs, {"state": TaskState.WAITING})
        for task in tasks:
            task.task_spec._update(task)


def _compared(ours: Iterator[Any], theirs: Iterator[Any], asked: dict[str, Any]) -> Iterator[Any]:
    """``ours``, checked task by task against ``theirs`` as the caller goes (both read a
    task's children when they reach it, so a caller changing the tree changes both alike)."""
    for n, (mine, spiff) in enumerate(zip_longest(ours, theirs)):
        if mine is not spiff:
            raise EngineError(
                f"task walk {asked} differs from SpiffWorkflow's at position {n}: "
                f"{_name(mine)} here, {_name(spiff)} there"
            )
        yield mine


def _name(task: Any) -> str:
    return "the end" if task is None else f"{task.task_spec.name} ({task.id})"


class BridgeSubWorkflow(_FastWalks, BpmnSubWorkflow):  # type: ignore[misc]
    """A subprocess or call activity's workflow (see the module docstring)."""


class BridgeWorkflow(_FastWalks, BpmnWorkflow):  # type: ignore[misc]
    """A process instance's workflow (see the module docstring)."""

    def create_subprocess(self, my_task: Any, spec_name: str) -> BridgeSubWorkflow:
        subprocess = BridgeSubWorkflow(
            self.subprocess_specs[spec_name], parent_task_id=my_task.id, top_workflow=self
        )
        self.subprocesses[my_task.id] = subprocess
        return subprocess
