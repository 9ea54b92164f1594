"""``engine-bridge demo``: every sample scenario against the fake centre over a real loopback
socket, told as a timeline: who did what, which call went out with which status, what is open."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine_bridge.clock import FakeClock
from engine_bridge.errors import EngineBridgeError
from engine_bridge.facts import CenterCall, Endpoint
from engine_bridge.testing.scenario import (
    SCENARIO_SUFFIXES,
    ScenarioStep,
    load_scenario,
    run_scenario,
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the sample processes against the fake centre and print a timeline",
    )
    p.add_argument(
        "--workflows",
        default="workflows",
        help="folder with BPMN files and scenarios/ (scenario files: *.json, *.yaml, *.yml)",
    )
    p.add_argument("--only", help="run only scenarios whose file name contains this text")
    p.set_defaults(func=_demo)


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files in ``folder`` (JSON or YAML), sorted by name."""
    if not folder.is_dir():
        return []
    found = (f for f in folder.iterdir() if f.is_file())
    return sorted(f for f in found if f.suffix.lower() in SCENARIO_SUFFIXES)


def describe_call(call: CenterCall, nodes: dict[str, str] | None = None) -> str:
    """One line for a centre call. ``nodes`` (task id → node id, filled as todos are created)
    lets a link name the node it follows instead of a long task id."""
    item = call.item
    nodes = {} if nodes is None else nodes
    for created in [item, *(item.get("next") or [])]:
        if created.get("taskId") and created.get("nodeId"):
            nodes.setdefault(str(created["taskId"]), str(created["nodeId"]))
    if call.endpoint is Endpoint.TASK_HANDLE:
        nxt = item.get("next") or []
        made = ", ".join(
            f"{n.get('nodeId')}→{n.get('handlers') or n.get('handlingGroup')}" for n in nxt
        )
        return f"taskHandle status={item.get('status')} by {item.get('handler')}" + (
            f" next[{made}]" if made else ""
        )
    if call.endpoint is Endpoint.ADD_TRANSACTION:
        previous = str(item.get("previousTaskId") or "")
        link = f" after {nodes.get(previous, previous)}" if previous else " (first todo)"
        who = item.get("handlers") or item.get("handlingGroup")
        return f"addTransaction {item.get('nodeId')}→{who}{link}"
    if call.endpoint is Endpoint.TASK_WITHDRAW:
        nxt = item.get("next") or []
        made = ", ".join(str(n.get("nodeId")) for n in nxt)
        return f"taskWithdraw status={item.get('status')} by {item.get('creator')}" + (
            f" next[{made}]" if made else ""
        )
    if call.endpoint is Endpoint.TASK_TERMINATE:
        return f"taskTerminate by {item.get('creator')}"
    return f"{call.endpoint.value} {dict(item)}"


def _demo(args: argparse.Namespace) -> int:
    from engine_bridge.bridge import Bridge
    from engine_bridge.testing.fake_center import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        FakeCenter,
    )

    folder = Path(args.workflows)
    scenarios = scenario_files(folder / "scenarios")
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    if not scenarios:
        where = (folder / "scenarios").resolve()
        hint = f" matching {args.only!r}" if args.only else ""
        print(
            f"no scenarios{hint} found in {where}; the demo runs the project's samples: run it "
            "from the engine_bridge checkout, or give --workflows DIR (a folder of BPMN files "
            "with a scenarios/ folder of JSON or YAML scenarios beside them)",
            file=sys.stderr,
        )
        return 1
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    failures = 0
    nodes: dict[str, str] = {}
    with fake.serve() as server, tempfile.TemporaryDirectory(prefix="engine-bridge-demo-") as tmp:
        print(f"fake to-do centre listening on {server.url}\n")
        bridge = Bridge.open(
            folder,
            database=f"sqlite:///{Path(tmp) / 'demo.db'}",
            center=server.url,
            client_id=DEFAULT_CLIENT_ID,
            client_secret=DEFAULT_CLIENT_SECRET,
            clock=clock,
        )
        try:
            for path in scenarios:
                try:
                    scenario = load_scenario(path)
                except EngineBridgeError as exc:  # a malformed file: say so, run the others
                    failures += 1
                    print(f"== {path.stem}\n  FAILED: {exc}\n")
                    continue
                print(f"== {path.stem}: {scenario.description or scenario.process}")

                def show(rec: ScenarioStep) -> None:
                    if rec.kind == "expect":
                        return
                    print(f"  [{clock.now():%m-%d %H:%M}] {rec.description}")
                    for call in rec.calls:
                        print(f"      → {describe_call(call, nodes)}")

                try:
                    run = run_scenario(bridge, scenario, advance=clock.advance, on_step=show)
                except EngineBridgeError as exc:
                    failures += 1
                    print(f"  FAILED: {exc}")
                    continue
                todos = bridge.todos(run.instance_id)
                now_open = ", ".join(f"{t.node_id}({','.join(t.handlers)})" for t in todos)
                state = "finished" if run.finished else "running"
                print(f"  instance {state}; open at the centre: {now_open or 'nothing'}\n")
        finally:
            bridge.close()
    return 1 if failures else 0
