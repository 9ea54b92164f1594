"""Journal frames are rows of their own; a step can claim its first call in its own commit."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import text

from engine_bridge.crashpoints import CrashPointReached, armed
from engine_bridge.errors import ConflictError
from engine_bridge.facts import Endpoint
from engine_bridge.store import StepRecord, Store
from engine_bridge.store.outbox import StepClaim

from .conftest import T0, StepFactory

SNAPSHOT = 'ebstate1\n{"snapshot": 1}'
HANDLE = Endpoint.TASK_HANDLE


def _frame_step(make_step: StepFactory, expected: int, frame: str) -> StepRecord:
    return dataclasses.replace(
        make_step("i1", expected=expected, kind="complete"), state="", state_frame=frame
    )


def test_a_frame_is_appended_to_the_stored_state(store: Store, make_step: StepFactory) -> None:
    """A step with a frame leaves the snapshot as it is; reading gives snapshot + frames."""
    store.commit_step(make_step("i1", state=SNAPSHOT))
    store.commit_step(_frame_step(make_step, 1, '{"f": 1}'))
    store.commit_step(_frame_step(make_step, 2, '{"f": 2}'))
    expected = SNAPSHOT + '\n{"f": 1}\n{"f": 2}'
    assert store.get_instance("i1").state == expected
    assert store.instance_state("i1", 3) == expected
    assert store.list_instances()[0].state == expected


def test_a_new_snapshot_drops_the_frames(store: Store, make_step: StepFactory) -> None:
    """A step that writes a whole state replaces the snapshot and its frames together."""
    store.commit_step(make_step("i1", state=SNAPSHOT))
    store.commit_step(_frame_step(make_step, 1, '{"f": 1}'))
    store.commit_step(make_step("i1", expected=2, kind="complete", state='ebstate1\n{"s": 2}'))
    store.commit_step(_frame_step(make_step, 3, '{"f": 3}'))
    assert store.get_instance("i1").state == 'ebstate1\n{"s": 2}\n{"f": 3}'


def test_a_conflicting_frame_writes_nothing(store: Store, make_step: StepFactory) -> None:
    """The version guard covers frames: a frame computed from an old version is refused."""
    store.commit_step(make_step("i1", state=SNAPSHOT))
    store.commit_step(_frame_step(make_step, 1, '{"f": 1}'))
    with pytest.raises(ConflictError):
        store.commit_step(_frame_step(make_step, 1, '{"stale": 1}'))
    assert store.get_instance("i1").state == SNAPSHOT + '\n{"f": 1}'


def test_the_state_can_be_left_out_and_read_by_version(
    store: Store, make_step: StepFactory
) -> None:
    """find_by_todo(with_state=False) skips the state; instance_state refuses another version."""
    store.commit_step(make_step("i1", todos=["i1:a"], state=SNAPSHOT))
    light = store.find_by_todo("i1:a", with_state=False)
    assert light is not None and light.state == "" and light.version == 1
    assert store.instance_state("i1", 1) == SNAPSHOT
    with pytest.raises(ConflictError, match="version 1, not 2"):
        store.instance_state("i1", 2)


def test_a_step_claims_its_first_call_when_nothing_is_ahead(
    store: Store, make_step: StepFactory
) -> None:
    """The head row is written claimed for the worker; later calls of the step stay pending."""
    claim = StepClaim("w1", 30.0)
    store.commit_step(make_step("i1", calls=[(HANDLE, {"n": 1}), (HANDLE, {"n": 2})]), claim=claim)
    (row,) = claim.rows
    stored = store.outbox_row(row.id)
    assert (stored.item, stored.claimed_by, stored.attempts) == ({"n": 1}, "w1", 1)
    assert stored.claim_expires_at == T0 + timedelta(seconds=30)
    assert row == stored
    second = [r for r in store.outbox(status="pending") if r.item == {"n": 2}]
    assert second and second[0].claimed_by is None
    # The claimed row is not handed out again while its lease runs.
    assert [r.item for r in store.claim(worker="w2", limit=10, lease_seconds=30, now=T0)] == []


def test_no_claim_behind_an_undelivered_call(store: Store, make_step: StepFactory) -> None:
    """A step of an instance whose earlier call is still pending claims nothing."""
    store.commit_step(make_step("i1", calls=[(HANDLE, {"n": 1})]))
    claim = StepClaim("w1", 30.0)
    store.commit_step(
        make_step("i1", expected=1, kind="complete", calls=[(HANDLE, {"n": 2})]), claim=claim
    )
    assert claim.rows == []
    ahead = store.claim(worker="w2", limit=10, lease_seconds=30, now=T0)
    assert [r.item for r in ahead] == [{"n": 1}]
    store.mark_delivered([ahead[0].id], worker="w2", now=T0)
    claim = StepClaim("w1", 30.0)
    store.commit_step(
        make_step("i1", expected=2, kind="complete", calls=[(HANDLE, {"n": 3})]), claim=claim
    )
    assert claim.rows == []  # {"n": 2} is still waiting


def test_a_step_that_is_not_committed_claims_nothing(store: Store, make_step: StepFactory) -> None:
    """If the step's transaction rolls back, the claim it asked for is reported empty."""
    claim = StepClaim("w1", 30.0)
    with armed("store.before_commit"), pytest.raises(CrashPointReached):
        store.commit_step(make_step("i1", calls=[(HANDLE, {"n": 1})]), claim=claim)
    assert claim.rows == []
    assert store.outbox() == []


def test_a_large_state_lives_beside_the_instance_row(store: Store, make_step: StepFactory) -> None:
    """A large snapshot is kept out of the instance row (which every step rewrites); reading
    joins it back, and a header found without its snapshot is a conflict, never a half state."""
    big = "ebstate1\n" + '{"snapshot": "' + "x" * 40_000 + '"}'
    store.commit_step(make_step("i1", state=big))
    store.commit_step(_frame_step(make_step, 1, '{"f": 1}'))
    assert store.get_instance("i1").state == big + '\n{"f": 1}'
    with store._db.write() as conn:
        conn.execute(text("DELETE FROM state_frames"))  # what a concurrent rewrite looks like
    with pytest.raises(ConflictError, match="changed while its state was read"):
        store.instance_state("i1", 2)
