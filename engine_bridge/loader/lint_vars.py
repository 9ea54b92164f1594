"""Which variables a process can have, read from its XML: the vocabulary templates may use.

A todo's name, summary and URLs are ``{var}`` templates filled from task data; a misspelt
variable renders as an empty string and nobody notices until a person sees a blank todo. This
module collects, for one ``bpmn:process`` element and everything inside it, every variable name
the process

* **declares** as start data: ``bpmn:dataInput`` of the process's ``ioSpecification``, or a
  ``Start data: a, b, c`` line in the process documentation (the convention the samples use:
  text in parentheses after a name is a comment);
* **writes**: a ``Form data: a, b`` line in a task's documentation (what its completion
  submits; SpiffWorkflow keeps form schemas outside the BPMN), a ``Message data: a, b`` line
  in a message event's documentation (what ``bridge.message`` brings), a
  ``spiffworkflow:messageVariable``, script assignments (script
  tasks, ``spiffworkflow:preScript``/``postScript``),
  form fields (``spiffworkflow:variableName``, ``camunda:formField``, ``*:formProperty``),
  multi-instance element variables and outputs, data objects, task inputs/outputs, result
  variables, Camunda output parameters and ``camunda:out`` mappings;
* **reads** in expressions (conditions, completion conditions, ``handlers``/``handlingGroup``,
  scripts, timers): an expression that reads a variable means the process expects to have it
  (from the start data or a completion's form data), so a template may use it too.

Every mention keeps the id of the flow node (or process) it belongs to, so a rule can tell a
variable known only inside one task (a countersign's element variable) from a process-wide one.
Nothing here is evaluated: Python is only parsed with :mod:`ast`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine_bridge.loader.bpmn_names import FLOW_NODES
from engine_bridge.loader.xml_safety import BPMN_NS, SPIFF_NS

__all__ = [
    "ProcessVariables",
    "collect_variables",
    "element_variables",
    "form_data_names",
    "names_in_expression",
    "start_data_names",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_START_DATA = re.compile(r"(?:start data|启动数据)\s*[:：]\s*([^\n。]*)", re.IGNORECASE)
_FORM_DATA = re.compile(
    r"(?:form data|message data|表单数据|消息数据)\s*[:：]\s*([^\n。]*)", re.IGNORECASE
)
_PARENTHESES = re.compile(r"\([^)]*\)|（[^）]*）")
_SPIFF_EXPRESSION_PROPERTIES = ("handlers", "handlingGroup")
_FORM_FIELD_TAGS = ("formField", "formProperty")


def _q(local: str, ns: str = BPMN_NS) -> str:
    return f"{{{ns}}}{local}"


def _local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


@dataclass
class ProcessVariables:
    """Variable names of one process, each with the ids of the elements that mention it."""

    declared: dict[str, set[str]] = field(default_factory=dict)
    written: dict[str, set[str]] = field(default_factory=dict)
    read: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, names: Iterable[str], owner: str) -> None:
        target: dict[str, set[str]] = getattr(self, kind)
        for name in names:
            if name:
                target.setdefault(name, set()).add(owner)

    def merge(self, other: ProcessVariables) -> None:
        for kind in ("declared", "written", "read"):
            mine: dict[str, set[str]] = getattr(self, kind)
            for name, owners in getattr(other, kind).items():
                mine.setdefault(name, set()).update(owners)

    def known(self) -> set[str]:
        """Every name the process can have at some point."""
        return set(self.declared) | set(self.written) | set(self.read)

    def at_start(self) -> set[str]:
        """Names that can exist when the process starts: declared start data, and names the
        process reads but never writes (they can only come from outside)."""
        return set(self.declared) | (set(self.read) - set(self.written))

    def owners(self, name: str) -> set[str]:
        """Ids of every element that declares, writes or reads ``name``."""
        found: set[str] = set()
        for kind in (self.declared, self.written, self.read):
            found |= kind.get(name, set())
        return found


def names_in_expression(source: str, *, script: bool = False) -> tuple[set[str], set[str]]:
    """``(written, read)`` top-level names of a Python expression or script.

    Names bound inside comprehensions and lambdas stay local and are not reported. A source
    that is not Python (an untranslated JUEL ``${...}``) yields its identifiers as reads, so a
    variable it mentions still counts as known.
    """
    try:
        tree = ast.parse(source.strip(), mode="exec" if script else "eval")
    except (SyntaxError, ValueError):
        return set(), set(_IDENT.findall(source))
    written: set[str] = set()
    read: set[str] = set()
    _walk(tree, written, read, local=frozenset())
    return written, read


def _walk(node: ast.AST, written: set[str], read: set[str], *, local: frozenset[str]) -> None:
    if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        bound = {
            n.id for gen in node.generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)
        }
        inner = local | bound
        for child in ast.iter_child_nodes(node):
            _walk(child, written, read, local=inner)
        return
    if isinstance(node, ast.Lambda):
        params = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        _walk(node.body, written, read, local=local | params)
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        written.add(node.name)  # SpiffWorkflow strips callables afterwards; harmless to know
        return
    if isinstance(node, ast.Name) and node.id not in local:
        if isinstance(node.ctx, ast.Store | ast.Del):
            written.add(node.id)
        else:
            read.add(node.id)
    for child in ast.iter_child_nodes(node):
        _walk(child, written, read, local=local)


def start_data_names(documentation: str) -> set[str]:
    """Names listed after ``Start data:`` in a process's documentation.

    ``"... Start data: title, signers (list of accounts), archivist."`` → title, signers,
    archivist. Parenthesised text is a comment; names are separated by commas (or 、).
    """
    return _listed(_START_DATA, documentation)


def form_data_names(documentation: str) -> set[str]:
    """Names listed after ``Form data:`` in a task's documentation: what its completion
    submits (``bridge.complete(..., data={...})``), written like ``Start data:``. A message
    event's ``Message data:`` line (what ``bridge.message(..., data={...})`` brings) counts
    the same way."""
    return _listed(_FORM_DATA, documentation)


def _listed(pattern: re.Pattern[str], documentation: str) -> set[str]:
    names: set[str] = set()
    for match in pattern.finditer(documentation):
        listed = _PARENTHESES.sub("", match.group(1))
        listed = listed.split(". ")[0].rstrip(". ")
        for part in re.split(r"[,，、;；]", listed):
            words = part.split()
            if words and _IDENT.fullmatch(words[0].strip("`'\"")):
                names.add(words[0].strip("`'\""))
    return names


def _flow_owner(element: Any, process_id: str) -> str:
    """The flow node (or subprocess, or the process) an element belongs to."""
    node = element
    while node is not None:
        if _local(node) in _OWNER_TAGS and node.get("id"):
            return str(node.get("id"))
        if node.tag == _q("process"):
            break
        node = node.getparent()
    return process_id


_OWNER_TAGS = FLOW_NODES | {"sequenceFlow"}


def element_variables(task: Any) -> set[str]:
    """The element variable(s) of a multi-instance task (``inputDataItem`` id and name)."""
    loop = task.find(_q("multiInstanceLoopCharacteristics"))
    if loop is None:
        return set()
    item = loop.find(_q("inputDataItem"))
    if item is None:
        return set()
    return {v for v in (item.get("id"), item.get("name")) if v}


def _texts(root: Any, tag: str) -> Iterator[tuple[Any, str]]:
    for element in root.iter(tag):
        text = (element.text or "").strip()
        if text:
            yield element, text


def collect_variables(process: Any) -> ProcessVariables:
    """Every variable ``process`` (a ``bpmn:process`` element) declares, writes or reads,
    including inside its embedded subprocesses. Called processes are separate elements: the
    caller merges their variables (see ``lint``)."""
    pid = str(process.get("id") or "")
    found = ProcessVariables()

    for doc in process.findall(_q("documentation")):
        found.add("declared", start_data_names(doc.text or ""), pid)
    for doc in process.iter(_q("documentation")):
        if doc.getparent() is not process:
            found.add("written", form_data_names(doc.text or ""), _flow_owner(doc, pid))
    io = process.find(_q("ioSpecification"))
    if io is not None:
        for data_input in io.findall(_q("dataInput")):
            found.add("declared", (data_input.get("id"), data_input.get("name")), pid)

    scripts = [*_texts(process, _q("script"))]
    scripts += [*_texts(process, _q("preScript", SPIFF_NS))]
    scripts += [*_texts(process, _q("postScript", SPIFF_NS))]
    for element, text in scripts:
        written, read = names_in_expression(text, script=True)
        owner = _flow_owner(element, pid)
        found.add("written", written, owner)
        found.add("read", read, owner)

    for tag in (
        "conditionExpression",
        "completionCondition",
        "loopCardinality",
        "timeDuration",
        "timeDate",
        "timeCycle",
        "loopDataInputRef",
    ):
        for element, text in _texts(process, _q(tag)):
            _, read = names_in_expression(text)
            found.add("read", read, _flow_owner(element, pid))

    for prop in process.iter(_q("property", SPIFF_NS)):
        if prop.get("name") in _SPIFF_EXPRESSION_PROPERTIES and prop.get("value"):
            _, read = names_in_expression(prop.get("value"))
            found.add("read", read, _flow_owner(prop, pid))

    for tag in ("inputDataItem", "outputDataItem"):
        for item in process.iter(_q(tag)):
            found.add("written", (item.get("id"), item.get("name")), _flow_owner(item, pid))
    for element, text in _texts(process, _q("loopDataOutputRef")):
        found.add("written", (text,), _flow_owner(element, pid))
    for tag in ("dataObject", "dataInput", "dataOutput"):
        for element in process.iter(_q(tag)):
            owner = _flow_owner(element, pid)
            found.add("written", (element.get("id"), element.get("name")), owner)

    for element in process.iter():
        local = _local(element)
        if not local or element.tag.startswith(f"{{{BPMN_NS}}}"):
            continue
        owner = _flow_owner(element, pid)
        if local in ("variableName", "messageVariable") and (element.text or "").strip():
            found.add("written", ((element.text or "").strip(),), owner)
        elif local in _FORM_FIELD_TAGS:
            found.add("written", (element.get("id"),), owner)
        elif local == "outputParameter":
            found.add("written", (element.get("name"),), owner)
        elif local in ("out", "in") and element.get("target"):
            found.add("written", (element.get("target"),), owner)
    for element in process.iter():
        if not isinstance(element.tag, str):
            continue
        for attr, value in element.attrib.items():
            if attr.rsplit("}", 1)[-1] == "resultVariable" and value.strip():
                found.add("written", (value.strip(),), _flow_owner(element, pid))
    return found
