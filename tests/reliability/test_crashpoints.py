"""A crash at each named point, then a restart on the same database, ends exactly once in effect.

Each test plays a client and a service process. The client sends requests (start with a
business key, complete with an idempotency key, cancel, tick); the service "dies" at an armed
crash point in the middle of one of them (``CrashPointReached``), is restarted (a new
``Bridge`` on the same SQLite file, the clock moved past the dead relay's lease), the client
re-sends the request that never got an answer, and the flow runs to its end. Then every call
the committed steps implied took effect at the fake centre exactly once, nothing is open,
nothing is waiting, and the instance's history holds each action once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine_bridge import crashpoints
from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.crashpoints import CrashPointReached
from engine_bridge.errors import TaskNotOpenError
from engine_bridge.testing import FakeCenter

from .conftest import WORKFLOWS
from .effects import assert_exactly_once

LEAVE = {
    "applicant_name": "张三",
    "reason": "回家探亲",
    "counselor": "T001",
    "dean": "D001",
    "days": 5,
}
ESCALATION = {"title": "实验室开放申请", "reviewer": "T001", "supervisor": "S001"}
LEASE = timedelta(seconds=31)  # the Bridge's relay leases rows for 30 s
BEFORE_COMMIT = {"bridge.after_engine_step", "store.before_commit"}


@dataclass
class Request:
    """One thing the client asks for; re-sent unchanged when the answer never came."""

    action: str  # start | complete | cancel | tick
    node: str = ""
    handler: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    advance: timedelta = timedelta(0)
    task_id: str | None = None  # the todo, found when first sent
    advanced: bool = False


def approve_flow() -> list[Request]:
    return [
        Request("start", key="leave-42"),
        Request("complete", "counselor_review", "T001", {"approved": True}, key="c-1"),
        Request("complete", "dean_review", "D001", {"approved": True}, key="d-1"),
    ]


def cancel_flow() -> list[Request]:
    return [
        Request("start", key="leave-43"),
        Request("complete", "counselor_review", "T001", {"approved": True}, key="c-2"),
        Request("cancel", handler="2023001"),
    ]


def timeout_flow() -> list[Request]:
    return [
        Request("start", key="lab-7"),
        Request("tick", advance=timedelta(hours=24)),
        Request("tick", advance=timedelta(hours=25)),
        Request("complete", "escalate", "S001", key="e-1"),
    ]


FLOWS: dict[str, tuple[Callable[[], list[Request]], dict[str, Any]]] = {
    "leave_approval": (approve_flow, LEAVE),
    "leave_cancelled": (cancel_flow, LEAVE),
    "timeout_escalation": (timeout_flow, ESCALATION),
}


class Service:
    """One database, one fake centre and one clock outliving the bridges that "crash"."""

    def __init__(self, tmp_path: Path, *, durable: bool = True) -> None:
        self.durable = durable
        self.clock = FakeClock()
        self.center = FakeCenter()
        self.database = f"sqlite:///{tmp_path / 'bridge.db'}"
        self.bridge = self.open()
        self.instance_id: str | None = None

    def open(self) -> Bridge:
        return Bridge.open(
            WORKFLOWS,
            database=self.database,
            center=self.center.transport(),
            clock=self.clock,
            durable=self.durable,
        )

    def restart(self) -> None:
        self.bridge.close()  # a dead process holds nothing; its claims stay in the database
        self.clock.advance(LEASE)
        self.bridge = self.open()

    def send(self, request: Request, process: str, data: dict[str, Any]) -> bool:
        """Send ``request``; True when the bridge recognised it as already done."""
        bridge = self.bridge
        if request.action == "start":
            inst = bridge.start(process, initiator="2023001", data=data, key=request.key)
            self.instance_id = inst.id
            return inst.duplicate
        assert self.instance_id is not None
        if request.action == "complete":
            if request.task_id is None:
                (todo,) = [t for t in bridge.todos(self.instance_id) if t.node_id == request.node]
                request.task_id = todo.task_id
            outcome = bridge.complete(
                request.task_id, handler=request.handler, data=request.data, key=request.key
            )
            return outcome.duplicate
        if request.action == "cancel":
            try:
                bridge.cancel(self.instance_id, by=request.handler)
            except TaskNotOpenError:
                return True  # cancelled before the crash
            return False
        if not request.advanced:
            self.clock.advance(request.advance)
            request.advanced = True
        return not bridge.tick()

    def finish_delivery(self) -> None:
        for _ in range(20):
            self.bridge.deliver()
            if self.bridge.store.pending_count() == 0:
                return
            self.clock.advance(LEASE)
        raise AssertionError("the outbox did not drain")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path)
    yield svc
    crashpoints.disarm()
    svc.bridge.close()


@pytest.mark.parametrize("hit", [1, 2, 3])
@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("point", sorted(crashpoints.POINTS))
def test_crash_restart_and_resend_is_exactly_once(
    service: Service, point: str, flow: str, hit: int
) -> None:
    """Crash at ``point`` the ``hit``-th time it is reached, restart, re-send, finish."""
    _crash_restart_and_finish(service, point, flow, hit)


@pytest.mark.parametrize("point", sorted(crashpoints.POINTS))
def test_commits_without_waiting_for_the_disk_survive_a_process_crash_too(
    tmp_path: Path, point: str
) -> None:
    """``durable=False`` gives up only the machine-crash half: a dead process loses nothing."""
    svc = Service(tmp_path, durable=False)
    try:
        _crash_restart_and_finish(svc, point, "leave_approval", 2)
    finally:
        crashpoints.disarm()
        svc.bridge.close()


def _crash_restart_and_finish(service: Service, point: str, flow: str, hit: int) -> None:
    make_requests, data = FLOWS[flow]
    process = "leave_approval" if flow.startswith("leave") else flow
    requests = make_requests()
    crashpoints.arm(point, hit=hit)
    crashed_at: int | None = None
    for n, request in enumerate(requests):
        try:
            service.send(request, process, data)
        except CrashPointReached as crash:
            assert crash.name == point
            crashed_at = n
            break
    assert crashed_at is not None, f"{point} was reached fewer than {hit} times in {flow}"

    service.restart()
    duplicate = service.send(requests[crashed_at], process, data)
    if requests[crashed_at].action in ("start", "complete"):
        # keys make the re-sent request safe: done once, whichever side of the commit it died
        assert duplicate is (point not in BEFORE_COMMIT)
    for request in requests[crashed_at + 1 :]:
        fresh = not service.send(request, process, data)
        assert fresh or request.action == "tick"  # a tick may find nothing due
    service.finish_delivery()

    verdict = assert_exactly_once(service.center, service.bridge.store)
    assert service.instance_id is not None
    instance = service.bridge.instance(service.instance_id)
    assert instance.status == ("cancelled" if flow == "leave_cancelled" else "finished")
    kinds = [h.kind for h in service.bridge.history(service.instance_id)]
    actions = [r.action for r in requests if r.action != "tick"]
    assert [k for k in kinds if k != "tick"] == actions
    if point == "relay.after_send":
        # the dead relay's call was applied; the resend was answered "already done"
        resent = [r for r in verdict.rows if r.response and r.response.get("applied_earlier")]
        assert resent, "the call sent before the crash was not recognised on resend"


def test_an_unarmed_crashpoint_does_nothing() -> None:
    """Nothing is armed in normal operation: reaching a point is a no-op."""
    crashpoints.crashpoint("relay.after_send")


def test_arming_checks_the_name_and_fires_once_on_the_chosen_hit() -> None:
    """A typo fails loudly; an armed point fires on its n-th hit only, then disarms."""
    with pytest.raises(ValueError, match=r"unknown crash point 'relay\.after_sned'"):
        crashpoints.arm("relay.after_sned")
    with crashpoints.armed("relay.after_claim", hit=2):
        crashpoints.crashpoint("relay.after_claim")
        with pytest.raises(CrashPointReached, match=r"relay\.after_claim"):
            crashpoints.crashpoint("relay.after_claim")
        crashpoints.crashpoint("relay.after_claim")  # fired once; disarmed


def test_the_environment_arms_a_point_to_end_the_process() -> None:
    """ENGINE_BRIDGE_CRASHPOINT=name@n arms ``name`` in exit mode; garbage is refused."""
    try:
        assert crashpoints.arm_from_env({crashpoints.ENV_VAR: "relay.after_send@3"}) == (
            "relay.after_send"
        )
        assert crashpoints.arm_from_env({}) is None
        with pytest.raises(ValueError, match="must be a number"):
            crashpoints.arm_from_env({crashpoints.ENV_VAR: "relay.after_send@x"})
        with pytest.raises(ValueError, match="unknown crash point"):
            crashpoints.arm_from_env({crashpoints.ENV_VAR: "nowhere"})
    finally:
        crashpoints.disarm()


@pytest.mark.parametrize("hit", [1, 2, 3])
@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("point", sorted(BEFORE_COMMIT))
def test_a_failed_commit_leaves_a_living_bridge_as_if_nothing_happened(
    service: Service, point: str, flow: str, hit: int
) -> None:
    """The step fails before its commit and the client re-sends on the SAME bridge (no
    restart): nothing the failed step did in memory may leak into the retry."""
    make_requests, data = FLOWS[flow]
    process = "leave_approval" if flow.startswith("leave") else flow
    requests = make_requests()
    crashpoints.arm(point, hit=hit)
    failed = 0
    for request in requests:
        try:
            duplicate = service.send(request, process, data)
        except CrashPointReached:
            failed += 1
            duplicate = service.send(request, process, data)
        assert not duplicate or request.action == "tick"
    assert failed == 1
    service.finish_delivery()
    assert_exactly_once(service.center, service.bridge.store)
    assert service.instance_id is not None
    kinds = [h.kind for h in service.bridge.history(service.instance_id) if h.kind != "tick"]
    assert kinds == [r.action for r in requests if r.action != "tick"]
