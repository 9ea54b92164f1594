"""The step's statements run on the driver: what they write reads back the same through
SQLAlchemy, and the todo index follows the ledger whether or not the caller passes the
ledger it started from. Runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import text

from engine_bridge.errors import ConflictError
from engine_bridge.facts import Endpoint, Ledger, LedgerTodo
from engine_bridge.store import StepRecord, Store
from engine_bridge.store.driver import Statement
from engine_bridge.store.outbox import StepClaim

StepFactory = Callable[..., StepRecord]
T0 = datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=UTC)


def _rows(store: Store, query: str) -> list[tuple[object, ...]]:
    with store._db.read() as conn:
        return [tuple(row) for row in conn.execute(text(query))]


def _signers(todo_id: str, handled: tuple[str, ...]) -> LedgerTodo:
    return LedgerTodo(
        todo_id=todo_id,
        node_id="sign",
        node_name="会签",
        handlers=("S1", "S2", "S3"),
        handled=handled,
    )


def test_the_record_without_state_equals_the_full_record_but_for_the_state(
    store: Store, make_step: StepFactory
) -> None:
    step = make_step("i1", todos=["i1:a"], business_key="k", timer=T0 + timedelta(minutes=5))
    store.commit_step(replace(step, history=replace(step.history, at=T0)))
    full = store.get_instance("i1")
    light = store.find_by_todo("i1:a", with_state=False)
    assert light is not None and light.state == ""
    assert replace(light, state=full.state) == full
    assert light.created_at == T0 and light.created_at.tzinfo is not None
    assert light.next_timer_at == T0 + timedelta(minutes=5)


def test_a_known_ledger_of_the_version_found_is_used_instead_of_the_stored_one(
    store: Store, make_step: StepFactory
) -> None:
    """``known_ledger`` is asked for the version the todo's instance is at; what it gives is
    the record's ledger, and when it gives None the stored ledger is read as before."""
    store.commit_step(make_step("i1", todos=["i1:a"]))
    stored = store.get_instance("i1")
    held = Ledger(open=(_signers("i1:a", ("S1",)),), started=True)  # differs from the stored
    asked: list[tuple[str, int]] = []

    def holding(instance_id: str, version: int) -> Ledger | None:
        asked.append((instance_id, version))
        return held

    found = store.find_by_todo("i1:a", with_state=False, known_ledger=holding)
    assert asked == [("i1", stored.version)]
    assert found is not None and found.ledger is held
    assert replace(found, ledger=stored.ledger, state=stored.state) == stored
    missed = store.find_by_todo("i1:a", with_state=False, known_ledger=lambda i, v: None)
    assert missed is not None and missed.ledger == stored.ledger
    assert store.find_by_todo("nope", with_state=False, known_ledger=holding) is None
    assert len(asked) == 1  # an unknown todo asks nothing


def test_a_frame_step_writes_a_changed_status_or_timer_and_keeps_unchanged_ones(
    store: Store, make_step: StepFactory
) -> None:
    """A frame step leaves the due-timer index alone when status and timer stay; when either
    changes, or the version moved, the step still writes it or is refused as before."""
    state = "ebstate1\n" + "{}"
    store.commit_step(make_step("i1", todos=["i1:a"], state=state, timer=T0))

    def frame_step(expected: int, **changes: object) -> StepRecord:
        step = make_step("i1", expected=expected, kind="complete", todos=["i1:a"])
        return replace(step, state="", state_frame="{}", **{"next_timer_at": T0, **changes})

    assert store.commit_step(frame_step(1)) == 2
    assert store.get_instance("i1").next_timer_at == T0
    later = T0 + timedelta(hours=1)
    assert store.commit_step(frame_step(2, next_timer_at=later)) == 3
    assert store.get_instance("i1").next_timer_at == later
    assert store.commit_step(frame_step(3, next_timer_at=None, status="incident")) == 4
    moved = store.get_instance("i1")
    assert (moved.status, moved.next_timer_at, moved.version) == ("incident", None, 4)
    assert store.commit_step(frame_step(4, next_timer_at=None, status="incident")) == 5
    with pytest.raises(ConflictError, match="at version 5"):
        store.commit_step(frame_step(4, next_timer_at=None, status="incident"))
    assert store.get_instance("i1").state.count("\n") == 5  # the snapshot and four frames


def test_a_todo_that_stays_open_is_written_only_when_it_moves(
    store: Store, make_step: StepFactory
) -> None:
    """A countersign share leaves the todo's index row as it was opened (its shares are the
    ledger's, which ``open_todos`` reads); a todo that moves in the ledger gets its place."""
    before = Ledger(open=(_signers("i1:sign", ()),), started=True)
    store.commit_step(replace(make_step("i1"), ledger=before))
    opened = _rows(store, "SELECT todo FROM todos WHERE todo_id = 'i1:sign'")
    after = Ledger(open=(_signers("i1:sign", ("S1",)),), started=True)
    step = make_step("i1", expected=1, kind="complete")
    store.commit_step(replace(step, ledger=after, ledger_before=before))
    assert _rows(store, "SELECT todo FROM todos WHERE todo_id = 'i1:sign'") == opened
    assert [t for _, t in store.open_todos("i1")] == list(after.open)
    moved = Ledger(open=(_signers("i1:x", ()), _signers("i1:sign", ("S1",))), started=True)
    step = make_step("i1", expected=2, kind="complete")
    store.commit_step(replace(step, ledger=moved, ledger_before=after))
    rows = _rows(store, "SELECT todo_id, position FROM todos WHERE open = TRUE ORDER BY position")
    assert [(str(t), int(p)) for t, p in rows] == [("i1:x", 0), ("i1:sign", 1)]
    assert [t for _, t in store.open_todos()] == list(moved.open)


def test_a_moved_todo_the_index_has_closed_is_opened_again(
    store: Store, make_step: StepFactory
) -> None:
    """Should the index have a todo closed that the previous ledger had open, the step that
    moves it opens it again rather than leaving it out of the open todos."""
    first = Ledger(open=(_signers("i1:sign", ()),), started=True)
    store.commit_step(replace(make_step("i1"), ledger=first))
    store.commit_step(replace(make_step("i1", expected=1, kind="complete"), ledger=Ledger()))
    assert store.open_todos("i1") == []  # closed in the index
    again = Ledger(open=(_signers("i1:x", ()), _signers("i1:sign", ("S1",))), started=True)
    step = make_step("i1", expected=2, kind="complete")
    store.commit_step(replace(step, ledger=again, ledger_before=first))  # claims it was open
    rows = store.open_todos("i1")
    assert [t for _, t in rows] == list(again.open)


@pytest.mark.parametrize("pass_before", [True, False])
def test_the_todo_index_follows_the_ledger_with_or_without_the_previous_one(
    store: Store, make_step: StepFactory, pass_before: bool
) -> None:
    first = make_step("i1")
    ledgers = [
        Ledger(open=(_signers("i1:sign", ()),), started=True),
        Ledger(open=(_signers("i1:sign", ("S1",)),), started=True),
        Ledger(open=(_signers("i1:sign", ("S1",)), _signers("i1:x", ())), started=True),
        Ledger(open=(_signers("i1:x", ("S2",)),), started=True),
        Ledger(open=(_signers("i1:x", ("S2",)), _signers("i1:sign", ("S1", "S3"))), started=True),
    ]
    store.commit_step(replace(first, ledger=ledgers[0]))
    for version, (before, after) in enumerate(pairwise(ledgers), 1):
        step = replace(
            make_step("i1", expected=version, kind="complete"),
            ledger=after,
            ledger_before=before if pass_before else None,
        )
        store.commit_step(step)
        assert [t for _, t in store.open_todos("i1")] == list(after.open)
        assert store.get_instance("i1").ledger == after
    closed = store.find_by_todo("i1:sign")
    assert closed is not None and closed.id == "i1"


def test_a_claimed_head_row_reads_back_as_the_claim_reported_it(
    store: Store, make_step: StepFactory
) -> None:
    """The row written already claimed inside the step equals what the outbox reads back."""
    claim = StepClaim(worker="w1", lease_seconds=30)
    step = make_step(
        "i1",
        todos=["i1:a"],
        calls=[(Endpoint.ADD_TRANSACTION, {"n": 1}), (Endpoint.TASK_HANDLE, {"n": "二"})],
    )
    store.commit_step(replace(step, history=replace(step.history, at=T0)), claim=claim)
    (claimed,) = claim.rows
    head, second = store.outbox(instance_id="i1")
    assert head == claimed
    assert head.claim_expires_at == T0 + timedelta(seconds=30)
    assert (second.item, second.attempts, second.claimed_by) == ({"n": "二"}, 0, None)
    store.mark_delivered([head.id], worker="w1", now=T0, response={"ok": True})
    done = store.outbox_row(head.id)
    assert (done.status, done.delivered_at, done.response) == ("delivered", T0, {"ok": True})


def test_statements_keep_one_text_per_driver_parameter_style() -> None:
    statement = Statement("SELECT a FROM t\n  WHERE b = :b AND c = :c_2 AND d = 'x'")
    assert statement.sqlite == "SELECT a FROM t WHERE b = :b AND c = :c_2 AND d = 'x'"
    assert statement.postgres == "SELECT a FROM t WHERE b = %(b)s AND c = %(c_2)s AND d = 'x'"
