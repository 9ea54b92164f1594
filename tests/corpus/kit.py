"""Running corpus models end to end: a folder of copies, a bridge, the fake centre, and the
check that the centre's open todos are exactly what the engine waits on after every step."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from engine_bridge.bridge import Bridge
from engine_bridge.clock import FakeClock
from engine_bridge.results import OpenTodo, Outcome
from engine_bridge.testing.fake_center import FakeCenter

from .verdicts import CORPUS


def workflows(
    folder: Path, *names: str, nodes: Mapping[str, Mapping[str, Any]] | None = None
) -> Path:
    """``folder`` holding byte-for-byte copies of corpus files and, for node overrides, a
    ``processes.yaml`` ({process id: {node id: {...}}})."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(CORPUS / name, folder / name)
    if nodes:
        settings = {pid: {"nodes": dict(by_node)} for pid, by_node in nodes.items()}
        (folder / "processes.yaml").write_text(
            yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8"
        )
    return folder


def _shares(todos: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for todo in todos:
        out[todo.task_id] = sorted([*todo.handlers, *(f"group:{g}" for g in todo.handling_groups)])
    return out


class Run:
    """One instance on a bridge and a fake centre; every step is checked against the centre."""

    def __init__(self, bridge: Bridge, fake: FakeCenter, clock: FakeClock) -> None:
        self.bridge = bridge
        self.fake = fake
        self.clock = clock
        self.instance_id = ""
        self.steps = 0

    def centre(self) -> dict[str, list[str]]:
        """Open shares at the centre for this instance's todos."""
        return {
            task_id: shares
            for task_id, shares in self.fake.open_todos().items()
            if shares and task_id.startswith(self.instance_id + ":")
        }

    def check(self) -> None:
        """Centre == ledger == engine, and nothing waits in the outbox."""
        assert self.bridge.store.pending_count() == 0, f"undelivered calls after step {self.steps}"
        centre = self.centre()
        assert centre == _shares(self.bridge.todos(self.instance_id)), f"ledger, step {self.steps}"
        assert centre == _shares(self.bridge.waiting(self.instance_id)), (
            f"engine, step {self.steps}"
        )
        self.steps += 1

    def start(self, process: str, *, initiator: str, data: Mapping[str, Any]) -> None:
        instance = self.bridge.start(process, initiator=initiator, data=dict(data))
        self.instance_id = instance.id
        self.check()

    def todo(self, node: str) -> OpenTodo:
        """The one open todo of ``node``."""
        found = [t for t in self.bridge.todos(self.instance_id) if t.node_id == node]
        assert len(found) == 1, (node, self.bridge.todos(self.instance_id))
        return found[0]

    def complete(self, node: str, handler: str, data: Mapping[str, Any] | None = None) -> Outcome:
        outcome = self.bridge.complete(self.todo(node).task_id, handler=handler, data=data or {})
        self.check()
        return outcome

    def nodes(self) -> list[str]:
        return sorted(t.node_id for t in self.bridge.todos(self.instance_id))

    def status(self) -> str:
        return self.bridge.instance(self.instance_id).status

    def calls(self, endpoint: str) -> list[dict[str, Any]]:
        """Items the centre accepted on ``endpoint`` for this instance, oldest first (a call
        answered 401 because the token expired, then resent, counts once)."""
        items: list[dict[str, Any]] = []
        for entry in self.fake.calls(endpoint):
            if entry.get("status") != 200 or (entry.get("response") or {}).get("code") != 0:
                continue
            body = entry.get("body")
            for item in body if isinstance(body, list) else [body]:
                if isinstance(item, dict) and self.instance_id in json.dumps(item):
                    items.append(item)
        return items


@contextmanager
def bridge_run(
    folder: Path,
    db: Path,
    *,
    loopback: bool = False,
    resolvers: Mapping[str, Any] | None = None,
) -> Iterator[Run]:
    """A bridge on ``folder`` talking to a fake centre, in-process or over a loopback socket."""
    clock = FakeClock()
    fake = FakeCenter(clock=clock)
    if loopback:
        with fake.serve() as server:
            bridge = Bridge.open(
                folder,
                database=f"sqlite:///{db}",
                center=server.url,
                client_id="test-client",
                client_secret="test-secret",  # the fake centre's documented default
                clock=clock,
                resolvers=resolvers,
            )
            try:
                yield Run(bridge, fake, clock)
            finally:
                bridge.close()
        return
    bridge = Bridge.open(
        folder,
        database=f"sqlite:///{db}",
        center=fake.transport(),
        clock=clock,
        resolvers=resolvers,
    )
    try:
        yield Run(bridge, fake, clock)
    finally:
        bridge.close()
