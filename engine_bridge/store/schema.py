"""Tables and ordered migrations.

The database records its schema version in ``schema_version`` (one row). ``upgrade`` applies
every step of ``MIGRATIONS`` above that version, in order, each in the caller's transaction.
Rule for later steps: never edit an applied step; add a new one with explicit DDL
(``ALTER TABLE …``), because step 1 creates the tables as they are declared below at version 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "UTCDateTime",
    "definitions",
    "history",
    "incidents",
    "instances",
    "metadata",
    "outbox",
    "schema_version",
    "state_frames",
    "todos",
    "utc_in",
    "utc_out",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones: values are stored as naive UTC text of one fixed format, so
    ``<=`` comparisons in SQL (due timers, due outbox rows) order correctly. A naive datetime
    is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return utc_in(value, naive=dialect.name == "sqlite")

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return utc_out(value)


def utc_in(value: datetime | None, *, naive: bool) -> datetime | None:
    """A datetime as the store keeps it: UTC, without its zone where the backend has none
    (``naive``); a naive datetime given to the store is refused rather than guessed."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store; pass UTC")
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if naive else value


def utc_out(value: datetime | None) -> datetime | None:
    """A stored datetime back as an aware UTC datetime (stored naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

definitions = Table(
    "definitions",
    metadata,
    Column("process_id", String(200), primary_key=True),
    Column("version", String(200), primary_key=True),
    Column("definition", Text, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("process_id", String(200), nullable=False),
    Column("definition_version", String(200), nullable=False),
    Column("business_key", String(200), nullable=True),
    Column("initiator", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("ledger", JSON, nullable=False),
    Column("next_timer_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Counters that number this instance's outbox and history rows without gaps; bumped by
    # the same UPDATE that checks ``version``, so concurrent writers cannot share a number.
    Column("outbox_seq", Integer, nullable=False, default=0),
    Column("history_seq", Integer, nullable=False, default=0),
    UniqueConstraint("process_id", "business_key", name="uq_instances_business_key"),
    Index("ix_instances_due", "status", "next_timer_at"),
)

todos = Table(
    "todos",
    metadata,
    Column("todo_id", String(400), primary_key=True),
    Column("instance_id", String(200), ForeignKey("instances.id"), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("position", Integer, nullable=False),
    Column("todo", JSON, nullable=False),
    Index("ix_todos_instance", "instance_id", "open"),
)

history = Table(
    "history",
    metadata,
    Column("instance_id", String(200), ForeignKey("instances.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("idempotency_key", String(400), nullable=True, unique=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),  # SQLite autoincrements INTEGER only
        primary_key=True,
        autoincrement=True,
    ),
    Column("instance_id", String(200), ForeignKey("instances.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("endpoint", String(100), nullable=False),
    Column("item", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(200), nullable=True),
    Column("claim_expires_at", UTCDateTime, nullable=True),
    Column("first_attempt_at", UTCDateTime, nullable=True),
    Column("maybe_applied", Boolean, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("errors", JSON, nullable=False),
    Column("response", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    UniqueConstraint("instance_id", "seq", name="uq_outbox_instance_seq"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)


#: Added by migration 3: per-step frames of an instance's state journal
#: (engine_bridge/engine/journal.py). ``instances.state`` holds the snapshot, these rows what
#: each later step changed, keyed by the instance version that step committed. A new snapshot
#: deletes them, in its own step.
state_frames = Table(
    "state_frames",
    metadata,
    Column("instance_id", String(200), ForeignKey("instances.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("frame", Text, nullable=False),
)

# Added by migration 2 (explicit DDL below): service failures that stopped an instance.
incidents = Table(
    "incidents",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("instance_id", String(200), ForeignKey("instances.id"), nullable=False),
    Column("process_id", String(200), nullable=False),
    Column("task_id", String(200), nullable=False),
    Column("node_id", String(400), nullable=False),
    Column("node_name", Text, nullable=False),
    Column("service_key", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("retry_requested_at", UTCDateTime, nullable=True),
)


@dataclass(frozen=True)
class Migration:
    """One ordered schema step; ``apply`` runs inside the upgrade transaction."""

    version: int
    description: str
    apply: Callable[[Connection], Any]


def _create_v1(conn: Connection) -> None:
    metadata.create_all(
        conn, tables=[definitions, instances, todos, history, outbox], checkfirst=True
    )


def _create_v2(conn: Connection) -> None:
    """The incidents table (docs/services.md); ids are never reused on either backend."""
    postgres = conn.dialect.name == "postgresql"
    key = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    when = "TIMESTAMP WITH TIME ZONE" if postgres else "DATETIME"
    conn.exec_driver_sql(
        f"""CREATE TABLE incidents (
            id {key},
            instance_id VARCHAR(200) NOT NULL REFERENCES instances (id),
            process_id VARCHAR(200) NOT NULL,
            task_id VARCHAR(200) NOT NULL,
            node_id VARCHAR(400) NOT NULL,
            node_name TEXT NOT NULL,
            service_key TEXT NOT NULL,
            status VARCHAR(20) NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            first_at {when} NOT NULL,
            last_at {when} NOT NULL,
            resolved_at {when},
            retry_requested_at {when}
        )"""
    )
    conn.exec_driver_sql("CREATE INDEX ix_incidents_instance ON incidents (instance_id, status)")
    conn.exec_driver_sql("CREATE INDEX ix_incidents_status ON incidents (status, id)")


def _create_v3(conn: Connection) -> None:
    """The state journal's frames: a step of a large instance writes only what it changed."""
    conn.exec_driver_sql(
        """CREATE TABLE state_frames (
            instance_id VARCHAR(200) NOT NULL REFERENCES instances (id),
            version INTEGER NOT NULL,
            frame TEXT NOT NULL,
            PRIMARY KEY (instance_id, version)
        )"""
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "definitions, instances, todos, history, outbox", _create_v1),
    Migration(2, "incidents", _create_v2),
    Migration(3, "state journal frames", _create_v3),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
