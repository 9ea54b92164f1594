"""History export and replay: a history recorded from a real run replays with no divergence
against the unchanged workflows, and a deliberately changed process is caught at the right
step, with a readable reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import InputError, UnknownInstanceError
from engine_bridge.history import export_history, format_duration, history_to_scenario
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.replay import replay
from engine_bridge.testing.scenario import Scenario, load_scenario, parse_duration, run_scenario

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))
CLI = [str(Path(sys.executable).with_name("engine-bridge"))]


@dataclass
class Recorded:
    database: str
    instance_id: str
    bridge: Bridge


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Any]:
    """Runs a sample scenario the way a service would: a Bridge on a SQLite file, talking to
    the fake centre over a real loopback socket, with a clock that moves between steps."""
    clock = FakeClock()
    center = FakeCenter(clock=clock)
    opened: list[Bridge] = []

    def run(name: str, workflows: Path = WORKFLOWS) -> Recorded:
        database = f"sqlite:///{tmp_path / (name + '.db')}"
        bridge = Bridge.open(
            workflows,
            database=database,
            center=server.url,
            client_id="test-client",
            client_secret="test-secret",
            clock=clock,
        )
        opened.append(bridge)
        result = run_scenario(
            bridge, load_scenario(WORKFLOWS / "scenarios" / f"{name}.json"), advance=clock.advance
        )
        return Recorded(database, result.instance_id, bridge)

    with center.serve() as server:
        yield run
    for bridge in opened:
        bridge.close()


def _changed(tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "changed"
    shutil.copytree(WORKFLOWS, target)
    path = target / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return target


# ---------------------------------------------------------------------- export


def test_export_writes_start_actions_and_what_happened(live: Any) -> None:
    """Completions name node, handler, data and opinion; each is followed by an expect with
    the status, next nodes and the normalised calls it sent."""
    run = live("leave_approval_long")
    doc = export_history(run.bridge.store, run.instance_id)
    assert doc["process"] == "leave_approval"
    assert doc["start"]["initiator"] == "2023001"
    assert doc["start"]["data"]["days"] == 5
    kinds = [next(iter(s)) for s in doc["steps"]]
    assert kinds == ["expect", "complete", "expect", "complete", "expect"]
    assert doc["steps"][1]["complete"] == {
        "node": "counselor_review",
        "handler": "T001",
        "data": {"approved": True},
        "opinion": "同意",
    }
    after_counselor = doc["steps"][2]["expect"]
    assert after_counselor["status"] == "next"
    assert after_counselor["next_nodes"] == ["dean_review"]
    assert [c["endpoint"] for c in after_counselor["calls"]] == ["taskHandle"]
    assert after_counselor["calls"][0]["item"]["next"][0]["handlers"] == "D001"
    assert doc["steps"][4]["expect"]["finished"] is True
    assert run.instance_id not in json.dumps(doc["steps"]), "calls are normalised"
    Scenario.model_validate(doc)  # the export is a valid scenario


def test_ticks_become_tick_steps_advanced_by_the_recorded_time(live: Any) -> None:
    """The timer that fired after 49 hours is a PT49H tick followed by its withdraw call."""
    run = live("timeout_escalation_fired")
    doc = export_history(run.bridge.store, run.instance_id)
    steps = doc["steps"]
    assert steps[1] == {"tick": {"advance": "PT49H"}}
    assert [c["endpoint"] for c in steps[2]["expect"]["calls"]] == ["taskWithdraw"]
    assert "complete" in steps[3]


def test_time_before_a_completion_moves_the_clock_without_a_tick(live: Any) -> None:
    """A completion an hour after the start is preceded by a PT1H step that only moves the
    clock, so a replayed clock stands where the real one stood, and a timer that fell due
    meanwhile fires within the completion, as it did."""
    run = live("timeout_escalation_on_time")
    steps = export_history(run.bridge.store, run.instance_id)["steps"]
    assert steps[1:3] == [
        {"tick": {"advance": "PT1H", "fire": False}},
        {"complete": {"node": "review", "handler": "T001", "data": {"approved": True}}},
    ]


OVERDUE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://x">
  <bpmn:process id="overdue" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:parallelGateway id="fork"/>
    <bpmn:intermediateCatchEvent id="later"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="a" camunda:assignee="A1"/><bpmn:userTask id="remind" camunda:assignee="R1"/>
    <bpmn:userTask id="u" camunda:assignee="U1"/>
    <bpmn:endEvent id="e1"/><bpmn:endEvent id="e2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="later"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="a"/>
    <bpmn:sequenceFlow id="f4" sourceRef="later" targetRef="remind"/>
    <bpmn:sequenceFlow id="f5" sourceRef="a" targetRef="u"/>
    <bpmn:sequenceFlow id="f6" sourceRef="remind" targetRef="e1"/>
    <bpmn:sequenceFlow id="f7" sourceRef="u" targetRef="e2"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_timer_that_fired_within_a_completion_replays_the_same(tmp_path: Path) -> None:
    """Two hours pass with no tick; the completion then fires the overdue timer as well (its
    calls hold both). The export moves the clock without a tick, so the replay does alike."""
    (tmp_path / "wf").mkdir()
    (tmp_path / "wf" / "overdue.bpmn").write_text(OVERDUE, encoding="utf-8")
    clock = FakeClock()
    with Bridge.open(
        tmp_path / "wf",
        database=f"sqlite:///{tmp_path / 'b.db'}",
        center=FakeCenter(clock=clock).transport(),
        clock=clock,
    ) as bridge:
        inst = bridge.start("overdue", initiator="x")
        clock.advance(timedelta(hours=2))
        done = bridge.complete(inst.todos[0].task_id, handler="A1")
        assert sorted(done.next_nodes) == ["remind", "u"]
        doc = export_history(bridge.store, inst.id)
    assert {"tick": {"advance": "PT2H", "fire": False}} in doc["steps"]
    result = replay(doc, tmp_path / "wf", source="overdue")
    assert result.same, "\n".join(result.lines())


def test_cancel_is_exported_with_who_and_why(live: Any) -> None:
    """The business cancel names who cancelled and their opinion; the terminate is its call."""
    run = live("leave_approval_cancel")
    steps = export_history(run.bridge.store, run.instance_id)["steps"]
    assert steps[1] == {"cancel": {"by": "2023001", "opinion": "不再需要请假"}}
    assert steps[2]["expect"]["finished"] is True
    assert [c["endpoint"] for c in steps[2]["expect"]["calls"]] == ["taskTerminate"]


def test_history_without_call_counts_exports_without_calls(live: Any) -> None:
    """Entries recorded without call counts are not guessed at: expects keep status and
    next nodes only, and the description says so."""
    run = live("leave_approval_long")
    entries = [
        replace(e, payload={k: v for k, v in e.payload.items() if k != "calls"})
        for e in run.bridge.store.history(run.instance_id)
    ]
    doc = history_to_scenario(entries, [], instance_id=run.instance_id)
    assert all("calls" not in s.get("expect", {}) for s in doc["steps"])
    assert doc["steps"][1]["expect"]["status"] == "next"
    assert "status and next nodes only" in doc["description"]


def test_an_entry_a_scenario_cannot_express_is_refused_by_name(live: Any) -> None:
    """Export never silently drops a step: an unknown kind is named in the error."""
    run = live("leave_approval_long")
    entries = run.bridge.store.history(run.instance_id)
    odd = [*entries[:2], replace(entries[2], kind="retry")]
    with pytest.raises(InputError, match="'retry'"):
        history_to_scenario(odd, None, instance_id=run.instance_id)


def test_exporting_an_unknown_instance_says_so(live: Any) -> None:
    run = live("leave_approval_short")
    with pytest.raises(UnknownInstanceError, match="no-such-id"):
        export_history(run.bridge.store, "no-such-id")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(hours=49), "PT49H"),
        (timedelta(hours=3, minutes=5, seconds=1.5), "PT3H5M1.5S"),
        (timedelta(microseconds=1), "PT0.000001S"),
        (timedelta(seconds=-3), "PT0S"),
    ],
)
def test_format_duration_writes_what_parse_duration_reads(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(text) == max(delta, timedelta(0))


# ---------------------------------------------------------------------- replay


@pytest.mark.parametrize("name", [s.stem for s in SCENARIOS])
def test_every_sample_history_replays_the_same_against_unchanged_workflows(
    live: Any, name: str
) -> None:
    """Recorded from a real run, replayed in a sandbox: no step diverges."""
    run = live(name)
    doc = export_history(run.bridge.store, run.instance_id)
    result = replay(doc, WORKFLOWS, source=name)
    assert result.same, "\n".join(result.lines())
    assert result.steps_compared == 1 + sum(1 for s in doc["steps"] if "expect" not in s)


def test_a_history_recorded_under_a_production_app_id_replays_the_same(tmp_path: Path) -> None:
    """The app id names the deployment that recorded the history, not what the process did."""
    clock = FakeClock()
    center = FakeCenter(clock=clock, app_id="REAL-APP")
    with Bridge.open(
        WORKFLOWS,
        database=f"sqlite:///{tmp_path / 'prod.db'}",
        center=center.transport(),
        app_id="REAL-APP",
        clock=clock,
    ) as bridge:
        result = run_scenario(
            bridge, load_scenario(WORKFLOWS / "scenarios" / "leave_approval_long.json")
        )
        doc = export_history(bridge.store, result.instance_id)
    assert center.open_todos() == {} and bridge.store.outbox(status="dead") == []
    replayed = replay(doc, WORKFLOWS, source="prod")
    assert replayed.same, "\n".join(replayed.lines())


def test_a_changed_dean_threshold_diverges_at_the_counselor_step(live: Any, tmp_path: Path) -> None:
    """With the dean needed only above 5 days, the counselor's approval of a 5-day leave ends
    the process: step 2 now sends ``end`` where ``next`` + the dean's todo was recorded."""
    run = live("leave_approval_long")
    doc = export_history(run.bridge.store, run.instance_id)
    changed = _changed(tmp_path, "leave_approval.bpmn", "days &gt; 3", "days &gt; 5")
    result = replay(doc, changed, source="leave.json")
    assert not result.same
    d = result.divergence
    assert d is not None
    assert (d.step, d.action, d.kind) == (2, "T001 completes counselor_review", "calls")
    assert 'call 1 (taskHandle) item.status: recorded "next", replay "end"' in d.details
    assert "call 1 (taskHandle) item.next: only in recorded: [dean_review→D001]" in d.details
    assert result.lines()[0] == (
        "leave.json: DIVERGED at step 2 (T001 completes counselor_review): the centre calls differ"
    )


def test_a_changed_handler_diverges_naming_the_handlers_field(live: Any, tmp_path: Path) -> None:
    """A new dean shows up in the todo the counselor's approval creates."""
    run = live("leave_approval_long")
    doc = export_history(run.bridge.store, run.instance_id)
    changed = _changed(
        tmp_path,
        "leave_approval.bpmn",
        '<spiffworkflow:property name="handlers" value="dean"/>',
        '<spiffworkflow:property name="handlers" value="\'D009\'"/>',
    )
    d = replay(doc, changed).divergence
    assert d is not None
    assert d.step == 2
    assert d.details == (
        'call 1 (taskHandle) item.next[0].handlers: recorded "D001", replay "D009"',
    )


def test_a_handler_no_longer_allowed_is_reported_as_cannot_continue(
    live: Any, tmp_path: Path
) -> None:
    """Comparing by status only (no calls recorded), the dean's completion by D001 is the
    step that can no longer be done, and the reason names the allowed handler."""
    run = live("leave_approval_long")
    doc = export_history(run.bridge.store, run.instance_id)
    for step in doc["steps"]:
        step.get("expect", {}).pop("calls", None)
    changed = _changed(
        tmp_path,
        "leave_approval.bpmn",
        '<spiffworkflow:property name="handlers" value="dean"/>',
        '<spiffworkflow:property name="handlers" value="\'D009\'"/>',
    )
    d = replay(doc, changed).divergence
    assert d is not None
    assert (d.step, d.action, d.kind) == (4, "D001 completes dean_review", "cannot_continue")
    assert "'D001' is not a handler" in d.message
    assert "D009" in d.message


def test_without_recorded_calls_a_changed_status_is_the_expectation_that_broke(
    live: Any, tmp_path: Path
) -> None:
    """A history holding statuses only reports the action whose recorded status changed."""
    run = live("leave_approval_long")
    doc = export_history(run.bridge.store, run.instance_id)
    for step in doc["steps"]:
        step.get("expect", {}).pop("calls", None)
    changed = _changed(tmp_path, "leave_approval.bpmn", "days &gt; 3", "days &gt; 5")
    d = replay(doc, changed).divergence
    assert d is not None
    assert (d.step, d.kind) == (2, "expectation")
    assert "status: expected 'next', got 'end'" in d.message


def test_a_process_missing_from_the_new_files_cannot_even_start(live: Any, tmp_path: Path) -> None:
    run = live("or_sign")
    doc = export_history(run.bridge.store, run.instance_id)
    only_leave = tmp_path / "only"
    only_leave.mkdir()
    shutil.copy(WORKFLOWS / "leave_approval.bpmn", only_leave)
    d = replay(doc, only_leave).divergence
    assert d is not None
    assert (d.step, d.kind) == (0, "cannot_continue")
    assert "or_sign" in d.message


def test_a_timer_moved_later_diverges_at_the_tick(live: Any, tmp_path: Path) -> None:
    """With the escalation after 72 hours, the recorded tick at 49 hours fires nothing."""
    run = live("timeout_escalation_fired")
    doc = export_history(run.bridge.store, run.instance_id)
    changed = _changed(tmp_path, "timeout_escalation.bpmn", "PT48H", "PT72H")
    d = replay(doc, changed).divergence
    assert d is not None
    assert (d.step, d.action) == (2, "time passes (PT49H)")
    assert d.details[0].startswith("call 1: only in recorded: taskWithdraw status=next by system")


# ---------------------------------------------------------------------- the commands


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_export_then_replay_same_and_diverged(live: Any, tmp_path: Path) -> None:
    """``history export`` writes the file; ``replay`` exits 0 when all are the same and 1 with
    the step and field when one diverged."""
    run = live("leave_approval_long")
    history = tmp_path / "leave.json"
    exported = _cli(
        "history", "export", run.instance_id, "--database", run.database, "-o", str(history)
    )
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {history}" in exported.stdout
    assert load_scenario(history).process == "leave_approval"

    same = _cli("replay", str(history), "--workflows", str(WORKFLOWS))
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"{history}: same (3 steps compared)" in same.stdout

    changed = _changed(tmp_path, "leave_approval.bpmn", "days &gt; 3", "days &gt; 5")
    diverged = _cli("replay", str(history), str(history), "--workflows", str(changed))
    assert diverged.returncode == 1
    assert f"{history}: DIVERGED at step 2 (T001 completes counselor_review)" in diverged.stdout
    assert 'item.status: recorded "next", replay "end"' in diverged.stdout
    assert "2 replayed: 0 same, 2 diverged" in diverged.stdout

    as_json = _cli("replay", str(history), "--workflows", str(changed), "--format", "json")
    report = json.loads(as_json.stdout)
    assert report["same"] is False
    assert report["histories"][0]["divergence"]["step"] == 2


def test_cli_history_export_to_stdout_and_show(live: Any) -> None:
    run = live("leave_approval_reject")
    exported = _cli("history", "export", run.instance_id, "--database", run.database)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["process"] == "leave_approval"
    shown = _cli("history", "show", run.instance_id, "--database", run.database)
    assert shown.returncode == 0, shown.stderr
    assert "T001 completes counselor_review" in shown.stdout
    assert "→ next" in shown.stdout


def test_messages_are_exported_as_message_steps_and_shown(live: Any) -> None:
    run = live("venue_booking_paid")
    doc = export_history(run.bridge.store, run.instance_id)
    (message,) = [s["message"] for s in doc["steps"] if "message" in s]
    assert message == {
        "name": "payment_received",
        "data": {"receipt": "R-20261210-01", "amount": 200},
    }
    after = doc["steps"][doc["steps"].index({"message": message}) + 1]["expect"]
    assert after["next_nodes"] == ["issue_permit"] and len(after["calls"]) == 1
    shown = _cli("history", "show", run.instance_id, "--database", run.database)
    assert shown.returncode == 0, shown.stderr
    assert (
        'message payment_received arrives with {"amount": 200, "receipt": "R-20261210-01"} '
        "→ opens issue_permit" in shown.stdout
    )


def test_export_help_names_every_step_kind_export_writes(live: Any) -> None:
    """The help lists each action step export writes: message steps included."""
    run = live("venue_booking_paid")
    kinds = {k for s in export_history(run.bridge.store, run.instance_id)["steps"] for k in s}
    assert "message" in kinds
    shown = _cli("history", "export", "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "complete, message, tick or cancel step per action" in text
    assert all(kind in text for kind in ("start", "complete", "message", "tick", "cancel"))


def test_cli_reports_unknown_instances_and_unreadable_histories(live: Any, tmp_path: Path) -> None:
    run = live("leave_approval_short")
    missing = _cli("history", "export", "nope", "--database", run.database)
    assert missing.returncode == 1
    assert "no process instance with id 'nope'" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    unreadable = _cli("replay", str(bad), "--workflows", str(WORKFLOWS))
    assert unreadable.returncode == 2
    assert "bad.json:1: not valid JSON" in unreadable.stderr
