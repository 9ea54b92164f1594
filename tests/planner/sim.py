"""A tiny simulation of the to-do centre's documented rules, to check the planner against.

It holds ONE transaction and applies planned calls the way the centre's docs (and DESIGN.md's
conventions) say: ``none`` closes only the caller's share, ``next``/``end`` close the whole
todo, ``end`` and terminate finish the transaction, nothing may name a finished transaction.
It refuses what the centre would refuse, so a wrong plan fails loudly instead of drifting.

``Run`` drives the planner step by step and checks the invariant after every step: the open
(todo, handler) pairs in the simulated centre are exactly the engine's, and the planner's
ledger equals the simulated centre's state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine_bridge.facts import (
    Action,
    CenterCall,
    Endpoint,
    Ledger,
    LedgerTodo,
    Plan,
    StepFacts,
    Todo,
    TransactionInfo,
)
from engine_bridge.planner import GROUP_SHARE, plan

APP = "APP-1"
INSTANCE = "inst-1"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
TRANSACTION = TransactionInfo(
    trans_type_code="leave",
    trans_type_name="请假",
    transaction_name="张三的请假申请",
    initiator="2023001",
    initiator_name="张三",
    serial_number="LV-42",
)


class CentreRefused(Exception):
    """The simulated centre refused a call, as the real one would."""


def todo(node: str, *handlers: str, groups: tuple[str, ...] = (), tid: str | None = None) -> Todo:
    """A todo of node ``node``; its id is derived from the node unless ``tid`` is given."""
    return Todo(
        todo_id=f"{INSTANCE}:{tid or node}",
        node_id=node,
        node_name=f"节点 {node}",
        handlers=handlers,
        handling_groups=groups,
    )


def engine_pairs(todos: tuple[Todo, ...]) -> set[tuple[str, str]]:
    pairs = {(t.todo_id, h) for t in todos for h in t.handlers}
    return pairs | {(t.todo_id, "@" + g) for t in todos for g in t.handling_groups}


@dataclass
class SimTodo:
    todo_id: str
    node_id: str
    node_name: str
    handlers: tuple[str, ...]
    groups: tuple[str, ...]
    handled: list[str] = field(default_factory=list)

    def open_handlers(self) -> list[str]:
        return [h for h in self.handlers if h not in self.handled]

    def group_open(self) -> bool:
        """The centre counts all handling groups as one share, closed by a non-listed handler."""
        return bool(self.groups) and GROUP_SHARE not in self.handled


@dataclass
class SimCentre:
    open: dict[str, SimTodo] = field(default_factory=dict)  # insertion = creation order
    known: set[str] = field(default_factory=set)
    started: bool = False
    ended: bool = False
    last_todo_id: str | None = None
    transaction_id: str | None = None
    log: list[CenterCall] = field(default_factory=list)

    def apply(self, call: CenterCall) -> None:
        self.log.append(call)
        if self.ended:
            raise CentreRefused(f"{call.endpoint}: transaction already ended")
        item = dict(call.item)
        if call.endpoint is not Endpoint.UPDATE_TRANSACTION and item.get("appId") != APP:
            raise CentreRefused(f"{call.endpoint}: appId missing or wrong")
        if call.endpoint is Endpoint.ADD_TRANSACTION:
            self._add(item)
        elif call.endpoint is Endpoint.TASK_HANDLE:
            self._handle(item)
        elif call.endpoint is Endpoint.TASK_WITHDRAW:
            self._withdraw(item)
        elif call.endpoint is Endpoint.TASK_TERMINATE:
            self._terminate(item)
        elif call.endpoint is Endpoint.UPDATE_TRANSACTION:
            self._update(item)
        else:
            raise CentreRefused(f"{call.endpoint}: not used by the planner")

    # --- rules -----------------------------------------------------------------------------

    def _create(self, item: dict[str, Any], *, linked_ok: bool) -> None:
        task_id = item.get("taskId")
        if not task_id or task_id in self.known:
            raise CentreRefused(f"taskId {task_id!r} missing or already used")
        if not item.get("handlers") and not item.get("handlingGroup"):
            raise CentreRefused(f"{task_id}: neither handlers nor handlingGroup")
        if "previousTaskId" in item and not linked_ok:
            raise CentreRefused(f"{task_id}: previousTaskId inside next[]")
        for key in ("taskName", "nodeId", "initiator", "transTypeCode"):
            if not item.get(key):
                raise CentreRefused(f"{task_id}: {key} missing")
        self.known.add(task_id)
        self.open[task_id] = SimTodo(
            todo_id=task_id,
            node_id=item["nodeId"],
            node_name=item.get("nodeName", ""),
            handlers=tuple(filter(None, item.get("handlers", "").split(","))),
            groups=tuple(filter(None, item.get("handlingGroup", "").split(","))),
        )
        self.last_todo_id = task_id

    def _add(self, item: dict[str, Any]) -> None:
        previous = item.get("previousTaskId")
        if previous is None:
            if self.started:
                raise CentreRefused("a second first todo for the same transaction")
            self._create(item, linked_ok=True)
            self.started = True
            self.transaction_id = item["taskId"]
        else:
            if not self.started or previous not in self.known:
                raise CentreRefused(f"previousTaskId {previous!r} unknown")
            self._create(item, linked_ok=True)

    def _open_todo(self, task_id: Any) -> SimTodo:
        if task_id not in self.open:
            raise CentreRefused(f"task {task_id!r} is not open")
        return self.open[task_id]

    def _close_all(self) -> None:
        self.open.clear()
        self.ended = True

    def _handle(self, item: dict[str, Any]) -> None:
        target = self._open_todo(item.get("previousTaskId"))
        handler = str(item.get("handler", ""))
        if handler not in target.open_handlers() and not target.group_open():
            raise CentreRefused(f"{handler!r} is not an open handler of {target.todo_id}")
        if not TIME_RE.match(item.get("handleTime", "")):
            raise CentreRefused("handleTime not yyyy-MM-dd HH:mm:ss")
        status = item.get("status")
        if ("next" in item) != (status == "next"):
            raise CentreRefused("next[] only goes with status next")
        if status == "none":
            target.handled.append(handler if handler in target.open_handlers() else GROUP_SHARE)
            if not target.open_handlers() and not target.group_open():
                del self.open[target.todo_id]
        elif status == "next":
            if not item["next"]:
                raise CentreRefused("status next with an empty next[]")
            del self.open[target.todo_id]
            for created in item["next"]:
                self._create(created, linked_ok=False)
        elif status == "end":
            self._close_all()
        else:
            raise CentreRefused(f"unknown handle status {status!r}")

    def _withdraw(self, item: dict[str, Any]) -> None:
        target = self._open_todo(item.get("taskId"))
        if not item.get("creator"):
            raise CentreRefused("withdraw without creator")
        if item.get("status") == "next":
            del self.open[target.todo_id]
            for created in item.get("next", []):
                self._create(created, linked_ok=False)
        elif item.get("status") == "end":
            self._close_all()
        else:
            raise CentreRefused(f"unknown withdraw status {item.get('status')!r}")

    def _terminate(self, item: dict[str, Any]) -> None:
        if item.get("taskId") not in self.known or not item.get("creator"):
            raise CentreRefused("terminate names an unknown task or no creator")
        self._close_all()

    def _update(self, item: dict[str, Any]) -> None:
        if not self.started or item.get("transactionId") != self.transaction_id:
            raise CentreRefused(f"transaction {item.get('transactionId')!r} is not exist")
        if item.get("status") != "FINISH":
            raise CentreRefused("the planner only ever finishes a transaction")
        self.ended = True

    # --- views -----------------------------------------------------------------------------

    def pairs(self) -> set[tuple[str, str]]:
        pairs = {(t.todo_id, h) for t in self.open.values() for h in t.open_handlers()}
        return pairs | {
            (t.todo_id, "@" + g) for t in self.open.values() if t.group_open() for g in t.groups
        }

    def ledger(self) -> Ledger:
        return Ledger(
            open=tuple(
                LedgerTodo(
                    todo_id=t.todo_id,
                    node_id=t.node_id,
                    node_name=t.node_name,
                    handlers=t.handlers,
                    handled=tuple(t.handled),
                    handling_groups=t.groups,
                )
                for t in self.open.values()
            ),
            started=self.started,
            ended=self.ended,
            last_todo_id=self.last_todo_id,
            transaction_id=self.transaction_id,
        )


@dataclass
class Run:
    """One instance's life: plan each step, deliver it to the simulated centre, check."""

    ledger: Ledger = field(default_factory=Ledger)
    centre: SimCentre = field(default_factory=SimCentre)
    at: datetime = datetime(2026, 3, 2, 1, 30, 5, tzinfo=UTC)
    plans: list[Plan] = field(default_factory=list)

    def step(
        self,
        action: Action,
        *open_todos: Todo,
        finished: bool = False,
        completed: str | None = None,
        handler: str | None = None,
        opinion: str = "",
        actor: str | None = None,
    ) -> Plan:
        self.at += timedelta(minutes=7)
        facts = StepFacts(
            action=action,
            instance_id=INSTANCE,
            transaction=TRANSACTION,
            open_todos=open_todos,
            finished=finished,
            at=self.at,
            completed_todo_id=f"{INSTANCE}:{completed}" if completed else None,
            handler=handler,
            opinion=opinion,
            actor=actor,
        )
        result = plan(facts, self.ledger, app_id=APP)
        assert plan(facts, self.ledger, app_id=APP) == result, "planning is deterministic"
        for call in result.calls:
            self.centre.apply(call)
        assert self.centre.pairs() == engine_pairs(open_todos), "centre == engine"
        assert result.ledger == self.centre.ledger(), "ledger == centre"
        self.ledger = result.ledger
        self.plans.append(result)
        return result

    def complete(self, node: str, handler: str, *open_todos: Todo, **kw: Any) -> Plan:
        return self.step("complete", *open_todos, completed=node, handler=handler, **kw)


def _short(task_id: str) -> str:
    return task_id.split(":", 1)[-1]


def shape(result: Plan) -> list[tuple[str, str, str | None, list[str]]]:
    """(endpoint, task named, status, created ids) per call: the plan's gist for assertions.

    For an ``addTransaction`` item the task named is its ``previousTaskId`` ("" for a first
    todo); for ``updateTransaction`` it is the transaction id.
    """
    out: list[tuple[str, str, str | None, list[str]]] = []
    for call in result.calls:
        item = call.item
        if call.endpoint is Endpoint.ADD_TRANSACTION:
            task, created = item.get("previousTaskId", ""), [item["taskId"]]
        else:
            task = item.get("transactionId") or call.task_id
            created = [n["taskId"] for n in item.get("next", [])]
        out.append(
            (call.endpoint.value, _short(task), item.get("status"), [_short(c) for c in created])
        )
    return out
