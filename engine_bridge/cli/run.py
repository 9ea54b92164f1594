"""``engine-bridge run``: run a scenario against the fake centre (or a real one) and write a
transcript of every centre call."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine_bridge.cli._common import add_credential_arguments, missing_credentials
from engine_bridge.clock import FakeClock
from engine_bridge.errors import EngineBridgeError, ScenarioError
from engine_bridge.testing.scenario import describe_step, load_scenario, run_scenario
from engine_bridge.testing.transcript import TranscriptRecorder


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a scenario against the fake centre (or --center URL), write a transcript",
        description=(
            "Run the scenario's process from the given BPMN files and directories. Without "
            "--center the built-in fake to-do centre is used (no network). Exits 1 with the "
            "step and reason when an expect step does not hold."
        ),
    )
    p.add_argument("files", nargs="+", help="BPMN files or directories holding them")
    p.add_argument("--scenario", required=True, help="scenario file (JSON or YAML)")
    p.add_argument("--transcript", help="write one JSON line per centre call to this file")
    p.add_argument("--center", help="base URL of a real (or fake) to-do centre")
    add_credential_arguments(p)
    p.add_argument("--database", help="database URL (default: a temporary SQLite file)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from engine_bridge.bridge import Bridge
    from engine_bridge.testing.fake_center import FakeCenter

    problem = missing_credentials(args) if args.center else None
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:  # the file given on the command line: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    recorder = TranscriptRecorder(args.transcript)
    clock = FakeClock()
    fake = None if args.center else FakeCenter(clock=clock)
    with tempfile.TemporaryDirectory(prefix="engine-bridge-run-") as tmp:
        database = args.database or f"sqlite:///{Path(tmp) / 'run.db'}"
        bridge = Bridge.open(
            [Path(f) for f in args.files],
            database=database,
            center=args.center or (fake.transport() if fake else None),
            app_id=args.app_id,
            client_id=args.client_id,
            client_secret=args.client_secret,
            clock=clock,
            exchange_hook=recorder,
        )
        done: list[int] = []  # the index of each step run so far (0 is the start)
        try:
            result = run_scenario(
                bridge, scenario, advance=clock.advance, on_step=lambda s: done.append(s.index)
            )
            undelivered = sum(  # this run's instance: the database may hold others
                len(bridge.store.outbox(status=s, instance_id=result.instance_id, limit=10**6))
                for s in ("pending", "dead")
            )
            incidents = bridge.incidents(instance_id=result.instance_id, status="open")
        except ScenarioError as exc:
            print(f"{args.scenario}: {exc}", file=sys.stderr)
            return 1
        except EngineBridgeError as exc:  # the bridge refused a step: say which one
            failing = done[-1] + 1 if done else 0
            what = (
                describe_step(scenario.steps[failing - 1])
                if 0 < failing <= len(scenario.steps)
                else f"start {scenario.process}"
            )
            print(f"{args.scenario}: step {failing} ({what}): {exc}", file=sys.stderr)
            return 1
        finally:
            bridge.close()
            recorder.close()
    state = {"finished": "finished", "cancelled": "cancelled"}.get(result.status, "still running")
    if result.status == "incident":
        where = (
            f" at service task {incidents[0].node_id!r}: {incidents[0].error}" if incidents else ""
        )
        state = f"stopped at an incident{where}"
    sent = len(recorder.entries)
    print(
        f"{args.scenario}: {len(scenario.steps)} steps passed; instance {result.instance_id} "
        f"{state}; {sent} request(s) to the centre"
    )
    if undelivered:
        print(
            f"error: {undelivered} of the instance's centre calls were not delivered (the "
            "centre refused them or could not be reached; run with -v to see why)",
            file=sys.stderr,
        )
        return 1
    return 1 if result.status == "incident" else 0
