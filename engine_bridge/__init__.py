"""engine_bridge: run BPMN processes in SpiffWorkflow and keep the unified to-do centre in step.

The public API is what this module exports. ``Bridge`` and the records it returns are imported
on first use (PEP 562), so importing the package — as the pytest plugin does in every test run
of a project that merely has it installed — does not load SpiffWorkflow, SQLAlchemy or lxml.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine_bridge.clock import Clock, FakeClock, SystemClock
from engine_bridge.errors import (
    BpmnError,
    CenterAuthError,
    CenterError,
    CenterProtocolError,
    CenterRejectedError,
    CenterUnavailableError,
    ConflictError,
    EngineBridgeError,
    EngineDataError,
    EngineError,
    InputError,
    InvalidDataError,
    NotAHandlerError,
    ScenarioError,
    ScriptSecurityError,
    StoreError,
    TaskNotOpenError,
    UnknownInstanceError,
    UnknownProcessError,
)
from engine_bridge.facts import Endpoint

if TYPE_CHECKING:
    from engine_bridge.bridge import Bridge
    from engine_bridge.relay import DeliveryReport
    from engine_bridge.results import Instance, OpenTodo, Outcome
    from engine_bridge.services import InstanceInIncidentError
    from engine_bridge.store.incidents import Incident, UnknownIncidentError
    from engine_bridge.ttc import AsyncTTCClient, BatchResult, ItemResult, TTCClient

__version__ = "0.1.0"

_LAZY = {
    "AsyncTTCClient": "engine_bridge.ttc",
    "BatchResult": "engine_bridge.ttc",
    "Bridge": "engine_bridge.bridge",
    "DeliveryReport": "engine_bridge.relay",
    "Incident": "engine_bridge.store.incidents",
    "Instance": "engine_bridge.results",
    "InstanceInIncidentError": "engine_bridge.services",
    "ItemResult": "engine_bridge.ttc",
    "OpenTodo": "engine_bridge.results",
    "Outcome": "engine_bridge.results",
    "TTCClient": "engine_bridge.ttc",
    "UnknownIncidentError": "engine_bridge.store.incidents",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine_bridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncTTCClient",
    "BatchResult",
    "BpmnError",
    "Bridge",
    "CenterAuthError",
    "CenterError",
    "CenterProtocolError",
    "CenterRejectedError",
    "CenterUnavailableError",
    "Clock",
    "ConflictError",
    "DeliveryReport",
    "Endpoint",
    "EngineBridgeError",
    "EngineDataError",
    "EngineError",
    "FakeClock",
    "Incident",
    "InputError",
    "Instance",
    "InstanceInIncidentError",
    "InvalidDataError",
    "ItemResult",
    "NotAHandlerError",
    "OpenTodo",
    "Outcome",
    "ScenarioError",
    "ScriptSecurityError",
    "StoreError",
    "SystemClock",
    "TTCClient",
    "TaskNotOpenError",
    "UnknownIncidentError",
    "UnknownInstanceError",
    "UnknownProcessError",
]
