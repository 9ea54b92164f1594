"""Client-credentials tokens: issued on the right secret, required, expiring by the clock."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from fake_center_helpers import PREFIX, Caller, first

from engine_bridge.clock import FakeClock
from engine_bridge.testing import FakeCenter


def test_token_is_issued_for_the_right_credentials(caller: Caller, center: FakeCenter) -> None:
    """A form-encoded client_credentials request gets a bearer token with its lifetime."""
    response = caller.client.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "test-client",
            "client_secret": "test-secret",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 16
    assert center.token_requests == 1


def test_wrong_secret_or_grant_is_refused(caller: Caller, center: FakeCenter) -> None:
    """A wrong secret is HTTP 401 invalid_client; a wrong grant type is HTTP 400."""
    bad = caller.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "test-client", "client_secret": "x"},
    )
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    grant = caller.client.post(
        "/oauth2/token",
        data={"grant_type": "password", "client_id": "test-client", "client_secret": "test-secret"},
    )
    assert grant.status_code == 400
    as_json = caller.client.post(
        "/oauth2/token",
        json={"grant_type": "client_credentials", "client_id": "test-client"},
    )
    assert as_json.status_code == 400
    assert center.token_requests == 0


def test_calls_need_a_valid_token(caller: Caller, center: FakeCenter) -> None:
    """No header, or an unknown token: HTTP 401 and nothing applied."""
    url = PREFIX + "addTransaction"
    assert caller.client.post(url, json=[first("t1")]).status_code == 401
    unknown = caller.client.post(url, json=[first("t1")], headers={"Authorization": "forged"})
    assert unknown.status_code == 401
    assert center.open_todos() == {}
    assert [e["applied"] for e in center.calls("addTransaction")] == [False, False]


def test_raw_and_bearer_tokens_are_both_accepted(caller: Caller, center: FakeCenter) -> None:
    """The documented raw header and the OAuth2 'Bearer <token>' both work."""
    token = caller.fetch_token()
    url = PREFIX + "addTransaction"
    raw = caller.client.post(url, json=[first("t1")], headers={"Authorization": token})
    bearer = caller.client.post(
        url, json=[first("t2")], headers={"Authorization": f"Bearer {token}"}
    )
    assert (raw.status_code, bearer.status_code) == (200, 200)
    assert sorted(center.open_todos()) == ["t1", "t2"]


def test_token_expires_after_its_lifetime(clock: FakeClock) -> None:
    """A token works until its ttl has passed on the centre's clock, then answers 401."""
    center = FakeCenter(clock=clock, token_ttl_seconds=60)
    with httpx.Client(transport=center.transport(), base_url="http://c") as client:
        caller = Caller(client)
        caller.fetch_token()
        clock.advance(timedelta(seconds=59))
        assert caller.raw("addTransaction", [first("t1")]).status_code == 200
        clock.advance(timedelta(seconds=1))
        assert caller.raw("addTransaction", [first("t2")]).status_code == 401
        caller.fetch_token()
        assert caller.raw("addTransaction", [first("t2")]).status_code == 200
    assert center.token_requests == 2


def test_expire_tokens_invalidates_every_token(caller: Caller, center: FakeCenter) -> None:
    """After expire_tokens() every issued token is refused."""
    caller.fetch_token()
    center.expire_tokens()
    response = caller.raw("addTransaction", [first("t1")])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_auth_can_be_switched_off() -> None:
    """require_auth=False accepts calls without a token."""
    center = FakeCenter(require_auth=False)
    with httpx.Client(transport=center.transport(), base_url="http://c") as client:
        response = client.post(PREFIX + "addTransaction", json=[first("t1")])
    assert response.status_code == 200
    assert center.open_todos() == {"t1": ["T001"]}


def test_secret_and_token_never_appear_in_state_or_log(caller: Caller, center: FakeCenter) -> None:
    """The request log redacts the client secret and the issued access token."""
    token = caller.fetch_token()
    caller.call("addTransaction", [first("t1")])
    dumped = json.dumps(center.state(), ensure_ascii=False) + repr(center)
    assert "test-secret" not in dumped
    assert token not in dumped
    assert center.calls("oauth2/token")[0]["body"]["client_secret"] == "***"
