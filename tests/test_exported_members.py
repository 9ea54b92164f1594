"""The public API is what ``engine_bridge`` exports: pinned here, so a change is deliberate."""

from __future__ import annotations

import subprocess
import sys

import engine_bridge

PUBLIC = {
    "AsyncTTCClient", "BatchResult", "BpmnError", "Bridge", "CenterAuthError", "CenterError",
    "CenterProtocolError", "CenterRejectedError", "CenterUnavailableError", "Clock",
    "ConflictError", "DeliveryReport", "Endpoint", "EngineBridgeError", "EngineDataError",
    "EngineError",
    "FakeClock", "Incident", "InputError", "Instance", "InstanceInIncidentError",
    "InvalidDataError", "ItemResult", "NotAHandlerError", "OpenTodo", "Outcome", "ScenarioError",
    "ScriptSecurityError", "StoreError", "SystemClock", "TTCClient", "TaskNotOpenError",
    "UnknownIncidentError",
    "UnknownInstanceError", "UnknownProcessError",
}  # fmt: skip


def test_all_is_pinned_and_every_name_resolves() -> None:
    """Every exported name exists; nothing is exported by accident."""
    assert set(engine_bridge.__all__) == PUBLIC
    for name in engine_bridge.__all__:
        assert getattr(engine_bridge, name) is not None, name


def test_the_bridge_is_the_class_the_docs_name() -> None:
    """``from engine_bridge import Bridge`` is the documented entry point."""
    from engine_bridge import Bridge
    from engine_bridge.bridge import Bridge as Defined

    assert Bridge is Defined


def test_importing_the_package_loads_no_engine() -> None:
    """The pytest plugin imports the package in every test run of a project that has it
    installed: that must not load SpiffWorkflow, SQLAlchemy or lxml."""
    code = (
        "import sys, engine_bridge, engine_bridge.testing.plugin; "
        "print(sorted(m for m in ('SpiffWorkflow', 'sqlalchemy', 'lxml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
