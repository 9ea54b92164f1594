"""Camunda, Flowable and Activiti models rewritten into the one model the bridge reads.

A TreeTransform (see :mod:`engine_bridge.loader.problems`): the loader parses a file safely and
calls :func:`translate_dialects` on the tree before SpiffBpmnParser sees it. After it runs, the
rest of the bridge knows only spiffworkflow properties and Python expressions:

* assignment — ``assignee`` / ``candidateUsers`` → property ``handlers``; ``candidateGroups``
  → ``handlingGroup``; BPMN ``potentialOwner`` / ``humanPerformer`` likewise. Properties
  already written as ``spiffworkflow:properties`` win.
* multi-instance — ``collection`` / ``elementVariable`` → ``loopDataInputRef`` /
  ``inputDataItem``; JUEL completion conditions and cardinalities → Python. Without an output
  collection, a post-script on each instance keeps the element variable out of the process
  data (loops drawn in SpiffWorkflow's own form get it too).
* conditions, timers — JUEL → Python (a condition's value coerced to a bool as EL does); a bare
  ISO 8601 timer literal → a quoted string.
* start events — ``initiator="x"`` → property ``initiatorVariable`` (the engine stores the
  initiator under that name, as the vendor engines do).
* service, send, business-rule and foreign-script tasks → :mod:`engine_bridge.loader.services`.

Whatever cannot be translated is reported as a :class:`Problem` with file, element id and
line; nothing is guessed. Names and documentation are text and are never touched.
"""

from __future__ import annotations

import re
from typing import Any

from engine_bridge.loader.juel import (
    JuelError,
    collect_beans,
    has_juel,
    juel_to_python,
    split_juel_list,
)
from engine_bridge.loader.problems import Problem
from engine_bridge.loader.services import (
    VENDOR_NS,
    bpmn,
    extension_elements,
    spiff,
    translate_services,
    vendor_attr,
)

__all__ = ["ZEEBE_NS", "camunda8_problem", "translate_dialects"]

#: Camunda 8's extensions (``zeebe:taskDefinition``, ``zeebe:assignmentDefinition``…): what
#: Camunda Modeler 5 writes by default. The bridge reads Camunda 7's (``camunda:``) instead.
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

_USER_FORM = re.compile(r"^\s*(user|group)\s*\((.*)\)\s*$", re.DOTALL)
_ISO_PART = r"(?:P[0-9YMWDTHS.,]+|\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)"
_ISO_TIMER = re.compile(rf"^(?:R\d*/)?{_ISO_PART}(?:/{_ISO_PART})?$")
_CRON = re.compile(r"^[0-9*?/,\-LW#A-Z]+(?:\s+[0-9*?/,\-LW#A-Z]+){4,6}$")
_EXPRESSION_LANGUAGES = ("", "juel", "http://www.jcp.org/en/jsr/detail?id=245")
# spiff MI loop children, in the order the BPMN schema requires.
_MI_ORDER = (
    "loopCardinality",
    "loopDataInputRef",
    "loopDataOutputRef",
    "inputDataItem",
    "outputDataItem",
    "complexBehaviorDefinition",
    "completionCondition",
)


class _Context:
    """One file's translation: where problems go and which ids are taken."""

    def __init__(self, root: Any, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.ids: set[str] = {str(e.get("id")) for e in root.iter() if e.get("id") is not None}

    def problem(self, element: Any, code: str, message: str, *, severity: str = "error") -> None:
        self.problems.append(
            Problem(
                file=self.file,
                element_id=_owner_id(element),
                line=element.sourceline,
                code=code,
                message=message,
                severity="warning" if severity == "warning" else "error",
            )
        )

    def juel(self, element: Any, what: str, text: str, *, condition: bool = False) -> str | None:
        """Translate ``text`` (as a condition, coerced to a bool, with ``condition``); on
        failure report it and return None. Bean calls are reported as warnings so validation
        can require a resolver for each."""
        try:
            python = juel_to_python(text, condition=condition)
            beans = collect_beans(text)
        except JuelError as exc:
            self.problem(
                element,
                "juel-untranslatable",
                f"{what} {text!r} cannot be translated: {exc.reason} at position {exc.position}; "
                "rewrite it with the supported JUEL subset (docs/other-designers.md) or as a "
                "Python expression without ${…}",
            )
            return None
        for bean in beans:
            self.problem(
                element,
                "bean-needs-resolver",
                f"{what} calls {bean!r}: register a bean resolver under that name",
                severity="warning",
            )
        return python


def _owner_id(element: Any) -> str | None:
    """The id of the element or of its nearest ancestor that has one."""
    while element is not None:
        if element.get("id") is not None:
            return str(element.get("id"))
        element = element.getparent()
    return None


# --------------------------------------------------------------------------- properties


def _properties(element: Any) -> dict[str, str]:
    ext = element.find(bpmn("extensionElements"))
    if ext is None:
        return {}
    return {
        str(p.get("name")): str(p.get("value"))
        for p in ext.iter(spiff("property"))
        if p.get("name") is not None and p.get("value") is not None
    }


def _set_property(element: Any, name: str, value: str) -> None:
    """Add a spiffworkflow property unless one with that name exists (spiff wins)."""
    if name in _properties(element):
        return
    ext = extension_elements(element)
    holder = ext.find(spiff("properties"))
    if holder is None:
        holder = ext.makeelement(spiff("properties"), {})
        ext.append(holder)
    holder.append(holder.makeelement(spiff("property"), {"name": name, "value": value}))


def _copy_vendor_properties(element: Any) -> None:
    """``camunda:properties`` (and the Flowable/Activiti twins) become spiff properties."""
    ext = element.find(bpmn("extensionElements"))
    if ext is None:
        return
    for ns in VENDOR_NS.values():
        for holder in ext.findall(f"{{{ns}}}properties"):
            for prop in holder.findall(f"{{{ns}}}property"):
                name, value = prop.get("name"), prop.get("value")
                if name and value is not None:
                    _set_property(element, name, value)


# --------------------------------------------------------------------------- assignment


def _owners(element: Any, tag: str, default: str) -> tuple[list[str], list[str]]:
    """Users and groups named by ``bpmn:potentialOwner`` / ``bpmn:humanPerformer``.

    ``user(x)`` and ``group(y)`` say which; a bare name is a group for potential owners and a
    user for performers, as Activiti and Flowable read them.
    """
    users: list[str] = []
    groups: list[str] = []
    for owner in element.findall(bpmn(tag)):
        for formal in owner.iter(bpmn("formalExpression")):
            for item, _ in split_juel_list(formal.text or ""):
                match = _USER_FORM.match(item)
                kind, value = (match.group(1), match.group(2).strip()) if match else (default, item)
                (users if kind == "user" else groups).append(value)
    return users, groups


#: Flowable's and Activiti's modeller write this as the assignee for "the process initiator".
INITIATOR_MARKER = "$INITIATOR"


def _list_expression(ctx: _Context, element: Any, what: str, items: list[str]) -> str | None:
    """Python for a list of names/expressions: a single expression stays bare (it may
    itself give a list or a comma-separated string); anything else is a list literal."""
    python: list[str] = []
    for item in items:
        if item == INITIATOR_MARKER:
            python.append("initiator")  # every handler expression sees the initiator
            continue
        translated = ctx.juel(element, what, item) if has_juel(item) else repr(item)
        if translated is None:
            return None
        if translated not in python:
            python.append(translated)
    if not python:
        return None
    if len(python) == 1 and has_juel(items[0]):
        return python[0]
    return "[" + ", ".join(python) + "]"


def _translate_assignment(ctx: _Context, task: Any) -> None:
    users: list[str] = []
    groups: list[str] = []
    assignee = vendor_attr(task, "assignee")
    if assignee and assignee.strip():
        users.append(assignee.strip())
    for attr, bucket in (("candidateUsers", users), ("candidateGroups", groups)):
        value = vendor_attr(task, attr)
        if value:
            bucket.extend(item for item, _ in split_juel_list(value))
    for tag, default in (
        ("humanPerformer", "user"),
        ("performer", "user"),
        ("potentialOwner", "group"),
    ):
        more_users, more_groups = _owners(task, tag, default)
        users.extend(more_users)
        groups.extend(more_groups)
    existing = _properties(task)
    if users and "handlers" not in existing:
        handlers = _list_expression(ctx, task, "assignee/candidate users", users)
        if handlers is not None:
            _set_property(task, "handlers", handlers)
    if groups and "handlingGroup" not in existing:
        handling = _list_expression(ctx, task, "candidate groups", groups)
        if handling is not None:
            _set_property(task, "handlingGroup", handling)


_JUEL_IN_NAME = re.compile(r"[$#]\{([^{}]*)\}")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def _translate_name(task: Any) -> None:
    """A task name with JUEL (``My Task ${loopCounter}``), which Camunda and Flowable
    evaluate for each task, becomes the todo's ``taskName`` template (``My Task
    {loopCounter}``) when every expression in it is a plain variable; the node's name stays as
    drawn. Anything more (a call, an operator, braces of its own) is left as text."""
    name = task.get("name") or ""
    if not has_juel(name) or "taskName" in _properties(task):
        return
    fields = _JUEL_IN_NAME.findall(name)
    rest = _JUEL_IN_NAME.sub("", name)
    if not fields or "{" in rest or "}" in rest:
        return
    if not all(_DOTTED.fullmatch(f.strip()) for f in fields):
        return
    _set_property(
        task, "taskName", _JUEL_IN_NAME.sub(lambda m: "{" + m.group(1).strip() + "}", name)
    )


# --------------------------------------------------------------------------- multi-instance


def _mi_child(loop: Any, local: str) -> Any:
    return loop.find(bpmn(local))


def _put_mi_child(loop: Any, local: str, text: str | None = None, **attrs: str) -> Any:
    """Insert a loop child where the BPMN schema orders it."""
    child = loop.makeelement(bpmn(local), attrs)
    if text is not None:
        child.text = text
    rank = _MI_ORDER.index(local)
    index = 0
    for index, existing in enumerate(loop):  # noqa: B007 - the index is what we want
        name = existing.tag.rsplit("}", 1)[-1] if isinstance(existing.tag, str) else ""
        if name in _MI_ORDER and _MI_ORDER.index(name) > rank:
            break
    else:
        index = len(loop)
    loop.insert(index, child)
    return child


def _collection_ref(ctx: _Context, loop: Any, text: str) -> str | None:
    """The variable that holds the collection (``${people}`` or ``people`` → ``people``)."""
    python = ctx.juel(loop, "multi-instance collection", text) if has_juel(text) else text.strip()
    if python is None:
        return None
    if python.isidentifier() and not python.startswith("_"):
        return python
    ctx.problem(
        loop,
        "mi-collection-expression",
        f"multi-instance collection {text!r} is computed, but SpiffWorkflow reads the collection "
        "from a variable: compute it into a variable before this task (a script task, or a "
        "service task with a resultVariable) and name that variable as the collection",
    )
    return None


_CLEANUP = "try:\n    del {var}\nexcept NameError:\n    pass"


def _add_instance_cleanup(
    ctx: _Context, task: Any, loop: Any, var: str, *, vendor: bool = True
) -> None:
    """Keep the element variable local to its instance.

    Without an output collection, SpiffWorkflow merges each finished instance's data into the
    process data (as Camunda does with variables set on completion). The element variable would
    be merged too, and the next instance (sequential) or the next visit (a loop back) then fails
    with "input item already exists". A post-script on each instance removes it first.
    ``vendor``: the loop was translated from a vendor's; a native loop whose own scripts run
    once for the whole task is left as it was drawn.
    """
    ext = extension_elements(task)
    post = ext.find(spiff("postScript"))
    whole_task = loop.get(spiff("scriptsOnInstances")) != "true"
    if not vendor and whole_task and (post is not None or ext.find(spiff("preScript")) is not None):
        # Moving them onto each instance would change what they do: a pre-script would run
        # per instance, after the collection it may build is read.
        return
    if post is not None and whole_task:
        ctx.problem(
            task,
            "mi-script-conflict",
            "this multi-instance task has a spiffworkflow:postScript that runs once for the whole "
            "task; the translation needs a script on each instance: set "
            'spiffworkflow:scriptsOnInstances="true" on its loop, or add an output collection',
        )
        return
    cleanup = _CLEANUP.format(var=var)
    if post is None:
        post = ext.makeelement(spiff("postScript"), {})
        post.text = cleanup
        ext.append(post)
    else:
        post.text = f"{post.text or ''}\n{cleanup}"
    loop.set(spiff("scriptsOnInstances"), "true")


def _translate_multi_instance(ctx: _Context, loop: Any, claimed: dict[str, Any]) -> None:
    task = loop.getparent()
    collection = vendor_attr(loop, "collection")
    variable = vendor_attr(loop, "elementVariable")
    has_input = _mi_child(loop, "loopDataInputRef") is not None
    has_cardinality = _mi_child(loop, "loopCardinality") is not None
    if collection and not has_input and not has_cardinality:
        ref = _collection_ref(ctx, loop, collection)
        if ref is None:
            return
        _put_mi_child(loop, "loopDataInputRef", ref)
        has_input = True
    vendor_children = [c for ns in VENDOR_NS.values() for c in loop.iter(f"{{{ns}}}*")]
    if not has_input and not has_cardinality and (variable or collection or vendor_children):
        ctx.problem(
            loop,
            "mi-collection-missing",
            "this multi-instance loop names neither a collection nor a cardinality that can be "
            "read here (a Java collection handler cannot run): put the items in a variable and "
            'set collection="${thatVariable}", or use loopCardinality',
        )
        return
    if variable and has_input and _mi_child(loop, "inputDataItem") is None:
        var = variable.strip()
        if not var.isidentifier() or var.startswith("_"):
            ctx.problem(
                loop,
                "mi-variable-invalid",
                f"element variable {var!r} is not a usable name: use letters, digits and '_' "
                "(not first)",
            )
            return
        if var in ctx.ids or var in claimed:
            other = claimed.get(var)
            where = f" (also used by {_owner_id(other)!r})" if other is not None else ""
            ctx.problem(
                loop,
                "mi-variable-clash",
                f"element variable {var!r} becomes the id of the loop's inputDataItem, and ids "
                f"must be unique in a file, but {var!r} is already an id here{where}: rename "
                "the element variable",
            )
            return
        claimed[var] = task
        _put_mi_child(loop, "inputDataItem", id=var, name=var)
        if _mi_child(loop, "loopDataOutputRef") is None:
            _add_instance_cleanup(ctx, task, loop, var)
    elif not variable and has_input and _mi_child(loop, "loopDataOutputRef") is None:
        # Drawn in SpiffWorkflow's own form: the element variable leaks the same way.
        item = _mi_child(loop, "inputDataItem")
        var = (item.get("id") or "").strip() if item is not None else ""
        if var.isidentifier() and not var.startswith("_"):
            _add_instance_cleanup(ctx, task, loop, var, vendor=False)
    for local, what in (
        ("completionCondition", "completion condition"),
        ("loopCardinality", "loop cardinality"),
    ):
        child = _mi_child(loop, local)
        if child is not None and has_juel(child.text):
            python = ctx.juel(
                child, what, child.text or "", condition=local == "completionCondition"
            )
            if python is not None:
                child.text = python


# --------------------------------------------------------------------------- expressions


def _translate_condition(ctx: _Context, element: Any) -> None:
    text = element.text or ""
    if not has_juel(text):
        return
    language = (element.get("language") or "").strip().lower()
    if language not in _EXPRESSION_LANGUAGES:
        ctx.problem(
            element,
            "untranslatable-script",
            f"condition in language {language!r} cannot run here: rewrite it as a Python "
            "expression (or JUEL) and drop the language attribute",
        )
        return
    python = ctx.juel(element, "condition", text, condition=True)
    if python is not None:
        element.text = python
        element.attrib.pop("language", None)


def _translate_timer(ctx: _Context, element: Any) -> None:
    text = (element.text or "").strip()
    if has_juel(text):
        python = ctx.juel(element, "timer", text)
        if python is not None:
            element.text = python
    elif _ISO_TIMER.match(text):
        element.text = f'"{text}"'
    elif _CRON.match(text):
        ctx.problem(
            element,
            "timer-cron-unsupported",
            f"timer {text!r} is a cron expression, which SpiffWorkflow does not run: write an "
            'ISO 8601 cycle such as "R/PT1H"',
        )


def _translate_initiator(ctx: _Context, start: Any) -> None:
    name = vendor_attr(start, "initiator")
    if name and name.strip():
        if not name.strip().isidentifier() or name.strip().startswith("_"):
            ctx.problem(
                start, "initiator-invalid", f"initiator variable {name!r} is not a usable name"
            )
            return
        _set_property(start, "initiatorVariable", name.strip())


# --------------------------------------------------------------------------- Camunda 8


def _zeebe_uses(root: Any) -> list[tuple[Any, str]]:
    """Each element in the Zeebe namespace, or carrying an attribute in it, with its name."""
    prefix = f"{{{ZEEBE_NS}}}"
    uses: list[tuple[Any, str]] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag.startswith(prefix):
            uses.append((element, "zeebe:" + element.tag.removeprefix(prefix)))
        for attribute in element.attrib:
            if attribute.startswith(prefix):
                uses.append((element, "zeebe:" + attribute.removeprefix(prefix)))
    return uses


def _model_element(element: Any) -> Any:
    """The nearest BPMN element with an id that holds ``element`` (itself included)."""
    while element is not None and not (
        isinstance(element.tag, str) and element.tag.startswith(bpmn("")) and element.get("id")
    ):
        element = element.getparent()
    return element


_CONTAINERS = {bpmn(t) for t in ("definitions", "process", "collaboration", "participant")}


def camunda8_problem(root: Any, file: str) -> Problem | None:
    """A Camunda 8 (Zeebe) model, which the bridge cannot read, as one problem naming an element
    that uses Zeebe's extensions (a task rather than the process, when one does); None for any
    other model: a Zeebe namespace declared and not used is not enough. Each of its FEEL
    expressions (``=counselor``), assignments and job types would otherwise be reported on its
    own, as missing handlers or invalid Python, when the model is simply for another engine."""
    uses = [(_model_element(e), name) for e, name in _zeebe_uses(root)]
    if not uses:
        return None
    inside = [(e, name) for e, name in uses if e is not None and e.tag not in _CONTAINERS]
    element, name = (inside or uses)[0]
    label = f" on {element.get('name') or element.get('id')!r}" if element is not None else ""
    return Problem(
        file=file,
        element_id=element.get("id") if element is not None else None,
        line=element.sourceline if element is not None else None,
        code="camunda8-unsupported",
        message=(
            f"a Camunda 8 (Zeebe) model ({name}{label}): engine_bridge reads Camunda 7 models; "
            "in Camunda Modeler, create a Camunda 7 (Camunda Platform) diagram"
        ),
    )


# --------------------------------------------------------------------------- entry point


def translate_dialects(root: Any, file: str) -> list[Problem]:
    """Rewrite vendor constructs of one parsed BPMN document in place (a TreeTransform)."""
    ctx = _Context(root, file)
    for task in list(root.iter(bpmn("userTask"))):
        _copy_vendor_properties(task)
        _translate_assignment(ctx, task)
        _translate_name(task)
    claimed: dict[str, Any] = {}
    for loop in list(root.iter(bpmn("multiInstanceLoopCharacteristics"))):
        _translate_multi_instance(ctx, loop, claimed)
    for tag in ("conditionExpression", "condition"):
        for element in list(root.iter(bpmn(tag))):
            _translate_condition(ctx, element)
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for element in list(root.iter(bpmn(tag))):
            _translate_timer(ctx, element)
    for start in list(root.iter(bpmn("startEvent"))):
        _translate_initiator(ctx, start)
    _declare_error_codes(root)
    return ctx.problems + translate_services(root, file)


def _declare_error_codes(root: Any) -> None:
    """Activiti and Flowable read an ``errorRef`` that names no declared ``bpmn:error`` as
    the error code itself (``errorRef="payment_reject"`` throws and catches that code);
    BPMN, and SpiffWorkflow, need the error declared. It is declared, with that code."""
    vendors = (VENDOR_NS["activiti"], VENDOR_NS["flowable"])
    if not any(uri in vendors for uri in root.nsmap.values()):
        return
    declared = {e.get("id") for e in root.iter(bpmn("error"))}
    taken = {e.get("id") for e in root.iter() if isinstance(e.tag, str) and e.get("id")}
    made: dict[str, str] = {}  # code -> id of the error declared for it
    for definition in list(root.iter(bpmn("errorEventDefinition"))):
        code = (definition.get("errorRef") or "").strip()
        if not code or code in declared or ":" in code:
            continue
        if code not in made:
            # The code is the id when it is free; another element may hold it (a task
            # called "reject"), and ids are one space.
            error_id, n = code, 1
            while error_id in taken:
                n += 1
                error_id = f"{code}_error{n if n > 2 else ''}"
            taken.add(error_id)
            made[code] = error_id
            attributes = {"id": error_id, "name": code, "errorCode": code}
            root.insert(0, root.makeelement(bpmn("error"), attributes))
        definition.set("errorRef", made[code])
