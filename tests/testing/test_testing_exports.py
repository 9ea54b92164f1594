"""The public names of ``engine_bridge.testing`` are pinned."""

from __future__ import annotations

import engine_bridge.testing as testing


def test_exported_members() -> None:
    """Users import these names; removing one is a breaking change."""
    assert set(testing.__all__) >= {
        "FakeCenter",
        "FakeCenterServer",
        "Fault",
        "FaultKind",
        "FaultPlan",
    }
    for name in testing.__all__:
        assert getattr(testing, name).__module__.startswith("engine_bridge.testing")


def test_fault_kinds_are_the_documented_set() -> None:
    """Fault kinds are a fixed vocabulary shared by code, JSON and docs."""
    assert [k.value for k in testing.FaultKind] == [
        "http_5xx",
        "outer_code",
        "delay",
        "drop",
        "applied_answer_lost",
        "malformed_json",
        "token_expired",
    ]
