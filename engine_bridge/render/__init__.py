"""Pictures of processes and instances: SVG diagrams coloured by state, and an HTML page.

``engine-bridge show`` is the command; these are the pieces it is built from, for services
that want to serve the pictures themselves::

    from engine_bridge.render import instance_panel, render_instance_svg, render_page

    svg = render_instance_svg(bridge, instance_id)          # one instance's diagram
    page = render_page([instance_panel(bridge, i) for i in ids], title="Instances")

The diagram is read from the BPMN file's BPMNDI (``diagram``), each element's state from the
stored workflow (``states``), and drawn without any dependency or external resource (``svg``,
``html``). Names, ids and handlers are untrusted text and are always escaped.
"""

from __future__ import annotations

from engine_bridge.render.diagram import Bounds, Diagram, Edge, Shape, read_diagram
from engine_bridge.render.html import Panel, Picture, TodoRow, render_page
from engine_bridge.render.instance import (
    file_panel,
    instance_panel,
    render_file_svg,
    render_instance_svg,
)
from engine_bridge.render.states import STATES, NodeState, State, element_states, instance_states
from engine_bridge.render.svg import render_svg

__all__ = [
    "STATES",
    "Bounds",
    "Diagram",
    "Edge",
    "NodeState",
    "Panel",
    "Picture",
    "Shape",
    "State",
    "TodoRow",
    "element_states",
    "file_panel",
    "instance_panel",
    "instance_states",
    "read_diagram",
    "render_file_svg",
    "render_instance_svg",
    "render_page",
    "render_svg",
]
