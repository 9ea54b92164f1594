"""Target 3: batched delivery carries at least 10× the items per second of one per request.

5,000 leave approvals (2 days: the counselor's approval ends them) are started and completed
by a bridge with no centre attached, so their calls wait in the outbox: 5,000 addTransaction
and 5,000 taskHandle rows. The database file is copied; on each copy the addTransaction rows
are delivered first (not timed: the handles need their todos to exist), then the 5,000
handles are drained and timed, once by the relay as shipped (batch size 50: one array call
carries up to 50 instances' head rows) and once with batch size 1 (one item per request).
Both go to the fake centre over a real loopback HTTP server, with the same claim, send and
record steps per round.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks._common import Check, open_bridge, scratch_dir
from engine_bridge.clock import SystemClock
from engine_bridge.relay import Relay
from engine_bridge.store import Store
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.ttc import TTCClient

__all__ = ["run"]

TARGET = 10.0
BATCHED = 50  # the relay's and the bridge's default batch size
SHORT_LEAVE = {
    "applicant_name": "李四",
    "reason": "参加竞赛",
    "counselor": "T001",
    "dean": "D001",
    "days": 2,
}


def _queue(directory: Path, count: int) -> Path:
    """A database whose outbox holds ``count`` instances' addTransaction + taskHandle."""
    bridge, _ = open_bridge(directory, center=None, name="queued.db")
    try:
        for _ in range(count):
            instance = bridge.start("leave_approval", initiator="2023001", data=SHORT_LEAVE)
            (todo,) = instance.todos
            bridge.complete(todo.task_id, handler="T001", data={"approved": True})
        if bridge.store.pending_count() != 2 * count:
            raise AssertionError("the outbox does not hold two calls per instance")
    finally:
        bridge.close()
    return directory / "queued.db"


def _drain_handles(database: Path, count: int, batch_size: int) -> float:
    """Seconds to deliver the ``count`` queued handles with ``batch_size`` items per call."""
    fake = FakeCenter()
    with fake.serve() as server:
        client = TTCClient(
            server.url,
            app_id="engine-bridge",
            client_id="test-client",
            client_secret="test-secret",  # noqa: S106  # the fake centre's default test secret
        )
        store = Store.open(f"sqlite:///{database}")
        try:
            clock = SystemClock()
            # Untimed: create every todo first (their addTransaction rows are each
            # instance's head, so they go before any handle).
            priming = Relay(store, client, clock=clock, batch_size=1000)
            while store.pending_count() > count:
                priming.deliver_once()
            relay = Relay(store, client, clock=clock, batch_size=batch_size)
            start = time.perf_counter()
            report = relay.drain()
            seconds = time.perf_counter() - start
        finally:
            store.close()
            client.close()
    if report.delivered != count or fake.open_todos():
        raise AssertionError(f"delivery incomplete: {report}")
    return seconds


def run(*, quick: bool = False) -> list[Check]:
    count = 500 if quick else 5000
    print(f"delivery: {count} queued taskHandle calls to a loopback fake centre")
    with scratch_dir() as directory:
        queued = _queue(directory, count)
        rates: dict[int, float] = {}
        for batch_size in (BATCHED, 1):
            copy = directory / f"batch{batch_size}.db"
            shutil.copyfile(queued, copy)
            seconds = _drain_handles(copy, count, batch_size)
            rates[batch_size] = count / seconds
            label = "one item per request" if batch_size == 1 else f"batched ({batch_size}/call)"
            print(f"  {label:24s} {seconds:8.2f} s  {rates[batch_size]:9.0f} items/s")
    ratio = rates[BATCHED] / rates[1]
    return [Check("delivery, batched / one per request", ratio, TARGET, "×", at_most=False)]
