"""Reading JSON or YAML written by people, and where such a text is malformed, in one line.

PyYAML's message spans several lines (the text quoted, a caret under the column, "in
'<unicode string>'"), which breaks the one-line ``file:line: error`` form every command
prints; both parsers know the line and the column, which is what an author needs.

Every YAML file the bridge reads (``processes.yaml``, scenario files) goes through
:func:`load_yaml` / :func:`compose_yaml`: PyYAML's safe loader, bounding what aliases
expand to. An alias (``*a``) repeats the value its anchor (``&a``) names, and aliases of
aliases multiply: a few hundred bytes of nested ones expand to billions of items ("billion
laughs"), which take minutes and all the memory to build, or to print. Shared defaults
(``<<: *defaults``) are common in settings files and expand to little, so aliases are
accepted while the document, every alias expanded, stays within
:data:`MAX_YAML_NODES` nodes; beyond that (or an alias of a value that contains itself) it
is an error at the document's first alias, counted on the node tree before anything is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["compose_yaml", "key_lines", "load_yaml", "syntax_error"]


#: The most nodes a YAML document may hold once every alias is expanded: far more than any
#: settings or scenario file, far fewer than an alias bomb.
MAX_YAML_NODES = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing a document whose aliases expand beyond ``MAX_YAML_NODES``."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded(node, {}, set()) > MAX_YAML_NODES:
            first_alias = getattr(self, "_eb_first_alias", None)
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand this document beyond {MAX_YAML_NODES:,} values (anchors and "
                "aliases can grow a small file beyond any memory): write the values out",
                first_alias or node.start_mark,
            )
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent) and not hasattr(self, "_eb_first_alias"):
            self._eb_first_alias = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return super().compose_node(parent, index)


def _expanded(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` stands for with every alias written out (an alias shares its
    anchor's node, so each is counted once per use, in time linear in the tree). A value that
    contains itself counts as too many."""
    key = id(node)
    known = sizes.get(key)
    if known is not None:
        return known
    if key in open_nodes:
        return MAX_YAML_NODES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded(item, sizes, open_nodes)
            if total > MAX_YAML_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for item_key, item_value in node.value:
            total += _expanded(item_key, sizes, open_nodes)
            total += _expanded(item_value, sizes, open_nodes)
            if total > MAX_YAML_NODES:
                break
    open_nodes.discard(key)
    sizes[key] = total
    return total


def load_yaml(text: str) -> Any:
    """The data of a YAML text, read safely, aliases bounded (``yaml.YAMLError`` if not)."""
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of a YAML text (positions, no values built), aliases bounded as
    :func:`load_yaml` bounds them."""
    return yaml.compose(text, Loader=_BoundedLoader)


def key_lines(path: Path, depth: int) -> dict[tuple[str, ...], int]:
    """Key path (one to ``depth`` keys of nested mappings) → the line of its last key, in a
    YAML (or JSON) file: where a problem found in the values it holds is shown. Best effort:
    empty when the file cannot be read."""
    try:
        root = compose_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    lines: dict[tuple[str, ...], int] = {}
    level: list[tuple[tuple[str, ...], Any]] = [((), root)]
    for _ in range(depth):
        deeper: list[tuple[tuple[str, ...], Any]] = []
        for prefix, node in level:
            if not isinstance(node, yaml.MappingNode):
                continue
            for key, value in node.value:
                path_here = (*prefix, str(key.value))
                lines.setdefault(path_here, key.start_mark.line + 1)
                deeper.append((path_here, value))
        level = deeper
    return lines


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
