"""``engine-bridge explain FILE... [--process ID] [--scenario S.json] [--data JSON]``: the centre
calls a path through a process would produce, step by step, without any network.

The process is ``--process``, else the scenario's, else the only executable process in the
files (with several, ``--process`` is needed and the error lists them).

Without a scenario it follows the default path (start with ``--data``, then complete the first
open todo as its first handler with no data, until the end) and stops with a clear message
where a condition needs data that path does not have. Exit 0 when the path ran through, 1 when
it stopped early, 2 when the command line is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine_bridge.cli._common import read_json_data
from engine_bridge.errors import ScenarioError

__all__ = ["register"]

DEFAULT_INITIATOR = "initiator"  # engine_bridge.explain.DEFAULT_INITIATOR, without the import


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="print the centre calls a path through a process produces (no network)",
        description="Run a path through a process against an in-process fake centre and print "
        "each step's centre calls: who does what, endpoint, status, the todos created (node "
        "and handlers). The path is --scenario, or the default path started with --data.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="BPMN files or folders")
    parser.add_argument(
        "--process",
        metavar="ID",
        help="process id (default: the scenario's, or the only executable process in FILE)",
    )
    parser.add_argument("--scenario", metavar="S.json", help="scenario file (JSON or YAML)")
    parser.add_argument(
        "--data", metavar="JSON", help="start data for the default path: a JSON object or @FILE"
    )
    parser.add_argument(
        "--initiator",
        default=DEFAULT_INITIATOR,
        help=f"who starts the default path ({DEFAULT_INITIATOR})",
    )
    parser.add_argument(
        "--max-steps",
        type=_positive,
        default=50,
        help="stop the default path after this many completions (50)",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    parser.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    if args.scenario is not None and args.data is not None:
        print("error: --data is for the default path; the scenario has its own", file=sys.stderr)
        return 2
    missing = [f for f in args.files if not Path(f).exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    data = read_json_data(args.data)
    if data is None:
        return 2
    # Imported here: every engine-bridge command loads this module to register it.
    from engine_bridge.explain import explain, render_text

    try:
        result = explain(
            [Path(f) for f in args.files],
            args.process,
            scenario=args.scenario,
            data=data,
            initiator=args.initiator,
            max_steps=args.max_steps,
        )
    except ScenarioError as exc:
        # Raised before anything runs: the scenario file given on the command line cannot
        # be read or is malformed, or runs another process than --process; or no --process
        # was given and the files do not hold exactly one executable process.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        json.dump(result.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result))
    return 1 if result.stopped else 0


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of steps")
    return value
