"""No text of a centre answer carries the access token or the client secret any further.

A gateway may echo the token it was sent (or the secret) anywhere in its answer: in a non-2xx
body, in the outer ``message`` of a 2xx envelope, in an ``errorIds`` entry, in the urge
call's message; raw, JSON-escaped (``\\/``, ``\\u002f``) or URL-encoded (``%2F``, ``+``).
Every such text reaches errors, results, logs and the outbox's stored errors (which
``engine-bridge outbox list/show`` print) only with them replaced by ``[redacted]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from engine_bridge.cli import main as cli_main
from engine_bridge.clock import FakeClock
from engine_bridge.errors import CenterError, CenterRejectedError
from engine_bridge.facts import CenterCall, Endpoint, Ledger
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import HistoryDraft, StepRecord, Store
from engine_bridge.ttc import AsyncTTCClient, BatchResult, CenterTokenAuth, StaticToken, TTCClient
from engine_bridge.ttc.auth import REDACTED, redact_secrets

from .conftest import APP_ID, BASE

SECRET = "S3cr3t/Pass+word== ü"
OPAQUE = "opaque/tok+en==xyz-0123"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-NATURE_abc"

# ------------------------------------------------------------------ the forms, one by one


def json_inner(text: str) -> str:
    """``text`` as inside a JSON string (what ``json.dumps`` writes, without the quotes)."""
    return json.dumps(text)[1:-1]


def u_escaped(text: str) -> str:
    """Every character but letters and digits as ``\\uXXXX``, as some encoders write."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\u{ord(c):04X}" for c in text)


FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "json": json_inner,
    "json-not-ascii": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json-slash-escaped": lambda s: json_inner(s).replace("/", "\\/"),
    "json-u-escaped": u_escaped,
    "json-u002f-lower": lambda s: json_inner(s).replace("/", "\\u002f"),
    "json-in-json": lambda s: json.dumps(json.dumps(s))[3:-3],
    "quote": quote,
    "quote-all": lambda s: quote(s, safe=""),
    "quote-plus": quote_plus,
    "quote-plus-all": lambda s: quote_plus(s, safe=""),
    "quote-lower-hex": lambda s: re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s, safe="")),
    "quote-twice": lambda s: quote(quote(s, safe=""), safe=""),
    "quote-of-json": lambda s: quote(json_inner(s).replace("/", "\\/"), safe=""),
}


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
@pytest.mark.parametrize("secret", [SECRET, OPAQUE, JWT], ids=["secret", "opaque", "jwt"])
def test_every_form_of_a_secret_is_redacted(form: str, secret: str) -> None:
    text = f'{{"error": "bad token {FORMS[form](secret)}", "at": "gw-1"}}'
    redacted = redact_secrets(text, (OPAQUE, SECRET))
    assert redacted == f'{{"error": "bad token {REDACTED}", "at": "gw-1"}}'


@pytest.mark.parametrize(
    "echoed",
    [
        JWT.replace(".", "\\u002e"),
        JWT.replace(".", "%2E"),
        quote(f"Bearer {JWT}", safe=""),
        json_inner(f"Bearer {JWT}").replace("/", "\\/"),
    ],
    ids=["dots-u-escaped", "dots-percent", "url-encoded-header", "json-escaped-header"],
)
def test_jwt_shaped_text_is_redacted_in_escaped_forms_too(echoed: str) -> None:
    """A JWT the client never sent (another client's, a gateway's) is still redacted."""
    assert "eyJhbGciOiJIUzI1NiJ9" not in redact_secrets(f"got {echoed} here", ())


def test_the_auth_redacts_tokens_sent_and_the_secret_in_escaped_forms() -> None:
    auth = CenterTokenAuth(StaticToken(OPAQUE), secrets=(SECRET,))
    request = httpx.Request("POST", f"{BASE}/x")
    next(auth.sync_auth_flow(request))  # the token is now one "lately sent"
    text = f"{quote_plus(OPAQUE)} and {u_escaped(SECRET)} and {json_inner(OPAQUE)}"
    assert auth.redact(text) == f"{REDACTED} and {REDACTED} and {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "plain words, 100% sure, a+b",
        'C:\\path\\to\\file "quoted" \\u00e9t\\u00e9',
        "eyJ alone. eyJnot.a-jwt",
        "opaque/tok en==xyz-0123",  # one character off
    ],
)
def test_text_without_secrets_is_left_as_it_is(text: str) -> None:
    assert redact_secrets(text, (OPAQUE, SECRET)) == text


def test_short_secrets_are_not_redacted_everywhere() -> None:
    assert redact_secrets("a%2Fb abc", ("a/b", "abc")) == "a%2Fb abc"


# ------------------------------------------------------------------ end to end


class EchoingCentre:
    """A gateway and centre that answer every call with a failure quoting the token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(200, json={"access_token": self.token, "expires_in": 3600})
        sent = request.headers["Authorization"]
        body = json.loads(request.content)
        path = request.url.path
        if path.endswith("/addTransaction"):  # a 2xx whose outer code says the call failed
            text = json.dumps(
                {"code": 500, "message": f"bad Authorization {sent}", "data": None}
            ).replace("/", "\\/")
            return httpx.Response(200, content=text.encode())
        if path.endswith("/taskHandle"):  # per-element failures, one the client cannot place
            errors = [
                {"taskId": body[0]["previousTaskId"], "code": 2004, "message": quote(sent)},
                {"taskId": f"?{sent}", "code": 2005, "message": u_escaped(sent)},
            ]
            answer = {"code": 0, "message": "partly", "data": {"errorIds": errors}}
            return httpx.Response(200, json=answer)
        if path.endswith("/taskCuiBanNew"):  # urge: the outer code is the element's failure
            answer = {"code": 500, "message": f"催办失败: {quote_plus(sent)}", "data": None}
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"code": 0, "message": "ok", "data": {"errorIds": []}})


def new_todo(task_id: str) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "taskName": "请假审批",
        "nodeId": "counselor_review",
        "nodeName": "辅导员审批",
        "handlers": "T001",
        "initiator": "2023001",
        "transTypeCode": "leave",
        "transTypeName": "请假",
        "transcationName": "请假申请",
    }


def handle(task_id: str) -> dict[str, Any]:
    return {"previousTaskId": task_id, "handler": "T001", "status": "end"}


def urge(task_id: str) -> dict[str, Any]:
    return {"taskId": task_id, "creator": "2023001"}


CALLS: list[tuple[Endpoint, dict[str, Any]]] = [
    (Endpoint.ADD_TRANSACTION, new_todo("T-add")),
    (Endpoint.TASK_HANDLE, handle("T-h1")),
    (Endpoint.TASK_HANDLE, handle("T-h2")),
    (Endpoint.URGE, urge("T-urge")),
]


def leaks(token: str, texts: list[str]) -> list[str]:
    """The texts that show the token or the secret in any form a test echoes."""
    shown = [f(s) for s in (token, SECRET) for f in FORMS.values()]
    return [t for t in texts if any(s in t for s in shown)]


@pytest.mark.parametrize("token", [OPAQUE, JWT], ids=["opaque", "jwt"])
def test_echoed_tokens_reach_no_error_result_log_or_stored_row(
    token: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    heard: list[str] = []  # what a transcript would write
    client = TTCClient(
        BASE,
        app_id=APP_ID,
        client_id="client",
        client_secret=SECRET,
        transport=httpx.MockTransport(EchoingCentre(token)),
        exchange_hook=lambda path, sent, answer: heard.append(json.dumps(answer)),
    )
    with client:
        # The client itself: the error of a 2xx outer-code answer, and the per-item results.
        with pytest.raises(CenterRejectedError) as rejected:
            client.add_transaction([new_todo("T-0")])
        texts.append(str(rejected.value))
        assert REDACTED in str(rejected.value)
        for endpoint, item in CALLS[1:]:
            result = client.send(endpoint, [item])
            assert not result.all_ok
            texts.append(repr(result))
            assert REDACTED in repr(result)

        # The relay delivering the same calls from the outbox: stored errors and the listing.
        database = f"sqlite:///{tmp_path / 'relay.db'}"
        clock = FakeClock()
        store = Store.open(database)
        try:
            for n, (endpoint, item) in enumerate(CALLS):
                store.commit_step(
                    StepRecord(
                        instance_id=f"i{n}",
                        expected_version=None,
                        process_id="leave_approval",
                        definition_version="v1",
                        initiator="2023001",
                        status="running",
                        state="{}",
                        ledger=Ledger(),
                        calls=[CenterCall(endpoint=endpoint, item=item)],
                        history=HistoryDraft(kind="step", payload={}, at=clock.now()),
                    )
                )
            relay = Relay(store, client, clock=clock, policy=RetryPolicy(rng=random.Random(1)))
            report = relay.drain()
            texts.extend(report.errors)
            rows = store.outbox(limit=100)
        finally:
            store.close()
    assert len(rows) == len(CALLS)
    assert all(row.errors and row.last_error for row in rows)  # every row did fail
    texts.extend(repr(asdict(row)) for row in rows)
    assert cli_main(["outbox", "list", "--database", database]) == 0
    for row in rows:
        assert cli_main(["outbox", "show", str(row.id), "--database", database]) == 0
    texts.append(capsys.readouterr().out)
    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(str(record.exc_info) for record in caplog.records if record.exc_info)
    assert any(REDACTED in record.getMessage() for record in caplog.records)
    assert heard and all(REDACTED in answer for answer in heard[:4])
    texts.extend(heard)
    assert leaks(token, texts) == []


@pytest.mark.parametrize("token", [OPAQUE, JWT], ids=["opaque", "jwt"])
def test_the_async_client_redacts_the_same_answers(token: str) -> None:
    async def run() -> tuple[str, list[BatchResult]]:
        async with AsyncTTCClient(
            BASE,
            app_id=APP_ID,
            client_id="client",
            client_secret=SECRET,
            transport=httpx.MockTransport(EchoingCentre(token)),
        ) as client:
            try:
                await client.add_transaction([new_todo("T-0")])
            except CenterError as exc:
                error = str(exc)
            else:  # pragma: no cover - the centre always fails this call
                error = ""
            results = [await client.send(endpoint, [item]) for endpoint, item in CALLS[1:]]
            return error, results

    error, results = asyncio.run(run())
    assert REDACTED in error
    texts = [error, *(repr(r) for r in results)]
    assert all(REDACTED in t for t in texts)
    assert leaks(token, texts) == []
