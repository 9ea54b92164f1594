"""Loading BPMN for the bridge: safe parsing, per-task settings, validation.

``WorkflowLibrary.load(paths)`` is the entry point the engine uses; ``validate_paths(paths)``
reports every problem without raising, for CI and the ``engine-bridge validate`` command.
"""

from __future__ import annotations

from engine_bridge.loader.library import WorkflowLibrary, analyse_paths, clear_cache
from engine_bridge.loader.model import LoadedProcess, NodeSettings, ProcessSettings, SourceLocation
from engine_bridge.loader.problems import Problem, TreeTransform
from engine_bridge.loader.validate import validate_paths
from engine_bridge.loader.xml_safety import parse_bpmn

__all__ = [
    "LoadedProcess",
    "NodeSettings",
    "Problem",
    "ProcessSettings",
    "SourceLocation",
    "TreeTransform",
    "WorkflowLibrary",
    "analyse_paths",
    "clear_cache",
    "parse_bpmn",
    "validate_paths",
]
