"""``engine-bridge validate FILES_OR_DIRS... [--format text|json]``: check BPMN before deploying.

Made for people and CI alike: one line per problem (``file:line: severity: message [id]
(code)``) or ``file: ok``; ``--format json`` for tools. Exit 0 when nothing is an error
(warnings allowed), 1 when something is, 2 when the command line itself is wrong.
``--strict`` makes warnings fail too (exit 1): a file with a warning is then not ``ok``, in
text or JSON. With ``--format json`` a path that does not exist is reported in JSON too
(``errors``). Besides what loading checks, the lint rules of ``loader.lint`` run (templates,
countersigns, flow shape; ``docs/lint.md``).

Files are checked as ``Bridge.open`` loads them: Camunda, Flowable and Activiti models are
translated first. ``--resolver NAME`` names a bean resolver the running bridge registers (a
bean call without one is an error); ``--each`` checks every file on its own, for a folder of
unrelated models. Text output prints ids and names as written; JSON output escapes ``<``, ``>``
and ``&`` too, so a report pasted into a web page cannot inject markup.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from engine_bridge.loader.library import analyse_paths, is_bpmn_file
from engine_bridge.loader.lint import lint_analysis, settings_files
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.settings import SETTINGS_FILES
from engine_bridge.loader.validate import DEFAULT_TRANSFORMS, require_resolvers, require_services

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
    parser.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="NAME",
        help="a bean resolver the bridge registers (svc.findEditor, or svc for all its "
        "methods); repeat for several",
    )
    parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="KEY",
        help="a service handler the bridge registers (its key, the task id, or task:<id>); "
        "repeat for several. Service tasks none of them answers are errors",
    )
    parser.add_argument(
        "--each",
        action="store_true",
        help="check every BPMN file on its own (a folder of unrelated models)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail (exit 1) on warnings too, not only errors"
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    return run(
        args.paths,
        output_format=args.format,
        resolvers=args.resolver,
        services=args.service,
        each=args.each,
        strict=args.strict,
    )


def run(
    paths: Sequence[str],
    *,
    output_format: str = "text",
    out: TextIO | None = None,
    err: TextIO | None = None,
    resolvers: Sequence[str] = (),
    services: Sequence[str] = (),
    each: bool = False,
    strict: bool = False,
) -> int:
    """Validate ``paths`` and print the report; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        messages = [f"no such file or directory: {path}" for path in missing]
        for message in messages:
            print(f"engine-bridge validate: {message}", file=err)
        if output_format == "json":
            _print_json_error(messages, out)
        return 2
    problems: list[Problem] = []
    checked: list[str] = []
    try:
        for group in _groups(paths) if each else [list(paths)]:
            analysis = analyse_paths(group, transforms=DEFAULT_TRANSFORMS)
            found = require_services(require_resolvers(analysis.problems, resolvers), services)
            found += lint_analysis(analysis, settings=settings_files(group))
            if each:  # a settings file serves the whole folder, not this one file
                found = [p for p in found if p.code != "settings-unknown-process"]
            problems += [p for p in found if p not in problems]
            checked += [s.file for s in analysis.files]
    except Exception as exc:  # the promise is "never a traceback", even on a loader bug
        message = f"internal error: {type(exc).__name__}: {exc}"
        print(f"engine-bridge validate: {message}", file=err)
        if output_format == "json":
            _print_json_error([message], out)
        return 1
    failing = ("error", "warning") if strict else ("error",)
    if output_format == "json":
        _print_json(checked, problems, out, failing)
    else:
        _print_text(checked, problems, out, failing)
    return 1 if any(p.severity in failing for p in problems) else 0


def _groups(paths: Sequence[str]) -> list[list[str]]:
    """One group per BPMN file, with the settings file of its folder (``--each``)."""
    groups: list[list[str]] = []
    for raw in paths:
        path = Path(raw)
        files = sorted(f for f in path.iterdir() if is_bpmn_file(f)) if path.is_dir() else []
        folder = path if path.is_dir() else path.parent
        settings = [str(folder / n) for n in SETTINGS_FILES if (folder / n).is_file()][:1]
        if not path.is_dir() and path.name in SETTINGS_FILES:
            continue  # read beside each BPMN file of its folder
        groups += [[str(f), *settings] for f in files] if files else [[raw, *settings]]
    return groups


def _print_text(
    checked: list[str], problems: list[Problem], out: TextIO, failing: Sequence[str]
) -> None:
    """``file: ok`` for every file nothing in ``failing`` (severities) was found in."""
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file in checked:
        found = by_file.pop(file, [])
        if not any(p.severity in failing for p in found):
            print(f"{file}: ok", file=out)
        for problem in found:
            print(str(problem), file=out)
    for rest in by_file.values():  # settings files, directories without BPMN
        for problem in rest:
            print(str(problem), file=out)


def _print_json(
    checked: list[str], problems: list[Problem], out: TextIO, failing: Sequence[str]
) -> None:
    """``ok`` is false for the report and every file a problem in ``failing`` was found in."""
    failed = {p.file for p in problems if p.severity in failing}
    report = {
        "ok": not any(p.severity in failing for p in problems),
        "files": [{"file": f, "ok": f not in failed} for f in checked],
        "problems": [p.to_json() for p in problems],
    }
    _write_json(report, out)


def _print_json_error(messages: list[str], out: TextIO) -> None:
    """The report when nothing could be checked: ``ok`` false and why, under ``errors``."""
    _write_json({"ok": False, "errors": messages, "files": [], "problems": []}, out)


def _write_json(report: dict[str, Any], out: TextIO) -> None:
    text = json.dumps(report, ensure_ascii=False, indent=2)
    # Still the same JSON once parsed; safe to embed in HTML (ids may hold markup).
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    out.write(text + "\n")
