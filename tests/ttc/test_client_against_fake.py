"""The client against the project's fake centre: in-process (MockTransport) and over a real
loopback socket. The fake enforces the centre's rules, so per-item failures here are real
refusals, not canned answers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engine_bridge.errors import CenterRejectedError, CenterUnavailableError
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.ttc import NewTask, TTCClient

CLIENT_ID = "bridge-client"
CLIENT_SECRET = "fake-centre-secret-9f3"
APP_ID = "bridge-app"


@pytest.fixture
def fake() -> FakeCenter:
    return FakeCenter(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, app_id=APP_ID)


@pytest.fixture(params=["in-process", "loopback"])
def client(request: pytest.FixtureRequest, fake: FakeCenter) -> Iterator[TTCClient]:
    if request.param == "in-process":
        with TTCClient(
            "http://centre.invalid",
            app_id=APP_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            transport=fake.transport(),
        ) as c:
            yield c
    else:
        with (
            fake.serve() as server,
            TTCClient(
                server.url, app_id=APP_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
            ) as c,
        ):
            yield c


def first_todo(task_id: str, handlers: list[str]) -> NewTask:
    return NewTask(
        task_id=task_id,
        task_name="审批",
        node_id="n1",
        node_name="审批",
        handlers=handlers,
        trans_type_code="leave",
        trans_type_name="请假",
        initiator="2023001",
        transaction_name=f"请假 {task_id}",
    )


def test_mixed_batch_is_reported_per_item(client: TTCClient, fake: FakeCenter) -> None:
    """Good elements are applied, refused ones come back with the fake's code, in order."""
    created = client.add_transaction([first_todo("T1", ["a"]), first_todo("T2", ["b"])])
    assert created.all_ok
    result = client.task_handle(
        [
            {"previousTaskId": "T1", "handler": "a", "status": "end"},
            {"previousTaskId": "NOPE", "handler": "a", "status": "end"},
            {"previousTaskId": "T2", "handler": "not-b", "status": "end"},
        ]
    )
    assert [(r.task_id, r.ok) for r in result.items] == [
        ("T1", True),
        ("NOPE", False),
        ("T2", False),
    ]
    assert result.items[1].code == 2004
    assert all(r.code is not None and r.message for r in result.failed)
    assert fake.open_todos() == {"T2": ["b"]}


def test_401_under_four_concurrent_callers_refreshes_once(
    client: TTCClient, fake: FakeCenter
) -> None:
    """The fake drops every token; four threads all recover with one new token."""
    client.add_transaction([first_todo(f"T{i}", ["a"]) for i in range(4)])
    assert fake.token_requests == 1
    fake.expire_tokens()
    start = threading.Barrier(4)
    results: list[Any] = [None] * 4

    def complete(i: int) -> None:
        start.wait(timeout=5)
        results[i] = client.task_handle(
            [{"previousTaskId": f"T{i}", "handler": "a", "status": "end"}]
        )

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert all(r is not None and r.all_ok for r in results)
    assert fake.token_requests == 2
    assert fake.open_todos() == {}


def test_scripted_faults_map_to_retryable_errors(client: TTCClient, fake: FakeCenter) -> None:
    """Gateway 5xx, outer code 500 and a dropped connection are all worth a retry."""
    fake.faults.add("addTransaction", "http_5xx", attempts=[1])
    fake.faults.add("addTransaction", "outer_code", attempts=[2])
    fake.faults.add("addTransaction", "drop", attempts=[3])
    with pytest.raises(CenterUnavailableError):
        client.add_transaction([first_todo("T1", ["a"])])
    with pytest.raises(CenterRejectedError) as rejected:
        client.add_transaction([first_todo("T1", ["a"])])
    assert rejected.value.code == 500
    with pytest.raises(CenterUnavailableError):
        client.add_transaction([first_todo("T1", ["a"])])
    assert client.add_transaction([first_todo("T1", ["a"])]).all_ok
    assert fake.open_todos() == {"T1": ["a"]}


def test_no_secret_in_debug_logs_over_a_real_socket(
    fake: FakeCenter, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG (httpx and httpcore included), neither the client secret
    nor the access token is logged."""
    caplog.set_level(logging.DEBUG)
    seen_tokens: list[str] = []
    with (
        fake.serve() as server,
        TTCClient(
            server.url, app_id=APP_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        ) as client,
    ):
        client.add_transaction([first_todo("T1", ["a"])])
        seen_tokens.append(client.token_provider.token())
        fake.expire_tokens()
        client.task_handle([{"previousTaskId": "T1", "handler": "a", "status": "end"}])
        seen_tokens.append(client.token_provider.token())
    messages = [record.getMessage() for record in caplog.records]
    assert any("oauth2/token" in m for m in messages)  # the token fetch was logged by httpx
    for message in messages:
        assert CLIENT_SECRET not in message
        assert all(token not in message for token in seen_tokens)
    assert len(set(seen_tokens)) == 2
