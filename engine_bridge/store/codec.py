"""Ledger ↔ JSON, written by hand so the stored form is ours and stable.

The facts dataclasses may grow fields; the stored document carries ``"format"`` so an older
document still loads (missing keys take the dataclass defaults) and a newer one is refused
with a clear message instead of being misread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine_bridge.errors import EngineBridgeError
from engine_bridge.facts import Ledger, LedgerTodo

__all__ = ["LEDGER_FORMAT", "ledger_from_json", "ledger_to_json", "todo_from_json", "todo_to_json"]

LEDGER_FORMAT = 1


def todo_to_json(todo: LedgerTodo) -> dict[str, Any]:
    return {
        "todo_id": todo.todo_id,
        "node_id": todo.node_id,
        "node_name": todo.node_name,
        "handlers": list(todo.handlers),
        "handled": list(todo.handled),
        "handling_groups": list(todo.handling_groups),
    }


def todo_from_json(doc: Mapping[str, Any]) -> LedgerTodo:
    return LedgerTodo(
        todo_id=str(doc["todo_id"]),
        node_id=str(doc["node_id"]),
        node_name=str(doc.get("node_name", "")),
        handlers=tuple(str(h) for h in doc.get("handlers", ())),
        handled=tuple(str(h) for h in doc.get("handled", ())),
        handling_groups=tuple(str(g) for g in doc.get("handling_groups", ())),
    )


def ledger_to_json(ledger: Ledger) -> dict[str, Any]:
    return {
        "format": LEDGER_FORMAT,
        "open": [todo_to_json(t) for t in ledger.open],
        "started": ledger.started,
        "ended": ledger.ended,
        "last_todo_id": ledger.last_todo_id,
        "transaction_id": ledger.transaction_id,
    }


def ledger_from_json(doc: Mapping[str, Any]) -> Ledger:
    fmt = doc.get("format", LEDGER_FORMAT)
    if not isinstance(fmt, int) or fmt > LEDGER_FORMAT:
        raise EngineBridgeError(
            f"stored ledger has format {fmt!r}, this engine_bridge reads up to {LEDGER_FORMAT}; "
            "upgrade engine_bridge before opening this database"
        )
    return Ledger(
        open=tuple(todo_from_json(t) for t in doc.get("open", ())),
        started=bool(doc.get("started", False)),
        ended=bool(doc.get("ended", False)),
        last_todo_id=doc.get("last_todo_id"),
        transaction_id=doc.get("transaction_id"),
    )
