"""Parse a BPMN document without letting it reach the network, the file system or the heap.

BPMN files come from modelling tools, mail attachments and pull requests: untrusted input. lxml
is configured never to resolve entities, load DTDs or touch the network, and any document whose
DOCTYPE declares anything (entities, attribute lists, elements) or points at an external DTD is
refused outright. Refusing, rather
than silently not expanding, matters: an unexpanded ``&xxe;`` would otherwise vanish from the
model without a word, and a billion-laughs bomb would still cost the parser memory.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from engine_bridge.errors import BpmnError
from engine_bridge.loader.problems import Problem

__all__ = ["BPMNDI_NS", "BPMN_NS", "SPIFF_NS", "parse_bpmn", "refuse"]

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"

# Seen in the raw bytes before lxml runs: refusal does not depend on how far parsing gets.
# Entities are how XXE and billion laughs work; an attribute list's defaults are applied by
# libxml2 even without loading a DTD, so a hidden ``<!ATTLIST userTask assignee "...">`` would
# add a handler (or a default flow) that no one sees in the model. No declaration is needed
# by BPMN, so every kind is refused.
_DECLARATIONS = ("<!ENTITY", "<!ATTLIST", "<!ELEMENT", "<!NOTATION")
_DECLARATION = re.compile(rb"<!(?:ENTITY|ATTLIST|ELEMENT|NOTATION)", re.IGNORECASE)
# The same declarations in the wide encodings an XML declaration may choose: libxml2 expands
# internal entities in attribute values even with resolve_entities=False, so a UTF-16 billion
# laughs must be caught here too, not left to its amplification limit.
_WIDE_CODECS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_WIDE_DECLARATIONS = tuple(
    (marker.encode(codec), len(marker), codec) for codec in _WIDE_CODECS for marker in _DECLARATIONS
)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def _declaration_line(data: bytes) -> int | None:
    """The line of the first DTD declaration (UTF-8 or a wide encoding), else None."""
    found = _DECLARATION.search(data)
    if found is not None:
        return data.count(b"\n", 0, found.start()) + 1
    for marker, chars, codec in _WIDE_DECLARATIONS:
        width = len(marker) // chars
        index = data.find(marker)
        while index > 0 and index % width:  # UTF-16-BE text holds the LE marker, misaligned
            index = data.find(marker, index + 1)
        if index >= 0:
            return data[:index].decode(codec, errors="ignore").count("\n") + 1
    return None


def _doctype_line(data: bytes) -> int | None:
    found = _DOCTYPE.search(data)
    return None if found is None else data.count(b"\n", 0, found.start()) + 1


_DTD_FORBIDDEN = (
    "the document has a DOCTYPE with declarations (entities, attribute defaults) or an "
    "external DTD; BPMN needs none of them (this is how XXE and billion-laughs attacks work, "
    "and attribute defaults would change the model unseen). Remove the DOCTYPE and save again"
)


def refuse(problem: Problem) -> BpmnError:
    """A BpmnError carrying one Problem, located like the problem."""
    return BpmnError(
        f"{problem.message} ({problem.code})",
        file=problem.file,
        element_id=problem.element_id,
        line=problem.line,
        problems=[problem],
    )


def _parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers keep state and are not safe to share across threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def _declares_anything(root: Any) -> bool:
    info = root.getroottree().docinfo
    if info.system_url or info.public_id:
        return True
    dtd = info.internalDTD
    return dtd is not None and (
        any(True for _ in dtd.iterentities()) or any(True for _ in dtd.iterelements())
    )


def parse_bpmn(data: bytes, file: str) -> Any:
    """Parse ``data`` (the bytes of ``file``) and return the ``bpmn:definitions`` element.

    Raises BpmnError whose ``problems`` holds one Problem coded ``xml-empty``,
    ``xml-dtd-forbidden``, ``xml-malformed`` (with the line) or ``not-bpmn``.
    """
    if not data.strip():
        raise refuse(
            Problem(file, "the file is empty; export the diagram again", "xml-empty", line=1)
        )
    declared = _declaration_line(data)
    if declared is not None:
        raise refuse(Problem(file, _DTD_FORBIDDEN, "xml-dtd-forbidden", line=declared))
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        message = str(exc.msg or exc).strip()
        raise refuse(
            Problem(file, f"not well-formed XML: {message}", "xml-malformed", line=line)
        ) from None
    if _declares_anything(root):
        raise refuse(Problem(file, _DTD_FORBIDDEN, "xml-dtd-forbidden", line=_doctype_line(data)))
    if root is None or not isinstance(root.tag, str) or root.tag != f"{{{BPMN_NS}}}definitions":
        tag = etree.QName(root).localname if root is not None else "nothing"
        raise refuse(
            Problem(
                file,
                f"the root element is <{tag}>, not a BPMN 2.0 <definitions> in namespace "
                f"{BPMN_NS}; is this a BPMN file?",
                "not-bpmn",
                line=getattr(root, "sourceline", None),
            )
        )
    return root
