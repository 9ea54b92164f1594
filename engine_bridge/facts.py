"""The values that cross layer boundaries: engine → planner → store/relay.

They are plain frozen dataclasses so the planner stays a pure function that tests can feed
by hand, and so the store can persist them as JSON without knowing SpiffWorkflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

__all__ = [
    "Action",
    "CenterCall",
    "Endpoint",
    "Ledger",
    "LedgerTodo",
    "Plan",
    "StepFacts",
    "Todo",
    "TransactionInfo",
]

JSON = Any


class Endpoint(StrEnum):
    """Centre operations, by the last segment(s) of their path under
    ``/apis/ttc/v1/transaction/poa/``."""

    ADD_TRANSACTION = "addTransaction"
    TASK_HANDLE = "taskHandle"
    TASK_WITHDRAW = "taskWithdraw"
    TASK_TERMINATE = "taskTerminate"
    URGE = "taskCuiBanNew"
    ADD_TASK = "todo/addTask"
    HANDLE_TASK = "todo/handleTask"
    DELETE_TASK = "todo/deleteTask"
    UPDATE_TRANSACTION = "todo/updateTransaction"

    @property
    def path(self) -> str:
        return f"/apis/ttc/v1/transaction/poa/{self.value}"


Action = Literal["start", "complete", "tick", "cancel", "message"]


@dataclass(frozen=True)
class Todo:
    """One todo the engine is waiting on, rendered for the centre.

    ``todo_id`` is the centre ``taskId``: deterministic from persisted state
    (``<instance id>:<spiff task uuid>``; for a parallel countersign the multi-instance
    parent's uuid, so the node has ONE todo). ``handlers`` are the persons who may still
    complete it: for a countersign, the signers whose instance is still open.
    """

    todo_id: str
    node_id: str
    node_name: str
    handlers: tuple[str, ...]
    handling_groups: tuple[str, ...] = ()
    kind: Literal["task", "countersign"] = "task"
    task_name: str = ""
    summary: tuple[str, ...] = ()
    urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TransactionInfo:
    """Transaction-level fields the centre shows, rendered from per-process settings."""

    trans_type_code: str
    trans_type_name: str
    transaction_name: str
    initiator: str
    initiator_name: str = ""
    serial_number: str = ""
    summary: tuple[str, ...] = ()
    urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFacts:
    """What one engine action did, as seen from outside SpiffWorkflow.

    ``open_todos`` is the complete set the engine waits on AFTER the step (not a delta): the
    planner diffs it against the ledger, which makes planning idempotent.
    """

    action: Action
    instance_id: str
    transaction: TransactionInfo
    open_todos: tuple[Todo, ...]
    finished: bool
    at: datetime
    completed_todo_id: str | None = None
    handler: str | None = None
    opinion: str = ""
    actor: str | None = None  # who cancelled (cancel) or the system account (tick)


@dataclass(frozen=True)
class LedgerTodo:
    """A todo as the centre holds it once every planned call is delivered."""

    todo_id: str
    node_id: str
    node_name: str
    handlers: tuple[str, ...]
    handled: tuple[str, ...] = ()  # handlers whose share a ``none`` closed (countersign)
    handling_groups: tuple[str, ...] = ()

    @cached_property
    def open_handlers(self) -> tuple[str, ...]:
        """Handlers whose share is still open; worked out once per todo (a countersign's
        lists hold all N signers, and a step asks several times)."""
        if not self.handled:
            return self.handlers
        handled = set(self.handled)  # a set: N signers must cost O(N), not O(N²)
        return tuple(h for h in self.handlers if h not in handled)

    def with_share_handled(self, share: str) -> LedgerTodo:
        """This todo once ``share`` is handled too (a countersign signer has signed).

        Its open handlers are this todo's without ``share``, so they are taken from this
        todo's (worked out at the previous step) by a copy done in C, instead of being worked
        out again from all N handlers in a Python loop at every signature."""
        after = replace(self, handled=(*self.handled, share))
        still = self.open_handlers
        if share in still:
            at = still.index(share)
            still = still[:at] + still[at + 1 :]
            if share in still:  # a name listed twice: every listing is handled
                still = tuple(h for h in still if h != share)
        # cached_property keeps its value in the instance's __dict__, frozen or not
        after.__dict__["open_handlers"] = still
        return after


@dataclass(frozen=True)
class Ledger:
    """The centre's view of one instance's transaction, as the bridge has planned it."""

    open: tuple[LedgerTodo, ...] = ()
    started: bool = False  # the transaction exists at the centre (a first todo was created)
    ended: bool = False  # ``end`` or terminate was sent: no further call may name it
    last_todo_id: str | None = None  # most recently created todo, for ``previousTaskId`` links
    transaction_id: str | None = None  # the centre names a flow transaction by its first taskId

    def get(self, todo_id: str) -> LedgerTodo | None:
        return next((t for t in self.open if t.todo_id == todo_id), None)


@dataclass(frozen=True)
class CenterCall:
    """One element of an array-body centre call, exactly as sent (wire field names)."""

    endpoint: Endpoint
    item: Mapping[str, JSON]

    @property
    def task_id(self) -> str:
        """The todo this element names (``previousTaskId`` for a handle)."""
        key = "previousTaskId" if self.endpoint is Endpoint.TASK_HANDLE else "taskId"
        return str(self.item.get(key, ""))


@dataclass(frozen=True)
class Plan:
    """The planner's answer: calls in the order they must arrive, and the ledger after them."""

    calls: tuple[CenterCall, ...]
    ledger: Ledger
    status: Literal["next", "none", "end"] | None = None  # of the completion's taskHandle
