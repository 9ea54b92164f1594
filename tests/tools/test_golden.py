"""Golden transcripts: every sample scenario's centre calls are checked in under tests/golden/
and compared on every run; a change to a sample's BPMN that changes its calls fails with a
diff naming the field."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.testing.golden import (
    Golden,
    GoldenMismatch,
    field_differences,
    render_golden,
)
from engine_bridge.testing.replay import record

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))
GOLDEN_DIR = ROOT / "tests" / "golden"  # read by the plugin's ``golden`` fixture


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_sample_scenario_matches_its_golden_transcript(
    scenario: Path, scenario_runner: Any, golden: Golden
) -> None:
    """The calls each sample scenario sends are exactly the checked-in ones."""
    transcript = scenario_runner(scenario, WORKFLOWS)
    assert transcript, "a scenario always sends at least the first todo"
    golden.check(scenario.stem, transcript)


def test_every_golden_file_belongs_to_a_sample_scenario() -> None:
    """No stale golden file outlives its scenario, and every scenario has one."""
    assert {p.stem for p in GOLDEN_DIR.glob("*.jsonl")} == {s.stem for s in SCENARIOS}


def test_golden_files_hold_no_run_specific_values() -> None:
    """Ids are numbered and times blanked, so the files are the same on every run."""
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|[0-9a-f]{32}")
    for path in GOLDEN_DIR.glob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        assert not uuid.search(text), path
        for line in text.splitlines():
            entry = json.loads(line)
            assert entry["response"]["timestamp"] == "<time>"
            for item in entry["request"]:
                assert item.get("handleTime", "<time>") == "<time>"


def _copy_workflows(tmp_path: Path) -> Path:
    target = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_changing_a_handler_in_the_bpmn_fails_the_golden_check_naming_the_field(
    tmp_path: Path,
) -> None:
    """A second counselor on the first todo shows up as the ``handlers`` field of call 1."""
    workflows = _copy_workflows(tmp_path)
    _edit(
        workflows / "leave_approval.bpmn",
        '<spiffworkflow:property name="handlers" value="counselor"/>',
        '<spiffworkflow:property name="handlers" value="[counselor, \'T009\']"/>',
    )
    scenario = WORKFLOWS / "scenarios" / "leave_approval_dean_reject.json"
    transcript = record(workflows, scenario).transcript
    with pytest.raises(GoldenMismatch) as caught:
        Golden(GOLDEN_DIR).check("leave_approval_dean_reject", transcript)
    message = str(caught.value)
    assert (
        'call 1 (addTransaction) request[0].handlers: golden "T001", this run "T001,T009"'
        in message
    )
    assert "--update-golden" in message
    assert "leave_approval_dean_reject.jsonl" in message
    assert '-request:   "handlers": "T001",' in message  # the unified diff, one field a line


def test_changing_a_gateway_condition_fails_the_golden_check_naming_the_status(
    tmp_path: Path,
) -> None:
    """A lower dean threshold turns the counselor's ``end`` into ``next`` + the dean's todo."""
    workflows = _copy_workflows(tmp_path)
    _edit(workflows / "leave_approval.bpmn", "days &gt; 3", "days &gt; 1")
    scenario = json.loads(
        (WORKFLOWS / "scenarios" / "leave_approval_short.json").read_text(encoding="utf-8")
    )
    scenario["steps"] = [s for s in scenario["steps"] if "expect" not in s]
    transcript = record(workflows, scenario).transcript
    with pytest.raises(GoldenMismatch) as caught:
        Golden(GOLDEN_DIR).check("leave_approval_short", transcript)
    message = str(caught.value)
    assert 'call 2 (taskHandle) request[0].status: golden "end", this run "next"' in message
    assert "call 2 (taskHandle) request[0].next: only in this run: [dean_review→D001]" in message


def test_a_missing_golden_file_fails_and_says_how_to_create_it(tmp_path: Path) -> None:
    """A forgotten file never passes silently."""
    with pytest.raises(GoldenMismatch, match="--update-golden"):
        Golden(tmp_path).check("absent", [{"endpoint": "/x", "request": [], "response": {}}])


def test_update_writes_only_files_that_change(tmp_path: Path) -> None:
    """``--update-golden`` rewrites a changed file, leaves an equal one alone, and says which."""
    entries = [{"endpoint": "/x", "request": [{"taskId": "abc"}], "response": {"code": 0}}]
    updating = Golden(tmp_path, update=True)
    updating.check("one", entries)
    updating.check("one", entries)
    assert updating.rewritten == [tmp_path / "one.jsonl"]
    Golden(tmp_path).check("one", entries)


def _call(task: str, time: str, next_nodes: list[str]) -> dict[str, Any]:
    return {
        "endpoint": "/apis/ttc/v1/transaction/poa/taskHandle",
        "request": [
            {
                "status": "next",
                "handleTime": time,
                "previousTaskId": task,
                "next": [
                    {"taskId": f"{task}-{n}", "nodeId": n, "handlers": "X"} for n in next_nodes
                ],
            }
        ],
        "response": {"code": 0, "timestamp": 1, "data": {"errorIds": []}},
    }


def test_rendering_is_stable_across_ids_times_key_order_and_parallel_branch_order() -> None:
    """Two runs that differ only in random ids, clock, dict order and the order parallel
    todos were listed in render to the same golden text."""
    one = _call("aaaa", "2026-01-01 16:00:00", ["finance", "academic"])
    two = _call("bbbb", "2026-03-05 09:30:00", ["academic", "finance"])
    two["request"][0] = dict(reversed(list(two["request"][0].items())))
    assert render_golden([one]) == render_golden([two])


def test_differences_list_calls_present_on_one_side_only() -> None:
    """An extra call is named with its endpoint, status and created todos."""
    lines = field_differences([], [_call("a", "t", ["dean_review"])])
    assert lines == ["call 1: only in this run: taskHandle status=next on a next[dean_review→X]"]
