"""``engine-bridge replay HISTORY... --workflows NEW_DIR``: would a process change alter what
running instances did?

Each history (from ``engine-bridge history export``) is replayed against the given BPMN files
in a sandbox (in-process fake centre, temporary database, fake clock). Per history it prints
``same`` or the first step where the centre calls diverge, field by field, or where the step
can no longer be done. Exit 0 when every history is the same, 1 when any diverged, else 2 when a
history file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine_bridge.errors import ScenarioError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay exported histories against (new) BPMN files and report divergences",
        description="Replay each HISTORY against the BPMN files in --workflows and report "
        "'same' or the first step whose centre calls differ (or that can no longer be done). "
        "Exit 0: all same; 1: some diverged; 2: a history could not be read.",
    )
    parser.add_argument("histories", nargs="+", metavar="HISTORY", help="exported history files")
    parser.add_argument(
        "--workflows",
        required=True,
        action="append",
        metavar="PATH",
        help="BPMN folder or file to replay against (repeat for several)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    parser.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    # Imported here: every engine-bridge command loads this module to register it.
    from engine_bridge.testing.replay import ReplayResult, replay
    from engine_bridge.testing.scenario import load_scenario

    workflows = [Path(p) for p in args.workflows]
    missing = [str(p) for p in workflows if not p.exists()]
    if missing:
        print(f"error: no such workflows path: {', '.join(missing)}", file=sys.stderr)
        return 2
    results: list[ReplayResult] = []
    unreadable = 0
    for path in args.histories:
        try:
            history = load_scenario(path)
        except ScenarioError as exc:
            unreadable += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        results.append(replay(history, workflows, source=path))
    diverged = sum(1 for r in results if not r.same)
    if args.format == "json":
        report = {
            "same": diverged == 0 and unreadable == 0,
            "histories": [r.to_json() for r in results],
        }
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for result in results:
            print("\n".join(result.lines()))
        print(
            f"{len(results)} replayed: {len(results) - diverged} same, {diverged} diverged"
            + (f"; {unreadable} unreadable" if unreadable else "")
        )
    if diverged:
        return 1
    return 2 if unreadable else 0
