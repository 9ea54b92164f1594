"""The rows the store hands out and takes in, as frozen dataclasses.

They carry plain values (str, datetime, dicts of JSON) and the facts dataclasses, never
SQLAlchemy objects, so callers cannot change stored state except through ``Store`` methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from engine_bridge.facts import CenterCall, Endpoint, Ledger

__all__ = [
    "INSTANCE_STATUSES",
    "OUTBOX_STATUSES",
    "HistoryDraft",
    "HistoryEntry",
    "InstanceRecord",
    "InstanceStatus",
    "OutboxRow",
    "OutboxStatus",
    "StepRecord",
]

InstanceStatus = Literal["running", "finished", "cancelled", "incident"]
OutboxStatus = Literal["pending", "delivered", "dead", "discarded"]
INSTANCE_STATUSES: tuple[str, ...] = ("running", "finished", "cancelled", "incident")
OUTBOX_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead", "discarded")


@dataclass(frozen=True)
class InstanceRecord:
    """One process instance as last committed. ``version`` guards concurrent writers."""

    id: str
    process_id: str
    definition_version: str
    business_key: str | None
    initiator: str
    status: str
    state: str
    version: int
    ledger: Ledger
    next_timer_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HistoryDraft:
    """A history entry before the store numbers it (what ``StepRecord.history`` holds).

    ``idempotency_key`` is unique across the store when given: the Bridge looks it up with
    ``find_history`` before acting, and the unique constraint catches a concurrent duplicate.
    """

    kind: str
    payload: dict[str, Any]
    at: datetime
    idempotency_key: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One committed step of an instance; ``seq`` counts 1, 2, 3… per instance."""

    instance_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    at: datetime
    idempotency_key: str | None


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """Everything one engine step changes, committed together by ``Store.commit_step``.

    ``expected_version`` is the version the step was computed from (``None`` creates the
    instance). ``calls`` are appended to the outbox in order; ``history.at`` is the time of the
    step and stamps the rows it writes (the store has no clock of its own).

    ``state`` is the instance's whole state text. ``state_frame``, when given, is a journal
    frame such that ``state`` is the stored state at ``expected_version`` + newline + frame
    (``engine_bridge.engine.journal``): the store then writes the frame as a row of its own
    instead of rewriting the whole state.

    ``ledger_before``, when given, is the ledger at ``expected_version`` (the caller read it
    with that version): the todo index is then brought in line by comparing the two ledgers
    and writing only the todos that changed, instead of reading the index and rewriting
    every open todo (a countersign's todo lists all its signers).

    ``definition``, when given, is the process definition at ``definition_version``, for a
    caller that does not know it stored: it is written in the step's own transaction unless
    that version is stored already, and refused (``ConflictError``, nothing written) when the
    stored text differs. A first start then costs one transaction, not two, and never leaves
    a definition behind without the instance it was stored for.
    """

    instance_id: str
    expected_version: int | None
    process_id: str
    definition_version: str
    business_key: str | None = None
    initiator: str
    status: str
    state: str
    ledger: Ledger
    calls: Sequence[CenterCall] = ()
    history: HistoryDraft
    next_timer_at: datetime | None = None
    state_frame: str | None = None
    ledger_before: Ledger | None = None
    definition: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    """One centre call waiting for, or done with, delivery.

    ``seq`` orders an instance's calls without gaps; only the lowest undelivered ``seq`` of an
    instance (its head) may be sent. ``attempts`` counts claims, so an attempt whose worker
    died is counted too. ``maybe_applied`` is true once an earlier attempt ended with an
    unknown outcome (transport error, lost answer, outer error, expired lease): an "already
    done" answer then means that attempt was applied. ``errors`` keeps every failed
    attempt as ``{"at", "error", "attempt"}`` (plus ``"unknown"``: outcome unknown).
    """

    id: int
    instance_id: str
    seq: int
    endpoint: Endpoint
    item: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_by: str | None
    claim_expires_at: datetime | None
    last_error: str | None
    errors: list[dict[str, Any]]
    created_at: datetime
    delivered_at: datetime | None
    first_attempt_at: datetime | None = None
    maybe_applied: bool = False
    response: Any = None

    @property
    def call(self) -> CenterCall:
        """The row as the planner wrote it."""
        return CenterCall(endpoint=self.endpoint, item=self.item)
