"""Fixtures of the service-task tests: a harness on SQLite, and a database URL that is a SQLite
file or a fresh PostgreSQL schema (the incidents table comes from a migration with explicit DDL
for each backend, so both are exercised).

PostgreSQL isolation: each test gets its own schema (``pg_schema_url`` in tests/conftest.py);
an unreachable server fails the test, never skips it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .kit import LEAVE, Harness, write


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'services.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


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
