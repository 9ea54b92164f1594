"""Fixtures of the service-task tests: a harness on SQLite, and a database URL that is a SQLite
file or a fresh PostgreSQL schema (the incidents table comes from a migration with explicit DDL
for each backend, so both are exercised).

PostgreSQL isolation: each test gets its own schema ``ebs_<random>`` (selected through the
connection's ``search_path``), dropped afterwards. When the server is unreachable the
PostgreSQL variants fail saying so instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from .kit import LEAVE, Harness, write

POSTGRES_URL = os.environ.get(
    "ENGINE_BRIDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'services.db'}"
        return
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"ebs_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc.orig}); these tests need it. "
            "Start the server or point ENGINE_BRIDGE_TEST_POSTGRES at one.",
            pytrace=False,
        )
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The LEAVE process (apply → notify service → dean) on SQLite and the fake centre."""
    folder = tmp_path / "workflows"
    write(folder, "leave.bpmn", LEAVE)
    opened = Harness(folder, f"sqlite:///{tmp_path / 'bridge.db'}")
    try:
        yield opened
    finally:
        opened.close()
