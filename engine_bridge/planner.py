"""From what an engine step did to the to-do centre calls that mirror it.

``plan`` is a pure function: step facts (the COMPLETE set of todos the engine waits on after
the step) plus the ledger (what the centre holds once every earlier call is delivered) give
the calls, in the order they must arrive, and the ledger after them. Because it diffs two full
states instead of replaying events, planning the same step twice gives the same answer, and
the store can persist the calls and the new ledger in the same transaction as the engine state.

The rules are DESIGN.md §2 with its conventions; ``docs/mapping.md`` lists them with one
example body per case. In short:

- a completion is ONE ``taskHandle``: ``end`` if the process finished, ``next`` if new todos
  appeared (they ride in ``next[]``), else ``none``;
- ``none`` closes only the caller's share, so a todo the engine no longer waits on that still
  has other shares (or-sign, countersign ended early) is withdrawn right after by the system
  account, as is every todo the engine cancelled;
- todos appearing without a completion are the ``next[]`` of the withdraw that closed a
  cancelled todo, or ``addTransaction`` items (the first todo of the transaction, or linked to
  one by ``previousTaskId``);
- a process finishing without a completion withdraws with ``end`` (or, with nothing open,
  sets the transaction ``FINISH``); a business cancel terminates;
- once the transaction has ended nothing names it again.

Mismatches that only a bridge bug can cause (a completion of a todo the ledger does not hold
open for that handler, finished facts with open todos) raise ``ValueError``: sending calls the
centre would refuse, or leaving it out of step silently, would be worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from engine_bridge.facts import (
    CenterCall,
    Endpoint,
    Ledger,
    LedgerTodo,
    Plan,
    StepFacts,
    Todo,
)
from engine_bridge.wire import creation_object, format_time

__all__ = ["CAMPUS_TZ", "plan"]

#: The campus wall clock, used for ``handleTime`` and ``createTime`` unless told otherwise.
CAMPUS_TZ: tzinfo = ZoneInfo("Asia/Shanghai")


def plan(
    facts: StepFacts,
    ledger: Ledger,
    *,
    app_id: str,
    system_account: str = "system",
    tz: tzinfo = CAMPUS_TZ,
    actions: Sequence[Mapping[str, Any]] = (),
    previous_actions: Sequence[Mapping[str, Any]] = (),
) -> Plan:
    """The centre calls that mirror one engine step, and the ledger once they are delivered.

    ``actions`` are the buttons put on every todo created by this step; ``previous_actions``
    the buttons put on the done item of a completion's ``taskHandle``. ``system_account`` is
    the ``creator`` of every withdraw and status change nobody in particular asked for.
    """
    if ledger.ended:
        # The transaction is closed at the centre; any call naming it would be refused.
        return Plan(calls=(), ledger=ledger, status=None)
    if facts.finished and facts.open_todos:
        raise ValueError(
            f"instance {facts.instance_id!r}: step facts say the process finished yet list "
            f"open todos {[t.todo_id for t in facts.open_todos]}; the engine layer must "
            "report no open todo for a finished process."
        )
    step = _Step(
        facts=facts,
        app_id=app_id,
        system_account=system_account,
        time=format_time(facts.at, tz),
        actions=tuple(actions),
        previous_actions=tuple(previous_actions),
    )
    if facts.action == "complete":
        return _plan_complete(step, ledger)
    if facts.action in ("start", "tick", "message"):
        # A start is a tick on an empty ledger: todos appeared without anyone's completion,
        # as they do when a timer fires or a message arrives.
        return _plan_without_completion(step, ledger)
    if facts.action == "cancel":
        return _plan_cancel(step, ledger)
    raise ValueError(
        f"instance {facts.instance_id!r}: unknown step action {facts.action!r}; "
        "expected start, complete, tick, message or cancel."
    )


@dataclass(frozen=True)
class _Step:
    """One planning run's inputs, so the helpers below take one argument instead of six."""

    facts: StepFacts
    app_id: str
    system_account: str
    time: str
    actions: tuple[Mapping[str, Any], ...]
    previous_actions: tuple[Mapping[str, Any], ...]

    def create(self, todo: Todo, previous_task_id: str | None = None) -> dict[str, Any]:
        return creation_object(
            todo,
            self.facts.transaction,
            app_id=self.app_id,
            actions=self.actions,
            previous_task_id=previous_task_id,
        )

    def handle(
        self,
        todo_id: str,
        handler: str,
        status: Literal["next", "none", "end"],
        new: Sequence[Todo],
    ) -> CenterCall:
        item: dict[str, Any] = {
            "appId": self.app_id,
            "previousTaskId": todo_id,
            "handler": handler,
        }
        if self.facts.opinion:
            item["handleOpinions"] = self.facts.opinion
        item["handleTime"] = self.time
        item["status"] = status
        if status == "next":
            item["next"] = [self.create(todo) for todo in new]
        if self.previous_actions:
            item["previousActions"] = [dict(action) for action in self.previous_actions]
        return CenterCall(Endpoint.TASK_HANDLE, item)

    def withdraw(
        self, todo_id: str, status: Literal["next", "end"], new: Sequence[Todo] = ()
    ) -> CenterCall:
        if status == "end":
            # The documented "withdraw and end the transaction" form carries exactly these.
            item: dict[str, Any] = {
                "appId": self.app_id,
                "taskId": todo_id,
                "creator": self.system_account,
                "status": "end",
            }
        else:
            item = {
                "appId": self.app_id,
                "taskId": todo_id,
                "creator": self.system_account,
                "createTime": self.time,
                "status": "next",
                "next": [self.create(todo) for todo in new],
            }
        return CenterCall(Endpoint.TASK_WITHDRAW, item)


def _ledger_todo(todo: Todo) -> LedgerTodo:
    return LedgerTodo(
        todo_id=todo.todo_id,
        node_id=todo.node_id,
        node_name=todo.node_name,
        handlers=todo.handlers,
        handling_groups=todo.handling_groups,
    )


def _diff(facts: StepFacts, ledger: Ledger) -> tuple[tuple[Todo, ...], tuple[LedgerTodo, ...]]:
    """(new, gone): todos the engine waits on that the centre lacks, and the reverse."""
    engine_ids = {todo.todo_id for todo in facts.open_todos}
    new = tuple(todo for todo in facts.open_todos if ledger.get(todo.todo_id) is None)
    gone = tuple(held for held in ledger.open if held.todo_id not in engine_ids)
    return new, gone


def _after(
    ledger: Ledger,
    open_todos: Sequence[LedgerTodo],
    created: Sequence[Todo],
    *,
    first_created: bool = False,
) -> Ledger:
    """The ledger with ``open_todos`` still open and ``created`` appended in creation order."""
    opened = tuple(open_todos) + tuple(_ledger_todo(todo) for todo in created)
    if not created:
        return replace(ledger, open=opened)
    return replace(
        ledger,
        open=opened,
        started=True,
        last_todo_id=created[-1].todo_id,
        transaction_id=created[0].todo_id if first_created else ledger.transaction_id,
    )


GROUP_SHARE = "@group"
"""Marker in ``LedgerTodo.handled``: the todo's handling groups have had their one share.

The centre counts a todo's handling groups as ONE share (it cannot know the members): the
first ``none`` by someone who is not a listed handler closes it.
"""


def _group_share_open(held: LedgerTodo) -> bool:
    return bool(held.handling_groups) and GROUP_SHARE not in held.handled


def _share_of(held: LedgerTodo, handler: str) -> str:
    """The share a ``none`` by ``handler`` closes: their own, else the groups' one."""
    return handler if handler in held.open_handlers else GROUP_SHARE


def _other_shares(held: LedgerTodo, handler: str) -> bool:
    """Whether the todo stays open at the centre after ``handler``'s ``none``."""
    others = any(h != handler for h in held.open_handlers)
    if _share_of(held, handler) == GROUP_SHARE:
        return others
    return others or _group_share_open(held)


def _plan_complete(step: _Step, ledger: Ledger) -> Plan:
    facts = step.facts
    todo_id, handler = facts.completed_todo_id, facts.handler
    if todo_id is None or handler is None:
        raise ValueError(
            f"instance {facts.instance_id!r}: a 'complete' step needs completed_todo_id and "
            f"handler (got {todo_id!r}, {handler!r})."
        )
    held = ledger.get(todo_id)
    if held is None:
        raise ValueError(
            f"instance {facts.instance_id!r}: todo {todo_id!r} completed by {handler!r} is not "
            "open in the ledger; the engine and the ledger disagree (bridge bug)."
        )
    if handler not in held.open_handlers and not _group_share_open(held):
        raise ValueError(
            f"instance {facts.instance_id!r}: handler {handler!r} has no open share of todo "
            f"{todo_id!r} (open: {list(held.open_handlers)}); the engine and the ledger "
            "disagree (bridge bug)."
        )

    if facts.finished:
        # ``end`` closes every other open todo and finishes the transaction by itself.
        call = step.handle(todo_id, handler, "end", ())
        return Plan((call,), replace(ledger, open=(), ended=True), "end")

    new, gone = _diff(facts, ledger)
    gone = tuple(g for g in gone if g.todo_id != todo_id)
    still_open = next((t for t in facts.open_todos if t.todo_id == todo_id), None)
    calls: list[CenterCall] = []
    status: Literal["next", "none"]

    if still_open is not None:
        # A countersign share: this signer is done, the others still sign the same todo.
        shared = held.with_share_handled(_share_of(held, handler))
        open_now = shared.open_handlers
        # Both lists follow the signers' order, so the tuples are equal in the usual case (one
        # comparison in C); only otherwise do their sets decide.
        if open_now != still_open.handlers and set(open_now) != set(still_open.handlers):
            raise ValueError(
                f"instance {facts.instance_id!r}: after {handler!r} signs todo {todo_id!r} "
                f"the centre keeps {sorted(shared.open_handlers)} open but the engine waits on "
                f"{sorted(still_open.handlers)}; signers cannot be added to or removed from an "
                "open todo (bridge bug: check the countersign's collection for duplicates)."
            )
        status = "none"
        calls.append(step.handle(todo_id, handler, "none", ()))
        anchor = todo_id
        calls.extend(
            CenterCall(Endpoint.ADD_TRANSACTION, step.create(todo, anchor)) for todo in new
        )
        kept = [shared if t.todo_id == todo_id else t for t in ledger.open]
    elif new:
        status = "next"
        calls.append(step.handle(todo_id, handler, "next", new))
        kept = [t for t in ledger.open if t.todo_id != todo_id]
    else:
        status = "none"
        calls.append(step.handle(todo_id, handler, "none", ()))
        if _other_shares(held, handler):
            # ``none`` closed only this handler's share; the engine no longer waits on it.
            calls.append(step.withdraw(todo_id, "next"))
        kept = [t for t in ledger.open if t.todo_id != todo_id]

    calls.extend(step.withdraw(g.todo_id, "next") for g in gone)
    gone_ids = {g.todo_id for g in gone}
    kept = [t for t in kept if t.todo_id not in gone_ids]
    return Plan(tuple(calls), _after(ledger, kept, new), status)


def _plan_without_completion(step: _Step, ledger: Ledger) -> Plan:
    facts = step.facts
    if facts.finished:
        if ledger.open:
            # Withdraw ``end`` closes the rest of the transaction's todos with it.
            call = step.withdraw(ledger.open[0].todo_id, "end")
            return Plan((call,), replace(ledger, open=(), ended=True))
        if ledger.started and ledger.transaction_id is not None:
            item = {
                "transactionId": ledger.transaction_id,
                "status": "FINISH",
                "editAccount": step.system_account,
            }
            call = CenterCall(Endpoint.UPDATE_TRANSACTION, item)
            return Plan((call,), replace(ledger, ended=True))
        return Plan((), ledger)  # nothing ever reached the centre

    new, gone = _diff(facts, ledger)
    calls: list[CenterCall] = []
    gone_ids = {g.todo_id for g in gone}
    kept = [t for t in ledger.open if t.todo_id not in gone_ids]
    if gone:
        # The todos that replace a cancelled one are created by the withdraw that closes it.
        calls.append(step.withdraw(gone[0].todo_id, "next", new))
        calls.extend(step.withdraw(g.todo_id, "next") for g in gone[1:])
        return Plan(tuple(calls), _after(ledger, kept, new))
    if not new:
        return Plan((), ledger)
    if ledger.started:
        anchor = kept[-1].todo_id if kept else (ledger.last_todo_id or ledger.transaction_id)
        calls.extend(
            CenterCall(Endpoint.ADD_TRANSACTION, step.create(todo, anchor)) for todo in new
        )
        return Plan(tuple(calls), _after(ledger, kept, new))
    first, *others = new
    calls.append(CenterCall(Endpoint.ADD_TRANSACTION, step.create(first)))
    calls.extend(
        CenterCall(Endpoint.ADD_TRANSACTION, step.create(todo, first.todo_id)) for todo in others
    )
    return Plan(tuple(calls), _after(ledger, kept, new, first_created=True))


def _plan_cancel(step: _Step, ledger: Ledger) -> Plan:
    facts = step.facts
    target = ledger.open[0].todo_id if ledger.open else ledger.last_todo_id
    if not ledger.started or target is None:
        return Plan((), ledger)  # no transaction at the centre to terminate
    item: dict[str, Any] = {
        "appId": step.app_id,
        "taskId": target,
        "creator": facts.actor or step.system_account,
    }
    if facts.opinion:
        item["handleOpinions"] = facts.opinion
    item["createTime"] = step.time
    call = CenterCall(Endpoint.TASK_TERMINATE, item)
    return Plan((call,), replace(ledger, open=(), ended=True))
