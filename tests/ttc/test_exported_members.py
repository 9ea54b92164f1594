"""The public surface of engine_bridge.ttc is pinned: a change here is a deliberate API change."""

from __future__ import annotations

import engine_bridge.ttc as ttc


def test_public_names_are_pinned() -> None:
    assert set(ttc.__all__) == {
        "DEFAULT_SCOPE",
        "SPECS",
        "ActionButton",
        "AddTaskItem",
        "AddTransactionItem",
        "AsyncTTCClient",
        "BatchResult",
        "CenterTokenAuth",
        "ClientCredentials",
        "DeleteTaskItem",
        "EndpointSpec",
        "Envelope",
        "EnvelopeData",
        "ErrorId",
        "ExchangeHook",
        "HandleTaskItem",
        "ItemResult",
        "NewTask",
        "StaticToken",
        "TTCClient",
        "TaskHandleItem",
        "TaskTerminateItem",
        "TaskWithdrawItem",
        "TokenProvider",
        "TokenRequest",
        "TokenResponse",
        "UpdateTransactionItem",
        "UrgeRequest",
        "WireModel",
    }
    assert len(ttc.__all__) == len(set(ttc.__all__))
    for name in ttc.__all__:
        assert getattr(ttc, name) is not None


def test_every_endpoint_has_a_strict_model() -> None:
    """The relay's generic send covers every endpoint the centre documents."""
    from engine_bridge.facts import Endpoint

    assert set(ttc.SPECS) == set(Endpoint)
    for spec in ttc.SPECS.values():
        assert spec.model.model_config.get("extra") == "forbid"
