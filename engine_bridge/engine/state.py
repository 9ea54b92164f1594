"""Workflow state as JSON, with the process definition stored once per version.

SpiffWorkflow embeds the whole process spec in every serialized workflow; for a small process
that is half the document, repeated in every instance and every save. Here the two are split:

* :func:`definition_json` — the spec and its subprocess specs, written once per process
  version (the store keeps it beside the version hash);
* :func:`dump_state` — one instance's tasks and data, without the specs;
* :func:`load_state` — joins them again. It also reads the compressed snapshot-plus-journal
  text the bridge stores (:mod:`engine_bridge.engine.journal`), so either form loads.

Both documents carry SpiffWorkflow's ``serializer_version`` key, so a state written by an older
SpiffWorkflow goes through its migrations on load. Restored specs are cached per definition
text (specs are read-only at run time and SpiffWorkflow itself shares one spec between many
workflows), so loading an instance costs only its own tasks.

Timers are restored as the clock-aware classes of :mod:`engine_bridge.engine.timers`, and
workflows as the classes of :mod:`engine_bridge.engine.tree_walk` (under SpiffWorkflow's names).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.migration.version_migration import MIGRATIONS
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

from engine_bridge.engine.gateways import register_round_gateways
from engine_bridge.engine.multi_instance import register_multi_instance
from engine_bridge.engine.timers import register_clocked_timers
from engine_bridge.engine.tree_walk import BridgeSubWorkflow, BridgeWorkflow
from engine_bridge.errors import EngineError
from engine_bridge.loader.model import LoadedProcess

__all__ = [
    "REGISTRY",
    "SERIALIZER_VERSION",
    "VERSION_KEY",
    "definition_json",
    "dump_document",
    "dump_state",
    "load_document",
    "load_state",
    "parse_json",
    "restore_specs",
]

_SPEC = "spec"
_SUBPROCESS_SPECS = "subprocess_specs"


class _InstanceOnlyConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """Writes a top-level workflow without its specs (they live in the definition)."""

    def to_dict(self, workflow: Any) -> dict[str, Any]:
        dct: dict[str, Any] = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


def _build_registry() -> Any:
    registry = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
    register_clocked_timers(registry)
    register_round_gateways(registry)
    register_multi_instance(registry)
    _InstanceOnlyConverter(BpmnWorkflow, registry)
    # The bridge's workflow classes are written under SpiffWorkflow's names, and those names
    # are read as the bridge's classes (registered last): stored states stay SpiffWorkflow's.
    _InstanceOnlyConverter(BridgeWorkflow, registry, typename="BpmnWorkflow")
    SPIFF_CONFIG[BpmnSubWorkflow](BridgeSubWorkflow, registry, typename="BpmnSubWorkflow")
    return registry


_REGISTRY = _build_registry()
REGISTRY: Any = _REGISTRY
"""The converter registry every stored state is written and read with (specs excluded)."""
_SERIALIZER = BpmnWorkflowSerializer(_REGISTRY)
_VERSION_KEY: str = _SERIALIZER.VERSION_KEY
VERSION_KEY: str = _VERSION_KEY
"""The key a stored document gives SpiffWorkflow's serializer version under."""
SERIALIZER_VERSION: str = _SERIALIZER.VERSION
"""The serializer version this SpiffWorkflow writes (and reads without migrating)."""


def definition_json(process: LoadedProcess) -> str:
    """The process spec and every subprocess / call-activity spec it needs, as JSON.

    Written once per process version; pass the same text to :func:`load_state`.
    """
    key = (process.process_id, process.version, id(process.spec))
    with _LOCK:
        cached = _DEFINITIONS.get(key)
    if cached is not None:
        return cached
    document = {
        _VERSION_KEY: _SERIALIZER.VERSION,
        _SPEC: _REGISTRY.convert(process.spec),
        _SUBPROCESS_SPECS: {
            name: _REGISTRY.convert(spec) for name, spec in process.subprocess_specs.items()
        },
    }
    text = json.dumps(document, ensure_ascii=False)
    with _LOCK:
        _DEFINITIONS[key] = text
        while len(_DEFINITIONS) > _CACHE_SIZE:
            _DEFINITIONS.popitem(last=False)
    return text


def dump_document(wf: Any) -> dict[str, Any]:
    """One workflow's tasks, data, subprocesses and pending events, without the specs, as
    SpiffWorkflow's dictionary (values are not copied: encode it before the workflow runs on)."""
    document: dict[str, Any] = _SERIALIZER.to_dict(wf)
    document.pop(_SPEC, None)
    document.pop(_SUBPROCESS_SPECS, None)
    document[_VERSION_KEY] = _SERIALIZER.VERSION
    return document


def dump_state(wf: Any) -> str:
    """One workflow's tasks, data, subprocesses and pending events, without the specs."""
    return json.dumps(dump_document(wf), ensure_ascii=False)


def restore_specs(definition: str) -> tuple[Any, dict[str, Any]]:
    """The (spec, subprocess specs) of a definition, restored once and then shared."""
    digest = hashlib.sha256(definition.encode("utf-8")).hexdigest()
    with _LOCK:
        cached = _SPECS.get(digest)
        if cached is not None:
            _SPECS.move_to_end(digest)
            return cached
    document = _parse(definition, "process definition")
    version = document.pop(_VERSION_KEY, None)
    if version != _SERIALIZER.VERSION:
        raise EngineError(
            f"the stored process definition was written by serializer version {version!r}; "
            f"this SpiffWorkflow writes {_SERIALIZER.VERSION!r}. Store the definition again "
            "from the BPMN files (definition_json) before loading instances with it."
        )
    spec = _REGISTRY.restore(document[_SPEC])
    subprocess_specs = {
        name: _REGISTRY.restore(dct) for name, dct in document.get(_SUBPROCESS_SPECS, {}).items()
    }
    restored = (spec, subprocess_specs)
    with _LOCK:
        _SPECS[digest] = restored
        while len(_SPECS) > _CACHE_SIZE:
            _SPECS.popitem(last=False)
    return restored


def load_state(state: str, definition: str, *, script_engine: PythonScriptEngine | None) -> Any:
    """Rebuild a workflow from :func:`dump_state` output (or the bridge's journal text, see
    :mod:`engine_bridge.engine.journal`) and its :func:`definition_json`.

    The script engine is not part of the state; pass the one the workflow must run with.
    """
    if not state.startswith("{"):
        from engine_bridge.engine.journal import decode_state, is_journal

        if is_journal(state):
            return decode_state(state, definition, script_engine=script_engine)[0]
    return load_document(
        parse_json(state, "workflow state"), definition, script_engine=script_engine
    )


def load_document(
    document: dict[str, Any], definition: str, *, script_engine: PythonScriptEngine | None
) -> Any:
    """Rebuild a workflow from a :func:`dump_document` dictionary (which it consumes)."""
    version = document.pop(_VERSION_KEY, None)
    if version is None:
        raise EngineError(
            f"the stored workflow state has no {_VERSION_KEY!r} key; it was not written by "
            "dump_state and cannot be loaded"
        )
    if version == _SERIALIZER.VERSION:
        spec, subprocess_specs = restore_specs(definition)
        document[_SPEC] = spec
        document[_SUBPROCESS_SPECS] = subprocess_specs
    else:
        # An older document: migrations rewrite the specs too, so give them the definition's
        # dictionaries and restore everything from the migrated result.
        migration = MIGRATIONS.get(version)
        stored = _parse(definition, "process definition")
        document[_SPEC] = stored[_SPEC]
        document[_SUBPROCESS_SPECS] = stored.get(_SUBPROCESS_SPECS, {})
        if migration is not None:
            migration(document)
    try:
        wf = _SERIALIZER.from_dict(document)
    except Exception as exc:
        raise EngineError(f"the stored workflow state could not be restored: {exc}") from exc
    if script_engine is not None:
        wf.script_engine = script_engine
    return wf


def parse_json(text: str, what: str) -> dict[str, Any]:
    """``text`` as a JSON object, or an ``EngineError`` naming ``what`` was unreadable."""
    return _parse(text, what)


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EngineError(f"the stored {what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EngineError(f"the stored {what} is not a JSON object")
    return document


_LOCK = threading.Lock()
_CACHE_SIZE = 256
_DEFINITIONS: OrderedDict[tuple[str, str, int], str] = OrderedDict()
_SPECS: OrderedDict[str, tuple[Any, dict[str, Any]]] = OrderedDict()
