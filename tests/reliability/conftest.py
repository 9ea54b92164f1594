"""Fixtures of the reliability tests: a soak factor, a fresh PostgreSQL schema, the fake centre.

The fault and crash tests run in a bounded form in every suite run. ``ENGINE_BRIDGE_SOAK=1``
multiplies their sizes (instances, kills, rows) by ``ENGINE_BRIDGE_SOAK_FACTOR`` (default 10).

PostgreSQL: each test that needs it gets its own schema ``ebr_<random>`` (through the
connection's ``search_path``), dropped afterwards. The server must be reachable
(``ENGINE_BRIDGE_TEST_POSTGRES`` overrides the URL); when it is not, the test fails saying so.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from engine_bridge.testing import FakeCenter, FakeCenterServer

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV") or ROOT / ".venv") / "bin"
POSTGRES_URL = os.environ.get(
    "ENGINE_BRIDGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def soak(base: int) -> int:
    """``base``, multiplied when ENGINE_BRIDGE_SOAK=1 asks for the long form."""
    if os.environ.get("ENGINE_BRIDGE_SOAK") != "1":
        return base
    return base * int(os.environ.get("ENGINE_BRIDGE_SOAK_FACTOR", "10"))


def executable(name: str) -> str:
    """A program of the project's virtual environment (python, engine-bridge)."""
    path = VENV_BIN / name
    if not path.exists():  # pytest run from another environment
        path = Path(sys.executable).parent / name
    return str(path)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty PostgreSQL schema of its own."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    schema = f"ebr_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc.orig}); the reliability tests "
            "need it. Start the server or point ENGINE_BRIDGE_TEST_POSTGRES at one.",
            pytrace=False,
        )
    try:
        yield with_search_path(POSTGRES_URL, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def center() -> FakeCenter:
    return FakeCenter()


@pytest.fixture
def served(center: FakeCenter) -> Iterator[FakeCenterServer]:
    """The fake centre behind a real loopback HTTP server."""
    with center.serve() as server:
        yield server
