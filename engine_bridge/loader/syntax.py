"""Where a JSON or YAML text is malformed, said in one line.

PyYAML's message spans several lines (the text quoted, a caret under the column, "in
'<unicode string>'"), which breaks the one-line ``file:line: error`` form every command
prints; both parsers know the line and the column, which is what an author needs.
"""

from __future__ import annotations

import json

import yaml

__all__ = ["syntax_error"]


def syntax_error(exc: json.JSONDecodeError | yaml.YAMLError) -> tuple[int | None, str]:
    """(line, one-line reason) of a JSON or YAML syntax error; line is None if unknown."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.lineno, f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    reason = f"{context}, {problem}" if context else str(problem)
    if mark is None:
        return None, reason
    return mark.line + 1, f"{reason} (line {mark.line + 1}, column {mark.column + 1})"
