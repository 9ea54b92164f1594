"""Idempotency keys: a key names one action. The same action sent again, even while the first
is committing, gets the first outcome; a different action under a used key is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from engine_bridge import Bridge
from engine_bridge.errors import InputError
from tests.services.kit import Harness, opened
from tests.test_bridge_message import PAYMENT

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
YES = {"approved": True}
LEAVE = {"applicant_name": "张三", "reason": "r", "counselor": "T001", "dean": "D001", "days": 5}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    files = {p.name: p.read_text(encoding="utf-8") for p in WORKFLOWS.glob("*.bpmn")}
    with opened(tmp_path, {**files, "payment.bpmn": PAYMENT}) as h:
        yield h


def _first_lookup_misses_then(bridge: Bridge, meanwhile: Callable[[], Any]) -> None:
    """``bridge`` looks its key up, finds nothing, and only then does ``meanwhile`` (another
    caller committing the same keyed action) happen: the interleaving of two resends."""
    original = bridge.store.find_history
    calls = {"n": 0}

    def racing(key: str) -> Any:
        calls["n"] += 1
        found = original(key)
        if calls["n"] == 1:
            meanwhile()
        return found

    bridge.store.find_history = racing  # type: ignore[method-assign]


def test_a_completion_resent_while_the_first_commits_gets_the_first_outcome(
    harness: Harness,
) -> None:
    first, second = harness.bridge(), harness.bridge()
    inst = first.start("leave_approval", initiator="2023001", data=LEAVE)
    todo = inst.todos[0].task_id
    answers: list[Any] = []
    _first_lookup_misses_then(
        second, lambda: answers.append(first.complete(todo, handler="T001", data=YES, key="req-1"))
    )
    again = second.complete(todo, handler="T001", data=YES, key="req-1")
    assert again.duplicate and not answers[0].duplicate
    assert again.next_nodes == answers[0].next_nodes == ("dean_review",)
    harness.assert_in_step(first, inst.id)
    assert [e.kind for e in first.history(inst.id)] == ["start", "complete"]


def test_a_start_resent_while_the_first_commits_gets_the_first_instance(
    harness: Harness,
) -> None:
    """Two requests starting the same business key: the one that loses the race answers
    with the instance the other committed (it raised ConflictError)."""
    first, second = harness.bridge(), harness.bridge()
    original = second.store.find_by_key
    answers: list[Any] = []

    def racing(process_id: str, key: str) -> Any:
        found = original(process_id, key)
        if not answers:
            answers.append(first.start(process_id, initiator="2023001", data=LEAVE, key=key))
        return found

    second.store.find_by_key = racing  # type: ignore[method-assign]
    again = second.start("leave_approval", initiator="2023001", data=LEAVE, key="biz-7")
    assert again.duplicate and not answers[0].duplicate
    assert again.id == answers[0].id
    assert [t.task_id for t in again.todos] == [t.task_id for t in answers[0].todos]
    assert len(first.store.list_instances()) == 1
    harness.assert_in_step(first, again.id)


def test_a_message_resent_while_the_first_commits_gets_the_first_outcome(
    harness: Harness,
) -> None:
    first, second = harness.bridge(), harness.bridge()
    inst = first.start("payment", initiator="2023001", data={"clerk": "C001"})
    first.complete(inst.todos[0].task_id, handler="T001")
    answers: list[Any] = []
    _first_lookup_misses_then(
        second, lambda: answers.append(first.message(inst.id, "paid", key="pay-1"))
    )
    again = second.message(inst.id, "paid", key="pay-1")
    assert again.duplicate and again.next_nodes == answers[0].next_nodes == ("collect",)
    harness.assert_in_step(first, inst.id)


def test_a_used_key_is_refused_for_another_todo_or_instance_and_nothing_changes(
    harness: Harness,
) -> None:
    bridge = harness.bridge()
    one = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    two = bridge.start("leave_approval", initiator="2023002", data=LEAVE)
    bridge.complete(one.todos[0].task_id, handler="T001", data=YES, key="req-1")
    with pytest.raises(InputError, match=r"key 'req-1' was already used .* with task_id"):
        bridge.complete(two.todos[0].task_id, handler="T001", data=YES, key="req-1")
    assert [t.node_id for t in bridge.todos(two.id)] == ["counselor_review"]
    # Within one instance too: the dean's todo under the counselor's key.
    (dean,) = bridge.todos(one.id)
    with pytest.raises(InputError, match="already used"):
        bridge.complete(dean.task_id, handler="D001", data=YES, key="req-1")
    assert [t.node_id for t in bridge.todos(one.id)] == ["dean_review"]
    harness.assert_in_step(bridge, one.id)
    harness.assert_in_step(bridge, two.id)


def test_a_used_key_is_refused_for_another_signer_or_another_message(harness: Harness) -> None:
    bridge = harness.bridge()
    inst = bridge.start(
        "countersign_all",
        initiator="2023001",
        data={"title": "t", "signers": ["S1", "S2"], "archivist": "A001"},
    )
    todo = inst.todos[0].task_id
    bridge.complete(todo, handler="S1", data={"signature": "同意"}, key="sig")
    with pytest.raises(InputError, match="with handler 'S1', not 'S2'"):
        bridge.complete(todo, handler="S2", data={"signature": "同意"}, key="sig")
    assert bridge.complete(todo, handler="S1", data={"signature": "同意"}, key="sig").duplicate
    with pytest.raises(InputError, match="with other data"):
        bridge.complete(todo, handler="S1", data={"signature": "驳回"}, key="sig")
    with pytest.raises(InputError, match="with opinion ''"):
        bridge.complete(todo, handler="S1", data={"signature": "同意"}, opinion="x", key="sig")
    pay = bridge.start("payment", initiator="2023001", data={"clerk": "C001"})
    bridge.complete(pay.todos[0].task_id, handler="T001")
    bridge.message(pay.id, "paid", key="m-1")
    with pytest.raises(InputError, match="with name 'paid', not 'refund'"):
        bridge.message(pay.id, "refund", key="m-1")
    with pytest.raises(InputError, match="with other data"):
        bridge.message(pay.id, "paid", data={"receipt": "R-2"}, key="m-1")
    assert bridge.message(pay.id, "paid", key="m-1").duplicate


@pytest.mark.parametrize(
    "data",
    [
        {**YES, "x": (1, 2)},
        {**YES, "x": {1: "a", "b": 2}},
        {**YES, "x": {1: "a", 2: "b"}},
        MappingProxyType({**YES, "x": 1}),
    ],
    ids=["tuple", "mixed-keys", "int-keys", "mapping-proxy"],
)
def test_a_resend_with_the_same_data_is_a_duplicate_however_the_data_is_typed(
    harness: Harness, data: Any
) -> None:
    """The data is compared as the history stored it (JSON: tuples become lists, keys text),
    so a resend of the very same request is never refused nor fails."""
    bridge = harness.bridge()
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    todo = inst.todos[0].task_id
    first = bridge.complete(todo, handler="T001", data=data, key="typed")
    again = bridge.complete(todo, handler="T001", data=data, key="typed")
    assert again.duplicate and again.next_nodes == first.next_nodes
