"""Deferred delivery marks: written with the next step's commit, or before anything reads the
outbox through the same store, or at close; never lost by a step that fails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine_bridge.errors import ConflictError
from engine_bridge.facts import Endpoint
from engine_bridge.store import Store
from engine_bridge.store.outbox import StepClaim

from .conftest import StepFactory

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
ADD = Endpoint.ADD_TRANSACTION


def _claimed_row(store: Store, make_step: StepFactory, instance_id: str) -> int:
    claim = StepClaim(worker="w", lease_seconds=30)
    store.commit_step(make_step(instance_id, calls=[(ADD, {"n": 1})]), claim=claim)
    return claim.rows[0].id


def _status_seen_by_another(db_url: str, row_id: int) -> str:
    with Store.open(db_url) as other:
        return other.outbox_row(row_id).status


def test_a_deferred_mark_rides_in_the_next_step_commit(db_url: str, make_step: StepFactory) -> None:
    with Store.open(db_url) as store:
        row_id = _claimed_row(store, make_step, "i1")
        store.mark_delivered([row_id], worker="w", now=T0, response={"ok": 1}, defer=True)
        assert _status_seen_by_another(db_url, row_id) == "pending"
        store.commit_step(make_step("i2"))
        assert _status_seen_by_another(db_url, row_id) == "delivered"


def test_a_failed_step_keeps_the_deferred_marks_for_the_next_commit(
    db_url: str, make_step: StepFactory
) -> None:
    with Store.open(db_url) as store:
        row_id = _claimed_row(store, make_step, "i1")
        store.mark_delivered([row_id], worker="w", now=T0, defer=True)
        with pytest.raises(ConflictError):
            store.commit_step(make_step("i1", expected=7, kind="complete"))
        assert _status_seen_by_another(db_url, row_id) == "pending"
        store.commit_step(make_step("i1", expected=1, kind="complete"))
        assert _status_seen_by_another(db_url, row_id) == "delivered"


@pytest.mark.parametrize("reader", ["outbox", "pending_count", "claim", "close"])
def test_reading_the_outbox_or_closing_writes_the_deferred_marks_first(
    db_url: str, make_step: StepFactory, reader: str
) -> None:
    store = Store.open(db_url)
    try:
        row_id = _claimed_row(store, make_step, "i1")
        store.mark_delivered([row_id], worker="w", now=T0, defer=True)
        if reader == "outbox":
            assert [r.status for r in store.outbox()] == ["delivered"]
        elif reader == "pending_count":
            assert store.pending_count() == 0
        elif reader == "claim":
            # the lease is long over, yet the delivered row is not handed out again
            later = datetime(2027, 1, 1, tzinfo=UTC)
            assert store.claim(worker="x", limit=10, lease_seconds=30, now=later) == []
        else:
            store.close()
        assert _status_seen_by_another(db_url, row_id) == "delivered"
    finally:
        store.close()
