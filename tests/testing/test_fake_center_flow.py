"""The flow endpoints (addTransaction, taskHandle, taskWithdraw, taskTerminate) keep the
centre's state and refuse what the real centre would."""

from __future__ import annotations

import asyncio

import httpx
from fake_center_helpers import APP, Caller, codes, first, handle, nxt

from engine_bridge.testing import FakeCenter, FaultKind


def test_add_transaction_creates_a_transaction_named_by_its_first_task(
    caller: Caller, center: FakeCenter
) -> None:
    """A first todo opens a transaction whose id is the todo's taskId."""
    envelope = caller.call("addTransaction", [first("t1", "T001,T002", transcationName="请假")])
    assert envelope["code"] == 0
    assert envelope["message"] == "新增成功"
    assert envelope["data"] == {"errorIds": []}
    state = center.state()
    assert state["transactions"]["t1"]["status"] == "IN_PROGRESS"
    assert state["transactions"]["t1"]["name"] == "请假"
    assert state["todos"]["t1"]["transaction_id"] == "t1"
    assert center.open_todos() == {"t1": ["T001", "T002"]}


def test_add_transaction_with_previous_task_joins_that_transaction(
    caller: Caller, center: FakeCenter
) -> None:
    """A linked todo joins the previous todo's transaction, even when that todo is done."""
    caller.errors("addTransaction", [first("t1")])
    assert caller.errors("taskHandle", [handle("t1", "T001", "none")]) == []
    errors = caller.errors(
        "addTransaction",
        [{"appId": APP, "taskId": "t2", "handlers": "T009", "previousTaskId": "t1"}],
    )
    assert errors == []
    assert center.state()["todos"]["t2"]["transaction_id"] == "t1"
    assert center.open_todos() == {"t2": ["T009"]}


def test_add_transaction_refuses_duplicates_unknown_links_and_ended_transactions(
    caller: Caller, center: FakeCenter
) -> None:
    """Duplicate taskId → 2006, unknown previous task → 2004, ended transaction → 2005."""
    caller.errors("addTransaction", [first("t1"), first("ended")])
    caller.errors("taskHandle", [handle("ended", "T001", "end")])
    errors = caller.errors(
        "addTransaction",
        [
            first("t1"),
            {"appId": APP, "taskId": "a", "handlers": "X", "previousTaskId": "nope"},
            {"appId": APP, "taskId": "b", "handlers": "X", "previousTaskId": "ended"},
            {"appId": APP, "taskId": "c", "handlers": "X", "previousTaskId": "t1"},
        ],
    )
    assert codes(errors) == [("t1", 2006), ("a", 2004), ("b", 2005)]
    assert sorted(center.open_todos()) == ["c", "t1"]


def test_missing_fields_are_reported_as_null(caller: Caller) -> None:
    """Each missing required field gives 400 '<field> is null'."""
    errors = caller.errors(
        "addTransaction",
        [
            {"taskId": "a", "handlers": "X"},
            {"appId": APP, "handlers": "X"},
            {"appId": APP, "taskId": "c"},
            {"appId": APP, "taskId": "d", "handlers": " , "},
        ],
    )
    assert [(e["code"], e["message"]) for e in errors] == [
        (400, "appId is null"),
        (400, "taskId is null"),
        (400, "handlers is null"),
        (400, "handlers is null"),
    ]


def test_a_configured_app_id_refuses_other_apps(caller: Caller, center: FakeCenter) -> None:
    """With app_id set, an element of another app is refused (2001) and not applied."""
    errors = caller.errors("addTransaction", [{**first("t1"), "appId": "other"}, first("t2")])
    assert codes(errors) == [("t1", 2001)]
    assert list(center.open_todos()) == ["t2"]


def test_any_app_is_accepted_when_no_app_id_is_configured() -> None:
    """Without app_id, any appId is accepted."""
    center = FakeCenter(require_auth=False)
    response = center.handle(
        httpx.Request(
            "POST",
            "http://c/apis/ttc/v1/transaction/poa/addTransaction",
            json=[{"appId": "whatever", "taskId": "t", "handlers": "A"}],
        )
    )
    assert response.json()["data"]["errorIds"] == []
    assert center.open_todos() == {"t": ["A"]}


def test_handle_next_closes_the_todo_and_creates_next_items(
    caller: Caller, center: FakeCenter
) -> None:
    """status=next: the todo is done and every next[] item opens in the same transaction."""
    caller.errors("addTransaction", [first("t1", "T001,T002")])
    errors = caller.errors(
        "taskHandle", [handle("t1", "T002", "next", nxt("t2", "A"), nxt("t3", "B,C"))]
    )
    assert errors == []
    state = center.state()
    assert state["todos"]["t1"]["state"] == "done"
    assert state["todos"]["t2"]["transaction_id"] == "t1"
    assert state["todos"]["t3"]["previous_task_id"] == "t1"
    assert state["transactions"]["t1"]["task_ids"] == ["t1", "t2", "t3"]
    assert center.open_todos() == {"t2": ["A"], "t3": ["B", "C"]}


def test_handle_none_closes_only_the_handlers_share(caller: Caller, center: FakeCenter) -> None:
    """status=none records one handler's share; the todo closes when every share is closed."""
    caller.errors("addTransaction", [first("cs", "T1,T2,T3")])
    assert caller.errors("taskHandle", [handle("cs", "T2", "none")]) == []
    assert center.open_todos() == {"cs": ["T1", "T3"]}
    again = caller.errors("taskHandle", [handle("cs", "T2", "none")])
    assert codes(again) == [("cs", 2005)]
    caller.errors("taskHandle", [handle("cs", "T1", "none"), handle("cs", "T3", "none")])
    assert center.open_todos() == {}
    assert center.state()["todos"]["cs"]["state"] == "done"
    assert center.state()["transactions"]["cs"]["status"] == "IN_PROGRESS"


def test_handle_end_finishes_the_transaction_and_deletes_other_open_todos(
    caller: Caller, center: FakeCenter
) -> None:
    """status=end: todo done, the other open todos deleted, transaction FINISH."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("taskHandle", [handle("t1", "T001", "next", nxt("a", "A"), nxt("b", "B"))])
    assert caller.errors("taskHandle", [handle("a", "A", "end")]) == []
    state = center.state()
    assert state["todos"]["a"]["state"] == "done"
    assert state["todos"]["b"]["state"] == "deleted"
    assert state["transactions"]["t1"]["status"] == "FINISH"
    assert center.open_todos() == {}


def test_handle_refuses_unknown_finished_and_foreign_handlers(
    caller: Caller, center: FakeCenter
) -> None:
    """Unknown todo → 2004, finished → 2005, not a handler → 2007; nothing changes."""
    caller.errors("addTransaction", [first("t1"), first("t2")])
    caller.errors("taskHandle", [handle("t1", "T001", "none")])
    before = center.open_todos()
    errors = caller.errors(
        "taskHandle",
        [handle("nope", "T001", "none"), handle("t1", "T001", "none"), handle("t2", "X", "none")],
    )
    assert codes(errors) == [("nope", 2004), ("t1", 2005), ("t2", 2007)]
    assert "X is not a handler" in errors[2]["message"]
    assert center.open_todos() == before


def test_handle_validates_status_and_next(caller: Caller, center: FakeCenter) -> None:
    """A bad status, next without items, or next items with none are refused (400)."""
    caller.errors("addTransaction", [first("t1")])
    errors = caller.errors(
        "taskHandle",
        [
            handle("t1", "T001", "done"),
            handle("t1", "T001", "next"),
            handle("t1", "T001", "none", nxt("x")),
            {"appId": APP, "previousTaskId": "t1", "status": "none"},
        ],
    )
    assert [(e["code"], e["message"]) for e in errors] == [
        (400, "status is illegal"),
        (400, "next is null"),
        (400, "next is illegal when status is none"),
        (400, "handler is null"),
    ]
    assert center.open_todos() == {"t1": ["T001"]}


def test_one_bad_next_item_refuses_the_whole_element(caller: Caller, center: FakeCenter) -> None:
    """next[] items are all validated before anything of that element is applied."""
    caller.errors("addTransaction", [first("t1"), first("taken")])
    for bad in ({"taskId": "n2"}, nxt("taken"), nxt("n1")):
        errors = caller.errors("taskHandle", [handle("t1", "T001", "next", nxt("n1"), bad)])
        assert len(errors) == 1 and errors[0]["taskId"] == "t1"
    assert center.open_todos() == {"t1": ["T001"], "taken": ["T001"]}
    assert "n1" not in center.state()["todos"]


def test_batch_applies_good_elements_in_order_and_reports_bad_ones(
    caller: Caller, center: FakeCenter
) -> None:
    """A mixed batch: good elements apply (each sees the earlier ones), bad ones are listed."""
    caller.errors("addTransaction", [first("t1"), first("t2")])
    envelope = caller.call(
        "taskHandle",
        [
            handle("t1", "T001", "next", nxt("t3", "A")),
            handle("missing", "T001", "none"),
            handle("t3", "A", "none"),
            "not an object",
            handle("t2", "T001", "end"),
        ],
    )
    assert envelope["code"] == 0
    assert envelope["message"] == "办理中有异常数据"
    assert codes(envelope["data"]["errorIds"]) == [("missing", 2004), ("", 400)]
    assert center.open_todos() == {}
    assert center.state()["transactions"]["t2"]["status"] == "FINISH"


def test_a_repeated_handle_is_refused_not_silently_accepted(caller: Caller) -> None:
    """The same taskHandle sent twice: the second answers 2005, so a client sees 'already done'."""
    caller.errors("addTransaction", [first("t1")])
    body = [handle("t1", "T001", "next", nxt("t2"))]
    assert caller.errors("taskHandle", body) == []
    assert codes(caller.errors("taskHandle", body)) == [("t1", 2005)]


def test_a_group_todo_accepts_any_handler_once(caller: Caller, center: FakeCenter) -> None:
    """A todo with only handlingGroup accepts any handler; its first none closes it."""
    caller.errors(
        "addTransaction", [{"appId": APP, "taskId": "g", "handlingGroup": "deans,office"}]
    )
    assert center.open_todos() == {"g": ["group:deans", "group:office"]}
    assert caller.errors("taskHandle", [handle("g", "anyone", "none")]) == []
    assert center.open_todos() == {}
    assert codes(caller.errors("taskHandle", [handle("g", "other", "none")])) == [("g", 2005)]


def test_withdraw_next_may_be_empty_and_closes_the_todo(caller: Caller, center: FakeCenter) -> None:
    """taskWithdraw status=next with no next[]: the todo is withdrawn, the transaction goes on."""
    caller.errors("addTransaction", [first("t1", "A,B")])
    caller.errors("taskHandle", [handle("t1", "A", "none")])
    body = [{"appId": APP, "taskId": "t1", "creator": "system", "status": "next", "next": []}]
    assert caller.errors("taskWithdraw", body) == []
    state = center.state()
    assert state["todos"]["t1"]["state"] == "withdrawn"
    assert state["transactions"]["t1"]["status"] == "IN_PROGRESS"
    assert center.open_todos() == {}
    assert codes(caller.errors("taskWithdraw", body)) == [("t1", 2005)]


def test_withdraw_next_creates_next_items(caller: Caller, center: FakeCenter) -> None:
    """taskWithdraw status=next creates its next[] in the same transaction (a timeout path)."""
    caller.errors("addTransaction", [first("t1")])
    body = [{"appId": APP, "taskId": "t1", "creator": "sys", "status": "next", "next": [nxt("t2")]}]
    assert caller.errors("taskWithdraw", body) == []
    assert center.open_todos() == {"t2": ["T002"]}
    assert center.state()["todos"]["t2"]["transaction_id"] == "t1"


def test_withdraw_end_finishes_the_transaction(caller: Caller, center: FakeCenter) -> None:
    """taskWithdraw status=end: withdrawn, others deleted, transaction FINISH."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("taskHandle", [handle("t1", "T001", "next", nxt("a"), nxt("b"))])
    body = [{"appId": APP, "taskId": "a", "creator": "sys", "status": "end"}]
    assert caller.errors("taskWithdraw", body) == []
    state = center.state()
    assert (state["todos"]["a"]["state"], state["todos"]["b"]["state"]) == ("withdrawn", "deleted")
    assert state["transactions"]["t1"]["status"] == "FINISH"
    errors = caller.errors(
        "taskWithdraw",
        [
            {"appId": APP, "taskId": "zzz", "creator": "sys", "status": "end"},
            {"appId": APP, "taskId": "b", "creator": "sys", "status": "none"},
            {"appId": APP, "taskId": "b", "status": "end"},
        ],
    )
    assert [(e["code"], e["message"]) for e in errors] == [
        (2004, "this task is not exist"),
        (400, "status is illegal"),
        (400, "creator is null"),
    ]


def test_terminate_breaks_up_the_transaction(caller: Caller, center: FakeCenter) -> None:
    """taskTerminate: the todo terminated, the others deleted, transaction BREAK_UP."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("taskHandle", [handle("t1", "T001", "next", nxt("a"), nxt("b"))])
    body = [{"appId": APP, "taskId": "a", "creator": "2023001"}]
    envelope = caller.call("taskTerminate", body)
    assert envelope["message"] == "终止成功"
    state = center.state()
    assert (state["todos"]["a"]["state"], state["todos"]["b"]["state"]) == ("terminated", "deleted")
    assert state["transactions"]["t1"]["status"] == "BREAK_UP"
    assert center.open_todos() == {}
    assert codes(caller.errors("taskTerminate", body)) == [("a", 2005)]
    assert codes(caller.errors("taskTerminate", [{**body[0], "taskId": "x"}])) == [("x", 2004)]


def test_terminate_naming_a_done_todo_of_a_running_transaction(
    caller: Caller, center: FakeCenter
) -> None:
    """A done todo of a transaction still in progress terminates that transaction."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("taskHandle", [handle("t1", "T001", "none")])
    assert caller.errors("taskTerminate", [{"appId": APP, "taskId": "t1", "creator": "u"}]) == []
    state = center.state()
    assert state["todos"]["t1"]["state"] == "done"
    assert state["transactions"]["t1"]["status"] == "BREAK_UP"


def test_nothing_names_an_ended_transaction(caller: Caller) -> None:
    """After end, links into the transaction are refused with 2005."""
    caller.errors("addTransaction", [first("t1")])
    caller.errors("taskHandle", [handle("t1", "T001", "end")])
    errors = caller.errors(
        "addTransaction", [{"appId": APP, "taskId": "t9", "handlers": "A", "previousTaskId": "t1"}]
    )
    assert [(e["code"], e["message"]) for e in errors] == [
        (2005, "the transaction is finished (FINISH)")
    ]


def test_chinese_text_is_kept(caller: Caller, center: FakeCenter) -> None:
    """Chinese field values are stored and answered unchanged."""
    caller.errors("addTransaction", [first("t1", taskName="请假审批", nodeName="辅导员审核")])
    todo = center.state()["todos"]["t1"]
    assert (todo["task_name"], todo["node_name"]) == ("请假审批", "辅导员审核")
    assert todo["item"]["taskName"] == "请假审批"


def test_the_transport_serves_async_clients_too(center: FakeCenter) -> None:
    """The same transport works under httpx.AsyncClient, including a raised drop."""

    async def scenario() -> tuple[int, bool]:
        async with httpx.AsyncClient(
            transport=center.transport(), base_url="http://center"
        ) as client:
            token = await client.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "test-client",
                    "client_secret": "test-secret",
                },
            )
            headers = {"Authorization": token.json()["access_token"]}
            url = "/apis/ttc/v1/transaction/poa/addTransaction"
            created = await client.post(url, json=[first("t1")], headers=headers)
            center.faults.add("addTransaction", FaultKind.DROP)
            try:
                await client.post(url, json=[first("t2")], headers=headers)
            except httpx.RemoteProtocolError:
                dropped = True
            else:
                dropped = False
            return created.status_code, dropped

    assert asyncio.run(scenario()) == (200, True)
    assert center.open_todos() == {"t1": ["T001"]}
