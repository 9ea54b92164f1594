"""Stored state: the definition once per version, instances without it, loads that fail clearly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from engine_bridge.clock import FakeClock
from engine_bridge.engine import Engine, definition_json, dump_state, load_state
from engine_bridge.errors import EngineError

from .kit import END, START, Run, chain, definitions, load, process, user
from .test_engine_timers import boundary

CALLER = definitions(
    process(
        "caller",
        START
        + '<bpmn:callActivity id="call" calledElement="callee"/>'
        + END
        + chain("start", "call", "end"),
    ),
    process(
        "callee",
        '<bpmn:startEvent id="s2"/>'
        + user("inner", "'I1'")
        + '<bpmn:endEvent id="e2"/>'
        + chain("s2", "inner", "e2"),
    ),
)


def test_state_has_no_specs_and_keeps_the_serializer_version() -> None:
    """dump_state leaves out spec and subprocess specs; both live in the definition."""
    run = Run(load(CALLER, "caller"))
    run.start()
    state = json.loads(dump_state(run.wf))
    definition = json.loads(definition_json(run.process))
    assert "spec" not in state and "subprocess_specs" not in state
    assert state["serializer_version"] == definition["serializer_version"]
    assert definition["spec"]["name"] == "caller"
    assert set(definition["subprocess_specs"]) == {"callee"}
    assert run.nodes() == ["inner"]


def test_definition_is_written_once_per_version() -> None:
    """The same process gives the same definition text (cheap to compare and to store once)."""
    process_ = load(CALLER, "caller")
    assert definition_json(process_) is definition_json(process_)


def test_loaded_instance_runs_on_with_a_new_engine() -> None:
    """A state loaded by another engine (another worker) continues where it stopped."""
    clock = FakeClock(datetime(2031, 1, 1, tzinfo=UTC))
    run = Run(load(boundary(True), "bt"), clock=clock)
    run.start()
    state, definition = dump_state(run.wf), definition_json(run.process)
    other = Engine(clock=clock)
    wf = load_state(state, definition, script_engine=other.script_engine)
    assert other.next_timer_at(wf) == datetime(2031, 1, 3, tzinfo=UTC)
    clock.advance(timedelta(days=2))
    facts = other.tick(wf, run.process, instance_id="inst-1")
    assert facts is not None
    assert [t.node_id for t in facts.open_todos] == ["escalate"]


@pytest.mark.parametrize("state", ["not json", "[1, 2]", "{}"])
def test_unreadable_state_is_an_engine_error(state: str) -> None:
    """Garbage in the store is reported, not half-loaded."""
    process_ = load(CALLER, "caller")
    with pytest.raises(EngineError, match="state"):
        load_state(state, definition_json(process_), script_engine=None)
