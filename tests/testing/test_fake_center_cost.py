"""What keeps the fake centre cheap per call must not change what it answers or records.

A countersign todo checks and counts a handle against sets kept beside its lists, without
scanning its handlers; the request log holds the body as parsed once for the rules and the
answer as encoded; a created todo keeps its own copy of the item it was created from.
"""

from __future__ import annotations

from typing import Any

from fake_center_helpers import APP, Caller, codes, first, handle

from engine_bridge.testing import FakeCenter


class NoScan(list[str]):
    """A handler list that fails any membership test: a handle must not scan the list."""

    def __contains__(self, item: object) -> bool:
        raise AssertionError(f"scanned the handler list for {item!r}")


def test_a_countersign_handle_does_not_scan_its_handlers(
    caller: Caller, center: FakeCenter
) -> None:
    signers = [f"s{i}" for i in range(300)]
    caller.errors("addTransaction", [first("cs", ",".join(signers))])
    todo = center._todos["cs"]
    todo["handlers"] = NoScan(todo["handlers"])
    for signer in signers[:-1]:
        assert caller.errors("taskHandle", [handle("cs", signer, "none")]) == []
    assert center.open_todos() == {"cs": [signers[-1]]}
    assert codes(caller.errors("taskHandle", [handle("cs", "s0", "none")])) == [("cs", 2005)]
    assert codes(caller.errors("taskHandle", [handle("cs", "nobody", "none")])) == [("cs", 2007)]
    assert caller.errors("taskHandle", [handle("cs", signers[-1], "none")]) == []
    assert center.open_todos() == {}
    assert center.state()["todos"]["cs"]["handled"] == signers


def test_shares_follow_a_todo_recreated_after_reset(caller: Caller, center: FakeCenter) -> None:
    """The sets belong to one todo record: a new todo under the same id starts afresh."""
    caller.errors("addTransaction", [first("cs", "A,B")])
    assert caller.errors("taskHandle", [handle("cs", "A", "none")]) == []
    center.reset()
    caller.errors("addTransaction", [first("cs", "A,C")])
    assert caller.errors("taskHandle", [handle("cs", "A", "none")]) == []
    assert center.open_todos() == {"cs": ["C"]}


def test_shares_follow_handles_recorded_behind_their_back(
    caller: Caller, center: FakeCenter
) -> None:
    """Sets that no longer match the todo's ``handled`` list are rebuilt, not trusted."""
    caller.errors("addTransaction", [first("cs", "A,B,C")])
    assert caller.errors("taskHandle", [handle("cs", "A", "none")]) == []
    center._todos["cs"]["handled"].append("B")
    assert codes(caller.errors("taskHandle", [handle("cs", "B", "none")])) == [("cs", 2005)]
    assert caller.errors("taskHandle", [handle("cs", "C", "none")]) == []
    assert center.state()["todos"]["cs"]["state"] == "done"


def test_a_group_share_still_counts_beside_listed_handlers(
    caller: Caller, center: FakeCenter
) -> None:
    item: dict[str, Any] = {**first("g", "A"), "handlingGroup": "office"}
    caller.errors("addTransaction", [item])
    assert caller.errors("taskHandle", [handle("g", "A", "none")]) == []
    assert center.open_todos() == {"g": ["group:office"]}
    assert caller.errors("taskHandle", [handle("g", "clerk", "none")]) == []
    assert center.open_todos() == {}


def test_the_log_holds_the_body_and_answer_as_sent(caller: Caller, center: FakeCenter) -> None:
    body = [first("t1"), handle("nope", "A", "none")]
    envelope = caller.call("addTransaction", body)
    (entry,) = center.calls("addTransaction")
    assert entry["body"] == body
    assert entry["response"] == envelope
    assert entry["applied"] is True and entry["status"] == 200


def test_a_refused_call_is_logged_as_not_applied(caller: Caller, center: FakeCenter) -> None:
    """A 401 answer (not processed) and a body that is not JSON are logged as they came."""
    caller.fetch_token()
    center.expire_tokens()
    assert caller.raw("addTransaction", [first("t1")]).status_code == 401
    caller.fetch_token()
    response = caller.client.post(
        "/apis/ttc/v1/transaction/poa/addTransaction",
        content=b"[not json",
        headers={"Authorization": caller.token or ""},
    )
    assert response.status_code == 400
    refused, garbled = center.calls("addTransaction")
    assert (refused["status"], refused["applied"]) == (401, False)
    assert refused["body"] == [first("t1")]
    assert refused["response"]["error"] == "invalid_token"
    assert (garbled["status"], garbled["applied"], garbled["body"]) == (400, False, "[not json")
    assert center.calls("oauth2/token")[0]["body"]["client_secret"] == "***"
    assert center.calls("oauth2/token")[0]["response"]["access_token"] == "***"


def test_a_todo_keeps_its_own_copy_of_the_item(caller: Caller, center: FakeCenter) -> None:
    """Changing a logged body afterwards (tests do inspect and edit them) leaves the todo."""
    item = {**first("t1"), "taskSummary": ["a|1"], "actions": [{"name": "ok", "type": "HANDLE"}]}
    caller.errors("addTransaction", [item])
    logged = center.calls("addTransaction")[0]["body"][0]
    logged["taskSummary"].append("b|2")
    logged["actions"][0]["name"] = "changed"
    kept = center.state()["todos"]["t1"]["item"]
    assert kept["taskSummary"] == ["a|1"]
    assert kept["actions"] == [{"name": "ok", "type": "HANDLE"}]
    assert kept["appId"] == APP
