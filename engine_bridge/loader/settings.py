"""The bridge's settings: per user task (from the BPMN) and per process (from configuration).

Per-node settings are written by the modeller as ``spiffworkflow:properties`` on the task and
arrive here through SpiffWorkflow's parsed ``extensions['properties']``, so what the engine
runs and what the bridge shows come from the same parse. Nothing is evaluated here: handler
expressions and templates are checked by the validator and evaluated by the engine per task.

Per-process settings (``transTypeCode``…) describe the business, not the diagram, so they live
in ``processes.yaml`` / ``processes.json`` beside the BPMN files, with defaults from the process.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from SpiffWorkflow.bpmn.specs.mixins.manual_task import ManualTask
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask

from engine_bridge.loader.model import NodeSettings, ProcessSettings, SourceLocation
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.syntax import load_yaml, syntax_error

__all__ = [
    "NODE_PROPERTIES",
    "PROCESS_SETTING_KEYS",
    "SETTINGS_FILES",
    "URL_PROPERTIES",
    "default_process_settings",
    "node_settings_of",
    "process_settings_from_mapping",
    "read_node_settings",
    "read_process_settings_file",
    "split_summary",
]

URL_PROPERTIES = ("viewUrl", "handleUrl", "mViewUrl", "mHandleUrl")
NODE_PROPERTIES = ("handlers", "handlingGroup", "taskName", "taskSummary", *URL_PROPERTIES)
PROCESS_SETTING_KEYS = (
    "transTypeCode",
    "transTypeName",
    "transactionName",
    "transSummary",
    *URL_PROPERTIES,
    "nodes",  # per-task overrides, see engine_bridge.loader.overrides
)
SETTINGS_FILES = ("processes.yaml", "processes.yml", "processes.json")


def split_summary(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"天数|{days}; 原因|{reason}"`` → ``("天数|{days}", "原因|{reason}")``; a list is kept."""
    if value is None:
        return ()
    items = value.split(";") if isinstance(value, str) else [str(v) for v in value]
    return tuple(item.strip() for item in items if item.strip())


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _lane_expression(lane: str) -> str:
    # The lane name becomes a string-literal expression so it goes through the same
    # evaluation path as a modeller-written handlingGroup.
    return repr(lane)


def node_settings_of(task_spec: Any, location: SourceLocation | None = None) -> NodeSettings:
    """The settings written on one task spec (its spiffworkflow properties, else its lane)."""
    extensions = getattr(task_spec, "extensions", None) or {}
    props: Mapping[str, str] = extensions.get("properties") or {}
    handlers = _text(props.get("handlers"))
    group = _text(props.get("handlingGroup"))
    lane = getattr(task_spec, "lane", None) or None
    if handlers is None and group is None and lane:
        group = _lane_expression(lane)
    return NodeSettings(
        node_id=task_spec.bpmn_id,
        node_name=getattr(task_spec, "bpmn_name", None) or task_spec.bpmn_id,
        handlers=handlers,
        handling_group=group,
        task_name=_text(props.get("taskName")),
        task_summary=split_summary(props.get("taskSummary")),
        urls={k: v.strip() for k in URL_PROPERTIES if (v := props.get(k)) and v.strip()},
        lane=lane,
        location=location,
    )


def read_node_settings(
    specs: Iterable[Any], lines: Mapping[str, Mapping[str, int]]
) -> tuple[dict[str, NodeSettings], list[Problem]]:
    """NodeSettings for every human task (userTask, manualTask) in ``specs``: a process spec
    and its subprocess specs. A plain ``bpmn:task`` is not one: the engine passes through it.

    Keyed by BPMN id. A multi-instance task's settings come from its child spec (the MI parent
    carries no extensions), keyed by the shared BPMN id. ``lines`` maps file → id → line.
    Two tasks with the same id in one process tree (a called process reusing an id) would be
    indistinguishable to the engine, so that is returned as a ``duplicate-id`` problem.
    """
    nodes: dict[str, NodeSettings] = {}
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    for spec in specs:
        if spec is None:
            continue
        file = getattr(spec, "file", None) or ""
        for task_spec in spec.task_specs.values():
            bpmn_id = getattr(task_spec, "bpmn_id", None)
            if not bpmn_id or not isinstance(task_spec, UserTask | ManualTask):
                continue  # a plain bpmn:task passes through: the engine completes it itself
            location = SourceLocation(file, lines.get(file, {}).get(bpmn_id))
            settings = node_settings_of(task_spec, location)
            if bpmn_id in nodes and origin[bpmn_id] != spec.name:
                problems.append(
                    Problem(
                        file,
                        f"task id {bpmn_id!r} is used in both process {origin[bpmn_id]!r} "
                        f"and {spec.name!r}, which run together; rename one of them",
                        "duplicate-id",
                        element_id=bpmn_id,
                        line=location.line,
                    )
                )
                continue
            nodes[bpmn_id] = settings
            origin[bpmn_id] = spec.name
    return nodes, problems


def default_process_settings(process_id: str, name: str | None) -> ProcessSettings:
    """Defaults: the process id is the type code, its name (or id) the type name."""
    return ProcessSettings(trans_type_code=process_id, trans_type_name=name or process_id)


def process_settings_from_mapping(
    process_id: str, name: str | None, raw: Mapping[str, Any]
) -> ProcessSettings:
    """ProcessSettings from one ``{transTypeCode: …}`` entry, defaults filling the gaps."""
    base = default_process_settings(process_id, name)
    urls = {k: str(raw[k]) for k in URL_PROPERTIES if raw.get(k)}
    return ProcessSettings(
        trans_type_code=str(raw.get("transTypeCode") or base.trans_type_code),
        trans_type_name=str(raw.get("transTypeName") or base.trans_type_name),
        transaction_name=str(raw.get("transactionName") or base.transaction_name),
        transaction_summary=split_summary(raw.get("transSummary")),
        urls=urls,
    )


def read_process_settings_file(path: Path) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Read ``processes.yaml`` / ``.json``: ``{process_id: {transTypeCode: …, …}}``.

    Returns the raw entries (applied once the processes are known) and problems: a file that
    cannot be read or is not shaped like that is an error; an unknown key is a warning.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        line, reason = syntax_error(exc)
        what = "JSON" if path.suffix == ".json" else "YAML"
        return {}, [Problem(file, f"not valid {what}: {reason}", "settings-invalid", line=line)]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, [Problem(file, f"cannot read process settings: {exc}", "settings-invalid")]
    if data is None:
        return {}, []
    if not isinstance(data, Mapping):
        return {}, [
            Problem(
                file,
                "process settings must map each process id to its settings "
                "({process_id: {transTypeCode: ..., transTypeName: ...}})",
                "settings-invalid",
            )
        ]
    entries: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for process_id, raw in data.items():
        if not isinstance(raw, Mapping):
            problems.append(
                Problem(
                    file,
                    f"settings of process {process_id!r} must be a mapping",
                    "settings-invalid",
                    element_id=str(process_id),
                )
            )
            continue
        unknown = sorted(str(k) for k in raw if k not in PROCESS_SETTING_KEYS)
        if unknown:
            problems.append(
                Problem(
                    file,
                    f"unknown setting(s) {', '.join(unknown)} for process {process_id!r}; "
                    f"known: {', '.join(PROCESS_SETTING_KEYS)}",
                    "settings-unknown-key",
                    element_id=str(process_id),
                    severity="warning",
                )
            )
        wrong = [
            k
            for k in PROCESS_SETTING_KEYS
            if k not in ("nodes", "transSummary") and k in raw and not _scalar_text(raw[k])
        ]
        if wrong:
            problems.append(
                Problem(
                    file,
                    f"setting {wrong[0]!r} of process {process_id!r} must be text (a string or "
                    f"a number), not {type(raw[wrong[0]]).__name__}: the centre would show "
                    f"{str(raw[wrong[0]])!r}",
                    "settings-invalid",
                    element_id=str(process_id),
                )
            )
            continue
        entries[str(process_id)] = dict(raw)
    return entries, problems


def _scalar_text(value: Any) -> bool:
    """A setting the centre shows as text: a string, or a number YAML read unquoted."""
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))
