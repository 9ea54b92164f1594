"""Fixtures for the loader tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bpmn_factory import WriteBpmn

from engine_bridge.loader import clear_cache


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test sees its own parse, so cache behaviour is tested explicitly."""
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def write_bpmn(tmp_path: Path) -> WriteBpmn:
    def write(name: str, text: str | bytes, folder: Path | None = None) -> Path:
        target = (folder or tmp_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8")
        return target

    return write
