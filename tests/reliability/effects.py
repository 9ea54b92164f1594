"""What the fake centre really did, counted per todo, to check "exactly once in effect".

The fake's request log records every request with the body as sent, whether the centre
applied it and the answer (also the answer a lost connection swallowed). An element of a
batch the centre processed (HTTP 200, outer ``code`` 0) took effect unless the answer's
``errorIds`` names it. From that we count, per
todo, the creates, handles (per handler: a countersign todo is handled once by each signer),
withdraws and terminates that took effect, and compare them with the effects the committed
steps asked for (the outbox). Resends that the centre refused ("already exists", "already
finished") are not effects, which is exactly the point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine_bridge.store import OutboxRow, Store
from engine_bridge.testing import FakeCenter

Effect = tuple[str, str, str]  # (kind, todo id, handler or "")

_KEY_FIELD = {"taskHandle": "previousTaskId"}


def item_effects(endpoint: str, item: Mapping[str, Any]) -> list[Effect]:
    """The effects one element of ``endpoint`` asks for."""
    out: list[Effect] = []
    if endpoint in ("addTransaction", "todo/addTask"):
        out.append(("create", str(item.get("taskId")), ""))
    elif endpoint == "taskHandle":
        out.append(("handle", str(item.get("previousTaskId")), str(item.get("handler"))))
    elif endpoint == "taskWithdraw":
        out.append(("withdraw", str(item.get("taskId")), ""))
    elif endpoint == "taskTerminate":
        out.append(("terminate", str(item.get("taskId")), ""))
    for created in item.get("next") or ():
        out.append(("create", str(created.get("taskId")), ""))
    return out


def item_key(endpoint: str, item: Mapping[str, Any]) -> str:
    """The field the centre names an element by in ``errorIds`` (and our outbox rows by)."""
    return str(item.get(_KEY_FIELD.get(endpoint, "taskId")))


def _refused_keys(response: Any) -> set[str]:
    if not isinstance(response, dict):
        return set()
    data = response.get("data")
    if not isinstance(data, dict):
        return set()
    return {str(e.get("taskId")) for e in data.get("errorIds") or () if isinstance(e, dict)}


def applied_effects(requests: Iterable[Mapping[str, Any]]) -> Counter[Effect]:
    """Count every effect that took place at the centre, from its request log."""
    counts: Counter[Effect] = Counter()
    for entry in requests:
        endpoint = entry["endpoint"]
        if not entry["applied"] or endpoint == "oauth2/token":
            continue
        body, response = entry["body"], entry["response"]
        # The log's "applied" is also true for a request the rules refused as a whole
        # (HTTP 401 for a revoked token, 400 for a body that is not an array): only an
        # envelope with outer code 0 means its elements were processed.
        accepted = isinstance(response, dict) and response.get("code") == 0
        if entry["status"] != 200 or not accepted or not isinstance(body, list):
            continue
        refused = _refused_keys(response)
        for item in body:
            if isinstance(item, dict) and item_key(endpoint, item) not in refused:
                counts.update(item_effects(endpoint, item))
    return counts


def planned_effects(rows: Sequence[OutboxRow]) -> Counter[Effect]:
    """Every effect the committed steps asked the centre for (one outbox row each)."""
    counts: Counter[Effect] = Counter()
    for row in rows:
        counts.update(item_effects(row.endpoint.value, row.item))
    return counts


def sends(requests: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(endpoint, element key)`` of every element that reached the centre, in arrival
    order, applied or not (a request refused by a fault before the rules ran included)."""
    out: list[tuple[str, str]] = []
    for entry in requests:
        endpoint = entry["endpoint"]
        if endpoint == "oauth2/token" or not isinstance(entry["body"], list):
            continue
        out.extend((endpoint, item_key(endpoint, item)) for item in entry["body"])
    return out


@dataclass
class Verdict:
    """The outcome of ``check_exactly_once``, kept for further assertions."""

    effects: Counter[Effect]
    rows: list[OutboxRow]
    problems: list[str] = field(default_factory=list)


def check_exactly_once(center: FakeCenter, store: Store, *, limit: int = 1_000_000) -> Verdict:
    """Every call the committed steps implied took effect exactly once, nothing else did,
    nothing is waiting in the outbox, and nothing is open at the centre."""
    rows = store.outbox(limit=limit)
    done = applied_effects(center.calls())
    wanted = planned_effects(rows)
    problems: list[str] = []
    twice = {e: n for e, n in done.items() if n > 1}
    if twice:
        problems.append(f"took effect more than once: {sorted(twice.items())[:10]}")
    missing = sorted(set(wanted) - set(done))
    if missing:
        problems.append(f"asked for but never took effect: {missing[:10]}")
    extra = sorted(set(done) - set(wanted))
    if extra:
        problems.append(f"took effect but no committed step asked for it: {extra[:10]}")
    duplicates = {e: n for e, n in wanted.items() if n > 1}
    if duplicates:
        problems.append(f"committed steps asked for the same effect twice: {duplicates}")
    unfinished = [(r.id, r.status, r.last_error) for r in rows if r.status != "delivered"]
    if unfinished:
        problems.append(f"outbox rows not delivered: {unfinished[:10]}")
    still_open = center.open_todos()
    if still_open:
        problems.append(f"open at the centre: {dict(list(still_open.items())[:10])}")
    return Verdict(effects=done, rows=rows, problems=problems)


def assert_exactly_once(center: FakeCenter, store: Store) -> Verdict:
    verdict = check_exactly_once(center, store)
    assert verdict.problems == [], "\n".join(verdict.problems)
    return verdict
