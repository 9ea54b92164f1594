"""Reading JSON or YAML written by people, and where such a text is malformed, in one line.

PyYAML's message spans several lines (the text quoted, a caret under the column, "in
'<unicode string>'"), which breaks the one-line ``file:line: error`` form every command
prints; both parsers know the line and the column, which is what an author needs.

Every YAML file the bridge reads (``processes.yaml``, scenario files) goes through
:func:`load_yaml` / :func:`compose_yaml`: PyYAML's safe loader, refusing aliases. An alias
(``*a``) repeats the value its anchor (``&a``) names, and aliases of aliases multiply: a
few hundred bytes of nested ones expand to billions of items ("billion laughs"), which take
minutes and all the memory to build, or to print. A settings or scenario file needs none,
so the first alias is an error at its line, before anything is built.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["compose_yaml", "load_yaml", "syntax_error"]


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing any alias where the composer meets it."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                f"alias *{event.anchor} is not accepted (anchors and aliases can expand a "
                "small file beyond any memory): write the value out where it is used",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """The data of a YAML text, read safely and without aliases (``yaml.YAMLError`` if not)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of a YAML text (positions, no values built), refusing aliases as
    :func:`load_yaml` does."""
    return yaml.compose(text, Loader=_NoAliasLoader)


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
