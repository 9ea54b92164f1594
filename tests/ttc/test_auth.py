"""The access token: cached until shortly before expiry, fetched once for concurrent callers,
refreshed once on 401, and never shown in reprs, errors or logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest

from engine_bridge.clock import FakeClock
from engine_bridge.errors import (
    CenterAuthError,
    CenterError,
    CenterProtocolError,
    CenterUnavailableError,
)
from engine_bridge.ttc import AsyncTTCClient, ClientCredentials, StaticToken, TTCClient

from .conftest import APP_ID, BASE, CLIENT_ID, CLIENT_SECRET, MiniCenter

TOKEN_URL = f"{BASE}/oauth2/token"


def credentials(center: MiniCenter, clock: FakeClock, **kwargs: Any) -> ClientCredentials:
    return ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=clock, transport=center.transport(), **kwargs
    )


def handle(task: str) -> dict[str, Any]:
    return {"previousTaskId": task, "handler": "T001", "status": "none"}


def test_token_is_cached_until_the_refresh_margin() -> None:
    """A token with 3600 s lifetime is reused until 60 s before it ends."""
    center, clock = MiniCenter(), FakeClock()
    provider = credentials(center, clock, refresh_margin_seconds=60)
    first = provider.token()
    clock.advance(timedelta(seconds=3539))
    assert provider.token() == first and center.token_fetches == 1
    clock.advance(timedelta(seconds=1))
    assert provider.token() != first and center.token_fetches == 2


def test_short_lived_token_is_still_used_for_half_its_life() -> None:
    """The margin is capped at half the lifetime, so a 60 s token is not refetched per call."""
    center, clock = MiniCenter(expires_in=60), FakeClock()
    provider = credentials(center, clock, refresh_margin_seconds=300)
    provider.token()
    clock.advance(timedelta(seconds=29))
    provider.token()
    assert center.token_fetches == 1
    clock.advance(timedelta(seconds=1))
    provider.token()
    assert center.token_fetches == 2


def test_token_request_is_the_documented_form() -> None:
    seen: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "abc", "expires": 100})

    provider = ClientCredentials(
        TOKEN_URL, "cid", "csecret", "s1,s2", transport=httpx.MockTransport(token_endpoint)
    )
    assert provider.token() == "abc"
    [request] = seen
    assert request.method == "POST" and str(request.url) == TOKEN_URL
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content.decode() == (
        "grant_type=client_credentials&client_id=cid&client_secret=csecret&scope=s1%2Cs2"
    )


def _gate_expecting(parties: int) -> Any:
    """Inside the token endpoint, wait (bounded) for ``parties`` concurrent fetches. With a
    working lock only one caller ever gets here, the wait times out, and one token is issued;
    without it, all callers meet here and each gets its own token."""
    barrier = threading.Barrier(parties)

    def gate() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=0.5)

    return gate


def run_threads(count: int, work: Any) -> list[Any]:
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        start.wait(timeout=5)
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    return results


def test_four_threads_needing_a_token_cause_one_fetch() -> None:
    center = MiniCenter()
    center.token_gate = _gate_expecting(4)
    provider = credentials(center, FakeClock())
    tokens = run_threads(4, lambda _: provider.token())
    assert center.token_fetches == 1
    assert len(set(tokens)) == 1 and tokens[0] is not None


def test_401_under_four_threads_causes_exactly_one_refresh() -> None:
    """The centre revoked the token: every thread's call gets 401, one new token is fetched,
    and every call is retried once with it and succeeds."""
    center = MiniCenter()
    client = TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=center.transport(),
        clock=FakeClock(),
    )
    with client:
        client.task_handle([handle("warm-up")])
        center.revoke_all()
        center.token_gate = _gate_expecting(4)
        results = run_threads(4, lambda i: client.task_handle([handle(f"T{i}")]))
    assert all(r is not None and r.all_ok for r in results)
    assert center.token_fetches == 2  # the first token and ONE refresh
    refused = [c for c in center.calls if c[2] == center.issued[0]]
    assert len(refused) >= 2  # warm-up + at least one call met the 401 and was retried


def test_four_tasks_needing_a_token_cause_one_fetch() -> None:
    center = MiniCenter()

    async def run() -> list[Any]:
        async with AsyncTTCClient(
            BASE,
            app_id=APP_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            transport=center.async_transport(),
            clock=FakeClock(),
        ) as client:
            first = await asyncio.gather(*(client.task_handle([handle(f"A{i}")]) for i in range(4)))
            center.revoke_all()
            second = await asyncio.gather(
                *(client.task_handle([handle(f"B{i}")]) for i in range(4))
            )
            return [*first, *second]

    results = asyncio.run(run())
    assert all(r.all_ok for r in results)
    assert center.token_fetches == 2  # one at the start, one after the revocation


def test_bad_credentials_are_a_non_retryable_auth_error() -> None:
    center = MiniCenter()
    provider = ClientCredentials(TOKEN_URL, CLIENT_ID, "wrong", transport=center.transport())
    with pytest.raises(CenterAuthError) as caught:
        provider.token()
    assert not caught.value.retryable
    assert "invalid_client" in str(caught.value) and CLIENT_ID in str(caught.value)
    assert "retrying will not help" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "error", "retryable"),
    [
        (httpx.Response(503), CenterUnavailableError, True),
        (httpx.Response(200, text="not json"), CenterProtocolError, True),
        (httpx.Response(200, json={"token_type": "bearer"}), CenterProtocolError, True),
        (httpx.Response(404), CenterProtocolError, False),
    ],
)
def test_token_endpoint_failures_are_classified(
    reply: httpx.Response, error: type[CenterError], retryable: bool
) -> None:
    provider = ClientCredentials(
        TOKEN_URL, CLIENT_ID, CLIENT_SECRET, transport=httpx.MockTransport(lambda _: reply)
    )
    with pytest.raises(error) as caught:
        provider.token()
    assert caught.value.retryable is retryable


def test_static_token_is_sent_as_given() -> None:
    center = MiniCenter()
    center.issued.append("fixed-token")
    client = TTCClient(
        BASE, app_id=APP_ID, token_provider=StaticToken("fixed-token"), transport=center.transport()
    )
    with client:
        assert client.task_handle([handle("A")]).all_ok
    assert center.calls[0][2] == "fixed-token"


def test_secrets_never_reach_reprs_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Run a token fetch, a 401 refresh, a refused refresh and a bad-credentials error with
    DEBUG logging on; neither the secret nor any issued token shows anywhere."""
    caplog.set_level(logging.DEBUG)
    center = MiniCenter()
    texts: list[str] = []
    client = TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=center.transport(),
        clock=FakeClock(),
    )
    with client:
        client.task_handle([handle("A")])
        center.revoke_all()
        client.task_handle([handle("B")])
        texts += [repr(client), repr(client.token_provider), str(vars(client.token_provider))]
        center.scheme = "Bearer"  # every token is now refused
        with pytest.raises(CenterAuthError) as refused:
            client.task_handle([handle("C")])
        texts.append(str(refused.value))
    bad = ClientCredentials(TOKEN_URL, CLIENT_ID, CLIENT_SECRET + "x", transport=center.transport())
    with pytest.raises(CenterAuthError) as denied:
        bad.token()
    texts += [str(denied.value), repr(bad), repr(StaticToken(CLIENT_SECRET))]
    texts += [record.getMessage() for record in caplog.records]
    assert any("fetched an access token" in t for t in texts)  # DEBUG logging did happen
    secrets = [CLIENT_SECRET, *center.issued]
    assert len(center.issued) >= 3
    for text in texts:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, '{{"error":"invalid_token","error_description":"Invalid access token: {token}"}}'),
        (403, "<html>forbidden for Authorization: {token} (client {secret})</html>"),
        (502, "upstream said: bad header {token} " + "x" * 300),
        (200, "<html>{token} eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl</html>"),
    ],
    ids=["401-echo", "403-page", "502-long", "200-not-json"],
)
def test_a_centre_answer_quoting_the_token_is_redacted_in_the_error(
    status: int, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway may echo the Authorization header it refused (Spring Security's 401 body
    does); the error quotes the answer, so the tokens, the secret and JWT-shaped text go."""
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            issued.append(f"tok-{len(issued)}-0123456789abcdef")
            return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 3600})
        token = request.headers["Authorization"]
        text = body.format(token=token, secret=CLIENT_SECRET)
        return httpx.Response(status, text=text)

    client = TTCClient(
        BASE,
        app_id=APP_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        transport=httpx.MockTransport(gateway),
        clock=FakeClock(),
    )
    with client, pytest.raises(CenterError) as failed:
        client.task_handle([handle("A")])
    shown = str(failed.value) + "".join(r.getMessage() for r in caplog.records)
    assert "[redacted]" in str(failed.value)
    assert issued and not any(t in shown for t in issued)
    assert CLIENT_SECRET not in shown and "eyJhbGciOiJIUzI1NiJ9" not in shown
