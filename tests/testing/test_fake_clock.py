"""``FakeClock.advance``: by a timedelta, by keywords, or both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine_bridge.clock import FakeClock

START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_advance_by_a_timedelta() -> None:
    clock = FakeClock()
    assert clock.advance(timedelta(hours=25)) == START + timedelta(hours=25)
    assert clock.now() == START + timedelta(hours=25)


def test_advance_by_keywords_as_timedelta_takes_them() -> None:
    clock = FakeClock()
    assert clock.advance(hours=25) == START + timedelta(hours=25)
    clock.advance(days=2, minutes=30, seconds=1.5)
    assert clock.now() == START + timedelta(days=3, hours=1, minutes=30, seconds=1.5)
    clock.advance(weeks=1, milliseconds=500)
    assert clock.now() == START + timedelta(days=10, hours=1, minutes=30, seconds=2)


def test_a_timedelta_and_keywords_add_up() -> None:
    clock = FakeClock()
    assert clock.advance(timedelta(days=1), hours=1) == START + timedelta(hours=25)


def test_a_bare_number_is_refused_with_how_to_say_it() -> None:
    clock = FakeClock()
    with pytest.raises(TypeError, match="a timedelta or keywords such as hours=25, not int 3600"):
        clock.advance(3600)  # type: ignore[arg-type]
    assert clock.now() == START
