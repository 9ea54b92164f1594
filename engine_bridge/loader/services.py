"""Service, send, business-rule and foreign-script tasks rewritten as Spiff service calls.

SpiffBpmnParser refuses a ``bpmn:serviceTask`` without a ``spiffworkflow:serviceTaskOperator``,
and a model from Camunda, Flowable or Activiti names Java code instead (``camunda:class``,
``flowable:delegateExpression``, ``activiti:expression``…). The bridge cannot run Java, Groovy or
JavaScript, so each such task becomes a serviceTask whose operator id is a KEY; at run time
SpiffWorkflow calls the script engine's ``call_service(task, operation_name=KEY,
operation_params=…)`` and the engine dispatches to the handler the user registered for KEY.

KEY, first match wins: the vendor ``class``; the external-task ``topic``; the connector id;
the bean named by ``delegateExpression`` / ``expression`` (``#{mailer.send(to)}`` → ``mailer.send``,
its arguments passed as parameters ``arg0``, ``arg1``…); the Spiff operator already there; else
``task:<element id>``. (Not the bare id: SpiffWorkflow indexes every ``id`` attribute of a process,
operator and parameter ids included, so they must not repeat an element id.) Every service task
is reported as a ``service-needs-handler`` warning so that validation can insist on a handler
only when none is registered.

This module also holds the namespace basics the other translators share, because it is the
lowest step of the dialect translation.
"""

from __future__ import annotations

import ast
from typing import Any

from engine_bridge.loader.juel import JuelError, has_juel, juel_to_python
from engine_bridge.loader.problems import Problem

__all__ = [
    "BPMN_NS",
    "SPIFF_NS",
    "VENDOR_NS",
    "bpmn",
    "extension_elements",
    "service_operators",
    "spiff",
    "translate_services",
    "vendor_attr",
]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
VENDOR_NS = {
    "camunda": "http://camunda.org/schema/1.0/bpmn",
    "flowable": "http://flowable.org/bpmn",
    "activiti": "http://activiti.org/bpmn",
}
_SCRIPT_FORMATS_KEPT = {"", "python", "python3", "text/x-python", "py"}
_VENDOR_KEY_ATTRS = ("class", "topic")
_BEAN_ATTRS = ("delegateExpression", "expression")
# Attributes the BPMN schema allows on scriptTask/sendTask but not on serviceTask.
_DROPPED_ATTRS = ("scriptFormat", "messageRef")


def bpmn(local: str) -> str:
    """Clark name of a BPMN model element."""
    return f"{{{BPMN_NS}}}{local}"


def spiff(local: str) -> str:
    """Clark name of a spiffworkflow extension element."""
    return f"{{{SPIFF_NS}}}{local}"


def vendor_attr(element: Any, name: str) -> str | None:
    """The first of ``camunda:name``, ``flowable:name``, ``activiti:name`` on ``element``."""
    for ns in VENDOR_NS.values():
        value = element.get(f"{{{ns}}}{name}")
        if value is not None:
            return str(value)
    return None


def _vendor_children(element: Any, local: str) -> list[Any]:
    return [c for ns in VENDOR_NS.values() for c in element.iter(f"{{{ns}}}{local}")]


def extension_elements(element: Any) -> Any:
    """The element's ``bpmn:extensionElements``, created where the BPMN schema wants it
    (after ``bpmn:documentation``, before everything else)."""
    found = element.find(bpmn("extensionElements"))
    if found is not None:
        return found
    index = 0
    for index, child in enumerate(element):  # noqa: B007 - the index is what we want
        if child.tag != bpmn("documentation"):
            break
    else:
        index = len(element)
    ext = element.makeelement(bpmn("extensionElements"), nsmap={"spiffworkflow": SPIFF_NS})
    element.insert(index, ext)
    return ext


def _where(element: Any, file: str) -> dict[str, Any]:
    return {"file": file, "element_id": element.get("id"), "line": element.sourceline}


def _parameters(element: Any, file: str, problems: list[Problem]) -> dict[str, str]:
    """Vendor field injections and input parameters, as Python expressions by name."""
    params: dict[str, str] = {}
    for field in _vendor_children(element, "field"):
        name = field.get("name")
        if not name:
            continue
        literal = field.get("stringValue")
        expression = field.get("expression")
        for child in field:
            local = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
            if local == "string":
                literal = child.text or ""
            elif local == "expression":
                expression = child.text or ""
        if expression is not None:
            python = _juel(expression, f"field {name!r}", element, file, problems)
            if python is not None:
                params[name] = python
        elif literal is not None:
            params[name] = repr(literal)
    for param in _vendor_children(element, "inputParameter"):
        name = param.get("name")
        if not name:
            continue
        if len(param):
            problems.append(
                Problem(
                    message=f"input parameter {name!r} uses a list, map or script; it is not "
                    "passed to the service handler: compute it in the handler instead",
                    code="service-parameter-skipped",
                    severity="warning",
                    **_where(element, file),
                )
            )
            continue
        text = param.text or ""
        python = _juel(text, f"input parameter {name!r}", element, file, problems)
        if python is not None:
            params[name] = python
    return params


def _juel(text: str, what: str, element: Any, file: str, problems: list[Problem]) -> str | None:
    try:
        return juel_to_python(text) if has_juel(text) else repr(text)
    except JuelError as exc:
        problems.append(
            Problem(
                message=f"{what} {text!r} cannot be translated: {exc.reason} at position "
                f"{exc.position}; write it as a plain variable, literal or bean call",
                code="juel-untranslatable",
                **_where(element, file),
            )
        )
        return None


def _bean_key(python: str) -> tuple[str, dict[str, str]] | None:
    """Python of ``#{svc.send(a, b)}`` → ("svc.send", {"arg0": "a", "arg1": "b"});
    of ``${svc}`` → ("svc", {}). None when the expression is a computation, not a bean."""
    node = ast.parse(python, mode="eval").body
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "resolve_bean"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value, {f"arg{i}": ast.unparse(a) for i, a in enumerate(node.args[1:])}
    parts: list[str] = []
    while isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        parts.insert(0, str(node.slice.value))
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *parts]), {}
    return None


def _service_key(
    element: Any, file: str, problems: list[Problem]
) -> tuple[str, dict[str, str], str | None]:
    """KEY, parameters and result variable for one task (see the module docstring)."""
    result = vendor_attr(element, "resultVariable")
    for attr in _VENDOR_KEY_ATTRS:
        value = vendor_attr(element, attr)
        if value and value.strip():
            return value.strip(), _parameters(element, file, problems), result
    kind = (vendor_attr(element, "type") or "").strip()
    if kind and kind != "external":  # flowable:type="mail" / "http": one handler per kind
        return kind, _parameters(element, file, problems), result
    for connector in _vendor_children(element, "connectorId"):
        if connector.text and connector.text.strip():
            return connector.text.strip(), {}, result
    for attr in _BEAN_ATTRS:
        value = vendor_attr(element, attr)
        if value and value.strip():
            params = _parameters(element, file, problems)
            python = _juel(value, "service expression", element, file, problems)
            found = _bean_key(python) if python is not None else None
            if found is not None:
                return found[0], {**params, **found[1]}, result
            if python is not None:
                params["expression"] = python
            return _fallback_key(element), params, result
    ext = element.find(bpmn("extensionElements"))
    operator = ext.find(spiff("serviceTaskOperator")) if ext is not None else None
    if operator is not None and operator.get("id"):
        return str(operator.get("id")), {}, operator.get("resultVariable") or result
    return _fallback_key(element), _parameters(element, file, problems), result


def _fallback_key(element: Any) -> str:
    return f"task:{element.get('id')}"


def _needs_rewrite(element: Any) -> bool:
    local = element.tag.rsplit("}", 1)[-1]
    vendor_impl = any(vendor_attr(element, a) for a in (*_VENDOR_KEY_ATTRS, *_BEAN_ATTRS, "type"))
    if local == "serviceTask":
        ext = element.find(bpmn("extensionElements"))
        return ext is None or ext.find(spiff("serviceTaskOperator")) is None or vendor_impl
    if local == "sendTask":
        # A sendTask naming a BPMN message is a message throw Spiff runs itself.
        return vendor_impl or element.get("messageRef") is None
    if local == "businessRuleTask":
        return vendor_impl
    if local == "scriptTask":
        fmt = (element.get("scriptFormat") or "").strip().lower()
        return fmt not in _SCRIPT_FORMATS_KEPT or vendor_attr(element, "resource") is not None
    return False


def _rewrite(element: Any, file: str, problems: list[Problem]) -> None:
    local = element.tag.rsplit("}", 1)[-1]
    key, params, result = _service_key(element, file, problems)
    if local == "scriptTask":
        script = element.find(bpmn("script"))
        params.setdefault("script", repr(script.text if script is not None and script.text else ""))
        params.setdefault("scriptFormat", repr(element.get("scriptFormat") or ""))
        if script is not None:
            element.remove(script)
    for attr in _DROPPED_ATTRS:
        element.attrib.pop(attr, None)
    element.tag = bpmn("serviceTask")
    ext = extension_elements(element)
    old = ext.find(spiff("serviceTaskOperator"))
    if old is not None:
        for param in old.iter(spiff("parameter")):
            if param.get("id") and param.get("value") is not None:
                params.setdefault(str(param.get("id")), str(param.get("value")))
        ext.remove(old)
    operator = ext.makeelement(spiff("serviceTaskOperator"), {"id": key})
    if result:
        operator.set("resultVariable", result)
    holder = operator.makeelement(spiff("parameters"), {})
    for name, value in params.items():
        holder.append(
            holder.makeelement(spiff("parameter"), {"id": name, "type": "any", "value": value})
        )
    operator.append(holder)
    ext.append(operator)


def _decision_ref(element: Any) -> None:
    """``camunda:decisionRef`` names the DMN decision; Spiff reads ``calledDecisionId``."""
    ref = vendor_attr(element, "decisionRef")
    if (
        not ref
        or element.find(f"{bpmn('extensionElements')}/{spiff('calledDecisionId')}") is not None
    ):
        return
    ext = extension_elements(element)
    called = ext.makeelement(spiff("calledDecisionId"), {})
    called.text = ref.strip()
    ext.append(called)


def translate_services(root: Any, file: str) -> list[Problem]:
    """Rewrite every task the bridge runs through a registered handler (a TreeTransform),
    and report each service task of the file, rewritten or already Spiff's, with its KEY."""
    problems: list[Problem] = []
    tags = {bpmn(t) for t in ("serviceTask", "sendTask", "businessRuleTask", "scriptTask")}
    targets = [e for e in root.iter() if e.tag in tags and _needs_rewrite(e)]
    for rule in root.iter(bpmn("businessRuleTask")):
        _decision_ref(rule)
    for element in targets:
        _rewrite(element, file, problems)
    problems.extend(_id_clashes(root, file))
    for element_id, key, line in _operators(root):
        problems.append(
            Problem(
                file=file,
                element_id=element_id,
                line=line,
                severity="warning",
                code="service-needs-handler",
                message=f"task calls service {key!r}: register a service handler under that "
                "key, or the task fails when it runs",
            )
        )
    return problems


def _id_clashes(root: Any, file: str) -> list[Problem]:
    """Operator and parameter ids that repeat a model element's id (SpiffWorkflow would take
    the operator for the element)."""
    model_ids = {
        str(e.get("id"))
        for e in root.iter()
        if isinstance(e.tag, str) and e.tag.startswith(f"{{{BPMN_NS}}}") and e.get("id") is not None
    }
    problems: list[Problem] = []
    for task in root.iter(bpmn("serviceTask")):
        for tag in ("serviceTaskOperator", "parameter"):
            for node in task.iter(spiff(tag)):
                if node.get("id") in model_ids:
                    clash = node.get("id")
                    problems.append(
                        Problem(
                            file=file,
                            element_id=str(task.get("id")),
                            line=task.sourceline,
                            code="service-id-clash",
                            message=f"service {tag} id {clash!r} is also a model element's id"
                            "; SpiffWorkflow would confuse them: rename the element, the "
                            "field or the parameter",
                        )
                    )
    return problems


def _operators(root: Any) -> list[tuple[str, str, int | None]]:
    found: list[tuple[str, str, int | None]] = []
    for element in root.iter(bpmn("serviceTask")):
        ext = element.find(bpmn("extensionElements"))
        operator = ext.find(spiff("serviceTaskOperator")) if ext is not None else None
        if operator is not None and operator.get("id"):
            found.append((str(element.get("id")), str(operator.get("id")), element.sourceline))
    return found


def service_operators(root: Any) -> list[tuple[str, str]]:
    """(element id, KEY) of every Spiff service task in a translated tree, in document order."""
    return [(element_id, key) for element_id, key, _ in _operators(root)]
