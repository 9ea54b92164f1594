"""Parallel and inclusive joins that wait for their own round's branches inside a loop.

A rework loop around a joint review (split, a todo per reviewer, join, "again?" back to the
split) is common in approval processes. SpiffWorkflow 3.2 keeps every earlier round's tasks
in the tree, and its joins count them:

- a parallel join counts the join tasks its earlier rounds left behind (it cancels the waiting
  ones as it fires, and their completed branches still look like arrived tokens), so from the
  second round on it fired as soon as one branch arrived, opening the other branch's todo
  again;
- an inclusive join looks for its branches by walking the tree down to the join, which stops at
  the first join it meets: the earlier round's. It fired on that round's branches and, a
  completion later, failed.

The join's round is what lies below its previous firing: every task of a round descends from
the join task that ended the round before, and no task of an earlier round does. The classes
here are SpiffWorkflow's gateways with their counting limited to that. They are written and
read under SpiffWorkflow's names (``engine.state`` registers them), so definitions stay
SpiffWorkflow's documents and instances stored before use them too; a join outside any loop
has no previous firing and counts exactly as SpiffWorkflow does.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer.default.task_spec import (
    ConditionalGatewayConverter,
    ParallelGatewayConverter,
)
from SpiffWorkflow.bpmn.specs.defaults import InclusiveGateway, ParallelGateway
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

__all__ = ["RoundInclusiveGateway", "RoundParallelGateway", "register_round_gateways"]


def previous_firing(spec: Any, task: Any) -> Any | None:
    """The nearest ancestor of ``task`` that is a task of ``spec``: the join's firing that
    began ``task``'s round (None in the first round, or outside a loop)."""
    node = task.parent
    while node is not None:
        if node.task_spec is spec:
            return node
        node = node.parent
    return None


def _under(task: Any, ancestor: Any, begun: Any | None) -> bool:
    """Whether ``ancestor`` is above ``task``, looking no higher than ``begun``: SpiffWorkflow's
    ``is_descendant_of`` recurses to the root, which every round of a loop makes deeper
    (slower each round, and a RecursionError after some two hundred)."""
    node = task.parent
    while node is not None:
        if node is ancestor:
            return True
        if node is begun:
            return False
        node = node.parent
    return False


def _round_tasks(begun: Any) -> list[Any]:
    """The tasks of the round ``begun`` began: everything below it."""
    found: list[Any] = []
    stack = list(begun.children)
    while stack:
        task = stack.pop()
        found.append(task)
        stack.extend(task.children)
    return found


def _round_ids(begun: Any | None) -> set[Any] | None:
    """The ids of the tasks of the round ``begun`` began (None: every task, the first round)."""
    return None if begun is None else {task.id for task in _round_tasks(begun)}


def _merge_round(spec: Any, task: Any) -> None:
    """Bring the data of the round's other arrived branches into the firing join ``task``
    (SpiffWorkflow's merge, of this round's branches only), then its own branch's."""
    begun = previous_firing(spec, task)
    round_ids = _round_ids(begun)
    arrived = [
        t
        for t in task.workflow.tasks.values()
        if t.task_spec is spec
        and t is not task
        and t.has_state(TaskState.FINISHED_MASK)
        and t.parent is not None
        and (round_ids is None or t.id in round_ids)
        and not _under(task, t, begun)
    ]
    for other in sorted(arrived, key=lambda t: t.last_state_change):
        DeepMerge.merge(task.data, other.parent.data)
        if other.has_state(TaskState.COMPLETED):
            other._drop_children(force=True)
    task._inherit_data()


class RoundParallelGateway(ParallelGateway):  # type: ignore[misc]
    """SpiffWorkflow's parallel gateway, joining the branches of the current round only."""

    def _check_threshold_unstructured(self, my_task: Any) -> bool:
        begun = previous_firing(self, my_task)
        if begun is None:
            joins = my_task.workflow.get_tasks(spec_name=self.name)
        else:  # the round's own tasks: an earlier round's branches arrived at earlier firings
            joins = [t for t in _round_tasks(begun) if t.task_spec is self]
        missing = set(self.inputs)
        for task in joins:
            if _under(task, my_task, begun):
                # Reached only after this join fires (a loop through the join itself): the
                # input it comes by is not waited for.
                _drop_input_above(task, missing)
            elif not _under(my_task, task, begun) and task.parent.state == TaskState.COMPLETED:
                missing.discard(task.parent.task_spec)
        return not missing

    def _run_hook(self, my_task: Any) -> bool:
        _merge_round(self, my_task)
        return True


def _drop_input_above(task: Any, missing: set[Any]) -> None:
    node = task
    while node is not None:
        if node.task_spec in missing:
            missing.discard(node.task_spec)
            return
        node = node.parent


class _Round:
    """What SpiffWorkflow's inclusive check reads of the joining task, its workflow's tasks,
    limited to the round: the tree below the join's previous firing."""

    def __init__(self, begun: Any) -> None:
        self.workflow = self
        self._begun = begun

    def get_tasks(self, **kwargs: Any) -> list[Any]:
        workflow = self._begun.workflow
        return [
            task
            for child in self._begun.children
            for task in workflow.get_tasks(first_task=child, **kwargs)
        ]


class RoundInclusiveGateway(InclusiveGateway):  # type: ignore[misc]
    """SpiffWorkflow's inclusive gateway, joining the branches of the current round only."""

    def _check_threshold_unstructured(self, my_task: Any) -> bool:
        begun = previous_firing(self, my_task)
        if begun is None:
            return bool(super()._check_threshold_unstructured(my_task))
        return bool(super()._check_threshold_unstructured(_Round(begun)))

    def _run_hook(self, my_task: Any) -> bool:
        # SpiffWorkflow's own hook merges every earlier round's branches too; this merge is
        # the round's, and the outputs are chosen as SpiffWorkflow chooses them.
        _merge_round(self, my_task)
        return bool(self._choose_outputs(my_task))

    def _choose_outputs(self, my_task: Any) -> bool:
        matches, defaults = self._get_matching_outputs(my_task)
        if not matches and not defaults:
            raise WorkflowTaskException("No conditions satisfied on gateway", task=my_task)
        my_task._sync_children(matches or defaults, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


def register_round_gateways(registry: Any) -> None:
    """Make ``registry`` read SpiffWorkflow's gateways as these classes, and write these
    under SpiffWorkflow's names (the documents are the same either way)."""
    ParallelGatewayConverter(RoundParallelGateway, registry, typename="ParallelGateway")
    ConditionalGatewayConverter(RoundInclusiveGateway, registry, typename="InclusiveGateway")
