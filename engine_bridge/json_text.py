"""JSON encoders built once and shared, and :func:`compact`, the fast exact one.

``json.dumps`` with any option (``ensure_ascii``, ``separators``, ``allow_nan``) builds a new
encoder on every call, about a third of the cost of encoding a small document; the step's hot
path encodes several per step (a journal frame, the ledger, outbox items, the history payload,
the centre's request body).

Encoding a step's state and ledger was a tenth of a countersign completion. orjson writes the
same JSON ten to fifteen times faster, but only for JSON's own types: it writes NaN and the
infinities as ``null`` (``json`` writes ``NaN``, which reads back as NaN) and writes UUIDs,
enums, dataclasses and datetimes in a form of its own (``json`` refuses them, and the journal
then falls back to SpiffWorkflow's converters, which restore them as what they were). A
stored state must read back as the values it was written from, so :func:`compact` keeps
orjson's text only when it is certain to read back as ``json``'s would.
"""

from __future__ import annotations

import json
import marshal
from typing import Any

import orjson

__all__ = ["COMPACT", "STRICT", "STRICT_UTF8", "UTF8", "compact", "strict"]

#: Compact UTF-8 text, for what only this library reads back (journal frames, JSON columns).
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: ``json.dumps(..., allow_nan=False)``: refuses NaN and infinities, which JSON has no form for.
STRICT = json.JSONEncoder(allow_nan=False)
#: ``json.dumps(..., ensure_ascii=False)``: the centre's request bodies.
UTF8 = json.JSONEncoder(ensure_ascii=False)
#: ``STRICT`` without ``\\u`` escapes: text UTF-8 cannot carry (a lone surrogate) stays visible
#: in what it writes, for data checks that must refuse it.
STRICT_UTF8 = json.JSONEncoder(allow_nan=False, ensure_ascii=False)

_NULL = b"null"


def compact(value: Any, *, nulls: int = 0) -> str:
    """``COMPACT.encode(value)``: the same value in the same JSON form, faster.

    ``nulls`` is how many ``None`` the caller put into ``value`` itself (a root task's
    parent, say); pass them all, or none: each is one ``null`` the text may hold besides data.

    orjson's text is kept when both hold:

    - ``marshal`` takes ``value``: it takes a few exact built-in types only, so no UUID,
      enum, dataclass, datetime or subclass is in it (of the types it takes, those JSON has
      no form for, sets, bytes, complex numbers, and integers past 64 bits and keys that are
      not strings, make orjson itself refuse);
    - the text holds no ``null`` beyond the caller's, so no NaN or infinity was in it;
      with more (``None`` values in the data, or "null" inside a string) it is read back
      and compared with ``value``.

    Otherwise ``json`` writes it, as it always did, and raises what it always raised.
    """
    return _fast(value, nulls) or COMPACT.encode(value)


def strict(value: Any) -> str:
    """``STRICT.encode(value)`` read back alike: refuses NaN and the infinities (``ValueError``)
    and what JSON has no form for (``TypeError``). The text is compact UTF-8 where STRICT
    escapes every non-ASCII character: both read back as the same value.

    orjson's text is kept under the rules of :func:`compact` (every ``null`` counts as data,
    so any is checked by reading the text back); otherwise STRICT writes or refuses.
    """
    return _fast(value, 0) or STRICT.encode(value)


def _fast(value: Any, nulls: int) -> str | None:
    """orjson's text of ``value`` when it reads back as json's would (see :func:`compact`);
    None when it may not (never an empty string: JSON text is never empty)."""
    try:
        data = orjson.dumps(value)
        marshal.dumps(value)
    except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
        return None
    found = data.count(_NULL)
    if found != nulls and (found < nulls or orjson.loads(data) != value):
        return None
    return data.decode("utf-8")
