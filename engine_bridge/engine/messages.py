"""Messages from outside an instance: which ones it waits for, and handing one over.

A BPMN model waits for a message with an intermediate catch event, a receive task, a boundary
event or a branch of an event-based gateway. Nothing inside the bridge sends those messages: a
payment system, a business service or an operator does, through ``Bridge.message``. The caller
names the instance, so the instance is the correlation: correlation keys the model declares
are taken as the instance's own instead of being compared with keys in the payload.

Where the payload goes follows the model. A message with a ``spiffworkflow:messageVariable``
is stored under that name (SpiffWorkflow's rule). Any other message's payload is merged into
the data of the task that caught it and flows on from there, as a Camunda message correlated
with variables does; without that SpiffWorkflow would keep it out of the process data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent

__all__ = ["awaited_messages", "deliver_message"]


def _message_definitions(task: Any) -> list[MessageEventDefinition]:
    definition = getattr(task.task_spec, "event_definition", None)
    if isinstance(definition, MultipleEventDefinition):
        found: Iterable[Any] = definition.event_definitions
    else:
        found = (definition,)
    return [d for d in found if isinstance(d, MessageEventDefinition)]


def awaited_messages(wf: Any) -> list[str]:
    """Names of the messages some waiting task of ``wf`` (subprocesses included) would catch,
    sorted, each once."""
    names = {d.name for task in wf.event_manager.tasks.values() for d in _message_definitions(task)}
    return sorted(names)


def deliver_message(wf: Any, name: str, payload: dict[str, Any]) -> list[Any]:
    """Hand the message ``name`` with ``payload`` to every task of ``wf`` waiting for it;
    returns those tasks (empty when none waits). The workflow is not advanced: the caller
    runs its engine steps next."""
    waiting = [
        (task, definition)
        for task in list(wf.event_manager.tasks.values())
        for definition in _message_definitions(task)
        if definition.name == name
    ]
    caught: list[Any] = []
    for task, definition in waiting:
        if task in caught:
            continue
        # The instance is the correlation: the keys the catching workflow holds are the keys
        # the message carries.
        keys = dict(task.workflow.correlations)
        event = BpmnEvent(definition, payload=payload, correlations=keys)
        if not task.task_spec.catches(task, event):
            continue
        task.task_spec.catch(task, event)
        task.task_spec._update(task)  # takes its parent's data: merge the message's after it
        if getattr(definition, "message_var", None) is None:
            # Stored nowhere by SpiffWorkflow (its payload would stay in the task's internal
            # data, out of reach of the process): merged into the task's own data instead,
            # over what the process held (a message brings news).
            task.internal_data.pop(name, None)
            task.data.update(payload)
        caught.append(task)
    return caught
