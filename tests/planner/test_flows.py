"""The planner over whole process shapes; every step also checks the centre == engine invariant
(see ``sim.Run``)."""

from __future__ import annotations

import pytest

from engine_bridge.facts import Ledger

from .sim import APP, Run, shape, todo

A = todo("A", "T001")
B = todo("B", "T002")
C = todo("C", "T003")
D = todo("D", "T004")
ADD, HANDLE, WITHDRAW = "addTransaction", "taskHandle", "taskWithdraw"


def test_start_with_todos_creates_the_first_todo_and_links_the_rest_to_it() -> None:
    """Two todos ready at start: ONE addTransaction, the second linked to the first."""
    run = Run()
    result = run.step("start", A, B)
    assert shape(result) == [(ADD, "", None, ["A"]), (ADD, "A", None, ["B"])]
    assert result.status is None
    assert run.ledger.started and run.ledger.transaction_id == A.todo_id
    assert run.ledger.last_todo_id == B.todo_id


def test_start_without_todos_sends_nothing_and_leaves_the_transaction_unstarted() -> None:
    """A process that first waits on a timer has nothing to show yet."""
    run = Run()
    result = run.step("start")
    assert result.calls == ()
    assert result.ledger == Ledger()


def test_sequence_is_next_then_end() -> None:
    """A → B → end: the completion of A creates B in next[]; B's completion ends."""
    run = Run()
    run.step("start", A)
    second = run.complete("A", "T001", B, opinion="同意")
    assert shape(second) == [(HANDLE, "A", "next", ["B"])]
    assert second.status == "next"
    assert second.calls[0].item["handleOpinions"] == "同意"
    last = run.complete("B", "T002", finished=True)
    assert shape(last) == [(HANDLE, "B", "end", [])]
    assert last.status == "end"
    assert run.ledger.ended and run.ledger.open == ()


def test_exclusive_gateway_creates_only_the_chosen_branch() -> None:
    """XOR after A picks C: next[] holds C and nothing else."""
    run = Run()
    run.step("start", A)
    result = run.complete("A", "T001", C)
    assert shape(result) == [(HANDLE, "A", "next", ["C"])]


def test_parallel_fork_then_none_until_the_last_branch_reaches_the_join() -> None:
    """Fork creates both branches in one next[]; the first branch done is none, the last next."""
    run = Run()
    run.step("start", A)
    fork = run.complete("A", "T001", B, C)
    assert shape(fork) == [(HANDLE, "A", "next", ["B", "C"])]
    first = run.complete("B", "T002", C)
    assert shape(first) == [(HANDLE, "B", "none", [])]
    assert first.status == "none"
    join = run.complete("C", "T003", D)
    assert shape(join) == [(HANDLE, "C", "next", ["D"])]
    assert [t.todo_id for t in run.ledger.open] == [D.todo_id]
    run.complete("D", "T004", finished=True)


def test_countersign_all_sign_is_none_per_signer_then_next() -> None:
    """ONE todo, three signers: two nones (shares closed), the last signer's call is next."""
    run = Run()
    run.step("start", todo("S", "T1", "T2", "T3"))
    first = run.complete("S", "T2", todo("S", "T1", "T3"))
    assert shape(first) == [(HANDLE, "S", "none", [])]
    held = run.ledger.open[0]
    assert held.handlers == ("T1", "T2", "T3") and held.handled == ("T2",)
    second = run.complete("S", "T1", todo("S", "T3"))
    assert shape(second) == [(HANDLE, "S", "none", [])]
    assert run.ledger.open[0].handled == ("T2", "T1")
    last = run.complete("S", "T3", D)
    assert shape(last) == [(HANDLE, "S", "next", ["D"])]
    assert [t.todo_id for t in run.ledger.open] == [D.todo_id]


def test_countersign_signers_in_another_order_are_the_same_signers() -> None:
    """The engine may list the open signers in another order than the ledger: a share is
    still a share. A signer added or dropped while the todo is open is a bridge bug."""
    run = Run()
    run.step("start", todo("S", "T1", "T2", "T3"))
    reordered = run.complete("S", "T1", todo("S", "T3", "T2"))
    assert shape(reordered) == [(HANDLE, "S", "none", [])]
    assert run.ledger.open[0].open_handlers == ("T2", "T3")
    with pytest.raises(ValueError, match="signers cannot be added to or removed"):
        run.complete("S", "T2", todo("S", "T3", "T4"))


def test_countersign_early_completion_with_next_closes_the_remaining_signers() -> None:
    """2 of 3 signed: the completion condition makes D ready; next closes T3's share too."""
    run = Run()
    run.step("start", todo("S", "T1", "T2", "T3"))
    run.complete("S", "T1", todo("S", "T2", "T3"))
    result = run.complete("S", "T2", D)
    assert shape(result) == [(HANDLE, "S", "next", ["D"])]


def test_countersign_early_completion_with_none_withdraws_the_todo() -> None:
    """Early completion while a parallel branch still runs: none, then withdraw for T3's share."""
    run = Run()
    run.step("start", todo("S", "T1", "T2", "T3"), C)
    run.complete("S", "T1", todo("S", "T2", "T3"), C)
    result = run.complete("S", "T2", C)
    assert shape(result) == [(HANDLE, "S", "none", []), (WITHDRAW, "S", "next", [])]
    withdraw = result.calls[1].item
    assert withdraw["creator"] == "system" and withdraw["next"] == []
    assert result.status == "none"


def test_or_sign_first_completion_moves_on_with_next() -> None:
    """Or-sign todo with two candidates: one completes, next closes the whole todo."""
    run = Run()
    run.step("start", todo("O", "T1", "T2"))
    assert run.centre.log[0].item["handlers"] == "T1,T2"
    result = run.complete("O", "T2", D)
    assert shape(result) == [(HANDLE, "O", "next", ["D"])]


def test_or_sign_completion_with_none_withdraws_the_other_candidates_share() -> None:
    """Or-sign completed while the join waits on another branch: none + withdraw."""
    run = Run()
    run.step("start", todo("O", "T1", "T2"), C)
    result = run.complete("O", "T1", C)
    assert shape(result) == [(HANDLE, "O", "none", []), (WITHDRAW, "O", "next", [])]


def test_single_handler_none_needs_no_withdraw() -> None:
    """A plain todo closed by none has no other share: no withdraw follows."""
    run = Run()
    run.step("start", A, C)
    result = run.complete("A", "T001", C)
    assert shape(result) == [(HANDLE, "A", "none", [])]


def test_group_todo_completed_with_none_closes_with_the_groups_one_share() -> None:
    """The centre counts a handling group as ONE share: a member's none closes a group-only
    todo, so nothing is withdrawn (a withdraw would name a finished todo)."""
    run = Run()
    group_todo = todo("G", groups=("counsellors",))
    run.step("start", group_todo, C)
    assert run.centre.log[0].item["handlingGroup"] == "counsellors"
    assert "handlers" not in run.centre.log[0].item
    result = run.complete("G", "T009", C)
    assert shape(result) == [(HANDLE, "G", "none", [])]


def test_listed_handler_none_withdraws_the_groups_still_open_share() -> None:
    """A todo offered to T001 and a group: T001's none leaves the group's share open, so the
    bridge withdraws it; a group member's none leaves T001's share open, likewise."""
    for who in ("T001", "T009"):
        run = Run()
        run.step("start", todo("G", "T001", groups=("counsellors",)), C)
        result = run.complete("G", who, C)
        assert shape(result) == [(HANDLE, "G", "none", []), (WITHDRAW, "G", "next", [])], who


def test_sequential_signing_carries_each_following_signer_in_next() -> None:
    """依次审批: every signer is a separate todo; each completion creates the following one."""
    run = Run()
    s1, s2, s3 = (todo("S", h, tid=f"S-{h}") for h in ("T1", "T2", "T3"))
    run.step("start", s1)
    assert shape(run.complete("S-T1", "T1", s2)) == [(HANDLE, "S-T1", "next", ["S-T2"])]
    assert shape(run.complete("S-T2", "T2", s3)) == [(HANDLE, "S-T2", "next", ["S-T3"])]
    assert shape(run.complete("S-T3", "T3", finished=True)) == [(HANDLE, "S-T3", "end", [])]


def test_interrupting_timer_withdraws_the_timed_out_todo_with_the_escalation_in_next() -> None:
    """Tick: A cancelled by its boundary timer, E ready: ONE withdraw of A with next=[E]."""
    run = Run()
    run.step("start", A)
    escalation = todo("E", "D001")
    result = run.step("tick", escalation, actor="system")
    assert shape(result) == [(WITHDRAW, "A", "next", ["E"])]
    assert run.ledger.last_todo_id == escalation.todo_id


def test_interrupting_timer_cancelling_two_todos_creates_new_ones_once() -> None:
    """Two todos cancelled at once: the first withdraw carries the new todos, the second none."""
    run = Run()
    run.step("start", A, B)
    escalation = todo("E", "D001")
    result = run.step("tick", escalation)
    assert shape(result) == [(WITHDRAW, "A", "next", ["E"]), (WITHDRAW, "B", "next", [])]


def test_non_interrupting_timer_links_the_new_todo_to_an_open_one() -> None:
    """Tick: A still open, reminder R ready: addTransaction R with previousTaskId A."""
    run = Run()
    run.step("start", A)
    reminder = todo("R", "T001")
    result = run.step("tick", A, reminder)
    assert shape(result) == [(ADD, "A", None, ["R"])]
    assert result.calls[0].item["transTypeCode"] == "leave"


def test_timer_after_a_wait_with_nothing_open_links_to_the_last_todo() -> None:
    """Started, then waiting on a timer with no todo open: the new todo links to the last one."""
    run = Run()
    run.step("start", A, B)
    run.complete("A", "T001", B)
    run.complete("B", "T002")  # now the engine waits on a timer only
    assert run.ledger.open == ()
    result = run.step("tick", C)
    assert shape(result) == [(ADD, "B", None, ["C"])]


def test_timer_before_any_todo_creates_the_first_todo() -> None:
    """Started with only a timer: when it fires, the todos it makes start the transaction."""
    run = Run()
    run.step("start")
    result = run.step("tick", A, B)
    assert shape(result) == [(ADD, "", None, ["A"]), (ADD, "A", None, ["B"])]
    assert run.ledger.transaction_id == A.todo_id


def test_tick_with_no_change_sends_nothing() -> None:
    """A timer that fires without touching user tasks produces no call."""
    run = Run()
    run.step("start", A)
    before = run.ledger
    result = run.step("tick", A)
    assert result.calls == () and result.ledger == before


def test_terminate_end_event_with_another_branch_open_is_end_only() -> None:
    """A reaches a terminate end event while C is open: end alone (it closes C)."""
    run = Run()
    run.step("start", A, C)
    result = run.complete("A", "T001", finished=True)
    assert shape(result) == [(HANDLE, "A", "end", [])]


def test_completion_that_cancels_another_branch_withdraws_it_after_the_handle() -> None:
    """A's completion ends a sub-process holding C, D follows: next[D], then withdraw C."""
    run = Run()
    run.step("start", A, C)
    result = run.complete("A", "T001", D)
    assert shape(result) == [(HANDLE, "A", "next", ["D"]), (WITHDRAW, "C", "next", [])]
    assert [t.todo_id for t in run.ledger.open] == [D.todo_id]


def test_countersign_share_that_also_creates_a_todo_links_it_to_the_countersign() -> None:
    """A signer's none that also makes a todo ready (rare) is followed by a linked add."""
    run = Run()
    run.step("start", todo("S", "T1", "T2"))
    result = run.complete("S", "T1", todo("S", "T2"), D)
    assert shape(result) == [(HANDLE, "S", "none", []), (ADD, "S", None, ["D"])]


def test_cancel_terminates_the_transaction_naming_an_open_todo() -> None:
    """Business cancel: taskTerminate by the person who cancelled; nothing may follow."""
    run = Run()
    run.step("start", A, B)
    result = run.step("cancel", actor="2023001", opinion="申请撤销")
    assert shape(result) == [("taskTerminate", "A", None, [])]
    item = result.calls[0].item
    assert item["creator"] == "2023001" and item["handleOpinions"] == "申请撤销"
    assert run.ledger.ended and run.ledger.open == ()


def test_cancel_while_waiting_on_a_timer_terminates_via_the_last_todo() -> None:
    """Nothing open but the transaction started: the terminate names the last todo."""
    run = Run()
    run.step("start", A, C)
    run.complete("A", "T001", C)
    run.complete("C", "T003")
    result = run.step("cancel", actor="admin")
    assert shape(result) == [("taskTerminate", "C", None, [])]


def test_cancel_before_the_transaction_started_sends_nothing() -> None:
    """No todo was ever created: there is nothing to terminate at the centre."""
    run = Run()
    run.step("start")
    result = run.step("cancel", actor="admin")
    assert result.calls == () and not run.ledger.ended


def test_process_ending_on_tick_with_open_todos_withdraws_with_end() -> None:
    """A timer leads to an end while A and B are open: ONE withdraw end (closes both)."""
    run = Run()
    run.step("start", A, B)
    result = run.step("tick", finished=True)
    assert shape(result) == [(WITHDRAW, "A", "end", [])]
    assert result.calls[0].item == {
        "appId": APP,
        "taskId": A.todo_id,
        "creator": "system",
        "status": "end",
    }


def test_process_ending_on_tick_with_nothing_open_finishes_the_transaction() -> None:
    """Nothing open when the process ends: updateTransaction FINISH by the system account."""
    run = Run()
    run.step("start", A, C)
    run.complete("A", "T001", C)
    run.complete("C", "T003")
    result = run.step("tick", finished=True)
    assert shape(result) == [("todo/updateTransaction", "A", "FINISH", [])]
    assert result.calls[0].item == {
        "transactionId": A.todo_id,
        "status": "FINISH",
        "editAccount": "system",
    }
    assert run.ledger.ended


def test_process_ending_before_any_todo_sends_nothing() -> None:
    """A process that never had a todo finishes without the centre ever hearing of it."""
    run = Run()
    run.step("start")
    result = run.step("tick", finished=True)
    assert result.calls == () and result.ledger == Ledger()
