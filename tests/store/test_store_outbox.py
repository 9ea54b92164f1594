"""The outbox queue: numbering, head-only claiming, leases, retries and dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from engine_bridge.errors import InputError
from engine_bridge.facts import Endpoint
from engine_bridge.store import StepRecord, Store

StepFactory = Callable[..., StepRecord]
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
ADD = Endpoint.ADD_TRANSACTION
HANDLE = Endpoint.TASK_HANDLE
LEASE = 30.0


def _seed(store: Store, make_step: StepFactory, instance_id: str, n: int) -> None:
    """An instance whose first step queued ``n`` calls named ``<id>-1`` … ``<id>-n``."""
    calls = [(ADD, {"taskId": f"{instance_id}-{k}"}) for k in range(1, n + 1)]
    store.commit_step(make_step(instance_id, calls=calls))


def _claim(store: Store, worker: str = "w1", now: datetime = T0, limit: int = 10) -> list[str]:
    rows = store.claim(worker=worker, limit=limit, lease_seconds=LEASE, now=now)
    return [r.item["taskId"] for r in rows]


def _ids(store: Store) -> dict[str, int]:
    return {r.item["taskId"]: r.id for r in store.outbox()}


def test_seq_numbers_are_per_instance_and_gap_free(store: Store, make_step: StepFactory) -> None:
    """Calls of successive steps continue the instance's numbering; each instance starts at 1."""
    store.commit_step(make_step("a", calls=[(ADD, {"k": 1}), (ADD, {"k": 2})]))
    store.commit_step(make_step("b", calls=[(ADD, {"k": 1})]))
    store.commit_step(make_step("a", expected=1))  # a step without calls uses no number
    store.commit_step(make_step("a", expected=2, calls=[(HANDLE, {"k": 3}), (HANDLE, {"k": 4})]))
    rows = store.outbox()
    assert [(r.instance_id, r.seq, r.endpoint) for r in rows] == [
        ("a", 1, ADD),
        ("a", 2, ADD),
        ("b", 1, ADD),
        ("a", 3, HANDLE),
        ("a", 4, HANDLE),
    ]
    assert all(r.status == "pending" and r.attempts == 0 and r.errors == [] for r in rows)
    assert all(r.next_attempt_at == T0 and r.created_at == T0 for r in rows)
    assert store.pending_count() == 5


def test_only_each_instance_head_row_is_claimed(store: Store, make_step: StepFactory) -> None:
    """Later rows of an instance wait until the rows before them are delivered."""
    _seed(store, make_step, "a", 3)
    _seed(store, make_step, "b", 1)
    assert _claim(store) == ["a-1", "b-1"]
    assert _claim(store, "w2") == []  # both heads are leased
    ids = _ids(store)
    store.mark_delivered([ids["a-1"]], worker="w1", now=T0)
    assert _claim(store, "w2") == ["a-2"]
    store.mark_delivered([ids["a-2"], ids["b-1"]], worker="w1", now=T0)
    assert _claim(store, "w2") == ["a-3"]


def test_claim_marks_the_lease_and_counts_the_attempt(store: Store, make_step: StepFactory) -> None:
    """A claimed row names its worker, lease end and first attempt time."""
    _seed(store, make_step, "a", 1)
    (row,) = store.claim(worker="w1", limit=5, lease_seconds=LEASE, now=T0)
    assert (row.claimed_by, row.attempts, row.maybe_applied) == ("w1", 1, False)
    assert row.claim_expires_at == T0 + timedelta(seconds=LEASE)
    assert row.first_attempt_at == T0
    assert store.claim(worker="w1", limit=0, lease_seconds=LEASE, now=T0) == []


def test_delivered_rows_keep_the_answer(store: Store, make_step: StepFactory) -> None:
    """Delivery records the time and the answer and releases the lease."""
    _seed(store, make_step, "a", 1)
    (row,) = store.claim(worker="w1", limit=5, lease_seconds=LEASE, now=T0)
    store.mark_delivered([row.id], worker="w1", now=T0 + timedelta(seconds=1), response={"ok": 1})
    got = store.outbox_row(row.id)
    assert (got.status, got.delivered_at, got.response) == (
        "delivered",
        T0 + timedelta(seconds=1),
        {"ok": 1},
    )
    assert got.claimed_by is None
    assert store.pending_count() == 0
    assert [r.id for r in store.outbox(status="delivered")] == [row.id]
    assert store.outbox(status="pending") == []


def test_a_retried_row_waits_until_its_next_attempt(store: Store, make_step: StepFactory) -> None:
    """mark_retry records the error and hides the row (and its instance) until it is due."""
    _seed(store, make_step, "a", 2)
    (row,) = store.claim(worker="w1", limit=5, lease_seconds=LEASE, now=T0)
    later = T0 + timedelta(seconds=10)
    store.mark_retry(
        row.id,
        worker="w1",
        error="CenterUnavailableError: 503",
        next_attempt_at=later,
        now=T0,
        outcome_unknown=True,
    )
    got = store.outbox_row(row.id)
    assert got.status == "pending" and got.claimed_by is None
    assert got.last_error == "CenterUnavailableError: 503"
    assert got.errors == [
        {
            "at": T0.isoformat(),
            "error": "CenterUnavailableError: 503",
            "attempt": 1,
            "unknown": True,
        }
    ]
    assert got.maybe_applied is True
    assert _claim(store, now=later - timedelta(seconds=1)) == []  # a-2 must not overtake
    assert _claim(store, now=later) == ["a-1"]
    assert store.outbox_row(row.id).attempts == 2


def test_a_dead_head_blocks_its_instance_until_retried(
    store: Store, make_step: StepFactory
) -> None:
    """A dead letter stops its instance's later rows but not other instances."""
    _seed(store, make_step, "a", 2)
    _seed(store, make_step, "b", 1)
    ids = _ids(store)
    assert _claim(store, limit=1) == ["a-1"]
    store.mark_dead(ids["a-1"], worker="w1", error="code 400: handler is null", now=T0)
    assert _claim(store) == ["b-1"]
    assert _claim(store, now=T0 + timedelta(days=1)) == ["b-1"]  # lease expired; a still blocked
    dead = store.outbox_row(ids["a-1"])
    assert (dead.status, dead.last_error, dead.item) == (
        "dead",
        "code 400: handler is null",
        {"taskId": "a-1"},
    )
    assert len(dead.errors) == 1
    later = T0 + timedelta(days=2)
    store.retry_dead(ids["a-1"], now=later)
    revived = store.outbox_row(ids["a-1"])
    assert (revived.status, revived.attempts, revived.next_attempt_at) == ("pending", 0, later)
    assert len(revived.errors) == 1  # the history of attempts is kept
    assert _claim(store, now=later) == ["a-1", "b-1"]  # b-1's lease has expired too


def test_discarding_a_dead_head_releases_the_next_row(store: Store, make_step: StepFactory) -> None:
    """After discard, the instance continues with its next call."""
    _seed(store, make_step, "a", 2)
    ids = _ids(store)
    _claim(store)
    store.mark_dead(ids["a-1"], worker="w1", error="boom", now=T0)
    store.discard(ids["a-1"])
    assert store.outbox_row(ids["a-1"]).status == "discarded"
    assert _claim(store) == ["a-2"]


def test_operator_actions_apply_to_dead_rows_only(store: Store, make_step: StepFactory) -> None:
    """Retrying or discarding a row that is not dead, or does not exist, is refused clearly."""
    _seed(store, make_step, "a", 1)
    row_id = _ids(store)["a-1"]
    with pytest.raises(InputError, match=f"row {row_id} is pending; only a dead row"):
        store.retry_dead(row_id, now=T0)
    with pytest.raises(InputError, match="only a dead row can be discarded"):
        store.discard(row_id)
    with pytest.raises(InputError, match="no outbox row with id 999"):
        store.discard(999)
    with pytest.raises(InputError, match="no outbox row with id 999"):
        store.outbox_row(999)
    with pytest.raises(InputError, match="unknown outbox status 'lost'"):
        store.outbox(status="lost")


def test_an_expired_lease_lets_another_worker_take_over(
    store: Store, make_step: StepFactory
) -> None:
    """A worker that died mid-call loses its row after the lease; the row is 'maybe applied'."""
    _seed(store, make_step, "a", 1)
    assert _claim(store, "w1") == ["a-1"]
    assert _claim(store, "w2", now=T0 + timedelta(seconds=LEASE - 1)) == []
    after = T0 + timedelta(seconds=LEASE)
    (row,) = store.claim(worker="w2", limit=5, lease_seconds=LEASE, now=after)
    assert (row.claimed_by, row.attempts, row.maybe_applied) == ("w2", 2, True)
    assert row.first_attempt_at == T0
    # the first worker wakes up: its outcome no longer applies to a row it does not hold
    store.mark_retry(row.id, worker="w1", error="late", next_attempt_at=after, now=after)
    store.mark_dead(row.id, worker="w1", error="late", now=after)
    unchanged = store.outbox_row(row.id)
    assert (unchanged.status, unchanged.claimed_by, unchanged.errors) == ("pending", "w2", [])
    store.mark_delivered([row.id], worker="w2", now=after)
    assert store.outbox_row(row.id).status == "delivered"


def test_concurrent_claimers_get_disjoint_rows(store: Store, make_step: StepFactory) -> None:
    """Four workers claiming at once never share a row, and together take every head."""
    for n in range(40):
        _seed(store, make_step, f"i{n:02d}", 2)
    claimed: dict[str, list[str]] = {f"w{k}": [] for k in range(4)}
    barrier = threading.Barrier(4)

    def work(worker: str) -> None:
        barrier.wait()
        while True:
            got = _claim(store, worker, limit=3)
            if not got:
                return
            claimed[worker].extend(got)

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [item for items in claimed.values() for item in items]
    assert len(everything) == len(set(everything)) == 40
    assert set(everything) == {f"i{n:02d}-1" for n in range(40)}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.timeout(20)
def test_postgres_claim_skips_rows_locked_by_another_transaction(
    db_url: str, store: Store, make_step: StepFactory
) -> None:
    """While another connection holds a row lock, claim passes it by instead of waiting."""
    _seed(store, make_step, "a", 1)
    _seed(store, make_step, "b", 1)
    locked_id = _ids(store)["a-1"]
    other = create_engine(db_url)
    try:
        with other.connect() as conn, conn.begin():
            conn.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": locked_id})
            assert _claim(store, "w2") == ["b-1"]
        assert _claim(store, "w3") == ["a-1"]  # lock released: now it is claimable
    finally:
        other.dispose()
