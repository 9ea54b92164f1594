"""Several relays sharing one database deliver everything once and in order."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from engine_bridge.clock import FakeClock
from engine_bridge.facts import Endpoint
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import StepRecord, Store
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.ttc import TTCClient

StepFactory = Callable[..., StepRecord]


def _todo(task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "nodeId": "review",
        "nodeName": "审批",
        "handlers": "T001",
        "initiator": "2023001",
        "transTypeCode": "leave",
        "transTypeName": "请假",
    }


def test_two_relays_share_the_work_without_duplicates_or_reordering(
    db_url: str, make_step: StepFactory
) -> None:
    """Two relays (separate connections) drain 30 instances of create-then-finish."""
    clock = FakeClock()
    center = FakeCenter(clock=clock)
    setup = Store.open(db_url)
    for n in range(30):
        iid = f"i{n:02d}"
        setup.commit_step(make_step(iid, calls=[(Endpoint.ADD_TRANSACTION, _todo(f"{iid}:a"))]))
        handle = {"previousTaskId": f"{iid}:a", "handler": "T001", "status": "end"}
        setup.commit_step(make_step(iid, expected=1, calls=[(Endpoint.TASK_HANDLE, handle)]))
    failures: list[BaseException] = []

    def work(worker: str) -> None:
        store = Store.open(db_url, create=False)
        client = TTCClient(
            "http://center.test",
            app_id="app",
            client_id="test-client",
            client_secret="test-secret",
            transport=center.transport(),
        )
        relay = Relay(
            store,
            client,
            clock=clock,
            worker_id=worker,
            batch_size=4,
            policy=RetryPolicy(rng=random.Random(worker)),
        )
        try:
            for _ in range(2000):
                if store.pending_count() == 0:
                    return
                relay.drain()
        except BaseException as exc:  # reported to the main thread below
            failures.append(exc)
        finally:
            client.close()
            store.close()

    threads = [threading.Thread(target=work, args=(f"relay-{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    rows = setup.outbox()
    setup.close()
    assert [r.status for r in rows] == ["delivered"] * 60
    assert all(r.attempts == 1 for r in rows)  # nothing was sent twice
    sent: list[tuple[str, str]] = []  # (endpoint, task id) in the order the centre saw them
    for call in center.calls():
        if call["endpoint"] == "addTransaction":
            sent += [("add", item["taskId"]) for item in call["body"]]
        elif call["endpoint"] == "taskHandle":
            sent += [("handle", item["previousTaskId"]) for item in call["body"]]
    assert len(sent) == len(set(sent)) == 60
    for n in range(30):
        task = f"i{n:02d}:a"
        assert sent.index(("add", task)) < sent.index(("handle", task))
    assert center.open_todos() == {}
