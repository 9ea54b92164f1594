"""Every sample in workflows/ runs its scenarios end to end against the fake centre over a real
loopback socket; after every step the centre's open todos equal what the engine waits on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.testing.fake_center import FakeCenter
from engine_bridge.testing.normalize import normalize_transcript
from engine_bridge.testing.scenario import ScenarioStep, load_scenario, run_scenario
from engine_bridge.testing.transcript import TranscriptRecorder

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SCENARIOS = sorted((WORKFLOWS / "scenarios").glob("*.json"))


@dataclass
class Harness:
    fake: FakeCenter
    url: str
    clock: FakeClock
    db: str
    recorder: TranscriptRecorder

    def bridge(self) -> Bridge:
        return Bridge.open(
            WORKFLOWS,
            database=self.db,
            center=self.url,
            client_id="test-client",
            client_secret="test-secret",
            clock=self.clock,
            exchange_hook=self.recorder,
        )


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    with fake.serve() as server:
        yield Harness(
            fake, server.url, clock, f"sqlite:///{tmp_path / 'b.db'}", TranscriptRecorder()
        )


def _pairs_from_centre(fake: FakeCenter) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in fake.open_todos().items() if v}


def _pairs(todos: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in todos:
        who = list(t.handlers) + [f"group:{g}" for g in t.handling_groups]
        out[t.task_id] = sorted(who)
    return out


def test_every_sample_has_a_scenario() -> None:
    """Each BPMN sample is exercised by at least one scenario file."""
    covered = {load_scenario(s).process for s in SCENARIOS}
    bpmn = {p.stem for p in WORKFLOWS.glob("*.bpmn")}
    called_only = {"procurement_check"}  # reached through a call activity
    assert bpmn - called_only <= covered, bpmn - called_only - covered


@pytest.mark.parametrize("scenario_path", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_scenario_runs_and_centre_matches_engine_after_every_step(
    harness: Harness, scenario_path: Path
) -> None:
    """The scenario's expectations hold; after each step centre == ledger == engine; a finished
    process leaves nothing open at the centre and its transcript matches the outcomes."""
    scenario = load_scenario(scenario_path)
    bridge = harness.bridge()
    checked: list[int] = []

    def check(rec: ScenarioStep) -> None:
        if rec.kind == "expect":
            return
        for inst in bridge.store.list_instances(limit=5):
            centre = {
                k: v
                for k, v in _pairs_from_centre(harness.fake).items()
                if k.startswith(inst.id + ":")
            }
            assert centre == _pairs(bridge.todos(inst.id)), f"ledger differs at step {rec.index}"
            assert centre == _pairs(bridge.waiting(inst.id)), f"engine differs at step {rec.index}"
        checked.append(rec.index)

    try:
        run = run_scenario(bridge, scenario, advance=harness.clock.advance, on_step=check)
        assert bridge.store.pending_count() == 0
    finally:
        bridge.close()
    assert checked, "no step was checked"
    if run.finished:
        assert _pairs_from_centre(harness.fake) == {}
    # Every handle in the transcript is one the outcomes announced, in the same order.
    sent = [e for e in harness.recorder.entries if e["endpoint"].endswith("/taskHandle")]
    statuses = [item["status"] for e in sent for item in e["request"]]
    announced = [
        c.item["status"] for rec in run.steps for c in rec.calls if c.endpoint.value == "taskHandle"
    ]
    assert statuses == announced
    for e in harness.recorder.entries:
        assert e["response"]["code"] == 0
        assert e["response"]["data"]["errorIds"] == [], e


class _Reopening:
    """Opens a fresh Bridge on the same database for every call: state must come from disk."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            bridge = self.harness.bridge()
            try:
                return getattr(bridge, name)(*args, **kwargs)
            finally:
                bridge.close()

        return call


@pytest.mark.parametrize("scenario_path", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_restoring_from_the_database_between_steps_sends_the_same_calls(
    tmp_path: Path, scenario_path: Path
) -> None:
    """A new Bridge on the same file before every step produces the same transcript."""
    scenario = load_scenario(scenario_path)
    transcripts = []
    for mode in ("one-bridge", "reopen"):
        clock = FakeClock()
        fake = FakeCenter(clock=clock)
        recorder = TranscriptRecorder()
        h = Harness(fake, "", clock, f"sqlite:///{tmp_path / (mode + '.db')}", recorder)
        with fake.serve() as server:
            h.url = server.url
            if mode == "one-bridge":
                bridge = h.bridge()
                try:
                    run_scenario(bridge, scenario, advance=clock.advance)
                finally:
                    bridge.close()
            else:
                run_scenario(_Reopening(h), scenario, advance=clock.advance)
        transcripts.append(normalize_transcript(recorder.entries))
    assert transcripts[0] == transcripts[1]
