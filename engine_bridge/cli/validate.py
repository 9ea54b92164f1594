"""``engine-bridge validate FILES_OR_DIRS... [--format text|json]``: check BPMN before deploying.

Made for people and CI alike: one line per problem (``file:line: severity: message [id]
(code)``) or ``file: ok``; ``--format json`` for tools. Exit 0 when nothing is an error
(warnings allowed), 1 when something is, 2 when the command line itself is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from engine_bridge.loader.library import analyse_paths
from engine_bridge.loader.problems import Problem

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check BPMN files for the bridge (handlers, expressions, ids, safety)",
        description="Check BPMN files and directories (every *.bpmn plus processes.yaml in "
        "them) and report every problem with file, line and element id.",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="BPMN files or folders")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (text)"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    return run(args.paths, output_format=args.format)


def run(
    paths: Sequence[str],
    *,
    output_format: str = "text",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Validate ``paths`` and print the report; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        for path in missing:
            print(f"engine-bridge validate: no such file or directory: {path}", file=err)
        return 2
    try:
        analysis = analyse_paths(list(paths))
    except Exception as exc:  # the promise is "never a traceback", even on a loader bug
        print(f"engine-bridge validate: internal error: {type(exc).__name__}: {exc}", file=err)
        return 1
    problems = analysis.problems
    checked = [s.file for s in analysis.files]
    if output_format == "json":
        _print_json(checked, problems, out)
    else:
        _print_text(checked, problems, out)
    return 1 if any(p.severity == "error" for p in problems) else 0


def _print_text(checked: list[str], problems: list[Problem], out: TextIO) -> None:
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file in checked:
        found = by_file.pop(file, [])
        if not any(p.severity == "error" for p in found):
            print(f"{file}: ok", file=out)
        for problem in found:
            print(str(problem), file=out)
    for rest in by_file.values():  # settings files, directories without BPMN
        for problem in rest:
            print(str(problem), file=out)


def _print_json(checked: list[str], problems: list[Problem], out: TextIO) -> None:
    errors = {p.file for p in problems if p.severity == "error"}
    report = {
        "ok": not errors,
        "files": [{"file": f, "ok": f not in errors} for f in checked],
        "problems": [p.to_json() for p in problems],
    }
    json.dump(report, out, ensure_ascii=False, indent=2)
    out.write("\n")
