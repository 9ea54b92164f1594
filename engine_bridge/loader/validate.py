"""The bridge's own rules for BPMN, and ``validate_paths`` which reports every problem at once.

SpiffWorkflow checks that a diagram can run; these rules check that it can run *as todos*: every
human task resolves to handlers, expressions compile in the restricted engine, multi-instance
countersigns name their signers, call activities point at processes we have, and summaries fit
the centre. Every rule returns Problems with file, element id and line, because the person
fixing the diagram has the modeller open, not a stack trace.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine_bridge.engine.script_engine import check_expression, check_script
from engine_bridge.engine.timers import literal_cycle_too_short
from engine_bridge.errors import ScriptSecurityError
from engine_bridge.loader.dialects import translate_dialects
from engine_bridge.loader.model import NodeSettings
from engine_bridge.loader.problems import Problem, TreeTransform
from engine_bridge.loader.xml_safety import BPMN_NS, BPMNDI_NS, SPIFF_NS

__all__ = [
    "DEFAULT_TRANSFORMS",
    "MAX_SUMMARY_PAIRS",
    "check_call_activities",
    "check_document",
    "check_nodes",
    "expression_problem",
    "require_resolvers",
    "require_services",
    "validate_paths",
]

# What Bridge.open applies to every file before the rules run.
DEFAULT_TRANSFORMS: tuple[TreeTransform, ...] = (translate_dialects,)

# The centre shows at most five label|value pairs per todo (poa-api.md, transSummary/taskSummary).
MAX_SUMMARY_PAIRS = 5

_HUMAN_TASKS = ("userTask", "manualTask", "task")
_ID_SPACES = (f"{{{BPMN_NS}}}", f"{{{BPMNDI_NS}}}")


def _q(local: str, ns: str = BPMN_NS) -> str:
    return f"{{{ns}}}{local}"


def expression_problem(
    source: str,
    *,
    what: str,
    file: str,
    element_id: str | None,
    line: int | None,
    script: bool = False,
) -> Problem | None:
    """A ``bad-expression`` Problem if ``source`` does not compile or is refused, else None."""
    try:
        (check_script if script else check_expression)(source)
    except SyntaxError as exc:
        detail = exc.msg or "invalid syntax"
        message = f"{what} {source.strip()!r} is not valid Python: {detail}"
    except ScriptSecurityError as exc:
        message = f"{what}: {exc.message}"
    else:
        return None
    return Problem(file, message, "bad-expression", element_id=element_id, line=line)


def _duplicate_ids(root: Any, file: str) -> list[Problem]:
    """Ids of BPMN model and diagram elements share one XML ID space. Vendor extension
    elements (``activiti:formProperty id=...``) name form fields, not elements: not checked."""
    seen: dict[str, int | None] = {}
    problems: list[Problem] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.startswith(_ID_SPACES):
            continue
        element_id = element.get("id")
        if not element_id:
            continue
        if element_id in seen:
            first = seen[element_id]
            problems.append(
                Problem(
                    file,
                    f"id {element_id!r} is used more than once"
                    + (f" (first on line {first})" if first else "")
                    + "; every element needs its own id",
                    "duplicate-id",
                    element_id=element_id,
                    line=element.sourceline,
                )
            )
        else:
            seen[element_id] = element.sourceline
    return problems


def _multi_instance(root: Any, file: str) -> list[Problem]:
    problems: list[Problem] = []
    for kind in _HUMAN_TASKS:
        for task in root.iter(_q(kind)):
            loop = task.find(_q("multiInstanceLoopCharacteristics"))
            if loop is None:
                continue
            collection = (loop.findtext(_q("loopDataInputRef")) or "").strip()
            item = loop.find(_q("inputDataItem"))
            variable = item is not None and (item.get("id") or item.get("name"))
            counted = bool((loop.findtext(_q("loopCardinality")) or "").strip())
            if not collection and counted and _uses_loop_counter(task):
                continue  # N instances, each handler picked by position: approvers[loopCounter]
            missing = []
            if not collection:
                missing.append("an input collection (bpmn:loopDataInputRef: the list of signers)")
            if not variable:
                missing.append("an element variable (bpmn:inputDataItem: each one's signer)")
            if missing:
                alternative = (
                    ", or handlers that pick each signer by loopCounter (approvers[loopCounter])"
                    if counted and not collection
                    else ""
                )
                problems.append(
                    Problem(
                        file,
                        f"multi-instance {kind} {task.get('name') or task.get('id')!r} needs "
                        + " and ".join(missing)
                        + alternative,
                        "mi-incomplete",
                        element_id=task.get("id"),
                        line=task.sourceline,
                    )
                )
    return problems


#: Start-event definitions SpiffWorkflow 3.2 does not read: it takes such a start event for a
#: plain one, so an event subprocess "started by an error" would start with its scope.
_UNREAD_STARTS = {
    "errorEventDefinition": "an error",
    "escalationEventDefinition": "an escalation",
    "compensateEventDefinition": "a compensation",
}


def _unread_start_events(root: Any, file: str) -> list[Problem]:
    return [
        Problem(
            file,
            f"start event {start.get('name') or start.get('id')!r} {reason}",
            "unsupported-start-event",
            element_id=start.get("id"),
            line=start.sourceline,
        )
        for start in root.iter(_q("startEvent"))
        if _executable(start) and (reason := _start_event_problem(start)) is not None
    ]


_STARTABLE = ("timerEventDefinition", "messageEventDefinition", "signalEventDefinition")


def _start_event_problem(start: Any) -> str | None:
    """Why ``start`` cannot start what it starts as drawn (said after "start event 'x'"), or
    None: an error/escalation/compensation definition SpiffWorkflow does not read, or an
    event subprocess's start with no event or a condition."""
    unread = next((what for local, what in _UNREAD_STARTS.items() if _has(start, local)), None)
    if unread is not None:
        return (
            f"is started by {unread}, which SpiffWorkflow 3.2 does not support: it would "
            "start at once, with its process or subprocess. Catch it with a boundary event on "
            "a subprocess instead"
        )
    parent = start.getparent()
    if parent is None or parent.get("triggeredByEvent") != "true":
        return None
    if any(_has(start, local) for local in _STARTABLE):
        return None
    if _has(start, "conditionalEventDefinition"):
        return (
            "of an event subprocess is started by a condition, which SpiffWorkflow 3.2 "
            "evaluates only once, with the data its scope started with; start it with a "
            "message (bridge.message) or a timer instead"
        )
    return (
        "of an event subprocess has no event (a timer, message or signal) to start it: it "
        "would start at once with its scope and interrupt it"
    )


def _has(element: Any, local: str) -> bool:
    return element.find(_q(local)) is not None


def _receive_tasks_without_message(root: Any, file: str) -> list[Problem]:
    """SpiffWorkflow gives a receive task without ``messageRef`` no event: it does not wait
    (in Camunda or Flowable it waits to be triggered), so the flow runs past it at once."""
    return [
        Problem(
            file,
            f"receive task {task.get('name') or task.get('id')!r} names no message "
            "(messageRef): it would not wait but run past at once; give it the message that "
            "`bridge.message` will deliver",
            "receive-without-message",
            element_id=task.get("id"),
            line=task.sourceline,
        )
        for task in root.iter(_q("receiveTask"))
        if not (task.get("messageRef") or "").strip() and _executable(task)
    ]


def _executable(element: Any) -> bool:
    """Whether ``element`` is in a process someone may start or call: a pool drawn for
    documentation (``isExecutable="false"``) is never run, so what would misbehave in it
    does no harm."""
    process = next(element.iterancestors(_q("process")), None)
    return process is None or process.get("isExecutable", "true") != "false"


#: Attributes that name another element of the file, and the element kind they must name.
_REFERENCES = (
    ("errorEventDefinition", "errorRef", "error"),
    ("escalationEventDefinition", "escalationRef", "escalation"),
    ("messageEventDefinition", "messageRef", "message"),
    ("signalEventDefinition", "signalRef", "signal"),
    ("receiveTask", "messageRef", "message"),
    ("sendTask", "messageRef", "message"),
)


def _dangling_references(root: Any, file: str) -> list[Problem]:
    """An event that names an error, message, signal or escalation the file does not declare
    made SpiffWorkflow's parser fail with an internal TypeError that names nothing."""
    declared: dict[str, set[str]] = {}
    for kind in {kind for _, _, kind in _REFERENCES}:
        declared[kind] = {e.get("id") for e in root.iter(_q(kind)) if e.get("id")}
    problems: list[Problem] = []
    for tag, attribute, kind in _REFERENCES:
        for element in root.iter(_q(tag)):
            ref = (element.get(attribute) or "").strip()
            if not ref or ref in declared[kind] or ":" in ref:  # a QName: another file's
                continue
            if not _executable(element):  # a pool drawn for documentation is never parsed
                continue
            # An event definition's own id means nothing to an author: name its event.
            named = element.getparent() if tag.endswith("EventDefinition") else element
            owner_id, line = _owner_id(named)
            problems.append(
                Problem(
                    file,
                    f"{attribute}={ref!r} names no {kind} of this file; declare "
                    f'<bpmn:{kind} id="{ref}" .../> or point {attribute} at one that is '
                    "declared",
                    "unknown-reference",
                    element_id=owner_id,
                    line=element.sourceline or line,
                )
            )
    return problems


def _uses_loop_counter(task: Any) -> bool:
    """Whether the task's handlers or handling group read ``loopCounter``."""
    return any(
        prop.get("name") in ("handlers", "handlingGroup")
        and re.search(r"\bloopCounter\b", prop.get("value") or "") is not None
        for prop in task.iter(_q("property", SPIFF_NS))
    )


def _owner_id(element: Any) -> tuple[str | None, int | None]:
    """The nearest ancestor-or-self with an id: where a person finds the expression."""
    node = element
    while node is not None:
        if node.get("id"):
            return node.get("id"), node.sourceline
        node = node.getparent()
    return None, element.sourceline


def _expressions(root: Any, file: str) -> list[Problem]:
    checks: list[tuple[Any, str, bool]] = []
    checks += [(e, "condition", False) for e in root.iter(_q("conditionExpression"))]
    checks += [(e, "completion condition", False) for e in root.iter(_q("completionCondition"))]
    for script_task in root.iter(_q("scriptTask")):
        checks += [(e, "script", True) for e in script_task.findall(_q("script"))]
    checks += [(e, "preScript", True) for e in root.iter(_q("preScript", SPIFF_NS))]
    checks += [(e, "postScript", True) for e in root.iter(_q("postScript", SPIFF_NS))]
    problems: list[Problem] = []
    for element, what, script in checks:
        source = element.text or ""
        if not source.strip():
            continue
        element_id, _ = _owner_id(element)
        problem = expression_problem(
            source,
            what=what,
            file=file,
            element_id=element_id,
            line=element.sourceline,
            script=script,
        )
        if problem is not None:
            problems.append(problem)
    return problems


def _short_cycles(root: Any, file: str) -> list[Problem]:
    """A literal ``timeCycle`` repeating faster than the engine allows (see
    ``engine.timers.MIN_CYCLE_PERIOD``), reported on the event that carries it."""
    problems: list[Problem] = []
    for element in root.iter(_q("timeCycle")):
        reason = literal_cycle_too_short(element.text or "")
        if reason is not None:
            definition = element.getparent()
            event = definition.getparent() if definition is not None else None
            element_id = event.get("id") if event is not None else None
            if element_id is None:
                element_id, _ = _owner_id(element)
            line = element.sourceline
            problems.append(
                Problem(file, reason, "timer-cycle-too-short", element_id=element_id, line=line)
            )
    return problems


def check_document(root: Any, file: str) -> list[Problem]:
    """Rules that need only one parsed document: unique ids, complete multi-instance
    countersigns, start events SpiffWorkflow can start by, conditions/scripts that
    compile in the restricted engine, and literal timer cycles the engine can keep up with."""
    return [
        *_duplicate_ids(root, file),
        *_multi_instance(root, file),
        *_unread_start_events(root, file),
        *_receive_tasks_without_message(root, file),
        *_dangling_references(root, file),
        *_expressions(root, file),
        *_short_cycles(root, file),
    ]


def check_call_activities(root: Any, file: str, known_processes: Iterable[str]) -> list[Problem]:
    """Every callActivity must call a process defined in one of the loaded files."""
    known = set(known_processes)
    problems: list[Problem] = []
    for call in root.iter(_q("callActivity")):
        called = (call.get("calledElement") or "").strip()
        if called in known:
            continue
        hint = f"known: {', '.join(sorted(known))}" if known else "no process is loaded"
        problems.append(
            Problem(
                file,
                f"call activity {call.get('name') or call.get('id')!r} calls process "
                f"{called or '(none)'!r}, which no loaded file defines ({hint}); load the "
                "file that defines it too",
                "unknown-process",
                element_id=call.get("id"),
                line=call.sourceline,
            )
        )
    return problems


def _at(node: NodeSettings, message: str, code: str, *, warning: bool = False) -> Problem:
    return Problem(
        node.location.file if node.location else "",
        message,
        code,
        element_id=node.node_id,
        line=node.location.line if node.location else None,
        severity="warning" if warning else "error",
    )


def check_nodes(nodes: Mapping[str, NodeSettings]) -> list[Problem]:
    """Rules over the per-task settings: handlers resolvable, expressions compile, summary
    within the centre's limit."""
    problems: list[Problem] = []
    for node in nodes.values():
        file = node.location.file if node.location else ""
        line = node.location.line if node.location else None

        if node.handlers is None and node.handling_group is None:
            problems.append(
                _at(
                    node,
                    f"task {node.node_name!r} has no handlers: add the spiffworkflow:property "
                    "'handlers' (a Python expression giving account ids) or 'handlingGroup', "
                    "or put the task in a named lane",
                    "no-handlers",
                )
            )
        for prop, source in (("handlers", node.handlers), ("handlingGroup", node.handling_group)):
            if source is None:
                continue
            problem = expression_problem(
                source, what=f"property {prop!r}", file=file, element_id=node.node_id, line=line
            )
            if problem is not None:
                problems.append(problem)
        if len(node.task_summary) > MAX_SUMMARY_PAIRS:
            problems.append(
                _at(
                    node,
                    f"taskSummary of {node.node_name!r} has {len(node.task_summary)} pairs; "
                    f"the to-do centre shows at most {MAX_SUMMARY_PAIRS}: drop or merge some",
                    "summary-too-long",
                )
            )
        malformed = [item for item in node.task_summary if "|" not in item]
        if malformed:
            problems.append(
                _at(
                    node,
                    f"taskSummary item(s) {', '.join(map(repr, malformed))} lack the "
                    "'label|{value}' separator '|'",
                    "summary-malformed",
                    warning=True,
                )
            )
    return problems


_BEAN_CALL = re.compile(r" calls '([A-Za-z0-9_.]+)'")


def _answered(bean: str, names: Collection[str]) -> bool:
    """A resolver named ``svc.find``, or one for the bean ``svc``, answers ``svc.find``."""
    parts = bean.split(".")
    return any(".".join(parts[:i]) in names for i in range(len(parts), 0, -1))


def require_resolvers(problems: Iterable[Problem], resolvers: Iterable[str]) -> list[Problem]:
    """``bean-needs-resolver`` warnings become errors for beans no resolver answers.

    The loader reports every bean call it translates as a warning (it cannot know what the
    running bridge will register); validation knows the resolver names it is given
    (``engine-bridge validate --resolver NAME``), so a bean without one is an error there.
    """
    names = set(resolvers)
    result: list[Problem] = []
    for problem in problems:
        match = _BEAN_CALL.search(problem.message)
        if problem.code != "bean-needs-resolver" or match is None:
            result.append(problem)
            continue
        bean = match.group(1)
        if _answered(bean, names):
            continue  # registered: nothing left to say
        result.append(
            replace(
                problem,
                severity="error",
                message=f"{problem.message.split(': register', 1)[0]}, and no resolver is "
                f"registered for it: register one (Bridge.open(resolvers={{{bean!r}: fn}}) or "
                f"bridge.resolver({bean!r}, fn)) and name it here with --resolver {bean}",
            )
        )
    return result


_SERVICE_CALL = re.compile(r"task calls service '(.*?)':")


def require_services(problems: Iterable[Problem], services: Iterable[str]) -> list[Problem]:
    """``service-needs-handler`` warnings, once validation is told which handlers the bridge
    registers (``engine-bridge validate --service KEY``): a task one of them answers (under
    ``task:<id>``, ``<id>`` or its KEY, as the bridge looks them up) is dropped, any other
    becomes an error. Without names the warnings stay as they are."""
    names = set(services)
    result: list[Problem] = []
    for problem in problems:
        match = _SERVICE_CALL.search(problem.message)
        if not names or problem.code != "service-needs-handler" or match is None:
            result.append(problem)
            continue
        node = problem.element_id or ""
        if names & {f"task:{node}", node, match.group(1)}:
            continue  # answered: nothing left to say
        result.append(
            replace(
                problem,
                severity="error",
                message=f"{problem.message.split(': register', 1)[0]}, and none of the named "
                f"handlers answers it: register one under {match.group(1)!r} (bridge.service"
                f"(key, fn)) and name it here with --service {match.group(1)}",
            )
        )
    return result


def validate_paths(
    paths: str | Path | Sequence[str | Path],
    *,
    transforms: Sequence[TreeTransform] = (),
    resolvers: Iterable[str] = (),
) -> list[Problem]:
    """Every problem in the given BPMN files and directories; never raises for bad files.

    Directories are read as the library reads them (every ``*.bpmn`` plus ``processes.yaml``).
    Pass ``transforms=DEFAULT_TRANSFORMS`` (the vendor dialect translation, as
    ``engine-bridge validate`` does) to check files exactly as ``Bridge.open`` loads them. A
    translated bean call is an error unless ``resolvers`` names a resolver for it.
    """
    # Imported here: the library applies these same rules when it loads.
    from engine_bridge.loader.library import analyse_paths

    return require_resolvers(analyse_paths(paths, transforms=transforms).problems, resolvers)
