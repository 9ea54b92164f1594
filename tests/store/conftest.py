"""Store fixtures: every store test runs on a fresh SQLite file AND on the real PostgreSQL.

PostgreSQL isolation: each test gets its own schema (``pg_schema_url`` in tests/conftest.py),
so runs never see each other's rows; an unreachable server fails the test, never skips it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from engine_bridge.facts import CenterCall, Endpoint, Ledger, LedgerTodo
from engine_bridge.store import HistoryDraft, StepRecord, Store

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


StepFactory = Callable[..., StepRecord]


@pytest.fixture
def make_step() -> StepFactory:
    """Build a StepRecord with sensible defaults; tests name only what they test."""

    def build(
        instance_id: str,
        *,
        expected: int | None = None,
        calls: Sequence[tuple[Endpoint, dict[str, Any]]] = (),
        todos: Sequence[str] = (),
        status: str = "running",
        at: datetime = T0,
        kind: str = "start",
        key: str | None = None,
        business_key: str | None = None,
        process_id: str = "leave_approval",
        timer: datetime | None = None,
        state: str = '{"spiff": 1}',
        payload: dict[str, Any] | None = None,
    ) -> StepRecord:
        return StepRecord(
            instance_id=instance_id,
            expected_version=expected,
            process_id=process_id,
            definition_version="v1",
            business_key=business_key,
            initiator="2023001",
            status=status,
            state=state,
            ledger=Ledger(
                open=tuple(
                    LedgerTodo(todo_id=t, node_id=f"node_{t}", node_name="审批", handlers=("T001",))
                    for t in todos
                ),
                started=bool(todos),
            ),
            calls=[CenterCall(endpoint=e, item=i) for e, i in calls],
            history=HistoryDraft(kind=kind, payload=payload or {}, at=at, idempotency_key=key),
            next_timer_at=timer,
        )

    return build


def child_exit_code(pid: int, seconds: float = 30.0) -> int:
    """Wait for a forked child; one that hangs (a lock copied held by a thread the fork did
    not copy) is killed and fails the test instead of stalling the run."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the forked child did not finish within {seconds:g} s")
