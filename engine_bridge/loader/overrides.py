"""Node overrides: per-task settings given beside the BPMN, for models you cannot edit.

A model drawn elsewhere (a vendor's example, a file another team owns, a diagram a modeller
exports again every week) may lack what the bridge needs: no assignee on a task, or a name
such as ``Multi User Task-${loopCounter}`` that reads badly as a todo title. Edits to the file
would be lost on the next export, so the process's entry in ``processes.yaml`` may carry::

    multiInstanceUserTaskEvents:
      nodes:
        task:                       # the BPMN id of a user task of this process
          handlers: "approvers[loopCounter]"
          taskName: "Sign-off"

Each key given replaces what the BPMN says for that task (after the vendor translation, so an
override also beats ``camunda:assignee``); keys not given keep the BPMN's value, and ``null``
removes it (a task left with neither ``handlers`` nor ``handlingGroup`` falls back to its
lane). ``handlers`` and ``handlingGroup`` are Python expressions like the BPMN properties (JUEL
written as ``${…}`` is translated the same way), or a YAML list of literal accounts;
``taskName``, ``taskSummary`` and the URLs are templates.

The overrides are a :data:`~engine_bridge.loader.problems.TreeTransform` that writes
``spiffworkflow:property`` values into the parsed model, so everything downstream (the rules,
SpiffWorkflow's parse, the engine) sees one model, exactly as if the modeller had written them.
The transform is a frozen value, so the loader's caches key on the overrides' content.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine_bridge.loader.juel import JuelError, collect_beans, has_juel, juel_to_python
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.services import bpmn, extension_elements, spiff
from engine_bridge.loader.settings import URL_PROPERTIES
from engine_bridge.loader.validate import expression_problem

__all__ = ["NODE_OVERRIDE_KEYS", "NodeOverrides", "read_node_overrides"]

NODE_OVERRIDE_KEYS = ("handlers", "handlingGroup", "taskName", "taskSummary", *URL_PROPERTIES)
_EXPRESSION_KEYS = ("handlers", "handlingGroup")
_HUMAN_TASKS = (bpmn("userTask"), bpmn("manualTask"))


@dataclass(frozen=True)
class _Node:
    node_id: str
    values: tuple[tuple[str, str | None], ...]  # (property, value or None to remove)


@dataclass(frozen=True)
class _Process:
    process_id: str
    settings_file: str
    nodes: tuple[_Node, ...]


@dataclass(frozen=True)
class NodeOverrides:
    """A TreeTransform writing the overrides of the settings files into the models."""

    processes: tuple[_Process, ...]

    def __call__(self, root: Any, file: str) -> list[Problem]:
        problems: list[Problem] = []
        wanted = {p.process_id: p for p in self.processes}
        for process in root.iter(bpmn("process")):
            given = wanted.get(str(process.get("id")))
            if given is not None:
                problems += _apply(process, given, file)
        return problems


def _apply(process: Any, given: _Process, file: str) -> list[Problem]:
    tasks = {str(t.get("id")): t for t in process.iter(*_HUMAN_TASKS) if t.get("id")}
    problems: list[Problem] = []
    for node in given.nodes:
        task = tasks.get(node.node_id)
        if task is None:
            names = ", ".join(sorted(tasks)) or "none"
            problems.append(
                Problem(
                    given.settings_file,
                    f"settings of process {given.process_id!r} override task {node.node_id!r}, "
                    f"which {file} does not have in that process (its user tasks: {names})",
                    "override-unknown-node",
                    element_id=node.node_id,
                )
            )
            continue
        for name, value in node.values:
            _set_property(task, name, value)
    return problems


def _set_property(task: Any, name: str, value: str | None) -> None:
    """Replace (or, for None, remove) the spiffworkflow property ``name`` of ``task``."""
    ext = task.find(bpmn("extensionElements"))
    for holder in ext.findall(spiff("properties")) if ext is not None else ():
        for prop in holder.findall(spiff("property")):
            if prop.get("name") == name:
                holder.remove(prop)
    if value is None:
        return
    ext = extension_elements(task)
    holder = ext.find(spiff("properties"))
    if holder is None:
        holder = ext.makeelement(spiff("properties"), {})
        ext.append(holder)
    holder.append(holder.makeelement(spiff("property"), {"name": name, "value": value}))


# --------------------------------------------------------------------------- reading


def _beans(python: str) -> list[str]:
    """Names of the beans a Python expression calls through ``resolve_bean('name', ...)``."""
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError:
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "resolve_bean"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value not in found
        ):
            found.append(node.args[0].value)
    return found


def _expression(
    key: str, value: Any, where: tuple[str, str, str]
) -> tuple[str | None, list[Problem]]:
    """A handlers / handlingGroup override as Python source, and what is wrong with it."""
    file, process_id, node_id = where
    what = f"{key} override of task {node_id!r} (process {process_id!r})"
    if value is None:
        return None, []
    if isinstance(value, list | tuple):
        wrong = [v for v in value if isinstance(v, bool) or not isinstance(v, str | int)]
        if wrong:
            message = (
                f"{what} lists {wrong[0]!r}, which is not an account: write each account as a "
                "string"
            )
            return None, [Problem(file, message, "settings-invalid", element_id=node_id)]
        accounts = [str(v).strip() for v in value if str(v).strip()]
        if not accounts:
            message = (
                f"{what} is an empty list, so nobody could complete the task: list accounts, "
                f"or write null to remove what the BPMN says for {key}"
            )
            return None, [Problem(file, message, "settings-invalid", element_id=node_id)]
        return repr(accounts), []
    if isinstance(value, bool) or not isinstance(value, str | int):
        message = f"{what} must be an expression (a string) or a list of accounts"
        return None, [Problem(file, message, "settings-invalid", element_id=node_id)]
    if isinstance(value, int):
        return repr(str(value)), []
    text = value.strip()
    if has_juel(text):
        try:
            python = juel_to_python(text)
            beans = collect_beans(text)
        except JuelError as exc:
            message = (
                f"{what} {text!r} cannot be translated: {exc.reason} at position "
                f"{exc.position}; write it as a Python expression"
            )
            return None, [Problem(file, message, "juel-untranslatable", element_id=node_id)]
    else:
        python, beans = text, []
    bad = expression_problem(python, what=what, file=file, element_id=node_id, line=None)
    if bad is not None:
        return None, [bad]
    notes = [
        Problem(
            file,
            f"{what} calls {bean!r}: register a bean resolver under that name",
            "bean-needs-resolver",
            element_id=node_id,
            severity="warning",
        )
        for bean in dict.fromkeys([*beans, *_beans(python)])
    ]
    return python, notes


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):  # a summary written as a YAML list
        return ";".join(str(v).strip() for v in value if str(v).strip()) or None
    return str(value).strip() or None


def _node(process_id: str, node_id: str, raw: Any, file: str) -> tuple[_Node | None, list[Problem]]:
    if not isinstance(raw, Mapping):
        message = (
            f"override of task {node_id!r} in process {process_id!r} must be a mapping of "
            f"{', '.join(NODE_OVERRIDE_KEYS)}"
        )
        return None, [Problem(file, message, "settings-invalid", element_id=node_id)]
    problems: list[Problem] = []
    unknown = sorted(str(k) for k in raw if k not in NODE_OVERRIDE_KEYS)
    if unknown:
        problems.append(
            Problem(
                file,
                f"unknown setting(s) {', '.join(unknown)} for task {node_id!r} of process "
                f"{process_id!r}; known: {', '.join(NODE_OVERRIDE_KEYS)}",
                "settings-unknown-key",
                element_id=node_id,
                severity="warning",
            )
        )
    values: list[tuple[str, str | None]] = []
    for key in NODE_OVERRIDE_KEYS:
        if key not in raw:
            continue
        if key in _EXPRESSION_KEYS:
            python, found = _expression(key, raw[key], (file, process_id, node_id))
            problems += found
            if any(p.severity == "error" for p in found):
                continue
            values.append((key, python))
        else:
            values.append((key, _text(raw[key])))
    return _Node(node_id, tuple(values)), problems


def read_node_overrides(
    entries: Iterable[tuple[Path | str, Mapping[str, Mapping[str, Any]]]],
) -> tuple[NodeOverrides | None, list[Problem]]:
    """The overrides in the settings files' entries (``[(file, {process_id: raw})]``), and
    the problems with them; None when no process has any."""
    processes: list[_Process] = []
    problems: list[Problem] = []
    for path, by_process in entries:
        file = str(path)
        for process_id, raw in by_process.items():
            nodes = raw.get("nodes") if isinstance(raw, Mapping) else None
            if nodes is None:
                continue
            if not isinstance(nodes, Mapping):
                problems.append(
                    Problem(
                        file,
                        f"'nodes' of process {process_id!r} must map task ids to settings "
                        "({task_id: {handlers: ..., taskName: ...}})",
                        "settings-invalid",
                        element_id=str(process_id),
                    )
                )
                continue
            found: list[_Node] = []
            for node_id, node_raw in nodes.items():
                node, more = _node(str(process_id), str(node_id), node_raw, file)
                problems += more
                if node is not None:
                    found.append(node)
            if found:
                processes.append(_Process(str(process_id), file, tuple(found)))
    return (NodeOverrides(tuple(processes)) if processes else None), problems
