"""Make transcripts comparable across runs: ids and times are replaced by stable placeholders.

Task ids embed an instance id and SpiffWorkflow task UUIDs, both random per run; times depend on
the clock. Everything else (endpoints, statuses, nodes, handlers, texts) must match exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["VOLATILE_KEYS", "normalize_transcript"]

VOLATILE_KEYS = frozenset({"handleTime", "createTime", "timestamp", "took"})
_ID_KEYS = frozenset({"taskId", "previousTaskId", "transactionId"})
_HEX = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_transcript(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return a copy of ``entries`` with ids numbered by first appearance (``T1``, ``T2``…),
    random hex inside other strings (URLs) replaced by the same numbering, and times blanked."""
    names: dict[str, str] = {}

    def name_for(value: str) -> str:
        if value not in names:
            names[value] = f"T{len(names) + 1}"
        return names[value]

    def walk(value: Any, key: str | None = None) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if key in VOLATILE_KEYS and value is not None:
            return "<time>"
        if isinstance(value, str):
            if key in _ID_KEYS or (key == "taskId" and value):
                return name_for(value)
            return _HEX.sub(lambda m: name_for(m.group(0)), value)
        return value

    return [walk(dict(e)) for e in entries]
