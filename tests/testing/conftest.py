"""Fixtures for the fake to-do centre's tests: a centre on a fake clock and a raw JSON caller."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_center_helpers import APP, Caller

from engine_bridge.clock import FakeClock
from engine_bridge.testing import FakeCenter


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def center(clock: FakeClock) -> FakeCenter:
    return FakeCenter(app_id=APP, clock=clock)


@pytest.fixture
def caller(center: FakeCenter) -> Iterator[Caller]:
    with httpx.Client(transport=center.transport(), base_url="http://center") as client:
        yield Caller(client)
