"""The requests TTCClient puts on the wire are those ``httpx.Client.post`` would send.

With a transport of its own the client hands requests to it directly instead of going through
``httpx.Client``'s general machinery; these tests pin down that nothing a centre (or a gateway
in front of it) could see changed: URL, headers, body, timeout, cookies, the 401 refresh, and
the refusal to send after ``close``. Without a transport the client still goes through
``httpx.Client`` (proxies from the environment); that path is checked over loopback.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from engine_bridge.errors import CenterAuthError
from engine_bridge.facts import Endpoint
from engine_bridge.testing.fake_center import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeCenter
from engine_bridge.ttc import StaticToken, TTCClient

from .conftest import APP_ID, BASE

HANDLE = {"previousTaskId": "T1", "handler": "u1", "status": "none"}
OK = {"code": 0, "message": "ok", "data": {"errorIds": []}}


class Recorder:
    """A transport that records each request and answers from a script (then ``OK``)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self._answers:
            return self._answers.pop(0)
        return httpx.Response(200, json=OK)


def _client(recorder: Recorder, base: str = BASE, **kwargs: Any) -> TTCClient:
    return TTCClient(
        base,
        app_id=APP_ID,
        token_provider=StaticToken("tok-1"),
        transport=httpx.MockTransport(recorder),
        **kwargs,
    )


def _seen(request: httpx.Request) -> tuple[Any, ...]:
    return (
        request.method,
        str(request.url),
        sorted(request.headers.multi_items()),
        request.content,
        request.extensions.get("timeout"),
    )


@pytest.mark.parametrize("base", [BASE, f"{BASE}/gateway/", f"{BASE}/gateway"])
def test_request_matches_what_httpx_client_post_sends(base: str) -> None:
    """Same method, URL (base paths merged as httpx merges them), headers, body, timeout."""
    direct = Recorder()
    with _client(direct, base, timeout=7.5) as client:
        assert client.task_handle([HANDLE]).all_ok
    (sent,) = direct.requests

    reference = Recorder()
    with httpx.Client(
        base_url=base.rstrip("/"),
        transport=httpx.MockTransport(reference),
        timeout=7.5,
        headers={"Content-Type": "application/json"},
    ) as http:
        http.post(
            Endpoint.TASK_HANDLE.path,
            content=sent.content,
            headers={"Authorization": "tok-1"},
        )
    (expected,) = reference.requests

    assert _seen(sent) == _seen(expected)
    assert json.loads(sent.content) == [{**HANDLE, "appId": APP_ID}]


def test_cookies_set_by_the_centre_are_sent_back() -> None:
    """A gateway's session cookie travels on later calls, as with ``httpx.Client``."""
    recorder = Recorder(
        httpx.Response(200, json=OK, headers={"set-cookie": "route=node-7; Path=/"}),
    )
    with _client(recorder) as client:
        client.task_handle([HANDLE])
        client.task_handle([HANDLE])
    first, second = recorder.requests
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "route=node-7"


def test_a_401_is_sent_once_more_with_a_fresh_token() -> None:
    """The refresh of ``CenterTokenAuth`` runs on the direct path too: one retry, then an
    auth error."""
    fake = FakeCenter()
    with TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        transport=fake.transport(),
    ) as client:
        client.add_transaction([{"taskId": "T1", "handlers": "u1"}])
        fake.expire_tokens()
        assert client.task_handle([HANDLE]).all_ok
        assert fake.token_requests == 2
        statuses = [c["status"] for c in fake.calls("taskHandle")]
        assert statuses == [401, 200]

    refusing = Recorder(*[httpx.Response(401, json={"error": "invalid_token"})] * 3)
    with _client(refusing) as client, pytest.raises(CenterAuthError):
        client.task_handle([HANDLE])
    assert len(refusing.requests) == 2


def test_nothing_is_sent_after_close() -> None:
    recorder = Recorder()
    client = _client(recorder)
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.task_handle([HANDLE])
    assert recorder.requests == []


def test_client_without_a_transport_goes_through_httpx_over_loopback() -> None:
    """The path a deployment takes (a URL, no transport): same results, same 401 refresh."""
    fake = FakeCenter()
    with (
        fake.serve() as server,
        TTCClient(
            server.url,
            app_id=APP_ID,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
        ) as client,
    ):
        assert client.add_transaction([{"taskId": "T1", "handlers": "u1,u2"}]).all_ok
        fake.expire_tokens()
        first = client.task_handle([HANDLE])
        again = client.task_handle([HANDLE])
    assert [(r.ok, r.code) for r in (*first.items, *again.items)] == [(True, None), (False, 2005)]
    assert fake.token_requests == 2
    assert fake.open_todos() == {"T1": ["u2"]}
