"""Builders for the small BPMN documents the loader tests write (named uniquely so test
modules can import it directly)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)

# The corpus lives in ../shared beside the checkout (as in CI), never inside the project.
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"

WriteBpmn = Callable[..., Path]


def definitions(*processes: str) -> str:
    body = "\n".join(processes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<bpmn:definitions {NS} id="defs" targetNamespace="http://example.org/t">\n'
        f"{body}\n</bpmn:definitions>\n"
    )


def process(pid: str, body: str, *, name: str = "", executable: bool = True) -> str:
    flag = "true" if executable else "false"
    label = f' name="{name}"' if name else ""
    return f'<bpmn:process id="{pid}"{label} isExecutable="{flag}">{body}\n</bpmn:process>'


def user_task(
    tid: str, props: dict[str, str] | None = None, *, name: str = "", extra: str = ""
) -> str:
    items = "".join(
        f'<spiffworkflow:property name="{k}" value="{v}"/>' for k, v in (props or {}).items()
    )
    ext = (
        f"<bpmn:extensionElements><spiffworkflow:properties>{items}"
        "</spiffworkflow:properties></bpmn:extensionElements>"
        if props
        else ""
    )
    label = f' name="{name}"' if name else ""
    return f'\n    <bpmn:userTask id="{tid}"{label}>{ext}{extra}</bpmn:userTask>'


def chain(*nodes: tuple[str, str]) -> str:
    """start -> nodes... -> end, given (id, xml) pairs."""
    parts = ['\n    <bpmn:startEvent id="start"/>']
    previous = "start"
    for index, (node_id, xml) in enumerate(nodes):
        parts.append(xml)
        flow = f'id="flow{index}" sourceRef="{previous}" targetRef="{node_id}"'
        parts.append(f"\n    <bpmn:sequenceFlow {flow}/>")
        previous = node_id
    parts.append('\n    <bpmn:endEvent id="end"/>')
    parts.append(f'\n    <bpmn:sequenceFlow id="flow_end" sourceRef="{previous}" targetRef="end"/>')
    return "".join(parts)
