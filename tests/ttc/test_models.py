"""The wire models: the documented example bodies round-trip, and requests are strict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from engine_bridge.ttc.models import (
    ActionButton,
    AddTaskItem,
    DeleteTaskItem,
    Envelope,
    HandleTaskItem,
    NewTask,
    TaskHandleItem,
    TaskTerminateItem,
    TaskWithdrawItem,
    TokenRequest,
    TokenResponse,
    UpdateTransactionItem,
    UrgeRequest,
    WireModel,
)

APP = "GzqhyfpMLSEexyO78bDgO-UWlK6PwOyAE"

# The example bodies of poa-api.md (§4-§5), one element each, with the documented field names
# and example values. Where the notes only list field names, plausible values are filled in.
ADD_TRANSACTION_FIRST = {
    "actions": [
        {
            "name": "撤回",
            "url": "https://biz.test/revoke",
            "method": "post",
            "optType": 0,
            "type": "REVOKE",
            "allowMerge": 0,
        }
    ],
    "appId": APP,
    "autoCreateTransType": True,
    "canDelegate": 0,
    "handlers": "T001,T002",
    "handlingGroup": "",
    "initiator": "2023001",
    "initiatorName": "张三",
    "nodeId": "NODE0001",
    "nodeName": "节点1",
    "serialNumber": "NUM0001",
    "taskId": "TASK0001",
    "taskName": "请假审批",
    "taskSummary": ["请假天数|3", "事由|探亲"],
    "timeOut": 0,
    "transTypeCode": "leave",
    "transTypeName": "请假",
    "transcationName": "张三的请假申请",
    "viewUrl": "https://biz.test/view/1",
    "handleUrl": "https://biz.test/handle/1",
    "mHandleUrl": "https://m.biz.test/handle/1",
    "mViewUrl": "https://m.biz.test/view/1",
    "mhandleUrl": "https://m.biz.test/handle/1",
    "mviewUrl": "https://m.biz.test/view/1",
}
ADD_TRANSACTION_LINKED = {
    "previousTaskId": "TASK0001",
    "appId": APP,
    "handlers": "T003",
    "initiator": "2023001",
    "nodeId": "NODE0002",
    "nodeName": "节点2",
    "taskId": "TASK0002",
    "taskName": "院系审批",
    "transTypeCode": "leave",
}
ADD_TASK = {
    "appId": APP,
    "autoGenTaskId": False,
    "taskId": "TASK1001",
    "taskName": "报销审核",
    "transTypeCode": "reimburse",
    "handlers": "T001",
    "handlingGroup": "finance",
    "transactionId": "TRAN1001",
    "transactionName": "差旅报销",
    "initiator": "2023001",
    "initiatorName": "张三",
    "viewUrl": "https://biz.test/v",
    "handleUrl": "https://biz.test/h",
    "mhandleUrl": "https://m.biz.test/h",
    "mviewUrl": "https://m.biz.test/v",
}
TASK_HANDLE_NEXT = {
    "appId": APP,
    "previousTaskId": "TASK0001",
    "handler": "smartadmin",
    "handlerName": "智慧校园管理员",
    "handleOpinions": "",
    "handleStatus": "string",
    "handleTime": "",
    "status": "next",
    "next": [
        {
            "taskId": "TASK0002",
            "nodeId": "NODE0002",
            "status": "next",
            "handlers": "T003",
            "serialNumber": "NUM0001",
            "transSummary": ["111|222"],
            "transTypeName": "请假",
            "mHandleUrl": "https://m.biz.test/handle/2",
            "mhandleUrl": "https://m.biz.test/handle/2",
            "mViewUrl": "https://m.biz.test/view/2",
            "mviewUrl": "https://m.biz.test/view/2",
            "actions": [{"name": "办理", "type": "HANDLE", "optType": 1}],
        }
    ],
    "previousActions": [{"name": "撤回", "type": "REVOKE", "optType": 0, "times": 1}],
}
TASK_HANDLE_NONE = {
    "appId": APP,
    "handler": "T001",
    "status": "none",
    "previousTaskId": "TASK0003",
    "handleOpinions": "同意",
    "handleStatus": "通过",
    "handleTime": "2023-07-03 10:15:00",
    "handlerName": "审批人",
    "previousActions": [
        {
            "name": "催办",
            "method": "post",
            "url": "https://biz.test/urge",
            "optType": "0",
            "type": "ALL",
            "allowMerge": 1,
            "nextNodeKey": "NODE0004",
        }
    ],
}
TASK_HANDLE_END = {"appId": APP, "handler": "T001", "status": "end", "previousTaskId": "TASK0004"}
HANDLE_TASK = {
    "appId": APP,
    "handler": "T001",
    "taskId": "TASK1001",
    "transactionId": "TRAN1001",
    "handleOpinions": "同意",
    "handleTime": "2022-12-01 11:03:54",
    "handlerName": "李老师",
}
WITHDRAW_NEXT = {
    "appId": APP,
    "creator": "2023001",
    "handleOpinions": "撤回重填",
    "handleStatus": "撤回",
    "createTime": "2023-07-03 09:00:00",
    "status": "next",
    "taskId": "TASK0001",
    "next": [
        {
            "appId": APP,
            "serialNumber": "NUM0002",
            "taskId": "TASK0002",
            "handlers": "2023001",
            "actions": [{"name": "催办", "type": "REVOKE"}],
        }
    ],
}
WITHDRAW_END = {"appId": APP, "creator": "2023001", "status": "end", "taskId": "TASK0001"}
TERMINATE = {
    "appId": APP,
    "taskId": "TTT20230703-002-001",
    "creator": "admin",
    "handleStatus": "终止",
    "handleOpinions": "申请人取消",
    "createTime": "2023-07-03 12:00:00",
}
DELETE = {"appId": APP, "taskId": "TASK1001", "creator": "2023001"}
UPDATE_TRANSACTION = {"transactionId": "TRAN002", "status": "HANG_UP", "editAccount": "admin"}
URGE = {"appId": APP, "taskId": "TASK0002", "creator": "2023001", "instructions": "催你办"}

REQUEST_EXAMPLES: list[tuple[type[WireModel], dict[str, Any]]] = [
    (NewTask, ADD_TRANSACTION_FIRST),
    (NewTask, ADD_TRANSACTION_LINKED),
    (AddTaskItem, ADD_TASK),
    (TaskHandleItem, TASK_HANDLE_NEXT),
    (TaskHandleItem, TASK_HANDLE_NONE),
    (TaskHandleItem, TASK_HANDLE_END),
    (HandleTaskItem, HANDLE_TASK),
    (TaskWithdrawItem, WITHDRAW_NEXT),
    (TaskWithdrawItem, WITHDRAW_END),
    (TaskTerminateItem, TERMINATE),
    (DeleteTaskItem, DELETE),
    (UpdateTransactionItem, UPDATE_TRANSACTION),
    (UrgeRequest, URGE),
]

RESPONSE_EXAMPLES: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        Envelope,
        {
            "took": 648,
            "timestamp": 1669864234995,
            "code": 0,
            "message": "办理成功",
            "data": {"errorIds": []},
        },
    ),
    (
        Envelope,
        {
            "took": 100,
            "timestamp": 1688371200000,
            "code": 0,
            "message": "终止中有异常数据",
            "data": {
                "errorIds": [
                    {"code": 400, "taskId": "TTT20230703-002-001", "message": "taskId is null"}
                ]
            },
        },
    ),
    (
        Envelope,
        {
            "took": 285,
            "timestamp": 1688371200000,
            "code": 0,
            "message": "修改事务中有异常数据",
            "data": {
                "errorIds": [{"code": 400, "taskId": "TRAN002", "message": "status is illegal"}]
            },
        },
    ),
    (
        Envelope,
        {"took": 0, "timestamp": 1688371200000, "code": 0, "message": "催办成功", "data": None},
    ),
    (
        Envelope,
        {
            "took": 6089,
            "timestamp": 1688371200000,
            "code": 500,
            "message": "催办失败:taskId不存在",
            "data": None,
        },
    ),
]


def meaning(value: Any, key: str = "") -> Any:
    """What a body says, ignoring spellings the centre treats alike: absent == "" == null,
    a comma-joined account list == the same names with blanks, optType "0" == 0, and the two
    spellings of a mobile URL are one field."""
    if isinstance(value, dict):
        spelling = {"mhandleUrl": "mHandleUrl", "mviewUrl": "mViewUrl"}
        return {
            spelling.get(k, k): meaning(v, k)
            for k, v in value.items()
            if v is not None and v != "" and v != []
        }
    if isinstance(value, list):
        return [meaning(v) for v in value]
    if key in ("handlers", "handlingGroup") and isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if key == "optType" and isinstance(value, str):
        return int(value)
    return value


@pytest.mark.parametrize(("model", "example"), REQUEST_EXAMPLES)
def test_documented_request_examples_round_trip(
    model: type[WireModel], example: dict[str, Any]
) -> None:
    """Parsing a documented body and dumping it again says the same thing, and is stable."""
    wire = model.model_validate(example).to_wire()
    assert meaning(wire) == meaning(example)
    assert model.model_validate(wire).to_wire() == wire


@pytest.mark.parametrize(("model", "example"), RESPONSE_EXAMPLES)
def test_documented_response_examples_round_trip(
    model: type[BaseModel], example: dict[str, Any]
) -> None:
    """Documented answers parse, and dump back to the same keys and values."""
    parsed = model.model_validate(example)
    assert parsed.model_dump(by_alias=True) == example


def test_token_answer_reads_expires_in_or_expires() -> None:
    """The sample's expires_in and the table's expires both give the lifetime."""
    sample = TokenResponse.model_validate(
        {"access_token": "AYjcyMzY3ZDhiNmJkNTY", "token_type": "bearer", "expires_in": 3600}
    )
    table = TokenResponse.model_validate({"access_token": "AYjcyMzY3ZDhiNmJkNTY", "expires": 60})
    assert (sample.expires_in, table.expires_in) == (3600, 60)
    assert sample.access_token.get_secret_value() == "AYjcyMzY3ZDhiNmJkNTY"
    assert "AYjcyMzY3ZDhiNmJkNTY" not in repr(sample)


def test_token_request_form_has_the_four_documented_fields() -> None:
    """The form has grant_type, client_id, client_secret and scope; the repr hides the secret."""
    request = TokenRequest(client_id="cid", client_secret=SecretStr("csecret"), scope="a,b")
    assert request.to_form() == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "csecret",
        "scope": "a,b",
    }
    assert "csecret" not in repr(request)


def test_mobile_urls_are_sent_under_both_spellings_with_one_value() -> None:
    """m_handle_url / m_view_url serialise to mHandleUrl+mhandleUrl and mViewUrl+mviewUrl."""
    task = NewTask(task_id="T1", handlers=["a"], m_handle_url="mh", m_view_url="mv")
    wire = task.to_wire()
    assert (wire["mHandleUrl"], wire["mhandleUrl"]) == ("mh", "mh")
    assert (wire["mViewUrl"], wire["mviewUrl"]) == ("mv", "mv")


@pytest.mark.parametrize("key", ["mHandleUrl", "mhandleUrl"])
def test_either_mobile_url_spelling_is_read(key: str) -> None:
    """A body with only one spelling still fills m_handle_url."""
    task = NewTask.model_validate({"taskId": "T1", "handlers": "a", key: "u"})
    assert task.m_handle_url == "u"


def test_disagreeing_mobile_url_spellings_are_refused() -> None:
    """Both spellings with different values cannot be sent: the centre may read either."""
    with pytest.raises(ValidationError, match="mHandleUrl and mhandleUrl differ"):
        NewTask.model_validate(
            {"taskId": "T1", "handlers": "a", "mHandleUrl": "x", "mhandleUrl": "y"}
        )


def test_transaction_name_keeps_the_documented_spellings() -> None:
    """Flow bodies say transcationName; todo/addTask says transactionName."""
    flow = NewTask(task_id="T1", handlers=["a"], transaction_name="n").to_wire()
    simple = AddTaskItem(task_id="T1", handlers=["a"], transaction_name="n").to_wire()
    assert flow["transcationName"] == "n" and "transactionName" not in flow
    assert simple["transactionName"] == "n" and "transcationName" not in simple


def test_handlers_take_a_list_or_a_string_and_travel_comma_joined() -> None:
    """list[str] and "a, b" both become "a,b" on the wire."""
    from_list = NewTask(task_id="T1", handlers=["T001", "T002"], handling_group=["g1"])
    from_str = NewTask.model_validate({"taskId": "T1", "handlers": "T001, T002"})
    assert from_list.to_wire()["handlers"] == "T001,T002"
    assert from_list.to_wire()["handlingGroup"] == "g1"
    assert from_str.handlers == ["T001", "T002"]


def test_an_account_containing_a_comma_is_refused() -> None:
    """A list element with a comma would silently become two accounts."""
    with pytest.raises(ValidationError, match="contains a comma"):
        NewTask(task_id="T1", handlers=["T001,T002"])


def test_a_todo_needs_handlers_or_a_handling_group() -> None:
    """Without either, nobody would see the todo."""
    with pytest.raises(ValidationError, match="neither handlers nor handlingGroup"):
        NewTask.model_validate({"taskId": "T1", "handlers": ""})


def test_handle_time_takes_a_datetime_and_travels_as_centre_local_text() -> None:
    """Aware datetimes are converted to UTC+8; naive ones are written as given."""
    aware = TaskHandleItem(
        previous_task_id="T1",
        handler="h",
        status="none",
        handle_time=datetime(2026, 1, 1, 0, 30, 15, 999, tzinfo=UTC),
    )
    naive = HandleTaskItem(handler="h", task_id="T1", handle_time=datetime(2026, 1, 1, 9, 5))
    assert aware.to_wire()["handleTime"] == "2026-01-01 08:30:15"
    assert naive.to_wire()["handleTime"] == "2026-01-01 09:05:00"


def test_handle_time_in_another_format_is_refused_with_the_expected_format() -> None:
    """An ISO string is not the centre's format; the error says which one is."""
    with pytest.raises(ValidationError, match="yyyy-MM-dd HH:mm:ss"):
        HandleTaskItem.model_validate(
            {"handler": "h", "taskId": "T1", "handleTime": "2026-01-01T09:05:00"}
        )


@pytest.mark.parametrize(("given", "sent"), [(0, 0), (1, 1), ("0", 0), ("1", 1)])
def test_opt_type_accepts_int_or_string_and_is_sent_as_int(given: Any, sent: int) -> None:
    """optType is typed Integer in one table and String in another."""
    button = ActionButton.model_validate({"name": "b", "type": "HANDLE", "optType": given})
    assert button.to_wire()["optType"] == sent


@pytest.mark.parametrize("bad", [2, "2", True, "page"])
def test_opt_type_outside_zero_and_one_is_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        ActionButton.model_validate({"name": "b", "type": "HANDLE", "optType": bad})


def test_action_type_must_be_a_documented_one() -> None:
    with pytest.raises(ValidationError, match="type"):
        ActionButton.model_validate({"name": "b", "type": "APPROVE"})


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (TaskHandleItem, {**TASK_HANDLE_END, "status": "finished"}, "status"),
        (UpdateTransactionItem, {**UPDATE_TRANSACTION, "status": "smartadmin"}, "status"),
        (TaskWithdrawItem, {**WITHDRAW_END, "status": "none"}, "status"),
        (TaskHandleItem, {**TASK_HANDLE_END, "handlr": "x"}, "handlr"),
        (TaskHandleItem, {**TASK_HANDLE_END, "previousTaskId": ""}, "previousTaskId"),
        (UpdateTransactionItem, {**UPDATE_TRANSACTION, "appId": APP}, "appId"),
        (NewTask, {**ADD_TRANSACTION_LINKED, "transactionName": "x"}, "transactionName"),
        (DeleteTaskItem, {"appId": APP, "taskId": "T1"}, "creator"),
    ],
)
def test_requests_are_strict(model: type[WireModel], body: dict[str, Any], field: str) -> None:
    """Unknown keys, empty ids, missing fields and values outside the enums are refused,
    and the error names the wire field."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert field in str(caught.value)


def test_status_next_needs_next_todos_and_none_carries_none() -> None:
    """next with nothing to create is none; none/end with next[] would be misread."""
    with pytest.raises(ValidationError, match='status "next" needs at least one'):
        TaskHandleItem(previous_task_id="T1", handler="h", status="next")
    with pytest.raises(ValidationError, match='use status "next"'):
        TaskHandleItem(
            previous_task_id="T1",
            handler="h",
            status="none",
            next=[NewTask(task_id="T2", handlers=["x"])],
        )


def test_withdraw_next_may_create_nothing_but_end_creates_nothing() -> None:
    """Closing a todo while the process goes on is withdraw next with an empty next[]."""
    TaskWithdrawItem(task_id="T1", creator="sys", status="next")
    with pytest.raises(ValidationError, match="cannot carry next"):
        TaskWithdrawItem(
            task_id="T1", creator="sys", status="end", next=[NewTask(task_id="T2", handlers=["x"])]
        )


def test_task_summary_holds_at_most_five_label_value_pairs() -> None:
    with pytest.raises(ValidationError, match="at most 5 items"):
        NewTask(task_id="T1", handlers=["a"], task_summary=[f"k{i}|v" for i in range(6)])
    with pytest.raises(ValidationError, match=r"not a 'label\|value' pair"):
        NewTask(task_id="T1", handlers=["a"], task_summary=["no separator"])


def test_add_task_needs_a_task_id_unless_the_centre_generates_one() -> None:
    AddTaskItem(handlers=["a"], auto_gen_task_id=True)
    with pytest.raises(ValidationError, match="taskId is required"):
        AddTaskItem(handlers=["a"])


def test_none_fields_are_left_out_of_the_wire() -> None:
    wire = DeleteTaskItem(task_id="T1", creator="c").to_wire()
    assert wire == {"taskId": "T1", "creator": "c"}


def test_responses_keep_fields_the_docs_do_not_list() -> None:
    """A new field from the centre does not break parsing."""
    envelope = Envelope.model_validate(
        {
            "code": 0,
            "data": {"errorIds": [{"code": 1, "taskId": "T", "extra": 1}], "more": 2},
            "traceId": "abc",
        }
    )
    assert envelope.error_ids[0].task_id == "T"
    assert envelope.model_extra == {"traceId": "abc"}
