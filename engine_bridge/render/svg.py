"""Draw a :class:`Diagram` as SVG, coloured by the state of each element.

Plain string building: every piece of text that comes from the BPMN file or the instance (names,
ids, handlers) goes through :func:`escape`, so a name like ``"><img onerror=…>`` is drawn as
those characters and never becomes markup. Colours and fonts are attributes on the elements (no
stylesheet, no external font, no script), so the file looks the same in a browser, an image
viewer and inline in an HTML page. Shapes follow the BPMN 2.0 notation in outline: events are
circles, activities rounded rectangles, gateways diamonds with their marker, pools and lanes
boxes with the name written up their left edge.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine_bridge.loader.bpmn_names import ACTIVITIES as _ACTIVITIES
from engine_bridge.render.diagram import Bounds, Diagram, Edge, Shape
from engine_bridge.render.states import STATES, NodeState, State

__all__ = ["LEGEND", "STYLES", "StateStyle", "escape", "render_svg", "text_width", "wrap"]

FONT = (
    "'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', "
    "'WenQuanYi Micro Hei', 'DejaVu Sans', Arial, sans-serif"
)
FONT_SIZE = 12.0
INK = "#202124"
MUTED = "#5f6368"
TAKEN = "#1e8e3e"


@dataclass(frozen=True)
class StateStyle:
    fill: str
    stroke: str
    width: float
    dash: str | None = None


STYLES: Mapping[State, StateStyle] = {
    "done": StateStyle("#e6f4ea", "#1e8e3e", 2.0),
    "waiting": StateStyle("#fff4ce", "#e37400", 3.0),
    "active": StateStyle("#e8f0fe", "#1a73e8", 2.0),
    "armed": StateStyle("#f3e8fd", "#9334e6", 2.0),
    "cancelled": StateStyle("#fce8e6", "#c5221f", 2.0, "6 3"),
    "not-reached": StateStyle("#ffffff", "#80868b", 1.5),
}
LEGEND: Mapping[State, str] = {
    "waiting": "waiting (handlers below)",
    "active": "in progress",
    "armed": "waiting for its timer, message or signal",
    "done": "done",
    "cancelled": "cancelled",
    "not-reached": "not reached",
}

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EVENT_LETTERS = {"conditional": "≡", "link": "→", "compensate": "«", "multiple": "*"}
_REACHED = frozenset({"done", "waiting", "active", "armed", "cancelled"})
_MAX_HANDLERS = 4


def escape(text: object) -> str:
    """Text safe inside an XML/HTML element or a double- or single-quoted attribute."""
    cleaned = _INVALID_XML.sub("", str(text))
    return (
        cleaned.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def text_width(text: str, size: float = FONT_SIZE) -> float:
    """Estimated width of ``text``: CJK characters are square, Latin about half as wide."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else size * 0.56 for c in text)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    word = ""
    for char in text:
        if char.isspace():
            if word:
                tokens.append(word)
            word = ""
            tokens.append(" ")
        elif unicodedata.east_asian_width(char) in "WF":
            if word:
                tokens.append(word)
            word = ""
            tokens.append(char)
        else:
            word += char
    if word:
        tokens.append(word)
    return tokens


def wrap(text: str, width: float, *, size: float = FONT_SIZE, max_lines: int = 4) -> list[str]:
    """Break ``text`` into lines no wider than ``width``: between words, or between any two CJK
    characters; a word too long for a line is cut. Past ``max_lines`` the last line ends in …"""
    lines: list[str] = []
    line = ""
    for token in _tokens(text):
        candidate = line + token
        if text_width(candidate.strip(), size) <= width or not line.strip():
            line = candidate
        else:
            lines.append(line.strip())
            line = token.strip()
        while text_width(line.strip(), size) > width and len(line.strip()) > 1:
            cut = len(line)
            while cut > 1 and text_width(line[:cut], size) > width:
                cut -= 1
            lines.append(line[:cut].strip())
            line = line[cut:]
    if line.strip():
        lines.append(line.strip())
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and text_width(last + "…", size) > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last + "…"]
    return lines


class _Svg:
    """An SVG document under construction (a list of already-escaped fragments)."""

    def __init__(self, prefix: str) -> None:
        self.parts: list[str] = []
        self.prefix = prefix

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def text(
        self,
        lines: Sequence[str],
        x: float,
        y: float,
        *,
        size: float = FONT_SIZE,
        anchor: str = "middle",
        fill: str = INK,
        weight: str = "normal",
        rotate: bool = False,
    ) -> None:
        """Lines of text whose block is vertically centred on ``y``."""
        if not lines:
            return
        step = size * 1.2
        top = y - step * (len(lines) - 1) / 2 + size * 0.35
        transform = f' transform="rotate(-90 {_n(x)} {_n(y)})"' if rotate else ""
        spans = "".join(
            f'<tspan x="{_n(x)}" y="{_n(top + i * step)}">{escape(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        self.add(
            f'<text font-size="{_n(size)}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{transform}>{spans}</text>'
        )


def _style_of(states: Mapping[str, NodeState] | None, element_id: str) -> tuple[State, StateStyle]:
    state: State = "not-reached"
    if states is not None and element_id in states:
        state = states[element_id].state
    return state, STYLES[state]


def _stroke(style: StateStyle, *, extra: float = 0.0, dash: str | None = None) -> str:
    pattern = dash or style.dash
    dashed = f' stroke-dasharray="{pattern}"' if pattern else ""
    return f'stroke="{style.stroke}" stroke-width="{_n(style.width + extra)}"{dashed}'


# --------------------------------------------------------------------------- shapes


def _event(svg: _Svg, shape: Shape, style: StateStyle) -> None:
    b = shape.bounds
    r = min(b.width, b.height) / 2
    cx, cy = b.cx, b.cy
    dash = None if shape.interrupting else "4 3"
    if shape.kind == "endEvent":
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" fill="{style.fill}" '
            f"{_stroke(style, extra=2.0, dash=dash)}/>"
        )
    elif shape.kind == "startEvent":
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" fill="{style.fill}" '
            f"{_stroke(style, dash=dash)}/>"
        )
    else:
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(r)}" fill="{style.fill}" '
            f"{_stroke(style, dash=dash)}/>"
        )
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(max(r - 3, 1))}" fill="none" '
            f'stroke="{style.stroke}" stroke-width="1"'
            + (' stroke-dasharray="4 3"' if dash else "")
            + "/>"
        )
    _event_marker(svg, shape, cx, cy, r * 0.55, style)


def _event_marker(
    svg: _Svg, shape: Shape, cx: float, cy: float, s: float, style: StateStyle
) -> None:
    ink = style.stroke
    fill = ink if shape.throwing else "none"
    kind = shape.event
    if kind is None:
        return
    if kind == "timer":
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(s)}" fill="#ffffff" stroke="{ink}" '
            f'stroke-width="1.5"/><path d="M{_n(cx)} {_n(cy)} L{_n(cx)} {_n(cy - s * 0.75)} '
            f'M{_n(cx)} {_n(cy)} L{_n(cx + s * 0.55)} {_n(cy)}" stroke="{ink}" '
            'stroke-width="1.5" fill="none"/>'
        )
    elif kind == "message":
        w, h = s * 1.6, s * 1.1
        x, y = cx - w / 2, cy - h / 2
        svg.add(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" fill="{fill}" '
            f'stroke="{ink}" stroke-width="1.2"/><path d="M{_n(x)} {_n(y)} L{_n(cx)} '
            f'{_n(cy + h * 0.1)} L{_n(x + w)} {_n(y)}" fill="none" '
            f'stroke="{"#ffffff" if shape.throwing else ink}" stroke-width="1.2"/>'
        )
    elif kind == "terminate":
        svg.add(f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(s)}" fill="{ink}"/>')
    elif kind == "signal":
        svg.add(
            f'<path d="M{_n(cx)} {_n(cy - s)} L{_n(cx + s)} {_n(cy + s * 0.75)} '
            f'L{_n(cx - s)} {_n(cy + s * 0.75)} Z" fill="{fill}" stroke="{ink}" '
            'stroke-width="1.2"/>'
        )
    elif kind == "error":
        svg.add(
            f'<path d="M{_n(cx - s)} {_n(cy + s)} L{_n(cx - s * 0.4)} {_n(cy - s)} '
            f"L{_n(cx + s * 0.2)} {_n(cy + s * 0.2)} L{_n(cx + s)} {_n(cy - s)} "
            f'L{_n(cx + s * 0.4)} {_n(cy + s)} L{_n(cx - s * 0.2)} {_n(cy - s * 0.2)} Z" '
            f'fill="{fill}" stroke="{ink}" stroke-width="1.2"/>'
        )
    elif kind == "escalation":
        svg.add(
            f'<path d="M{_n(cx)} {_n(cy - s)} L{_n(cx + s * 0.7)} {_n(cy + s)} L{_n(cx)} '
            f'{_n(cy + s * 0.3)} L{_n(cx - s * 0.7)} {_n(cy + s)} Z" fill="{fill}" '
            f'stroke="{ink}" stroke-width="1.2"/>'
        )
    elif kind == "cancel":
        svg.add(
            f'<path d="M{_n(cx - s)} {_n(cy - s)} L{_n(cx + s)} {_n(cy + s)} M{_n(cx + s)} '
            f'{_n(cy - s)} L{_n(cx - s)} {_n(cy + s)}" stroke="{ink}" stroke-width="2.5"/>'
        )
    else:  # conditional, link, compensate, multiple: a letter is enough to tell them apart
        letter = _EVENT_LETTERS.get(kind, "?")
        svg.text([letter], cx, cy, size=s * 1.8, fill=ink)


def _gateway(svg: _Svg, shape: Shape, style: StateStyle) -> None:
    b = shape.bounds
    cx, cy = b.cx, b.cy
    points = f"{_n(cx)},{_n(b.y)} {_n(b.right)},{_n(cy)} {_n(cx)},{_n(b.bottom)} {_n(b.x)},{_n(cy)}"
    svg.add(f'<polygon points="{points}" fill="{style.fill}" {_stroke(style)}/>')
    s = min(b.width, b.height) * 0.22
    ink = style.stroke
    if shape.kind == "exclusiveGateway":
        svg.add(
            f'<path d="M{_n(cx - s * 0.8)} {_n(cy - s)} L{_n(cx + s * 0.8)} {_n(cy + s)} '
            f'M{_n(cx + s * 0.8)} {_n(cy - s)} L{_n(cx - s * 0.8)} {_n(cy + s)}" '
            f'stroke="{ink}" stroke-width="3.5"/>'
        )
    elif shape.kind == "parallelGateway":
        svg.add(
            f'<path d="M{_n(cx)} {_n(cy - s * 1.2)} L{_n(cx)} {_n(cy + s * 1.2)} '
            f'M{_n(cx - s * 1.2)} {_n(cy)} L{_n(cx + s * 1.2)} {_n(cy)}" '
            f'stroke="{ink}" stroke-width="3.5"/>'
        )
    elif shape.kind == "inclusiveGateway":
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(s * 1.1)}" fill="none" '
            f'stroke="{ink}" stroke-width="2.5"/>'
        )
    elif shape.kind == "complexGateway":
        svg.add(
            f'<path d="M{_n(cx)} {_n(cy - s * 1.2)} L{_n(cx)} {_n(cy + s * 1.2)} '
            f"M{_n(cx - s * 1.2)} {_n(cy)} L{_n(cx + s * 1.2)} {_n(cy)} "
            f"M{_n(cx - s * 0.85)} {_n(cy - s * 0.85)} L{_n(cx + s * 0.85)} {_n(cy + s * 0.85)} "
            f'M{_n(cx + s * 0.85)} {_n(cy - s * 0.85)} L{_n(cx - s * 0.85)} {_n(cy + s * 0.85)}" '
            f'stroke="{ink}" stroke-width="3"/>'
        )
    elif shape.kind == "eventBasedGateway":
        svg.add(
            f'<circle cx="{_n(cx)}" cy="{_n(cy)}" r="{_n(s * 1.3)}" fill="none" '
            f'stroke="{ink}" stroke-width="1.2"/>'
        )
        pts = " ".join(
            f"{_n(cx + s * 0.8 * math.cos(a))},{_n(cy + s * 0.8 * math.sin(a))}"
            for a in (math.radians(-90 + 72 * i) for i in range(5))
        )
        svg.add(f'<polygon points="{pts}" fill="none" stroke="{ink}" stroke-width="1.2"/>')


def _task_icon(svg: _Svg, shape: Shape, ink: str) -> None:
    x, y = shape.bounds.x + 6, shape.bounds.y + 5
    if shape.kind == "userTask":
        svg.add(
            f'<circle cx="{_n(x + 7)}" cy="{_n(y + 5)}" r="3.5" fill="none" stroke="{ink}" '
            f'stroke-width="1.2"/><path d="M{_n(x + 1)} {_n(y + 15)} Q{_n(x + 7)} {_n(y + 6)} '
            f'{_n(x + 13)} {_n(y + 15)} Z" fill="none" stroke="{ink}" stroke-width="1.2"/>'
        )
    elif shape.kind == "scriptTask":
        svg.add(
            f'<rect x="{_n(x + 1)}" y="{_n(y)}" width="11" height="14" fill="none" '
            f'stroke="{ink}" stroke-width="1.1"/><path d="M{_n(x + 3)} {_n(y + 4)} h7 '
            f'M{_n(x + 3)} {_n(y + 7)} h7 M{_n(x + 3)} {_n(y + 10)} h7" stroke="{ink}"/>'
        )
    elif shape.kind == "serviceTask":
        svg.add(
            f'<circle cx="{_n(x + 7)}" cy="{_n(y + 7)}" r="5.5" fill="none" stroke="{ink}" '
            f'stroke-width="2.2" stroke-dasharray="2.2 1.6"/><circle cx="{_n(x + 7)}" '
            f'cy="{_n(y + 7)}" r="2" fill="none" stroke="{ink}"/>'
        )
    elif shape.kind in ("sendTask", "receiveTask"):
        fill = ink if shape.kind == "sendTask" else "none"
        svg.add(
            f'<rect x="{_n(x)}" y="{_n(y + 2)}" width="15" height="10" fill="{fill}" '
            f'stroke="{ink}"/><path d="M{_n(x)} {_n(y + 2)} L{_n(x + 7.5)} {_n(y + 8)} '
            f'L{_n(x + 15)} {_n(y + 2)}" fill="none" stroke="'
            f'{"#ffffff" if shape.kind == "sendTask" else ink}"/>'
        )
    elif shape.kind == "manualTask":  # a hand: palm and four fingers
        svg.add(
            f'<path d="M{_n(x + 2)} {_n(y + 14)} h9 a3 3 0 0 0 3 -3 v-2 M{_n(x + 2)} '
            f"{_n(y + 14)} v-6 l3 -2 M{_n(x + 5)} {_n(y + 6)} h9 M{_n(x + 6)} {_n(y + 9)} h8 "
            f'M{_n(x + 6)} {_n(y + 12)} h7" fill="none" stroke="{ink}" stroke-width="1.1"/>'
        )
    elif shape.kind == "businessRuleTask":
        svg.add(
            f'<rect x="{_n(x)}" y="{_n(y + 1)}" width="16" height="12" fill="none" '
            f'stroke="{ink}"/><path d="M{_n(x)} {_n(y + 5)} h16 M{_n(x + 5)} {_n(y + 1)} v12" '
            f'stroke="{ink}"/>'
        )


def _loop_marker(svg: _Svg, shape: Shape, ink: str, *, offset: float = 0.0) -> None:
    b = shape.bounds
    x, y = b.cx - 6 + offset, b.bottom - 16
    if shape.loop == "parallel":
        svg.add(
            f'<path d="M{_n(x + 1)} {_n(y)} v12 M{_n(x + 6)} {_n(y)} v12 M{_n(x + 11)} {_n(y)} '
            f'v12" stroke="{ink}" stroke-width="2"/>'
        )
    elif shape.loop == "sequential":
        svg.add(
            f'<path d="M{_n(x)} {_n(y + 1)} h12 M{_n(x)} {_n(y + 6)} h12 M{_n(x)} {_n(y + 11)} '
            f'h12" stroke="{ink}" stroke-width="2"/>'
        )
    elif shape.loop == "loop":
        svg.add(
            f'<path d="M{_n(x + 2)} {_n(y + 10)} A5 5 0 1 1 {_n(x + 10)} {_n(y + 10)}" '
            f'fill="none" stroke="{ink}" stroke-width="1.5"/>'
        )


def _activity(svg: _Svg, shape: Shape, style: StateStyle) -> None:
    b = shape.bounds
    extra = 2.0 if shape.kind == "callActivity" else 0.0
    dash = "2 3" if shape.event_subprocess else None
    fill = style.fill
    opacity = ' fill-opacity="0.45"' if shape.expanded else ""
    svg.add(
        f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
        f'rx="10" ry="10" fill="{fill}"{opacity} {_stroke(style, extra=extra, dash=dash)}/>'
    )
    if shape.kind == "transaction":
        svg.add(
            f'<rect x="{_n(b.x + 3)}" y="{_n(b.y + 3)}" width="{_n(max(b.width - 6, 0))}" '
            f'height="{_n(max(b.height - 6, 0))}" rx="8" ry="8" fill="none" '
            f'stroke="{style.stroke}" stroke-width="1"/>'
        )
    ink = style.stroke
    if shape.expanded:
        lines = wrap(shape.name, max(b.width - 16, 40), max_lines=2)
        svg.text(lines, b.x + 8, b.y + 10 + 7 * len(lines), anchor="start", weight="bold")
        return
    _task_icon(svg, shape, ink)
    collapsed = shape.kind in ("subProcess", "transaction", "adHocSubProcess") or (
        shape.kind == "callActivity"
    )
    offset = 0.0
    if collapsed:
        x, y = b.cx - 7, b.bottom - 16
        svg.add(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="14" height="14" fill="none" stroke="{ink}"/>'
            f'<path d="M{_n(x + 3)} {_n(y + 7)} h8 M{_n(x + 7)} {_n(y + 3)} v8" stroke="{ink}"/>'
        )
        offset = 18.0
    _loop_marker(svg, shape, ink, offset=offset)
    lines = wrap(shape.name, max(b.width - 12, 20), max_lines=max(int((b.height - 20) // 15), 1))
    svg.text(lines, b.cx, b.cy - (4 if shape.loop or collapsed else 0))


def _container(svg: _Svg, shape: Shape) -> None:
    b = shape.bounds
    fill = "#fafafa" if shape.kind == "participant" else "none"
    svg.add(
        f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
        f'fill="{fill}" stroke="{MUTED}" stroke-width="1.2"/>'
    )
    band = 30.0
    if shape.horizontal:
        if shape.kind == "participant":
            svg.add(
                f'<path d="M{_n(b.x + band)} {_n(b.y)} V{_n(b.bottom)}" stroke="{MUTED}" '
                'stroke-width="1.2"/>'
            )
        lines = wrap(shape.name, max(b.height - 10, 20), max_lines=2)
        svg.text(lines, b.x + band / 2, b.cy, rotate=True, weight="bold")
    else:
        if shape.kind == "participant":
            svg.add(
                f'<path d="M{_n(b.x)} {_n(b.y + band)} H{_n(b.right)}" stroke="{MUTED}" '
                'stroke-width="1.2"/>'
            )
        lines = wrap(shape.name, max(b.width - 10, 20), max_lines=2)
        svg.text(lines, b.cx, b.y + band / 2, weight="bold")


def _artifact(svg: _Svg, shape: Shape) -> None:
    b = shape.bounds
    if shape.kind == "textAnnotation":
        svg.add(
            f'<path d="M{_n(b.x + 10)} {_n(b.y)} H{_n(b.x)} V{_n(b.bottom)} H{_n(b.x + 10)}" '
            f'fill="none" stroke="{MUTED}"/>'
        )
        lines = wrap(shape.text, max(b.width - 8, 20), max_lines=max(int(b.height // 15), 1))
        svg.text(lines, b.x + 5, b.cy, anchor="start", fill=MUTED)
        return
    if shape.kind in ("dataObjectReference", "dataObject", "dataInput", "dataOutput"):
        fold = min(10.0, b.width / 3)
        svg.add(
            f'<path d="M{_n(b.x)} {_n(b.y)} H{_n(b.right - fold)} L{_n(b.right)} '
            f"{_n(b.y + fold)} V{_n(b.bottom)} H{_n(b.x)} Z M{_n(b.right - fold)} {_n(b.y)} "
            f'V{_n(b.y + fold)} H{_n(b.right)}" fill="#ffffff" stroke="{MUTED}"/>'
        )
    elif shape.kind == "dataStoreReference":
        ry = min(8.0, b.height / 5)
        svg.add(
            f'<path d="M{_n(b.x)} {_n(b.y + ry)} A{_n(b.width / 2)} {_n(ry)} 0 0 1 '
            f"{_n(b.right)} {_n(b.y + ry)} V{_n(b.bottom - ry)} A{_n(b.width / 2)} {_n(ry)} 0 "
            f"0 1 {_n(b.x)} {_n(b.bottom - ry)} Z M{_n(b.x)} {_n(b.y + ry)} "
            f'A{_n(b.width / 2)} {_n(ry)} 0 0 0 {_n(b.right)} {_n(b.y + ry)}" fill="#ffffff" '
            f'stroke="{MUTED}"/>'
        )
    elif shape.kind == "group":
        svg.add(
            f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
            f'rx="8" fill="none" stroke="{MUTED}" stroke-dasharray="8 4 2 4"/>'
        )
        return
    else:
        svg.add(
            f'<rect x="{_n(b.x)}" y="{_n(b.y)}" width="{_n(b.width)}" height="{_n(b.height)}" '
            f'fill="#ffffff" stroke="{MUTED}"/>'
        )
    _outside_label(svg, shape, fill=MUTED)


def _outside_label(svg: _Svg, shape: Shape, *, fill: str = INK) -> float:
    """The name under (or where the modeller put it) an event, gateway or data shape;
    returns the y below it."""
    if not shape.name:
        return shape.bounds.bottom
    box = shape.label
    if box is None or box.width < 10:
        width = max(shape.bounds.width * 2.5, 90.0)
        lines = wrap(shape.name, width, size=11)
        top = shape.bounds.bottom + 4
        box = Bounds(shape.bounds.cx - width / 2, top, width, len(lines) * 13.2)
    else:  # modellers measure with their own font: allow a little more than the box
        lines = wrap(shape.name, max(box.width + 20, 80.0), size=11)
    svg.text(lines, box.cx, box.y + len(lines) * 13.2 / 2, size=11, fill=fill)
    return max(box.bottom, box.y + len(lines) * 13.2)


def _people(node: NodeState) -> list[str]:
    lines: list[str] = []
    for label, names in (("handlers", node.handlers), ("groups", node.groups)):
        if not names:
            continue
        shown = [n if len(n) <= 24 else n[:23] + "…" for n in names[:_MAX_HANDLERS]]
        more = f" +{len(names) - _MAX_HANDLERS}" if len(names) > _MAX_HANDLERS else ""
        lines.append(f"{label}: {', '.join(shown)}{more}")
    return lines


def _handlers_note(svg: _Svg, shape: Shape, node: NodeState, below: float) -> None:
    lines = _people(node)
    if not lines:
        return
    style = STYLES["waiting"]
    width = max(text_width(line, 11) for line in lines) + 10
    height = len(lines) * 13.2 + 6
    x = shape.bounds.cx - width / 2
    svg.add(
        f'<rect x="{_n(x)}" y="{_n(below + 3)}" width="{_n(width)}" height="{_n(height)}" '
        f'rx="4" fill="#ffffff" stroke="{style.stroke}" stroke-width="1" class="eb-handlers"/>'
    )
    svg.text(lines, shape.bounds.cx, below + 3 + height / 2, size=11, fill="#b06000", weight="bold")


def _node(svg: _Svg, shape: Shape, states: Mapping[str, NodeState] | None) -> None:
    state, style = _style_of(states, shape.element_id)
    if shape.kind in ("participant", "lane"):
        svg.add(f'<g data-element-id="{escape(shape.element_id)}">')
        svg.add(f"<title>{escape(shape.name or shape.element_id)}</title>")
        _container(svg, shape)
        svg.add("</g>")
        return
    title = f"{shape.name} ({shape.element_id})" if shape.name else shape.element_id
    svg.add(
        f'<g class="eb-node" data-element-id="{escape(shape.element_id)}" '
        f'data-kind="{escape(shape.kind)}" data-state="{state}">'
    )
    svg.add(f"<title>{escape(title)}: {escape(LEGEND[state])}</title>")
    below = shape.bounds.bottom
    if shape.kind.endswith("Event"):
        _event(svg, shape, style)
        below = _outside_label(svg, shape)
    elif shape.kind.endswith("Gateway"):
        _gateway(svg, shape, style)
        below = _outside_label(svg, shape)
    elif shape.kind in _ACTIVITIES:
        _activity(svg, shape, style)
    else:
        _artifact(svg, shape)
    if states is not None and state == "waiting" and shape.element_id in states:
        _handlers_note(svg, shape, states[shape.element_id], below)
    svg.add("</g>")


# --------------------------------------------------------------------------- edges


def _edge(svg: _Svg, edge: Edge, states: Mapping[str, NodeState] | None) -> None:
    taken = False
    if states is not None and edge.kind == "sequenceFlow" and edge.source and edge.target:
        source = states.get(edge.source)
        target = states.get(edge.target)
        taken = (
            source is not None
            and source.state == "done"
            and target is not None
            and target.state in _REACHED
        )
    points = " ".join(f"{_n(x)},{_n(y)}" for x, y in edge.points)
    p = svg.prefix
    if edge.kind == "sequenceFlow":
        colour = TAKEN if taken else MUTED
        marker = f"{p}-arrow-taken" if taken else f"{p}-arrow"
        start = f' marker-start="url(#{p}-diamond)"' if edge.conditional else ""
        attrs = (
            f'stroke="{colour}" stroke-width="{"2.5" if taken else "1.5"}" '
            f'marker-end="url(#{marker})"{start}'
        )
    elif edge.kind == "messageFlow":
        attrs = (
            f'stroke="{MUTED}" stroke-width="1.5" stroke-dasharray="6 4" '
            f'marker-start="url(#{p}-circle)" marker-end="url(#{p}-open)"'
        )
    elif edge.kind in ("dataInputAssociation", "dataOutputAssociation"):
        attrs = f'stroke="{MUTED}" stroke-width="1.2" stroke-dasharray="2 3" '
        attrs += f'marker-end="url(#{p}-open)"'
    else:
        attrs = f'stroke="{MUTED}" stroke-width="1.2" stroke-dasharray="2 3"'
    svg.add(
        f'<g class="eb-edge" data-element-id="{escape(edge.element_id)}" '
        f'data-taken="{"true" if taken else "false"}">'
    )
    svg.add(f'<polyline points="{points}" fill="none" stroke-linejoin="round" {attrs}/>')
    if edge.default:
        (x1, y1), (x2, y2) = edge.points[0], edge.points[1]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        mx, my = x1 + ux * 10, y1 + uy * 10
        svg.add(
            f'<path d="M{_n(mx - uy * 5 - ux * 3)} {_n(my + ux * 5 - uy * 3)} '
            f'L{_n(mx + uy * 5 + ux * 3)} {_n(my - ux * 5 + uy * 3)}" stroke="{MUTED}" '
            'stroke-width="1.5"/>'
        )
    if edge.name:
        if edge.label is not None and edge.label.width >= 10:
            box = edge.label
            lines = wrap(edge.name, box.width + 8, size=11)
            svg.text(lines, box.cx, box.cy, size=11, fill=MUTED)
        else:
            mid = len(edge.points) // 2
            (x1, y1), (x2, y2) = edge.points[mid - 1], edge.points[mid]
            lines = wrap(edge.name, 90, size=11)
            svg.text(lines, (x1 + x2) / 2, (y1 + y2) / 2 - 8, size=11, fill=MUTED)
    svg.add("</g>")


def _defs(prefix: str) -> str:
    def arrow(name: str, colour: str) -> str:
        return (
            f'<marker id="{prefix}-{name}" viewBox="0 0 10 10" refX="10" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0 0 L10 5 L0 10 Z" fill="{colour}"/></marker>'
        )

    return (
        "<defs>"
        + arrow("arrow", MUTED)
        + arrow("arrow-taken", TAKEN)
        + f'<marker id="{prefix}-open" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        f'<path d="M0 0 L10 5 L0 10" fill="none" stroke="{MUTED}"/></marker>'
        f'<marker id="{prefix}-circle" viewBox="0 0 10 10" refX="5" refY="5" '
        'markerWidth="7" markerHeight="7">'
        f'<circle cx="5" cy="5" r="4" fill="#ffffff" stroke="{MUTED}"/></marker>'
        f'<marker id="{prefix}-diamond" viewBox="0 0 12 12" refX="0" refY="6" '
        'markerWidth="10" markerHeight="10" orient="auto">'
        f'<path d="M0 6 L6 1 L12 6 L6 11 Z" fill="#ffffff" stroke="{MUTED}"/></marker>'
        "</defs>"
    )


# --------------------------------------------------------------------------- the document


def _legend(svg: _Svg, x: float, y: float) -> float:
    """The colour key in one row starting at (x, y); returns its width."""
    cursor = x
    for state in STATES:
        style = STYLES[state]
        dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
        svg.add(
            f'<g class="eb-legend-item" data-state="{state}"><rect x="{_n(cursor)}" '
            f'y="{_n(y)}" width="26" height="16" rx="4" fill="{style.fill}" '
            f'stroke="{style.stroke}" stroke-width="{_n(style.width)}"{dash}/>'
        )
        svg.text([LEGEND[state]], cursor + 32, y + 8, anchor="start", fill=INK)
        svg.add("</g>")
        cursor += 40 + text_width(LEGEND[state]) + 18
    svg.add(
        f'<g class="eb-legend-item" data-state="taken"><path d="M{_n(cursor)} {_n(y + 8)} '
        f'h24" stroke="{TAKEN}" stroke-width="2.5" marker-end="url(#{svg.prefix}-arrow-taken)"/>'
    )
    svg.text(["flow taken"], cursor + 32, y + 8, anchor="start")
    svg.add("</g>")
    return cursor + 32 + text_width("flow taken") - x


def _note_bottom(diagram: Diagram, states: Mapping[str, NodeState] | None) -> float:
    """Lowest y of the handler notes (they hang below their shapes)."""
    bottom = diagram.bounds().bottom
    if states is None:
        return bottom
    for shape in diagram.shapes:
        node = states.get(shape.element_id)
        if node is not None and node.state == "waiting":
            lines = len(_people(node))
            label = shape.label.bottom if shape.label is not None else shape.bounds.bottom + 14
            below = shape.bounds.bottom if shape.kind in _ACTIVITIES else label
            bottom = max(bottom, below + 12 + lines * 13.2)
    return bottom


def render_svg(
    diagram: Diagram,
    states: Mapping[str, NodeState] | None = None,
    *,
    title: str = "",
    subtitle: str = "",
    id_prefix: str = "eb",
    standalone: bool = True,
) -> str:
    """The diagram as an SVG document. ``states`` maps element ids to their state (elements
    missing from it, or everything when it is None, are "not reached"). ``id_prefix`` keeps
    marker ids unique when several SVGs share an HTML page; ``standalone`` adds the XML
    declaration a ``.svg`` file should start with."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "", id_prefix) or "eb"
    box = diagram.bounds()
    margin = 24.0
    header = 52.0 if title or subtitle else 0.0
    legend_height = 44.0
    left = box.x - margin
    top = box.y - margin - header
    bottom = _note_bottom(diagram, states) + margin
    svg = _Svg(prefix)
    body_start = len(svg.parts)
    if title:
        svg.text([title], left + margin, top + 20, size=16, anchor="start", weight="bold")
    if subtitle:
        svg.text([subtitle], left + margin, top + 40, size=12, anchor="start", fill=MUTED)
    containers = [s for s in diagram.shapes if s.kind in ("participant", "lane") or s.expanded]
    others = [s for s in diagram.shapes if s not in containers]
    for shape in containers:
        _node(svg, shape, states)
    for edge in diagram.edges:
        _edge(svg, edge, states)
    for shape in others:
        _node(svg, shape, states)
    legend_width = _legend(svg, left + margin, bottom + 8)
    width = max(box.width + 2 * margin, legend_width + 2 * margin, 320.0)
    height = bottom + legend_height - top
    body = "".join(svg.parts[body_start:])
    label = escape(title or diagram.name)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="eb-diagram" '
        f'viewBox="{_n(left)} {_n(top)} {_n(width)} {_n(height)}" width="{_n(width)}" '
        f'height="{_n(height)}" role="img" aria-label="{label}" '
        f'data-process-id="{escape(diagram.process_id)}" font-family="{escape(FONT)}">'
        f"<title>{label}</title>{_defs(prefix)}"
        f'<rect x="{_n(left)}" y="{_n(top)}" width="{_n(width)}" height="{_n(height)}" '
        'fill="#ffffff"/>'
    )
    document = head + body + "</svg>\n"
    if standalone:
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + document
    return document
