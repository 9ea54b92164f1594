"""The BPMN element kinds, by local tag name, that several readers of the XML must agree on
(the linter's graph and variable rules, the diagram renderer)."""

from __future__ import annotations

__all__ = ["ACTIVITIES", "EVENTS", "FLOW_NODES", "GATEWAYS", "SCOPES"]

SCOPES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
ACTIVITIES = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "scriptTask",
        "serviceTask",
        "sendTask",
        "receiveTask",
        "businessRuleTask",
        "callActivity",
    }
    | SCOPES
)
EVENTS = frozenset(
    {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
)
GATEWAYS = frozenset(
    {
        "exclusiveGateway",
        "parallelGateway",
        "inclusiveGateway",
        "eventBasedGateway",
        "complexGateway",
    }
)
FLOW_NODES = ACTIVITIES | EVENTS | GATEWAYS
