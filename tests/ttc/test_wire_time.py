"""Wire times read by the fast path for the canonical shape are exactly strptime's reading."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine_bridge.ttc.wire import WIRE_TIME_FORMAT, parse_wire_time


def _strptime(text: str) -> datetime | str:
    try:
        return datetime.strptime(text.strip(), WIRE_TIME_FORMAT)
    except ValueError:
        return "refused"


def _parsed(text: str) -> datetime | str:
    try:
        value = parse_wire_time(text)
    except ValueError:
        return "refused"
    assert isinstance(value, datetime)
    return value


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30 10:49:31",
        "2024-02-29 00:00:00",
        "2026-02-29 00:00:00",  # not a leap year
        "2026-02-30 10:49:31",
        "2026-13-01 00:00:00",
        "2026-01-01 24:00:00",
        "2026-01-01 23:59:60",
        "0000-01-01 00:00:00",
        "2026-1-5 8:00:00",  # narrow fields: strptime takes them
        " 2026-01-05 08:00:00 ",
        "2026-01-05T08:00:00",
        "2026-01-05 08:00:0x",
        "２０２６-01-05 08:00:00",  # full-width digits, same length
        "+026-01-05 08:00:00",
    ],
)
def test_every_shape_reads_as_strptime_reads_it(text: str) -> None:
    assert _parsed(text) == _strptime(text)


def test_a_refused_canonical_time_keeps_the_explaining_message() -> None:
    with pytest.raises(ValueError, match=r"yyyy-MM-dd HH:mm:ss"):
        parse_wire_time("2026-02-30 10:49:31")
