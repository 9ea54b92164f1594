"""TTCClient and AsyncTTCClient against a MockTransport that plays the centre."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from engine_bridge.errors import (
    CenterAuthError,
    CenterProtocolError,
    CenterRejectedError,
    CenterUnavailableError,
    InputError,
    InvalidDataError,
)
from engine_bridge.facts import Endpoint
from engine_bridge.ttc import AsyncTTCClient, NewTask, TaskHandleItem, TTCClient
from engine_bridge.ttc.models import ErrorId
from engine_bridge.ttc.results import match_error_ids

from .conftest import APP_ID, BASE, CLIENT_ID, CLIENT_SECRET, MiniCenter


def make_client(center: MiniCenter, **kwargs: Any) -> TTCClient:
    return TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=center.transport(),
        **kwargs,
    )


def handle(task: str, status: str = "none", handler: str = "T001") -> dict[str, Any]:
    return {"previousTaskId": task, "handler": handler, "status": status}


def test_batch_is_posted_as_one_array_with_app_id_filled_in(center: MiniCenter) -> None:
    """Elements without appId get the client's; the body goes to the endpoint's path."""
    with make_client(center) as client:
        result = client.task_handle([handle("A"), {**handle("B"), "appId": "other-app"}])
    assert result.all_ok
    assert [r.task_id for r in result.items] == ["A", "B"]
    [body] = center.bodies("/poa/taskHandle")
    assert [item["appId"] for item in body] == [APP_ID, "other-app"]


def test_models_and_wire_dicts_send_the_same_body(center: MiniCenter) -> None:
    """A typed model and its wire dict produce identical requests."""
    model = NewTask(task_id="T1", handlers=["a", "b"], m_handle_url="m", transaction_name="n")
    with make_client(center) as client:
        client.add_transaction([model])
        client.send(Endpoint.ADD_TRANSACTION, [model.to_wire()])
    first, second = center.bodies("/poa/addTransaction")
    assert first == second
    assert first[0]["mHandleUrl"] == first[0]["mhandleUrl"] == "m"
    assert first[0]["transcationName"] == "n"


def test_mixed_batch_reports_each_element_in_request_order(center: MiniCenter) -> None:
    """errorIds fail exactly the elements they name; the others are ok."""
    center.fail = {"B": (2005, "task already finished"), "D": (2007, "not a handler")}
    with make_client(center) as client:
        result = client.task_handle([handle(t) for t in "ABCD"])
    assert [(r.task_id, r.ok, r.code) for r in result.items] == [
        ("A", True, None),
        ("B", False, 2005),
        ("C", True, None),
        ("D", False, 2007),
    ]
    assert [r.message for r in result.failed] == ["task already finished", "not a handler"]
    assert not result.all_ok
    assert result.envelope is not None and result.envelope.took == 3


def test_update_transaction_is_matched_by_transaction_id_and_has_no_app_id(
    center: MiniCenter,
) -> None:
    """The centre reports a transaction id under taskId; no appId is added there."""
    center.fail = {"TRAN002": (400, "status is illegal")}
    items = [{"transactionId": t, "status": "HANG_UP"} for t in ("TRAN001", "TRAN002")]
    with make_client(center) as client:
        result = client.update_transaction(items)
    assert [r.ok for r in result.items] == [True, False]
    assert "appId" not in center.bodies("updateTransaction")[0][0]


def test_error_id_that_names_no_element_is_kept_as_unmatched(center: MiniCenter) -> None:
    """A failure the client cannot place is not dropped: all_ok is False."""
    center.replies = [
        httpx.Response(
            200,
            json={
                "code": 0,
                "data": {"errorIds": [{"code": 400, "taskId": None, "message": "taskId is null"}]},
            },
        )
    ]
    with make_client(center) as client:
        result = client.task_terminate([{"taskId": "T1", "creator": "admin"}])
    assert [r.ok for r in result.items] == [True]
    assert [e.message for e in result.unmatched] == ["taskId is null"]
    assert not result.all_ok


def test_two_error_ids_for_one_key_fail_two_elements_in_order() -> None:
    """Repeated keys are consumed first come, first failed; a surplus entry is unmatched."""
    errors = [ErrorId(code=1, taskId="K"), ErrorId(code=2, taskId="K"), ErrorId(code=3, taskId="K")]
    items, unmatched = match_error_ids(["K", "X", "K"], errors)
    assert [(i.ok, i.code) for i in items] == [(False, 1), (True, None), (False, 2)]
    assert [e.code for e in unmatched] == [3]


def test_invalid_element_raises_naming_element_and_field_and_sends_nothing(
    center: MiniCenter,
) -> None:
    with make_client(center) as client, pytest.raises(InvalidDataError) as caught:
        client.send(Endpoint.TASK_HANDLE, [handle("A"), {**handle("B"), "status": "done"}])
    assert "taskHandle element 1" in str(caught.value)
    assert "status" in str(caught.value)
    assert center.calls == [] and center.token_fetches == 0


def test_a_model_for_another_endpoint_is_refused(center: MiniCenter) -> None:
    with make_client(center) as client, pytest.raises(InvalidDataError, match="expected NewTask"):
        wrong: Any = TaskHandleItem(previous_task_id="A", handler="h", status="end")
        client.add_transaction([wrong])


def test_auto_generated_task_ids_only_in_a_batch_of_one(center: MiniCenter) -> None:
    """The docs allow autoGenTaskId only when the array has at most one element."""
    item = {"autoGenTaskId": True, "handlers": "a"}
    with make_client(center) as client, pytest.raises(InvalidDataError, match="batch of one"):
        client.add_task([item, item])
    assert center.calls == []


def test_empty_batch_sends_nothing(center: MiniCenter) -> None:
    with make_client(center) as client:
        result = client.task_handle([])
    assert result.items == [] and result.all_ok and center.calls == []


def test_outer_code_other_than_zero_rejects_the_whole_call(center: MiniCenter) -> None:
    center.replies = [httpx.Response(200, json={"code": 500, "message": "系统异常", "data": None})]
    with make_client(center) as client, pytest.raises(CenterRejectedError) as caught:
        client.task_handle([handle("A")])
    assert caught.value.code == 500
    assert caught.value.retryable
    assert "retrying may help" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (httpx.Response(502, text="Bad Gateway"), CenterUnavailableError, True),
        (httpx.Response(429, text="slow down"), CenterUnavailableError, True),
        (httpx.Response(200, text="<html>login</html>"), CenterProtocolError, True),
        (httpx.Response(200, json={"message": "no code"}), CenterProtocolError, True),
        (httpx.Response(200, json=[1, 2]), CenterProtocolError, True),
        (httpx.Response(404, text="no route"), CenterProtocolError, False),
        (httpx.Response(403, json={"error": "insufficient_scope"}), CenterAuthError, False),
    ],
)
def test_bad_answers_map_to_classified_errors(
    center: MiniCenter, reply: httpx.Response, error: type[Exception], retryable: bool
) -> None:
    """Each failure class says whether a retry can help, in the flag and in the message."""
    center.replies = [reply]
    with make_client(center) as client, pytest.raises(error) as caught:
        client.task_handle([handle("A")])
    assert caught.value.retryable is retryable  # type: ignore[attr-defined]
    advice = "retrying may help" if retryable else "retrying will not help"
    assert advice in str(caught.value)


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("x")],
)
def test_transport_failures_are_unavailable_and_retryable(exc: httpx.HTTPError) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 60})
        raise exc

    seen: list[Any] = []
    client = TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=httpx.MockTransport(failing),
        exchange_hook=lambda *a: seen.append(a),
    )
    with client, pytest.raises(CenterUnavailableError) as caught:
        client.task_handle([handle("A")])
    assert caught.value.retryable
    assert seen == [
        ("/apis/ttc/v1/transaction/poa/taskHandle", [{**handle("A"), "appId": APP_ID}], None)
    ]


def test_urge_sends_each_single_object_and_reads_code_500_as_that_items_failure(
    center: MiniCenter,
) -> None:
    """taskCuiBanNew takes one object, not an array; its failure is outer code 500."""
    center.fail = {"T2": (500, "催办失败:taskId不存在")}
    with make_client(center) as client:
        result = client.urge(
            [
                {"taskId": "T1", "creator": "u", "instructions": "催你办"},
                {"taskId": "T2", "creator": "u"},
            ]
        )
    bodies = center.bodies("taskCuiBanNew")
    assert [type(b) for b in bodies] == [dict, dict]
    assert [(r.task_id, r.ok, r.code, r.message) for r in result.items] == [
        ("T1", True, None, None),
        ("T2", False, 500, "催办失败:taskId不存在"),
    ]
    assert len(result.envelopes) == 2


def test_exchange_hook_sees_every_call_as_sent_and_as_answered(center: MiniCenter) -> None:
    """The hook gets the path, the exact body sent and the parsed answer; not token calls."""
    seen: list[tuple[str, Any, Any]] = []
    center.fail = {"B": (2004, "this task is not exist")}
    with make_client(center, exchange_hook=lambda *a: seen.append(a)) as client:
        client.task_handle([handle("A"), handle("B")])
        center.replies = [httpx.Response(500, text="boom")]
        with pytest.raises(CenterUnavailableError):
            client.task_handle([handle("C")])
    assert [path for path, _, _ in seen] == ["/apis/ttc/v1/transaction/poa/taskHandle"] * 2
    assert seen[0][1] == center.bodies("taskHandle")[0]
    assert seen[0][2]["data"]["errorIds"][0]["taskId"] == "B"
    assert seen[1][2] is None


def test_token_goes_in_authorization_bare_by_default(center: MiniCenter) -> None:
    """The docs' literal reading: Authorization: <token>."""
    with make_client(center) as client:
        client.task_handle([handle("A")])
    assert center.calls[0][2] == center.issued[0]


def test_bearer_scheme_is_available(center: MiniCenter) -> None:
    center.scheme = "Bearer"
    with make_client(center, auth_scheme="Bearer") as client:
        assert client.task_handle([handle("A")]).all_ok
    assert center.calls[0][2] == f"Bearer {center.issued[0]}"


def test_wrong_scheme_is_a_non_retryable_auth_error_after_one_refresh(center: MiniCenter) -> None:
    """A 401 is retried once with a fresh token; a second 401 is CenterAuthError."""
    center.scheme = "Bearer"
    with make_client(center) as client, pytest.raises(CenterAuthError) as caught:
        client.task_handle([handle("A")])
    assert not caught.value.retryable
    assert center.token_fetches == 2
    assert len(center.calls) == 2


def test_constructor_needs_credentials_and_an_http_base_url() -> None:
    with pytest.raises(InputError, match="client_id and client_secret"):
        TTCClient(BASE, app_id=APP_ID)
    with pytest.raises(InputError, match="http"):
        TTCClient("poa.test.edu.cn", app_id=APP_ID, client_id="c", client_secret="s")


def test_token_url_defaults_to_the_gateway_root(center: MiniCenter) -> None:
    with make_client(center) as client:
        assert client.token_provider.token_url == f"{BASE}/oauth2/token"  # type: ignore[attr-defined]


def test_async_client_reports_the_same_results(center: MiniCenter) -> None:
    """The async client shares body building and answer reading with the sync one."""
    center.fail = {"B": (2005, "task already finished")}

    async def run() -> list[tuple[str, bool]]:
        async with AsyncTTCClient(
            BASE,
            app_id=APP_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            transport=center.async_transport(),
        ) as client:
            result = await client.task_handle([handle("A"), handle("B")])
            urged = await client.urge([{"taskId": "A", "creator": "u"}])
            assert urged.all_ok
            return [(r.task_id, r.ok) for r in result.items]

    assert asyncio.run(run()) == [("A", True), ("B", False)]
    assert json.loads(json.dumps(center.bodies("taskHandle")[0]))[0]["appId"] == APP_ID


def test_async_client_raises_the_same_errors(center: MiniCenter) -> None:
    center.replies = [httpx.Response(200, json={"code": 7, "message": "x"})]

    async def run() -> None:
        async with AsyncTTCClient(
            BASE,
            app_id=APP_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            transport=center.async_transport(),
        ) as client:
            await client.task_handle([handle("A")])

    with pytest.raises(CenterRejectedError) as caught:
        asyncio.run(run())
    assert caught.value.code == 7
