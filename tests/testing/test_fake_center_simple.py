"""The simple todo endpoints, urge, and the envelope for malformed bodies."""

from __future__ import annotations

from typing import Any

from fake_center_helpers import APP, Caller, codes, first

from engine_bridge.testing import FakeCenter


def add_task(task_id: str, handlers: str = "A", **extra: Any) -> dict[str, Any]:
    return {"appId": APP, "taskId": task_id, "handlers": handlers, **extra}


def test_add_task_groups_todos_by_transaction_id(caller: Caller, center: FakeCenter) -> None:
    """todo/addTask with a transactionId creates it once and puts later todos into it."""
    errors = caller.errors(
        "todo/addTask",
        [add_task("s1", transactionId="TR1"), add_task("s2", "B", transactionId="TR1")],
    )
    assert errors == []
    state = center.state()
    assert state["transactions"]["TR1"]["task_ids"] == ["s1", "s2"]
    assert state["transactions"]["TR1"]["kind"] == "simple"
    assert center.open_todos() == {"s1": ["A"], "s2": ["B"]}
    assert codes(caller.errors("todo/addTask", [add_task("s1")])) == [("s1", 2006)]


def test_handle_task_closes_the_todo(caller: Caller, center: FakeCenter) -> None:
    """todo/handleTask closes the whole todo; again → 2005; a stranger → 2007."""
    caller.errors("todo/addTask", [add_task("s1", "A,B"), add_task("s2")])
    body = [{"appId": APP, "taskId": "s1", "handler": "B", "handleOpinions": "同意"}]
    envelope = caller.call("todo/handleTask", body)
    assert (envelope["code"], envelope["message"]) == (0, "办理成功")
    assert center.state()["todos"]["s1"]["state"] == "done"
    assert center.state()["todos"]["s1"]["handlings"][0]["opinion"] == "同意"
    assert codes(caller.errors("todo/handleTask", body)) == [("s1", 2005)]
    stranger = [{"appId": APP, "taskId": "s2", "handler": "Z"}]
    assert codes(caller.errors("todo/handleTask", stranger)) == [("s2", 2007)]


def test_handle_task_requires_the_transaction_id_it_was_created_with(
    caller: Caller, center: FakeCenter
) -> None:
    """A todo created with a transactionId needs it to be handled, and the right one."""
    caller.errors("todo/addTask", [add_task("s1", transactionId="TR1")])
    errors = caller.errors(
        "todo/handleTask",
        [
            {"appId": APP, "taskId": "s1", "handler": "A"},
            {"appId": APP, "taskId": "s1", "handler": "A", "transactionId": "TR9"},
        ],
    )
    assert [(e["code"], e["message"]) for e in errors] == [
        (400, "transactionId is null"),
        (2008, "the transaction is not exists"),
    ]
    ok = [{"appId": APP, "taskId": "s1", "handler": "A", "transactionId": "TR1"}]
    assert caller.errors("todo/handleTask", ok) == []
    assert center.open_todos() == {}


def test_delete_task_removes_the_todo_and_its_transaction(
    caller: Caller, center: FakeCenter
) -> None:
    """todo/deleteTask: the todo and its transaction go; again → 2004; a sibling → 2008."""
    caller.errors(
        "todo/addTask", [add_task("s1", transactionId="T"), add_task("s2", transactionId="T")]
    )
    body = [{"appId": APP, "taskId": "s1", "creator": "admin"}]
    assert caller.call("todo/deleteTask", body)["message"] == "删除成功"
    state = center.state()
    assert "s1" not in state["todos"] and "T" not in state["transactions"]
    assert state["todos"]["s2"]["state"] == "deleted"
    assert center.open_todos() == {}
    assert codes(caller.errors("todo/deleteTask", body)) == [("s1", 2004)]
    errors = caller.errors("todo/deleteTask", [{**body[0], "taskId": "s2"}])
    assert [(e["code"], e["message"]) for e in errors] == [(2008, "the transaction is not exists")]


def test_update_transaction_hang_up_and_activate(caller: Caller, center: FakeCenter) -> None:
    """HANG_UP blocks handling (2011) until IN_PROGRESS; a flow transaction is named by its
    first taskId."""
    caller.errors("addTransaction", [first("t1")])
    envelope = caller.call("todo/updateTransaction", [{"transactionId": "t1", "status": "HANG_UP"}])
    assert (envelope["code"], envelope["message"]) == (0, "修改事务成功")
    handle = [{"appId": APP, "previousTaskId": "t1", "handler": "T001", "status": "none"}]
    assert codes(caller.errors("taskHandle", handle)) == [("t1", 2011)]
    assert center.open_todos() == {"t1": ["T001"]}
    caller.errors("todo/updateTransaction", [{"transactionId": "t1", "status": "IN_PROGRESS"}])
    assert caller.errors("taskHandle", handle) == []


def test_update_transaction_refusals(caller: Caller, center: FakeCenter) -> None:
    """Unknown → 2009, bad status → 400 'status is illegal', ended → 2005; ending closes todos."""
    caller.errors("addTransaction", [first("t1")])
    errors = caller.errors(
        "todo/updateTransaction",
        [
            {"transactionId": "TRAN002", "status": "smartadmin"},
            {"transactionId": "zzz", "status": "FINISH"},
            {"status": "FINISH"},
            {"transactionId": "t1", "status": "BREAK_UP"},
            {"transactionId": "t1", "status": "IN_PROGRESS"},
        ],
    )
    assert [(e["taskId"], e["code"], e["message"]) for e in errors] == [
        ("TRAN002", 400, "status is illegal"),
        ("zzz", 2009, "the transaction is not exist"),
        ("", 400, "transactionId is null"),
        ("t1", 2005, "the transaction is finished (BREAK_UP)"),
    ]
    assert center.state()["todos"]["t1"]["state"] == "deleted"
    assert center.open_todos() == {}


def test_urge_marks_an_open_todo(caller: Caller, center: FakeCenter) -> None:
    """taskCuiBanNew takes one object, flags the todo, and fails with outer code 500."""
    caller.errors("addTransaction", [first("t1")])
    body = {"appId": APP, "taskId": "t1", "creator": "2023001", "instructions": "催你办"}
    envelope = caller.call("taskCuiBanNew", body)
    assert (envelope["code"], envelope["message"], envelope["data"]) == (0, "催办成功", None)
    todo = center.state()["todos"]["t1"]
    assert todo["urged"] is True and todo["urges"][0]["instructions"] == "催你办"
    missing = caller.call("taskCuiBanNew", {**body, "taskId": "nope"})
    assert (missing["code"], missing["message"]) == (500, "催办失败:taskId不存在")
    no_creator = caller.call("taskCuiBanNew", {"appId": APP, "taskId": "t1"})
    assert (no_creator["code"], no_creator["message"]) == (500, "催办失败:creator is null")
    batch = caller.call("taskCuiBanNew", [body])
    assert batch["code"] == 500


def test_bodies_that_are_not_arrays_or_not_json_are_refused(
    caller: Caller, center: FakeCenter
) -> None:
    """A batch endpoint wants a JSON array; anything else is HTTP 400 and changes nothing."""
    response = caller.raw("addTransaction", first("t1"))
    assert response.status_code == 400
    assert response.json()["code"] == 400
    caller.fetch_token()
    garbage = caller.client.post(
        "/apis/ttc/v1/transaction/poa/addTransaction",
        content=b"{not json",
        headers={"Authorization": caller.token or ""},
    )
    assert garbage.status_code == 400
    assert center.open_todos() == {}


def test_methods_and_paths(caller: Caller) -> None:
    """'POST PUT' endpoints take PUT too; others only POST; unknown paths are 404."""
    caller.errors("addTransaction", [first("t1")])
    put = caller.raw(
        "taskWithdraw",
        [{"appId": APP, "taskId": "t1", "creator": "s", "status": "next"}],
        method="PUT",
    )
    assert put.status_code == 200 and put.json()["data"]["errorIds"] == []
    assert caller.raw("taskHandle", [], method="PUT").status_code == 405
    assert caller.raw("noSuchThing", []).status_code == 404


def test_request_log_and_calls(caller: Caller, center: FakeCenter) -> None:
    """Every request is logged with its endpoint, body, answer and attempt number."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("addTransaction", [first("t1")])
    logged = center.calls("addTransaction")
    assert [c["attempt"] for c in logged] == [1, 2]
    assert logged[0]["body"] == [first("t1")]
    assert logged[1]["response"]["data"]["errorIds"][0]["code"] == 2006
    assert center.calls("/apis/ttc/v1/transaction/poa/addTransaction") == logged
    assert [c["endpoint"] for c in center.calls()] == [
        "oauth2/token",
        "addTransaction",
        "addTransaction",
    ]


def test_reset_forgets_state_but_keeps_tokens(caller: Caller, center: FakeCenter) -> None:
    """reset() empties todos, transactions, log and faults; a cached token still works."""
    caller.errors("addTransaction", [first("t1")])
    center.faults.add("taskHandle", "drop")
    center.reset()
    state = center.state()
    assert (state["todos"], state["transactions"], state["requests"], state["faults"]) == (
        {},
        {},
        [],
        [],
    )
    assert state["token_requests"] == 0
    assert caller.errors("addTransaction", [first("t1")]) == []
