"""The relay: delivers the outbox to the to-do centre, in order, batched, retried.

One round (``deliver_once``) claims up to ``batch_size`` deliverable rows (each instance's head
row only, so an instance's calls arrive in the order its steps happened), groups them by
endpoint and sends ONE array call per endpoint, then records each element's outcome:

========================================  ===================================================
outcome of the element                    what happens to the row
========================================  ===================================================
ok                                        delivered
whole call failed, may have been applied  retried with backoff; marked "maybe applied"
(unavailable, outer code, bad answer)
token refused, or a 4xx for a wrong URL   retried with backoff (nothing was applied)
the client refuses an element as invalid  that element dead (found by sending one by one)
item code 400                             dead at once: the request will never pass
item code 500                             retried with backoff
"already done" (2006 exists on a create,  delivered when an earlier attempt of the row may have
2005 finished otherwise)                  been applied (its answer was lost); dead otherwise —
                                          on a first attempt it is a real conflict
any other item code                       dead at once
attempts or age exhausted                 dead, with the last error
========================================  ===================================================

A dead row keeps its request and every attempt's error and time, and blocks its instance until
an operator retries or discards it (``engine-bridge outbox``). Nothing here holds a database
transaction open across the HTTP call: claims are leases, so a relay that dies mid-call is
replaced by another once ``lease_seconds`` pass. Keep the lease longer than the client's
timeout, or a slow call may be repeated by a second relay while the first is still waiting.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from engine_bridge.clock import Clock
from engine_bridge.crashpoints import crashpoint
from engine_bridge.errors import CenterError, InputError
from engine_bridge.facts import Endpoint
from engine_bridge.retry import RetryPolicy
from engine_bridge.store import OutboxRow, Store
from engine_bridge.ttc.results import BatchResult, ItemResult
from engine_bridge.wire import with_app_id

__all__ = ["ALREADY_DONE_CODES", "CenterSender", "DeliveryReport", "Relay"]

logger = logging.getLogger(__name__)

CODE_INVALID = 400
CODE_BUSINESS = 500
CODE_FINISHED = 2005
CODE_EXISTS = 2006
CODE_NO_TASK = 2004

#: Per endpoint, the item codes that mean "this was already done": a resent create finds its
#: todo existing, a resent handle/withdraw/terminate finds it finished, a resent delete finds
#: nothing, a resent transaction finish finds the transaction ended. The codes are those of
#: the fake centre (docs/fake-center.md); pass ``already_done=`` to ``Relay`` when a real
#: centre answers differently.
ALREADY_DONE_CODES: Mapping[Endpoint, frozenset[int]] = {
    Endpoint.ADD_TRANSACTION: frozenset({CODE_EXISTS}),
    Endpoint.ADD_TASK: frozenset({CODE_EXISTS}),
    Endpoint.TASK_HANDLE: frozenset({CODE_FINISHED}),
    Endpoint.HANDLE_TASK: frozenset({CODE_FINISHED}),
    Endpoint.TASK_WITHDRAW: frozenset({CODE_FINISHED}),
    Endpoint.TASK_TERMINATE: frozenset({CODE_FINISHED}),
    Endpoint.DELETE_TASK: frozenset({CODE_NO_TASK}),
    # the bridge finishes a transaction only once it has nothing open: a resend finds it ended
    Endpoint.UPDATE_TRANSACTION: frozenset({CODE_FINISHED}),
}


class CenterSender(Protocol):
    """What the relay needs from a TTC client: one array call, per-item results in request
    order, and ``CenterError`` subclasses for failures of the whole call."""

    def send(self, endpoint: Endpoint, items: Sequence[Mapping[str, Any]]) -> BatchResult: ...


@dataclass(frozen=True)
class DeliveryReport:
    """What one or more rounds did (``+`` adds reports up)."""

    rounds: int = 0
    claimed: int = 0
    calls: int = 0  # array calls made to the centre
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: tuple[str, ...] = ()  # failures of whole calls, as logged

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            rounds=self.rounds + other.rounds,
            claimed=self.claimed + other.claimed,
            calls=self.calls + other.calls,
            delivered=self.delivered + other.delivered,
            retried=self.retried + other.retried,
            dead=self.dead + other.dead,
            errors=self.errors + other.errors,
        )


class Relay:
    """Moves outbox rows to the centre; several relays may share one PostgreSQL store."""

    def __init__(
        self,
        store: Store,
        client: CenterSender,
        *,
        clock: Clock,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease_seconds: float = 30.0,
        policy: RetryPolicy | None = None,
        already_done: Mapping[Endpoint, Collection[int]] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("Relay batch_size must be at least 1")
        if lease_seconds <= 0:
            raise ValueError("Relay lease_seconds must be positive")
        self._store = store
        self._client = client
        self._clock = clock
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._batch_size = batch_size
        self._lease_seconds = lease_seconds
        self._policy = policy or RetryPolicy()
        self._already_done = ALREADY_DONE_CODES if already_done is None else already_done
        #: The level a dead letter is logged at. A sandbox on a temporary database (explain,
        #: replay) reports each call's verdict itself and lowers it: advice to run
        #: `engine-bridge outbox retry` on a database that is gone helps nobody.
        self.dead_letter_level = logging.WARNING

    def __repr__(self) -> str:
        return f"Relay(worker_id={self.worker_id!r}, store={self._store!r})"

    @property
    def lease_seconds(self) -> float:
        """How long a claim of this relay keeps other relays off a row."""
        return self._lease_seconds

    def deliver_once(self) -> DeliveryReport:
        """Claim what is deliverable now, send one array call per endpoint, record outcomes."""
        rows = self._store.claim(
            worker=self.worker_id,
            limit=self._batch_size,
            lease_seconds=self._lease_seconds,
            now=self._clock.now(),
        )
        return self.deliver_claimed(rows) if rows else DeliveryReport(rounds=1)

    def deliver_claimed(self, rows: Sequence[OutboxRow]) -> DeliveryReport:
        """Send rows already leased to this relay (by ``claim``, or ``StepClaim`` in the
        step's own transaction), one array call per endpoint, and record their outcomes."""
        if not rows:
            return DeliveryReport()
        crashpoint("relay.after_claim")
        report = DeliveryReport(rounds=1, claimed=len(rows))
        endpoint = rows[0].endpoint
        if all(row.endpoint is endpoint for row in rows):  # a step's own call: one group
            return report + self._deliver(endpoint, list(rows))
        groups: dict[Endpoint, list[OutboxRow]] = {}
        for row in rows:
            groups.setdefault(row.endpoint, []).append(row)
        for endpoint, group in groups.items():
            report += self._deliver(endpoint, group)
        return report

    def drain(self, *, max_rounds: int = 10_000) -> DeliveryReport:
        """Run rounds until a round finds nothing deliverable now (rows waiting for a later
        retry, or blocked behind a dead row, stay for a later drain)."""
        total = DeliveryReport()
        for _ in range(max_rounds):
            report = self.deliver_once()
            total += report
            if report.claimed == 0:
                break
        return total

    def _items(self, rows: list[OutboxRow]) -> list[Mapping[str, Any]]:
        """The rows' items under the client's app id (``wire.with_app_id``)."""
        app_id = getattr(self._client, "app_id", None)
        if not isinstance(app_id, str) or not app_id:
            return [row.item for row in rows]
        return [with_app_id(row.item, app_id) for row in rows]

    def _deliver(self, endpoint: Endpoint, rows: list[OutboxRow]) -> DeliveryReport:
        try:
            result = self._client.send(endpoint, self._items(rows))
        except InputError as exc:
            # The client validates every element before sending anything. Find the element
            # it refuses by sending the rows one by one; that one can never pass.
            if len(rows) > 1:
                report = DeliveryReport()
                for row in rows:
                    report += self._deliver(endpoint, [row])
                return report
            return self._dead(rows[0], f"the client refuses to send it: {exc}", self._clock.now())
        except CenterError as exc:
            # Retryable failures (unavailable, outer code, unreadable answer) may or may not
            # have been applied. The others (no token, a 4xx for a wrong URL) were refused
            # before the centre acted; the rows are not at fault, so they wait and retry too.
            unknown = exc.retryable
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("%s call with %d item(s) failed: %s", endpoint.value, len(rows), error)
            report = DeliveryReport(calls=1, errors=(f"{endpoint.value}: {error}",))
            for row in rows:
                report += self._fail(row, error, unknown=unknown, now=self._clock.now())
            return report

        crashpoint("relay.after_send")
        now = self._clock.now()
        items = list(result.items)
        if len(items) != len(rows):
            error = (
                f"the answer to {endpoint.value} had {len(items)} result(s) for "
                f"{len(rows)} item(s) sent"
            )
            report = DeliveryReport(calls=1, errors=(f"{endpoint.value}: {error}",))
            for row in rows:
                report += self._fail(row, error, unknown=True, now=now)
            return report

        unplaced = list(result.unmatched)
        failed: DeliveryReport | None = None  # built only when something failed
        accepted: list[int] = []
        for row, item in zip(rows, items, strict=True):
            if item.ok and not unplaced:
                accepted.append(row.id)
                continue
            if item.ok:
                # The centre reported an error we cannot attribute; this element may be it.
                error = f"the centre reported failures it did not attribute: {unplaced!r}"
                outcome = self._fail(row, error, unknown=True, now=now)
            else:
                outcome = self._item_failed(endpoint, row, item, now)
            failed = outcome if failed is None else failed + outcome
        if accepted:
            self._store.mark_delivered(
                accepted, worker=self.worker_id, now=now, response={"ok": True}
            )
            crashpoint("relay.after_mark_delivered")
        report = DeliveryReport(calls=1, delivered=len(accepted))
        return report if failed is None else report + failed

    def _item_failed(
        self, endpoint: Endpoint, row: OutboxRow, item: ItemResult, now: datetime
    ) -> DeliveryReport:
        error = f"code {item.code}: {item.message or ''}".rstrip(": ")
        if item.code is not None and item.code in self._already_done.get(endpoint, ()):
            if row.maybe_applied:
                logger.info(
                    "outbox row %d (%s, instance %s) answered %s after an attempt whose outcome "
                    "was unknown: that attempt was applied",
                    row.id,
                    endpoint.value,
                    row.instance_id,
                    error,
                )
                self._store.mark_delivered(
                    [row.id],
                    worker=self.worker_id,
                    now=now,
                    response={
                        "ok": False,
                        "code": item.code,
                        "message": item.message,
                        "applied_earlier": True,
                    },
                )
                return DeliveryReport(delivered=1)
            return self._dead(row, f"{error} on a call never sent before: a real conflict", now)
        if item.code == CODE_BUSINESS:
            return self._fail(row, error, unknown=False, now=now)
        if item.code == CODE_INVALID:
            return self._dead(row, f"{error}: the centre refuses this request as invalid", now)
        return self._dead(row, error, now)

    def _fail(self, row: OutboxRow, error: str, *, unknown: bool, now: datetime) -> DeliveryReport:
        """A failed attempt that may pass later: retry, unless the budget is spent."""
        if self._policy.exhausted(
            attempts=row.attempts, first_attempt_at=row.first_attempt_at, now=now
        ):
            return self._dead(
                row, f"{error} (gave up after {row.attempts} attempt(s))", now, unknown=unknown
            )
        kept = self._store.mark_retry(
            row.id,
            worker=self.worker_id,
            error=error,
            next_attempt_at=self._policy.next_attempt_at(row.attempts, now),
            now=now,
            outcome_unknown=unknown,
        )
        return DeliveryReport(retried=1) if kept else self._taken_over(row, error)

    def _dead(
        self, row: OutboxRow, error: str, now: datetime, *, unknown: bool = False
    ) -> DeliveryReport:
        if not self._store.mark_dead(
            row.id, worker=self.worker_id, error=error, now=now, outcome_unknown=unknown
        ):
            return self._taken_over(row, error)
        logger.log(
            self.dead_letter_level,
            "outbox row %d (%s, instance %s, seq %d) is a dead letter: %s; it blocks the "
            "instance until `engine-bridge outbox retry %d` or `discard %d`",
            row.id,
            row.endpoint.value,
            row.instance_id,
            row.seq,
            error,
            row.id,
            row.id,
        )
        return DeliveryReport(dead=1)

    def _taken_over(self, row: OutboxRow, error: str) -> DeliveryReport:
        """This relay's claim ran out while it was sending and another relay took the row:
        the row's outcome is that relay's, and this attempt's is not reported as one."""
        logger.info(
            "outbox row %d (%s, instance %s): the claim ran out while sending (%s); another "
            "worker has the row now, so this attempt's outcome is dropped",
            row.id,
            row.endpoint.value,
            row.instance_id,
            error,
        )
        return DeliveryReport()
