"""Pictures of processes and instances: BPMNDI geometry, states from the stored workflow, SVG
and HTML that are well formed, escaped and self-contained, and the ``show`` command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from lxml import html as lxml_html

from engine_bridge.bridge import Bridge
from engine_bridge.errors import BpmnError
from engine_bridge.loader.xml_safety import parse_bpmn
from engine_bridge.render import (
    NodeState,
    file_panel,
    instance_panel,
    read_diagram,
    render_instance_svg,
    render_page,
    render_svg,
)
from engine_bridge.render.diagram import diagram_process_ids
from engine_bridge.render.svg import escape, wrap
from engine_bridge.testing import FakeCenter

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
CORPUS = ROOT.parent / "shared" / "corpus"
SVG_NS = "http://www.w3.org/2000/svg"
LEAVE = {"applicant_name": "张三", "days": 5, "reason": "回家", "counselor": "T001", "dean": "D001"}
SVG_TAGS = {
    "svg",
    "title",
    "defs",
    "marker",
    "path",
    "rect",
    "circle",
    "polygon",
    "polyline",
    "text",
    "tspan",
    "g",
}


def diagram(name: str, process_id: str | None = None) -> Any:
    path = WORKFLOWS / name
    return read_diagram(parse_bpmn(path.read_bytes(), str(path)), process_id, file=str(path))


def parse_svg(text: str) -> Any:
    return etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False))


def node_states(svg: Any) -> dict[str, str]:
    return {
        g.get("data-element-id"): g.get("data-state")
        for g in svg.iter(f"{{{SVG_NS}}}g")
        if g.get("class") == "eb-node"
    }


def taken(svg: Any) -> dict[str, bool]:
    return {
        g.get("data-element-id"): g.get("data-taken") == "true"
        for g in svg.iter(f"{{{SVG_NS}}}g")
        if g.get("class") == "eb-edge"
    }


def text_of(svg: Any, element_id: str) -> str:
    group = next(g for g in svg.iter(f"{{{SVG_NS}}}g") if g.get("data-element-id") == element_id)
    return "".join(group.itertext())


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    with Bridge.open(
        WORKFLOWS, database=f"sqlite:///{tmp_path / 'show.db'}", center=FakeCenter().transport()
    ) as opened:
        yield opened


# --------------------------------------------------------------------------- geometry


def test_diagram_reads_shapes_edges_and_markers() -> None:
    """Every element of leave_approval is drawn where the file says, with its kind."""
    d = diagram("leave_approval.bpmn")
    kinds = {s.element_id: s.kind for s in d.shapes}
    assert kinds["counselor_review"] == "userTask"
    assert kinds["days_check"] == "exclusiveGateway"
    assert kinds["end_rejected"] == "endEvent"
    dean = d.shape("dean_review")
    assert dean is not None and (dean.bounds.x, dean.bounds.y, dean.bounds.width) == (730, 160, 100)
    edges = {e.element_id: e for e in d.edges}
    assert len(edges) == 10 and len(d.shapes) == 9
    assert edges["flow_short_leave"].default and not edges["flow_long_leave"].default
    assert edges["flow_short_leave"].points[0] == (620, 175)
    assert d.name == "请假审批"


def test_diagram_of_subprocess_timer_and_multi_instance() -> None:
    """Expanded subprocesses, boundary timers and multi-instance markers are recognised."""
    sub = diagram("subprocess_and_call.bpmn")
    prepare = sub.shape("prepare")
    assert prepare is not None and prepare.expanded
    assert [s.element_id for s in sub.shapes].index("prepare") < [
        s.element_id for s in sub.shapes
    ].index("fill_form")
    timer = diagram("timeout_escalation.bpmn").shape("review_timeout")
    assert timer is not None and timer.event == "timer" and timer.kind == "boundaryEvent"
    sign = diagram("countersign_all.bpmn").shape("countersign")
    assert sign is not None and sign.loop == "parallel"
    seq = diagram("sequential_signing.bpmn")
    assert any(s.loop == "sequential" for s in seq.shapes)


def test_file_without_bpmndi_is_refused_with_the_file_named(tmp_path: Path) -> None:
    """No diagram, or an unknown process: a BpmnError naming the file and what to do."""
    path = Path(__file__).parent / "lint_cases" / "unreachable.bpmn"
    root = parse_bpmn(path.read_bytes(), str(path))
    with pytest.raises(BpmnError, match="no diagram") as no_di:
        read_diagram(root, "unreachable", file=str(path))
    assert str(path) in no_di.value.message
    leave = WORKFLOWS / "leave_approval.bpmn"
    with pytest.raises(BpmnError, match="leave_approval"):
        read_diagram(parse_bpmn(leave.read_bytes(), str(leave)), "nope", file=str(leave))


def test_collapsed_subprocess_planes_are_drawn_below_their_process() -> None:
    """bpmn-js draws a collapsed subprocess's content on a plane of its own: each is drawn
    under the process's plane, captioned, so the tasks an instance waits on inside show; a
    file whose only plane is a subprocess's draws that one."""
    path = CORPUS / "bpmn-js-examples__nested-subprocesses.bpmn"
    diagram = read_diagram(parse_bpmn(path.read_bytes(), str(path)), "rootProcess")
    check_items = diagram.shape("sid-9E3BA75C-29DD-4DAC-8283-8FDE4E9A6724")
    inner_card = diagram.shape("sid-29B8F97B-1A0D-4280-A62D-5093316C484B")
    assert check_items is not None and inner_card is not None
    captions = [s for s in diagram.shapes if s.element_id.endswith("#plane")]
    assert [c.text for c in captions][:1] == ["Order Products: inside the subprocess"]
    payment = diagram.shape("sid-D0CDA908-DDCE-4E82-88D0-F1A919B8AE8B")  # on the main plane
    assert payment is not None and captions[0].bounds.y > payment.bounds.bottom
    assert check_items.bounds.y > captions[0].bounds.bottom
    ids = [s.element_id for s in diagram.shapes]
    assert len(ids) == len(set(ids))  # no element drawn twice
    alone = CORPUS / "bpmn-js__process-missing-bpmndiagram.bpmn"
    root = parse_bpmn(alone.read_bytes(), str(alone))
    assert diagram_process_ids(root) == ["PROCESS"]
    assert read_diagram(root, "PROCESS").shapes


def test_every_corpus_diagram_renders_as_well_formed_svg() -> None:
    """Third-party diagrams (pools, lanes, every event type) render without error."""
    rendered = 0
    for path in sorted(CORPUS.glob("*.bpmn")):
        try:
            root = parse_bpmn(path.read_bytes(), str(path))
        except BpmnError:
            continue  # deliberately broken files: the loader's tests cover them
        for pid in diagram_process_ids(root):
            svg = parse_svg(render_svg(read_diagram(root, pid, file=str(path))))
            assert {etree.QName(e).localname for e in svg.iter() if isinstance(e.tag, str)} <= (
                SVG_TAGS
            )
            rendered += 1
    assert rendered >= 60


# --------------------------------------------------------------------------- escaping


def test_markup_in_names_ids_and_handlers_is_text() -> None:
    """HTML in the corpus's xss file and in names/handlers renders as text, never as markup."""
    path = CORPUS / "camunda-modeler__xss.bpmn"
    d = read_diagram(parse_bpmn(path.read_bytes(), str(path)), file=str(path))
    text = render_svg(d, {'"><': NodeState("waiting", ("<img onerror='x'>",))})
    svg = parse_svg(text)
    assert {etree.QName(e).localname for e in svg.iter() if isinstance(e.tag, str)} <= SVG_TAGS
    assert node_states(svg)['"><'] == "waiting"
    assert "handlers: <img onerror='x'>" in text_of(svg, '"><')
    assert "<img" not in text
    page = render_page([file_panel(path)], title='<script>alert("t")</script>')
    tree = lxml_html.fromstring(page)
    assert not tree.xpath("//script | //img | //iframe | //object")
    assert '<script>alert("t")</script>' in tree.findtext(".//h1")


def test_escape_covers_quotes_and_drops_control_characters() -> None:
    """All five XML specials are escaped; characters XML cannot carry are dropped."""
    assert escape("a<b>&\"'\x00\x1b") == "a&lt;b&gt;&amp;&quot;&#39;"


def test_wrap_breaks_cjk_anywhere_and_latin_between_words() -> None:
    """Chinese names wrap between characters, words stay whole, long text ends in …"""
    assert wrap("辅导员审批意见汇总", 48) == ["辅导员审", "批意见汇", "总"]
    assert wrap("Review the leave request", 110) == ["Review the leave", "request"]
    assert wrap("一二三四五六七八九十" * 3, 24, max_lines=2) == ["一二", "三…"]


# --------------------------------------------------------------------------- instance states


def test_waiting_instance_shows_path_waiting_node_and_handlers(bridge: Bridge) -> None:
    """After the counselor approves a 5-day leave: the path so far is done, the dean's review
    waits with the dean as handler, the rejection branch is not reached."""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    bridge.complete(inst.todos[0].task_id, handler="T001", data={"approved": True})
    svg = parse_svg(render_instance_svg(bridge, inst.id))
    states = node_states(svg)
    assert {k: states[k] for k in ("start", "counselor_review", "days_check")} == {
        "start": "done",
        "counselor_review": "done",
        "days_check": "done",
    }
    assert states["dean_review"] == "waiting"
    assert states["notify_applicant"] == states["end_approved"] == "not-reached"
    assert "handlers: D001" in text_of(svg, "dean_review")
    assert "handlers" not in text_of(svg, "counselor_review")
    flows = taken(svg)
    assert flows["flow_counselor_ok"] and flows["flow_long_leave"]
    assert not flows["flow_counselor_no"] and not flows["flow_dean_done"]


def test_cancelled_and_finished_instances(bridge: Bridge) -> None:
    """A cancelled instance shows the todo it withdrew as cancelled; a finished one ends done."""
    first = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    bridge.cancel(first.id, by="2023001")
    assert node_states(parse_svg(render_instance_svg(bridge, first.id)))["counselor_review"] == (
        "cancelled"
    )
    second = bridge.start("leave_approval", initiator="2023001", data={**LEAVE, "days": 2})
    bridge.complete(second.todos[0].task_id, handler="T001", data={"approved": True})
    states = node_states(parse_svg(render_instance_svg(bridge, second.id)))
    assert states["end_approved"] == "done" and states["dean_review"] == "not-reached"


def test_countersign_shows_the_signers_still_open(bridge: Bridge) -> None:
    """One todo for all signers: after T002 signs, T001 and T003 are written under it."""
    data = {"title": "文件", "signers": ["T001", "T002", "T003"], "archivist": "A001"}
    inst = bridge.start("countersign_all", initiator="2023001", data=data)
    bridge.complete(inst.todos[0].task_id, handler="T002", data={"signature": "ok"})
    svg = parse_svg(render_instance_svg(bridge, inst.id))
    assert node_states(svg)["countersign"] == "waiting"
    assert "handlers: T001, T003" in text_of(svg, "countersign")


def test_timer_that_never_fired_is_not_reached(bridge: Bridge) -> None:
    """A boundary timer cancelled by an on-time completion is 'not reached', not cancelled."""
    data = {"title": "实验室", "reviewer": "R001", "supervisor": "S001"}
    inst = bridge.start("timeout_escalation", initiator="2023001", data=data)
    bridge.complete(inst.todos[0].task_id, handler="R001", data={"approved": True})
    states = node_states(parse_svg(render_instance_svg(bridge, inst.id)))
    assert states["review"] == "done" and states["review_timeout"] == "not-reached"


def test_events_waiting_for_their_trigger_are_armed_not_in_progress(bridge: Bridge) -> None:
    """A message boundary on a waiting task, then an event-based gateway's message and timer
    catches: each waits for its event, drawn as "armed" with its own legend entry."""
    data = {"venue": "体育馆", "date": "2026-12-10", "manager": "M001"}
    inst = bridge.start("venue_booking", initiator="2023001", data=data)
    svg = render_instance_svg(bridge, inst.id)
    states = node_states(parse_svg(svg))
    assert states["manager_review"] == "waiting" and states["withdrawn"] == "armed"
    assert "waiting for its timer, message or signal" in svg
    bridge.complete(inst.todos[0].task_id, handler="M001")
    states = node_states(parse_svg(render_instance_svg(bridge, inst.id)))
    assert states["paid"] == "armed" and states["unpaid"] == "armed"
    assert states["withdrawn"] == "not-reached" and states["manager_review"] == "done"
    bridge.cancel(inst.id, by="2023001")
    states = node_states(parse_svg(render_instance_svg(bridge, inst.id)))
    assert "armed" not in states.values()


def test_subprocess_and_called_process_are_drawn(bridge: Bridge) -> None:
    """Inside an embedded subprocess the waiting task is shown, the container in progress;
    once the call activity runs, the called process is drawn as a second picture."""
    data = {"item": "显微镜", "budget": 3, "procurement_officer": "P001", "approver": "A001"}
    inst = bridge.start("subprocess_and_call", initiator="2023001", data=data)
    states = node_states(parse_svg(render_instance_svg(bridge, inst.id)))
    assert states["prepare"] == "active" and states["fill_form"] == "waiting"
    assert len(instance_panel(bridge, inst.id).pictures) == 1
    bridge.complete(inst.todos[0].task_id, handler="2023001", data={"items": ["a"]})
    panel = instance_panel(bridge, inst.id)
    assert len(panel.pictures) == 2
    called = parse_svg(panel.pictures[1].svg)
    assert called.get("data-process-id") == "procurement_check"
    assert "waiting" in node_states(called).values()
    assert [t.node_id for t in panel.todos] == ["compliance_review"]


def test_page_is_self_contained(bridge: Bridge) -> None:
    """The HTML page has a CSP, inline SVG, no script and no external URL."""
    inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    page = render_page([instance_panel(bridge, inst.id)], title="实例")
    tree = lxml_html.fromstring(page)
    assert tree.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0].startswith(
        "default-src 'none'"
    )
    assert not tree.xpath("//script | //link | //img")
    urls = tree.xpath("//@src | //@href | //@*[local-name()='href']")
    assert all(str(u).startswith("#") for u in urls), urls
    assert len(tree.xpath("//svg")) == 1
    assert inst.todos[0].task_id in page


# --------------------------------------------------------------------------- the command


def show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine_bridge.cli", "show", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def test_show_file_draws_everything_not_reached(tmp_path: Path) -> None:
    """`show FILE.bpmn --svg` renders the file with no instance."""
    out = tmp_path / "leave.svg"
    result = show(str(WORKFLOWS / "leave_approval.bpmn"), "--svg", str(out))
    assert result.returncode == 0, result.stderr
    states = node_states(parse_svg(out.read_text(encoding="utf-8")))
    assert len(states) == 9 and set(states.values()) == {"not-reached"}


def test_show_instance_and_all_instances(bridge: Bridge, tmp_path: Path) -> None:
    """`show INSTANCE --svg --html` and `show --html` (every instance) against the database."""
    url = f"sqlite:///{tmp_path / 'show.db'}"
    waiting = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    other = bridge.start("or_sign", initiator="2023002", data={"title": "借用"})
    svg, page = tmp_path / "one.svg", tmp_path / "one.html"
    common = ["--database", url, "--workflows", str(WORKFLOWS)]
    result = show(waiting.id, *common, "--svg", str(svg), "--html", str(page))
    assert result.returncode == 0, result.stderr
    assert node_states(parse_svg(svg.read_text(encoding="utf-8")))["counselor_review"] == "waiting"
    assert "handlers: T001" in page.read_text(encoding="utf-8")
    index = tmp_path / "index.html"
    assert show(*common, "--html", str(index)).returncode == 0
    tree = lxml_html.fromstring(index.read_text(encoding="utf-8"))
    assert len(tree.xpath("//section[@class='panel']")) == 2
    links = tree.xpath("//table[@class='instances']//a/@href")
    assert links == [f"#instance-{waiting.id}", f"#instance-{other.id}"]


def test_show_errors_say_what_to_do(tmp_path: Path) -> None:
    """Missing output, unknown instance and a file without a diagram fail clearly."""
    leave = str(WORKFLOWS / "leave_approval.bpmn")
    usage = show(leave)
    assert usage.returncode == 2 and "--svg" in usage.stdout
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Bridge.open(WORKFLOWS, database=url).close()
    unknown = show("nope", "--database", url, "--svg", str(tmp_path / "x.svg"))
    assert unknown.returncode == 1 and "no process instance with id 'nope'" in unknown.stderr
    no_di = Path(__file__).parent / "lint_cases" / "unreachable.bpmn"
    refused = show(str(no_di), "--svg", str(tmp_path / "y.svg"))
    assert refused.returncode == 1 and "no diagram (BPMNDI)" in refused.stderr
    assert not (tmp_path / "y.svg").exists()


@pytest.mark.postgres
def test_show_reads_instances_from_postgresql(tmp_path: Path, pg_schema_url: str) -> None:
    """The page is drawn from PostgreSQL as from SQLite (a fresh schema, dropped after)."""
    url = pg_schema_url
    with Bridge.open(WORKFLOWS, database=url, center=FakeCenter().transport()) as bridge:
        inst = bridge.start("leave_approval", initiator="2023001", data=LEAVE)
    page = tmp_path / "pg.html"
    result = show("--database", url, "--workflows", str(WORKFLOWS), "--html", str(page))
    assert result.returncode == 0, result.stderr
    text_ = page.read_text(encoding="utf-8")
    assert inst.id in text_ and 'data-state="waiting"' in text_
