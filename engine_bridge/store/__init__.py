"""Durable state: definitions, instances, the todo index, history and the outbox.

SQLite file by default (one process), PostgreSQL when several workers share the work. See
``docs/store.md`` for the tables, transaction boundaries, durability and claiming.
"""

from __future__ import annotations

from engine_bridge.store.database import SchemaError
from engine_bridge.store.records import (
    HistoryDraft,
    HistoryEntry,
    InstanceRecord,
    OutboxRow,
    StepRecord,
)
from engine_bridge.store.schema import SCHEMA_VERSION
from engine_bridge.store.store import DEFAULT_DATABASE_URL, Store

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SCHEMA_VERSION",
    "HistoryDraft",
    "HistoryEntry",
    "InstanceRecord",
    "OutboxRow",
    "SchemaError",
    "StepRecord",
    "Store",
]
