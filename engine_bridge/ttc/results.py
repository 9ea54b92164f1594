"""Per-item outcomes of a batch call, matched from the envelope's ``errorIds``.

The centre processes every element of an array body on its own and answers ``code: 0`` even
when some elements failed; the failures are listed in ``data.errorIds`` by the element's key.
This module turns that into one :class:`ItemResult` per element sent, in request order, so the
relay can mark each outbox row delivered or failed.

Matching rule: an ``errorIds`` entry fails the first not-yet-failed element (in request order)
whose key equals its ``taskId``. The key is ``previousTaskId`` for ``taskHandle``,
``transactionId`` for ``updateTransaction`` (the centre reports it under ``taskId``) and
``taskId`` everywhere else. An entry that matches no element (a garbled or null ``taskId``)
fails nothing and lands in ``BatchResult.unmatched``; ``all_ok`` is then False, because the
centre did report a failure we cannot place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine_bridge.facts import Endpoint
from engine_bridge.ttc.models import Envelope, ErrorId

__all__ = ["BatchResult", "ItemResult", "item_key", "key_field", "match_error_ids"]


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one element: ``ok`` or the centre's ``code`` and ``message`` for it."""

    task_id: str
    ok: bool
    code: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """Everything one logical call produced.

    ``envelopes`` holds one parsed envelope per HTTP call (one for a batch endpoint; one per
    element for the single-object urge endpoint; none when nothing was sent).
    """

    endpoint: Endpoint
    items: list[ItemResult]
    envelopes: tuple[Envelope, ...] = ()
    unmatched: list[ErrorId] = field(default_factory=list)

    @property
    def envelope(self) -> Envelope | None:
        """The (last) envelope received, or None when nothing was sent."""
        return self.envelopes[-1] if self.envelopes else None

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.items if not r.ok]

    @property
    def all_ok(self) -> bool:
        return not self.failed and not self.unmatched


def key_field(endpoint: Endpoint) -> str:
    """The wire field that names an element of ``endpoint`` in ``errorIds``."""
    if endpoint is Endpoint.TASK_HANDLE:
        return "previousTaskId"
    if endpoint is Endpoint.UPDATE_TRANSACTION:
        return "transactionId"
    return "taskId"


def item_key(endpoint: Endpoint, item: Mapping[str, Any]) -> str:
    value = item.get(key_field(endpoint))
    return "" if value is None else str(value)


def match_error_ids(
    keys: Sequence[str], error_ids: Sequence[ErrorId]
) -> tuple[list[ItemResult], list[ErrorId]]:
    """Apply the matching rule above; return per-element results and unmatched entries."""
    failures: dict[int, ErrorId] = {}
    unmatched: list[ErrorId] = []
    for error in error_ids:
        index = next(
            (
                i
                for i, key in enumerate(keys)
                if i not in failures and error.task_id is not None and key == error.task_id
            ),
            None,
        )
        if index is None:
            unmatched.append(error)
        else:
            failures[index] = error
    results = [
        ItemResult(key, ok=False, code=failures[i].code, message=failures[i].message)
        if i in failures
        else ItemResult(key, ok=True)
        for i, key in enumerate(keys)
    ]
    return results, unmatched
