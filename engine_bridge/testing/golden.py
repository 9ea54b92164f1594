"""Golden transcripts: the centre calls of a scenario, checked in and compared on every run.

Files are JSON lines, one centre call per line (``endpoint``, ``request``, ``response``), made
comparable first: keys sorted, the todos a handle creates (``next[]``) in node order, ids
numbered by first appearance (``T1``, ``T2``…) and times blanked (``normalize_transcript``). So a
file only changes when the calls really change.

A mismatch fails with a list of the fields that differ, each named by its path
(``call 2 (taskHandle) request[0].next[0].handlers: golden "D001", this run "D002"``), followed
by a unified diff with one line per field. ``--update-golden`` rewrites the files.

The same comparison serves ``engine-bridge replay`` and scenario ``expect`` steps that carry
recorded ``calls``, which is why the helpers below take labels for the two sides.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine_bridge.facts import CenterCall
from engine_bridge.testing.normalize import normalize_transcript

__all__ = [
    "Golden",
    "GoldenMismatch",
    "call_summary",
    "calls_as_json",
    "comparable",
    "field_differences",
    "render_golden",
    "step_differences",
]

_PREFIX = "/apis/ttc/v1/transaction/poa/"
_MAX_DIFFERENCES = 20
_MAX_VALUE_CHARS = 160


class GoldenMismatch(AssertionError):
    """The calls differ from the checked-in transcript; the message names every field that
    differs and shows a unified diff."""


# ---------------------------------------------------------------------- making calls comparable


def calls_as_json(calls: Iterable[CenterCall]) -> list[dict[str, Any]]:
    """Planned calls as plain JSON: ``{"endpoint": "taskHandle", "item": {...}}`` each."""
    return [
        {"endpoint": c.endpoint.value, "item": json.loads(json.dumps(dict(c.item)))} for c in calls
    ]


def _stable(value: Any, key: str | None = None) -> Any:
    """Sort keys everywhere and ``next[]`` by node, so numbering ids by first appearance does
    not depend on the order a dict was built in or the engine listed parallel branches in."""
    if isinstance(value, Mapping):
        return {k: _stable(value[k], k) for k in sorted(value)}
    if isinstance(value, list):
        items = [_stable(v) for v in value]
        if key == "next" and all(isinstance(v, Mapping) for v in items):
            items.sort(key=lambda v: json.dumps(_without_ids(v), ensure_ascii=False))
        return items
    return value


def _without_ids(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in {"taskId", "previousTaskId"}}


def comparable(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Transcript entries (or ``calls_as_json`` calls) in the form golden files and replays
    compare: stable order, ids numbered, times blanked."""
    return normalize_transcript(_stable(dict(e)) for e in entries)


def render_golden(entries: Iterable[Mapping[str, Any]]) -> str:
    """The text of a golden file for ``entries``: one sorted-key JSON object per line."""
    lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in comparable(entries)]
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------- describing differences


def _endpoint(entry: Mapping[str, Any]) -> str:
    return str(entry.get("endpoint", "?")).removeprefix(_PREFIX)


def _brief(value: Any) -> str:
    if isinstance(value, list) and value and all(_is_todo(v) for v in value):
        return "[" + ", ".join(f"{v['nodeId']}→{_who(v)}" for v in value) + "]"
    if _is_todo(value):
        return f"{{todo {value['nodeId']}→{_who(value)}}}"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _is_todo(value: Any) -> bool:
    return isinstance(value, Mapping) and "nodeId" in value and "taskId" in value


def call_summary(entry: Mapping[str, Any]) -> str:
    """One line for a call (``calls_as_json`` form) or a transcript entry: endpoint, status,
    who, which todo, and the todos it creates (node → handlers)."""
    items = entry.get("request") if "request" in entry else [entry.get("item")]
    parts = []
    for item in items if isinstance(items, list) else [items]:
        if not isinstance(item, Mapping):
            parts.append(_brief(item))
            continue
        words = [_endpoint(entry)]
        if item.get("status"):
            words.append(f"status={item['status']}")
        who = item.get("handler") or item.get("creator")
        if who:
            words.append(f"by {who}")
        if item.get("previousTaskId") and _endpoint(entry) == "taskHandle":
            words.append(f"on {item['previousTaskId']}")
        elif item.get("nodeId"):
            words.append(f"{item['nodeId']}→{_who(item)}")
        nxt = [n for n in item.get("next") or [] if isinstance(n, Mapping)]
        if nxt:
            words.append("next[" + ", ".join(f"{n.get('nodeId')}→{_who(n)}" for n in nxt) + "]")
        parts.append(" ".join(words))
    return "; ".join(parts)


def _who(item: Mapping[str, Any]) -> str:
    handlers = item.get("handlers")
    group = item.get("handlingGroup")
    if handlers and group:
        return f"{handlers} (group {group})"
    return str(handlers or (f"group {group}" if group else "nobody"))


def field_differences(
    expected: Sequence[Mapping[str, Any]],
    actual: Sequence[Mapping[str, Any]],
    *,
    labels: tuple[str, str] = ("golden", "this run"),
    first_call: int = 1,
    limit: int = _MAX_DIFFERENCES,
) -> list[str]:
    """Every field that differs between two lists of comparable calls, named by its path
    (``call 2 (taskHandle) request[0].status: golden "next", this run "end"``); calls
    present on one side only are listed with a one-line summary. At most ``limit`` lines."""
    left, right = labels
    out: list[str] = []
    for n in range(max(len(expected), len(actual))):
        number = n + first_call
        if n >= len(actual):
            out.append(f"call {number}: only in {left}: {call_summary(expected[n])}")
            continue
        if n >= len(expected):
            out.append(f"call {number}: only in {right}: {call_summary(actual[n])}")
            continue
        a, b = expected[n], actual[n]
        prefix = f"call {number} ({_endpoint(a)})"
        if _endpoint(a) != _endpoint(b):
            out.append(
                f"call {number}: endpoint: {left} {_endpoint(a)} ({call_summary(a)}), "
                f"{right} {_endpoint(b)} ({call_summary(b)})"
            )
            continue
        _walk(
            {k: v for k, v in a.items() if k != "endpoint"},
            {k: v for k, v in b.items() if k != "endpoint"},
            prefix,
            "",
            labels,
            out,
        )
    if len(out) > limit:
        out = [*out[:limit], f"… and {len(out) - limit} more differences"]
    return out


def _walk(a: Any, b: Any, prefix: str, path: str, labels: tuple[str, str], out: list[str]) -> None:
    left, right = labels
    where = f"{prefix} {path}" if path else prefix
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{prefix} {sub}: only in {left}: {_brief(a[key])}")
            elif key not in a:
                out.append(f"{prefix} {sub}: only in {right}: {_brief(b[key])}")
            else:
                _walk(a[key], b[key], prefix, sub, labels, out)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, prefix, f"{path}[{i}]", labels, out)
        return
    if a != b:
        if isinstance(a, list) and isinstance(b, list):
            out.append(
                f"{where}: {left} has {len(a)} item(s) {_brief(a)}, "
                f"{right} has {len(b)} item(s) {_brief(b)}"
            )
        else:
            out.append(f"{where}: {left} {_brief(a)}, {right} {_brief(b)}")


def step_differences(
    expected_step: Sequence[Mapping[str, Any]],
    actual_so_far: Sequence[Mapping[str, Any]],
    step_count: int,
    *,
    labels: tuple[str, str] = ("recorded", "replay"),
    first_call: int = 1,
) -> list[str]:
    """Compare one step's calls with what was recorded for it.

    ``expected_step`` is already comparable (numbered over the recorded run up to this step);
    ``actual_so_far`` is every call of this run up to and including the step (raw or
    comparable), of which the last ``step_count`` belong to the step. Ids are numbered over the
    whole run so far on both sides, so they line up as long as earlier steps matched.
    ``appId`` is not compared (see ``_sans_app_id``).
    """
    normalized = comparable(_sans_app_id(actual_so_far))
    mine = normalized[len(normalized) - step_count :] if step_count else []
    expected = _sans_app_id(expected_step)
    return field_differences(expected, mine, labels=labels, first_call=first_call)


def _sans_app_id(value: Any) -> Any:
    """``value`` without ``appId`` anywhere. The app id names the deployment a step ran in
    (production's, for an exported history), not what the process did; the sandbox that
    replays it has its own."""
    if isinstance(value, Mapping):
        return {k: _sans_app_id(v) for k, v in value.items() if k != "appId"}
    if isinstance(value, list):
        return [_sans_app_id(v) for v in value]
    return value


# ---------------------------------------------------------------------- the files


class Golden:
    """Golden transcripts in ``folder`` (``<name>.jsonl``); ``update`` rewrites instead of
    comparing. ``rewritten`` lists the files an update changed (the plugin reports them)."""

    def __init__(self, folder: str | Path, *, update: bool = False) -> None:
        self.folder = Path(folder)
        self.update = update
        self.rewritten: list[Path] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"

    def check(self, name: str, entries: Iterable[Mapping[str, Any]]) -> None:
        """Compare ``entries`` (a transcript) with the golden file ``name``, or rewrite the file
        when updating. A missing file fails unless updating, so a forgotten file never passes."""
        __tracebackhide__ = True  # pytest shows the caller's line and this message, not ours
        actual = render_golden(entries)
        target = self.path(name)
        if self.update:
            if not target.exists() or target.read_text(encoding="utf-8") != actual:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(actual, encoding="utf-8")
                self.rewritten.append(target)
            return
        if not target.exists():
            raise GoldenMismatch(
                f"no golden transcript {target}; run pytest with --update-golden to create it"
            )
        expected = target.read_text(encoding="utf-8")
        if expected == actual:
            return
        differences = field_differences(_lines(expected), _lines(actual))
        diff = difflib.unified_diff(
            _pretty(expected),
            _pretty(actual),
            fromfile=f"{target} (golden)",
            tofile=f"{name} (this run)",
            lineterm="",
        )
        raise GoldenMismatch(
            f"centre calls differ from the golden transcript {target}:\n"
            + "\n".join(f"  {d}" for d in differences)
            + "\nRun pytest with --update-golden if the change is intended.\n\n"
            + "\n".join(diff)
        )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _pretty(text: str) -> list[str]:
    """One line per field, so the unified diff points at the field that changed."""
    out: list[str] = []
    for n, entry in enumerate(_lines(text), start=1):
        out.append(f"--- call {n}: {entry.get('endpoint')}")
        for part in ("request", "response"):
            body = json.dumps(entry.get(part), ensure_ascii=False, indent=1, sort_keys=True)
            out.extend(f"{part}: {line}" for line in body.splitlines())
    return out
