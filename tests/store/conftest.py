"""Store fixtures: every store test runs on a fresh SQLite file AND on the real PostgreSQL.

PostgreSQL isolation: each test gets its own schema ``eb_<random>`` (selected through the
connection's ``search_path``) that is dropped afterwards, so runs never see each other's rows.
The server must be reachable (``ENGINE_BRIDGE_TEST_POSTGRES`` overrides the URL); when it is
not, the PostgreSQL variants fail with a message saying so instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine_bridge.facts import CenterCall, Endpoint, Ledger, LedgerTodo
from engine_bridge.store import HistoryDraft, StepRecord, Store

POSTGRES_URL = os.environ.get(
    "ENGINE_BRIDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"eb_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc.orig}); the store tests need it. "
            "Start the server or point ENGINE_BRIDGE_TEST_POSTGRES at one.",
            pytrace=False,
        )
    try:
        yield _with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
