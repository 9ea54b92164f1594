"""Countersign (会签): multi-instance user tasks and their completion conditions.

A parallel multi-instance user task is ONE todo for the node: its instances are the signers.
This module answers the structural questions (is this task an instance of a parallel
multi-instance? which instances are still open?) and supplies the script engine that gives a
``completionCondition`` the Camunda counters, because SpiffWorkflow evaluates the condition
against the just-completed instance's own data: there the output collection is the stale copy
taken when the instance was created, and no counters exist.

When a completion condition is evaluated it sees, besides the instance's data:

``nrOfInstances``            instances in the whole multi-instance (sequential: planned ones too)
``nrOfCompletedInstances``   completed instances, INCLUDING the one just completed
``nrOfActiveInstances``      ``nrOfInstances - nrOfCompletedInstances``
``loopCounter``              0-based position of the just-completed instance
<output collection>          the collection as gathered so far (e.g. ``decisions``)

so "2 of 3 approve" reads ``nrOfCompletedInstances >= 2`` or
``len([d for d in decisions.values() if d == 'approve']) >= 2``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import (
    MultiInstanceTask,
    ParallelMultiInstanceTask,
    SequentialMultiInstanceTask,
)

from engine_bridge.clock import Clock, FakeClock

__all__ = [
    "BridgeScriptEngine",
    "completion_context",
    "instances",
    "parallel_parent",
]


def parallel_parent(task: Any) -> Any | None:
    """The parallel multi-instance task whose instance ``task`` is, else None.

    The task after a multi-instance is also a child of it, so the spec name is compared, not
    just the parent's type.
    """
    parent = task.parent
    if parent is None:
        return None
    spec = parent.task_spec
    if isinstance(spec, ParallelMultiInstanceTask) and spec.task_spec == task.task_spec.name:
        return parent
    return None


def instances(parent: Any) -> Iterator[Any]:
    """The instance tasks of a multi-instance task, in creation order."""
    child_name = parent.task_spec.task_spec
    return (c for c in parent.children if c.task_spec.name == child_name)


def completion_context(task: Any, expression: str) -> dict[str, Any] | None:
    """Names to add when ``expression`` is the completion condition of ``task``'s
    multi-instance, else None. Costs one pass over the instances (SpiffWorkflow's own check
    makes the same pass)."""
    parent = task.parent
    if parent is None:
        return None
    spec = parent.task_spec
    if (
        not isinstance(spec, MultiInstanceTask)
        or spec.condition is None
        or spec.condition != expression
        or spec.task_spec != task.task_spec.name
    ):
        return None
    completed = len(parent.internal_data.get("merged", []))
    position = 0
    count = 0
    for index, child in enumerate(instances(parent)):
        count += 1
        if child is task:
            position = index
    if isinstance(spec, SequentialMultiInstanceTask):
        planned = parent.internal_data.get("cardinality")
        if planned is None:
            planned = count + len(parent.internal_data.get("remaining", []))
        count = int(planned)
    context: dict[str, Any] = {
        "nrOfInstances": count,
        "nrOfCompletedInstances": completed,
        "nrOfActiveInstances": max(count - completed, 0),
        "loopCounter": position,
    }
    if spec.data_output is not None and spec.data_output.exists(parent):
        context[spec.data_output.bpmn_id] = spec.data_output.get(parent)
    return context


class _TaskView:
    """A task whose ``data`` is replaced for one evaluation; everything else is the task's."""

    def __init__(self, task: Any, data: Mapping[str, Any]) -> None:
        self._task = task
        self.data = data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


class BridgeScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """The script engine attached to every workflow the engine runs.

    It delegates to the restricted engine (``inner``) and adds two things SpiffWorkflow cannot
    carry itself: the countersign counters above, and the engine's ``clock``, which the timers
    of :mod:`engine_bridge.engine.timers` read.
    """

    def __init__(self, inner: PythonScriptEngine, clock: Clock) -> None:
        while isinstance(inner, BridgeScriptEngine):
            inner = inner.inner
        super().__init__(environment=inner.environment)
        self.inner: PythonScriptEngine = inner
        self._clock = clock
        self._pinned = threading.local()  # a time the timers read instead, in this thread

    @property
    def clock(self) -> Clock:
        """The engine's clock, or the time :meth:`pinned_at` holds it at in this thread."""
        pinned: Clock | None = getattr(self._pinned, "clock", None)
        return pinned if pinned is not None else self._clock

    @contextmanager
    def pinned_at(self, when: datetime) -> Iterator[None]:
        """Timers of this thread's workflows see ``when`` as now within the block: a late
        tick replays the timers that fell due one due time after the other (the engine is
        shared by threads, so the time is pinned per thread)."""
        before = getattr(self._pinned, "clock", None)
        self._pinned.clock = FakeClock(when)
        try:
            yield
        finally:
            self._pinned.clock = before

    def validate(self, expression: str) -> None:
        self.inner.validate(expression)

    def evaluate(
        self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        extra = completion_context(task, expression)
        if extra is not None:
            # Counters and the fresh collection win over the instance's stale copy.
            task = _TaskView(task, {**task.data, **extra})
        return self.inner.evaluate(task, expression, external_context)

    def execute(
        self, task: Any, script: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        return self.inner.execute(task, script, external_context)

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        return self.inner.call_service(task, **kwargs)
