"""The relay against the real fake centre and the real TTC client (in-process transport).

Each test commits steps to a real SQLite store, drains with a Relay, and checks both sides:
the outbox rows' outcomes and what the fake centre holds and received.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine_bridge.clock import FakeClock
from engine_bridge.facts import CenterCall, Endpoint, Ledger
from engine_bridge.relay import DeliveryReport, Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import HistoryDraft, StepRecord, Store
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.faults import FaultKind
from engine_bridge.ttc import StaticToken, TTCClient

BASE = "http://center.test"
APP = "app-relay"
ADD = Endpoint.ADD_TRANSACTION
HANDLE = Endpoint.TASK_HANDLE
LEASE = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'relay.db'}")
    yield opened
    opened.close()


@pytest.fixture
def center(clock: FakeClock) -> FakeCenter:
    return FakeCenter(clock=clock)


@pytest.fixture
def client(center: FakeCenter) -> Iterator[TTCClient]:
    with TTCClient(
        BASE,
        app_id=APP,
        client_id="test-client",
        client_secret="test-secret",
        transport=center.transport(),
    ) as opened:
        yield opened


def relay_for(
    store: Store, client: Any, clock: FakeClock, *, worker: str = "relay-1", **policy: Any
) -> Relay:
    return Relay(
        store,
        client,
        clock=clock,
        worker_id=worker,
        lease_seconds=LEASE,
        policy=RetryPolicy(rng=random.Random(7), **policy),
    )


def new_todo(task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "taskName": "请假审批",
        "nodeId": "counselor_review",
        "nodeName": "辅导员审批",
        "handlers": "T001",
        "initiator": "2023001",
        "transTypeCode": "leave",
        "transTypeName": "请假",
        "transcationName": "请假申请",
    }


def handle(task_id: str, status: str = "end") -> dict[str, Any]:
    return {"previousTaskId": task_id, "handler": "T001", "status": status}


def commit(
    store: Store,
    clock: FakeClock,
    instance_id: str,
    calls: Sequence[tuple[Endpoint, dict[str, Any]]],
    *,
    expected: int | None = None,
) -> None:
    store.commit_step(
        StepRecord(
            instance_id=instance_id,
            expected_version=expected,
            process_id="leave_approval",
            definition_version="v1",
            initiator="2023001",
            status="running",
            state="{}",
            ledger=Ledger(),
            calls=[CenterCall(endpoint=e, item=i) for e, i in calls],
            history=HistoryDraft(kind="step", payload={}, at=clock.now()),
        )
    )


def centre_calls(center: FakeCenter, endpoint: str) -> list[list[dict[str, Any]]]:
    """Bodies of the HTTP calls the centre received on ``endpoint``, in order."""
    return [c["body"] for c in center.calls() if c["endpoint"] == endpoint]


def statuses(store: Store) -> list[tuple[str, int, str]]:
    return [(r.instance_id, r.seq, r.status) for r in store.outbox()]


def test_rows_of_many_instances_go_out_in_one_array_call(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """Three started instances: ONE addTransaction call carries all three todos."""
    for n in range(3):
        commit(store, clock, f"i{n}", [(ADD, new_todo(f"i{n}:a"))])
    report = relay_for(store, client, clock).drain()
    assert (report.claimed, report.calls, report.delivered) == (3, 1, 3)
    (body,) = centre_calls(center, "addTransaction")
    assert [item["taskId"] for item in body] == ["i0:a", "i1:a", "i2:a"]
    assert all(item["appId"] == APP for item in body)
    assert center.open_todos() == {"i0:a": ["T001"], "i1:a": ["T001"], "i2:a": ["T001"]}
    assert all(r.status == "delivered" and r.delivered_at == clock.now() for r in store.outbox())
    assert store.pending_count() == 0


def test_an_instance_calls_arrive_in_step_order(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """Create-then-handle of two instances: both creates in round 1, both handles in round 2."""
    for name in ("a", "b"):
        commit(store, clock, name, [(ADD, new_todo(f"{name}:1"))])
        commit(store, clock, name, [(HANDLE, handle(f"{name}:1"))], expected=1)
    report = relay_for(store, client, clock).drain()
    assert (report.calls, report.delivered, report.rounds) == (2, 4, 3)
    endpoints = [c["endpoint"] for c in center.calls() if c["endpoint"] != "oauth2/token"]
    assert endpoints == ["addTransaction", "taskHandle"]
    assert [i["previousTaskId"] for i in centre_calls(center, "taskHandle")[0]] == ["a:1", "b:1"]
    assert center.open_todos() == {}


def test_a_failed_call_is_retried_with_backoff_and_then_delivered(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """A 503 marks the row for a jittered retry, records the attempt, and later succeeds."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    center.faults.add("addTransaction", FaultKind.HTTP_5XX, attempts=[1])
    relay = relay_for(store, client, clock)
    first = relay.drain()
    assert (first.calls, first.retried, first.delivered) == (1, 1, 0)
    assert "CenterUnavailableError" in first.errors[0]
    (row,) = store.outbox()
    expected_delay = random.Random(7).uniform(0, 0.5)  # attempt 1: ceiling base_seconds
    assert row.next_attempt_at == clock.now() + timedelta(seconds=expected_delay)
    assert (row.status, row.attempts, row.maybe_applied) == ("pending", 1, True)
    assert row.errors[0]["attempt"] == 1 and row.errors[0]["unknown"] is True
    assert relay.drain().claimed == 0  # not due yet
    clock.advance(timedelta(seconds=1))
    second = relay.drain()
    assert second.delivered == 1
    assert center.open_todos() == {"i1:a": ["T001"]}


def test_already_exists_after_a_lost_answer_counts_as_delivered(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """The centre applied the create but the answer was lost; the resend's 2006 means done."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    center.faults.add("addTransaction", FaultKind.APPLIED_ANSWER_LOST, attempts=[1])
    relay = relay_for(store, client, clock)
    assert relay.drain().retried == 1
    clock.advance(timedelta(seconds=1))
    report = relay.drain()
    assert (report.delivered, report.dead) == (1, 0)
    (row,) = store.outbox()
    assert row.status == "delivered"
    assert row.response["code"] == 2006 and row.response["applied_earlier"] is True
    assert center.open_todos() == {"i1:a": ["T001"]}


def test_finished_after_a_lost_answer_counts_as_delivered(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """A handle applied with its answer lost is not failed when the resend answers 2005."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    commit(store, clock, "i1", [(HANDLE, handle("i1:a"))], expected=1)
    center.faults.add("taskHandle", FaultKind.APPLIED_ANSWER_LOST, attempts=[1])
    relay = relay_for(store, client, clock)
    relay.drain()
    clock.advance(timedelta(seconds=1))
    relay.drain()
    assert statuses(store) == [("i1", 1, "delivered"), ("i1", 2, "delivered")]
    assert center.open_todos() == {}


def test_already_exists_on_a_first_attempt_is_a_real_conflict(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """A todo id someone else already created is a dead letter, not a success."""
    client.send(ADD, [new_todo("i1:a")])  # created behind the bridge's back
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    report = relay_for(store, client, clock).drain()
    assert (report.delivered, report.dead) == (0, 1)
    (row,) = store.outbox()
    assert row.status == "dead"
    assert row.last_error is not None and "2006" in row.last_error
    assert "real conflict" in row.last_error


def test_a_dead_row_blocks_only_its_own_instance(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """Handling an unknown todo is dead; its instance waits, the other goes on; discard frees."""
    commit(store, clock, "bad", [(HANDLE, handle("never-created"))])
    commit(store, clock, "bad", [(ADD, new_todo("bad:b"))], expected=1)
    commit(store, clock, "good", [(ADD, new_todo("good:a"))])
    relay = relay_for(store, client, clock)
    report = relay.drain()
    assert (report.dead, report.delivered) == (1, 1)
    assert statuses(store) == [
        ("bad", 1, "dead"),
        ("bad", 2, "pending"),
        ("good", 1, "delivered"),
    ]
    dead = store.outbox(status="dead")[0]
    assert dead.last_error is not None and dead.last_error.startswith("code 2004")
    assert dead.item == handle("never-created")
    store.discard(dead.id)
    assert relay.drain().delivered == 1
    assert center.open_todos() == {"good:a": ["T001"], "bad:b": ["T001"]}


def test_attempts_exhausted_make_a_dead_letter_with_every_error(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """A centre that keeps failing: after max_attempts the row is dead with all its errors."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    center.faults.add("addTransaction", FaultKind.OUTER_CODE, attempts="all")
    relay = relay_for(store, client, clock, max_attempts=3)
    total = DeliveryReport()
    for _ in range(5):
        total += relay.drain()
        clock.advance(timedelta(minutes=5))
    assert (total.calls, total.retried, total.dead) == (3, 2, 1)
    (row,) = store.outbox()
    assert row.status == "dead"
    assert [e["attempt"] for e in row.errors] == [1, 2, 3]
    assert row.last_error is not None and "gave up after 3 attempt(s)" in row.last_error
    assert "CenterRejectedError" in row.last_error


def test_a_row_older_than_max_age_is_given_up(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """Age counts from the first attempt: past max_age the next failure is final."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    center.faults.add("addTransaction", FaultKind.DROP, attempts="all")
    relay = relay_for(store, client, clock, max_age=timedelta(hours=1))
    assert relay.drain().retried == 1
    clock.advance(timedelta(hours=1))
    assert relay.drain().dead == 1
    assert store.outbox()[0].attempts == 2


def test_a_crashed_relay_is_replaced_and_its_applied_call_not_duplicated(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """Relay 1 claimed and sent, then died; relay 2 takes over after the lease."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    (row,) = store.claim(worker="relay-dead", limit=10, lease_seconds=LEASE, now=clock.now())
    client.send(row.endpoint, [row.item])  # it reached the centre; then the process died
    survivor = relay_for(store, client, clock, worker="relay-2")
    assert survivor.drain().claimed == 0  # the lease still holds
    clock.advance(timedelta(seconds=LEASE))
    report = survivor.drain()
    assert (report.delivered, report.dead) == (1, 0)
    assert store.outbox()[0].attempts == 2
    assert len(centre_calls(center, "addTransaction")) == 2
    assert center.open_todos() == {"i1:a": ["T001"]}


def test_an_element_the_client_refuses_dies_alone(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """A todo without handlers fails validation: it is dead, its batch-mates are delivered."""
    broken = {k: v for k, v in new_todo("i2:a").items() if k != "handlers"}
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    commit(store, clock, "i2", [(ADD, broken)])
    commit(store, clock, "i3", [(ADD, new_todo("i3:a"))])
    report = relay_for(store, client, clock).drain()
    assert (report.delivered, report.dead) == (2, 1)
    assert statuses(store) == [("i1", 1, "delivered"), ("i2", 1, "dead"), ("i3", 1, "delivered")]
    dead = store.outbox(status="dead")[0]
    assert dead.last_error is not None and "client refuses" in dead.last_error
    assert set(center.open_todos()) == {"i1:a", "i3:a"}


def test_bad_credentials_keep_rows_pending_and_not_maybe_applied(
    store: Store, center: FakeCenter, clock: FakeClock
) -> None:
    """No token means nothing was sent: rows retry later and are not marked maybe-applied."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    with TTCClient(
        BASE,
        app_id=APP,
        client_id="test-client",
        client_secret="wrong-secret",
        transport=center.transport(),
    ) as wrong:
        report = relay_for(store, wrong, clock).drain()
    assert report.retried == 1
    (row,) = store.outbox()
    assert (row.status, row.maybe_applied) == ("pending", False)
    assert row.last_error is not None and "CenterAuthError" in row.last_error
    assert "wrong-secret" not in row.last_error


def _scripted_centre(errors: dict[str, tuple[int, str]]) -> httpx.MockTransport:
    """A centre answering every batch with ``errorIds`` for the listed keys."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        failed = [
            {"code": errors[key][0], "taskId": key, "message": errors[key][1]}
            for item in body
            if (key := item.get("taskId") or item.get("previousTaskId")) in errors
        ]
        return httpx.Response(
            200,
            json={
                "code": 0,
                "message": "ok",
                "took": 1,
                "timestamp": 0,
                "data": {"errorIds": failed},
            },
        )

    return httpx.MockTransport(answer)


def test_item_codes_400_dies_500_retries_other_dies(store: Store, clock: FakeClock) -> None:
    """Per-item codes: 400 is final, 500 is retried (outcome known), 2099 is final."""
    commit(store, clock, "i400", [(ADD, new_todo("t400"))])
    commit(store, clock, "i500", [(ADD, new_todo("t500"))])
    commit(store, clock, "i2099", [(ADD, new_todo("t2099"))])
    commit(store, clock, "iok", [(ADD, new_todo("tok"))])
    transport = _scripted_centre(
        {"t400": (400, "handlers is null"), "t500": (500, "busy"), "t2099": (2099, "odd")}
    )
    with TTCClient(BASE, app_id=APP, token_provider=StaticToken("t"), transport=transport) as c:
        report = relay_for(store, c, clock).drain()
    assert (report.calls, report.delivered, report.retried, report.dead) == (1, 1, 1, 2)
    by_instance = {r.instance_id: r for r in store.outbox()}
    assert by_instance["i400"].status == "dead"
    assert by_instance["i400"].last_error == (
        "code 400: handlers is null: the centre refuses this request as invalid"
    )
    assert (by_instance["i500"].status, by_instance["i500"].maybe_applied) == ("pending", False)
    assert by_instance["i2099"].status == "dead"
    assert by_instance["iok"].status == "delivered"


def test_drain_stops_when_nothing_is_deliverable_now(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock
) -> None:
    """With every row waiting for a later retry, drain returns after one empty round."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])
    center.faults.add("addTransaction", FaultKind.HTTP_5XX, attempts="all")
    relay = relay_for(store, client, clock)
    report = relay.drain(max_rounds=50)
    assert (report.rounds, report.calls) == (2, 1)
    assert relay.drain(max_rounds=1).rounds == 1


def test_calls_go_out_under_the_sending_clients_app_id(
    store: Store, clock: FakeClock, tmp_path: Any
) -> None:
    """The app id is the deployment's, like the URL: a call queued by a bridge that had none
    (a CLI command, a misconfigured service) goes out under the worker's, top level and in
    ``next[]``; a dead letter from a wrong app id is mended by fixing it and retrying."""
    center = FakeCenter(clock=clock, app_id="REAL-APP")
    commit(store, clock, "i1", [(ADD, {**new_todo("i1:a"), "appId": "engine-bridge"})])

    def client_for(app_id: str) -> TTCClient:
        return TTCClient(
            BASE,
            app_id=app_id,
            client_id="test-client",
            client_secret="test-secret",
            transport=center.transport(),
        )

    wrong = client_for("engine-bridge")
    assert relay_for(store, wrong, clock).drain().dead == 1
    (dead,) = store.outbox(status="dead")
    store.retry_dead(dead.id, now=clock.now())
    withdraw = {
        "appId": "engine-bridge",
        "taskId": "i1:a",
        "creator": "system",
        "createTime": "2026-01-01 08:00:00",
        "status": "next",
        "next": [{**new_todo("i1:b"), "appId": "engine-bridge", "previousTaskId": "i1:a"}],
    }
    commit(store, clock, "i1", [(Endpoint.TASK_WITHDRAW, withdraw)], expected=1)
    right = client_for("REAL-APP")
    report = relay_for(store, right, clock).drain()
    assert report.delivered == 2 and report.dead == 0, report
    assert center.open_todos() == {"i1:b": ["T001"]}
    (sent,) = centre_calls(center, "taskWithdraw")
    assert sent[0]["appId"] == "REAL-APP" and sent[0]["next"][0]["appId"] == "REAL-APP"
    # what is stored is left as planned: only the request carries the sender's app id
    assert store.outbox(status="delivered")[-1].item["appId"] == "engine-bridge"


def test_a_bridge_for_a_real_centre_without_an_app_id_says_so(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from engine_bridge.bridge import Bridge

    monkeypatch.delenv("ENGINE_BRIDGE_APP_ID", raising=False)
    workflows = Path(__file__).resolve().parents[1] / "workflows"
    database = f"sqlite:///{tmp_path / 'b.db'}"
    for app_id, warned in ((None, True), ("REAL-APP", False)):
        caplog.clear()
        with (
            caplog.at_level("WARNING", logger="engine_bridge"),
            Bridge.open(
                workflows,
                database=database,
                center="http://127.0.0.1:9",
                client_id="c",
                client_secret="s",
                app_id=app_id,
            ),
        ):
            pass
        said = [r.getMessage() for r in caplog.records if "no app_id given" in r.getMessage()]
        assert bool(said) is warned, said


def test_a_relay_whose_claim_ran_out_while_sending_reports_no_dead_letter(
    store: Store, client: TTCClient, center: FakeCenter, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A send slower than the lease: another relay takes the row and delivers it; the slow
    relay's refusal (its resend finds the todo existing) is that relay's no longer, and must
    not be reported or logged as a dead letter of a row that was delivered."""
    commit(store, clock, "i1", [(ADD, new_todo("i1:a"))])

    class Slow:
        app_id = APP

        def send(self, endpoint: Endpoint, items: Sequence[Any]) -> Any:
            clock.advance(timedelta(seconds=LEASE + 1))  # the claim runs out meanwhile
            assert relay_for(store, client, clock, worker="relay-2").drain().delivered == 1
            return client.send(endpoint, items)  # answered 2006: the todo exists

    with caplog.at_level("INFO", logger="engine_bridge"):
        report = relay_for(store, Slow(), clock, worker="relay-1").drain()
    assert (report.dead, report.retried, report.delivered) == (0, 0, 0), report
    (row,) = store.outbox()
    assert row.status == "delivered" and row.errors == []
    assert not [r for r in caplog.records if "dead letter" in r.getMessage()]
    assert any("claim ran out" in r.getMessage() for r in caplog.records)
