"""The simulated centre refuses what the centre would: otherwise the invariant proves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from engine_bridge.facts import CenterCall, Endpoint
from engine_bridge.wire import creation_object

from .sim import APP, TRANSACTION, CentreRefused, SimCentre, todo


def add(node: str, *handlers: str, previous: str | None = None) -> CenterCall:
    item = creation_object(
        todo(node, *handlers), TRANSACTION, app_id=APP, previous_task_id=previous
    )
    return CenterCall(Endpoint.ADD_TRANSACTION, item)


def handle(task: str, handler: str, status: str, **extra: Any) -> CenterCall:
    item = {"appId": APP, "previousTaskId": task, "handler": handler, "status": status}
    item |= {"handleTime": "2026-01-01 08:00:00", **extra}
    return CenterCall(Endpoint.TASK_HANDLE, item)


def centre_with_a() -> SimCentre:
    centre = SimCentre()
    centre.apply(add("A", "T1", "T2"))
    return centre


def test_refuses_a_handle_by_someone_who_is_not_a_handler() -> None:
    with pytest.raises(CentreRefused, match="not an open handler"):
        centre_with_a().apply(handle("inst-1:A", "T9", "none"))


def test_none_closes_one_share_and_the_todo_after_the_last() -> None:
    centre = centre_with_a()
    centre.apply(handle("inst-1:A", "T1", "none"))
    assert centre.pairs() == {("inst-1:A", "T2")}
    with pytest.raises(CentreRefused, match="not an open handler"):
        centre.apply(handle("inst-1:A", "T1", "none"))
    centre.apply(handle("inst-1:A", "T2", "none"))
    assert centre.pairs() == set()


def test_refuses_next_without_items_and_anything_after_end() -> None:
    centre = centre_with_a()
    with pytest.raises(CentreRefused, match="empty next"):
        centre.apply(handle("inst-1:A", "T1", "next", next=[]))
    centre.apply(handle("inst-1:A", "T1", "end"))
    with pytest.raises(CentreRefused, match="already ended"):
        centre.apply(add("B", "T3", previous="inst-1:A"))


def test_refuses_a_second_first_todo_and_unknown_links() -> None:
    centre = centre_with_a()
    with pytest.raises(CentreRefused, match="second first todo"):
        centre.apply(add("B", "T3"))
    with pytest.raises(CentreRefused, match="unknown"):
        centre.apply(add("B", "T3", previous="inst-1:nope"))


def test_refuses_a_reused_task_id() -> None:
    centre = centre_with_a()
    with pytest.raises(CentreRefused, match="already used"):
        centre.apply(add("A", "T3", previous="inst-1:A"))
