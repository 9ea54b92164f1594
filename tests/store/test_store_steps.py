"""commit_step and the instance, todo and history queries around it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine_bridge.errors import ConflictError, InvalidDataError, UnknownInstanceError
from engine_bridge.facts import Endpoint, Ledger, LedgerTodo
from engine_bridge.store import StepRecord, Store

StepFactory = Callable[..., StepRecord]
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
ADD = Endpoint.ADD_TRANSACTION
HANDLE = Endpoint.TASK_HANDLE


def test_a_created_instance_reads_back_exactly(store: Store, make_step: StepFactory) -> None:
    """Every field written by the first step comes back, including the ledger and times."""
    step = make_step("i1", todos=["i1:a"], business_key="biz-42", timer=T0 + timedelta(hours=2))
    assert store.commit_step(step) == 1
    got = store.get_instance("i1")
    assert (got.id, got.process_id, got.definition_version) == ("i1", "leave_approval", "v1")
    assert (got.business_key, got.initiator, got.status) == ("biz-42", "2023001", "running")
    assert got.state == '{"spiff": 1}'
    assert got.version == 1
    assert got.ledger == step.ledger
    assert got.next_timer_at == T0 + timedelta(hours=2)
    assert got.created_at == got.updated_at == T0
    assert got.created_at.tzinfo is not None


def test_the_ledger_round_trips_every_field(store: Store, make_step: StepFactory) -> None:
    """Handled shares, groups and transaction links survive storage unchanged."""
    ledger = Ledger(
        open=(
            LedgerTodo("i1:cs", "sign", "会签", ("T1", "T2", "T3"), handled=("T2",)),
            LedgerTodo("i1:grp", "office", "办公室", (), handling_groups=("财务处",)),
        ),
        started=True,
        ended=False,
        last_todo_id="i1:grp",
        transaction_id="i1:first",
    )
    step = make_step("i1")
    store.commit_step(replace(step, ledger=ledger))
    assert store.get_instance("i1").ledger == ledger
    assert [t for _, t in store.open_todos("i1")] == list(ledger.open)


def test_each_update_bumps_the_version(store: Store, make_step: StepFactory) -> None:
    """An update from the current version succeeds and returns the next version."""
    store.commit_step(make_step("i1", todos=["i1:a"]))
    assert store.commit_step(make_step("i1", expected=1, todos=["i1:b"], kind="complete")) == 2
    assert store.commit_step(make_step("i1", expected=2, status="finished", kind="complete")) == 3
    got = store.get_instance("i1")
    assert (got.version, got.status) == (3, "finished")


def test_a_stale_writer_gets_a_conflict_and_changes_nothing(
    store: Store, make_step: StepFactory
) -> None:
    """Two writers computed from version 1: the second one to commit is refused."""
    store.commit_step(make_step("i1", todos=["i1:a"]))
    first = make_step("i1", expected=1, todos=["i1:b"], calls=[(HANDLE, {"n": 1})], key="c1")
    second = make_step("i1", expected=1, todos=["i1:c"], calls=[(HANDLE, {"n": 2})], key="c2")
    store.commit_step(first)
    with pytest.raises(ConflictError, match=r"version 2.*version 1") as caught:
        store.commit_step(second)
    assert caught.value.retryable is True
    assert [t.todo_id for _, t in store.open_todos("i1")] == ["i1:b"]
    assert [r.item for r in store.outbox()] == [{"n": 1}]
    assert store.find_history("c2") is None


def test_concurrent_writers_from_one_version_let_exactly_one_win(
    store: Store, make_step: StepFactory
) -> None:
    """Eight threads race from version 1; one commits, the others see ConflictError."""
    store.commit_step(make_step("i1"))
    results: list[str] = []
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        barrier.wait()
        try:
            store.commit_step(make_step("i1", expected=1, calls=[(HANDLE, {"n": n})]))
            results.append("ok")
        except ConflictError:
            results.append("conflict")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["ok"]
    assert store.get_instance("i1").version == 2
    assert len(store.outbox()) == 1


def test_creating_an_existing_instance_is_a_conflict(store: Store, make_step: StepFactory) -> None:
    """expected_version=None on an id that exists is refused."""
    store.commit_step(make_step("i1"))
    with pytest.raises(ConflictError, match="already exists"):
        store.commit_step(make_step("i1"))


def test_a_business_key_is_unique_per_process(store: Store, make_step: StepFactory) -> None:
    """A second instance with the same key is refused; another process may reuse the key."""
    store.commit_step(make_step("i1", business_key="biz-1"))
    with pytest.raises(ConflictError, match="biz-1"):
        store.commit_step(make_step("i2", business_key="biz-1"))
    store.commit_step(make_step("i3", business_key="biz-1", process_id="room_booking"))
    store.commit_step(make_step("i4"))  # no key: never conflicts
    store.commit_step(make_step("i5"))
    found = store.find_by_key("leave_approval", "biz-1")
    assert found is not None and found.id == "i1"
    assert store.find_by_key("leave_approval", "biz-2") is None


def test_updating_an_unknown_instance_says_so(store: Store, make_step: StepFactory) -> None:
    """An update of an id that was never created is an UnknownInstanceError."""
    with pytest.raises(UnknownInstanceError, match="'ghost'"):
        store.commit_step(make_step("ghost", expected=1))
    with pytest.raises(UnknownInstanceError):
        store.get_instance("ghost")


def test_a_duplicate_idempotency_key_fails_midway_and_leaves_nothing(
    store: Store, make_step: StepFactory
) -> None:
    """The history insert is last; when it fails, state, todos and outbox stay as before."""
    store.commit_step(make_step("i1", todos=["i1:a"], calls=[(ADD, {"n": 1})], key="k1"))
    before = store.get_instance("i1")
    bad = make_step(
        "i1", expected=1, todos=["i1:b"], calls=[(HANDLE, {"n": 2})], key="k1", state="new"
    )
    with pytest.raises(ConflictError, match="idempotency key 'k1'"):
        store.commit_step(bad)
    assert store.get_instance("i1") == before
    assert [t.todo_id for _, t in store.open_todos("i1")] == ["i1:a"]
    assert [r.item for r in store.outbox()] == [{"n": 1}]
    assert [h.seq for h in store.history("i1")] == [1]
    # the numbers the failed step would have used are still free
    assert store.commit_step(make_step("i1", expected=1, calls=[(HANDLE, {"n": 3})])) == 2
    assert [(r.seq, r.item) for r in store.outbox()] == [(1, {"n": 1}), (2, {"n": 3})]


def test_a_todo_id_of_another_instance_fails_midway_and_leaves_nothing(
    store: Store, make_step: StepFactory
) -> None:
    """The instance update ran before the todo index refused the step; it is rolled back."""
    store.commit_step(make_step("i1", todos=["shared"]))
    store.commit_step(make_step("i2"))
    with pytest.raises(ConflictError, match="'shared' already belongs to instance 'i1'"):
        store.commit_step(make_step("i2", expected=1, todos=["shared"], state="changed"))
    got = store.get_instance("i2")
    assert (got.version, got.state) == (1, '{"spiff": 1}')
    found = store.find_by_todo("shared")
    assert found is not None and found.id == "i1"


def test_data_that_is_not_json_is_refused_before_anything_is_written(
    store: Store, make_step: StepFactory
) -> None:
    """A call item that cannot be JSON is an InvalidDataError naming the call."""
    store.commit_step(make_step("i1"))
    with pytest.raises(InvalidDataError, match=r"call 1 \(taskHandle\)"):
        store.commit_step(make_step("i1", expected=1, calls=[(HANDLE, {"when": object()})]))
    assert store.get_instance("i1").version == 1
    assert store.outbox() == []


def test_the_todo_index_keeps_closed_todos_findable(store: Store, make_step: StepFactory) -> None:
    """A todo that left the ledger is no longer open but still maps to its instance."""
    store.commit_step(make_step("i1", todos=["i1:a"]))
    store.commit_step(make_step("i2", todos=["i2:a", "i2:b"]))
    store.commit_step(make_step("i1", expected=1, todos=["i1:b", "i1:c"], kind="complete"))
    assert [(i, t.todo_id) for i, t in store.open_todos()] == [
        ("i1", "i1:b"),
        ("i1", "i1:c"),
        ("i2", "i2:a"),
        ("i2", "i2:b"),
    ]
    closed = store.find_by_todo("i1:a")
    assert closed is not None and closed.id == "i1"
    assert store.find_by_todo("nope") is None
    # a todo can come back into the ledger (reopened): it is open again, in ledger order
    store.commit_step(make_step("i1", expected=2, todos=["i1:c", "i1:a"], kind="complete"))
    assert [t.todo_id for _, t in store.open_todos("i1")] == ["i1:c", "i1:a"]


def test_history_is_numbered_per_instance_and_found_by_key(
    store: Store, make_step: StepFactory
) -> None:
    """Each step appends one entry with the next seq; the key finds it again."""
    store.commit_step(make_step("i1", key="start-1", payload={"data": {"days": 3}}))
    store.commit_step(make_step("i2"))
    at = T0 + timedelta(minutes=5)
    store.commit_step(make_step("i1", expected=1, kind="complete", key="done-1", at=at))
    entries = store.history("i1")
    assert [(h.seq, h.kind, h.idempotency_key) for h in entries] == [
        (1, "start", "start-1"),
        (2, "complete", "done-1"),
    ]
    assert entries[0].payload == {"data": {"days": 3}}
    assert [h.seq for h in store.history("i2")] == [1]
    found = store.find_history("done-1")
    assert found is not None and (found.instance_id, found.seq, found.at) == ("i1", 2, at)
    assert store.get_instance("i1").updated_at == at
    assert store.history("ghost") == []


def test_due_instances_lists_running_instances_whose_timer_is_due(
    store: Store, make_step: StepFactory
) -> None:
    """Earliest due first; not yet due, timerless and finished instances are left out."""
    store.commit_step(make_step("late", timer=T0 + timedelta(hours=2)))
    store.commit_step(make_step("early", timer=T0 + timedelta(hours=1)))
    store.commit_step(make_step("future", timer=T0 + timedelta(days=1)))
    store.commit_step(make_step("none"))
    store.commit_step(make_step("done", timer=T0, status="finished"))
    now = T0 + timedelta(hours=3)
    assert store.due_instances(now) == ["early", "late"]
    assert store.due_instances(now, limit=1) == ["early"]
    assert store.due_instances(T0) == []


def test_list_instances_filters_by_status(store: Store, make_step: StepFactory) -> None:
    """Listing returns instances in creation order, optionally of one status."""
    store.commit_step(make_step("a", at=T0))
    store.commit_step(make_step("b", at=T0 + timedelta(seconds=1), status="cancelled"))
    store.commit_step(make_step("c", at=T0 + timedelta(seconds=2)))
    assert [r.id for r in store.list_instances()] == ["a", "b", "c"]
    assert [r.id for r in store.list_instances(status="running")] == ["a", "c"]
    assert [r.id for r in store.list_instances(limit=1)] == ["a"]


def test_an_unknown_status_is_refused(store: Store, make_step: StepFactory) -> None:
    """A status outside running/finished/cancelled/incident never reaches the database."""
    with pytest.raises(Exception, match="unknown instance status 'paused'"):
        store.commit_step(make_step("i1", status="paused"))
    assert store.list_instances() == []


def test_naive_datetimes_are_refused(store: Store, make_step: StepFactory) -> None:
    """A time without a zone would be misread; the store refuses it."""
    with pytest.raises(Exception, match="naive datetime"):
        store.commit_step(make_step("i1", at=datetime(2026, 1, 1, 8, 0)))
    assert store.list_instances() == []
