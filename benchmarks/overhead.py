"""Target 1: what the bridge adds to SpiffWorkflow for an ordinary process.

200 instances of the leave-approval sample, each started and completed twice (counselor, then
dean). The bridge runs as shipped: an SQLite file with durable commits, the fake centre
in-process, every call delivered. Two ways of delivering are measured: *inline* (the default
``auto_deliver``: each action sends its calls before it returns) is the target's figure;
*worker* (calls left to the relay, drained every 10 instances in batches of 50, as
``engine-bridge worker`` does) is printed beside it. Raw SpiffWorkflow does the same actions
with a JSON serialize after every step and a deserialize before every completion (how an
application keeps state between requests without the bridge), and no database.
"""

from __future__ import annotations

import time

from benchmarks._common import (
    LEAVE_START,
    Check,
    RawProcess,
    best_of,
    fmt_ms,
    open_bridge,
    raw_serializer,
    scratch_dir,
)
from engine_bridge.bridge import Bridge
from engine_bridge.testing.fake_center import FakeCenter

__all__ = ["run"]

TARGET = 2.0
STRETCH = 1.5
DRAIN_EVERY = 10


def run_raw(instances: int) -> float:
    """Seconds for raw SpiffWorkflow to run ``instances`` leave approvals."""
    process = RawProcess("leave_approval.bpmn", "leave_approval")
    serializer = raw_serializer()
    start = time.perf_counter()
    for _ in range(instances):
        wf = process.start({**LEAVE_START, "initiator": "2023001"})
        stored = serializer.serialize_json(wf)
        for _step in range(2):
            wf = serializer.deserialize_json(stored)
            (task,) = process.ready_user_tasks(wf)
            process.complete(wf, task, {"approved": True})
            stored = serializer.serialize_json(wf)
        if not wf.is_completed():
            raise AssertionError("raw leave approval did not finish")
    return time.perf_counter() - start


def run_bridge(instances: int, *, worker: bool = False) -> float:
    """Seconds for the bridge to run ``instances`` leave approvals, every call delivered
    (inline, or by the relay every ``DRAIN_EVERY`` instances when ``worker``)."""
    with scratch_dir() as directory:
        bridge, fake = open_bridge(directory, auto_deliver=not worker)
        try:
            start = time.perf_counter()
            for n in range(instances):
                instance = bridge.start("leave_approval", initiator="2023001", data=LEAVE_START)
                todo = instance.todos[0]
                for _step in range(2):
                    outcome = bridge.complete(
                        todo.task_id, handler=todo.handlers[0], data={"approved": True}
                    )
                    if outcome.created:
                        todo = outcome.created[0]
                if worker and n % DRAIN_EVERY == DRAIN_EVERY - 1:
                    bridge.deliver()
            if worker:
                bridge.deliver()
            seconds = time.perf_counter() - start
            _check_delivered(bridge, fake, instances)
        finally:
            bridge.close()
    return seconds


def _check_delivered(bridge: Bridge, fake: FakeCenter | None, instances: int) -> None:
    """The run counts only if every call reached the centre and nothing is left open."""
    if fake is None:
        raise AssertionError("the overhead benchmark needs the in-process fake centre")
    if bridge.store.pending_count() != 0:
        raise AssertionError("the bridge left calls in the outbox")
    if fake.open_todos():
        raise AssertionError("the centre still has open todos")
    handles = fake.calls("taskHandle")
    if sum(len(c["body"]) for c in handles) != 2 * instances:
        raise AssertionError("the centre did not receive one handle per completion")


def run(*, quick: bool = False) -> list[Check]:
    instances = 50 if quick else 200
    repeat = 1 if quick else 5  # a shared VM drifts for seconds at a time: keep the best
    print(f"overhead: {instances} leave approvals (start + 2 completions), best of {repeat}")
    run_raw(10)  # warm both up: the first run pays imports and first calls
    run_bridge(10)
    raw, inline, worker = best_of(
        repeat,
        lambda: run_raw(instances),
        lambda: run_bridge(instances),
        lambda: run_bridge(instances, worker=True),
    )
    for label, seconds in (
        ("raw SpiffWorkflow + JSON round trip", raw),
        ("bridge, inline delivery (default)", inline),
        ("bridge, worker delivery (batched)", worker),
    ):
        each = seconds / instances * 1000
        print(f"  {label:36s} {fmt_ms(seconds)}  ({each:.2f} ms per instance)")
    ratio = inline / raw
    note = "stretch 1.5× met" if ratio <= STRETCH else f"stretch {STRETCH}× not met"
    return [
        Check("overhead, bridge (inline delivery) / raw", ratio, TARGET, "×", note=note),
        Check("overhead, bridge (worker delivery) / raw", worker / raw, TARGET, "×"),
    ]
