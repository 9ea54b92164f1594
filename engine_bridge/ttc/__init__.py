"""The to-do centre (TTC via the POA gateway) protocol: typed bodies, token, sync/async clients.

See ``docs/ttc-client.md`` for usage and the choices made where the centre's docs are silent.
"""

from __future__ import annotations

from engine_bridge.ttc.auth import (
    DEFAULT_SCOPE,
    CenterTokenAuth,
    ClientCredentials,
    StaticToken,
    TokenProvider,
)
from engine_bridge.ttc.client import AsyncTTCClient, ExchangeHook, TTCClient
from engine_bridge.ttc.models import (
    ActionButton,
    AddTaskItem,
    AddTransactionItem,
    DeleteTaskItem,
    Envelope,
    EnvelopeData,
    ErrorId,
    HandleTaskItem,
    NewTask,
    TaskHandleItem,
    TaskTerminateItem,
    TaskWithdrawItem,
    TokenRequest,
    TokenResponse,
    UpdateTransactionItem,
    UrgeRequest,
    WireModel,
)
from engine_bridge.ttc.protocol import SPECS, EndpointSpec
from engine_bridge.ttc.results import BatchResult, ItemResult

__all__ = [
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
]
