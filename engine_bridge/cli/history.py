"""``engine-bridge history``: what an instance went through, and that path as a replayable file.

``show INSTANCE`` lists the recorded actions (start, completions with handler and data, ticks,
messages, cancels) with their times. ``export INSTANCE [-o FILE]`` writes them as a scenario whose
``expect`` steps hold what happened (status, next nodes, the normalised centre calls), ready
for ``engine-bridge replay FILE --workflows NEW_DIR`` before a process change is deployed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine_bridge.cli._common import (
    add_database_argument,
    open_for_reading,
    show_usage_without_action,
)
from engine_bridge.store import HistoryEntry

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show an instance's recorded actions, or export them as a replayable scenario",
    )
    commands = parser.add_subparsers(dest="history_command", metavar="ACTION")

    export = commands.add_parser(
        "export",
        help="write the instance's history as a scenario (JSON) for engine-bridge replay",
        description="Write the recorded actions of INSTANCE as a scenario file: the start, "
        "then a complete, message, tick or cancel step per action, each followed by an expect "
        "step holding what happened (status, next nodes, the normalised centre calls). Time "
        "between actions becomes tick steps.",
    )
    export.add_argument("instance", metavar="INSTANCE", help="instance id")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    add_database_argument(export)
    export.set_defaults(func=_export)

    show = commands.add_parser("show", help="list the instance's recorded actions")
    show.add_argument("instance", metavar="INSTANCE", help="instance id")
    add_database_argument(show)
    show.set_defaults(func=_show)

    show_usage_without_action(parser)


def _export(args: argparse.Namespace) -> int:
    from engine_bridge.history import export_history  # imports the testing kit; only when asked

    with open_for_reading(args.database) as store:
        document = export_history(store, args.instance)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    actions = sum(1 for s in document["steps"] if "expect" not in s)
    print(
        f"wrote {args.output}: instance {args.instance} of {document['process']}, "
        f"{actions} steps after the start"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_for_reading(args.database) as store:
        record = store.get_instance(args.instance)
        entries = store.history(args.instance)
    print(f"instance {record.id} of {record.process_id}: {record.status}")
    for entry in entries:
        print(f"  {entry.seq:>3}  {entry.at.isoformat()}  {_describe(entry)}")
    return 0


def _describe(entry: HistoryEntry) -> str:
    p = entry.payload
    if entry.kind == "start":
        data = json.dumps(p.get("data") or {}, ensure_ascii=False, sort_keys=True)
        return f"{p.get('initiator')} starts {p.get('process')} with {data}"
    if entry.kind == "complete":
        data = json.dumps(p.get("data") or {}, ensure_ascii=False, sort_keys=True)
        status = (p.get("outcome") or {}).get("status")
        opinion = f", opinion {p['opinion']!r}" if p.get("opinion") else ""
        return f"{p.get('handler')} completes {p.get('node')} with {data}{opinion} → {status}"
    if entry.kind == "tick":
        return "timers fired"
    if entry.kind == "message":
        data = json.dumps(p.get("data") or {}, ensure_ascii=False, sort_keys=True)
        created = [c.get("node_id") for c in (p.get("outcome") or {}).get("created", [])]
        opened = f" → opens {', '.join(map(str, created))}" if created else ""
        return f"message {p.get('name')} arrives with {data}{opened}"
    if entry.kind == "cancel":
        return f"{p.get('by')} cancels the instance"
    return f"{entry.kind} {json.dumps(p, ensure_ascii=False, sort_keys=True)}"
