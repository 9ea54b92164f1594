"""The client secret and the access tokens appear nowhere an operator or attacker can read.

A Bridge delivers through a client whose every request passes a recording transport (so the
test knows every token actually used) to the fake centre, which misbehaves in every way it
can, refuses tokens and drops calls until rows become dead letters. Then no log record (any
logger, DEBUG included), no stored error, response or dead letter, no error message and no
repr contains the secret or any of the tokens.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import EngineBridgeError
from engine_bridge.relay import Relay
from engine_bridge.retry import RetryPolicy
from engine_bridge.testing import FakeCenter, FaultKind
from engine_bridge.ttc import TTCClient

from .conftest import WORKFLOWS

SECRET = "client-secret-7Hq2-never-shown"
LEAVE = {
    "applicant_name": "张三",
    "reason": "回家探亲",
    "counselor": "T001",
    "dean": "D001",
    "days": 5,
}


class RecordingTransport(httpx.BaseTransport):
    """Passes requests to the fake centre and remembers every Authorization value sent."""

    def __init__(self, center: FakeCenter) -> None:
        self._inner = center.transport()
        self.tokens: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        value = request.headers.get("authorization")
        if value:
            self.tokens.add(value.removeprefix("Bearer ").strip())
        response = self._inner.handle_request(request)
        if request.url.path.endswith("/oauth2/token"):
            response.read()
            try:
                issued = json.loads(response.content).get("access_token")
            except (ValueError, AttributeError):
                issued = None
            if isinstance(issued, str):
                self.tokens.add(issued)
        return response


def test_no_secret_or_token_in_logs_errors_dead_letters_or_reprs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Faults of every kind, refused tokens and dead letters leak neither secret nor token."""
    caplog.set_level(logging.DEBUG)
    center = FakeCenter(client_secret=SECRET)
    transport = RecordingTransport(center)
    clock = FakeClock()
    client = TTCClient(
        "http://centre.test",
        app_id="secrets",
        client_id="test-client",
        client_secret=SECRET,
        transport=transport,
    )
    errors: list[str] = []
    with Bridge.open(
        WORKFLOWS,
        database=f"sqlite:///{tmp_path / 'b.db'}",
        center=client,
        clock=clock,
        auto_deliver=False,
    ) as bridge:
        relay = Relay(
            bridge.store,
            client,
            clock=clock,
            policy=RetryPolicy(max_attempts=3, rng=random.Random(1)),
        )
        faults = [("addTransaction", kind) for kind in FaultKind if kind is not FaultKind.DELAY]
        faults += [("oauth2/token", FaultKind.HTTP_5XX), ("oauth2/token", FaultKind.DROP)]
        for n, (endpoint, kind) in enumerate(faults):  # DELAY in-process is only slowness
            center.faults.clear()
            center.expire_tokens()
            center.faults.add(endpoint, kind, attempts="all")
            bridge.start("leave_approval", initiator="2023001", data=LEAVE, key=f"k{n}")
            for _ in range(4):
                report = relay.drain()
                errors.extend(report.errors)
                clock.advance(timedelta(minutes=2))
        center.faults.clear()
        center.expire_tokens()  # the cached token is refused: a 401, then a fresh token
        bridge.start("leave_approval", initiator="2023001", data=LEAVE, key="fine")
        relay.drain()
        wrong = TTCClient(
            "http://centre.test",
            app_id="secrets",
            client_id="test-client",
            client_secret=SECRET + "-wrong",
            transport=transport,
        )
        try:
            wrong.send(bridge.store.outbox(limit=1)[0].endpoint, [bridge.store.outbox()[0].item])
        except EngineBridgeError as exc:
            errors.append(str(exc))
        rows = bridge.store.outbox(limit=1000)
        reprs = [repr(client), repr(client.token_provider), repr(relay), repr(wrong)]

    assert any(r.status == "dead" for r in rows), "the faults made no dead letter"
    assert len(transport.tokens) >= 3, "too few tokens were issued to mean anything"
    stored = json.dumps([asdict(r) for r in rows], default=str, ensure_ascii=False)
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {getattr(r, 'args', '')}" for r in caplog.records
    )
    state = json.dumps(center.state(), ensure_ascii=False)
    for place, text in {
        "log records": logged,
        "outbox rows and dead letters": stored,
        "error messages": "\n".join(errors),
        "reprs": "\n".join(reprs),
        "the fake centre's log": state,
    }.items():
        assert SECRET not in text, f"the client secret is in the {place}"
        leaked = [t for t in transport.tokens if t in text]
        assert leaked == [], f"an access token is in the {place}"
    assert logged  # the run did log (so the check above looked at something)
