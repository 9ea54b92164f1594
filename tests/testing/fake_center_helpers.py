"""Helpers for the fake to-do centre's tests: a raw JSON caller and item builders."""

from __future__ import annotations

from typing import Any

import httpx

APP = "app-1"
PREFIX = "/apis/ttc/v1/transaction/poa/"


class Caller:
    """Sends raw JSON bodies to a centre the way any client would (token, then calls)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.token: str | None = None

    def fetch_token(self) -> str:
        response = self.client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "test-client",
                "client_secret": "test-secret",
                "scope": "ttc:v1:writeTtc",
            },
        )
        assert response.status_code == 200, response.text
        self.token = str(response.json()["access_token"])
        return self.token

    def raw(self, endpoint: str, body: Any, *, method: str = "POST") -> httpx.Response:
        if self.token is None:
            self.fetch_token()
        headers = {"Authorization": self.token or ""}
        return self.client.request(method, PREFIX + endpoint, json=body, headers=headers)

    def call(self, endpoint: str, body: Any) -> dict[str, Any]:
        """POST and return the envelope, checking it is a well-formed HTTP 200 answer."""
        response = self.raw(endpoint, body)
        assert response.status_code == 200, response.text
        envelope: dict[str, Any] = response.json()
        assert {"took", "timestamp", "code", "message", "data"} <= envelope.keys()
        return envelope

    def errors(self, endpoint: str, body: Any) -> list[dict[str, Any]]:
        """POST a batch and return its ``errorIds`` (outer code must be 0)."""
        envelope = self.call(endpoint, body)
        assert envelope["code"] == 0, envelope
        errors: list[dict[str, Any]] = envelope["data"]["errorIds"]
        return errors


def first(task_id: str, handlers: str = "T001", **extra: Any) -> dict[str, Any]:
    """An ``addTransaction`` item creating a new transaction."""
    return {"appId": APP, "taskId": task_id, "handlers": handlers, "initiator": "2023001", **extra}


def nxt(task_id: str, handlers: str = "T002", **extra: Any) -> dict[str, Any]:
    """A ``next[]`` element."""
    return {"taskId": task_id, "handlers": handlers, "nodeId": f"node-{task_id}", **extra}


def handle(task_id: str, handler: str, status: str, *next_items: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "appId": APP,
        "previousTaskId": task_id,
        "handler": handler,
        "status": status,
    }
    if next_items:
        item["next"] = list(next_items)
    return item


def codes(errors: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["taskId"], e["code"]) for e in errors]
