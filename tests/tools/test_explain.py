"""``explain`` prints, without any network, exactly the calls a real run of the same path
sends; without a scenario it follows the default path and stops clearly where data is missing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.errors import ScenarioError
from engine_bridge.explain import explain, render_text
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.golden import comparable
from engine_bridge.testing.scenario import Scenario, load_scenario, run_scenario
from engine_bridge.testing.transcript import TranscriptRecorder

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))
CLI = [str(Path(sys.executable).with_name("engine-bridge"))]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def _sent(transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transcript requests as single calls in golden form, as explain shows them."""
    return comparable(
        {"endpoint": e["endpoint"].rsplit("/poa/", 1)[1], "item": item}
        for e in transcript
        for item in e["request"]
    )


def _explained(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"endpoint": c["endpoint"], "item": c["item"]} for s in result["steps"] for c in s["calls"]
    ]


def _real_run(scenario: Path | Scenario, tmp_path: Path) -> list[dict[str, Any]]:
    """The scenario through a Bridge talking to the fake centre over a loopback socket."""
    clock = FakeClock()
    center = FakeCenter(clock=clock)
    recorder = TranscriptRecorder()
    spec = load_scenario(scenario) if isinstance(scenario, Path) else scenario
    with center.serve() as server:
        bridge = Bridge.open(
            WORKFLOWS,
            database=f"sqlite:///{tmp_path / 'real.db'}",
            center=server.url,
            client_id="test-client",
            client_secret="test-secret",
            clock=clock,
            exchange_hook=recorder,
        )
        try:
            run_scenario(bridge, spec, advance=clock.advance)
        finally:
            bridge.close()
    return recorder.entries


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_explained_calls_are_the_calls_a_real_run_sends(scenario: Path, tmp_path: Path) -> None:
    """Call for call, field for field (ids and times normalised), for every sample."""
    result = explain(WORKFLOWS, scenario=scenario).to_json()
    assert result["stopped"] is None
    assert _explained(result) == _sent(_real_run(scenario, tmp_path))
    assert all(c["verdict"] == "accepted" for s in result["steps"] for c in s["calls"])


@pytest.mark.parametrize("name", ["timeout_escalation_fired", "vote_two_of_three_veto"])
def test_cli_explain_prints_the_calls_engine_bridge_run_sends(name: str, tmp_path: Path) -> None:
    """The two commands, run for real, agree on every call."""
    scenario = WORKFLOWS / "scenarios" / f"{name}.json"
    transcript = tmp_path / "t.jsonl"
    ran = _cli("run", str(WORKFLOWS), "--scenario", str(scenario), "--transcript", str(transcript))
    assert ran.returncode == 0, ran.stderr
    shown = _cli("explain", str(WORKFLOWS), "--scenario", str(scenario), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    sent = [json.loads(line) for line in transcript.read_text(encoding="utf-8").splitlines()]
    assert _explained(json.loads(shown.stdout)) == _sent(sent)


def test_default_path_completes_each_first_todo_as_its_first_handler(tmp_path: Path) -> None:
    """For the or-sign: T001 takes the shared todo, then the initiator confirms; the calls are
    those of the equivalent scenario run for real."""
    result = explain(WORKFLOWS, "or_sign", data={"title": "教室借用"}, initiator="2023001")
    assert result.stopped is None and result.finished
    assert [s.description for s in result.steps] == [
        "2023001 starts or_sign",
        "T001 completes review",
        "2023001 completes confirm",
    ]
    equivalent = {
        "process": "or_sign",
        "start": {"initiator": "2023001", "data": {"title": "教室借用"}},
        "steps": [
            {"complete": {"node": "review", "handler": "T001"}},
            {"complete": {"node": "confirm", "handler": "2023001"}},
        ],
    }
    real = _real_run(Scenario.model_validate(equivalent), tmp_path)
    assert _explained(result.to_json()) == _sent(real)


def test_text_shows_who_does_what_endpoint_status_and_next_todos() -> None:
    """One block per step: the person, the endpoint, the status and the created todos (with
    the title the centre shows when a taskName template makes it)."""
    text = render_text(
        explain(WORKFLOWS, scenario=WORKFLOWS / "scenarios" / "leave_approval_long.json")
    )
    assert "step 2: T001 completes counselor_review" in text
    assert "taskHandle  status=next  T001 handles T2" in text
    assert 'next: T3 dean_review 学院审批 "张三的请假申请（5天）" → D001' in text
    assert "taskHandle  status=end  D001 handles T3" in text
    assert "The process ends; nothing is left open at the centre. 3 centre calls." in text


def test_default_path_stops_where_a_condition_needs_data_and_suggests_a_scenario() -> None:
    """The counselor's decision needs ``approved``: explain names the step and the way out."""
    data = {"applicant_name": "张三", "reason": "r", "counselor": "T001", "dean": "D001", "days": 5}
    result = explain(WORKFLOWS, "leave_approval", data=data)
    assert result.stopped is not None
    assert result.stopped.startswith("step 1 (T001 completes counselor_review) cannot run")
    assert "approved" in result.stopped
    assert "--scenario" in result.stopped
    assert [s.index for s in result.steps] == [0]
    assert result.open == (("counselor_review", ("T001",)),)


def test_default_path_without_start_data_says_to_give_data() -> None:
    result = explain(WORKFLOWS, "leave_approval")
    assert result.stopped is not None
    assert "the start failed" in result.stopped and "counselor" in result.stopped
    assert "--data" in result.stopped
    assert result.steps == ()


def test_an_unknown_process_is_named_without_advice_about_data() -> None:
    result = explain(WORKFLOWS, "leave_aproval")
    assert result.stopped is not None
    assert "'leave_aproval'" in result.stopped and "leave_approval" in result.stopped
    assert "--data" not in result.stopped


def test_a_group_only_todo_is_completed_by_a_member_of_its_group() -> None:
    """The Camunda model's dean review has only a candidate group: explain completes it as
    ``member:<group>`` (start data that approves lets the default path get there)."""
    result = explain(WORKFLOWS, "camunda_leave", data={"days": 5, "approved": True})
    assert [s.description for s in result.steps] == [
        "initiator starts camunda_leave",
        "T001 completes counselor_review",
        "member:dean-office completes dean_review",
    ]
    assert result.finished and result.stopped is None
    assert "next: T3 dean_review 学院审批 → group dean-office" in render_text(result)


def test_a_scenario_for_another_process_is_refused() -> None:
    with pytest.raises(ScenarioError, match="runs process 'or_sign', not 'leave_approval'"):
        explain(WORKFLOWS, "leave_approval", scenario=WORKFLOWS / "scenarios" / "or_sign.json")


def test_cli_default_path_exit_codes_and_errors() -> None:
    """0 when the path runs through, 1 when it stops, 2 for a wrong command line."""
    done = _cli("explain", str(WORKFLOWS), "--process", "or_sign", "--data", '{"title": "x"}')
    assert done.returncode == 0, done.stderr
    assert "or_sign: default path" in done.stdout
    stopped = _cli("explain", str(WORKFLOWS), "--process", "leave_approval")
    assert stopped.returncode == 1
    assert "STOPPED: the start failed" in stopped.stdout
    wrong = _cli("explain", str(WORKFLOWS), "--process", "or_sign", "--data", "[1]")
    assert wrong.returncode == 2
    assert "--data must be a JSON object" in wrong.stderr
    neither = _cli("explain", str(WORKFLOWS))  # 13 processes: which one?
    assert neither.returncode == 2
    assert "name one with --process ID" in neither.stderr
    assert "executable processes (camunda_leave, countersign_all, " in neither.stderr
    other = WORKFLOWS / "scenarios" / "leave_approval_long.json"
    mismatch = _cli("explain", str(WORKFLOWS), "--process", "or_sign", "--scenario", str(other))
    assert mismatch.returncode == 2
    assert "runs process 'leave_approval', not 'or_sign'" in mismatch.stderr


def test_cli_without_process_explains_the_only_executable_process() -> None:
    """A file holding one executable process needs no --process: its default path runs."""
    alone = _cli("explain", str(WORKFLOWS / "or_sign.bpmn"), "--data", '{"title": "x"}')
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.startswith("or_sign: default path")
    data = ("--data", '{"title": "x"}')
    named = _cli("explain", str(WORKFLOWS / "or_sign.bpmn"), "--process", "or_sign", *data)
    assert named.returncode == 0 and named.stdout == alone.stdout


def test_explain_without_a_process_takes_the_only_one_or_lists_them() -> None:
    result = explain(WORKFLOWS / "or_sign.bpmn", data={"title": "x"})
    assert result.process == "or_sign" and result.finished
    with pytest.raises(ScenarioError, match=r"13 executable processes \(camunda_leave, "):
        explain(WORKFLOWS)


def test_calls_the_centre_refuses_are_marked_with_its_answer() -> None:
    """Against a centre registered under another app id, the first call is refused with the
    centre's code and message, and the calls queued behind it are shown as not delivered."""
    result = explain(
        WORKFLOWS,
        scenario=WORKFLOWS / "scenarios" / "or_sign.json",
        center=FakeCenter(app_id="campus-oa"),
        app_id="engine-bridge",
    )
    verdicts = [c.verdict for s in result.steps for c in s.calls]
    assert verdicts[0].startswith("rejected: 2001 appId is illegal")
    assert all(v.startswith("not delivered") for v in verdicts[1:]) and len(verdicts) == 3
    assert "!! rejected: 2001" in render_text(result)


def test_a_centre_registered_under_its_own_app_id_is_sent_under_it() -> None:
    """The sandbox sends under the app id the centre was registered with: what is explained
    is the process, not the sandbox's configuration."""
    result = explain(
        WORKFLOWS,
        scenario=WORKFLOWS / "scenarios" / "or_sign.json",
        center=FakeCenter(app_id="campus-oa"),
    )
    assert [c.verdict for s in result.steps for c in s.calls] == ["accepted"] * 3


def test_the_command_defaults_to_the_library_initiator() -> None:
    """The CLI keeps its own copy of the default (to import lightly); they must agree."""
    from engine_bridge import explain as library
    from engine_bridge.cli import explain as command

    assert command.DEFAULT_INITIATOR == library.DEFAULT_INITIATOR


def test_a_refused_call_in_explain_is_not_logged_as_a_dead_letter_to_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The refusal is in the explanation; advice to retry an outbox row of a temporary
    database that is gone would only mislead."""
    with caplog.at_level(logging.WARNING):
        result = explain(
            WORKFLOWS,
            scenario=WORKFLOWS / "scenarios" / "or_sign.json",
            center=FakeCenter(app_id="campus-oa"),
            app_id="engine-bridge",
        )
    assert result.steps[0].calls[0].verdict.startswith("rejected")
    assert not [r for r in caplog.records if "dead letter" in r.getMessage()]
