"""Field types that look one way in Python and another on the wire.

The centre's documents spell several values in ways Python code should not have to repeat:
handler lists are comma-joined strings, times are ``yyyy-MM-dd HH:mm:ss`` without a zone,
``optType`` is typed as an integer in one table and a string in another. Each annotated type
below accepts the friendly Python form (and the wire form, so relayed wire dicts validate)
and always serialises to one canonical wire form.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer

__all__ = [
    "CENTER_TIMEZONE",
    "WIRE_TIME_FORMAT",
    "ActionType",
    "CommaList",
    "HttpMethod",
    "OptType",
    "Summary",
    "WireTime",
    "format_wire_time",
    "parse_wire_time",
]

#: The centre runs on China Standard Time (UTC+8, no daylight saving). Aware datetimes are
#: converted to it before formatting, because the wire format carries no zone.
CENTER_TIMEZONE = timezone(timedelta(hours=8), name="CST")

#: ``yyyy-MM-dd HH:mm:ss`` in the centre's (Java) notation.
WIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _is_canonical_wire_time(value: str) -> bool:
    """``yyyy-MM-dd HH:mm:ss`` with every field at full width in ASCII digits: the one shape
    for which ``datetime.fromisoformat`` reads exactly what ``strptime`` with
    ``WIRE_TIME_FORMAT`` reads (``strptime`` also takes narrower fields, ``fromisoformat``
    other separators and zones, so anything else goes to ``strptime``)."""
    return (
        len(value) == 19
        and value[4] == value[7] == "-"
        and value[10] == " "
        and value[13] == value[16] == ":"
        and value.isascii()
        and (
            value[:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:]
        ).isdigit()
    )


def parse_wire_time(value: Any) -> Any:
    """Accept a datetime, the wire string, or an empty string (the docs' examples send ``""``
    for "not given"); anything else is left for pydantic to reject with a clear message."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if _is_canonical_wire_time(value):
            # What every relayed row carries: read 5x faster than by strptime. An impossible
            # date (February 30) falls through, for strptime's error message below.
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        if not value.strip():
            return None
        try:
            return datetime.strptime(value.strip(), WIRE_TIME_FORMAT)
        except ValueError:
            raise ValueError(
                f"time {value!r} is not in the centre's format yyyy-MM-dd HH:mm:ss "
                "(pass a datetime, or a string like '2026-01-01 08:00:00')"
            ) from None
    return value


def format_wire_time(value: datetime) -> str:
    """Naive datetimes are taken as centre-local time; aware ones are converted to it."""
    if value.tzinfo is not None:
        value = value.astimezone(CENTER_TIMEZONE)
    return value.strftime(WIRE_TIME_FORMAT)


def _serialise_wire_time(value: datetime | None) -> str | None:
    return None if value is None else format_wire_time(value)


WireTime = Annotated[
    datetime | None,
    BeforeValidator(parse_wire_time),
    PlainSerializer(_serialise_wire_time, return_type=str | None),
]
"""An optional ``datetime`` that travels as ``yyyy-MM-dd HH:mm:ss`` (``""`` reads as absent)."""


def _split_comma_list(value: Any) -> Any:
    """``"a,b"`` and ``["a", "b"]`` mean the same; blanks around names are dropped."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return [p for p in parts if p]
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for item in value:
            if isinstance(item, str):
                name = item.strip()
                if "," in name:
                    raise ValueError(
                        f"account {item!r} contains a comma; the centre joins accounts with "
                        "commas, so give each account as its own list element"
                    )
                if not name:
                    raise ValueError("an account in the list is empty")
                out.append(name)
            else:
                out.append(item)
        return out
    return value


def _join_comma_list(value: list[str]) -> str:
    return ",".join(value)


CommaList = Annotated[
    list[str],
    BeforeValidator(_split_comma_list),
    PlainSerializer(_join_comma_list, return_type=str),
]
"""Accounts or groups: ``list[str]`` (or a comma-joined ``str``) in, comma-joined on the wire."""


def _check_summary(value: Any) -> Any:
    if isinstance(value, list):
        for pair in value:
            if isinstance(pair, str) and "|" not in pair:
                raise ValueError(
                    f"summary entry {pair!r} is not a 'label|value' pair; the centre shows each "
                    "entry split at '|'"
                )
    return value


Summary = Annotated[list[str], BeforeValidator(_check_summary)]
"""``taskSummary`` / ``transSummary``: ``"label|value"`` strings, shown in order."""


def _opt_type(value: Any) -> Any:
    """The docs type ``optType`` as Integer in one place and String in another: take both."""
    if isinstance(value, bool):
        raise ValueError("optType must be 0 (api) or 1 (page), not a boolean")
    if isinstance(value, str) and value.strip() in {"0", "1"}:
        return int(value.strip())
    return value


OptType = Annotated[Literal[0, 1], BeforeValidator(_opt_type)]
"""``1`` opens a page, ``0`` calls an API (quick handle). Sent as an integer, as in the JSON
examples."""


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


HttpMethod = Annotated[Literal["get", "post", "put"], BeforeValidator(_lower)]

ActionType = Literal[
    "HANDLE",
    "BREAK_UP",
    "REVOKE",
    "HANG_UP",
    "ACTIVE",
    "CIRCULARIZE",
    "TRANSFER",
    "PROMOTER",
    "HANDLEDR",
    "DEAL",
    "ALL",
]
"""Button types the centre knows (handle, terminate, revoke, hang up, activate, circulate,
transfer, initiator / handler / everyone operations)."""
