"""Testing kit: a fake to-do centre (in-process and over loopback HTTP) with scripted faults.

Users test their own processes and clients against it the same way engine_bridge's tests do::

    from engine_bridge.testing import FakeCenter, FaultKind

    center = FakeCenter(app_id="my-app")
    client = httpx.Client(transport=center.transport(), base_url="http://center")
    center.faults.add("taskHandle", FaultKind.APPLIED_ANSWER_LOST)
    ...
    assert center.open_todos() == {...}
"""

from __future__ import annotations

from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.fake_server import FakeCenterServer
from engine_bridge.testing.faults import Fault, FaultKind, FaultPlan

__all__ = ["FakeCenter", "FakeCenterServer", "Fault", "FaultKind", "FaultPlan"]
