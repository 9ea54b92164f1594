"""Delivery right after each step: the step's own call is claimed in its commit and sent, and
everything the relay guarantees (order per instance, retries, nothing lost) still holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import InputError
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.faults import FaultKind

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
LEAVE = {"applicant_name": "张三", "reason": "探亲", "counselor": "T001", "dean": "D001", "days": 5}


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'b.db'}"
        self.clock = FakeClock()
        self.fake = FakeCenter(clock=self.clock)
        self.opened: list[Bridge] = []

    def bridge(self, *, center: bool = True) -> Bridge:
        bridge = Bridge.open(
            WORKFLOWS,
            database=self.url,
            center=self.fake.transport() if center else None,
            clock=self.clock,
        )
        self.opened.append(bridge)
        return bridge

    def handles(self) -> list[tuple[str, str]]:
        return [
            (item["previousTaskId"], item["status"])
            for call in self.fake.calls("taskHandle")
            if call["applied"]
            for item in call["body"]
        ]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    made = Env(tmp_path)
    yield made
    for bridge in made.opened:
        bridge.close()


def test_a_step_sends_its_call_claimed_in_its_own_commit(env: Env) -> None:
    """The call reaches the centre before the action returns, on its first and only attempt,
    and no separate claim of the relay was needed for it."""
    bridge = env.bridge()
    (todo,) = bridge.start("leave_approval", initiator="2023001", data=LEAVE).todos
    bridge.complete(todo.task_id, handler="T001", data={"approved": True})
    rows = bridge.store.outbox(limit=10)
    assert [(r.endpoint.value, r.status, r.attempts) for r in rows] == [
        ("addTransaction", "delivered", 1),
        ("taskHandle", "delivered", 1),
    ]
    assert env.handles() == [(todo.task_id, "next")]


def test_a_failed_send_is_retried_and_order_is_kept(env: Env) -> None:
    """If the step's call fails, it waits for its retry; the instance's next call is not sent
    ahead of it, and both arrive, in order, once the centre answers again."""
    bridge = env.bridge()
    (todo,) = bridge.start("leave_approval", initiator="2023001", data=LEAVE).todos
    env.fake.faults.add("taskHandle", FaultKind.HTTP_5XX, attempts="all")
    first = bridge.complete(todo.task_id, handler="T001", data={"approved": True})
    (dean,) = first.created
    bridge.complete(dean.task_id, handler="D001", data={"approved": True})
    assert env.handles() == []
    assert bridge.store.pending_count() == 2
    env.fake.faults.clear()
    env.clock.advance(timedelta(hours=1))
    bridge.deliver()
    assert env.handles() == [(todo.task_id, "next"), (dean.task_id, "end")]
    assert bridge.store.pending_count() == 0


def test_calls_queued_earlier_go_out_with_the_next_step(env: Env) -> None:
    """Calls another process queued without delivering are sent by this bridge's first step
    (before it trusts the outbox to be empty), ahead of nothing they must follow."""
    queued = env.bridge(center=False).start("leave_approval", initiator="2023001", data=LEAVE)
    assert env.fake.calls("addTransaction") == []
    bridge = env.bridge()
    bridge.start("leave_approval", initiator="2023002", data=LEAVE)
    sent = [item["taskId"] for c in env.fake.calls("addTransaction") for item in c["body"]]
    assert queued.todos[0].task_id in sent and len(sent) == 2
    assert bridge.store.pending_count() == 0


def test_a_step_with_several_calls_delivers_them_all_in_order(env: Env) -> None:
    """A start that opens two parallel reviews queues two calls: the first goes with the
    step's claim, the second by the drain that follows; both arrive, in order."""
    bridge = env.bridge()
    data = {
        "purpose": "差旅",
        "amount": 3200,
        "finance_reviewer": "F001",
        "academic_reviewer": "J001",
        "approver": "L001",
    }
    started = bridge.start("parallel_review", initiator="2023001", data=data)
    assert len(started.calls) == 2
    sent = [item["taskId"] for c in env.fake.calls("addTransaction") for item in c["body"]]
    assert sent == [call.item["taskId"] for call in started.calls]
    assert [r.status for r in bridge.store.outbox(limit=10)] == ["delivered", "delivered"]


def test_a_slow_centre_is_waited_for_no_longer_than_the_bridges_timeout(tmp_path: Path) -> None:
    """Inline delivery waits for the centre within the action: ``timeout`` bounds that wait,
    and the call the centre did not answer in time waits in the outbox."""
    center = FakeCenter()
    center.faults.add("addTransaction", FaultKind.DELAY, attempts=(1,), delay_seconds=2.0)
    with (
        center.serve() as server,
        Bridge.open(
            WORKFLOWS,
            database=f"sqlite:///{tmp_path / 'b.db'}",
            center=server.url,
            client_id="test-client",
            client_secret="test-secret",
            timeout=0.3,
        ) as bridge,
    ):
        inst = bridge.start("or_sign", initiator="2023001", data={"title": "t"})
        (row,) = bridge.store.outbox(instance_id=inst.id)
        # The first attempt gave up after the bridge's timeout, not the client's default 10 s;
        # the call then waits in the outbox (a busy machine's relay may already have resent it
        # once its backoff ran out: the fault delays the first attempt only).
        assert row.errors and "timed out" in row.errors[0]["error"]
        assert row.errors[0]["attempt"] == 1 and row.status in ("pending", "delivered")
    with pytest.raises(InputError, match="timeout must be a positive"):
        Bridge.open(WORKFLOWS, database=f"sqlite:///{tmp_path / 'c.db'}", timeout=0)
