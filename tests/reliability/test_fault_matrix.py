"""Every fault kind of the fake centre, on the first, the first three and every attempt.

For each centre endpoint the bridge sends (``addTransaction`` when an instance starts,
``taskHandle`` for completions, ``taskWithdraw`` when a timer closes a todo, ``taskTerminate``
when the business cancels, ``updateTransaction`` when a process ends with nothing open), a
real Bridge + Relay talk to the fake centre over a loopback socket while the centre misbehaves
on that endpoint:

* on the first attempt, or the first three: the relay ends with the row delivered, with no
  dead letter and the expected number of attempts;
* on every attempt: the row becomes a visible dead letter carrying every attempt's error; once
  the fault is cleared, ``engine-bridge outbox retry`` puts it back and it is delivered.

Either way the process then runs to its end and every call took effect exactly once (a call
the centre applied although its answer was lost is recognised on resend, not repeated).
Backoff waits are skipped with a FakeClock; the client timeout is short only where the fault is
a delay past it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.cli import main as cli_main
from engine_bridge.clock import FakeClock
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import Store
from engine_bridge.testing import FakeCenter, FakeCenterServer, FaultKind
from engine_bridge.ttc import TTCClient

from .conftest import WORKFLOWS
from .effects import assert_exactly_once

MAX_ATTEMPTS = 4
DELAY_SECONDS = 0.6
SHORT_TIMEOUT = 0.3  # the client gives up on a delayed answer after this
LEAVE = {
    "applicant_name": "张三",
    "reason": "回家探亲",
    "counselor": "T001",
    "dean": "D001",
    "days": 5,
}
ESCALATION = {"title": "实验室开放申请", "reviewer": "T001", "supervisor": "S001"}
BOOKING = {"venue": "体育馆", "date": "2026-12-10", "manager": "M001"}
WHEN: dict[str, Any] = {"first": (1,), "first_three": (1, 2, 3), "every": "all"}

# Attempts the relay needs when the fault hits the first one / the first three.
# A token refused mid-call is refreshed and the request resent within the same attempt.
ATTEMPTS = {
    "first": {FaultKind.TOKEN_EXPIRED: 1},
    "first_three": {FaultKind.TOKEN_EXPIRED: 2},
}
DEFAULT_ATTEMPTS = {"first": 2, "first_three": 4}
# What the dead letter's last error says, per kind.
LAST_ERROR = {
    FaultKind.HTTP_5XX: "503",
    FaultKind.OUTER_CODE: "CenterRejectedError",
    FaultKind.DELAY: "timed out",
    FaultKind.DROP: "could not be reached",
    FaultKind.APPLIED_ANSWER_LOST: "could not be reached",
    FaultKind.MALFORMED_JSON: "CenterProtocolError",
    FaultKind.TOKEN_EXPIRED: "CenterAuthError",
}


@dataclass
class World:
    center: FakeCenter
    clock: FakeClock
    bridge: Bridge
    relay: Relay
    database: str

    @property
    def store(self) -> Store:
        return self.bridge.store

    def settle(self) -> None:
        """Deliver until nothing more can go: all delivered, or only dead rows and the rows
        they block remain. Backoff is skipped by moving the clock."""
        for _ in range(4 * MAX_ATTEMPTS):
            self.relay.drain()
            rows = self.store.outbox(limit=10_000)
            dead = {r.instance_id for r in rows if r.status == "dead"}
            if not any(r.status == "pending" and r.instance_id not in dead for r in rows):
                return
            self.clock.advance(timedelta(seconds=61))
        raise AssertionError("the outbox did not settle")

    def todo(self, instance_id: str, node: str) -> str:
        (found,) = [t.task_id for t in self.bridge.todos(instance_id) if t.node_id == node]
        return found


Step = Callable[[World, dict[str, str]], None]


def start(process: str, data: dict[str, Any]) -> Step:
    def run(world: World, ctx: dict[str, str]) -> None:
        ctx["id"] = world.bridge.start(process, initiator="2023001", data=data, key="biz-1").id

    return run


def complete(node: str, handler: str, data: dict[str, Any] | None = None) -> Step:
    def run(world: World, ctx: dict[str, str]) -> None:
        task = world.todo(ctx["id"], node)
        world.bridge.complete(task, handler=handler, data=data or {}, key=f"{node}/{handler}")

    return run


def tick(hours: int) -> Step:
    def run(world: World, ctx: dict[str, str]) -> None:
        world.clock.advance(timedelta(hours=hours))
        world.bridge.tick()

    return run


def cancel(world: World, ctx: dict[str, str]) -> None:
    world.bridge.cancel(ctx["id"], by="2023001")


APPROVE = [complete("counselor_review", "T001", {"approved": True})]
DEAN = [complete("dean_review", "D001", {"approved": True})]
# endpoint -> (steps before the fault, steps the fault hits, steps after recovery)
FLOWS: dict[str, tuple[list[Step], list[Step], list[Step]]] = {
    "addTransaction": ([], [start("leave_approval", LEAVE)], APPROVE + DEAN),
    "taskHandle": ([start("leave_approval", LEAVE)], APPROVE + DEAN, []),
    "taskWithdraw": (
        [start("timeout_escalation", ESCALATION)],
        [tick(24), tick(25)],
        [complete("escalate", "S001")],
    ),
    "taskTerminate": ([start("leave_approval", LEAVE)], [cancel], []),
    # unpaid for three days, the booking lapses with nothing open: the transaction is finished
    "todo/updateTransaction": (
        [start("venue_booking", BOOKING), complete("manager_review", "M001")],
        [tick(73)],
        [],
    ),
}


@pytest.fixture
def world_for(
    tmp_path: Path, center: FakeCenter, served: FakeCenterServer
) -> Iterator[Callable[[FaultKind], World]]:
    opened: list[World] = []

    def make(kind: FaultKind) -> World:
        # starts at the real time: ``outbox retry`` makes a row due at the wall clock's now
        clock = FakeClock(datetime.now(UTC))
        client = TTCClient(
            served.url,
            app_id="fault-matrix",
            client_id="test-client",
            client_secret="test-secret",
            timeout=SHORT_TIMEOUT if kind is FaultKind.DELAY else 5.0,
        )
        database = f"sqlite:///{tmp_path / 'bridge.db'}"
        bridge = Bridge.open(
            WORKFLOWS, database=database, center=client, clock=clock, auto_deliver=False
        )
        relay = Relay(
            bridge.store,
            client,
            clock=clock,
            worker_id="relay-1",
            policy=RetryPolicy(max_attempts=MAX_ATTEMPTS, rng=random.Random(4)),
        )
        world = World(center, clock, bridge, relay, database)
        opened.append(world)
        return world

    yield make
    for world in opened:
        world.bridge.close()


def wait_for_stale_requests(center: FakeCenter) -> None:
    """Delayed requests the client gave up on are still sleeping in the server; wait until
    every request that reached the centre is in its log (no gap in the attempt numbers)."""
    deadline = time.monotonic() + 10 * DELAY_SECONDS
    while time.monotonic() < deadline:
        gaps = False
        for endpoint in {c["endpoint"] for c in center.calls()}:
            numbers = {c["attempt"] for c in center.calls(endpoint)}
            gaps = gaps or len(numbers) != max(numbers)
        if not gaps:
            return
        time.sleep(0.05)
    raise AssertionError("delayed requests never reached the centre's log")


@pytest.mark.parametrize("when", list(WHEN))
@pytest.mark.parametrize("kind", list(FaultKind), ids=[k.value for k in FaultKind])
@pytest.mark.parametrize("endpoint", list(FLOWS))
def test_fault_then_delivered_or_dead_letter_then_retried_exactly_once(
    world_for: Callable[[FaultKind], World],
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    kind: FaultKind,
    when: str,
) -> None:
    """``kind`` on ``endpoint`` (first / first three / every attempt) ends exactly once."""
    world = world_for(kind)
    before, faulted, after = FLOWS[endpoint]
    ctx: dict[str, str] = {}
    for step in before:
        step(world, ctx)
    world.settle()
    first_row = len(world.store.outbox(limit=10_000))
    world.center.faults.add(endpoint, kind, attempts=WHEN[when], delay_seconds=DELAY_SECONDS)
    for step in faulted:
        step(world, ctx)
    world.settle()

    rows = world.store.outbox(limit=10_000)
    target = next(r for r in rows[first_row:] if r.endpoint.value == endpoint)
    if when == "every":
        dead = [r for r in rows if r.status == "dead"]
        assert [r.id for r in dead] == [target.id]
        assert target.attempts == MAX_ATTEMPTS
        assert len(target.errors) == MAX_ATTEMPTS
        assert target.last_error is not None and LAST_ERROR[kind] in target.last_error
        assert "gave up after 4 attempt(s)" in target.last_error
        assert cli_main(["outbox", "list", "--status", "dead", "--database", world.database]) == 0
        assert f"{target.id:>6}  dead" in capsys.readouterr().out
        world.center.faults.clear()
        assert cli_main(["outbox", "retry", str(target.id), "--database", world.database]) == 0
        world.settle()
        target = world.store.outbox_row(target.id)
        assert target.status == "delivered"
        assert len(target.errors) == MAX_ATTEMPTS  # the history of the failures is kept
    else:
        assert [r.id for r in rows if r.status == "dead"] == []
        assert target.status == "delivered"
        expected = ATTEMPTS[when].get(kind, DEFAULT_ATTEMPTS[when])
        if kind is FaultKind.DELAY:  # a busy machine may time out a normal answer too
            assert target.attempts >= expected
        else:
            assert target.attempts == expected
    if kind is FaultKind.APPLIED_ANSWER_LOST:
        # applied on the first attempt, recognised as already done on a later one
        assert target.response == {
            "ok": False,
            "code": target.response["code"],
            "message": target.response["message"],
            "applied_earlier": True,
        }

    for step in after:
        step(world, ctx)
    world.settle()
    wait_for_stale_requests(world.center)
    assert_exactly_once(world.center, world.store)
    assert world.bridge.instance(ctx["id"]).status in ("finished", "cancelled")
