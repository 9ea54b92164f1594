"""A problem found in a BPMN file, located well enough for a person to fix it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Problem", "TreeTransform"]


@dataclass(frozen=True)
class Problem:
    """One finding of the loader, a translator or the linter.

    ``code`` is a short stable slug (``xml-malformed``, ``no-handlers``, ``summary-too-long``…)
    that CI filters and tests match on; ``message`` is for people and never contains raw markup
    from the file unescaped in HTML output (callers escape on display).
    """

    file: str
    message: str
    code: str
    element_id: str | None = None
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        elem = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}: {self.severity}: {self.message}{elem} ({self.code})"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "element_id": self.element_id,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


# A step of the loading pipeline that rewrites a parsed BPMN document in place (for example,
# translating Camunda/Flowable/Activiti attributes into spiffworkflow ones) and reports what it
# could not translate. Arguments: the lxml root element (bpmn:definitions) and the file name.
TreeTransform = Callable[[Any, str], list[Problem]]
