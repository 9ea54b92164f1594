"""JSON encoders built once and shared.

``json.dumps`` with any option (``ensure_ascii``, ``separators``, ``allow_nan``) builds a new
encoder on every call, about a third of the cost of encoding a small document; the step's hot
path encodes several per step (a journal frame, the ledger, outbox items, the history payload,
the centre's request body).
"""

from __future__ import annotations

import json

__all__ = ["COMPACT", "STRICT", "UTF8"]

#: Compact UTF-8 text, for what only this library reads back (journal frames, JSON columns).
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: ``json.dumps(..., allow_nan=False)``: refuses NaN and infinities, which JSON has no form for.
STRICT = json.JSONEncoder(allow_nan=False)
#: ``json.dumps(..., ensure_ascii=False)``: the centre's request bodies.
UTF8 = json.JSONEncoder(ensure_ascii=False)
