"""Parse a BPMN document without letting it reach the network, the file system or the heap.

BPMN files come from modelling tools, mail attachments and pull requests: untrusted input. lxml
is configured never to resolve entities, load DTDs or touch the network, and any document with a
DOCTYPE is refused outright (entity declarations before parsing, in whatever encoding the file
declares). Refusing, rather than silently not expanding, matters: an unexpanded ``&xxe;`` would
otherwise vanish from the model without a word, and a billion-laughs bomb would still cost the
parser memory.
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

# An entity declaration is looked for in the raw bytes before lxml runs, so an entity bomb is
# refused before it is expanded: in UTF-8, in the wide encodings an XML declaration may choose
# (libxml2 expands internal entities in attribute values even with resolve_entities=False, so a
# UTF-16 billion laughs must be caught here too, not left to its amplification limit), and in
# any other encoding the XML declaration names (UTF-7 writes "<!" as "+ADwAIQ-"), decoded as it
# says.
_WIDE_CODECS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def _line_of(data: bytes, marker: str) -> int | None:
    """The line where ``marker`` (ASCII, matched without case) first appears in ``data`` read
    as UTF-8, as a wide encoding or as its declared encoding; None when it does not."""
    found = re.search(re.escape(marker.encode()), data, re.IGNORECASE)
    if found is not None:
        return data.count(b"\n", 0, found.start()) + 1
    for codec in _WIDE_CODECS:
        encoded = marker.encode(codec)
        width = len(encoded) // len(marker)
        index = data.find(encoded)
        while index > 0 and index % width:  # UTF-16-BE text holds the LE marker, misaligned
            index = data.find(encoded, index + 1)
        if index >= 0:
            return data[:index].decode(codec, errors="ignore").count("\n") + 1
    declared = _DECLARED_ENCODING.match(data)
    if declared is None:
        return None
    try:
        text = data.decode(declared.group(1).decode("ascii"), errors="ignore")
    except LookupError:  # a codec Python does not know: libxml2 refuses it too
        return None
    index = text.upper().find(marker)
    return None if index < 0 else text.count("\n", 0, index) + 1


_DTD_FORBIDDEN = (
    "the document has a DOCTYPE; BPMN needs none, and a DOCTYPE is how XXE and "
    "billion-laughs attacks work (its entities) and how a model changes unseen (its attribute "
    "defaults). Remove the DOCTYPE and save again"
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


def _has_doctype(root: Any) -> bool:
    """Any DOCTYPE at all: libxml2 applies an internal subset's attribute-list defaults even
    without loading a DTD, and lxml lists no attribute list whose element is undeclared, so a
    DOCTYPE cannot be told harmless from its parsed form; BPMN needs none."""
    info = root.getroottree().docinfo
    return bool(info.doctype or info.system_url or info.public_id or info.internalDTD)


#: More attributes than this on one element is refused: a designer writes a few dozen at
#: most, and some of lxml's and the linter's walks over an element's attributes grow with
#: their square (200,000 attributes on one element kept `validate` busy for minutes).
MAX_ATTRIBUTES = 256


def parse_bpmn(data: bytes, file: str) -> Any:
    """Parse ``data`` (the bytes of ``file``) and return the ``bpmn:definitions`` element.

    Raises BpmnError whose ``problems`` holds one Problem coded ``xml-empty``,
    ``xml-dtd-forbidden``, ``xml-malformed`` (with the line), ``not-bpmn`` or ``xml-too-large``.
    """
    if not data.strip():
        raise refuse(
            Problem(file, "the file is empty; export the diagram again", "xml-empty", line=1)
        )
    entity_line = _line_of(data, "<!ENTITY")
    if entity_line is not None:
        raise refuse(Problem(file, _DTD_FORBIDDEN, "xml-dtd-forbidden", line=entity_line))
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if isinstance(exc.lineno, int) and exc.lineno > 0 else None
        message = str(exc.msg or exc).strip()
        raise refuse(
            Problem(file, f"not well-formed XML: {message}", "xml-malformed", line=line)
        ) from None
    if _has_doctype(root):
        raise refuse(
            Problem(file, _DTD_FORBIDDEN, "xml-dtd-forbidden", line=_line_of(data, "<!DOCTYPE"))
        )
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
    for element in root.iter():
        if len(element.attrib) > MAX_ATTRIBUTES:
            raise refuse(
                Problem(
                    file,
                    f"an element has {len(element.attrib)} attributes, more than the "
                    f"{MAX_ATTRIBUTES} any BPMN element needs; the file is not a diagram "
                    "export",
                    "xml-too-large",
                    line=element.sourceline,
                )
            )
    return root
