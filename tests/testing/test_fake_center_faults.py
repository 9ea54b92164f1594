"""Scripted faults, in-process: which attempts misbehave, how, and whether they were applied."""

from __future__ import annotations

import httpx
import pytest
from fake_center_helpers import Caller, codes, first, handle, nxt

from engine_bridge.testing import FakeCenter, Fault, FaultKind, FaultPlan
from engine_bridge.testing.faults import endpoint_matches


def test_attempts_are_counted_per_fault_from_when_it_was_added(
    caller: Caller, center: FakeCenter
) -> None:
    """attempts=(2,) spoils only the second request to the endpoint after add()."""
    caller.call("addTransaction", [first("before")])
    center.faults.add("addTransaction", FaultKind.HTTP_5XX, attempts=(2,))
    statuses = [caller.raw("addTransaction", [first(f"t{i}")]).status_code for i in range(3)]
    assert statuses == [200, 503, 200]
    assert sorted(center.open_todos()) == ["before", "t0", "t2"]
    assert [c["fault"] for c in center.calls("addTransaction")] == [None, None, "http_5xx", None]


def test_all_attempts_and_first_added_wins(caller: Caller, center: FakeCenter) -> None:
    """'all' fires every time; when two faults fire together the first added is used."""
    center.faults.add("addTransaction", FaultKind.OUTER_CODE, attempts="all")
    center.faults.add("addTransaction", FaultKind.HTTP_5XX, attempts=(1, 2))
    first_answer = caller.raw("addTransaction", [first("t1")])
    second_answer = caller.raw("addTransaction", [first("t1")])
    assert (first_answer.status_code, first_answer.json()["code"]) == (200, 500)
    assert second_answer.json()["code"] == 500
    assert center.open_todos() == {}
    plan = center.faults.to_json()
    assert [(f["seen"], f["fired"]) for f in plan] == [(2, 2), (2, 0)]


def test_faults_only_hit_their_endpoint(caller: Caller, center: FakeCenter) -> None:
    """A fault on 'handleTask' spoils todo/handleTask, not taskHandle."""
    center.faults.add("handleTask", FaultKind.HTTP_5XX, attempts="all")
    caller.call("addTransaction", [first("t1")])
    assert caller.errors("taskHandle", [handle("t1", "T001", "none")]) == []
    assert endpoint_matches("handleTask", "todo/handleTask")
    assert not endpoint_matches("handleTask", "taskHandle")
    assert endpoint_matches("*", "oauth2/token")


def test_http_5xx_is_not_applied(caller: Caller, center: FakeCenter) -> None:
    """HTTP_5XX: 503 and the body is not applied."""
    center.faults.add("addTransaction", FaultKind.HTTP_5XX)
    assert caller.raw("addTransaction", [first("t1")]).status_code == 503
    assert center.open_todos() == {}


def test_outer_code_is_not_applied(caller: Caller, center: FakeCenter) -> None:
    """OUTER_CODE: HTTP 200, outer code 500, nothing applied; the retry applies."""
    center.faults.add("addTransaction", FaultKind.OUTER_CODE)
    envelope = caller.call("addTransaction", [first("t1")])
    assert envelope["code"] == 500 and envelope["data"] is None
    assert center.open_todos() == {}
    assert caller.errors("addTransaction", [first("t1")]) == []


def test_drop_raises_and_is_not_applied(caller: Caller, center: FakeCenter) -> None:
    """DROP in-process: httpx.RemoteProtocolError, nothing applied, logged as unanswered."""
    caller.fetch_token()
    center.faults.add("addTransaction", FaultKind.DROP)
    with pytest.raises(httpx.RemoteProtocolError):
        caller.raw("addTransaction", [first("t1")])
    assert center.open_todos() == {}
    entry = center.calls("addTransaction")[0]
    assert (entry["applied"], entry["answered"], entry["status"]) == (False, False, None)


def test_applied_answer_lost_raises_after_applying(caller: Caller, center: FakeCenter) -> None:
    """APPLIED_ANSWER_LOST: the handle is applied, the client sees ReadError; resending it
    answers 'already finished' (2005)."""
    caller.call("addTransaction", [first("t1")])
    center.faults.add("taskHandle", FaultKind.APPLIED_ANSWER_LOST)
    body = [handle("t1", "T001", "next", nxt("t2"))]
    with pytest.raises(httpx.ReadError):
        caller.raw("taskHandle", body)
    assert center.open_todos() == {"t2": ["T002"]}
    assert codes(caller.errors("taskHandle", body)) == [("t1", 2005)]
    entry = center.calls("taskHandle")[0]
    assert (entry["applied"], entry["answered"]) == (True, False)
    assert entry["response"]["code"] == 0  # the answer that was lost


def test_malformed_json_is_not_applied(caller: Caller, center: FakeCenter) -> None:
    """MALFORMED_JSON: HTTP 200 whose body does not parse; nothing applied."""
    center.faults.add("addTransaction", FaultKind.MALFORMED_JSON)
    response = caller.raw("addTransaction", [first("t1")])
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert center.open_todos() == {}


def test_token_expired_revokes_the_presented_token(caller: Caller, center: FakeCenter) -> None:
    """TOKEN_EXPIRED: 401 once; the same token stays refused, a fresh one works."""
    caller.fetch_token()
    center.faults.add("addTransaction", FaultKind.TOKEN_EXPIRED)
    assert caller.raw("addTransaction", [first("t1")]).status_code == 401
    assert caller.raw("addTransaction", [first("t1")]).status_code == 401
    caller.fetch_token()
    assert caller.raw("addTransaction", [first("t1")]).status_code == 200
    assert center.open_todos() == {"t1": ["T001"]}


def test_delay_answers_normally_and_applies(caller: Caller, center: FakeCenter) -> None:
    """DELAY: the request is applied and answered as usual after the pause."""
    center.faults.add("addTransaction", FaultKind.DELAY, delay_seconds=0.01)
    assert caller.errors("addTransaction", [first("t1")]) == []
    assert center.open_todos() == {"t1": ["T001"]}
    assert center.calls("addTransaction")[0]["fault"] == "delay"


def test_token_endpoint_faults(caller: Caller, center: FakeCenter) -> None:
    """Faults can target the token endpoint: no token is issued when it fails."""
    center.faults.add("oauth2/token", FaultKind.HTTP_5XX)
    response = caller.client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "test-client",
            "client_secret": "test-secret",
        },
    )
    assert response.status_code == 503
    assert center.token_requests == 0
    caller.fetch_token()
    assert center.token_requests == 1


def test_clear_removes_faults(caller: Caller, center: FakeCenter) -> None:
    """After clear() requests are answered normally again."""
    center.faults.add("addTransaction", FaultKind.HTTP_5XX, attempts="all")
    center.faults.clear()
    assert caller.raw("addTransaction", [first("t1")]).status_code == 200


def test_plan_refuses_bad_faults() -> None:
    """Typos fail loudly instead of injecting nothing."""
    plan = FaultPlan()
    with pytest.raises(ValueError, match="unknown fault kind"):
        plan.add("taskHandle", "explode")
    with pytest.raises(ValueError, match="1 or more"):
        plan.add("taskHandle", FaultKind.DROP, attempts=(0,))
    with pytest.raises(ValueError, match="empty"):
        plan.add(" / ", FaultKind.DROP)
    with pytest.raises(ValueError, match="attempts"):
        plan.add_from_json({"endpoint": "taskHandle", "kind": "drop", "attempts": "twice"})
    assert plan.faults == []


def test_a_centre_refuses_a_fault_for_an_endpoint_it_does_not_serve() -> None:
    """A typo in the endpoint would inject nothing and a test would pass for the wrong
    reason; suffixes of real endpoints and '*' still name them."""
    center = FakeCenter()
    with pytest.raises(ValueError, match="'taskHandel' names no endpoint of the centre"):
        center.faults.add("taskHandel", FaultKind.DROP)
    for pattern in ("taskHandle", "todo/addTask", "addTask", "oauth2/token", "*"):
        center.faults.add(pattern, FaultKind.DROP)
    assert len(center.faults.faults) == 5


def test_plan_from_json_and_kind_names() -> None:
    """A JSON fault spec and kind names in either case give the same fault."""
    plan = FaultPlan()
    fault = plan.add_from_json({"endpoint": "/taskHandle", "kind": "DROP", "attempts": [1, 3]})
    assert fault == Fault("taskHandle", FaultKind.DROP, frozenset({1, 3}), 1.0)
    assert fault.to_json()["attempts"] == [1, 3]
    assert [plan.next_fault("taskHandle") for _ in range(3)] == [fault, None, fault]
