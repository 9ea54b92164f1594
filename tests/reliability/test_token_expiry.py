"""Tokens expiring every few requests while four relays send batches at once.

Four relays (threads, each with its own store connection and worker id) share one TTCClient,
as the sender threads of one worker would, and deliver 600 rows to the fake centre over
loopback. The centre revokes the presented token on every third request to each endpoint.
Everything is delivered once, no row becomes a dead letter, and the token endpoint is asked
for at most one new token per expiry (plus the first): concurrent callers that all saw the
same 401 share one refresh.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from engine_bridge.clock import SystemClock
from engine_bridge.facts import CenterCall, Endpoint, Ledger
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import HistoryDraft, StepRecord, Store
from engine_bridge.testing import FakeCenter, FakeCenterServer, FaultKind
from engine_bridge.ttc import TTCClient

from .conftest import soak
from .effects import assert_exactly_once

EVERY = 3  # the centre expires the token on every third request to an endpoint
SENDERS = 4


def _step(n: int) -> StepRecord:
    iid = f"t{n:05d}"
    todo = {
        "taskId": f"{iid}:1",
        "taskName": "审批",
        "nodeId": "review",
        "nodeName": "审批",
        "handlers": "T001",
        "initiator": "2023001",
        "transTypeCode": "leave",
        "transTypeName": "请假",
    }
    handle = {"previousTaskId": f"{iid}:1", "handler": "T001", "status": "end"}
    return StepRecord(
        instance_id=iid,
        expected_version=None,
        process_id="synthetic",
        definition_version="v1",
        initiator="2023001",
        status="finished",
        state="{}",
        ledger=Ledger(),
        calls=[
            CenterCall(Endpoint.ADD_TRANSACTION, todo),
            CenterCall(Endpoint.TASK_HANDLE, handle),
        ],
        history=HistoryDraft(kind="start", payload={}, at=datetime.now(UTC)),
    )


@pytest.fixture
def client(served: FakeCenterServer) -> Iterator[TTCClient]:
    with TTCClient(
        served.url, app_id="tokens", client_id="test-client", client_secret="test-secret"
    ) as shared:
        yield shared


@pytest.mark.soak
def test_tokens_expiring_every_few_requests_under_four_concurrent_senders(
    sqlite_url: str, center: FakeCenter, client: TTCClient
) -> None:
    """All delivered once; token fetches <= expiries + 1; no dead letter."""
    instances = soak(300)
    with Store.open(sqlite_url) as setup:
        for n in range(instances):
            setup.commit_step(_step(n))
    every = range(EVERY, 1_000_000, EVERY)
    center.faults.add("addTransaction", FaultKind.TOKEN_EXPIRED, attempts=every)
    center.faults.add("taskHandle", FaultKind.TOKEN_EXPIRED, attempts=every)
    failures: list[BaseException] = []

    def sender(k: int) -> None:
        store = Store.open(sqlite_url, create=False)
        relay = Relay(
            store,
            client,
            clock=SystemClock(),
            worker_id=f"sender-{k}",
            batch_size=5,
            policy=RetryPolicy(
                base_seconds=0.001, cap_seconds=0.01, max_attempts=50, rng=random.Random(k)
            ),
        )
        try:
            for _ in range(10_000):
                relay.drain()
                if store.pending_count() == 0:
                    return
            raise AssertionError(f"sender {k} gave up with rows pending")
        except BaseException as exc:  # reported to the test thread
            failures.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []

    fired = sum(f["fired"] for f in center.faults.to_json())
    assert fired >= 2 * instances // 5 // EVERY  # the expiries really happened, many times
    print(f"\nexpiries {fired}, token fetches {center.token_requests}")
    assert 2 <= center.token_requests <= fired + 1
    with Store.open(sqlite_url, create=False) as store:
        verdict = assert_exactly_once(center, store)
    assert {r.status for r in verdict.rows} == {"delivered"}
    first_errors = {r.errors[0]["error"][:16] for r in verdict.rows if r.errors}
    assert first_errors <= {"CenterAuthError:"}  # the only failures were refused tokens
