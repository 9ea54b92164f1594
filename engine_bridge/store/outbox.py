"""The outbox queue: claiming, recording delivery outcomes, and operator actions.

Rows are written by ``Store.commit_step`` (in the step's own transaction) and only read or
updated here. Order inside an instance is kept by claiming only each instance's HEAD row (the
lowest ``seq`` not yet delivered or discarded); a dead head therefore blocks its instance until
an operator retries or discards it, instead of letting later calls overtake it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    RowMapping,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    update,
)

from engine_bridge.errors import InputError
from engine_bridge.facts import Endpoint
from engine_bridge.store import step_statements as step_sql
from engine_bridge.store.database import Database
from engine_bridge.store.driver import Driver, StepConnection
from engine_bridge.store.records import OUTBOX_STATUSES, OutboxRow
from engine_bridge.store.schema import outbox

__all__ = ["MAX_ERROR_CHARS", "Outbox", "StepClaim"]

MAX_ERROR_CHARS = 2000  # one error message stored per attempt; enough to read, bounded in size


@dataclass
class StepClaim:
    """Lease a step's first call to ``worker`` inside the step's own transaction.

    A bridge that delivers right after each commit would otherwise pay a second write
    transaction (and a second wait for the disk) to claim the row it just wrote. With this
    passed to ``Store.commit_step`` the row is written already claimed, exactly as ``claim``
    would have left it, if and only if it is its instance's head (no earlier call of the
    instance is pending or dead); ``rows`` then holds it after the commit. Later calls of
    the same step, and a step behind an undelivered call, are left for ``claim`` as usual.
    """

    worker: str
    lease_seconds: float
    rows: list[OutboxRow] = field(default_factory=list)


class Outbox:
    """Outbox operations on one database (used through ``Store``)."""

    def __init__(self, db: Database, driver: Driver | None = None) -> None:
        self._db = db
        self._driver = driver or Driver(db.dialect)

    def claim(
        self, *, worker: str, limit: int, lease_seconds: float, now: datetime
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` deliverable head rows to ``worker`` until now+lease.

        A row is deliverable when it is pending, due (``next_attempt_at <= now``), unclaimed or
        its lease expired, and no row of the same instance with a lower ``seq`` is still pending
        or dead. Re-claiming a row whose lease expired marks it ``maybe_applied``: the worker
        that held it may have sent it before dying.
        """
        if limit <= 0:
            return []
        earlier = outbox.alias("earlier")
        blocked = exists().where(
            earlier.c.instance_id == outbox.c.instance_id,
            earlier.c.seq < outbox.c.seq,
            # "pending or dead", written as NOT IN on purpose: PostgreSQL cannot probe the
            # status index with it, so it reads the instance's few rows through
            # uq_outbox_instance_seq. With IN, stale statistics after many deliveries made it
            # intersect the whole status index for every candidate row (seconds per claim).
            earlier.c.status.not_in(("delivered", "discarded")),
        )
        query = (
            select(outbox.c.id)
            .where(
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.claimed_by.is_(None), outbox.c.claim_expires_at <= now),
                ~blocked,
            )
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._db.is_postgres:
            query = query.with_for_update(skip_locked=True, of=outbox)
        with self._db.write() as conn:
            ids = [int(i) for i in conn.execute(query).scalars()]
            if not ids:
                return []
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(
                    maybe_applied=or_(outbox.c.maybe_applied, outbox.c.claimed_by.is_not(None)),
                    claimed_by=worker,
                    claim_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=outbox.c.attempts + 1,
                    first_attempt_at=func.coalesce(outbox.c.first_attempt_at, now),
                )
            )
            rows = conn.execute(select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id))
            return [_to_row(r) for r in rows]

    def claim_step_head(
        self, conn: StepConnection, values: list[dict[str, Any]], claim: StepClaim, now: datetime
    ) -> list[dict[str, Any]]:
        """Inside ``commit_step``: insert the first of a step's new rows claimed for
        ``claim.worker`` when nothing of its instance is still undelivered, record it in
        ``claim.rows``, and return the rows still to insert (all of them otherwise).

        ``values`` are the step's rows as the driver writes them (``Store.commit_step``);
        their times are ``now``."""
        driver, first = self._driver, values[0]
        # Rows are sent strictly in seq order, so the instance's last row tells: if it was
        # delivered or discarded, so were all before it, and the new row is the head.
        last = driver.run(
            conn, step_sql.LAST_OUTBOX_STATUS, {"instance_id": first["instance_id"]}
        ).fetchone()
        if last is not None and last[0] not in ("delivered", "discarded"):
            return values
        expires = now + timedelta(seconds=claim.lease_seconds)
        claimed = {
            **first,
            "claimed_by": claim.worker,
            "claim_expires_at": driver.when(expires),
            "attempts": 1,
            "first_attempt_at": driver.when(now),
        }
        (row_id,) = driver.run(conn, step_sql.INSERT_OUTBOX_RETURNING_ID, claimed).fetchone()
        claim.rows.append(
            OutboxRow(
                id=int(row_id),
                instance_id=first["instance_id"],
                seq=int(first["seq"]),
                endpoint=Endpoint(first["endpoint"]),
                item=json.loads(first["item"]),  # as a read of the row gives it back
                status="pending",
                attempts=1,
                next_attempt_at=now,
                claimed_by=claim.worker,
                claim_expires_at=expires,
                last_error=None,
                errors=[],
                created_at=now,
                delivered_at=None,
                first_attempt_at=now,
                maybe_applied=False,
                response=None,
            )
        )
        return values[1:]

    def mark_delivered(
        self, row_ids: Sequence[int], *, worker: str, now: datetime, response: Any = None
    ) -> None:
        """Record that the centre accepted these rows.

        Accepted whoever holds the claim now: the centre's acceptance is a fact, and a worker
        that took over an expired lease will find the row no longer pending.

        Not a durable commit (see ``Database.write``): the claim before the send was, so if a
        power loss takes this record the row is still claimed, its lease runs out, the next
        claim marks it "maybe applied", and the centre's "already done" answer to the resend
        delivers it. Nothing is lost or doubled; only a resend is spent.
        """
        if not row_ids:
            return
        driver = self._driver
        at = driver.when(now)
        answer = None if response is None else driver.json(response)
        with self._db.driver_write(durable=False) as conn:
            driver.many(
                conn,
                step_sql.MARK_DELIVERED,
                [{"id": int(i), "delivered_at": at, "response": answer} for i in row_ids],
            )

    def mark_retry(
        self,
        row_id: int,
        *,
        worker: str,
        error: str,
        next_attempt_at: datetime,
        now: datetime,
        outcome_unknown: bool = False,
    ) -> bool:
        """Record a failed attempt and release the row until ``next_attempt_at``.

        ``outcome_unknown`` says the centre may have applied the attempt (transport error, lost
        answer, outer error). Ignored when ``worker`` no longer holds the claim (its lease ran
        out and another worker took the row): False then.
        """
        with self._db.write() as conn:
            current = self._held(conn, row_id, worker)
            if current is None:
                return False
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id)
                .values(
                    next_attempt_at=next_attempt_at,
                    claimed_by=None,
                    claim_expires_at=None,
                    last_error=_clip(error),
                    errors=_append_error(current, error, now, outcome_unknown),
                    maybe_applied=bool(current["maybe_applied"]) or outcome_unknown,
                )
            )
        return True

    def mark_dead(
        self,
        row_id: int,
        *,
        worker: str,
        error: str,
        now: datetime,
        outcome_unknown: bool = False,
    ) -> bool:
        """Make the row a dead letter: kept with its request and every attempt's error, and
        blocking its instance until ``retry_dead`` or ``discard``. Ignored when ``worker`` no
        longer holds the claim: False then."""
        with self._db.write() as conn:
            current = self._held(conn, row_id, worker)
            if current is None:
                return False
            conn.execute(
                update(outbox)
                .where(outbox.c.id == row_id)
                .values(
                    status="dead",
                    claimed_by=None,
                    claim_expires_at=None,
                    last_error=_clip(error),
                    errors=_append_error(current, error, now, outcome_unknown),
                    maybe_applied=bool(current["maybe_applied"]) or outcome_unknown,
                )
            )
        return True

    def rows(
        self, *, status: str | None = None, instance_id: str | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        query = select(outbox).order_by(outbox.c.id).limit(limit)
        if status is not None:
            _check_status(status)
            query = query.where(outbox.c.status == status)
        if instance_id is not None:
            query = query.where(outbox.c.instance_id == instance_id)
        with self._db.read() as conn:
            return [_to_row(r) for r in conn.execute(query)]

    def get(self, row_id: int) -> OutboxRow:
        with self._db.read() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == row_id)).first()
        if row is None:
            raise InputError(f"no outbox row with id {row_id}; `engine-bridge outbox list`")
        return _to_row(row)

    def retry_dead(self, row_id: int, *, now: datetime) -> None:
        """Put a dead letter back in the queue, due now, with a fresh attempt budget.

        Its error history and ``maybe_applied`` are kept: an earlier attempt may still have
        been applied, and the next "already done" answer must be read that way.
        """
        self._operator_change(
            row_id,
            "retried",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            first_attempt_at=None,
            claimed_by=None,
            claim_expires_at=None,
        )

    def discard(self, row_id: int) -> None:
        """Give up on a dead letter so the instance's later calls can go out."""
        self._operator_change(row_id, "discarded", status="discarded")

    def purge(self, *, before: datetime) -> int:
        """Delete delivered rows delivered before ``before``, and discarded rows created before
        it; returns how many. Pending and dead rows are never touched, and the per-instance
        ``seq`` counters live on the instance row, so ordering is unaffected."""
        done = and_(outbox.c.status == "delivered", outbox.c.delivered_at < before)
        given_up = and_(outbox.c.status == "discarded", outbox.c.created_at < before)
        with self._db.write() as conn:
            result = conn.execute(delete(outbox).where(or_(done, given_up)))
        return int(result.rowcount or 0)

    def pending_count(self) -> int:
        with self._db.read() as conn:
            count = conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
            ).scalar()
        return int(count or 0)

    def _operator_change(self, row_id: int, verb: str, **values: Any) -> None:
        with self._db.write() as conn:
            result = conn.execute(
                update(outbox)
                .where(and_(outbox.c.id == row_id, outbox.c.status == "dead"))
                .values(**values)
            )
            if result.rowcount == 1:
                return
            status = conn.execute(select(outbox.c.status).where(outbox.c.id == row_id)).scalar()
        if status is None:
            raise InputError(f"no outbox row with id {row_id}; `engine-bridge outbox list`")
        raise InputError(
            f"outbox row {row_id} is {status}; only a dead row can be {verb}"
            " (a pending row is still being delivered)"
        )

    def _held(self, conn: Connection, row_id: int, worker: str) -> RowMapping | None:
        query = select(outbox.c.errors, outbox.c.attempts, outbox.c.maybe_applied).where(
            outbox.c.id == row_id, outbox.c.status == "pending", outbox.c.claimed_by == worker
        )
        if self._db.is_postgres:
            query = query.with_for_update()
        return conn.execute(query).mappings().first()


def _clip(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def _append_error(
    current: RowMapping, error: str, now: datetime, outcome_unknown: bool
) -> list[dict[str, Any]]:
    errors = list(current["errors"] or [])
    errors.append(
        {
            "at": now.isoformat(),
            "error": _clip(error),
            "attempt": int(current["attempts"]),
            "unknown": outcome_unknown,
        }
    )
    return errors


def _check_status(status: str) -> None:
    if status not in OUTBOX_STATUSES:
        raise InputError(
            f"unknown outbox status {status!r}; use one of {', '.join(OUTBOX_STATUSES)}"
        )


def _to_row(r: Row[Any]) -> OutboxRow:
    m = r._mapping
    return OutboxRow(
        id=int(m["id"]),
        instance_id=m["instance_id"],
        seq=int(m["seq"]),
        endpoint=Endpoint(m["endpoint"]),
        item=dict(m["item"]),
        status=m["status"],
        attempts=int(m["attempts"]),
        next_attempt_at=m["next_attempt_at"],
        claimed_by=m["claimed_by"],
        claim_expires_at=m["claim_expires_at"],
        last_error=m["last_error"],
        errors=list(m["errors"] or []),
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
        first_attempt_at=m["first_attempt_at"],
        maybe_applied=bool(m["maybe_applied"]),
        response=m["response"],
    )
