"""engine_bridge: run BPMN processes in SpiffWorkflow and keep the unified to-do centre in step."""

from __future__ import annotations

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
    EngineError,
    InputError,
    InvalidDataError,
    NotAHandlerError,
    ScenarioError,
    ScriptSecurityError,
    TaskNotOpenError,
    UnknownInstanceError,
    UnknownProcessError,
)

__version__ = "0.1.0"

__all__ = [
    "BpmnError",
    "CenterAuthError",
    "CenterError",
    "CenterProtocolError",
    "CenterRejectedError",
    "CenterUnavailableError",
    "Clock",
    "ConflictError",
    "EngineBridgeError",
    "EngineError",
    "FakeClock",
    "InputError",
    "InvalidDataError",
    "NotAHandlerError",
    "ScenarioError",
    "ScriptSecurityError",
    "SystemClock",
    "TaskNotOpenError",
    "UnknownInstanceError",
    "UnknownProcessError",
]
