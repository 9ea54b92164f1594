"""One self-contained HTML page: a table of instances with their open todos, then each
instance's diagram(s) inline.

The page is a file people open from disk or attach to a ticket, so it carries everything it
needs: inline CSS, inline SVG, no script, no font or image from anywhere. A Content Security
Policy says so to the browser as well (``default-src 'none'``), so even a name that slipped
through unescaped could not load or run anything. Every value shown comes through
:func:`~engine_bridge.render.svg.escape`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine_bridge.render.states import State
from engine_bridge.render.svg import LEGEND, STYLES, escape

__all__ = ["CSP", "NOT_STARTED", "Panel", "Picture", "TodoRow", "render_page"]

NOT_STARTED = "not started"  # the status of a panel drawn from a file, without an instance
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
body { font-family: 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', 'WenQuanYi Micro Hei',
       'DejaVu Sans', Arial, sans-serif; margin: 24px; color: #202124; background: #f8f9fa; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.sub { color: #5f6368; font-size: 12px; margin-bottom: 16px; }
table { border-collapse: collapse; background: #fff; margin-bottom: 16px; font-size: 13px; }
th, td { border: 1px solid #dadce0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f4; font-weight: 600; }
section { background: #fff; border: 1px solid #dadce0; border-radius: 8px; padding: 16px;
          margin-bottom: 24px; }
.diagram { overflow: auto; border-top: 1px solid #eee; padding-top: 8px; }
.diagram svg { max-width: none; height: auto; display: block; }
.note { color: #b06000; font-size: 12px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
          border: 1px solid #dadce0; }
.status-running { background: #fff4ce; }
.status-finished { background: #e6f4ea; }
.status-cancelled { background: #fce8e6; }
.status-incident { background: #fce8e6; color: #c5221f; }
code { font-size: 12px; }
"""


@dataclass(frozen=True)
class TodoRow:
    """One open todo as the page lists it."""

    task_id: str
    node_id: str
    node_name: str
    handlers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Picture:
    """One inline SVG (``svg`` is already a complete, escaped ``<svg>`` element)."""

    title: str
    svg: str


@dataclass(frozen=True)
class Panel:
    """One section of the page: an instance (or a file without one)."""

    key: str
    heading: str
    status: str
    facts: Sequence[tuple[str, str]] = ()
    todos: Sequence[TodoRow] = ()
    pictures: Sequence[Picture] = ()
    notes: Sequence[str] = ()


def _anchor(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)


def _status(status: str) -> str:
    css = re.sub(r"[^a-z-]", "", status.lower().replace(" ", "-"))
    return f'<span class="status status-{css}">{escape(status)}</span>'


def _people(todo: TodoRow) -> str:
    parts = [escape(", ".join(todo.handlers))] if todo.handlers else []
    if todo.groups:
        parts.append("groups: " + escape(", ".join(todo.groups)))
    return "<br>".join(parts) or "—"


def _todo_table(todos: Sequence[TodoRow]) -> str:
    if not todos:
        return '<p class="sub">no open todo</p>'
    rows = "".join(
        f"<tr><td>{escape(t.node_name)}<br><code>{escape(t.node_id)}</code></td>"
        f'<td class="handlers">{_people(t)}</td><td><code>{escape(t.task_id)}</code></td></tr>'
        for t in todos
    )
    return (
        '<table class="todos"><thead><tr><th>node</th><th>handlers</th><th>todo id</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _summary(panels: Sequence[Panel]) -> str:
    rows = []
    for panel in panels:
        facts = dict(panel.facts)
        todos = "<br>".join(
            f"{escape(t.node_name)} → {escape(', '.join(t.handlers + t.groups) or '—')}"
            for t in panel.todos
        )
        rows.append(
            f'<tr><td><a href="#{_anchor(panel.key)}">{escape(panel.heading)}</a></td>'
            f"<td>{escape(facts.get('process', ''))}</td><td>{_status(panel.status)}</td>"
            f"<td>{escape(facts.get('business key', ''))}</td>"
            f"<td>{escape(facts.get('initiator', ''))}</td><td>{todos or '—'}</td></tr>"
        )
    return (
        '<table class="instances"><thead><tr><th>instance</th><th>process</th><th>status</th>'
        "<th>business key</th><th>initiator</th><th>open todos (node → handlers)</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _border(state: State) -> str:
    return "dashed" if STYLES[state].dash else "solid"


def _legend() -> str:
    items = "".join(
        f'<span style="display:inline-block;margin-right:14px"><span style="display:'
        f"inline-block;width:18px;height:11px;border:2px {_border(s)} {STYLES[s].stroke};"
        f'background:{STYLES[s].fill};border-radius:3px;vertical-align:middle"></span> '
        f"{escape(text)}</span>"
        for s, text in LEGEND.items()
    )
    return f'<p class="sub legend">{items}</p>'


def _panel(panel: Panel) -> str:
    heads = "".join(f"<th>{escape(label)}</th>" for label, _ in panel.facts)
    cells = "".join(f"<td>{escape(value)}</td>" for _, value in panel.facts)
    facts = f"<tr>{heads}</tr><tr>{cells}</tr>"
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in panel.notes)
    todos = ""
    if panel.todos or panel.status != NOT_STARTED:
        todos = f"<h3>Open todos</h3>{_todo_table(panel.todos)}"
    pictures = "".join(
        f'<div class="diagram" title="{escape(p.title)}">{p.svg}</div>' for p in panel.pictures
    )
    return (
        f'<section id="{_anchor(panel.key)}" class="panel"><h2>{escape(panel.heading)} '
        f"{_status(panel.status)}</h2>"
        f'<table class="facts">{facts}</table>{notes}'
        f"{todos}{pictures}</section>"
    )


def render_page(panels: Sequence[Panel], *, title: str, subtitle: str = "") -> str:
    """The whole HTML document."""
    # One panel is the whole story; several get an overview table linking to each.
    overview = _summary(panels) if len(panels) > 1 else ""
    if not panels:
        overview = '<p class="sub">no instance</p>'
    body = "".join(_panel(p) for p in panels)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        + (f'<p class="sub">{escape(subtitle)}</p>' if subtitle else "")
        + f"{_legend()}{overview}{body}</body></html>\n"
    )
