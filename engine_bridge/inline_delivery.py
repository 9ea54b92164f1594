"""Delivery right after each step, at the cost of one durable commit per step.

A bridge with a centre attached sends a step's calls before the action returns. Done with the
relay's ordinary rounds, every step costs three more write transactions after its own: claim
the new row, mark it delivered, and a last claim that finds nothing. Here the step's first
call is claimed inside the step's own transaction (``StepClaim``), sent straight away, and
marked delivered (a non-durable commit, see ``Outbox.mark_delivered``), so a step costs one
durable commit, one call to the centre and one small write.

The relay's full ``drain`` still runs whenever something may be left: the step had calls
that were not claimed with it (a second call of the step, or an instance waiting behind an
undelivered call), the claimed call did not go through, or the outbox was not empty the last
time this bridge looked (at start, and after any failure, until a drain leaves it empty).
Rows other processes queue are theirs to deliver (``engine-bridge worker``) or are picked up by
this bridge's next full drain.
"""

from __future__ import annotations

import threading

from engine_bridge.relay import DeliveryReport, Relay
from engine_bridge.store import Store
from engine_bridge.store.outbox import StepClaim

__all__ = ["InlineDelivery"]


class InlineDelivery:
    """The bridge's auto-delivery: a step's own call first, a full drain when needed."""

    def __init__(self, store: Store, relay: Relay) -> None:
        self._store = store
        self._relay = relay
        self._lock = threading.Lock()
        self._backlog = True  # unknown until a drain leaves the outbox empty

    def claim(self) -> StepClaim:
        """The claim a step's commit takes on its first call, for this bridge's relay."""
        return StepClaim(self._relay.worker_id, self._relay.lease_seconds)

    def after_commit(self, claim: StepClaim | None, calls: int) -> DeliveryReport:
        """Deliver what the committed step queued (``calls`` rows, ``claim`` as passed to
        ``commit_step``) and anything else left over. ``claim=None`` (steps committed without
        one, e.g. a batch of timers) always runs a full drain."""
        rows = claim.rows if claim is not None else []
        report = DeliveryReport()
        try:
            if rows:
                report = self._relay.deliver_claimed(rows)
            with self._lock:
                drain = (
                    claim is None  # the caller queued calls it did not claim
                    or self._backlog
                    or calls > len(rows)
                    or report.delivered < len(rows)
                )
                self._backlog = self._backlog or drain
            if drain:
                report += self._relay.drain()
                empty = self._store.pending_count() == 0
                with self._lock:
                    self._backlog = not empty
        except BaseException:
            with self._lock:
                self._backlog = True
            raise
        return report
