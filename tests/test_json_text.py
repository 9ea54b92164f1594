"""``compact``: orjson's speed only where its text reads back as ``json``'s would.

Every case is checked against ``COMPACT.encode`` (the encoder ``compact`` replaces): the
same error, or text that reads back as the same values. Where orjson writes something else
(NaN as null, UUIDs and enums as strings or numbers), ``compact`` must not use it.
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from engine_bridge.json_text import COMPACT, STRICT, compact, strict


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


def _same(a: Any, b: Any) -> bool:
    """Equal as values, NaN equal to NaN, and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


PLAIN: list[Any] = [
    {"a": 1, "b": [1.5, "x", True, False], "c": {"d": "会签", "e": []}},
    [0, -0.0, 1e16, 1e-7, 2**63, -(2**63), 'line\nbreak " \\ \x01 \u2028'],
    {"s": ""},
]

# orjson writes these, but not as json does (or json refuses them): compact must not use it
DIFFERENT: list[Any] = [
    {"x": math.nan},
    {"x": [1.0, math.inf]},
    {"x": -math.inf, "parent": None},
    {"x": uuid.UUID(int=7)},
    {"x": Colour.RED},
    {"x": Level.HIGH},
    {"x": Name("n")},
    {"x": (1, 2)},
    {"x": datetime(2031, 1, 2, tzinfo=UTC)},
    {1: "int key"},
    {"x": 2**70},
    {"x": {1, 2}},
    {"x": b"bytes"},
    {"x": "\ud800"},
]


#: Each fast encoder and the json encoder it stands for.
ENCODERS = {"compact": (compact, COMPACT), "strict": (strict, STRICT)}


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("value", [*PLAIN, {"a": None, "b": ["null"]}], ids=range(len(PLAIN) + 1))
def test_plain_json_values_are_written_by_orjson_and_read_back_the_same(
    value: Any, encoder: str
) -> None:
    fast, slow = ENCODERS[encoder]
    text = fast(value)
    assert text == orjson.dumps(value).decode("utf-8")  # the fast path was taken
    assert _same(json.loads(text), json.loads(slow.encode(value)))


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("value", DIFFERENT, ids=range(len(DIFFERENT)))
def test_values_orjson_writes_otherwise_are_written_as_json_writes_them(
    value: Any, encoder: str
) -> None:
    """The same error as json's, or text that reads back as json's (STRICT also refuses NaN
    and infinities; its text has spaces and escapes, compact's is exactly COMPACT's)."""
    fast, slow = ENCODERS[encoder]
    nulls = {"nulls": 1} if encoder == "compact" and "parent" in value else {}
    try:
        expected = slow.encode(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            fast(value, **nulls)
        return
    text = fast(value, **nulls)
    assert (
        text == expected if encoder == "compact" else _same(json.loads(text), json.loads(expected))
    )


def test_a_nan_is_kept_though_the_caller_counted_its_own_nulls() -> None:
    """One null is the caller's; the second (the NaN's) sends the text back to json."""
    value = {"parent": None, "data": {"x": math.nan}}
    text = compact(value, nulls=1)
    assert text == COMPACT.encode(value)
    assert math.isnan(json.loads(text)["data"]["x"])


def test_none_in_data_is_checked_by_reading_back_and_kept() -> None:
    """More nulls than the caller's: orjson's text is read back, and kept when it matches."""
    value = {"a": None, "b": "null and void", "c": [None]}
    text = compact(value)
    assert text == orjson.dumps(value).decode("utf-8")
    assert json.loads(text) == value


def test_fewer_nulls_than_the_caller_claims_is_left_to_json() -> None:
    value = {"x": math.nan}
    # orjson writes one null for the NaN; a caller claiming more None than the text holds
    # has miscounted, and the text is not trusted
    assert compact(value, nulls=2) == COMPACT.encode(value)
    assert math.isnan(json.loads(compact(value, nulls=2))["x"])
