"""The planner's guards and the exact bodies it writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from engine_bridge.facts import Endpoint, Ledger, StepFacts, Todo, TransactionInfo
from engine_bridge.planner import plan
from engine_bridge.wire import creation_object, format_time

from .sim import APP, INSTANCE, TRANSACTION, Run, todo

AT = datetime(2026, 3, 2, 16, 30, 5, tzinfo=UTC)  # 00:30:05 next day in Shanghai


def facts(action: str = "complete", *open_todos: Todo, **kw: object) -> StepFacts:
    fields: dict[str, object] = {
        "action": action,
        "instance_id": INSTANCE,
        "transaction": TRANSACTION,
        "open_todos": open_todos,
        "finished": False,
        "at": AT,
    }
    fields.update(kw)
    return StepFacts(**fields)  # type: ignore[arg-type]


def started(*todos: Todo) -> Ledger:
    run = Run()
    run.step("start", *todos)
    return run.ledger


# --- guards ------------------------------------------------------------------------------------


def test_completing_a_todo_the_ledger_does_not_hold_names_it_and_the_handler() -> None:
    """A completion of an unknown todo is a bridge bug: ValueError naming todo and handler."""
    ledger = started(todo("A", "T001"))
    bad = facts(completed_todo_id=f"{INSTANCE}:ZZZ", handler="T001")
    with pytest.raises(ValueError, match=r"inst-1:ZZZ.*'T001'.*not open"):
        plan(bad, ledger, app_id=APP)


def test_completing_as_someone_without_an_open_share_is_refused() -> None:
    """A handler who is not (or no longer) a handler of the todo is a bridge bug."""
    ledger = started(todo("A", "T001"))
    bad = facts(completed_todo_id=f"{INSTANCE}:A", handler="T999")
    with pytest.raises(ValueError, match=r"'T999'.*inst-1:A"):
        plan(bad, ledger, app_id=APP)


def test_a_countersign_signer_cannot_sign_twice() -> None:
    """After T1's none, T1 has no open share left on the todo."""
    run = Run()
    run.step("start", todo("S", "T1", "T2"))
    run.complete("S", "T1", todo("S", "T2"))
    again = facts("complete", todo("S", "T2"), completed_todo_id=f"{INSTANCE}:S", handler="T1")
    with pytest.raises(ValueError, match="'T1' has no open share"):
        plan(again, run.ledger, app_id=APP)


def test_a_complete_without_todo_or_handler_is_refused() -> None:
    """The engine layer must say what was completed and by whom."""
    with pytest.raises(ValueError, match="completed_todo_id and handler"):
        plan(facts(), started(todo("A", "T001")), app_id=APP)


def test_countersign_signers_changing_under_an_open_todo_is_refused() -> None:
    """The centre cannot add a signer to an open todo: the plan refuses instead of drifting."""
    ledger = started(todo("S", "T1", "T2"))
    odd = facts("complete", todo("S", "T2", "T3"), completed_todo_id=f"{INSTANCE}:S", handler="T1")
    with pytest.raises(ValueError, match="signers cannot be added"):
        plan(odd, ledger, app_id=APP)


def test_finished_facts_with_open_todos_are_refused() -> None:
    """A finished process waits on nothing; saying otherwise is an engine-layer bug."""
    with pytest.raises(ValueError, match="finished yet list open todos"):
        plan(facts("tick", todo("A", "T001"), finished=True), started(), app_id=APP)


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown step action 'pause'"):
        plan(facts("pause"), Ledger(), app_id=APP)


def test_a_todo_without_handlers_or_groups_is_refused_naming_its_node() -> None:
    """The centre needs handlers or a handling group; the error names the node to fix."""
    with pytest.raises(ValueError, match=r"node 'A'.*'handlers' or 'handlingGroup'"):
        plan(facts("start", todo("A")), Ledger(), app_id=APP)


@pytest.mark.parametrize(
    ("action", "kw"),
    [
        ("complete", {"completed_todo_id": f"{INSTANCE}:A", "handler": "T001"}),
        ("tick", {}),
        ("tick", {"finished": True}),
        ("cancel", {"actor": "admin"}),
        ("start", {}),
    ],
)
def test_an_ended_ledger_gets_no_call_whatever_the_step(action: str, kw: dict[str, object]) -> None:
    """Once the transaction ended, nothing may name it again."""
    run = Run()
    run.step("start", todo("A", "T001"))
    run.step("cancel", actor="admin")
    ended = run.ledger
    result = plan(facts(action, todo("B", "T002"), **kw), ended, app_id=APP)
    assert result.calls == () and result.ledger == ended and result.status is None


# --- bodies ------------------------------------------------------------------------------------


def test_first_todo_carries_every_form_a_field_with_both_mobile_spellings() -> None:
    """The first todo: form A with transcationName (sic) and mViewUrl == mviewUrl."""
    transaction = replace(
        TRANSACTION,
        summary=("事由|探亲",),
        urls={"viewUrl": "https://biz/v/1", "mViewUrl": "https://m.biz/v/1"},
    )
    first = Todo(
        todo_id="i:A",
        node_id="A",
        node_name="辅导员审批",
        handlers=("T1", "T2"),
        task_name="张三的请假",
        summary=("天数|3", "类型|事假"),
        urls={"handleUrl": "https://biz/h/A", "mhandleUrl": "https://m.biz/h/A"},
    )
    result = plan(
        replace(facts("start", first), transaction=transaction),
        Ledger(),
        app_id=APP,
        actions=[{"name": "撤回", "type": "REVOKE", "optType": 0}],
    )
    assert [c.endpoint for c in result.calls] == [Endpoint.ADD_TRANSACTION]
    assert result.calls[0].item == {
        "appId": APP,
        "taskId": "i:A",
        "taskName": "张三的请假",
        "nodeId": "A",
        "nodeName": "辅导员审批",
        "handlers": "T1,T2",
        "initiator": "2023001",
        "initiatorName": "张三",
        "transTypeCode": "leave",
        "transTypeName": "请假",
        "autoCreateTransType": True,
        "transcationName": "张三的请假申请",
        "serialNumber": "LV-42",
        "taskSummary": ["天数|3", "类型|事假"],
        "transSummary": ["事由|探亲"],
        "viewUrl": "https://biz/v/1",
        "handleUrl": "https://biz/h/A",
        "mViewUrl": "https://m.biz/v/1",
        "mviewUrl": "https://m.biz/v/1",
        "mHandleUrl": "https://m.biz/h/A",
        "mhandleUrl": "https://m.biz/h/A",
        "actions": [{"name": "撤回", "type": "REVOKE", "optType": 0}],
    }


def test_empty_optional_fields_are_left_out() -> None:
    """No None or "" noise: a bare todo sends only what it has."""
    bare = TransactionInfo(
        trans_type_code="t", trans_type_name="T", transaction_name="n", initiator="u1"
    )
    item = creation_object(todo("A", "T001"), bare, app_id=APP)
    assert item == {
        "appId": APP,
        "taskId": f"{INSTANCE}:A",
        "taskName": "节点 A",
        "nodeId": "A",
        "nodeName": "节点 A",
        "handlers": "T001",
        "initiator": "u1",
        "transTypeCode": "t",
        "transTypeName": "T",
        "autoCreateTransType": True,
        "transcationName": "n",
    }


def test_node_urls_override_process_urls_and_summary_is_cut_to_five_pairs() -> None:
    """The more specific setting wins; the centre shows at most five summary pairs."""
    transaction = replace(TRANSACTION, urls={"viewUrl": "p", "handleUrl": "p"})
    node = replace(
        todo("A", "T1"), urls={"viewUrl": "n"}, summary=tuple(f"k{i}|v" for i in range(7))
    )
    item = creation_object(node, transaction, app_id=APP)
    assert (item["viewUrl"], item["handleUrl"]) == ("n", "p")
    assert item["taskSummary"] == [f"k{i}|v" for i in range(5)]


def test_handle_body_has_time_in_the_campus_zone_and_no_empty_opinion() -> None:
    """handleTime is yyyy-MM-dd HH:mm:ss in Asia/Shanghai; an empty opinion is not sent."""
    ledger = started(todo("A", "T001"), todo("C", "T003"))
    step = facts("complete", todo("C", "T003"), completed_todo_id=f"{INSTANCE}:A", handler="T001")
    result = plan(step, ledger, app_id=APP)
    assert result.calls[0].item == {
        "appId": APP,
        "previousTaskId": f"{INSTANCE}:A",
        "handler": "T001",
        "handleTime": "2026-03-03 00:30:05",
        "status": "none",
    }


def test_next_handle_carries_creation_objects_and_previous_actions() -> None:
    """next[] items are full creation objects; previousActions go on the done item."""
    ledger = started(todo("A", "T001"))
    step = facts(
        "complete",
        todo("B", "T002"),
        completed_todo_id=f"{INSTANCE}:A",
        handler="T001",
        opinion="同意",
    )
    revoke = {"name": "撤回", "type": "REVOKE", "times": 1}
    result = plan(step, ledger, app_id=APP, previous_actions=[revoke])
    item = result.calls[0].item
    assert item["status"] == "next" and item["handleOpinions"] == "同意"
    assert item["previousActions"] == [revoke]
    assert item["next"] == [creation_object(todo("B", "T002"), TRANSACTION, app_id=APP)]
    assert "previousTaskId" not in item["next"][0]


def test_withdraw_and_terminate_bodies_use_the_configured_accounts_and_zone() -> None:
    """System withdraws name the system account; times follow the tz argument."""
    ledger = started(todo("A", "T001"))
    tick = facts("tick", todo("E", "D1"))
    result = plan(tick, ledger, app_id=APP, system_account="bridge-bot", tz=UTC)
    item = result.calls[0].item
    assert (item["creator"], item["createTime"], item["status"]) == (
        "bridge-bot",
        "2026-03-02 16:30:05",
        "next",
    )
    cancel = plan(facts("cancel"), ledger, app_id=APP, system_account="bridge-bot")
    assert cancel.calls[0].item == {
        "appId": APP,
        "taskId": f"{INSTANCE}:A",
        "creator": "bridge-bot",
        "createTime": "2026-03-03 00:30:05",
    }


def test_format_time_reads_a_naive_datetime_as_utc() -> None:
    naive = datetime(2026, 1, 1, 23, 59, 59)
    assert format_time(naive, timezone(timedelta(hours=8))) == "2026-01-02 07:59:59"


def test_plan_does_not_change_its_inputs_and_repeats_exactly() -> None:
    """Pure: the same facts and ledger give an equal plan; the ledger given is untouched."""
    ledger = started(todo("A", "T001"))
    snapshot = replace(ledger)
    step = facts("complete", todo("B", "T002"), completed_todo_id=f"{INSTANCE}:A", handler="T001")
    assert plan(step, ledger, app_id=APP) == plan(step, ledger, app_id=APP)
    assert ledger == snapshot
