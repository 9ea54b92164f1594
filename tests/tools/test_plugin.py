"""The pytest plugin, as a user meets it: their own test files, run by pytest in-process
(``pytester``), using the fixtures the ``engine_bridge`` entry point registers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Imported here so pytester's in-process runs find them loaded: it unloads modules first
# imported inside a run, and SQLAlchemy's compiled parts do not survive a second import.
import engine_bridge.testing.replay  # noqa: F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SCENARIO = WORKFLOWS / "scenarios" / "leave_approval_long.json"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: the sample workflows named in the ini file, one golden test."""
    pytester.makeini(f"[pytest]\nengine_bridge_workflows = {WORKFLOWS}\n")
    pytester.makepyfile(
        test_leave=f"""
        def test_leave(scenario_runner, golden, fake_center):
            transcript = scenario_runner({str(SCENARIO)!r})
            assert transcript.recording.finished
            assert fake_center.open_todos() == {{}} or not any(fake_center.open_todos().values())
            golden.check("leave_long", transcript)
        """
    )
    return pytester


def test_update_golden_writes_the_file_and_lists_it(project: pytest.Pytester) -> None:
    """``--update-golden`` creates the transcript next to the test and says so at the end."""
    result = project.runpytest_inprocess("--update-golden")
    result.assert_outcomes(passed=1)
    written = project.path / "golden" / "leave_long.jsonl"
    assert written.exists()
    result.stdout.fnmatch_lines(["*engine_bridge: rewrote 1 golden file(s)*", f"*{written}*"])
    calls = [json.loads(line) for line in written.read_text(encoding="utf-8").splitlines()]
    assert [c["endpoint"].rsplit("/", 1)[1] for c in calls] == [
        "addTransaction",
        "taskHandle",
        "taskHandle",
    ]
    again = project.runpytest_inprocess()
    again.assert_outcomes(passed=1)
    assert "rewrote" not in again.stdout.str()


def test_a_missing_golden_file_fails_with_the_way_to_create_it(project: pytest.Pytester) -> None:
    result = project.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no golden transcript*leave_long.jsonl*--update-golden*"])


def test_a_changed_call_fails_with_a_diff_naming_the_field(project: pytest.Pytester) -> None:
    """Edit the golden file as if the process had changed: the failure names the field."""
    project.runpytest_inprocess("--update-golden").assert_outcomes(passed=1)
    golden = project.path / "golden" / "leave_long.jsonl"
    golden.write_text(
        golden.read_text(encoding="utf-8").replace('"handlers": "D001"', '"handlers": "D002"'),
        encoding="utf-8",
    )
    result = project.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*GoldenMismatch: centre calls differ from the golden transcript*",
            '*call 2 (taskHandle) request[[]0[]].next[[]0[]].handlers: golden "D002", '
            'this run "D001"*',
            "*Run pytest with --update-golden if the change is intended.*",
        ]
    )


def test_scenario_runner_takes_dicts_and_reports_a_failed_expect(
    pytester: pytest.Pytester,
) -> None:
    """A scenario may be a dict; an expectation that does not hold fails the user's test with
    the step and the reason."""
    pytester.makepyfile(
        test_dict=f"""
        import pytest
        from engine_bridge.errors import ScenarioError

        SCENARIO = {{
            "process": "leave_approval",
            "start": {{"initiator": "2023001", "data": {{"applicant_name": "张三",
                       "reason": "r", "counselor": "T001", "dean": "D001", "days": 2}}}},
            "steps": [
                {{"complete": {{"node": "counselor_review", "handler": "T001",
                               "data": {{"approved": True}}}}}},
                {{"expect": {{"status": "next"}}}},
            ],
        }}

        def test_expect_fails(scenario_runner):
            scenario_runner(SCENARIO, {str(WORKFLOWS)!r})
        """
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*ScenarioError: step 2 (expect): status: expected 'next', got 'end'*"]
    )


def test_golden_dir_and_the_other_fixtures(pytester: pytest.Pytester) -> None:
    """A module's ``GOLDEN_DIR`` picks the folder; the loopback fake and the bridge factory
    work together on the shared fake clock."""
    pytester.makepyfile(
        test_more=f"""
        from pathlib import Path
        import httpx

        GOLDEN_DIR = Path(__file__).parent / "elsewhere"

        def test_folder(golden):
            assert golden.folder == GOLDEN_DIR

        def test_loopback(fake_center_server, bridge_factory, fake_center, fake_clock):
            bridge = bridge_factory(
                {str(WORKFLOWS)!r},
                center=fake_center_server.url,
                client_id="test-client",
                client_secret="test-secret",
            )
            inst = bridge.start("or_sign", initiator="2023001", data={{"title": "x"}})
            assert [t.node_id for t in inst.todos] == ["review"]
            assert len(fake_center.open_todos()) == 1
            assert bridge.clock is fake_clock
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=2)


def test_a_relative_golden_dir_is_taken_from_the_rootdir_not_the_current_folder(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a subfolder, a relative ``GOLDEN_DIR`` still names the project's folder."""
    (project.path / "tests").mkdir()
    (project.path / "tests" / "test_rel.py").write_text(
        'GOLDEN_DIR = "goldens_here"\n\n'
        "def test_folder(golden, pytestconfig):\n"
        '    assert golden.folder == pytestconfig.rootpath / "goldens_here"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(project.path / "tests")
    project.runpytest_inprocess("test_rel.py").assert_outcomes(passed=1)
