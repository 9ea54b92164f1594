"""Fixtures of the reliability tests: a soak factor, a fresh PostgreSQL schema, the fake centre.

The fault and crash tests run in a bounded form in every suite run. ``ENGINE_BRIDGE_SOAK=1``
multiplies their sizes (instances, kills, rows) by ``ENGINE_BRIDGE_SOAK_FACTOR`` (default 10).

PostgreSQL: each test that needs it gets its own schema (``pg_schema_url`` in
tests/conftest.py); an unreachable server fails the test, never skips it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_bridge.testing import FakeCenter, FakeCenterServer

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV") or ROOT / ".venv") / "bin"


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


@pytest.fixture
def pg_url(pg_schema_url: str) -> str:
    """The URL of an empty PostgreSQL schema of its own (tests/conftest.py)."""
    return pg_schema_url


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
