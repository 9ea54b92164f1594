"""A tiny stand-in for the POA gateway and the to-do centre, played by an httpx.MockTransport.

It knows just enough to test the client: it issues tokens, refuses calls without the current
one (401), records every call, and fails the elements whose key a test lists in ``fail``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

BASE = "https://poa.test.edu.cn"
APP_ID = "app-under-test"
CLIENT_ID = "client-under-test"
CLIENT_SECRET = "s3cret-never-logged"

KEYS = {
    "/apis/ttc/v1/transaction/poa/taskHandle": "previousTaskId",
    "/apis/ttc/v1/transaction/poa/todo/updateTransaction": "transactionId",
}


@dataclass
class MiniCenter:
    scheme: str | None = None  # how the centre expects Authorization: raw or "Bearer"
    expires_in: int = 3600
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (code, message)
    replies: list[httpx.Response] = field(default_factory=list)  # canned answers, used first
    token_fetches: int = 0
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    calls: list[tuple[str, Any, str | None]] = field(default_factory=list)
    token_gate: Callable[[], None] | None = None  # runs inside the token endpoint (sync)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ token

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return httpx.Response(401, json={"error": "invalid_client"})
        with self.lock:
            self.token_fetches += 1
            token = f"tok-{self.token_fetches}-zz9"
            self.issued.append(token)
        return httpx.Response(
            200, json={"access_token": token, "token_type": "bearer", "expires_in": self.expires_in}
        )

    def revoke_all(self) -> None:
        self.revoked.update(self.issued)

    # ------------------------------------------------------------------ centre

    def _authorised(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        token = header
        if self.scheme is not None:
            prefix = f"{self.scheme} "
            if not header.startswith(prefix):
                return None
            token = header[len(prefix) :]
        return token if token in self.issued and token not in self.revoked else None

    def _centre(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append((request.url.path, body, request.headers.get("Authorization")))
        if self._authorised(request) is None:
            return httpx.Response(401, json={"code": 401, "message": "unauthorized"})
        if self.replies:
            return self.replies.pop(0)
        if isinstance(body, dict):  # urge: a single object
            failure = self.fail.get(body.get("taskId", ""))
            if failure:
                return httpx.Response(200, json={"code": failure[0], "message": failure[1]})
            return httpx.Response(200, json={"code": 0, "message": "催办成功", "data": None})
        key = KEYS.get(request.url.path, "taskId")
        errors = [
            {
                "code": self.fail[item[key]][0],
                "taskId": item[key],
                "message": self.fail[item[key]][1],
            }
            for item in body
            if item.get(key) in self.fail
        ]
        return httpx.Response(
            200,
            json={
                "took": 3,
                "timestamp": 1669864234995,
                "code": 0,
                "message": "有异常数据" if errors else "成功",
                "data": {"errorIds": errors},
            },
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            if self.token_gate is not None:
                self.token_gate()
            return self._token(request)
        return self._centre(request)

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            # Give every other task a chance to run while this fetch is "in flight".
            for _ in range(20):
                await asyncio.sleep(0)
            return self._token(request)
        return self._centre(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.ahandle)

    def bodies(self, path_tail: str) -> list[Any]:
        return [body for path, body, _ in self.calls if path.endswith(path_tail)]


@pytest.fixture
def center() -> MiniCenter:
    return MiniCenter()
