"""The fake centre over real loopback sockets: same rules, same faults, UTF-8 on the wire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fake_center_helpers import APP, Caller, codes, first, handle, nxt

from engine_bridge.testing import FakeCenter, FakeCenterServer, FaultKind


@pytest.fixture
def served() -> Iterator[tuple[FakeCenter, FakeCenterServer]]:
    center = FakeCenter(app_id=APP)
    with center.serve() as server:
        yield center, server


@pytest.fixture
def net(served: tuple[FakeCenter, FakeCenterServer]) -> Iterator[Caller]:
    _, server = served
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield Caller(client)


def wait_for(predicate: Any, what: str) -> None:
    """Poll until the server thread has done something the client could not wait for."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_url_names_the_bound_loopback_port(served: tuple[FakeCenter, FakeCenterServer]) -> None:
    """port=0 binds a free port and url reports it."""
    _, server = served
    assert server.url.startswith("http://127.0.0.1:")
    assert server.port > 0 and server.url.endswith(f":{server.port}")


def test_a_whole_transaction_over_sockets_with_chinese_text(
    served: tuple[FakeCenter, FakeCenterServer], net: Caller
) -> None:
    """Create, handle and end over HTTP; Chinese text round-trips in both directions."""
    center, _ = served
    assert net.errors("addTransaction", [first("t1", taskName="请假审批")]) == []
    envelope = net.call("taskHandle", [handle("t1", "T001", "next", nxt("t2", nodeName="院长"))])
    assert envelope["message"] == "办理成功"
    assert center.state()["todos"]["t2"]["node_name"] == "院长"
    assert codes(net.errors("taskHandle", [handle("t1", "T001", "none")])) == [("t1", 2005)]
    assert net.errors("taskHandle", [handle("t2", "T002", "end")]) == []
    state = net.client.get("/_fake/state").json()
    assert state["todos"]["t1"]["task_name"] == "请假审批"
    assert state["transactions"]["t1"]["status"] == "FINISH"
    assert state["open_todos"] == {}


def test_auth_is_enforced_over_sockets(net: Caller) -> None:
    """No token over HTTP is a 401 too."""
    response = net.client.post("/apis/ttc/v1/transaction/poa/addTransaction", json=[first("t")])
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("kind", "applied"),
    [
        (FaultKind.HTTP_5XX, False),
        (FaultKind.OUTER_CODE, False),
        (FaultKind.DROP, False),
        (FaultKind.APPLIED_ANSWER_LOST, True),
        (FaultKind.MALFORMED_JSON, False),
        (FaultKind.TOKEN_EXPIRED, False),
        (FaultKind.DELAY, True),
    ],
)
def test_each_fault_kind_over_sockets(
    served: tuple[FakeCenter, FakeCenterServer], net: Caller, kind: FaultKind, applied: bool
) -> None:
    """Every fault kind misbehaves on the wire as scripted, applied or not as documented."""
    center, _ = served
    net.fetch_token()
    added = net.client.post(
        "/_fake/faults",
        json={"endpoint": "addTransaction", "kind": kind.value, "delay_seconds": 0.01},
    )
    assert added.status_code == 201
    outcome: str
    try:
        response = net.raw("addTransaction", [first("t1")])
    except httpx.TransportError:
        outcome = "no answer"
    else:
        try:
            outcome = f"{response.status_code} code={response.json().get('code')}"
        except ValueError:
            outcome = f"{response.status_code} not json"
    expected = {
        FaultKind.HTTP_5XX: "503 code=503",
        FaultKind.OUTER_CODE: "200 code=500",
        FaultKind.DROP: "no answer",
        FaultKind.APPLIED_ANSWER_LOST: "no answer",
        FaultKind.MALFORMED_JSON: "200 not json",
        FaultKind.TOKEN_EXPIRED: "401 code=None",
        FaultKind.DELAY: "200 code=0",
    }[kind]
    assert outcome == expected
    assert ("t1" in center.open_todos()) is applied
    # the fault was for attempt 1 only: the connection pool and a fresh token recover
    net.fetch_token()
    retry = net.raw("addTransaction", [first("t1")]).json()["data"]["errorIds"]
    assert codes(retry) == ([("t1", 2006)] if applied else [])


def test_delay_longer_than_the_client_timeout_still_applies(
    served: tuple[FakeCenter, FakeCenterServer], net: Caller
) -> None:
    """A DELAY beyond the client's read timeout: the client gives up, the centre applies."""
    center, _ = served
    net.fetch_token()
    center.faults.add("addTransaction", FaultKind.DELAY, delay_seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        net.client.post(
            "/apis/ttc/v1/transaction/poa/addTransaction",
            json=[first("t1")],
            headers={"Authorization": net.token or ""},
            timeout=0.05,
        )
    wait_for(lambda: "t1" in center.open_todos(), "the delayed request to be applied")


def test_control_endpoints(served: tuple[FakeCenter, FakeCenterServer], net: Caller) -> None:
    """/_fake/faults adds, lists and clears faults; /_fake/reset empties the centre."""
    center, _ = served
    net.call("addTransaction", [first("t1")])
    bad = net.client.post("/_fake/faults", json={"endpoint": "taskHandle", "kind": "boom"})
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
    typo = net.client.post("/_fake/faults", json={"endpoint": "taskHandel", "kind": "drop"})
    assert typo.status_code == 400 and "names no endpoint of the centre" in typo.json()["error"]
    net.client.post("/_fake/faults", json={"endpoint": "taskHandle", "kind": "drop"})
    assert [f["kind"] for f in net.client.get("/_fake/faults").json()] == ["drop"]
    assert net.client.delete("/_fake/faults").status_code == 200
    assert center.faults.faults == []
    assert net.client.post("/_fake/reset").json() == {"reset": True}
    assert center.open_todos() == {} and center.state()["requests"] == []


def test_server_is_quiet_on_stderr(
    served: tuple[FakeCenter, FakeCenterServer], net: Caller, capfd: pytest.CaptureFixture[str]
) -> None:
    """No request lines or tracebacks reach stderr, even for dropped connections."""
    center, _ = served
    center.faults.add("addTransaction", FaultKind.DROP)
    with pytest.raises(httpx.TransportError):
        net.raw("addTransaction", [first("t1")])
    net.call("addTransaction", [first("t1")])
    assert capfd.readouterr().err == ""


def test_closed_server_refuses_connections() -> None:
    """After close() the port no longer answers, even on a kept-alive connection."""
    center = FakeCenter(require_auth=False)
    server = center.serve()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/_fake/state").status_code == 200
        server.close()
        server.close()  # closing twice is harmless
        with pytest.raises(httpx.TransportError):
            client.get("/_fake/state")
