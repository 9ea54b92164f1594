"""What the Bridge returns to its caller: small immutable records, no SpiffWorkflow inside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine_bridge.facts import CenterCall

__all__ = ["Instance", "OpenTodo", "Outcome"]


@dataclass(frozen=True)
class OpenTodo:
    """An open todo at the centre, as the bridge has planned it.

    ``handlers`` are the persons who may still complete it (for a countersign: the signers who
    have not signed yet); ``task_id`` is what ``Bridge.complete`` takes.
    """

    task_id: str
    instance_id: str
    node_id: str
    node_name: str
    handlers: tuple[str, ...]
    handling_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instance:
    """A process instance after an action."""

    id: str
    process_id: str
    status: str  # running | finished | cancelled | incident
    business_key: str | None
    initiator: str
    todos: tuple[OpenTodo, ...] = ()
    duplicate: bool = False  # True when ``start`` found an instance with the same key
    calls: tuple[CenterCall, ...] = ()  # centre calls the start queued (none for a duplicate)


@dataclass(frozen=True)
class Outcome:
    """What one action did: the status of the completion's handle, the todos it created, and
    the centre calls it queued (delivered already when the bridge delivers automatically)."""

    instance_id: str
    action: Literal["start", "complete", "tick", "cancel", "message"]
    status: Literal["next", "none", "end"] | None
    finished: bool
    created: tuple[OpenTodo, ...] = ()
    closed: tuple[str, ...] = ()  # todo ids closed by this action (completed, withdrawn, ended)
    calls: tuple[CenterCall, ...] = ()
    duplicate: bool = False  # True when the idempotency key was seen before: nothing changed
    # The service task where the instance stopped with an incident (``bridge.incidents()``
    # has the error); None when the step ran through.
    stopped_at: str | None = None

    @property
    def next_nodes(self) -> tuple[str, ...]:
        return tuple(t.node_id for t in self.created)
