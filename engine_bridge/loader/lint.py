"""The bridge's lint rules: what ``engine-bridge validate`` reports beyond "can it load".

Loading (``library``/``validate``) refuses what cannot run. Lint finds what runs but probably
does not do what the author meant, and is only run by ``validate`` (never when loading, so a
lint finding never stops a deployed worker). Every finding is a :class:`Problem` with file,
element id and line; ``docs/lint.md`` lists the rules with a broken example each.

==========================  ========  ======================================================
code                        severity  finding
==========================  ========  ======================================================
template-unknown-variable   warning   a taskName/taskSummary/URL/transaction template names a
                                      variable the process never has (see ``lint_vars``)
countersign-no-rule         warning   a parallel multi-instance user task has neither a
                                      ``completionCondition`` nor the property
                                      ``completion="all"`` saying every signer must sign
unreachable                 warning   see ``lint_flow``
no-path-to-end              error     see ``lint_flow``
implicit-end                warning   see ``lint_flow``
implicit-fork               warning   see ``lint_flow``
implicit-join               warning   see ``lint_flow``
==========================  ========  ======================================================

``no-handlers`` and ``summary-too-long`` are loader rules (``validate.check_nodes``) and are
reported by loading as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine_bridge.loader.library import Analysis, analyse_paths
from engine_bridge.loader.lint_flow import check_flow
from engine_bridge.loader.lint_vars import ProcessVariables, collect_variables, element_variables
from engine_bridge.loader.model import NodeSettings
from engine_bridge.loader.problems import Problem, TreeTransform
from engine_bridge.loader.settings import (
    SETTINGS_FILES,
    URL_PROPERTIES,
    read_process_settings_file,
    split_summary,
)
from engine_bridge.loader.syntax import key_lines
from engine_bridge.loader.xml_safety import BPMN_NS, SPIFF_NS

__all__ = [
    "BUILTIN_VARIABLES",
    "COMPLETION_ALL",
    "COMPLETION_PROPERTY",
    "LINT_CODES",
    "START_VARIABLES",
    "lint_analysis",
    "lint_paths",
    "settings_files",
    "template_variables",
]

# What the bridge adds to the data a todo's templates see (engine.todos._view) …
BUILTIN_VARIABLES = frozenset(
    {"instanceId", "todoId", "nodeId", "initiator", "initiatorName", "process_name"}
)
# … and to the start data a transaction's templates see (engine.runtime._render_transaction).
START_VARIABLES = frozenset({"instanceId", "initiator", "initiatorName", "process_name"})

# The marker that a countersign without a completionCondition is meant to wait for everyone.
COMPLETION_PROPERTY = "completion"
COMPLETION_ALL = "all"

LINT_CODES = (
    "template-unknown-variable",
    "countersign-no-rule",
    "unreachable",
    "no-path-to-end",
    "implicit-end",
    "implicit-fork",
    "implicit-join",
)

_HUMAN_TASKS = ("userTask", "manualTask")  # a plain bpmn:task is passed through
_PROCESS_TEMPLATE_KEYS = ("transactionName", "transSummary", *URL_PROPERTIES)


def _q(local: str, ns: str = BPMN_NS) -> str:
    return f"{{{ns}}}{local}"


def template_variables(template: str) -> list[str]:
    """The variables a ``{var}`` / ``{var.key}`` template reads, in order, as the engine's
    ``render_template`` reads them: ``{{``/``}}`` are literal braces and anything else in braces
    (``{x!r}``, ``{0}``) is left as text, so it names no variable."""
    found: list[str] = []
    i, n = 0, len(template)
    while i < n:
        if template.startswith("{{", i) or template.startswith("}}", i):
            i += 2
            continue
        if template[i] != "{":
            i += 1
            continue
        end = template.find("}", i + 1)
        if end == -1:
            break
        parts = template[i + 1 : end].strip().split(".")
        valid = all(p and (p.isidentifier() or p.isdigit()) for p in parts)
        if valid and parts[0].isidentifier() and parts[0] not in found:
            found.append(parts[0])
        i = end + 1
    return found


# --------------------------------------------------------------------------- countersigns


def _spiff_property(task: Any, name: str) -> str | None:
    for prop in task.iter(_q("property", SPIFF_NS)):
        if prop.get("name") == name:
            return str(prop.get("value") or "").strip()
    return None


def _countersigns(root: Any, file: str) -> list[Problem]:
    problems: list[Problem] = []
    for kind in _HUMAN_TASKS:
        for task in root.iter(_q(kind)):
            loop = task.find(_q("multiInstanceLoopCharacteristics"))
            if loop is None or loop.get("isSequential") == "true":
                continue
            if (loop.findtext(_q("completionCondition")) or "").strip():
                continue
            marker = _spiff_property(task, COMPLETION_PROPERTY)
            if marker == COMPLETION_ALL:
                continue
            label = task.get("name") or task.get("id")
            if marker is None:
                why = "has no completionCondition, so it is not clear whether every signer "
                why += "must sign"
            else:
                why = f"has the property {COMPLETION_PROPERTY}={marker!r}, which means nothing"
            problems.append(
                Problem(
                    file,
                    f"countersign {label!r} {why}: add a completionCondition (e.g. "
                    "nrOfCompletedInstances >= 2) or, if everyone must sign, the "
                    f'spiffworkflow:property {COMPLETION_PROPERTY}="{COMPLETION_ALL}"',
                    "countersign-no-rule",
                    element_id=task.get("id"),
                    line=task.sourceline,
                    severity="warning",
                )
            )
    return problems


# --------------------------------------------------------------------------- templates


def _process_elements(analysis: Analysis) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for source in analysis.files:
        if source.root is None:
            continue
        for process in source.root.iter(_q("process")):
            if process.get("id"):
                found.setdefault(str(process.get("id")), process)
    return found


def _tree_variables(
    process_id: str, elements: Mapping[str, Any], cache: dict[str, ProcessVariables]
) -> ProcessVariables:
    """Variables of a process plus every process it calls (a call activity copies the
    caller's data in and the results back out)."""
    merged = ProcessVariables()
    pending, seen = [process_id], set()
    while pending:
        pid = pending.pop()
        if pid in seen or pid not in elements:
            continue
        seen.add(pid)
        if pid not in cache:
            cache[pid] = collect_variables(elements[pid])
        merged.merge(cache[pid])
        for call in elements[pid].iter(_q("callActivity")):
            pending.append(str(call.get("calledElement") or ""))
    return merged


def _node_templates(node: NodeSettings) -> Iterator[tuple[str, str]]:
    if node.task_name:
        yield "taskName", node.task_name
    for item in node.task_summary:
        yield "taskSummary", item
    yield from node.urls.items()


def _parallel_mi(elements: Mapping[str, Any]) -> dict[str, set[str]]:
    """Element variables of every parallel multi-instance human task, by task id."""
    found: dict[str, set[str]] = {}
    for process in elements.values():
        for kind in _HUMAN_TASKS:
            for task in process.iter(_q(kind)):
                loop = task.find(_q("multiInstanceLoopCharacteristics"))
                if loop is not None and loop.get("isSequential") != "true" and task.get("id"):
                    found[str(task.get("id"))] = element_variables(task)
    return found


def _task_templates(analysis: Analysis, elements: Mapping[str, Any]) -> list[Problem]:
    cache: dict[str, ProcessVariables] = {}
    # A task can run inside several processes (a called process); a name is unknown only
    # if no process the task runs in can have it.
    contexts: dict[tuple[str, str], tuple[NodeSettings, list[ProcessVariables]]] = {}
    for process_id, built in analysis.processes.items():
        variables = _tree_variables(process_id, elements, cache)
        for node in built.nodes.values():
            file = node.location.file if node.location else ""
            entry = contexts.setdefault((file, node.node_id), (node, []))
            entry[1].append(variables)
    countersigns = _parallel_mi(elements)
    problems: list[Problem] = []
    for (file, node_id), (node, trees) in contexts.items():
        uses: dict[str, list[str]] = {}
        for prop, template in _node_templates(node):
            for name in template_variables(template):
                uses.setdefault(name, [])
                if prop not in uses[name]:
                    uses[name].append(prop)
        own_items = countersigns.get(node_id, set())
        for name, props in uses.items():
            if name in BUILTIN_VARIABLES:
                continue
            where = ", ".join(props)
            owners = [t.owners(name) for t in trees if name in t.known()]
            if name in own_items and all(o <= {node_id} for o in owners):
                message = (
                    f"{where} of countersign {node.node_name!r} uses {{{name}}}, its element "
                    "variable, which does not exist in the one todo all signers share, so it "
                    "renders empty; use the input collection or another variable"
                )
            elif not owners:
                message = (
                    f"{where} of {node.node_name!r} uses {{{name}}}, which nothing in the "
                    "process declares, writes or reads, so it renders empty; fix the name or "
                    f"declare it ('Start data: {name}' in the process documentation, or "
                    f"'Form data: {name}' in the documentation of the task that submits it)"
                )
            else:
                continue
            problems.append(
                Problem(
                    file,
                    message,
                    "template-unknown-variable",
                    element_id=node_id,
                    line=node.location.line if node.location else None,
                    severity="warning",
                )
            )
    return problems


def settings_files(paths: Sequence[str | Path]) -> list[Path]:
    """The process settings files the library reads for ``paths`` (one per directory)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [path / n for n in SETTINGS_FILES if (path / n).is_file()][:1]
        elif path.is_file() and path.name in SETTINGS_FILES:
            found.append(path)
    return found


def _raw_templates(raw: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key in _PROCESS_TEMPLATE_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        items: Iterable[str] = split_summary(value) if key == "transSummary" else [str(value)]
        for item in items:
            yield key, item


def _settings_templates(
    files: Sequence[Path], elements: Mapping[str, Any], analysis: Analysis
) -> list[Problem]:
    cache: dict[str, ProcessVariables] = {}
    problems: list[Problem] = []
    for path in files:
        entries, _ = read_process_settings_file(path)  # its problems come from loading
        lines = key_lines(path, 2)
        for process_id, raw in entries.items():
            if process_id not in analysis.processes:
                continue
            at_start = _tree_variables(process_id, elements, cache).at_start()
            for key, template in _raw_templates(raw):
                for name in template_variables(template):
                    if name in START_VARIABLES or name in at_start:
                        continue
                    problems.append(
                        Problem(
                            str(path),
                            f"{key} of process {process_id!r} uses {{{name}}}, which is not "
                            "start data: a transaction is named when the process starts, from "
                            "its start data and "
                            f"{', '.join(sorted(START_VARIABLES))}; fix the name or declare "
                            f"it ('Start data: {name}' in the process documentation)",
                            "template-unknown-variable",
                            element_id=process_id,
                            line=lines.get((process_id, key)),
                            severity="warning",
                        )
                    )
    return problems


# --------------------------------------------------------------------------- entry points


def lint_analysis(analysis: Analysis, *, settings: Sequence[Path] = ()) -> list[Problem]:
    """Every lint finding for an analysed set of files (``settings``: the process settings
    files it was read with, see :func:`settings_files`), ordered by file and line."""
    problems: list[Problem] = []
    for source in analysis.files:
        if source.root is None:
            continue
        problems += _countersigns(source.root, source.file)
        problems += check_flow(source.root, source.file)
    elements = _process_elements(analysis)
    problems += _task_templates(analysis, elements)
    problems += _settings_templates(settings, elements, analysis)
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line or 0, p.element_id or "", p.code))


def lint_paths(
    paths: str | Path | Sequence[str | Path], *, transforms: Sequence[TreeTransform] = ()
) -> tuple[Analysis, list[Problem]]:
    """Analyse ``paths`` as the library would and lint them: ``(analysis, lint problems)``."""
    listed = [paths] if isinstance(paths, str | Path) else list(paths)
    analysis = analyse_paths(listed, transforms=transforms)
    return analysis, lint_analysis(analysis, settings=settings_files(listed))
