"""The ``run`` and ``demo`` commands, as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_bridge.errors import ScenarioError
from engine_bridge.testing.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
CLI = [sys.executable, "-m", "engine_bridge.cli"]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_run_writes_one_transcript_line_per_centre_call(tmp_path: Path) -> None:
    """Each line is {endpoint, request, response}; statuses follow the scenario."""
    transcript = tmp_path / "t.jsonl"
    done = run_cli(
        "run",
        str(WORKFLOWS),
        "--scenario",
        str(WORKFLOWS / "scenarios" / "leave_approval_long.json"),
        "--transcript",
        str(transcript),
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in transcript.read_text(encoding="utf-8").splitlines()]
    endpoints = [line["endpoint"].rsplit("/", 1)[-1] for line in lines]
    assert endpoints == ["addTransaction", "taskHandle", "taskHandle"]
    statuses = [line["request"][0].get("status") for line in lines[1:]]
    assert statuses == ["next", "end"]
    assert lines[1]["request"][0]["next"][0]["nodeId"] == "dean_review"
    assert lines[1]["request"][0]["next"][0]["handlers"] == "D001"
    assert all(line["response"]["code"] == 0 for line in lines)
    assert "3 request(s) to the centre" in done.stdout


def test_a_failed_expect_exits_1_naming_the_step_and_reason(tmp_path: Path) -> None:
    """A wrong expectation fails with the step number, the field, expected and actual."""
    scenario = json.loads(
        (WORKFLOWS / "scenarios" / "leave_approval_long.json").read_text(encoding="utf-8")
    )
    for step in scenario["steps"]:
        if "expect" in step and step["expect"].get("status") == "next":
            step["expect"]["status"] = "none"
            break
    else:  # pragma: no cover - the sample changed shape
        raise AssertionError("sample scenario has no expect status=next")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(scenario), encoding="utf-8")
    done = run_cli("run", str(WORKFLOWS), "--scenario", str(bad))
    assert done.returncode == 1
    assert "step" in done.stderr and "expected 'none', got 'next'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_scenario_is_reported_not_a_traceback(tmp_path: Path) -> None:
    """Unknown step kinds are named with their position."""
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"process": "leave_approval", "start": {"initiator": "1"}, "steps": [{"x": 1}]}),
        encoding="utf-8",
    )
    done = run_cli("run", str(WORKFLOWS), "--scenario", str(bad))
    assert done.returncode == 2  # the file given on the command line: a usage error
    assert "step 1: x: Extra inputs are not permitted" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("advance", ["1h", "P9999999999D"])
def test_a_malformed_tick_duration_is_a_malformed_scenario_naming_its_step(
    tmp_path: Path, advance: str
) -> None:
    """A tick whose duration is not ISO 8601 (or too long) makes the file malformed: exit 2
    before anything runs, naming the step, as for any other malformed step."""
    bad = tmp_path / "bad.json"
    steps = [{"complete": {"node": "review", "handler": "T001"}}, {"tick": {"advance": advance}}]
    scenario = {"process": "or_sign", "start": {"initiator": "2023001"}, "steps": steps}
    bad.write_text(json.dumps(scenario), encoding="utf-8")
    for command in ("run", "explain"):
        done = run_cli(command, str(WORKFLOWS), "--scenario", str(bad))
        assert done.returncode == 2, (command, done.stdout + done.stderr)
        assert f"{bad}: malformed scenario: step 2: tick.advance: " in done.stderr
        assert repr(advance) in done.stderr and "Traceback" not in done.stderr


def test_a_scenario_file_holding_a_list_says_what_it_must_hold(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    done = run_cli("run", str(WORKFLOWS), "--scenario", str(listed))
    assert done.returncode == 2
    assert "must hold one object" in done.stderr and "not a list" in done.stderr


def test_run_against_a_centre_without_credentials_names_the_options(tmp_path: Path) -> None:
    scenario = str(WORKFLOWS / "scenarios" / "or_sign.json")
    done = run_cli("run", str(WORKFLOWS), "--scenario", scenario, "--center", "http://x.invalid")
    assert done.returncode == 2 and "--client-id and --client-secret" in done.stderr


@pytest.mark.parametrize(
    ("name", "text", "reported"),
    [
        ("gone.json", None, "cannot read scenario"),
        ("bad.json", '{"process": "x",\n "steps": [}', "bad.json:2: not valid JSON"),
        ("bad.yaml", "process: x\nsteps: [\n", "bad.yaml:3: not valid YAML"),
        (
            "alias.yml",
            "process: x\nstart: &s {data: {again: *s}}\n",
            "alias.yml:2: not valid YAML: aliases expand",
        ),
    ],
)
def test_an_unreadable_scenario_file_is_a_usage_error_in_one_line(
    tmp_path: Path, name: str, text: str | None, reported: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    for command in ("run", "explain"):
        done = run_cli(command, str(WORKFLOWS), "--scenario", str(path))
        assert done.returncode == 2, (command, done.stderr)
        assert reported in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(20)
def test_a_scenario_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 387 million items once built; refused, at the first
    alias, before anything is built."""
    levels = "".join(
        f"    {a}: &{a} [{','.join([f'*{p}'] * 9) if p else ','.join(['x'] * 9)}]\n"
        for p, a in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
    )
    path = tmp_path / "bomb.yaml"
    path.write_text("process: p\nstart:\n  data:\n" + levels)
    with pytest.raises(ScenarioError, match=r"bomb\.yaml:5: not valid YAML: aliases expand"):
        load_scenario(path)


def test_demo_tells_each_sample_as_a_timeline() -> None:
    """The demo runs every scenario over loopback and shows calls and statuses."""
    done = run_cli("demo", "--workflows", str(WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "fake to-do centre listening on http://127.0.0.1:" in out
    scenarios = sorted((WORKFLOWS / "scenarios").glob("*.json"))
    for s in scenarios:
        assert f"== {s.stem}" in out
    assert "taskHandle status=next" in out
    assert "taskHandle status=none" in out
    assert "taskHandle status=end" in out
    assert "taskWithdraw" in out
    assert "taskTerminate" in out
    assert "FAILED" not in out


def test_demo_runs_yaml_scenarios_too(tmp_path: Path) -> None:
    """Scenarios may be JSON or YAML: the demo runs *.json, *.yaml and *.yml files alike (in
    any case), and a malformed one is reported as failed while the others still run."""
    import shutil

    import yaml

    folder = tmp_path / "workflows"
    shutil.copytree(WORKFLOWS, folder, ignore=shutil.ignore_patterns("scenarios"))
    (folder / "scenarios").mkdir()
    for name, suffix in (("leave_approval_long", ".yaml"), ("or_sign", ".YML")):
        scenario = json.loads((WORKFLOWS / "scenarios" / f"{name}.json").read_text("utf-8"))
        text = yaml.safe_dump(scenario, allow_unicode=True)
        (folder / "scenarios" / f"{name}{suffix}").write_text(text, encoding="utf-8")
    shutil.copy(WORKFLOWS / "scenarios" / "parallel_review.json", folder / "scenarios")
    (folder / "scenarios" / "notes.txt").write_text("not a scenario", encoding="utf-8")
    done = run_cli("demo", "--workflows", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("leave_approval_long", "or_sign", "parallel_review"):
        assert f"== {name}:" in done.stdout
    assert "notes" not in done.stdout and "FAILED" not in done.stdout
    (folder / "scenarios" / "broken.yaml").write_text("process: [", encoding="utf-8")
    done = run_cli("demo", "--workflows", str(folder))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "== broken\n  FAILED: " in done.stdout and "not valid YAML" in done.stdout
    assert "== or_sign:" in done.stdout and "Traceback" not in done.stderr


def test_run_against_a_centre_that_refuses_the_credentials_fails(tmp_path: Path) -> None:
    """The steps pass, but nothing reached the centre: that is a failure, not a pass."""
    from engine_bridge.testing.fake_center import FakeCenter

    with FakeCenter().serve() as server:
        done = run_cli(
            "run",
            str(WORKFLOWS),
            "--scenario",
            str(WORKFLOWS / "scenarios" / "leave_approval_long.json"),
            "--center",
            server.url,
            "--client-id",
            "test-client",
            "--client-secret",
            "not-the-secret",
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "steps passed" in done.stdout
    assert "centre calls were not delivered" in done.stderr
    assert "not-the-secret" not in done.stdout + done.stderr


def test_unusable_paths_and_databases_are_errors_not_tracebacks(tmp_path: Path) -> None:
    """A database in a missing folder or on a server that is down, a transcript that cannot be
    written, a scenario that is not UTF-8: one line naming the problem, exit 1 (2 for a file
    given on the command line that cannot be read: a scenario, replay's history), never a
    traceback."""
    scenario = str(WORKFLOWS / "scenarios" / "or_sign.json")
    not_utf8 = tmp_path / "latin.json"
    not_utf8.write_bytes(b'\xff\xfe{"process": "or_sign"}')
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps(
            {
                "process": "or_sign",
                "start": {"initiator": "2023001"},
                "steps": [{"complete": {"node": "review", "handler": "NOBODY"}}],
            }
        ),
        encoding="utf-8",
    )
    far = tmp_path / "far.json"
    far.write_text(
        json.dumps(
            {
                "process": "or_sign",
                "start": {"initiator": "2023001"},
                "steps": [{"tick": {"advance": "P99999999D"}}],
            }
        ),
        encoding="utf-8",
    )
    cases = [
        (
            ("run", str(WORKFLOWS), "--scenario", scenario, "--database", "sqlite:////no/dir/x.db"),
            1,
            "the database cannot be used: unable to open database file",
        ),
        (
            ("outbox", "list", "--database", "postgresql+psycopg://postgres@127.0.0.1:9/test"),
            1,
            "the database cannot be used: connection failed",
        ),
        (
            ("run", str(WORKFLOWS), "--scenario", scenario, "--transcript", "/no/dir/t.jsonl"),
            1,
            "/no/dir/t.jsonl: No such file or directory",
        ),
        (("run", str(WORKFLOWS), "--scenario", str(not_utf8)), 2, "it is not UTF-8 text"),
        (("replay", str(not_utf8), "--workflows", str(WORKFLOWS)), 2, "not UTF-8 text"),
        (("run", str(WORKFLOWS), "--scenario", str(far)), 1, "beyond the year 9999"),
        (
            ("run", str(WORKFLOWS), "--scenario", str(wrong)),
            1,
            "wrong.json: step 1 (NOBODY completes review): 'NOBODY' is not a handler",
        ),
        (("explain", str(WORKFLOWS), "--process", "or_sign", "--max-steps", "-1"), 2, "positive"),
    ]
    for argv, code, words in cases:
        done = run_cli(*argv, cwd=tmp_path)
        assert done.returncode == code, (argv, done.stdout, done.stderr)
        assert words in done.stdout + done.stderr, (argv, done.stderr)
        assert "Traceback" not in done.stderr, (argv, done.stderr)


def test_message_command_delivers_once_and_queues_the_calls(tmp_path: Path) -> None:
    """An operator sends a message by hand: the step is committed, its call waits in the
    outbox; the same key again changes nothing; a message nothing waits for is refused."""
    from engine_bridge.bridge import Bridge

    database = f"sqlite:///{tmp_path / 'b.db'}"
    with Bridge.open(WORKFLOWS, database=database, center=None) as bridge:
        data = {"venue": "A", "date": "2026-12-10", "manager": "M001"}
        inst = bridge.start("venue_booking", initiator="2023001", data=data)
        bridge.complete(inst.todos[0].task_id, handler="M001")
    argv = ("message", inst.id, "payment_received", "--workflows", str(WORKFLOWS))
    sent = run_cli(*argv, "--data", '{"receipt": "R-9"}', "--key", "pay-9", "--database", database)
    assert sent.returncode == 0, sent.stderr
    assert "opened issue_permit" in sent.stdout and "1 centre call(s) queued" in sent.stdout
    again = run_cli(*argv, "--data", '{"receipt": "R-9"}', "--key", "pay-9", "--database", database)
    assert again.returncode == 0 and "already delivered with this key" in again.stdout
    other = run_cli(*argv, "--key", "pay-9", "--database", database)  # not the same message
    assert other.returncode == 1 and "with other data" in other.stderr
    wrong = run_cli(*argv[:2], "nope", "--workflows", str(WORKFLOWS), "--database", database)
    assert wrong.returncode == 1 and "is not waiting for message 'nope'" in wrong.stderr
    with Bridge.open(WORKFLOWS, database=database, center=None) as bridge:
        assert [t.node_id for t in bridge.todos(inst.id)] == ["issue_permit"]
        assert [e.kind for e in bridge.history(inst.id)].count("message") == 1
        pending = bridge.store.outbox(status="pending", instance_id=inst.id)
        assert pending[-1].endpoint.value == "addTransaction"
