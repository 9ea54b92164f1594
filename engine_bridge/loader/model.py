"""What the loader hands the engine: parsed specs plus the bridge's per-node settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LoadedProcess", "NodeSettings", "ProcessSettings", "SourceLocation"]


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int | None = None


@dataclass(frozen=True)
class NodeSettings:
    """Todo settings of one user task, as written in the BPMN (expressions not yet evaluated).

    ``handlers`` and ``handling_group`` are Python expressions over task data (evaluated in the
    restricted script engine) giving a str (comma-separated allowed) or a list of str. Camunda /
    Flowable / Activiti attributes and lanes are translated into these when loading.
    ``task_name``, ``task_summary`` items and ``urls`` values are templates with ``{var}``
    placeholders filled from task data; summary items read ``label|value``.
    """

    node_id: str
    node_name: str
    handlers: str | None = None
    handling_group: str | None = None
    task_name: str | None = None
    task_summary: tuple[str, ...] = ()
    # viewUrl, handleUrl, mViewUrl, mHandleUrl
    urls: Mapping[str, str] = field(default_factory=dict)
    lane: str | None = None
    location: SourceLocation | None = None


@dataclass(frozen=True)
class ProcessSettings:
    """Per-process settings for the centre (from configuration, with defaults)."""

    trans_type_code: str
    trans_type_name: str
    transaction_name: str = "{process_name}"  # template over start data + process_name, initiator
    transaction_summary: tuple[str, ...] = ()
    urls: Mapping[str, str] = field(default_factory=dict)


@dataclass
class LoadedProcess:
    """One executable process: SpiffWorkflow specs (parsed once, shared by every instance)
    and the bridge's settings for each user task, keyed by BPMN element id."""

    process_id: str
    name: str
    file: str
    version: str  # content hash of every file the process needs
    spec: Any  # SpiffWorkflow BpmnProcessSpec
    subprocess_specs: dict[str, Any]
    nodes: Mapping[str, NodeSettings]
    settings: ProcessSettings
