"""A path that stops at a failed service task is reported as stopped, not finished: by a
scenario's ``finished`` expectation, by ``engine-bridge run`` and by ``engine-bridge explain``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine_bridge.errors import ScenarioError
from engine_bridge.explain import explain
from engine_bridge.testing.scenario import Scenario, run_scenario

from .kit import LEAVE, opened, write

CLI = str(Path(sys.executable).with_name("engine-bridge"))
APPLY = {"complete": {"node": "apply", "handler": "T001"}}


def _scenario(*steps: dict[str, object]) -> dict[str, object]:
    return {"process": "leave", "start": {"initiator": "2023001"}, "steps": list(steps)}


def test_an_instance_stopped_at_an_incident_is_not_finished(tmp_path: Path) -> None:
    with opened(tmp_path, {"leave.bpmn": LEAVE}) as harness:
        bridge = harness.bridge()  # no handler for the notify service
        run = run_scenario(bridge, Scenario.model_validate(_scenario(APPLY)))
        assert run.status == "incident" and not run.finished
        with pytest.raises(ScenarioError, match=r"finished: expected True, got False .*incident"):
            run_scenario(
                bridge, Scenario.model_validate(_scenario(APPLY, {"expect": {"finished": True}}))
            )


def test_run_and_explain_say_where_the_path_stopped(tmp_path: Path) -> None:
    folder = tmp_path / "wf"
    write(folder, "leave.bpmn", LEAVE)
    scenario = tmp_path / "s.json"
    scenario.write_text(json.dumps(_scenario(APPLY)), encoding="utf-8")
    ran = subprocess.run(
        [CLI, "run", str(folder), "--scenario", str(scenario)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "stopped at an incident at service task 'notify'" in ran.stdout
    assert "Traceback" not in ran.stderr

    result = explain(folder, "leave", scenario=scenario)
    assert not result.finished
    assert result.stopped is not None and "service task 'notify'" in result.stopped
