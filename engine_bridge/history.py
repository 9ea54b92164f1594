"""An instance's recorded history, written as a scenario a replay can check a new BPMN against.

The bridge records every committed action of an instance (start, complete, tick, message,
cancel) with its time and, since the same transaction wrote them, the number of centre calls it
queued in the outbox. Export turns that into a scenario file:

- ``start`` with the recorded initiator, data and business key;
- one ``complete`` / ``message`` / ``cancel`` / ``tick`` step per action, in order. Time that
  passed before an action becomes a ``tick`` step of that length that fires nothing
  (``"fire": false``): a timer that fell due meanwhile fired within the action, as it did when
  recorded. A replay's fake clock so stands where the real one stood at every step;
- after every action an ``expect`` step with what happened: ``status``, ``next_nodes`` and
  ``finished`` of a completion, and ``calls``: the centre calls the action queued, normalised
  as golden files are (ids numbered ``T1``…, times blanked) so they compare across runs.

``engine-bridge replay`` runs such a file against other BPMN files and reports the first step
whose calls differ. Histories recorded before call counts were kept export without ``calls``;
their replay compares status, next nodes and finished only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from engine_bridge.errors import InputError
from engine_bridge.facts import CenterCall
from engine_bridge.store import HistoryEntry, Store
from engine_bridge.testing.golden import calls_as_json, comparable

__all__ = ["export_history", "format_duration", "history_to_scenario", "instance_calls"]


def export_history(store: Store, instance_id: str) -> dict[str, Any]:
    """The scenario document for ``instance_id`` (``UnknownInstanceError`` if there is none)."""
    record = store.get_instance(instance_id)
    return history_to_scenario(
        store.history(instance_id),
        instance_calls(store, instance_id),
        instance_id=instance_id,
        status=record.status,
    )


def instance_calls(store: Store, instance_id: str) -> list[CenterCall]:
    """Every centre call the instance queued, in order, delivered or not."""
    rows = store.outbox(instance_id=instance_id, limit=1_000_000)
    return [row.call for row in sorted(rows, key=lambda r: r.seq)]


def history_to_scenario(
    entries: Sequence[HistoryEntry],
    calls: Sequence[CenterCall] | None,
    *,
    instance_id: str,
    status: str = "",
) -> dict[str, Any]:
    """Build the scenario document from history entries and the instance's queued calls."""
    if not entries or entries[0].kind != "start":
        raise InputError(
            f"instance {instance_id!r} has no recorded start; only instances started by the "
            "bridge (with history) can be exported"
        )
    per_step = _calls_per_step(entries, calls)
    start = entries[0]
    payload = start.payload
    start_spec: dict[str, Any] = {
        "initiator": payload.get("initiator", ""),
        "data": payload.get("data") or {},
    }
    if payload.get("initiator_name"):
        start_spec["initiator_name"] = payload["initiator_name"]
    if payload.get("key") is not None:
        start_spec["key"] = payload["key"]
    steps: list[dict[str, Any]] = []
    if per_step is not None:
        steps.append({"expect": {"calls": per_step[0]}})
    previous = start.at
    for n, entry in enumerate(entries[1:], start=1):
        gap = entry.at - previous
        previous = entry.at
        recorded = per_step[n] if per_step is not None else None
        if entry.kind == "tick":
            steps.append({"tick": {"advance": format_duration(gap)}})
            if recorded is not None:
                steps.append({"expect": {"calls": recorded}})
            continue
        if entry.kind not in {"complete", "cancel", "message"}:
            raise InputError(
                f"history entry {entry.seq} of instance {instance_id!r} is a {entry.kind!r}, "
                "which a scenario cannot express; export handles start, complete, tick, "
                "message, cancel"
            )
        if gap > timedelta(0):
            # Only the clock moves: a timer that fell due meanwhile fired within this action
            # (its effects are among the action's calls), not in a tick of its own.
            steps.append({"tick": {"advance": format_duration(gap), "fire": False}})
        action, expect = _action(entry)
        if recorded is not None:
            expect["calls"] = recorded
        steps.append(action)
        steps.append({"expect": expect})
    state = f", now {status}" if status else ""
    note = (
        ""
        if per_step is not None
        else " Recorded without call counts: a replay compares status and next nodes only."
    )
    return {
        "process": payload.get("process", ""),
        "description": (
            f"History of instance {instance_id} ({payload.get('process', '')}{state}), started "
            f"{start.at.isoformat()} by {start_spec['initiator']}: {len(entries)} recorded "
            f"actions. Expect steps hold what happened, for engine-bridge replay.{note}"
        ),
        "start": start_spec,
        "steps": steps,
    }


def _action(entry: HistoryEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    p = entry.payload
    if entry.kind == "cancel":
        cancel: dict[str, Any] = {"by": p.get("by", "")}
        if p.get("opinion"):
            cancel["opinion"] = p["opinion"]
        return {"cancel": cancel}, {"finished": True}
    outcome = p.get("outcome") or {}
    if entry.kind == "message":
        message: dict[str, Any] = {"name": p.get("name", ""), "data": p.get("data") or {}}
        return {"message": message}, _expected(outcome)
    complete: dict[str, Any] = {
        "node": p.get("node") or "",
        "handler": p.get("handler", ""),
        "data": p.get("data") or {},
    }
    if p.get("opinion"):
        complete["opinion"] = p["opinion"]
    if p.get("which"):
        complete["which"] = p["which"]
    return {"complete": complete}, _expected(outcome)


def _expected(outcome: dict[str, Any]) -> dict[str, Any]:
    """The expect step of a recorded outcome: its status, the nodes it opened, the end."""
    expect: dict[str, Any] = {}
    if outcome.get("status") is not None:
        expect["status"] = outcome["status"]
    expect["next_nodes"] = [c.get("node_id") for c in outcome.get("created", [])]
    if "finished" in outcome:
        expect["finished"] = bool(outcome["finished"])
    return expect


def _calls_per_step(
    entries: Sequence[HistoryEntry], calls: Sequence[CenterCall] | None
) -> list[list[dict[str, Any]]] | None:
    """Split the instance's calls by the counts the history recorded; None when the history
    has no counts or they do not add up to the outbox (then calls are left out, not guessed)."""
    counts = [e.payload.get("calls") for e in entries]
    if calls is None or not all(isinstance(c, int) and c >= 0 for c in counts):
        return None
    if sum(int(c) for c in counts if c is not None) != len(calls):
        return None
    normalized = comparable(calls_as_json(calls))
    out: list[list[dict[str, Any]]] = []
    at = 0
    for count in counts:
        assert isinstance(count, int)
        out.append(normalized[at : at + count])
        at += count
    return out


def format_duration(delta: timedelta) -> str:
    """ISO 8601 duration in hours, minutes and seconds, as scenario ``tick`` steps take it
    (``PT49H``, ``PT3H0.5S``, ``PT0S``)."""
    micros = max(0, round(delta.total_seconds() * 1_000_000))
    hours, rest = divmod(micros, 3_600 * 1_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000)
    text = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if rest:
        text += f"{rest / 1_000_000:.6f}".rstrip("0").rstrip(".") + "S"
    return "PT" + (text or "0S")
