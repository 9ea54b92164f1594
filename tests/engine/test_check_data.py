"""Completion and start data are copied as JSON would read them back, and refused when JSON
has no form for them; plain scalars skip the round trip and must come back the same."""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest

from engine_bridge.engine.runtime import check_data
from engine_bridge.errors import InvalidDataError


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("同意", "同意"),
        (7, 7),
        (2**70, 2**70),  # past 64 bits: through the round trip, which gives it back
        (-(2**63), -(2**63)),
        (True, True),
        (None, None),
        (2.5, 2.5),
        (-0.0, -0.0),
        (Level.HIGH, 3),  # an int subclass reads back as an int
        (Name("n"), "n"),
        ((1, "a"), [1, "a"]),
        ({"k": [1, {"x": None}]}, {"k": [1, {"x": None}]}),
    ],
)
def test_values_come_back_as_json_reads_them(value: Any, expected: Any) -> None:
    got = check_data({"v": value}, "data")["v"]
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(value, dict):
        assert got is not value  # a copy: the caller's dict is never shared with the engine


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, [math.nan], object(), 10**5000, -(10**5000)],
    ids=["nan", "inf", "-inf", "nan in a list", "object", "5001 digits", "-5001 digits"],
)
def test_values_json_cannot_take_are_refused_by_name(value: Any) -> None:
    with pytest.raises(InvalidDataError, match="'v'"):
        check_data({"ok": 1, "v": value}, "completion data")


@pytest.mark.parametrize(
    "key", ["_getattr_", "_write_", "resolve_bean", "juel_str", "juel_bool", "__x"]
)
def test_names_the_script_sandbox_defines_are_refused_as_keys(key: str) -> None:
    """Data under a sandbox name would make every later script of the instance fail
    ('overwrites a predefined function'): start, completion and message data refuse it."""
    with pytest.raises(InvalidDataError, match=f"key {key!r} is refused"):
        check_data({key: 1}, "message data")
    assert check_data({"_id": 1, "getattr": 2}, "message data") == {"_id": 1, "getattr": 2}


@pytest.mark.parametrize(
    "data",
    [{"reason": "x\ud800y"}, {"re\udcffason": "x"}, {"list": ["ok", "bad\ud800"]}],
    ids=["value", "key", "nested"],
)
def test_a_lone_surrogate_is_refused_before_anything_is_written(data: dict[str, Any]) -> None:
    """A bad decode upstream leaves text UTF-8 cannot carry; it would fail only inside the
    step's transaction, as an error that is not the caller's InvalidDataError."""
    with pytest.raises(InvalidDataError, match="start data"):
        check_data(data, "start data")
